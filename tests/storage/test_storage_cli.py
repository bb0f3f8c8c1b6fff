"""Storage commands through the CLI with the real oss2 against the OSS sandbox."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eascomfy.crc64 import crc64
from eascomfy.sandbox.credentials import SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET
from eascomfy.sandbox.oss import OssSandbox
from eascomfy.storage.mount import LAYOUT
from tests.conftest import run_cli

BUCKET = "eascomfy-test"


@pytest.fixture
def oss(tmp_path_factory):
    """A fresh OSS emulator per test (it starts in milliseconds): no request, fault or object of one
    test is seen by the next, whatever the order."""
    with OssSandbox(tmp_path_factory.mktemp("oss-state"), region="cn-hangzhou") as sandbox:
        sandbox.create_bucket(BUCKET)
        sandbox.create_bucket("other-region-bucket", region="cn-shanghai")
        yield sandbox


@pytest.fixture
def env(oss, tmp_path, monkeypatch):
    values = {
        "EASCOMFY_OSS_ENDPOINT": oss.url,
        "ALIBABA_CLOUD_ACCESS_KEY_ID": SANDBOX_ACCESS_KEY_ID,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SANDBOX_ACCESS_KEY_SECRET,
        "EASCOMFY_STATE_DIR": str(tmp_path / "state"),
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("EASCOMFY_OSS_ENDPOINTS", raising=False)  # a region map would win over it
    return values


def _spec(tmp_path: Path, prefix: str, bucket: str = BUCKET) -> Path:
    spec = tmp_path / "eascomfy.yaml"
    spec.write_text(f"name: comfy_store\nregion: cn-hangzhou\nedition: api\nstorage:\n  oss: oss://{bucket}/{prefix}/\n")
    return spec


def _uploads(oss) -> list:
    return [r for r in oss.recorder.all() if r.action in ("UploadPart", "PutObject", "CompleteMultipartUpload")]


def test_storage_init_creates_layout_idempotently(oss, env, tmp_path) -> None:
    spec = _spec(tmp_path, "init")
    first = run_cli("storage", "init", "-f", str(spec), "-o", "json")
    assert first.exit_code == 0, first.stdout + first.stderr
    assert sorted(first.json()["data"]["created"]) == sorted(f"init/{p}" for p in LAYOUT)
    assert set(f"init/{p}" for p in LAYOUT) <= set(oss.list_keys(BUCKET, "init/"))
    again = run_cli("storage", "init", "-f", str(spec), "-o", "json")
    assert again.json()["data"]["created"] == []


def test_push_multipart_is_byte_exact_and_repush_uploads_nothing(oss, env, tmp_path) -> None:
    spec = _spec(tmp_path, "push")
    model = tmp_path / "svd_xt.safetensors"
    model.write_bytes(os.urandom(3 * 1024 * 1024 + 12345))
    oss.recorder.clear()
    result = run_cli("models", "push", str(model), "--kind", "checkpoints", "-f", str(spec), "--part-size", "1", "-o", "json")
    assert result.exit_code == 0, result.stdout + result.stderr
    key = "push/models/checkpoints/svd_xt.safetensors"
    assert oss.object_bytes(BUCKET, key) == model.read_bytes()
    assert oss.object_info(BUCKET, key)["crc64"] == crc64(model.read_bytes())
    assert [r.action for r in oss.recorder.all()].count("UploadPart") == 4
    oss.recorder.clear()
    again = run_cli("models", "push", str(model), "-k", "checkpoints", "-f", str(spec), "--part-size", "1", "-o", "json")
    assert again.json()["data"]["files"][0]["skipped"] is True
    assert _uploads(oss) == []


def test_killed_upload_resumes_with_no_leftovers(oss, env, tmp_path) -> None:
    spec = _spec(tmp_path, "resume")
    model = tmp_path / "big.safetensors"
    model.write_bytes(os.urandom(8 * 1024 * 1024))
    oss.faults.add(kind="slow", delay=0.3, action="UploadPart", times=-1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "eascomfy", "models", "push", str(model), "-k", "checkpoints", "-f", str(spec),
         "--part-size", "1", "--workers", "1"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 20
    while time.time() < deadline and sum(1 for r in oss.recorder.all() if r.action == "UploadPart" and r.status == 200) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    oss.faults.clear()
    sent_before = sum(1 for r in oss.recorder.all() if r.action == "UploadPart" and r.status == 200)
    assert 3 <= sent_before < 8
    oss.recorder.clear()
    result = run_cli("models", "push", str(model), "-k", "checkpoints", "-f", str(spec), "--part-size", "1", "-o", "json")
    assert result.exit_code == 0, result.stdout + result.stderr
    data = result.json()["data"]["files"][0]
    # The last part the server stored may not have reached the killed client's checkpoint.
    assert sent_before - 1 <= data["resumed_parts"] <= sent_before
    assert [r.action for r in oss.recorder.all()].count("UploadPart") == 8 - data["resumed_parts"]
    assert oss.object_bytes(BUCKET, "resume/models/checkpoints/big.safetensors") == model.read_bytes()
    assert oss.multipart_uploads(BUCKET) == []


def test_injected_faults_are_retried_and_end_correct(oss, env, tmp_path) -> None:
    spec = _spec(tmp_path, "faults")
    model = tmp_path / "lora.safetensors"
    model.write_bytes(os.urandom(2 * 1024 * 1024 + 7))
    oss.faults.add(kind="status", status=503, code="ServiceUnavailable", action="UploadPart", times=1)
    oss.faults.add(kind="drop", action="UploadPart", times=1)
    result = run_cli("models", "push", str(model), "--kind", "loras", "-f", str(spec), "--part-size", "1", "-o", "json")
    oss.faults.clear()
    assert result.exit_code == 0, result.stdout + result.stderr
    assert oss.object_bytes(BUCKET, "faults/models/loras/lora.safetensors") == model.read_bytes()


def test_outputs_pull_refuses_traversal(oss, env, tmp_path) -> None:
    spec = _spec(tmp_path, "out")
    import oss2

    auth = oss2.AuthV4(SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET)  # the emulator refuses V1, as new buckets do
    bucket = oss2.Bucket(auth, oss.url, BUCKET, region="cn-hangzhou")
    bucket.put_object("out/output/ComfyUI_00001_.png", b"png-bytes")
    bucket.put_object("out/output/sub/clip.mp4", b"mp4-bytes")
    bucket.put_object("out/output/../../escape.txt", b"evil")
    dest = tmp_path / "dl"
    result = run_cli("outputs", "pull", "--dest", str(dest), "-f", str(spec), "-o", "json")
    assert result.exit_code == 1
    data = result.json()
    assert sorted(p["name"] for p in data["data"]["pulled"]) == ["ComfyUI_00001_.png", "sub/clip.mp4"]
    assert data["data"]["refused"] == ["../../escape.txt"]
    assert (dest / "sub" / "clip.mp4").read_bytes() == b"mp4-bytes"
    assert not (tmp_path / "escape.txt").exists()


def test_wrong_secret_and_wrong_region_are_clear(oss, env, tmp_path, monkeypatch) -> None:
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"x" * 10)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "not-the-secret-123")
    bad = run_cli("-v", "models", "push", str(model), "-k", "vae", "-f", str(_spec(tmp_path, "auth")))
    assert bad.exit_code == 4
    assert "SignatureDoesNotMatch" in bad.stderr
    assert "not-the-secret-123" not in bad.stderr + bad.stdout
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SANDBOX_ACCESS_KEY_SECRET)
    oss.recorder.clear()
    region = run_cli("models", "push", str(model), "-k", "vae", "-f", str(_spec(tmp_path, "x", bucket="other-region-bucket")))
    assert region.exit_code == 4
    assert "is in cn-shanghai but the service is in cn-hangzhou" in region.stderr
    assert _uploads(oss) == []


WORKFLOW = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "LandscapeBING_v10.safetensors"}},
    "10": {"class_type": "LoraLoader", "inputs": {"lora_name": "detail.safetensors", "model": ["4", 0], "clip": ["4", 1]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["4", 0]}},
}


def test_push_kind_from_workflow(oss, env, tmp_path) -> None:
    import json

    spec = _spec(tmp_path, "wf")
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps(WORKFLOW))
    ckpt, lora = tmp_path / "LandscapeBING_v10.safetensors", tmp_path / "detail.safetensors"
    ckpt.write_bytes(b"c" * 1000)
    lora.write_bytes(b"l" * 500)
    result = run_cli("models", "push", str(ckpt), str(lora), "--for", str(workflow), "-f", str(spec), "-o", "json")
    assert result.exit_code == 0, result.stdout + result.stderr
    keys = set(oss.list_keys(BUCKET, "wf/models/"))
    assert {"wf/models/checkpoints/LandscapeBING_v10.safetensors", "wf/models/loras/detail.safetensors"} <= keys
    other = tmp_path / "unused.safetensors"
    other.write_bytes(b"u")
    refused = run_cli("models", "push", str(other), "--for", str(workflow), "-f", str(spec))
    assert refused.exit_code == 2 and "is not used by" in refused.stderr
    typo = run_cli("models", "push", str(other), "--kind", "lora", "-f", str(spec))
    assert typo.exit_code == 2 and "did you mean 'loras'?" in typo.stderr


def test_nodes_push_uploads_tree_without_caches(oss, env, tmp_path) -> None:
    spec = _spec(tmp_path, "nodes")
    pack = tmp_path / "ComfyUI-VideoHelperSuite"
    (pack / "videohelpersuite").mkdir(parents=True)
    (pack / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    (pack / "videohelpersuite" / "nodes.py").write_text("# nodes\n")
    (pack / "__pycache__").mkdir()
    (pack / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (pack / ".git").mkdir()
    (pack / ".git" / "HEAD").write_text("ref\n")
    result = run_cli("nodes", "push", str(pack), "-f", str(spec), "-o", "json")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert sorted(oss.list_keys(BUCKET, "nodes/custom_nodes/")) == [
        "nodes/custom_nodes/ComfyUI-VideoHelperSuite/__init__.py",
        "nodes/custom_nodes/ComfyUI-VideoHelperSuite/videohelpersuite/nodes.py",
    ]


def test_wheels_push_adds_to_spec_keeping_comments(oss, env, tmp_path) -> None:
    spec = _spec(tmp_path, "whl")
    spec.write_text(spec.read_text() + "# the wheels our nodes need\nwheels:\n  - old-1.0-py3-none-any.whl  # kept\n")
    wheel = tmp_path / "insightface-0.7.3-py3-none-any.whl"
    wheel.write_bytes(b"PK wheel")
    result = run_cli("wheels", "push", str(wheel), "-f", str(spec), "-o", "json")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.json()["data"]["added_to_spec"] == [wheel.name]
    text = spec.read_text()
    assert "# the wheels our nodes need" in text and "old-1.0-py3-none-any.whl  # kept" in text
    assert f"  - {wheel.name}\n" in text
    assert oss.object_bytes(BUCKET, f"whl/models/whl/{wheel.name}") == b"PK wheel"
    rendered = run_cli("render", "-f", str(spec))
    assert f"/code/data-oss/models/whl/{wheel.name}" in rendered.stdout


def test_storage_sync_plans_uploads_and_reports_missing(oss, env, tmp_path) -> None:
    spec = _spec(tmp_path, "sync")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.safetensors").write_bytes(b"a" * 2048)
    spec.write_text(
        spec.read_text()
        + "models:\n  - file: m/a.safetensors\n    kind: checkpoints\n"
        + "  - name: elsewhere.safetensors\n    kind: vae\n"
    )
    oss.recorder.clear()
    plan = run_cli("storage", "sync", "--dry-run", "-f", str(spec), "-o", "json")
    assert plan.exit_code == 1
    actions = {p["name"]: p["action"] for p in plan.json()["data"]["plan"]}
    assert actions == {"a.safetensors": "upload", "elsewhere.safetensors": "missing"}
    assert _uploads(oss) == []
    spec.write_text(spec.read_text().replace("  - name: elsewhere.safetensors\n    kind: vae\n", ""))
    done = run_cli("storage", "sync", "-f", str(spec), "-o", "json")
    assert done.exit_code == 0, done.stdout + done.stderr
    assert oss.object_bytes(BUCKET, "sync/models/checkpoints/a.safetensors") == b"a" * 2048
    again = run_cli("storage", "sync", "-f", str(spec), "-o", "json")
    assert [p["action"] for p in again.json()["data"]["plan"]] == ["ok"]


def test_storage_ls_lists_with_sizes(oss, env, tmp_path) -> None:
    spec = _spec(tmp_path, "ls")
    model = tmp_path / "x.safetensors"
    model.write_bytes(b"x" * 3000)
    run_cli("models", "push", str(model), "-k", "vae", "-f", str(spec))
    rows = run_cli("storage", "ls", "models/vae", "-f", str(spec), "-o", "json").json()["data"]
    assert rows == [{"name": "models/vae/x.safetensors", "size": 3000, "folder": False}]
    text = run_cli("storage", "ls", "models/vae", "-f", str(spec))
    assert "2.9 KiB  models/vae/x.safetensors" in text.stdout
