"""OSS Signature V4 (issue 10 item 1): new accounts (2025-03-01) and new buckets (2025-09-01)
refuse V1 with 403, EC 0002-00000080. The emulator refuses V1 by default, as such a bucket does;
eascomfy must sign with V4 so every storage command works against it."""

from __future__ import annotations

import os
from pathlib import Path

import oss2
import pytest

from eascomfy.sandbox.credentials import SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET
from eascomfy.sandbox.fidelity import Fidelity
from eascomfy.sandbox.oss import OssSandbox
from tests.conftest import run_cli
from tests.storage.conftest import BUCKET, REGION, write_spec


def test_storage_commands_work_where_v1_is_refused(oss, env, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "v4")
    init = run_cli("storage", "init", "-f", str(spec), "-o", "json")
    assert init.exit_code == 0, init.stdout + init.stderr
    model = tmp_path / "m.safetensors"
    model.write_bytes(os.urandom(300 * 1024))
    pushed = run_cli("models", "push", str(model), "-k", "vae", "-f", str(spec), "--part-size", "1", "-o", "json")
    assert pushed.exit_code == 0, pushed.stdout + pushed.stderr
    assert oss.object_bytes(BUCKET, "v4/models/vae/m.safetensors") == model.read_bytes()
    big = tmp_path / "big.safetensors"
    big.write_bytes(os.urandom(2 * 1024 * 1024 + 5))  # multipart: initiate, parts, list, complete
    assert run_cli("models", "push", str(big), "-k", "vae", "-f", str(spec), "--part-size", "1").exit_code == 0
    assert oss.object_bytes(BUCKET, "v4/models/vae/big.safetensors") == big.read_bytes()
    oss.put_object(BUCKET, "v4/output/a.png", b"png")
    pulled = run_cli("outputs", "pull", "--dest", str(tmp_path / "dl"), "-f", str(spec), "-o", "json")
    assert pulled.exit_code == 0, pulled.stdout + pulled.stderr
    assert (tmp_path / "dl" / "a.png").read_bytes() == b"png"
    listed = run_cli("storage", "ls", "models/vae", "-f", str(spec), "-o", "json")
    assert {r["name"] for r in listed.json()["data"]} == {"models/vae/m.safetensors", "models/vae/big.safetensors"}
    # Nothing was refused on the way: every request was signed with V4.
    assert [r for r in oss.requests() if r.status == 403] == []


def _v1_bucket(sandbox: OssSandbox) -> oss2.Bucket:
    return oss2.Bucket(oss2.Auth(SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET), sandbox.url, BUCKET)


def test_emulator_refuses_v1_with_the_documented_error(oss) -> None:
    with pytest.raises(oss2.exceptions.OssError) as refused:
        _v1_bucket(oss).put_object("k", b"v")
    error = refused.value
    assert (error.status, error.code, error.ec) == (403, "AccessDenied", "0002-00000080")
    assert "V4" in error.message
    url = _v1_bucket(oss).sign_url("GET", "k", 60)  # a V1 presigned URL is V1 too
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as presigned:
        urllib.request.urlopen(url, timeout=5)
    assert presigned.value.code == 403 and b"<EC>0002-00000080</EC>" in presigned.value.read()
    v4 = oss2.Bucket(oss2.AuthV4(SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET), oss.url, BUCKET, region=REGION)
    v4.put_object("k", b"v")
    assert v4.get_object("k").read() == b"v"


def test_old_bucket_switch_accepts_v1(tmp_path: Path) -> None:
    with OssSandbox(tmp_path, region=REGION, fidelity=Fidelity(signature_v1="accepted")) as old:
        old.create_bucket(BUCKET)
        bucket = _v1_bucket(old)
        bucket.put_object("k", b"v1 still works here")
        assert bucket.get_object("k").read() == b"v1 still works here"
