"""A SHA-256 whose state can be saved in a checkpoint and picked up by another process.

Why: a pull verifies the source's published SHA-256 over the whole file, in order. After a crash
(kill -9, a dropped network) the parts already in OSS should not be downloaded again just to be
hashed, so the hash's running state goes into the upload's checkpoint with the parts it covers.
``hashlib`` cannot export its state; OpenSSL's ``SHA256_CTX`` (the low-level API, deprecated in
OpenSSL 3 but exported by every libcrypto 1.1/3.x) is a plain 112-byte struct that can be copied
out and back (FIPS 180-4 state: eight 32-bit words, the bit count, the pending block). ctypes
releases the GIL during each call, so hashing runs beside the transfers, as hashlib's does.

Where no libcrypto is found, ``ResumableSha256.create()`` returns None and the engine falls back
to reading the resumed parts again for the hash (correct, only slower).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

CTX_SIZE = 112  # sizeof(SHA256_CTX): h[8], Nl, Nh, data[16], num, md_len (openssl/sha.h)
_LIB: Any = None
_LOADED = False


def _lib() -> Any:
    global _LIB, _LOADED
    if not _LOADED:
        _LOADED = True
        for name in (ctypes.util.find_library("crypto"), "libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.dylib"):
            if not name:
                continue
            try:
                lib = ctypes.CDLL(name)
                for fn in (lib.SHA256_Init, lib.SHA256_Update, lib.SHA256_Final):
                    fn.restype = ctypes.c_int
                lib.SHA256_Update.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
                _LIB = lib
                break
            except (OSError, AttributeError):
                continue
    return _LIB


class ResumableSha256:
    """SHA-256 with ``state()`` (hex, for a JSON checkpoint) and ``from_state``."""

    def __init__(self, lib: Any, ctx: Any) -> None:
        self._lib, self._ctx = lib, ctx

    @classmethod
    def create(cls, state: str | None = None) -> "ResumableSha256 | None":
        """A fresh hash, or one resumed from ``state``; None when libcrypto is not available or
        ``state`` is not a saved state."""
        lib = _lib()
        if lib is None:
            return None
        ctx = ctypes.create_string_buffer(CTX_SIZE)
        if state is None:
            if lib.SHA256_Init(ctx) != 1:
                return None
        else:
            try:
                raw = bytes.fromhex(state)
            except ValueError:
                return None
            if len(raw) != CTX_SIZE:
                return None
            ctypes.memmove(ctx, raw, CTX_SIZE)
        return cls(lib, ctx)

    def update(self, data: memoryview | bytes | bytearray) -> None:
        view = memoryview(data).cast("B")
        if not len(view):
            return
        if view.readonly:
            buf: Any = ctypes.c_char_p(bytes(view))
        else:
            buf = (ctypes.c_char * len(view)).from_buffer(view)
        self._lib.SHA256_Update(self._ctx, buf, ctypes.c_size_t(len(view)))

    def state(self) -> str:
        return self._ctx.raw.hex()

    def hexdigest(self) -> str:
        ctx = ctypes.create_string_buffer(self._ctx.raw, CTX_SIZE)  # Final consumes the context
        out = ctypes.create_string_buffer(32)
        self._lib.SHA256_Final(out, ctx)
        return out.raw.hex()
