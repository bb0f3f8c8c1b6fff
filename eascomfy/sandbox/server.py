"""What every sandbox emulator shares: a loopback aiohttp server on its own thread, a request
recorder, and fault injection.

An emulator is an ``aiohttp.web.Application`` built by a factory plus an ``error_response``
callable that renders an error in that protocol's own shape (EAS answers JSON, OSS answers XML).
``SandboxServer`` runs it on 127.0.0.1 (port 0 picks a free one), records every request it got,
and applies the faults a test switched on, before the emulator sees the request.

One server may listen on several ports, one per *site* (the emulators use one site per region:
on the real cloud the endpoint is the region). ``site_of(request)`` tells which port a request
came in on; ``url_for(site)`` gives that port's URL; the first site is the default.

Control endpoints (unsigned, loopback only) let a test in another process drive the same things:
``GET /_sandbox/requests``, ``DELETE /_sandbox/requests``, ``POST /_sandbox/faults`` (a JSON
``Fault``), ``DELETE /_sandbox/faults``; an emulator adds its own (``controls``), e.g.
``/_sandbox/fidelity``.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from aiohttp import web

ErrorResponder = Callable[[web.Request, int, str, str], web.StreamResponse]
Control = Callable[[web.Request], Awaitable[web.StreamResponse]]
CONTROL_PREFIX = "/_sandbox/"


@dataclass
class Fault:
    """One injected fault.

    kind: ``status`` (answer ``status``/``code`` instead of serving), ``throttle`` (code
    ``Throttling.User``, status 400 unless set; the emulator's error responder shapes it), ``slow``
    (sleep ``delay`` seconds plus ``per_mib`` seconds per MiB of request body — a round trip and a
    per-connection bandwidth, as over a real network — then serve normally), ``drop`` (close the connection without an
    answer), ``drop_body`` (serve, but cut the connection after part of the request body was read),
    ``drop_after`` (serve the request fully, then cut the connection before the answer is written:
    the server acted, the client never learns it), ``endless`` (answer 200 and stream zeros for
    ever, 64 KiB every ``delay`` seconds, default 0.01: a download that never ends).
    ``retry_after``: for ``throttle`` on the EAS emulator, the ``x-acs-retry-after`` value sent
    instead of the one-second default (e.g. a huge one, to see that a client caps its wait).
    ``times``: how many matching requests it hits; -1 for every one.
    ``method``/``path``/``action``: match filters (``path`` is a regex searched in the path;
    ``action`` matches the emulator's action name, e.g. ``CreateService`` or ``UploadPart``).
    """

    kind: str
    status: int = 500
    code: str = "InternalError"
    message: str = "injected fault"
    delay: float = 0.0
    per_mib: float = 0.0
    times: int = 1
    method: str | None = None
    path: str | None = None
    action: str | None = None
    retry_after: str | None = None
    hits: int = 0

    def matches(self, method: str, path: str, action: str | None) -> bool:
        if self.times != -1 and self.hits >= self.times:
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        if self.path and not re.search(self.path, path):
            return False
        if self.action and self.action != action:
            return False
        return True


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    action: str | None
    status: int = 0
    body_size: int = 0
    time: float = field(default_factory=time.time)
    fault: str | None = None
    site: str = ""  # the port it came in on (the region, for the EAS and OSS emulators)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# request[FAULT_KEY]: the fault an error responder is answering for
FAULT_KEY = web.RequestKey("sandbox_fault", Fault)


class Recorder:
    """Thread-safe list of what the server got. Never holds headers, so never holds a secret."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[RecordedRequest] = []

    def add(self, item: RecordedRequest) -> None:
        with self._lock:
            self._items.append(item)

    def all(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def actions(self) -> list[str | None]:
        return [r.action for r in self.all()]


class Faults:
    """Thread-safe list of active faults; the first match wins and counts a hit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Fault] = []

    def add(self, fault: Fault | None = None, **kwargs: Any) -> Fault:
        fault = fault or Fault(**kwargs)
        with self._lock:
            self._items.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def take(self, method: str, path: str, action: str | None) -> Fault | None:
        with self._lock:
            for fault in self._items:
                if fault.matches(method, path, action):
                    fault.hits += 1
                    return fault
        return None


def _default_action(request: web.Request) -> str | None:
    return None


class SandboxServer:
    """Run an emulator's aiohttp application on 127.0.0.1 in a background thread.

    ``app_factory(server)`` builds the application (it may keep ``server`` to reach the recorder,
    the faults or its own URL). ``action_of(request)`` names the operation for records and fault
    matching. ``error_response(request, status, code, message)`` renders a protocol error.
    """

    def __init__(
        self,
        app_factory: Callable[["SandboxServer"], web.Application],
        error_response: ErrorResponder,
        action_of: Callable[[web.Request], str | None] = _default_action,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "sandbox",
        controls: dict[str, Control] | None = None,
        sites: dict[str, int] | None = None,
    ) -> None:
        self.name = name
        self.controls = dict(controls or {})
        self.host = host
        # site -> port (0 until started, when a free one was asked for); the first is the default
        self.ports: dict[str, int] = dict(sites) if sites else {"": port}
        self.port = next(iter(self.ports.values()))
        self._sites_by_port: dict[int, str] = {}
        self.recorder = Recorder()
        self.faults = Faults()
        self._app_factory = app_factory
        self._error_response = error_response
        self._action_of = action_of
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The default (first) site's URL."""
        return f"http://{self.host}:{self.port}"

    def url_for(self, site: str) -> str:
        return f"http://{self.host}:{self.ports[site]}"

    def site_of(self, request: web.Request) -> str:
        """The site whose port ``request`` came in on (the default one if that cannot be told)."""
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        port = sockname[1] if isinstance(sockname, tuple) and len(sockname) > 1 else None
        return self._sites_by_port.get(port, next(iter(self.ports)))  # type: ignore[arg-type]

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "server not started"
        return self._loop

    def start(self) -> "SandboxServer":
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-server", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._startup_error is not None:
            raise self._startup_error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start_site())
        except BaseException as exc:  # reported to start()
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
        loop.close()

    async def _start_site(self) -> None:
        app = self._app_factory(self)
        app.middlewares.insert(0, self._middleware)
        app.router.add_route("*", CONTROL_PREFIX + "{what}", self._control)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        for name, port in list(self.ports.items()):
            site = web.TCPSite(self._runner, self.host, port, reuse_address=True)
            await site.start()
            sockets = site._server.sockets  # type: ignore[union-attr]
            self.ports[name] = sockets[0].getsockname()[1]
            self._sites_by_port[self.ports[name]] = name
        self.port = next(iter(self.ports.values()))

    def stop(self) -> None:
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)
        self._loop = None

    def call(self, coro: Awaitable[Any], timeout: float = 30) -> Any:
        """Run a coroutine on the server's loop from another thread and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def __enter__(self) -> "SandboxServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- middleware: record, then fault, then serve ------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return await handler(request)
        action = self._action_of(request)
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query={k: v for k, v in request.query.items()},
            action=action,
            body_size=request.content_length or 0,
            site=self.site_of(request),
        )
        self.recorder.add(record)
        fault = self.faults.take(request.method, request.path, action)
        try:
            if fault is not None:
                record.fault = fault.kind
                if fault.kind == "slow":
                    await asyncio.sleep(fault.delay + fault.per_mib * (request.content_length or 0) / 2**20)
                elif fault.kind == "drop":
                    return _drop(request)
                elif fault.kind == "drop_body":
                    # Read part of the body so the client is mid-upload, then cut the connection.
                    await request.content.read(64 * 1024)
                    return _drop(request)
                elif fault.kind == "drop_after":
                    resp = await handler(request)
                    record.status = resp.status
                    return _drop(request)
                elif fault.kind == "endless":
                    record.status = 200
                    return await _endless(request, fault.delay or 0.01)
                elif fault.kind in ("status", "throttle"):
                    # The emulator's error responder shapes a throttling answer the way its
                    # protocol's clients recognise it (EAS: Throttling.User + x-acs-retry-after).
                    if fault.kind == "throttle":
                        status, code = (fault.status if fault.status != 500 else 400), "Throttling.User"
                    else:
                        status, code = fault.status, fault.code
                    request[FAULT_KEY] = fault  # the responder may read more of it (retry_after)
                    resp = self._error_response(request, status, code, fault.message)
                    record.status = resp.status
                    return resp
            resp = await handler(request)
            record.status = resp.status
            return resp
        except web.HTTPException as exc:
            record.status = exc.status
            raise

    async def _control(self, request: web.Request) -> web.StreamResponse:
        what = request.match_info["what"]
        if what == "requests":
            if request.method == "DELETE":
                self.recorder.clear()
                return web.json_response({"ok": True})
            return web.json_response([r.to_dict() for r in self.recorder.all()])
        if what == "faults":
            if request.method == "DELETE":
                self.faults.clear()
                return web.json_response({"ok": True})
            if request.method == "POST":
                body = await request.json()
                fault = self.faults.add(Fault(**body))
                return web.json_response(asdict(fault))
            return web.json_response([asdict(f) for f in self.faults._items])
        if what in self.controls:
            return await self.controls[what](request)
        raise web.HTTPNotFound()


class ServerBacked:
    """What every emulator exposes of its ``SandboxServer``: URL, recorder and faults; and the
    plain lifecycle (start, stop, a ``with`` block, a temporary state folder removed at stop)
    for an emulator that needs nothing more."""

    _server: SandboxServer
    _tmp: "tempfile.TemporaryDirectory[str] | None" = None

    def _state_folder(self, state_dir: "Path | None", prefix: str) -> "Path":
        """``state_dir``, or a temporary folder owned (and removed at ``stop``) by this emulator."""
        if state_dir is not None:
            return Path(state_dir)
        self._tmp = tempfile.TemporaryDirectory(prefix=prefix)
        return Path(self._tmp.name)

    def start(self) -> Any:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The default region's URL."""
        return self._server.url

    def url_for(self, region: str) -> str:
        """The URL of ``region``'s endpoint (KeyError when this emulator does not serve it)."""
        return self._server.url_for(region)

    @property
    def urls(self) -> dict[str, str]:
        """Every region served -> its endpoint URL, the default region first."""
        return {site: self._server.url_for(site) for site in self._server.ports}

    @property
    def recorder(self) -> Recorder:
        return self._server.recorder

    @property
    def faults(self) -> Faults:
        return self._server.faults


async def _endless(request: web.Request, gap: float) -> web.StreamResponse:
    """200, then zeros until the client goes away."""
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/octet-stream"})
    await resp.prepare(request)
    chunk = bytes(64 * 1024)
    try:
        while True:
            await resp.write(chunk)
            await asyncio.sleep(gap)
    except (ConnectionError, RuntimeError):  # the client went away
        return resp


def _drop(request: web.Request) -> web.StreamResponse:
    """Abort the connection; the response returned is never written (the socket is gone)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=499)
