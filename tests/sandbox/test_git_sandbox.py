"""The git forge emulator: a real git client clones over smart HTTP, pushes are refused, and the
shared faults reach git (what ``nodes add`` then reports)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from eascomfy.sandbox.git import GitSandbox
from tests.conftest import run_cli
from tests.storage.conftest import BUCKET, env, oss, write_spec  # noqa: F401 (fixtures)


def git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_GLOBAL": os.devnull}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)


def test_clone_gets_the_commits_and_tags_and_a_push_is_refused(tmp_path: Path) -> None:
    with GitSandbox(tmp_path / "forge") as forge:
        url = forge.add_repo("org/Pack", {"a.py": "1\n"})
        tagged = forge.tag("org/Pack", "v1")
        head = forge.commit("org/Pack", {"b.py": "2\n"})
        assert git("clone", "-q", url, str(tmp_path / "c")).returncode == 0
        assert git("rev-parse", "HEAD", "v1^{commit}", cwd=tmp_path / "c").stdout.split() == [head, tagged]
        assert [r.action for r in forge.requests()][:2] == ["InfoRefs", "UploadPack"]
        (tmp_path / "c" / "c.py").write_text("3\n")
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "x", cwd=tmp_path / "c")
        git("add", "c.py", cwd=tmp_path / "c")
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x", cwd=tmp_path / "c")
        pushed = git("push", "-q", "origin", "HEAD:main", cwd=tmp_path / "c")
        assert pushed.returncode != 0 and forge.head("org/Pack") == head


def test_a_forge_failure_is_one_line_and_nothing_is_uploaded(oss, env, tmp_path: Path) -> None:
    with GitSandbox(tmp_path / "forge") as forge:
        url = forge.add_repo("org/Pack", {"a.py": "1\n"})
        forge.faults.add(kind="status", status=503, code="Unavailable", action="UploadPack", times=-1)
        res = run_cli("nodes", "add", url, "-f", str(write_spec(tmp_path)))
        assert res.exit_code == 4, res.stdout + res.stderr
        assert "git clone" in res.stderr and "503" in res.stderr and "Traceback" not in res.stderr
        assert oss.list_keys(BUCKET, "p/") == []
