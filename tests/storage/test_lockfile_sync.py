"""``storage sync`` records a model pulled from its source in eascomfy.lock: the SHA-256 the hub
published and the CRC64 the OSS emulator stores; a later sync keeps the SHA-256."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterator

import pytest

from eascomfy.sandbox.models import ModelSourceSandbox
from tests.conftest import run_cli
from tests.storage.conftest import BUCKET, REGION, write_spec

DATA = os.urandom(1_500_000)
KEY = "p/models/vae/ae.safetensors"


@pytest.fixture
def hub(tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelSourceSandbox]:
    with ModelSourceSandbox(tmp_path / "hub") as sandbox:
        sandbox.add_file("org/repo", "vae/ae.safetensors", DATA)
        monkeypatch.setenv("EASCOMFY_HF_ENDPOINT", sandbox.url)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
        yield sandbox


def test_a_pulled_model_is_locked_with_its_sha256_and_crc64(oss, hub, tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    with spec.open("a") as fh:
        fh.write("models:\n  - source: hf://org/repo/vae/ae.safetensors@main\n    kind: vae\n")
    res = run_cli("-o", "json", "storage", "sync", "-f", str(spec), "--part-size", "1")
    assert res.exit_code == 0, res.stdout + res.stderr
    lock = json.loads((tmp_path / "eascomfy.lock").read_text())
    [model] = lock["services"][f"comfy_store@{REGION}"]["models"]
    info = oss.object_info(BUCKET, KEY)
    assert model["sha256"] == hashlib.sha256(DATA).hexdigest()
    assert (model["size"], model["crc64"], model["etag"]) == (len(DATA), info["crc64"], info["etag"])
    assert model["source"] == "hf://org/repo/vae/ae.safetensors@main"
    # nothing to pull the second time; the SHA-256 stays (same size and CRC64), the text is the same
    text = (tmp_path / "eascomfy.lock").read_text()
    again = run_cli("storage", "sync", "-f", str(spec))
    assert again.exit_code == 0, again.stderr
    assert (tmp_path / "eascomfy.lock").read_text() == text


def test_wheels_push_records_the_sha256_that_sync_keeps(oss, env, tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    wheel = tmp_path / "tiny-1.0-py3-none-any.whl"
    wheel.write_bytes(os.urandom(50_000))
    res = run_cli("-o", "json", "wheels", "push", str(wheel), "-f", str(spec))
    assert res.exit_code == 0, res.stdout + res.stderr
    assert res.json()["data"]["lock"] == str(tmp_path / "eascomfy.lock")
    assert run_cli("storage", "sync", "-f", str(spec)).exit_code == 0
    [entry] = json.loads((tmp_path / "eascomfy.lock").read_text())["services"][f"comfy_store@{REGION}"]["wheels"]
    info = oss.object_info(BUCKET, f"p/models/whl/{wheel.name}")
    assert entry["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert (entry["size"], entry["crc64"], entry["etag"]) == (50_000, info["crc64"], info["etag"])
