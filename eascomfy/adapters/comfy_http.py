"""ComfyUI on an EAS endpoint over HTTP and its ``/ws`` event stream: the only module that imports
``httpx`` and, with ``eas_queue``, ``websocket`` (websocket-client).

``ServiceClient``: plain HTTP to the service endpoint (``/prompt``, ``/history``, ``/view``,
``/object_info``, ``/interrupt``, ``/queue``, ``/upload/image``; the API edition's ``/api_prompt``) over ONE
``httpx.Client`` (keep-alive connection pool, safe to share between threads), and ComfyUI's
``/ws`` event stream (``EventSocket``).

Every request sends ``Authorization: <token>`` (raw, as EAS expects). Errors become ``CloudError``
in one place (``_error``) and never carry the token: it is registered with ``redact`` on entry,
kept out of ``repr``, and URLs never contain it.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping

from ..errors import CloudError
from ..redact import register_secret
from ..retry import Retry

if TYPE_CHECKING:
    import httpx

Log = Callable[[str], None]
Cancelled = Literal["removed", "interrupted", "gone"]  # what ServiceClient.cancel did
LOOPBACK = ("127.0.0.1", "localhost", "::1")
TOKEN_HINT = ("check the service token (EASCOMFY_SERVICE_TOKEN), or let eascomfy read it from the spec's service "
              "(DescribeService)")


def quiet(message: str) -> None:
    """The default log: nothing."""
    return None


def _error(what: str, exc: BaseException | None = None, response: "httpx.Response | None" = None) -> CloudError:
    """THE mapping of transport failures and HTTP answers to ``CloudError`` (never the token)."""
    if response is not None:
        status = response.status_code
        text = response.text[:300].strip() if response.content else ""
        if status in (401, 403):
            return CloudError(f"{what}: the service refused the token (HTTP {status})", code="Unauthorized",
                              status=status, hint=TOKEN_HINT)
        if status == 404:
            return CloudError(f"{what}: not found (HTTP 404: {text or 'no body'})", code="NotFound", status=status,
                              hint="check the endpoint (…/api/predict/<service>) and the edition: /prompt needs the "
                                   "Standard or Cluster edition, /api_prompt the API edition")
        if status in (502, 503, 504):
            return CloudError(f"{what}: the service has no healthy instance (HTTP {status})", code="ServiceUnavailable",
                              status=status, hint="it may be starting, stopped or failing: eascomfy status")
        return CloudError(f"{what}: HTTP {status}: {text or 'no body'}", code=f"HTTP{status}", status=status)
    import httpx

    name = type(exc).__name__ if exc is not None else "error"
    if isinstance(exc, _not_sent()):
        return CloudError(f"{what}: cannot connect ({name})", code="ConnectionError",
                          hint="is the service running and the endpoint right? eascomfy status")
    if isinstance(exc, httpx.TimeoutException):
        return AnswerLost(f"{what}: no answer in time ({name})", code="Timeout")
    # Sent (or partly sent), then the connection failed: the server may have acted on it.
    return AnswerLost(f"{what}: the connection failed after the request was sent ({name})", code="NoAnswer")


class AnswerLost(CloudError):
    """The request was written (or partly written) but no answer came: the server may or may not
    have acted on it. Never sent again blindly; a caller that must know settles it another way."""


def _not_sent() -> tuple[type[BaseException], ...]:
    """httpx errors raised before any byte of the request was written: connecting, waiting for a
    pooled connection, a request httpx refused to send, a proxy that would not connect."""
    import httpx

    return (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol,
            httpx.LocalProtocolError, httpx.ProxyError)


def _retryable(exc: Exception) -> bool:
    """Failures where the request surely did not reach ComfyUI or the queue: safe to send again.
    A lost answer (``AnswerLost``) is never one of them."""
    return (isinstance(exc, CloudError) and not isinstance(exc, AnswerLost)
            and exc.code in ("ConnectionError", "ServiceUnavailable") and exc.status in (None, 503))


@dataclass(frozen=True)
class Sent:
    """What the API edition's queue answered to a put: the entry's index and request id."""

    index: str
    request_id: str


class ServiceClient:
    """One service endpoint (``http(s)://…/api/predict/<service>``) with its token."""

    def __init__(self, endpoint: str, token: str, *, timeout: float = 30.0, connections: int = 16, log: Log = quiet) -> None:
        import httpx

        register_secret(token)
        self.endpoint = endpoint.rstrip("/")
        self._token = token
        self.log = log
        host = urllib.parse.urlsplit(self.endpoint).hostname or ""
        self._http = httpx.Client(
            headers={"Authorization": token},
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            trust_env=host not in LOOPBACK,
        )

    def __repr__(self) -> str:  # never the token
        return f"ServiceClient(endpoint={self.endpoint!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ServiceClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def service(self) -> str:
        return urllib.parse.urlsplit(self.endpoint).path.rstrip("/").rsplit("/", 1)[-1]

    # -- one request -------------------------------------------------------------------------
    def request(self, method: str, path: str, what: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any) -> "httpx.Response":
        """Send one request; an answer outside ``ok`` or a transport failure is a ``CloudError``."""
        import httpx

        try:
            response = self._http.request(method, self.endpoint + path, **kwargs)
        except httpx.HTTPError as exc:
            raise _error(what, exc) from None
        if response.status_code not in ok:
            raise _error(what, response=response)
        return response

    def get_json(self, path: str, what: str, **kwargs: Any) -> Any:
        response = self.request("GET", path, what, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise CloudError(f"{what}: the answer is not JSON ({response.text[:80]!r})", code="BadAnswer",
                             hint="is this a Standard/Cluster-edition ComfyUI endpoint?") from None

    # -- ComfyUI's HTTP API ----------------------------------------------------------------------
    def object_info(self) -> dict[str, Any] | None:
        """``GET /object_info``; None when the endpoint does not serve it (the API edition)."""
        response = self.request("GET", "/object_info", "GET /object_info", ok=(200, 404))
        if response.status_code == 404:
            return None
        try:
            info = response.json()
        except ValueError:
            return None
        return info if isinstance(info, dict) else None

    def post_prompt(self, workflow: Mapping[str, Any], client_id: str) -> tuple[int, Any]:
        """``POST /prompt``: (status, JSON body); 400 (ComfyUI refused it) is returned, not raised."""
        response = self.request("POST", "/prompt", "POST /prompt", ok=(200, 400),
                                json={"prompt": workflow, "client_id": client_id})
        try:
            return response.status_code, response.json()
        except ValueError:
            raise CloudError(f"POST /prompt: the answer is not ComfyUI's ({response.text[:80]!r})", code="BadAnswer",
                             hint="an API-edition service queues work: use eascomfy submit") from None

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The history entry of ``prompt_id``, or None while it is not finished."""
        found = self.get_json(f"/history/{urllib.parse.quote(prompt_id)}", "GET /history")
        entry = found.get(prompt_id) if isinstance(found, dict) else None
        return entry if isinstance(entry, dict) else None

    def queue(self) -> tuple[list[str], list[str]]:
        """``GET /queue``: the ids of the prompts (running, pending); items are
        ``[number, prompt_id, prompt, extra_data, outputs]`` (ComfyUI ``server.py`` ``get_queue``)."""
        body = self.get_json("/queue", "GET /queue")
        body = body if isinstance(body, dict) else {}

        def ids(items: Any) -> list[str]:
            return [str(item[1]) for item in items or [] if isinstance(item, list) and len(item) > 1]

        return ids(body.get("queue_running")), ids(body.get("queue_pending"))

    def cancel(self, prompt_id: str) -> Cancelled:
        """Stop ``prompt_id`` and nobody else's. A waiting prompt is taken off the queue
        (``POST /queue {"delete": [id]}`` touches pending prompts only); ``POST /interrupt`` is
        sent only when ``/queue`` shows ours running, because ComfyUI before PR #9607 (2025-08)
        ignores its body and interrupts whatever runs, another user's prompt included. Returns
        what was done: ``removed``, ``interrupted``, or ``gone`` (neither waiting nor running)."""
        running, pending = self.queue()
        if prompt_id in pending:
            self.request("POST", "/queue", "POST /queue", json={"delete": [prompt_id]})
            running, _ = self.queue()  # it may have started in between
            if prompt_id not in running:
                return "removed"
        if prompt_id in running:
            self.request("POST", "/interrupt", "POST /interrupt", json={"prompt_id": prompt_id})
            return "interrupted"
        return "gone"

    def download(self, params: Mapping[str, str], target: Path, deadline: float | None = None) -> int:
        """``GET /view`` into ``target`` (through a temporary file; replaced only when complete).
        ``deadline`` (``time.monotonic()``) bounds the whole download, however the server streams:
        past it ``CloudError`` code ``Deadline``, and no ``.part`` is left."""
        import httpx

        partial = target.with_name(target.name + ".part")
        what = f"GET /view {params.get('filename')}"

        def left() -> float:
            return float("inf") if deadline is None else deadline - time.monotonic()

        def late(size: int) -> CloudError:
            return CloudError(f"{what}: not complete in the time allowed ({size} bytes so far)", code="Deadline")

        size = 0
        try:
            if left() <= 0:
                raise late(0)
            limit = min(30.0, left())
            target.parent.mkdir(parents=True, exist_ok=True)
            with self._http.stream("GET", self.endpoint + "/view", params=dict(params),
                                   timeout=httpx.Timeout(limit, connect=min(10.0, limit))) as response:
                if response.status_code != 200:
                    response.read()
                    raise _error(what, response=response)
                with open(partial, "wb") as fh:
                    for chunk in response.iter_bytes():  # as it comes: a trickle is checked too
                        fh.write(chunk)
                        size += len(chunk)
                        if left() <= 0:
                            raise late(size)
            os.replace(partial, target)
        except httpx.HTTPError as exc:
            _discard(partial)
            if left() <= 0:
                raise late(size) from None
            raise _error(what, exc) from None
        except BaseException:  # the deadline, a refusal, a name this file system cannot take
            _discard(partial)
            raise
        return size

    def has_input(self, name: str) -> bool | None:
        """Whether ``input/<name>`` is on the service: ``HEAD /view?filename=&type=input`` (aiohttp
        serves ComfyUI's GET routes for HEAD). None when the answer says neither (a gateway that
        does not pass HEAD on): the caller uploads, and ComfyUI keeps one file for the same bytes."""
        response = self.request("HEAD", "/view", f"HEAD /view {name}", ok=(200, 404, 405, 501),
                                params={"filename": name, "type": "input"})
        return {200: True, 404: False}.get(response.status_code)

    def upload_input(self, name: str, data: bytes, content_type: str) -> str:
        """``POST /upload/image`` (multipart ``image`` and ``type=input``; ComfyUI ``server.py``
        ``upload_image``/``image_upload``); returns the name ComfyUI stored it under (``name``, or
        ``name (1).ext`` when other bytes already had that name). Not retried: ComfyUI writes it
        once, and the same bytes again keep the name."""
        response = self.request("POST", "/upload/image", f"POST /upload/image {name}",
                                files={"image": (name, data, content_type)}, data={"type": "input"})
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or not isinstance(answer.get("name"), str):
            raise CloudError(f"POST /upload/image {name}: the answer is not ComfyUI's ({response.text[:80]!r})",
                             code="BadAnswer")
        sub = str(answer.get("subfolder") or "")
        return f"{sub}/{answer['name']}" if sub else answer["name"]

    def events(self, client_id: str, timeout: float) -> "EventSocket | None":
        """ComfyUI's ``/ws?clientId=`` stream, or None when it cannot be opened (then poll)."""
        import websocket

        url = self.endpoint.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        url += "/ws?" + urllib.parse.urlencode({"clientId": client_id})
        try:
            ws = websocket.create_connection(url, header={"Authorization": self._token}, timeout=timeout,
                                             http_no_proxy=list(LOOPBACK))
        except (websocket.WebSocketException, OSError) as exc:
            self.log(f"websocket not available ({type(exc).__name__}); polling /history instead")
            return None
        return EventSocket(ws)

    # -- the API edition ------------------------------------------------------------------------
    def api_prompt(self, body: bytes, task_id: str, attempts: int = 4) -> Sent:
        """``POST /api_prompt?task_id=`` with the bare workflow (JSON bytes). Sent again only when
        it surely did not arrive (no connection, or the gateway's 503); when it was sent and the
        answer was lost, ``AnswerLost`` is raised: the job may be queued (the EAS queue documents
        no dedupe by task id, so sending it again could queue it twice)."""
        def send() -> Sent:
            response = self.request("POST", "/api_prompt", f"submit {task_id}", params={"task_id": task_id},
                                    content=body, headers={"Content-Type": "application/json"})
            return Sent(response.text.strip(), response.headers.get("X-Eas-Queueservice-Request-Id", ""))

        policy = Retry(attempts=attempts - 1, base=0.1, cap=2.0)
        return policy.call(send, _retryable)


def _discard(path: Path) -> None:
    """Remove a partial download, if it can be."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


class EventSocket:
    """ComfyUI's websocket: ``next(timeout)`` gives the next JSON event, or None after ``timeout``."""

    def __init__(self, ws: Any) -> None:
        self._ws = ws

    def next(self, timeout: float) -> dict[str, Any] | None:
        """The next event (binary preview frames skipped); None on timeout; ``ConnectionError``
        when the socket closed."""
        import websocket

        self._ws.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                frame = self._ws.recv()
            except websocket.WebSocketTimeoutException:
                return None
            except (websocket.WebSocketException, OSError) as exc:
                raise ConnectionError(f"websocket closed ({type(exc).__name__})") from None
            if isinstance(frame, str):
                try:
                    event = json.loads(frame)
                except ValueError:
                    event = None
                if isinstance(event, dict):
                    return event
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._ws.settimeout(left)

    def close(self) -> None:
        try:
            self._ws.close()
        except Exception:  # noqa: BLE001 - closing a broken socket
            pass
