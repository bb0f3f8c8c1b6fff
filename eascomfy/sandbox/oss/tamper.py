"""Data faults: OSS storing or reporting bytes other than those sent, so a client's end-to-end
CRC64 check is exercised for real. A test switches them on through ``OssSandbox.data_faults``
(``add(kind, action=..., times=...)``, matched like the server's faults by action, method, path):

- ``corrupt``: one byte of the request body is flipped as it arrives (a bit flip on the way),
  before the part or object is stored; ETag and ``x-oss-hash-crc64ecma`` then describe the stored,
  corrupted bytes, as OSS's would. PutObject and UploadPart.
- ``wrong_crc``: the data is stored intact, but the answer's ``x-oss-hash-crc64ecma`` is off by
  one. PutObject, UploadPart, CompleteMultipartUpload, HeadObject.
- ``late_answer``: the operation is carried out, then its answer waits ``delay`` seconds (a slow
  way back): a client interrupted meanwhile does not know the operation took place. Any action.

They are separate from ``SandboxServer``'s transport faults (``status``, ``drop``...), which act
before the emulator sees a request.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from typing import Any, Callable

from aiohttp import web

from ... import crc64 as crc
from ..server import Fault
from .store import ReceivedBody
from .target import action_of

CRC_HEADER = "x-oss-hash-crc64ecma"
KINDS = ("corrupt", "wrong_crc", "late_answer")


class DataFaults:
    """The active data faults of one emulator (thread-safe); the first match of a kind wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Fault] = []

    def add(self, kind: str, *, action: str | None = None, times: int = 1, method: str | None = None,
            path: str | None = None, delay: float = 0.0) -> Fault:
        if kind not in KINDS:
            raise ValueError(f"unknown data fault {kind!r}; expected one of {', '.join(KINDS)}")
        fault = Fault(kind, times=times, action=action, method=method, path=path, delay=delay)
        with self._lock:
            self._items.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def take(self, request: web.Request, kind: str) -> Fault | None:
        action = action_of(request)
        with self._lock:
            for fault in self._items:
                if fault.kind == kind and fault.matches(request.method, request.path, action):
                    fault.hits += 1
                    return fault
        return None

    # -- the hooks -----------------------------------------------------------------------------
    def received(self, request: web.Request, body: ReceivedBody) -> ReceivedBody:
        """The body as it will be stored: one byte flipped when a ``corrupt`` fault matches."""
        if body.size == 0 or not self.take(request, "corrupt"):
            return body
        with open(body.path, "r+b") as fh:
            fh.seek(body.size // 2)
            flipped = fh.read(1)[0] ^ 0x01
            fh.seek(body.size // 2)
            fh.write(bytes([flipped]))
        value, md5 = 0, hashlib.md5()
        with open(body.path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                value = crc.crc64(chunk, value)
                md5.update(chunk)
        return ReceivedBody(body.path, body.size, value, md5.digest())

    @property
    def middleware(self) -> Any:
        """An aiohttp middleware for the faults on answers: ``wrong_crc`` and ``late_answer``."""

        @web.middleware
        async def answers(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
            response = await handler(request)
            if CRC_HEADER in response.headers and not response.prepared and self.take(request, "wrong_crc"):
                response.headers[CRC_HEADER] = str(int(response.headers[CRC_HEADER]) ^ 1)
            late = self.take(request, "late_answer")
            if late is not None:
                await asyncio.sleep(late.delay)  # the work is done; a client gone meanwhile changes nothing
            return response

        return answers
