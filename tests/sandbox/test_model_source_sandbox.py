"""The model-source emulator on the wire: redirects with the hash headers, ranges, tokens, 429."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest

from eascomfy.sandbox.models import ModelSourceSandbox

DATA = os.urandom(300_000)


@pytest.fixture
def hub(tmp_path: Path):
    with ModelSourceSandbox(tmp_path) as sandbox:
        sandbox.add_file("org/repo", "vae/model.safetensors", DATA)
        sandbox.add_file("org/gated", "m.safetensors", DATA, gated=True)
        sandbox.tokens.add("hf_good")
        yield sandbox


def test_resolve_redirects_to_another_origin_with_the_hash_headers(hub) -> None:
    r = httpx.head(f"{hub.url}/org/repo/resolve/main/vae/model.safetensors")
    assert r.status_code == 302
    assert r.headers["X-Linked-Etag"] == f'"{hashlib.sha256(DATA).hexdigest()}"'
    assert r.headers["X-Linked-Size"] == str(len(DATA)) and len(r.headers["X-Repo-Commit"]) == 40
    assert r.headers["Location"].startswith(hub.cdn_url) and hub.cdn_url != hub.url
    cdn = httpx.get(r.headers["Location"], headers={"Range": "bytes=10-19"})
    assert (cdn.status_code, cdn.content, cdn.headers["Content-Range"]) == (206, DATA[10:20], f"bytes 10-19/{len(DATA)}")
    assert cdn.headers["ETag"].strip('"') != hashlib.sha256(DATA).hexdigest()
    assert httpx.get(r.headers["Location"], headers={"Range": f"bytes={len(DATA)}-"}).status_code == 416
    assert httpx.get(r.headers["Location"]).content == DATA


def test_errors_carry_the_hub_error_codes(hub) -> None:
    missing = httpx.get(f"{hub.url}/org/repo/resolve/main/nope.bin")
    assert (missing.status_code, missing.headers["X-Error-Code"]) == (404, "EntryNotFound")
    assert "X-Repo-Commit" in missing.headers
    assert httpx.get(f"{hub.url}/org/none/resolve/main/x").headers["X-Error-Code"] == "RepoNotFound"
    gated = httpx.get(f"{hub.url}/org/gated/resolve/main/m.safetensors")
    assert (gated.status_code, gated.headers["X-Error-Code"]) == (401, "GatedRepo")
    ok = httpx.get(f"{hub.url}/org/gated/resolve/main/m.safetensors", headers={"Authorization": "Bearer hf_good"})
    assert ok.status_code == 302


def test_throttle_fault_is_a_429_with_retry_after_and_switches(hub) -> None:
    hub.faults.add(kind="throttle", action="Resolve")
    r = httpx.get(f"{hub.url}/org/repo/resolve/main/vae/model.safetensors")
    assert (r.status_code, r.headers["Retry-After"]) == (429, "1")
    httpx.post(f"{hub.url}/_sandbox/models", json={"lie_about_hash": True, "ignore_range": True})
    r = httpx.head(f"{hub.url}/org/repo/resolve/main/vae/model.safetensors")
    assert r.headers["X-Linked-Etag"] != f'"{hashlib.sha256(DATA).hexdigest()}"'
    assert httpx.get(r.headers["Location"], headers={"Range": "bytes=0-9"}).status_code == 200
    url = hub.add_plain("dl/x.safetensors", b"abc")
    assert httpx.get(url).content == b"abc"
