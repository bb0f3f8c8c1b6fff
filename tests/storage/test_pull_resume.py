"""A pull killed mid-way (SIGKILL) resumes on both sides: the parts OSS has are not sent again
(the OSS emulator's recorder), the source is asked only for the missing ranges (the model-source
emulator's log of the bytes it served), and the object's SHA-256 and CRC64 are still verified,
because the hash's running state was saved with the parts (``storage.resumable_hash``)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from eascomfy.crc64 import crc64
from eascomfy.sandbox.models import ModelSourceSandbox
from tests.conftest import run_cli
from tests.storage.conftest import BUCKET, write_spec

MiB = 1024 * 1024
PARTS = 12
DATA = os.urandom(PARTS * MiB - 5000)
SHA = hashlib.sha256(DATA).hexdigest()
KEY = "p/models/vae/big.safetensors"
ARGS = ("--part-size", "1", "--workers", "2", "-o", "json")


@pytest.fixture
def hub(tmp_path: Path, env: dict[str, str]) -> Iterator[ModelSourceSandbox]:
    with ModelSourceSandbox(tmp_path / "hub") as sandbox:
        sandbox.add_file("org/repo", "vae/big.safetensors", DATA)
        sandbox.add_ms_file("owner/repo", "vae/big.safetensors", DATA)
        yield sandbox


def _uploaded(oss) -> set[int]:
    return {int(r.query["partNumber"]) for r in oss.requests("UploadPart") if r.status == 200}


def _kill_mid_way(oss, hub, env, spec: Path, source: str, at_least: int = 3) -> set[int]:
    """Run the pull in a child process, slowed down, and SIGKILL it once ``at_least`` parts are in OSS."""
    hub.switches.bytes_per_second = 2 * MiB  # per connection: about half a second a part
    child_env = {**os.environ, **env, "EASCOMFY_HF_ENDPOINT": hub.url, "EASCOMFY_MODELSCOPE_ENDPOINT": hub.url}
    proc = subprocess.Popen([sys.executable, "-m", "eascomfy", "models", "pull", source, "-f", str(spec), *ARGS],
                            env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(_uploaded(oss)) < at_least:
            assert proc.poll() is None and time.monotonic() < deadline, "the pull ended before it was killed"
            time.sleep(0.02)
        proc.kill()
    finally:
        proc.wait(10)
    hub.switches.bytes_per_second = 0
    return _uploaded(oss)


def _resume_and_check(oss, hub, tmp_path: Path, spec: Path, source: str, monkeypatch) -> None:
    """Run the pull again: only the parts OSS lacks are fetched and sent; the object is verified."""
    (upload,) = oss.multipart_uploads(BUCKET)
    checkpoint = json.loads(next((tmp_path / "state" / "uploads").glob("*.json")).read_text())
    saved = {int(n) for n in checkpoint["parts"]} & set(upload["parts"])
    assert saved and len(saved) < PARTS
    assert checkpoint["digest"]["next"] > max(saved)  # the saved hash covers the saved parts
    before_parts, before_served = len(oss.requests("UploadPart")), len(hub.served(SHA))
    monkeypatch.setenv("EASCOMFY_HF_ENDPOINT", hub.url)
    monkeypatch.setenv("EASCOMFY_MODELSCOPE_ENDPOINT", hub.url)
    res = run_cli("models", "pull", source, "-f", str(spec), *ARGS)
    assert res.exit_code == 0, res.stdout + res.stderr
    sent_again = {int(r.query["partNumber"]) for r in oss.requests("UploadPart")[before_parts:]}
    assert sent_again == set(range(1, PARTS + 1)) - saved  # OSS side: only the missing parts
    assert set(hub.served(SHA)[before_served:]) == {_part_range(n) for n in sent_again}  # source side: their ranges
    assert oss.object_bytes(BUCKET, KEY) == DATA
    assert oss.object_info(BUCKET, KEY)["crc64"] == crc64(DATA)
    result = res.json()["data"]
    assert result["files"][0]["resumed_parts"] == len(saved)
    assert result["sources"][0]["sha256"] == SHA
    assert oss.multipart_uploads(BUCKET) == []
    assert list((tmp_path / "state" / "uploads").glob("*.json")) == []


def _part_range(n: int) -> tuple[int, int]:
    return (n - 1) * MiB, min(n * MiB, len(DATA)) - 1


@pytest.mark.parametrize("source", ["hf://org/repo/vae/big.safetensors", "ms://owner/repo/vae/big.safetensors"])
def test_a_killed_pull_resumes_without_sending_or_fetching_parts_twice(oss, hub, env, tmp_path, monkeypatch, source) -> None:
    spec = write_spec(tmp_path)
    first = _kill_mid_way(oss, hub, env, spec, source)
    assert KEY not in oss.list_keys(BUCKET, "p/")
    (upload,) = oss.multipart_uploads(BUCKET)
    assert set(upload["parts"]) <= first
    _resume_and_check(oss, hub, tmp_path, spec, source, monkeypatch)


def test_a_pull_cut_off_by_the_source_resumes(oss, hub, env, tmp_path, monkeypatch) -> None:
    """The source drops every connection once some parts are in OSS: the pull fails after its
    retries (exit 4, the upload and its checkpoint kept), and the next run resumes it."""
    spec = write_spec(tmp_path)
    source = "hf://org/repo/vae/big.safetensors"
    hub.switches.bytes_per_second = 2 * MiB
    proc = subprocess.Popen([sys.executable, "-m", "eascomfy", "models", "pull", source, "-f", str(spec), *ARGS],
                            env={**os.environ, **env, "EASCOMFY_HF_ENDPOINT": hub.url},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(_uploaded(oss)) < 3:
            assert proc.poll() is None and time.monotonic() < deadline, "the pull ended before the source failed"
            time.sleep(0.02)
        hub.faults.add(kind="drop", action="CdnGet", times=-1)
        stdout, stderr = proc.communicate(timeout=90)  # the retries back off for about 15 s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 4, stdout + stderr
    assert json.loads(stdout)["error"]["code"] == "ConnectionError"
    hub.faults.clear()
    hub.switches.bytes_per_second = 0
    _resume_and_check(oss, hub, tmp_path, spec, source, monkeypatch)


def test_a_resume_still_verifies_the_whole_hash(oss, hub, env, tmp_path, monkeypatch) -> None:
    """The saved hash state is trusted only as far as the final comparison: a state that does not
    match the bytes (here: altered in the checkpoint) fails the resumed pull, and the upload is
    aborted, leaving no object and no upload behind."""
    spec = write_spec(tmp_path)
    source = "ms://owner/repo/vae/big.safetensors"
    _kill_mid_way(oss, hub, env, spec, source)
    path = next((tmp_path / "state" / "uploads").glob("*.json"))
    checkpoint = json.loads(path.read_text())
    state = checkpoint["digest"]["state"]
    checkpoint["digest"]["state"] = ("0" if state[0] != "0" else "1") + state[1:]  # one word of the state
    path.write_text(json.dumps(checkpoint))
    monkeypatch.setenv("EASCOMFY_MODELSCOPE_ENDPOINT", hub.url)
    res = run_cli("models", "pull", source, "-f", str(spec), *ARGS)
    assert res.exit_code == 4 and "SHA256 mismatch" in res.stdout + res.stderr
    assert KEY not in oss.list_keys(BUCKET, "p/") and oss.multipart_uploads(BUCKET) == []
    assert list((tmp_path / "state" / "uploads").glob("*.json")) == []


def test_a_pull_downloads_with_half_the_workers_while_the_other_half_upload(oss, hub, env, tmp_path, monkeypatch) -> None:
    """The pipeline: with --workers 4 and both sides paced, at most two GETs are in flight (the
    other two workers upload meanwhile), and uploads start before the downloads are over."""
    hub.switches.bytes_per_second = 4 * MiB
    oss.faults.add(kind="slow", per_mib=0.25, times=-1, action="UploadPart")  # 4 MiB/s a connection
    monkeypatch.setenv("EASCOMFY_HF_ENDPOINT", hub.url)
    res = run_cli("models", "pull", "hf://org/repo/vae/big.safetensors", "-f", str(write_spec(tmp_path)),
                  "--part-size", "1", "--workers", "4", "-o", "json")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert oss.object_bytes(BUCKET, KEY) == DATA
    assert hub.peak_bodies_in_flight == 2
    first_upload = min(r.time for r in oss.requests("UploadPart"))
    last_get = max(r.time for r in hub.requests("CdnGet"))
    assert first_upload < last_get  # the two sides overlapped
