"""Object bytes between the socket and the store: request bodies stream to disk in ~1 MiB
chunks while CRC64 and MD5 are computed, object reads stream back (whole or a ``Range``), so
nothing holds a whole object in memory.
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Awaitable

from aiohttp import web

from .errors import OssError
from .store import BodyWriter, ObjectReader, ReceivedBody

CHUNK = 1 << 20
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


async def receive_body(request: web.Request, writer: BodyWriter) -> ReceivedBody:
    """Stream the request body into ``writer`` in ~1 MiB chunks.

    Disk writes and hashing run on a private worker thread, so the loop reads the next chunk from
    the socket while the previous one is written (at most one chunk in flight). On any failure,
    including the client going away, the partial file is removed.
    """
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="oss-body")
    pending: Awaitable[None] | None = None
    buffered: list[bytes] = []
    size = 0
    try:
        async for data in request.content.iter_any():
            buffered.append(data)
            size += len(data)
            if size >= CHUNK:
                if pending is not None:
                    await pending
                pending = loop.run_in_executor(executor, writer.write, b"".join(buffered))
                buffered, size = [], 0
        if pending is not None:
            await pending
        return await loop.run_in_executor(executor, writer.finish, b"".join(buffered))
    except BaseException:
        executor.submit(writer.discard)  # queued after any write still running
        raise
    finally:
        executor.shutdown(wait=False)


async def send_object(response: web.StreamResponse, reader: ObjectReader, first: int, length: int) -> None:
    """Write ``length`` bytes from ``first`` to the response; disk reads run in the default executor."""
    loop = asyncio.get_running_loop()
    chunks = reader.chunks(first, length, CHUNK)
    while (chunk := await loop.run_in_executor(None, next, chunks, None)) is not None:
        await response.write(chunk)


def parse_range(value: str, size: int, strict: bool) -> tuple[int, int] | None:
    """(first, last) byte of a ``Range: bytes=a-b`` request; None serves the whole object.

    Like OSS by default, an invalid or unsatisfiable range is ignored (200, whole object); with
    ``x-oss-range-behavior: standard`` an unsatisfiable one is 416 InvalidRange. An end past the
    object is clamped to its last byte.
    """
    match = _RANGE.fullmatch(value.strip())
    if match is None or match[1] == match[2] == "":
        return None
    if match[1] == "":
        first, last = max(size - int(match[2]), 0), size - 1
        satisfiable = int(match[2]) > 0 and size > 0
    else:
        first = int(match[1])
        last = min(int(match[2]), size - 1) if match[2] else size - 1
        if match[2] and int(match[2]) < first:
            return None
        satisfiable = first < size
    if not satisfiable:
        if strict:
            raise OssError(416, "InvalidRange", "The requested range is not satisfiable.")
        return None
    return first, last
