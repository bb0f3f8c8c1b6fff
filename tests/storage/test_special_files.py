"""Special files and odd folder names (issue 11 item 17): ``models push /dev/zero`` ran out of
memory and a FIFO blocked forever (only regular files may be read, and the check must come
before any read); ``nodes push .`` and ``..`` made keys ``custom_nodes//a.py`` and
``custom_nodes/../Pack/a.py``; ``nodes push`` followed a symlink to a file outside the pack.

The device and FIFO cases run the CLI in a child process with a memory limit and a timeout, so a
regression fails the test instead of hanging or exhausting the machine."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.storage.conftest import BUCKET, write_spec

UPLOADS = ("PutObject", "UploadPart", "InitiateMultipartUpload")


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))  # /dev/zero read whole dies here, not the machine


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "eascomfy", *args], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=60, preexec_fn=_limited)


def _uploads(oss) -> list:
    return [r for r in oss.requests() if r.action in UPLOADS]


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_models_push_refuses_special_files_before_reading(oss, env, tmp_path: Path, kind: str) -> None:
    if kind == "device":
        target = Path("/dev/zero")
    else:
        target = tmp_path / "model.safetensors"
        os.mkfifo(target)
    link = tmp_path / "link.safetensors"  # a link to a special file is one too
    link.symlink_to(target)
    spec = write_spec(tmp_path)
    for path in (target, link):
        try:
            done = _cli(env, "models", "push", str(path), "-k", "vae", "-f", str(spec))
        except subprocess.TimeoutExpired:
            pytest.fail(f"models push {path} blocked")
        assert done.returncode == 2, done.stdout + done.stderr
        assert "not a regular file" in done.stderr
    assert _uploads(oss) == []


def test_wheels_push_refuses_a_fifo_and_writes_nothing(oss, env, tmp_path: Path) -> None:
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    os.mkfifo(wheel)
    spec = write_spec(tmp_path)
    before = spec.read_text()
    try:
        done = _cli(env, "wheels", "push", str(wheel), "-f", str(spec))
    except subprocess.TimeoutExpired:
        pytest.fail("wheels push of a FIFO blocked")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "not a regular file" in done.stderr
    assert spec.read_text() == before
    assert _uploads(oss) == []


def _pack(root: Path) -> Path:
    pack = root / "ComfyUI-Pack"
    (pack / "sub").mkdir(parents=True)
    (pack / "a.py").write_text("A = 1\n")
    (pack / "sub" / "b.py").write_text("B = 2\n")
    return pack


def test_nodes_push_dot_and_dotdot_use_the_folder_name(oss, env, tmp_path: Path) -> None:
    pack = _pack(tmp_path / "src")
    spec = write_spec(tmp_path, "dot")
    here = run_cli("nodes", "push", ".", "-f", str(spec), "-o", "json", cwd=pack)
    assert here.exit_code == 0, here.stdout + here.stderr
    expected = ["dot/custom_nodes/ComfyUI-Pack/a.py", "dot/custom_nodes/ComfyUI-Pack/sub/b.py"]
    assert sorted(oss.list_keys(BUCKET, "dot/")) == expected
    assert here.json()["data"]["folders"] == ["ComfyUI-Pack"]
    spec2 = write_spec(tmp_path, "dotdot")
    up = run_cli("nodes", "push", "..", "-f", str(spec2), "-o", "json", cwd=pack / "sub")
    assert up.exit_code == 0, up.stdout + up.stderr
    assert sorted(oss.list_keys(BUCKET, "dotdot/")) == [k.replace("dot/", "dotdot/", 1) for k in expected]


def test_nodes_push_refuses_a_root_without_a_name(oss, env, tmp_path: Path) -> None:
    done = run_cli("nodes", "push", "/", "-f", str(write_spec(tmp_path)))
    assert done.exit_code == 2, done.stdout + done.stderr
    assert "has no name" in done.stderr
    assert _uploads(oss) == []


def test_nodes_push_skips_links_leaving_the_pack_and_says_so(oss, env, tmp_path: Path) -> None:
    pack = _pack(tmp_path / "src")
    secret = tmp_path / "outside.txt"
    secret.write_text("not part of the pack\n")
    (pack / "escape.py").symlink_to(secret)
    (pack / "dangling.py").symlink_to(tmp_path / "missing.py")
    (pack / "inside.py").symlink_to(pack / "a.py")  # inside the pack: its content is uploaded
    os.mkfifo(pack / "pipe")
    spec = write_spec(tmp_path, "links")
    done = run_cli("nodes", "push", str(pack), "-f", str(spec), "-o", "json")
    assert done.exit_code == 0, done.stdout + done.stderr
    keys = sorted(oss.list_keys(BUCKET, "links/"))
    assert keys == [f"links/custom_nodes/ComfyUI-Pack/{n}" for n in ("a.py", "inside.py", "sub/b.py")]
    assert oss.object_bytes(BUCKET, "links/custom_nodes/ComfyUI-Pack/inside.py") == b"A = 1\n"
    warnings = "\n".join(done.json()["warnings"])
    for name in ("escape.py", "dangling.py", "pipe"):
        assert f"skipped ComfyUI-Pack/{name}" in warnings
    assert "leaves the pack" in warnings
