"""CRC-64 as OSS computes it for ``x-oss-hash-crc64ecma`` (used by the uploader and the OSS sandbox).

This is CRC-64/XZ (a.k.a. CRC-64/GO-ECMA): the ECMA-182 polynomial, reflected, with the register
initialised to all ones and the result XORed with all ones. ``crc64(b"123456789")`` is
``0x995DC9BBDF1939FA``; the empty input gives 0. OSS sends the value as an unsigned decimal string.

The byte loop runs in crcmod's C extension (``crcmod._crcfunext``), the same code ``oss2.utils.Crc64``
uses; oss2 depends on crcmod, so it is normally present. Without the extension a table-driven pure
Python loop takes over (correct, but two orders of magnitude slower).

``combine(crc_a, crc_b, len_b)`` gives the CRC of ``a + b`` from the CRCs of ``a`` and ``b`` without
reading the data (zlib's ``crc32_combine`` method: multiply by x^(8*len_b) modulo the polynomial).
"""

from __future__ import annotations

import sys
from typing import Callable

__all__ = ["Crc64", "combine", "crc64", "USING_C_EXTENSION"]

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


def _crc64_python(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    table = _TABLE
    register = crc ^ MASK
    for byte in bytes(data):
        register = table[(register ^ byte) & 0xFF] ^ (register >> 8)
    return register ^ MASK


def _load_c_implementation() -> Callable[..., int] | None:
    try:
        import crcmod  # type: ignore[import-untyped]
    except ImportError:
        return None
    if not getattr(sys.modules.get("crcmod.crcmod"), "_usingExtension", False):
        return None
    # crcmod's ``crc`` argument is the previous CRC value, so calls chain like ``crc64`` below.
    fun: Callable[..., int] = crcmod.mkCrcFun((1 << 64) | POLY, initCrc=0, rev=True, xorOut=MASK)
    return fun


_C_CRC64 = _load_c_implementation()
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


def combine(crc_a: int, crc_b: int, len_b: int) -> int:
    """CRC of the concatenation ``a + b``, given ``crc64(a)``, ``crc64(b)`` and ``len(b)``."""
    if len_b <= 0:
        return crc_a
    return _multiply_mod_p(_x_pow_8n(len_b), crc_a) ^ crc_b
