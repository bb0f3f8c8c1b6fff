"""``models pull`` through the CLI: the model-source emulator streamed into the OSS emulator."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterator

import pytest

from eascomfy.crc64 import crc64
from eascomfy.sandbox.models import ModelSourceSandbox
from tests.conftest import run_cli
from tests.storage.conftest import BUCKET, write_spec

DATA = os.urandom(3 * 1024 * 1024 + 4321)  # four 1 MiB parts
KEY = "p/models/vae/model.safetensors"


@pytest.fixture
def hub(tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelSourceSandbox]:
    with ModelSourceSandbox(tmp_path / "hub") as sandbox:
        sandbox.switches.retry_after = 0
        sandbox.add_file("org/repo", "vae/model.safetensors", DATA)
        sandbox.add_file("org/gated", "loras/style_lora.safetensors", DATA[:200_000], gated=True, revision="v2")
        sandbox.tokens.add("hf_sandbox_token_123456")
        monkeypatch.setenv("EASCOMFY_HF_ENDPOINT", sandbox.url)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
        yield sandbox


def pull(spec: Path, *args: str):
    return run_cli("models", "pull", *args, "-f", str(spec), "--part-size", "1", "-o", "json")


def test_hf_pull_streams_ranges_into_a_verified_multipart_upload(oss, hub, tmp_path) -> None:
    spec = write_spec(tmp_path)
    res = pull(spec, "hf://org/repo/vae/model.safetensors")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert oss.object_bytes(BUCKET, KEY) == DATA
    assert oss.object_info(BUCKET, KEY)["crc64"] == crc64(DATA)
    data = res.json()["data"]
    assert data["sources"][0]["sha256"] == hashlib.sha256(DATA).hexdigest()
    assert data["files"][0]["parts"] == 4
    assert [r.method for r in hub.requests("CdnGet")].count("GET") == 4  # one ranged GET a part
    again = pull(spec, "hf://org/repo/vae/model.safetensors")
    assert again.json()["data"]["files"][0]["skipped"] is True


def test_a_wrong_published_hash_leaves_nothing_behind(oss, hub, tmp_path) -> None:
    hub.switches.lie_about_hash = True
    res = pull(write_spec(tmp_path), "hf://org/repo/vae/model.safetensors")
    assert res.exit_code == 4, res.stdout + res.stderr
    assert "SHA256 mismatch" in (res.stdout + res.stderr)
    assert oss.list_keys(BUCKET, "p/models/") == [] and oss.multipart_uploads(BUCKET) == []


def test_throttling_and_server_errors_are_retried(oss, hub, tmp_path) -> None:
    hub.faults.add(kind="throttle", action="Resolve", times=2)
    hub.faults.add(kind="status", status=503, code="ServiceUnavailable", action="CdnGet", times=2)
    res = pull(write_spec(tmp_path), "hf://org/repo/vae/model.safetensors")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert oss.object_bytes(BUCKET, KEY) == DATA


def test_gated_repo_needs_hf_token_which_is_never_printed(oss, hub, tmp_path, monkeypatch) -> None:
    spec = write_spec(tmp_path)
    denied = pull(spec, "hf://org/gated/loras/style_lora.safetensors@v2")
    assert denied.exit_code == 4 and "GatedRepo" in (denied.stdout + denied.stderr) and "HF_TOKEN" in (denied.stdout + denied.stderr)
    monkeypatch.setenv("HF_TOKEN", "hf_sandbox_token_123456")
    res = run_cli("--verbose", "models", "pull", "hf://org/gated/loras/style_lora.safetensors@v2", "-f", str(spec))
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "hf_sandbox_token_123456" not in res.stdout + res.stderr
    assert oss.object_bytes(BUCKET, "p/models/loras/style_lora.safetensors") == DATA[:200_000]


def test_plain_url_kind_guess_and_refusals(oss, hub, tmp_path) -> None:
    spec = write_spec(tmp_path)
    url = hub.add_plain("dl/4x_ESRGAN.pth", DATA[:500_000])
    res = pull(spec, url)
    assert res.exit_code == 0, res.stdout + res.stderr
    assert oss.object_bytes(BUCKET, "p/models/upscale_models/4x_ESRGAN.pth") == DATA[:500_000]
    unknown = pull(spec, hub.add_plain("dl/model.bin", b"x" * 1000))
    assert unknown.exit_code == 2 and "--kind" in (unknown.stdout + unknown.stderr)
    unknown_scheme = pull(spec, "ftp://example.com/model.safetensors")
    assert unknown_scheme.exit_code == 2 and "civitai://VERSION_ID" in (unknown_scheme.stdout + unknown_scheme.stderr)
    missing = pull(spec, "hf://org/repo/vae/nope.safetensors", "--kind", "vae")
    assert missing.exit_code == 4 and "EntryNotFound" in (missing.stdout + missing.stderr)


def test_storage_sync_pulls_spec_models_with_a_source_that_the_mount_lacks(oss, hub, tmp_path) -> None:
    spec = write_spec(tmp_path)
    spec.write_text(spec.read_text() + "models:\n"
                    "  - kind: vae\n    source: hf://org/repo/vae/model.safetensors@main\n"
                    "  - kind: upscale_models\n    name: up.pth\n    source: " + hub.add_plain("x/up.pth", b"u" * 300_000) + "\n")
    plan = run_cli("storage", "sync", "--dry-run", "-f", str(spec), "-o", "json")
    assert plan.exit_code == 0, plan.stdout + plan.stderr
    assert [i["action"] for i in plan.json()["data"]["plan"]] == ["pull", "pull"]
    assert oss.list_keys(BUCKET, "p/models/") == []
    done = run_cli("storage", "sync", "-f", str(spec), "--part-size", "1")
    assert done.exit_code == 0, done.stdout + done.stderr
    assert "2 pulled from their source" in done.stdout
    assert oss.object_bytes(BUCKET, KEY) == DATA
    assert oss.object_bytes(BUCKET, "p/models/upscale_models/up.pth") == b"u" * 300_000
    again = run_cli("storage", "sync", "-f", str(spec), "-o", "json")
    assert [i["action"] for i in again.json()["data"]["plan"]] == ["ok", "ok"]
