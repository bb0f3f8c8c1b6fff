"""A git forge emulator: bare repositories served over git's smart HTTP protocol on loopback,
for ``eascomfy nodes add`` in tests and the demo.

    with GitSandbox() as forge:
        url = forge.add_repo("org/ComfyUI-Pack", {"__init__.py": "...", "requirements.txt": "numpy<2\\n"})
        forge.tag("org/ComfyUI-Pack", "v1.0")
        # git clone {url} works; forge.requests() lists what the client fetched

Why smart HTTP through ``git http-backend`` and not ``file://`` or an archive emulator: GitHub,
GitLab and Gitea serve custom node packs over exactly this protocol, so the client's real
``git clone https://...`` path (ref advertisement, then ``git-upload-pack`` POSTs) is what the
tests drive; and every request passes the sandbox's recorder and fault injection like the other
emulators. The server side is git's own CGI program, run per request as the documentation says:
``GIT_PROJECT_ROOT``, ``GIT_HTTP_EXPORT_ALL``, ``PATH_INFO``, ``QUERY_STRING``, ``REQUEST_METHOD``,
``CONTENT_TYPE`` (https://git-scm.com/docs/git-http-backend), the protocol version in
``GIT_PROTOCOL`` from the ``Git-Protocol`` header (https://git-scm.com/docs/gitprotocol-http,
"Smart Clients"). Only the read side (``git-upload-pack``) is served: pushes are refused (403).

Repositories are built with the ``git`` program (``add_repo``, ``commit``, ``tag``, ``branch``),
so commits are real and their ids are what the client must record.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Mapping

from aiohttp import web

from .server import SandboxServer, ServerBacked

_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
# A fixed identity and dates, so the same content gives the same commit ids run after run.
_GIT_ENV = {"GIT_AUTHOR_NAME": "sandbox", "GIT_AUTHOR_EMAIL": "sandbox@example.invalid",
            "GIT_COMMITTER_NAME": "sandbox", "GIT_COMMITTER_EMAIL": "sandbox@example.invalid",
            "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def error_response(request: web.Request, status: int, code: str, message: str) -> web.StreamResponse:
    """A forge error is plain text (git prints it as ``fatal: unable to access ...: The requested
    URL returned error: <status>``); throttling is a 429."""
    if code.startswith("Throttling"):
        status = 429
    return web.Response(status=status, text=f"{code}: {message}\n")


def _action_of(request: web.Request) -> str | None:
    if request.path.endswith("/info/refs"):
        return "InfoRefs"
    if request.path.endswith("/git-upload-pack"):
        return "UploadPack"
    if request.path.endswith("/git-receive-pack"):
        return "ReceivePack"
    return None


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **_GIT_ENV}
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout.strip()


class GitSandbox(ServerBacked):
    """Bare repositories under ``state_dir/git/<org>/<name>.git`` (a temporary folder when None),
    served at ``{url}/<org>/<name>.git``."""

    def __init__(self, state_dir: Path | None = None, port: int = 0) -> None:
        self.root = self._state_folder(state_dir, "eascomfy-git-") / "git"
        self.root.mkdir(parents=True, exist_ok=True)
        self._server = SandboxServer(self._application, error_response, _action_of, name="git", port=port)

    def requests(self, action: str | None = None) -> list[Any]:
        return [r for r in self._server.recorder.all() if action is None or r.action == action]

    # -- content ---------------------------------------------------------------------------------
    def repo_url(self, repo: str) -> str:
        return f"{self.url}/{repo}.git"

    def add_repo(self, repo: str, files: Mapping[str, str | bytes], *, branch: str = "main",
                 message: str = "first") -> str:
        """A new repository ``org/name`` with one commit of ``files`` on ``branch``; its clone URL."""
        if not _REPO.match(repo):
            raise ValueError(f"not an org/name repository: {repo!r}")
        bare = self.root / f"{repo}.git"
        if bare.exists():
            raise ValueError(f"{repo} exists")
        bare.mkdir(parents=True)
        _git(bare, "init", "--quiet", "--bare", f"--initial-branch={branch}")
        self.commit(repo, files, branch=branch, message=message)
        return self.repo_url(repo)

    def commit(self, repo: str, files: Mapping[str, str | bytes], *, branch: str = "main",
               message: str = "change", remove: tuple[str, ...] = ()) -> str:
        """Write ``files`` (and delete ``remove``) on ``branch`` (created from the default branch's
        head when new); the new commit's id."""
        bare = self.root / f"{repo}.git"
        with tempfile.TemporaryDirectory(prefix="eascomfy-git-work-") as tmp:
            work = Path(tmp)
            _git(work, "init", "--quiet", f"--initial-branch={branch}")
            _git(work, "config", "core.autocrlf", "false")
            heads = _git(bare, "for-each-ref", "--format=%(refname:short)", "refs/heads/")
            if heads:
                start = branch if branch in heads.split() else _git(bare, "symbolic-ref", "--short", "HEAD")
                _git(work, "fetch", "--quiet", str(bare), start)
                _git(work, "reset", "--quiet", "--hard", "FETCH_HEAD")
            for name, content in files.items():
                path = work / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content.encode() if isinstance(content, str) else content)
            for name in remove:
                (work / name).unlink()
            _git(work, "add", "--all")
            _git(work, "commit", "--quiet", "--allow-empty", "-m", message)
            _git(work, "push", "--quiet", str(bare), f"HEAD:refs/heads/{branch}")
            return _git(work, "rev-parse", "HEAD")

    def tag(self, repo: str, name: str, rev: str = "HEAD") -> str:
        """An annotated tag (as releases usually are) on ``rev``; the commit it points at."""
        bare = self.root / f"{repo}.git"
        _git(bare, "tag", "-a", "-m", name, name, rev)
        return _git(bare, "rev-parse", f"{name}^{{commit}}")

    def head(self, repo: str, ref: str = "HEAD") -> str:
        return _git(self.root / f"{repo}.git", "rev-parse", f"{ref}^{{commit}}")

    # -- the application -------------------------------------------------------------------------
    def _application(self, server: SandboxServer) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{path:.+}", self._backend)
        return app

    async def _backend(self, request: web.Request) -> web.StreamResponse:
        """One CGI call of ``git http-backend`` (git-scm.com/docs/git-http-backend)."""
        if request.query.get("service") == "git-receive-pack" or request.path.endswith("/git-receive-pack"):
            return web.Response(status=403, text="pushes are not served here\n")
        body = await request.read()  # aiohttp has undone a Content-Encoding: gzip already
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
            "PATH_INFO": request.path,
            "QUERY_STRING": request.query_string,
            "REQUEST_METHOD": request.method,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": "127.0.0.1",
        }
        if "Git-Protocol" in request.headers:
            env["GIT_PROTOCOL"] = request.headers["Git-Protocol"]
        proc = await asyncio.create_subprocess_exec(
            shutil.which("git") or "git", "http-backend", env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate(body)
        head, sep, payload = out.partition(b"\r\n\r\n")
        if not sep:
            head, sep, payload = out.partition(b"\n\n")
        status, headers = 200, {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers[name.strip()] = value.strip()
        return web.Response(status=status, body=payload, headers=headers)
