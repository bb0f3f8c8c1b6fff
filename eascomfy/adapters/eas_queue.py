"""The API edition's result queue (``<service>/sink``) through the unmodified
``eas_prediction.QueueClient``: the only module that imports ``eas_prediction``.

Its ``Watcher.run()`` cannot be stopped or given a timeout (it reconnects forever), so the
websocket loop is ours, on the URL and headers ``QueueClient.watch`` builds. The token is
registered with ``redact`` on entry and never printed.
"""

from __future__ import annotations

import urllib.parse
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

from ..errors import CloudError
from ..redact import register_secret
from ..retry import Retry
from .comfy_http import LOOPBACK, TOKEN_HINT, Log, quiet

# A lost watch is reopened 0.1 s, then up to 5 s, apart; the caller decides when to give up, so
# the policy's attempt count is not used (see ``SinkReader.frames``).
RECONNECT = Retry(base=0.1, cap=5.0)


@dataclass(frozen=True)
class SinkFrame:
    index: int
    tags: dict[str, str]
    data: bytes


class SinkReader:
    """``<service>/sink`` through ``eas_prediction.QueueClient``: watch (``auto_commit=False``,
    at most ``window`` uncommitted in flight), commit each result once it is stored."""

    def __init__(self, endpoint: str, token: str, *, window: int = 8, tags: Mapping[str, str] | None = None,
                 log: Log = quiet) -> None:
        import logging

        with warnings.catch_warnings():  # its generated *_pb2 modules call deprecated protobuf APIs
            warnings.simplefilter("ignore", DeprecationWarning)
            from eas_prediction import QueueClient

        register_secret(token)
        parts = urllib.parse.urlsplit(endpoint.rstrip("/"))
        service = parts.path.rstrip("/").rsplit("/", 1)[-1]
        self.log, self.window, self.tags = log, window, dict(tags or {})
        self._client = QueueClient(f"{parts.scheme}://{parts.netloc}", f"{service}/sink")
        sdk_logger = self._client.logger  # the SDK adds a handler printing to stdout: keep stdout ours
        sdk_logger.handlers.clear()
        sdk_logger.propagate = False
        logging.getLogger("eas_prediction").setLevel(logging.CRITICAL)
        self._client.set_token(token)
        self._client.init()
        self._client.set_logger(None)
        self._ws: Any = None
        self.reconnect = RECONNECT

    def __repr__(self) -> str:
        return f"SinkReader(service={self._client.service_name!r})"

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        from eas_prediction.exception import PredictException

        try:
            return fn()
        except PredictException as exc:
            code = int(exc.code) if str(exc.code).isdigit() else None
            if code in (401, 403):
                raise CloudError(f"{what}: the service refused the token (HTTP {code})", code="Unauthorized",
                                 status=code, hint=TOKEN_HINT) from None
            raise CloudError(f"{what}: the queue answered {exc.code}", code="QueueError", status=code) from None
        except OSError as exc:
            raise CloudError(f"{what}: connection failed ({type(exc).__name__})", code="ConnectionError") from None

    def commit(self, index: int) -> None:
        self._call(f"commit sink entry {index}", lambda: self._client.commit(index))

    def _connect(self) -> Any:
        import websocket

        watcher = self._client.watch(0, self.window, index_only=False, auto_commit=False, tags=self.tags)
        return websocket.create_connection(watcher.url, header=watcher.headers, http_no_proxy=list(LOOPBACK))

    def frames(self, idle: float) -> Iterator[SinkFrame | None]:
        """Results as they come; None after ``idle`` seconds without one (the caller decides whether
        to go on). A dropped connection is reopened with backoff; what this watcher held
        uncommitted is then delivered again (the caller skips what it already stored)."""
        import websocket
        from eas_prediction.queue_client import DataFrameCodec

        failures = 0  # in a row: the backoff grows with them and starts again after a connect
        while True:
            if self._ws is None:
                try:
                    self._ws = self._connect()
                    failures = 0
                except (websocket.WebSocketException, OSError) as exc:
                    status = getattr(exc, "status_code", None)
                    if status in (401, 403):
                        raise CloudError(f"watch the sink: the service refused the token (HTTP {status})",
                                         code="Unauthorized", status=status, hint=TOKEN_HINT) from None
                    wait = self.reconnect.delay(failures)
                    failures += 1
                    self.log(f"cannot watch the sink ({type(exc).__name__}); retrying in {wait:.1f} s")
                    self.reconnect.sleep(wait)
                    yield None  # between attempts the caller may decide to stop
                    continue
            self._ws.settimeout(idle)
            try:
                raw = self._ws.recv()
            except websocket.WebSocketTimeoutException:
                self._ping()
                yield None
                continue
            except (websocket.WebSocketException, OSError) as exc:
                self.log(f"sink connection lost ({type(exc).__name__}); reconnecting")
                self._drop()
                continue
            if isinstance(raw, bytes) and raw:
                frame = DataFrameCodec.decode(raw)
                yield SinkFrame(int(frame.index), dict(frame.tags), bytes(frame.data))

    def _ping(self) -> None:
        try:
            self._ws.ping("ping")
        except Exception:  # noqa: BLE001 - noticed on the next recv
            pass

    def _drop(self) -> None:
        if self._ws is not None:
            try:
                self._ws.close()
            except Exception:  # noqa: BLE001
                pass
            self._ws = None

    def close(self) -> None:
        """Close the watch (uncommitted results go back to the queue) and the SDK's threads."""
        self._drop()
        self._client.destroy()
