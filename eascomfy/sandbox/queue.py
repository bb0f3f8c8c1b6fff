"""An emulator of the EAS queue service of an Async service, for the unmodified ``eas-prediction``
``QueueClient`` (0.36) and plain HTTP clients.

One ``EasQueue`` per service holds two ``MessageQueue``s: the input queue at
``/api/predict/<service>`` and the sink at ``/api/predict/<service>/sink``. On either:

========================================  =====================================================
``POST ?<tags>[&_priority_=1]``           put; the body is the data, the query params are tags.
                                          Answers the index as text and the request id in
                                          ``X-Eas-Queueservice-Request-Id``.
``GET ?_index_&_length_&_timeout_``       get entries with index >= ``_index_`` (or the one put
``&_auto_delete_[&requestId][&<tags>]``   with ``requestId``), waiting up to ``_timeout_`` (``5s``,
                                          ``500ms``); 204 when nothing came. ``Accept:
                                          application/vnd.google.protobuf`` gets a
                                          ``DataFrameListProto``, ``_raw_=true`` the first entry's
                                          bare data, else ``[{"index","tags","data": base64,
                                          "message"}]``. ``_auto_delete_`` defaults to true.
``GET ?_attrs_=true`` (or a bare GET)     attributes, JSON of strings (``AttributesProto`` with
                                          the protobuf Accept).
``GET ?_search_=true&_index_=N``          ``{"IsPending": true, "WaitCount": n}`` while waiting,
                                          ``{"ConsumerId": uid, "IsPending": false}`` while held
                                          by a watcher; 404 when unknown.
``PUT ?_indexes_=1,2``                    commit: the entries are done and leave the queue.
``DELETE ?_indexes_=1,2``                 delete.
``DELETE ?_index_=N&_trunc_=true``        truncate: delete every entry below N.
``GET ?_watch_=true&_index_=N&_window_=W  websocket: one binary ``DataFrameProto`` frame per entry
&_auto_commit_=false[&_index_only_]``     (index >= N, tags matching any extra params), at most
                                          W uncommitted in flight per watcher; entries a watcher
                                          held uncommitted go back to the queue when it
                                          disconnects, for any watcher to get again.
========================================  =====================================================

Watchers compete for entries (a consumer group): each entry is in flight to one watcher at a time;
``_auto_commit_=true`` commits an entry as it is sent. Indexes start at 1 per queue. Given a
directory, both queues are kept on disk (``durable.QueueFiles``) and survive a restart.

Verified against eas-prediction's client and its tests: the URLs, query parameters, headers, the
protobuf messages, put's answer, ``stream.length``/``stream.lastEntry``, commit and auto-commit
emptying the queue. Guessed (unverified against EAS): the other attribute keys (``meta.name``,
``stream.firstEntry``), the bodies of commit/delete/truncate (``OK``), search's answer, a bare GET
answering the attributes, ``_auto_delete_`` defaulting to true, and watchers filtering by tags.
"""

from __future__ import annotations

import asyncio
import base64
import re
import threading
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Mapping

from aiohttp import web

from .durable import QueueFiles

__all__ = [
    "EasQueue",
    "Message",
    "MessageQueue",
    "PROTOBUF",
    "REQUEST_ID_HEADER",
    "Signal",
    "encode_attributes",
    "encode_data_frame",
    "encode_data_frame_list",
]

PROTOBUF = "application/vnd.google.protobuf"
REQUEST_ID_HEADER = "X-Eas-Queueservice-Request-Id"
CONSUMER_HEADER = "X-EAS-QueueService-Redis-Uid"
NOT_FOUND = "404 page not found"
MAX_WAIT = 60.0
_RESERVED = re.compile(r"^_.*_$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


# -- protobuf (package streaming, queueservice.proto), encoded by hand ------------------------------
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _delimited(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _string_map(number: int, mapping: Mapping[str, str]) -> bytes:
    return b"".join(
        _delimited(number, _delimited(1, str(k).encode()) + _delimited(2, str(v).encode()))
        for k, v in mapping.items()
    )


def encode_data_frame(index: int, tags: Mapping[str, str], data: bytes = b"", message: str = "") -> bytes:
    """``DataFrameProto{uint64 index=1; map<string,string> tags=2; bytes data=3; string message=4}``."""
    out = _varint(1 << 3) + _varint(index) if index else b""
    out += _string_map(2, tags)
    if data:
        out += _delimited(3, data)
    if message:
        out += _delimited(4, message.encode())
    return out


def encode_data_frame_list(frames: Iterable[bytes]) -> bytes:
    """``DataFrameListProto{repeated DataFrameProto index=1}`` from encoded frames."""
    return b"".join(_delimited(1, frame) for frame in frames)


def encode_attributes(attributes: Mapping[str, str]) -> bytes:
    """``AttributesProto{map<string,string> attributes=1}``."""
    return _string_map(1, attributes)


# -- the queues --------------------------------------------------------------------------------------
def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Signal:
    """A change counter coroutines can wait on. ``notify`` may be called from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: list[asyncio.Future[None]] = []
        self.version = 0

    def notify(self) -> None:
        with self._lock:
            self.version += 1
            waiters, self._waiters = self._waiters, []
        for future in waiters:
            try:
                future.get_loop().call_soon_threadsafe(_resolve, future)
            except RuntimeError:  # that loop is closed: nobody waits any more
                pass

    async def wait(self, version: int, timeout: float | None = None) -> bool:
        """Wait until the counter moved past ``version``: True, or False after ``timeout``."""
        with self._lock:
            if self.version != version:
                return True
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(future)
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            with self._lock:
                if future in self._waiters:
                    self._waiters.remove(future)


@dataclass
class Message:
    index: int
    data: bytes
    tags: dict[str, str]
    request_id: str
    path: str = ""  # the sub-path it was posted to (input queue), e.g. "/api_prompt"
    priority: int = 0
    message: str = ""

    def frame(self, index_only: bool = False) -> bytes:
        return encode_data_frame(self.index, self.tags, b"" if index_only else self.data, self.message)

    def to_json(self) -> dict[str, object]:
        return {"index": self.index, "tags": self.tags, "data": base64.b64encode(self.data).decode(),
                "message": self.message}


class MessageQueue:
    """One queue: entries by index, and which consumer holds each one uncommitted. Thread-safe.

    With ``files`` (``durable.QueueFiles``) every put is on disk before it is answered and every
    commit or delete removes it there; a new ``MessageQueue`` on the same files has every entry
    back, none held (EAS keeps queue data across restarts of its clients' connections; the
    sandbox keeps it across its own restarts, so a stopped ``eascomfy sandbox`` loses no job)."""

    def __init__(self, name: str, files: QueueFiles | None = None) -> None:
        self.name = name
        self.changed = Signal()
        self._lock = threading.Lock()
        self._entries: dict[int, Message] = {}
        self._holder: dict[int, str] = {}
        self._last_index = 0
        self._files = files
        if files is not None:
            self._last_index, saved = files.load()
            self._entries = {int(e["index"]): Message(**e) for e in saved}

    def put(self, data: bytes, tags: Mapping[str, str] | None = None, *, request_id: str | None = None,
            path: str = "", priority: int = 0) -> Message:
        with self._lock:
            self._last_index += 1
            message = Message(self._last_index, data, dict(tags or {}), request_id or str(uuid.uuid4()), path, priority)
            if self._files is not None:
                self._files.save(asdict(message))
            self._entries[message.index] = message
        self.changed.notify()
        return message

    def entries(self) -> list[Message]:
        with self._lock:
            return list(self._entries.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def read(self, start: int, length: int, request_id: str | None = None,
             tags: Mapping[str, str] | None = None) -> list[Message]:
        """Entries for a get: the one put with ``request_id``, else from index ``start`` on."""
        with self._lock:
            found = [m for m in self._entries.values()
                     if (m.request_id == request_id if request_id else m.index >= start) and _has_tags(m, tags)]
        return found[:max(length, 1)]

    def claim(self, consumer: str, start: int, limit: int, tags: Mapping[str, str] | None = None) -> list[Message]:
        """Hand up to ``limit`` entries nobody holds (priority first, then by index) to ``consumer``."""
        if limit <= 0:
            return []
        with self._lock:
            free = [m for m in self._entries.values()
                    if m.index not in self._holder and m.index >= start and _has_tags(m, tags)]
            free.sort(key=lambda m: (-m.priority, m.index))
            for message in free[:limit]:
                self._holder[message.index] = consumer
            return free[:limit]

    async def take(self, consumer: str) -> Message:
        """Wait for an entry and hold it for ``consumer`` (an in-process worker)."""
        while True:
            version = self.changed.version
            claimed = self.claim(consumer, 0, 1)
            if claimed:
                return claimed[0]
            await self.changed.wait(version)

    def held_by(self, consumer: str) -> int:
        with self._lock:
            return sum(1 for holder in self._holder.values() if holder == consumer)

    def release(self, consumer: str) -> None:
        """Give back what ``consumer`` held uncommitted, for another consumer to take."""
        with self._lock:
            for index in [i for i, holder in self._holder.items() if holder == consumer]:
                del self._holder[index]
        self.changed.notify()

    def remove(self, indexes: Iterable[int]) -> int:
        """Commit or delete: the entries leave the queue. Returns how many there were."""
        with self._lock:
            gone = [index for index in indexes if self._entries.pop(index, None) is not None]
            for index in gone:
                self._holder.pop(index, None)
            if self._files is not None:
                self._files.remove(gone)
        self.changed.notify()
        return len(gone)

    def truncate(self, below: int) -> int:
        with self._lock:
            doomed = [i for i in self._entries if i < below]
        return self.remove(doomed)

    def search(self, index: int) -> dict[str, object] | None:
        with self._lock:
            if index not in self._entries:
                return None
            holder = self._holder.get(index)
            if holder is not None:
                return {"ConsumerId": holder.split("/")[0], "IsPending": False}
            waiting = sum(1 for i in self._entries if i < index and i not in self._holder)
            return {"IsPending": True, "WaitCount": waiting}

    def attributes(self) -> dict[str, str]:
        with self._lock:
            indexes = list(self._entries)
        attributes = {"meta.name": self.name, "stream.length": str(len(indexes))}
        if indexes:
            attributes.update({"stream.firstEntry": str(min(indexes)), "stream.lastEntry": str(max(indexes))})
        return attributes


def _has_tags(message: Message, tags: Mapping[str, str] | None) -> bool:
    return not tags or all(message.tags.get(k) == v for k, v in tags.items())


# -- HTTP and websocket ------------------------------------------------------------------------------
def _duration(text: str) -> float:
    match = _DURATION.match(text.strip())
    if not match:
        raise web.HTTPBadRequest(text=f"invalid duration: {text!r}")
    return min(float(match[1]) * _UNITS[match[2]], MAX_WAIT)


def _int(query: Mapping[str, str], name: str, default: int) -> int:
    try:
        return int(query.get(name) or default)
    except ValueError:
        raise web.HTTPBadRequest(text=f"invalid {name}: {query.get(name)!r}") from None


def _indexes(query: Mapping[str, str]) -> list[int]:
    try:
        return [int(part) for part in query.get("_indexes_", "").split(",") if part.strip()]
    except ValueError:
        raise web.HTTPBadRequest(text=f"invalid _indexes_: {query.get('_indexes_')!r}") from None


def _flag(query: Mapping[str, str], name: str, default: bool = False) -> bool:
    return query.get(name, str(default)).lower() == "true"


def _tags(query: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in query.items() if not _RESERVED.match(k) and k != "requestId"}


def _wants_protobuf(request: web.Request) -> bool:
    return PROTOBUF in request.headers.get("Accept", "")


class EasQueue:
    """The input queue and the sink of one Async service, served on its endpoint; kept in
    ``directory`` (``input/`` and ``sink/``) when one is given, else in memory only."""

    def __init__(self, service: str, directory: Path | None = None) -> None:
        self.service = service
        self.input = MessageQueue(service, QueueFiles(directory / "input") if directory else None)
        self.sink = MessageQueue(f"{service}/sink", QueueFiles(directory / "sink") if directory else None)

    async def handle(self, request: web.Request, subpath: str) -> web.StreamResponse:
        """Serve ``/api/predict/<service><subpath>``: ``/sink`` is the sink; ``""`` (or ``/``) the input
        queue; a POST to any other sub-path (``/api_prompt``) is a put on the input queue that
        remembers the path for the worker."""
        if subpath.rstrip("/") == "/sink":
            return await serve(request, self.sink)
        if subpath in ("", "/"):
            return await serve(request, self.input)
        if request.method == "POST":
            return await serve(request, self.input, path=subpath)
        return web.Response(status=404, text=NOT_FOUND)


async def serve(request: web.Request, queue: MessageQueue, path: str = "") -> web.StreamResponse:
    """One queue request, by method and reserved query parameters."""
    query = request.query
    if request.method == "POST":
        message = queue.put(await request.read(), _tags(query), path=path, priority=_int(query, "_priority_", 0))
        return web.Response(text=str(message.index), headers={REQUEST_ID_HEADER: message.request_id})
    if request.method == "PUT":
        queue.remove(_indexes(query))
        return web.Response(text="OK")
    if request.method == "DELETE":
        if _flag(query, "_trunc_"):
            queue.truncate(_int(query, "_index_", 0))
        else:
            queue.remove(_indexes(query))
        return web.Response(text="OK")
    if request.method != "GET":
        return web.Response(status=405, text="method not allowed")
    if _flag(query, "_watch_"):
        return await _watch(request, queue)
    if _flag(query, "_search_"):
        found = queue.search(_int(query, "_index_", 0))
        return web.json_response(found) if found is not None else web.Response(status=404, text="index not found")
    if _flag(query, "_attrs_") or not any(_RESERVED.match(k) or k == "requestId" for k in query):
        attributes = queue.attributes()
        if _wants_protobuf(request):
            return web.Response(body=encode_attributes(attributes), content_type=PROTOBUF)
        return web.json_response(attributes)
    return await _get(request, queue)


async def _get(request: web.Request, queue: MessageQueue) -> web.StreamResponse:
    query = request.query
    start, length = _int(query, "_index_", 0), _int(query, "_length_", 1)
    request_id, tags = query.get("requestId"), _tags(query)
    deadline = asyncio.get_running_loop().time() + _duration(query.get("_timeout_", "0"))
    while True:
        version = queue.changed.version
        found = queue.read(start, length, request_id, tags)
        remaining = deadline - asyncio.get_running_loop().time()
        if found or remaining <= 0:
            break
        await queue.changed.wait(version, remaining)
    if _flag(query, "_auto_delete_", default=True):
        queue.remove(m.index for m in found)
    if not found:
        return web.Response(status=204)
    if _wants_protobuf(request):
        return web.Response(body=encode_data_frame_list(m.frame() for m in found), content_type=PROTOBUF)
    if _flag(query, "_raw_"):
        return web.Response(body=found[0].data)
    return web.json_response([m.to_json() for m in found])


async def _watch(request: web.Request, queue: MessageQueue) -> web.StreamResponse:
    ws = web.WebSocketResponse()
    if not ws.can_prepare(request).ok:
        return web.Response(status=400, text="a watch needs a websocket upgrade")
    await ws.prepare(request)
    query = request.query
    consumer = f"{request.headers.get(CONSUMER_HEADER, 'anonymous')}/{uuid.uuid4().hex}"
    feeder = asyncio.create_task(_feed(
        ws, queue, consumer, start=_int(query, "_index_", 0), window=max(_int(query, "_window_", 1), 1),
        auto_commit=_flag(query, "_auto_commit_"), index_only=_flag(query, "_index_only_"), tags=_tags(query)))
    try:
        async for _ in ws:  # the client only pings (answered by aiohttp) until it goes away
            pass
    finally:
        feeder.cancel()
        queue.release(consumer)
    return ws


async def _feed(ws: web.WebSocketResponse, queue: MessageQueue, consumer: str, *, start: int, window: int,
                auto_commit: bool, index_only: bool, tags: dict[str, str]) -> None:
    """Send entries as the window allows; wake on every change of the queue (put, commit, release)."""
    try:
        while not ws.closed:
            version = queue.changed.version
            room = window if auto_commit else window - queue.held_by(consumer)
            for message in queue.claim(consumer, start, room, tags):
                await ws.send_bytes(message.frame(index_only))
                if auto_commit:
                    queue.remove([message.index])
            await queue.changed.wait(version)
    except (ConnectionError, RuntimeError):  # the client went away mid-send; the handler releases
        await ws.close()
