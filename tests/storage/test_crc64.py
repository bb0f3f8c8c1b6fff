"""CRC-64/XZ through the fastest implementation (issue 14, "Faster verification"): anycrc is a
dependency and is the one in use; it agrees bit for bit with crcmod's C extension (what oss2
uses), the pure Python fallback and oss2's own ``Crc64``, for streams and for combined parts."""

from __future__ import annotations

import random

import pytest
from oss2.utils import Crc64 as Oss2Crc64

from eascomfy import crc64 as c

VECTORS = [
    (b"", 0),
    (b"123456789", 0x995DC9BBDF1939FA),  # the CRC-64/XZ check value
    (b"a", 0x330284772E652B05),
    (b"\x00" * 32, 0xC95AF8617CD5330C),
]


def _oss2(data: bytes) -> int:
    reference = Oss2Crc64()
    reference.update(data)
    return reference.crc


def test_anycrc_is_the_implementation_in_use() -> None:
    assert c.IMPLEMENTATION == "anycrc" and c.USING_C_EXTENSION


@pytest.mark.parametrize("data,expected", VECTORS)
def test_vectors(data: bytes, expected: int) -> None:
    assert c.crc64(data) == expected
    assert c._crc64_python(data) == expected
    assert c._load_crcmod()(data) == expected
    assert _oss2(data) == expected


def test_all_implementations_agree_on_random_streams() -> None:
    rng = random.Random(14)
    crcmod = c._load_crcmod()
    for size in (1, 7, 8, 15, 16, 63, 64, 255, 4096, 65537, 1 << 20):
        data = rng.randbytes(size)
        whole = c.crc64(data)
        assert whole == crcmod(data) == _oss2(data)
        if size <= 65537:
            assert whole == c._crc64_python(data)
        cut = rng.randrange(size + 1)
        assert c.crc64(data[cut:], c.crc64(data[:cut])) == whole  # a stream in two chunks
        assert c.crc64(memoryview(data)[cut:], c.crc64(bytearray(data[:cut]))) == whole
        stream = c.Crc64()
        for start in range(0, size, 1000):
            stream.update(data[start:start + 1000])
        assert stream.value == whole


def test_combine_of_parts_matches_the_whole_and_oss2() -> None:
    rng = random.Random(64)
    data = rng.randbytes(3 * 1024 * 1024 + 12345)
    for part_size in (100 * 1024, 1 << 20, 3 * 1024 * 1024):
        parts = [data[i:i + part_size] for i in range(0, len(data), part_size)]
        combined = python = oss2 = c.crc64(parts[0])
        for part in parts[1:]:
            crc = c.crc64(part)
            combined = c.combine(combined, crc, len(part))
            python = c._combine_python(python, crc, len(part))
            oss2 = Oss2Crc64().combine(oss2, crc, len(part))
        assert combined == python == oss2 == c.crc64(data)
    assert c.combine(12345, 0, 0) == 12345


def test_combine_agrees_for_sizes_nobody_reads() -> None:
    rng = random.Random(5)
    for length in (1, 10_000, 16 << 20, 5 << 30, 48_828_125_000):  # up to OSS's 48.8 TB object limit
        a, b = rng.getrandbits(64), rng.getrandbits(64)
        assert c.combine(a, b, length) == c._combine_python(a, b, length) == Oss2Crc64().combine(a, b, length)
