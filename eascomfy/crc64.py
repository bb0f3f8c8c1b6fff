"""CRC-64 as OSS computes it for ``x-oss-hash-crc64ecma`` (used by the uploader and the OSS sandbox).

This is CRC-64/XZ (a.k.a. CRC-64/GO-ECMA): the ECMA-182 polynomial, reflected, with the register
initialised to all ones and the result XORed with all ones. ``crc64(b"123456789")`` is
``0x995DC9BBDF1939FA``; the empty input gives 0. OSS sends the value as an unsigned decimal string.

The fastest implementation present does the byte loop, each checked against the test vector when
loaded:

1. ``anycrc`` (a dependency; PyPI ``anycrc``, its ``CRC64-XZ`` model): carry-less multiplication
   (PCLMULQDQ/PMULL) in C, about 14 GB/s here, some 30 times crcmod's C extension
   (``bench/upload.py`` prints both);
2. crcmod's C extension (``crcmod._crcfunext``), the code ``oss2.utils.Crc64`` uses (oss2 depends
   on crcmod), about 450 MB/s;
3. a table-driven pure Python loop (correct, two orders of magnitude slower than 2).

``IMPLEMENTATION`` names the one in use. All three chain the same way: pass the CRC of the bytes
before as ``crc`` to continue a stream, and they agree bit for bit (tests/storage/test_crc64.py).

``combine(crc_a, crc_b, len_b)`` gives the CRC of ``a + b`` from the CRCs of ``a`` and ``b`` without
reading the data (zlib's ``crc32_combine`` method: multiply by x^(8*len_b) modulo the polynomial);
anycrc's own ``combine`` is used when present.
"""

from __future__ import annotations

import sys
from typing import Callable

__all__ = ["Crc64", "combine", "crc64", "IMPLEMENTATION", "USING_C_EXTENSION"]

POLY = 0x42F0E1EBA9EA3693  # ECMA-182, normal form
POLY_REFLECTED = 0xC96C5795D7870F42
MASK = 0xFFFFFFFFFFFFFFFF
_TOP_BIT = 1 << 63  # x^0 in the reflected representation


def _make_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ POLY_REFLECTED if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _make_table()
_CHECK = (b"123456789", 0x995DC9BBDF1939FA)


def _crc64_python(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    table = _TABLE
    register = crc ^ MASK
    for byte in bytes(data):
        register = table[(register ^ byte) & 0xFF] ^ (register >> 8)
    return register ^ MASK


def _load_anycrc() -> tuple[Callable[..., int], Callable[[int, int, int], int]] | None:
    try:
        import anycrc  # type: ignore[import-untyped]

        model = anycrc.Model("CRC64-XZ")
        # anycrc's ``init`` argument is the CRC of the bytes before (0 for none), as ``crc64`` below.
        if model.calc(_CHECK[0]) != _CHECK[1] or model.calc(_CHECK[0][4:], model.calc(_CHECK[0][:4])) != _CHECK[1]:
            return None
    except Exception:  # missing, or a build for another CPU: the next implementation takes over
        return None
    return model.calc, model.combine


def _load_crcmod() -> Callable[..., int] | None:
    try:
        import crcmod  # type: ignore[import-untyped]
    except ImportError:
        return None
    if not getattr(sys.modules.get("crcmod.crcmod"), "_usingExtension", False):
        return None
    # crcmod's ``crc`` argument is the previous CRC value, so calls chain like ``crc64`` below.
    fun: Callable[..., int] = crcmod.mkCrcFun((1 << 64) | POLY, initCrc=0, rev=True, xorOut=MASK)
    return fun if fun(_CHECK[0]) == _CHECK[1] else None


_ANYCRC = _load_anycrc()
_CRCMOD = _load_crcmod() if _ANYCRC is None else None
_C_CRC64: Callable[..., int] | None = _ANYCRC[0] if _ANYCRC else _CRCMOD
IMPLEMENTATION = "anycrc" if _ANYCRC else "crcmod" if _CRCMOD else "python"
USING_C_EXTENSION = _C_CRC64 is not None


def crc64(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC of ``data``; pass the CRC of the preceding bytes as ``crc`` to continue a stream."""
    if _C_CRC64 is not None:
        return _C_CRC64(data, crc)
    return _crc64_python(data, crc)


class Crc64:
    """Streaming form: ``update()`` chunks, read ``value``."""

    def __init__(self, crc: int = 0) -> None:
        self.value = crc

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.value = crc64(data, self.value)


# -- combine ------------------------------------------------------------------------------------


def _multiply_mod_p(a: int, b: int) -> int:
    """a * b modulo the polynomial, both in the reflected representation (zlib's multmodp)."""
    product = 0
    bit = _TOP_BIT
    while a:
        if a & bit:
            product ^= b
            a ^= bit
        bit >>= 1
        b = (b >> 1) ^ POLY_REFLECTED if b & 1 else b >> 1
    return product


def _powers_of_x() -> list[int]:
    """x^(2^k) modulo the polynomial for k = 0..63."""
    powers = [_TOP_BIT >> 1]  # x^1
    for _ in range(63):
        powers.append(_multiply_mod_p(powers[-1], powers[-1]))
    return powers


_X_POW_2K = _powers_of_x()


def _x_pow_8n(n: int) -> int:
    """x^(8*n) modulo the polynomial."""
    result = _TOP_BIT
    k = 3  # 8 * n = n * 2^3
    while n:
        if n & 1:
            result = _multiply_mod_p(_X_POW_2K[k & 63], result)
        n >>= 1
        k += 1
    return result


def _combine_python(crc_a: int, crc_b: int, len_b: int) -> int:
    if len_b <= 0:
        return crc_a
    return _multiply_mod_p(_x_pow_8n(len_b), crc_a) ^ crc_b


def combine(crc_a: int, crc_b: int, len_b: int) -> int:
    """CRC of the concatenation ``a + b``, given ``crc64(a)``, ``crc64(b)`` and ``len(b)``."""
    if len_b <= 0:
        return crc_a
    if _ANYCRC is not None:
        return _ANYCRC[1](crc_a, crc_b, len_b)
    return _combine_python(crc_a, crc_b, len_b)
