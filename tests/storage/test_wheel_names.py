"""``wheels push 'bad name;rm.whl'`` uploaded the file and wrote a ``wheels:`` entry the spec's own
validator then rejects (issue 11 item 13). Names are checked with the schema's rule for
``wheels`` items before anything is uploaded or written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.storage.conftest import write_spec

UPLOADS = ("PutObject", "UploadPart", "InitiateMultipartUpload")


@pytest.mark.parametrize("name", ["bad name;rm.whl", "pkg$(id)-1.0-py3-none-any.whl", "ｐｋｇ-1.0-py3-none-any.whl",
                                  "pkg-1.0-py3-none-any.whl\u200b.whl", "'quoted'.whl"])
def test_wheels_push_refuses_names_the_spec_rejects(oss, env, tmp_path: Path, name: str) -> None:
    good = tmp_path / "ok-1.0-py3-none-any.whl"
    good.write_bytes(b"PK good")
    wheel = tmp_path / name
    wheel.write_bytes(b"PK wheel")
    spec = write_spec(tmp_path)
    before = spec.read_text()
    result = run_cli("wheels", "push", str(good), str(wheel), "-f", str(spec))
    assert result.exit_code == 2, result.stdout + result.stderr
    assert "not a valid wheel file name" in result.stderr and repr(name) in result.stderr
    assert spec.read_text() == before  # nothing written
    assert [r for r in oss.requests() if r.action in UPLOADS] == []  # nothing uploaded, not even the good one
    assert run_cli("validate", "-f", str(spec)).exit_code == 0


def test_a_valid_name_still_goes_in(oss, env, tmp_path: Path) -> None:
    wheel = tmp_path / "insightface-0.7.3+cu121-cp311-cp311-linux_x86_64.whl"
    wheel.write_bytes(b"PK wheel")
    spec = write_spec(tmp_path)
    result = run_cli("wheels", "push", str(wheel), "-f", str(spec), "-o", "json")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.json()["data"]["added_to_spec"] == [wheel.name]
    assert run_cli("validate", "-f", str(spec)).exit_code == 0
