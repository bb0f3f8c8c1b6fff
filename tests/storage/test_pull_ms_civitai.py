"""``models pull ms://...`` and ``civitai://...`` through the CLI: the model-source emulator's
ModelScope and Civitai APIs streamed into the OSS emulator, under both readings of what the
sources leave open (fidelity switches)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterator

import pytest

from eascomfy.crc64 import crc64
from eascomfy.sandbox.fidelity import Fidelity
from eascomfy.sandbox.models import ModelSourceSandbox
from tests.conftest import run_cli
from tests.storage.conftest import BUCKET, write_spec

DATA = os.urandom(2 * 1024 * 1024 + 777)  # three 1 MiB parts
MS_TOKEN = "ms-sandbox-token-5d1e2f3a4b"
CIVITAI_TOKEN = "civitai0123456789abcdef0123456789"


@pytest.fixture(params=["listing", "linked_etag"])
def hub(request, tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelSourceSandbox]:
    fidelity = Fidelity(modelscope_sha256=request.param)
    with ModelSourceSandbox(tmp_path / "hub", fidelity=fidelity) as sandbox:
        sandbox.add_ms_file("owner/flux", "unet/flux_dev.safetensors", DATA)
        sandbox.add_ms_file("owner/flux", "README.md", b"# readme\n" * 100, lfs=False)
        sandbox.add_ms_file("owner/private", "vae/ae.safetensors", DATA[:300_000], private=True, revision="v1.0")
        sandbox.modelscope.tokens.add(MS_TOKEN)
        for name in ("EASCOMFY_MODELSCOPE_ENDPOINT", "EASCOMFY_CIVITAI_ENDPOINT"):
            monkeypatch.setenv(name, sandbox.url)
        for name in ("MODELSCOPE_API_TOKEN", "CIVITAI_API_TOKEN", "MODELSCOPE_ENDPOINT"):
            monkeypatch.delenv(name, raising=False)
        yield sandbox


def pull(spec: Path, *args: str):
    return run_cli("models", "pull", *args, "-f", str(spec), "--part-size", "1", "-o", "json")


def test_modelscope_pull_verifies_the_listed_sha256(oss, hub, tmp_path) -> None:
    res = pull(write_spec(tmp_path), "ms://owner/flux/unet/flux_dev.safetensors")
    assert res.exit_code == 0, res.stdout + res.stderr
    key = "p/models/unet/flux_dev.safetensors"
    assert oss.object_bytes(BUCKET, key) == DATA and oss.object_info(BUCKET, key)["crc64"] == crc64(DATA)
    assert res.json()["data"]["sources"][0]["sha256"] == hashlib.sha256(DATA).hexdigest()
    listing = hub.requests("MsListFiles")[0].query
    assert listing["Revision"] == "master" and listing["Root"] == "unet"  # the default revision, one folder
    downloads = hub.requests("MsDownload")[0].query
    assert downloads == {"Revision": "master", "FilePath": "unet/flux_dev.safetensors"}
    assert sorted(hub.served(hashlib.sha256(DATA).hexdigest())) == [(0, 1048575), (1048576, 2097151), (2097152, len(DATA) - 1)]


def test_a_wrong_modelscope_or_civitai_hash_leaves_nothing(oss, hub, tmp_path) -> None:
    hub.switches.lie_about_hash = True  # the listing's Sha256 (or the X-Linked-ETag) is wrong
    res = pull(write_spec(tmp_path), "ms://owner/flux/unet/flux_dev.safetensors")
    assert res.exit_code == 4, res.stdout + res.stderr
    assert "SHA256 mismatch" in res.stdout + res.stderr
    assert oss.list_keys(BUCKET, "p/models/") == [] and oss.multipart_uploads(BUCKET) == []
    hub.add_civitai_version(5, [{"name": "bad.safetensors", "data": DATA}], model_type="VAE")
    res = pull(write_spec(tmp_path), "civitai://5")
    assert res.exit_code == 4 and "SHA256 mismatch" in res.stdout + res.stderr
    assert oss.list_keys(BUCKET, "p/models/") == [] and oss.multipart_uploads(BUCKET) == []


def test_modelscope_private_repo_token_goes_as_bearer_and_cookie_never_printed(oss, hub, tmp_path, monkeypatch) -> None:
    spec = write_spec(tmp_path)
    denied = pull(spec, "ms://owner/private/vae/ae.safetensors@v1.0")
    text = denied.stdout + denied.stderr
    assert denied.exit_code == 4 and "MODELSCOPE_API_TOKEN" in text
    assert oss.requests("InitiateMultipartUpload") == []  # refused before anything was sent to OSS
    monkeypatch.setenv("MODELSCOPE_API_TOKEN", MS_TOKEN)
    res = run_cli("--verbose", "models", "pull", "ms://owner/private/vae/ae.safetensors@v1.0", "-f", str(spec))
    assert res.exit_code == 0, res.stdout + res.stderr
    assert MS_TOKEN not in res.stdout + res.stderr
    assert oss.object_bytes(BUCKET, "p/models/vae/ae.safetensors") == DATA[:300_000]
    assert hub.cdn_with_credentials == 0  # the token stayed on ModelScope's origin


def test_modelscope_emulator_takes_the_token_as_bearer_or_cookie(hub) -> None:
    import httpx

    hub.modelscope.tokens.add(MS_TOKEN)
    listing = f"{hub.url}/api/v1/models/owner/private/repo/files?Revision=v1.0&Recursive=True"
    assert httpx.get(listing, cookies={"m_session_id": MS_TOKEN}).json()["Success"] is True
    assert httpx.get(listing, headers={"Authorization": f"Bearer {MS_TOKEN}"}).json()["Success"] is True
    assert httpx.get(listing).status_code == 401 and httpx.get(listing).json()["Success"] is False


def test_modelscope_git_stored_file_ignores_range(oss, hub, tmp_path) -> None:
    spec = write_spec(tmp_path)
    res = pull(spec, "ms://owner/flux/README.md", "--kind", "checkpoints")
    assert res.exit_code == 0, res.stdout + res.stderr  # one part, the whole body
    assert oss.object_bytes(BUCKET, "p/models/checkpoints/README.md") == b"# readme\n" * 100
    missing = pull(spec, "ms://owner/flux/unet/nope.safetensors")
    assert missing.exit_code == 4 and "no file unet/nope.safetensors" in missing.stdout + missing.stderr


@pytest.mark.parametrize("redirect,head", [("307", "redirect"), ("302", "refused")])
def test_civitai_pull_primary_file_named_from_the_api(oss, hub, tmp_path, monkeypatch, redirect, head) -> None:
    hub.fidelity.update(civitai_redirect=redirect, civitai_head=head)
    hub.add_civitai_version(4567, [{"name": "pixelArt_v1.safetensors", "data": DATA},
                                   {"name": "pixelArt_v1.pt", "data": b"p" * 1000, "format": "PickleTensor"}],
                            model_type="LORA", model_name="Pixel Art")
    res = pull(write_spec(tmp_path), "civitai://4567")
    assert res.exit_code == 0, res.stdout + res.stderr
    key = "p/models/loras/pixelArt_v1.safetensors"  # Civitai's model type -> loras; files[].name
    assert oss.object_bytes(BUCKET, key) == DATA
    assert res.json()["data"]["sources"][0]["sha256"] == hashlib.sha256(DATA).hexdigest()
    assert [r.path for r in hub.requests("CivitaiVersion")] == ["/api/v1/model-versions/4567"]
    answered = [(r.method, r.status) for r in hub.requests("CivitaiDownload")]
    if head == "redirect":
        assert answered == [("HEAD", int(redirect))]
    else:  # HEAD refused: probed with GET + Range: bytes=0-0, which redirects the same way
        assert answered == [("HEAD", 405), ("GET", int(redirect))]


def test_civitai_early_access_needs_its_token_never_printed(oss, hub, tmp_path, monkeypatch) -> None:
    hub.add_civitai_version(99, [{"name": "early.safetensors", "data": DATA[:400_000]}], model_type="Checkpoint",
                            early_access=True)
    hub.civitai.tokens.add(CIVITAI_TOKEN)
    spec = write_spec(tmp_path)
    denied = pull(spec, "civitai://99")
    assert denied.exit_code == 4 and "CIVITAI_API_TOKEN" in denied.stdout + denied.stderr
    assert oss.requests("InitiateMultipartUpload") == []
    monkeypatch.setenv("CIVITAI_API_TOKEN", CIVITAI_TOKEN)
    res = run_cli("--verbose", "models", "pull", "civitai://99", "-f", str(spec))
    assert res.exit_code == 0, res.stdout + res.stderr
    assert CIVITAI_TOKEN not in res.stdout + res.stderr
    assert oss.object_bytes(BUCKET, "p/models/checkpoints/early.safetensors") == DATA[:400_000]
    # The token went to Civitai's origin only, never to the signed storage URL's.
    assert hub.requests("CdnGet") and hub.cdn_with_credentials == 0


def test_civitai_unknown_version_and_bad_forms(oss, hub, tmp_path) -> None:
    spec = write_spec(tmp_path)
    missing = pull(spec, "civitai://424242")
    assert missing.exit_code == 4 and "No model version with id 424242" in missing.stdout + missing.stderr
    asked = len(hub.requests())
    bad = pull(spec, "civitai://abc")
    assert bad.exit_code == 2 and "civitai://VERSION_ID" in bad.stdout + bad.stderr
    assert len(hub.requests()) == asked  # refused offline
    assert oss.requests("InitiateMultipartUpload") == []


def test_storage_sync_pulls_ms_and_civitai_models(oss, hub, tmp_path) -> None:
    hub.add_civitai_version(4568, [{"name": "detail.safetensors", "data": DATA[:500_000]}], model_type="LORA")
    spec = write_spec(tmp_path)
    spec.write_text(spec.read_text() + "models:\n"
                    "  - kind: unet\n    source: ms://owner/flux/unet/flux_dev.safetensors\n"
                    "  - kind: loras\n    source: civitai://4568\n")
    done = run_cli("storage", "sync", "-f", str(spec), "--part-size", "1", "-o", "json")
    assert done.exit_code == 0, done.stdout + done.stderr
    assert oss.object_bytes(BUCKET, "p/models/unet/flux_dev.safetensors") == DATA
    assert oss.object_bytes(BUCKET, "p/models/loras/detail.safetensors") == DATA[:500_000]
    again = run_cli("storage", "sync", "-f", str(spec), "-o", "json")
    assert [i["action"] for i in again.json()["data"]["plan"]] == ["ok", "ok"]


@pytest.mark.parametrize("source,ok", [
    ("ms://owner/name/unet/model.safetensors@v1.0", True), ("civitai://128713", True),
    ("civitai://dreamshaper", False), ("ms://owner/model.safetensors", False),
])
def test_validate_checks_source_forms_offline(tmp_path: Path, source: str, ok: bool) -> None:
    spec = write_spec(tmp_path)
    spec.write_text(spec.read_text() + f"models:\n  - kind: checkpoints\n    source: {source}\n")
    res = run_cli("validate", "-f", str(spec))
    assert (res.exit_code == 0) is ok, res.stdout + res.stderr
    if not ok:
        text = res.stdout + res.stderr
        assert "models[0].source" in text and "civitai://VERSION_ID" in text and "Traceback" not in text


def test_a_wrong_token_is_not_printed_in_the_error(oss, hub, tmp_path, monkeypatch) -> None:
    hub.add_civitai_version(98, [{"name": "early.safetensors", "data": DATA[:200_000]}], early_access=True)
    wrong = "civitai_wrong_token_0123456789abcdef"
    monkeypatch.setenv("CIVITAI_API_TOKEN", wrong)
    monkeypatch.setenv("MODELSCOPE_API_TOKEN", wrong)
    spec = write_spec(tmp_path)
    for source in ("civitai://98", "ms://owner/private/vae/ae.safetensors@v1.0"):
        for args in (("--verbose", "models", "pull", source, "-f", str(spec)),
                     ("models", "pull", source, "-f", str(spec), "-o", "json")):
            res = run_cli(*args)
            assert res.exit_code == 4, res.stdout + res.stderr
            assert wrong not in res.stdout + res.stderr and "401" in res.stdout + res.stderr
    assert oss.requests("InitiateMultipartUpload") == []
