"""SIGINT while CompleteMultipartUpload is answered (issue 11 item 20): the object was complete on
OSS but the client's checkpoint stayed behind. The checkpoint must go once the object is
complete. The emulator completes the upload, then holds the answer (data fault ``late_answer``);
the CLI gets SIGINT in that window. Bounded in time: the child is waited for at most 30 s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.storage.conftest import BUCKET, write_spec

KEY = "ck/models/checkpoints/model.safetensors"


def test_sigint_while_the_completion_is_answered_leaves_no_checkpoint(oss, env, tmp_path: Path) -> None:
    model = tmp_path / "model.safetensors"
    model.write_bytes(os.urandom(2 * 1024 * 1024 + 99))
    spec = write_spec(tmp_path, "ck")
    oss.data_faults.add("late_answer", action="CompleteMultipartUpload", delay=3.0)
    proc = subprocess.Popen(
        [sys.executable, "-m", "eascomfy", "models", "push", str(model), "-k", "checkpoints", "-f", str(spec),
         "--part-size", "1"],
        env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while KEY not in oss.list_keys(BUCKET, "ck/"):  # complete on the server, its answer held back
            assert proc.poll() is None and time.monotonic() < deadline, "the upload never reached completion"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 130, stderr
    assert oss.object_bytes(BUCKET, KEY) == model.read_bytes()
    uploads = tmp_path / "state" / "uploads"
    assert not uploads.exists() or list(uploads.glob("*.json")) == []
    assert oss.multipart_uploads(BUCKET) == []


def test_a_checkpoint_left_by_a_kill_at_completion_goes_with_the_next_push(oss, env, tmp_path: Path) -> None:
    from tests.conftest import run_cli

    model = tmp_path / "model.safetensors"
    model.write_bytes(os.urandom(2 * 1024 * 1024 + 7))
    spec = write_spec(tmp_path, "ck")
    oss.data_faults.add("late_answer", action="CompleteMultipartUpload", delay=3.0)
    args = ["models", "push", str(model), "-k", "checkpoints", "-f", str(spec), "--part-size", "1"]
    proc = subprocess.Popen([sys.executable, "-m", "eascomfy", *args], env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while KEY not in oss.list_keys(BUCKET, "ck/"):
            assert proc.poll() is None and time.monotonic() < deadline, "the upload never reached completion"
            time.sleep(0.02)
        proc.kill()  # SIGKILL: nothing can be deferred
    finally:
        proc.wait(10)
    uploads = tmp_path / "state" / "uploads"
    assert len(list(uploads.glob("*.json"))) == 1
    again = run_cli(*args, "-o", "json")
    assert again.exit_code == 0, again.stdout + again.stderr
    assert again.json()["data"]["files"][0]["skipped"] is True  # the object is there, complete
    assert list(uploads.glob("*.json")) == []
