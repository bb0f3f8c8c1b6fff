"""Git, the door to custom node packs: a pinned checkout of ``URL`` at ``REV`` in a local folder,
through the ``git`` program (no Python git library: the user's git already knows their proxies,
credential helpers and SSH keys).

What it does is what ComfyUI-Manager does for a git URL (``glob/manager_core.py``
``gitclone_install``: a clone, then a checkout of the commit; submodules included), with the
revision resolved to a commit id that the caller records (lockfile). Resolution order is git's own
(https://git-scm.com/docs/gitrevisions: a full or short commit id, a tag, the default branch),
then the remote's branch ``origin/<rev>`` (a clone has only the default branch locally).

Nothing asks on a terminal (``GIT_TERMINAL_PROMPT=0``: a private repository without credentials
fails at once, also in CI). A password or token in the URL (``https://user:token@host/...``) is
registered with ``redact`` and never shown; ``public_url`` is what may be recorded.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ..errors import CloudError, UsageError
from ..redact import redact, register_secret

TIMEOUT = 600.0  # seconds for one git command (a large pack over a slow link)
_REV = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+-]*$")
_SHA = re.compile(r"^[0-9a-f]{40}$")


class GitError(CloudError):
    """A git command that failed: which one, and git's own last lines (redacted)."""


def public_url(url: str) -> str:
    """``url`` without a password or token in it (both are registered as secrets)."""
    parts = urlsplit(url)
    if parts.password is None and not (parts.username and parts.scheme in ("http", "https")):
        return url
    register_secret(parts.password)
    if parts.password is None and parts.username and len(parts.username) >= 16:  # a token as the user name
        register_secret(parts.username)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _env() -> dict[str, str]:
    return {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "",
            "GCM_INTERACTIVE": "never", "LC_ALL": "C"}


def _git(cwd: Path | None, *args: str, what: str) -> str:
    exe = shutil.which("git")
    if exe is None:
        raise UsageError("git is not installed: custom nodes are fetched with git", "install git (e.g. apt-get install git)")
    try:
        proc = subprocess.run([exe, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=TIMEOUT,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise GitError(f"{what}: git took longer than {TIMEOUT:.0f} s", code="GitTimeout") from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        said = "; ".join(lines[-3:]) if lines else f"git exited with {proc.returncode}"  # e.g. the HTTP status, then fatal:
        raise GitError(f"{what}: {redact(said)}", code="GitFailed")
    return proc.stdout.strip()


def resolve(folder: Path, rev: str | None) -> str:
    """The commit id ``rev`` names in the clone at ``folder`` (HEAD, the remote's default branch,
    when None)."""
    if rev is None:
        return _git(folder, "rev-parse", "--verify", "HEAD^{commit}", what="the default branch")
    if not _REV.match(rev):
        raise UsageError(f"not a git revision: {rev!r}", "a commit id, a tag or a branch name")
    for candidate in (rev, f"origin/{rev}"):
        try:
            return _git(folder, "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}", what=f"revision {rev}")
        except GitError:
            continue
    raise GitError(f"no commit, tag or branch {rev!r} in the repository", code="RevisionNotFound",
                   hint="check the name (git ls-remote URL lists tags and branches)")


def checkout(url: str, rev: str | None, dest: Path) -> str:
    """Clone ``url`` into ``dest`` (which must not exist) and check out ``rev``; the commit id.
    Submodules are checked out too, at the commits the pack pins."""
    shown = public_url(url)
    _git(None, "clone", "--quiet", "--no-checkout", "--", url, str(dest), what=f"git clone {shown}")
    commit = resolve(dest, rev)
    _git(dest, "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", commit, what=f"checkout {commit}")
    if (dest / ".gitmodules").is_file():
        _git(dest, "submodule", "update", "--quiet", "--init", "--recursive", what=f"submodules of {shown}")
    assert _SHA.match(commit), commit
    return commit
