"""The resumable SHA-256 agrees with hashlib across a save and a restore in another object, for
sizes around the 64-byte block boundary (where a wrong pending-block copy would show)."""

from __future__ import annotations

import hashlib
import os

import pytest

from eascomfy.storage.resumable_hash import ResumableSha256


@pytest.mark.parametrize("split", [0, 1, 55, 63, 64, 65, 1000, 4096 + 17])
def test_saved_and_restored_state_gives_hashlibs_digest(split: int) -> None:
    data = os.urandom(10_000)
    first = ResumableSha256.create()
    if first is None:
        pytest.skip("no libcrypto here: the engine re-reads resumed parts instead")
    first.update(memoryview(bytearray(data[:split])))
    resumed = ResumableSha256.create(first.state())
    assert resumed is not None
    resumed.update(data[split:])  # read-only bytes work too
    assert resumed.hexdigest() == hashlib.sha256(data).hexdigest()
    assert first.hexdigest() == hashlib.sha256(data[:split]).hexdigest()  # a digest does not end the hash


def test_a_state_that_is_not_one_is_refused() -> None:
    if ResumableSha256.create() is None:
        pytest.skip("no libcrypto here")
    assert ResumableSha256.create("zz") is None
    assert ResumableSha256.create("00" * 5) is None
