"""An emulator of the PAI-EAS OpenAPI (version 2021-07-01) that the unmodified official SDK
(``alibabacloud_eas20210701.client.Client``) talks to over loopback HTTP.

Wire behaviour:

* Every ``/api/v2/...`` call must carry a valid ACS3-HMAC-SHA256 signature (``verify_signature``)
  made with the sandbox AccessKey (``eascomfy.sandbox.credentials``). Errors use the EAS body
  ``{"RequestId","HostId","Code","HttpCode","Success":false,"Message"}``; a ``Throttling*`` code
  also sets ``x-acs-retry-after: 1``, which the SDK turns into a ``ThrottlingException``.
* Routes are the ROA paths of the SDK under ``/api/v2/services``; ``{ClusterId}`` is the region.
  An unknown route answers 404 ``InvalidApi.NotFound``; a missing service 404
  ``InvalidService.NotFound``.
* Each service gets endpoints on the same server. Internet: ``{url}/api/predict/<service>``;
  intranet (VPC): ``{url}/vpc/api/predict/<service>`` (the ``/vpc`` path prefix stands for the VPC
  host). Requests need ``Authorization: <AccessToken>`` (else 401) and get 503
  ``no healthy upstream`` until the service is Running *and* ``Timings.ready`` has passed. A ready
  service hands the request to ``route_to_backend`` (``backends[name]``, then
  ``default_backend``), which answers ``{"ok": true}`` when no backend is registered.
* DescribeServiceSignedUrl returns ``{url}[/vpc]/<webview|monitor>/<service>/?expire=<unix
  time>&signature=<hex HMAC>``; the link is served (through the backend) until it expires.

Lifecycle, versions, events and persistence live in ``eas_state``.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import json
import logging
import math
import re
import tempfile
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Mapping, Sequence
from urllib.parse import quote, unquote

from aiohttp import web

from eascomfy.sandbox.credentials import secret_for
from eascomfy.sandbox.eas_state import (
    CREATING,
    RUNNING,
    STARTING,
    UPDATING,
    WAITING,
    EasError,
    ImageCatalogue,
    ServiceRecord,
    ServiceStore,
    Timings,
    invalid,
    iso,
    new_request_id,
    not_found,
)
from eascomfy.sandbox.server import CONTROL_PREFIX, RecordedRequest, SandboxServer, ServerBacked

__all__ = [
    "EasSandbox",
    "EasError",
    "ImageCatalogue",
    "PredictContext",
    "Timings",
    "authorization_header",
    "canonical_request",
    "eas_error_response",
    "verify_signature",
]

log = logging.getLogger(__name__)

API_VERSION = "2021-07-01"
ALGORITHM = "ACS3-HMAC-SHA256"
HOST_ID = "eas-sandbox-apiserver"
SANDBOX_UID = "1000000000000000"
MAX_CLOCK_SKEW = 15 * 60
MAX_SIGNED_URL_SECONDS = 12 * 3600
DEFAULT_SIGNED_URL_SECONDS = 3600
REQUIRED_SIGNED_HEADERS = (
    "host",
    "x-acs-action",
    "x-acs-content-sha256",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-version",
)
SERVICE_PATH = re.compile(r"^/api/v2/services/(?P<cluster>[^/]+)/(?P<service>[^/]+)(?:/(?P<op>[a-z_]+))?/?$")
PENDING_STATUSES = (CREATING, UPDATING, STARTING, WAITING)


# -- ACS3-HMAC-SHA256 ------------------------------------------------------------------------------
def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_query(query: Iterable[tuple[str, str]]) -> str:
    """Decoded query pairs, sorted by key, values re-encoded RFC 3986 (keys are not encoded)."""
    return "&".join(f"{k}={quote(v, safe='~')}" for k, v in sorted(query, key=lambda kv: kv[0]))


def canonical_request(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, Sequence[str]],
    signed_headers: Sequence[str],
    payload_hash: str,
) -> str:
    """The canonical request as the SDK builds it. ``path`` is the raw path as sent (not
    re-encoded); ``headers`` maps lowercased names to all their values."""
    lines = "".join(
        f"{name}:{','.join(sorted(v.strip() for v in headers.get(name, ())))}\n" for name in signed_headers
    )
    parts = [method.upper(), path or "/", canonical_query(query), lines, ";".join(signed_headers), payload_hash]
    return "\n".join(parts)


def signature(secret: str, canonical: str) -> str:
    string_to_sign = f"{ALGORITHM}\n{_sha256_hex(canonical.encode('utf-8'))}"
    return hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization_header(
    access_key_id: str,
    secret: str,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
) -> str:
    """Client side: sign every header given (as the SDK does), for tests that hand-craft calls."""
    lowered = {k.lower(): [v] for k, v in headers.items()}
    signed = sorted(lowered)
    canonical = canonical_request(method, path, query, lowered, signed, lowered["x-acs-content-sha256"][0])
    return (
        f"{ALGORITHM} Credential={access_key_id},SignedHeaders={';'.join(signed)},"
        f"Signature={signature(secret, canonical)}"
    )


def _parse_authorization(value: str) -> tuple[str, str, list[str], str]:
    algorithm, _, rest = value.strip().partition(" ")
    fields = dict(part.strip().partition("=")[::2] for part in rest.split(",") if "=" in part)
    if not all(fields.get(k) for k in ("Credential", "SignedHeaders", "Signature")):
        raise EasError(400, "IncompleteSignature", "The Authorization header is malformed")
    signed = [h.strip().lower() for h in fields["SignedHeaders"].split(";") if h.strip()]
    return algorithm, fields["Credential"], signed, fields["Signature"]


class NonceCache:
    """Remembers recent x-acs-signature-nonce values so a replayed request is refused."""

    def __init__(self, size: int = 10000) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def add(self, nonce: str) -> bool:
        if nonce in self._seen:
            return False
        self._seen[nonce] = None
        if len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return True


def verify_signature(
    method: str,
    raw_path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, Sequence[str]],
    body: bytes,
    nonces: NonceCache | None = None,
    now: float | None = None,
) -> str:
    """Check an OpenAPI call the way the gateway does and return its AccessKey id, or raise
    ``EasError``. Messages never contain the secret or the expected signature."""
    auth = (headers.get("authorization") or [""])[0]
    if not auth:
        raise EasError(400, "MissingAuthorization", "The Authorization header is required")
    algorithm, access_key_id, signed, given = _parse_authorization(auth)
    if algorithm != ALGORITHM:
        raise EasError(400, "IncompleteSignature", f"Unsupported signature algorithm {algorithm!r}")
    secret = secret_for(access_key_id)
    if secret is None:
        raise EasError(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
    missing = [h for h in REQUIRED_SIGNED_HEADERS if h not in signed]
    if missing:
        raise EasError(400, "IncompleteSignature", f"SignedHeaders must include: {', '.join(missing)}")
    payload_hash = (headers.get("x-acs-content-sha256") or [""])[0]
    if payload_hash != _sha256_hex(body):
        raise EasError(403, "SignatureDoesNotMatch", "The x-acs-content-sha256 header does not match the body.")
    _check_date((headers.get("x-acs-date") or [""])[0], time.time() if now is None else now)
    expected = signature(secret, canonical_request(method, raw_path, query, headers, signed, payload_hash))
    if not hmac.compare_digest(expected, given):
        raise EasError(403, "SignatureDoesNotMatch", "Specified signature does not match our calculation.")
    if nonces is not None and not nonces.add((headers.get("x-acs-signature-nonce") or [""])[0]):
        raise EasError(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
    return access_key_id


def _check_date(value: str, now: float) -> None:
    try:
        ts = calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        raise EasError(400, "InvalidTimeStamp.Format", "x-acs-date must be yyyy-MM-ddTHH:mm:ssZ (UTC)") from None
    if abs(now - ts) > MAX_CLOCK_SKEW:
        raise EasError(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")


# -- the error body and the action name ----------------------------------------------------------
def eas_error_response(request: web.Request, status: int, code: str, message: str) -> web.Response:
    request_id = new_request_id()
    body = {
        "RequestId": request_id,
        "HostId": HOST_ID,
        "Code": code,
        "HttpCode": status,
        "Success": False,
        "Message": message,
    }
    headers = {"x-acs-request-id": request_id}
    if code.startswith("Throttling"):
        headers["x-acs-retry-after"] = "1"
    return web.json_response(body, status=status, headers=headers)


def api_not_found() -> EasError:
    return EasError(404, "InvalidApi.NotFound", "Specified api is not found, please check your url and method.")


def action_of(request: web.Request) -> str | None:
    return request.headers.get("x-acs-action")


# -- parameters ------------------------------------------------------------------------------------
def _int_param(query: Mapping[str, str], key: str, default: int, minimum: int = 1) -> int:
    raw = query.get(key)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(f"{key} must be an integer") from None
    if value < minimum:
        raise invalid(f"{key} must be >= {minimum}")
    return value


def _bool_param(query: Mapping[str, str], key: str) -> bool:
    raw = query.get(key, "false").lower()
    if raw not in ("true", "false"):
        raise invalid(f"{key} must be true or false")
    return raw == "true"


def _time_param(query: Mapping[str, str], key: str) -> float | None:
    raw = query.get(key)
    if not raw:
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return float(calendar.timegm(time.strptime(raw, fmt)))
        except ValueError:
            continue
    raise invalid(f"{key} must be 'yyyy-MM-dd HH:mm:ss' (UTC)")


def _json_param(query: Mapping[str, str], key: str, kind: type) -> Any:
    raw = query.get(key)
    if not raw:
        return kind()
    try:
        value = json.loads(raw)
    except ValueError:
        raise invalid(f"{key} must be a JSON {kind.__name__}") from None
    if not isinstance(value, kind):
        raise invalid(f"{key} must be a JSON {kind.__name__}")
    return value


def _page(items: list[Any], number: int, size: int) -> list[Any]:
    return items[(number - 1) * size : number * size]


def _config_json(config: dict[str, Any]) -> str:
    return json.dumps(config, ensure_ascii=False, sort_keys=True)


@dataclass
class Call:
    """One OpenAPI call after authentication: decoded query, raw body, addressed service."""

    query: dict[str, str]
    body: bytes
    service: str = ""

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body or b"{}")
        except ValueError:
            raise invalid("The request body is not valid JSON") from None
        if not isinstance(value, dict):
            raise invalid("The request body must be a JSON object")
        return value


@dataclass(frozen=True)
class PredictContext:
    """What a backend gets with a request on a ready service's endpoint or signed link."""

    service: str
    subpath: str  # "" or "/prompt", "/history/x", ... (after /api/predict/<service>)
    internal: bool  # came through the intranet (VPC) form
    kind: str  # "predict", "webview" or "monitor"
    config: dict[str, Any]


Backend = Callable[[web.Request, PredictContext], Awaitable[web.StreamResponse]]


class EasSandbox(ServerBacked):
    """The EAS OpenAPI emulator on 127.0.0.1, plus each service's endpoint on the same port."""

    def __init__(
        self,
        state_dir: Path | None = None,
        port: int = 0,
        timings: Timings | None = None,
        catalogue: ImageCatalogue | None = None,
        region: str = "cn-hangzhou",
    ) -> None:
        self.region = region
        self.timings = timings or Timings()
        self.catalogue = catalogue or ImageCatalogue()
        # Without a state_dir the state lives in a temporary directory removed with this object.
        self._tmp = tempfile.TemporaryDirectory(prefix="eas-sandbox-") if state_dir is None else None
        self.state_dir = Path(self._tmp.name) if self._tmp else Path(state_dir or ".")
        self.store = ServiceStore(self.state_dir / "eas" / "state.json", region, self.timings, self.catalogue)
        self.backends: dict[str, Backend] = {}
        self.default_backend: Backend | None = None
        self._nonces = NonceCache()
        self._server = SandboxServer(self._build_app, eas_error_response, action_of, port=port, name="eas")
        self._service_ops: dict[tuple[str, str], Callable[[Call], dict[str, Any]]] = {
            ("GET", ""): self._describe,
            ("PUT", ""): self._update,
            ("DELETE", ""): self._delete,
            ("PUT", "start"): lambda c: self._simple(c, self.store.start, "starting"),
            ("PUT", "stop"): lambda c: self._simple(c, self.store.stop, "stopping"),
            ("PUT", "restart"): lambda c: self._simple(c, self.store.restart, "restarting"),
            ("GET", "versions"): self._versions,
            ("PUT", "version"): self._switch_version,
            ("GET", "events"): self._events,
            ("PUT", "label"): self._update_labels,
            ("DELETE", "label"): self._delete_labels,
            ("GET", "signed_url"): self._signed_url,
            ("GET", "endpoints"): self._endpoints,
            ("GET", "autoscaler"): self._describe_autoscaler,
            ("POST", "autoscaler"): lambda c: self._put_autoscaler(c, create=True),
            ("PUT", "autoscaler"): lambda c: self._put_autoscaler(c, create=False),
            ("DELETE", "autoscaler"): lambda c: self._simple(c, self.store.delete_autoscaler, "autoscaler deleted"),
        }

    # -- lifecycle and the test API ------------------------------------------------------------
    def start(self) -> "EasSandbox":
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> "EasSandbox":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """What the SDK ``Config(endpoint=...)`` wants (with ``protocol="http"``)."""
        return f"{self._server.host}:{self._server.port}"

    def get_service(self, name: str) -> dict[str, Any] | None:
        """The stored record (config parsed, status, versions, labels, events, token), or None."""
        rec = self.store.snapshot(name)
        return asdict(rec) if rec else None

    def set_stuck(self, name: str, status: str | None = WAITING) -> None:
        """Keep ``name`` in ``status`` instead of Running (e.g. Waiting for resources); None frees it."""
        self.store.set_stuck(name, status)

    def writes(self) -> list[RecordedRequest]:
        """Recorded OpenAPI calls that are not GETs (service endpoint traffic is not included)."""
        return [r for r in self.recorder.all() if r.method != "GET" and r.path.startswith("/api/v2/")]

    def internet_endpoint(self, name: str) -> str:
        return f"{self.url}/api/predict/{name}"

    def intranet_endpoint(self, name: str) -> str:
        return f"{self.url}/vpc/api/predict/{name}"

    # -- the application -----------------------------------------------------------------------
    def _build_app(self, server: SandboxServer) -> web.Application:
        app = web.Application(middlewares=[self._errors], client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/v2/{tail:.*}", self._openapi)
        for prefix in ("", "/vpc"):
            app.router.add_route("*", prefix + "/api/predict/{service}{subpath:.*}", self._predict)
            app.router.add_route("*", prefix + "/{kind:webview|monitor}/{service}{subpath:.*}", self._signed_visit)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        try:
            return await handler(request)
        except EasError as exc:
            error = exc
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
            if request.path.startswith(CONTROL_PREFIX):
                raise
            error = api_not_found()
        except web.HTTPException:
            raise
        except Exception:  # a sandbox bug: answer like the service would, keep the trace in the log
            log.exception("EAS sandbox failed on %s %s", request.method, request.path)
            error = EasError(500, "InternalError", "The request processing has failed due to some unknown error.")
        return eas_error_response(request, error.status, error.code, error.message)

    async def _openapi(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers: dict[str, list[str]] = {}
        for key, value in request.headers.items():
            headers.setdefault(key.lower(), []).append(value)
        raw_path = request.raw_path.split("?", 1)[0]
        query = list(request.rel_url.query.items())
        verify_signature(request.method, raw_path, query, headers, body, self._nonces)
        if request.headers.get("x-acs-version") != API_VERSION:
            raise EasError(400, "InvalidVersion", f"Specified API version is not valid; use {API_VERSION}.")
        call = Call(query=dict(query), body=body)
        handler = self._route(request.method, raw_path, call)
        return web.json_response({"RequestId": new_request_id(), **handler(call)})

    def _route(self, method: str, raw_path: str, call: Call) -> Callable[[Call], dict[str, Any]]:
        handler: Callable[[Call], dict[str, Any]] | None = None
        if raw_path.rstrip("/") == "/api/v2/services":
            handler = {"POST": self._create, "GET": self._list}.get(method)
        elif m := SERVICE_PATH.match(raw_path):
            handler = self._service_ops.get((method, m["op"] or ""))
            if handler is not None:
                if unquote(m["cluster"]) != self.region:
                    raise not_found()
                call.service = unquote(m["service"])
        if handler is None:
            raise api_not_found()
        return handler

    # -- OpenAPI handlers ------------------------------------------------------------------------
    def _create(self, call: Call) -> dict[str, Any]:
        labels = {str(k): str(v) for k, v in _json_param(call.query, "Labels", dict).items()}
        rec = self.store.create(call.json(), labels, call.query.get("WorkspaceId", ""))
        return {
            "ServiceId": rec.service_id,
            "ServiceName": rec.name,
            "Status": rec.status,
            "Region": rec.region,
            "InternetEndpoint": self.internet_endpoint(rec.name),
            "IntranetEndpoint": self.intranet_endpoint(rec.name),
        }

    def _describe(self, call: Call) -> dict[str, Any]:
        return self._view(self.store.get(call.service))

    def _update(self, call: Call) -> dict[str, Any]:
        self.store.update(call.service, call.json(), call.query.get("UpdateType") or "merge")
        return {"Message": f"Service [{call.service}] is updating"}

    def _delete(self, call: Call) -> dict[str, Any]:
        return self._simple(call, self.store.delete, "deleting")

    def _simple(self, call: Call, op: Callable[[str], None], what: str) -> dict[str, Any]:
        op(call.service)
        return {"Message": f"Service [{call.service}] is {what}"}

    def _list(self, call: Call) -> dict[str, Any]:
        q = call.query
        label = _json_param(q, "Label", dict)
        checks: list[Callable[[ServiceRecord], bool]] = [
            lambda r: q.get("Filter", "") in r.name,
            lambda r: not q.get("ServiceName") or r.name == q["ServiceName"],
            lambda r: not q.get("ServiceStatus") or r.status == q["ServiceStatus"],
            lambda r: not q.get("WorkspaceId") or r.workspace_id == q["WorkspaceId"],
            lambda r: not q.get("GroupName") or r.config["metadata"].get("group") == q["GroupName"],
            lambda r: not q.get("ServiceType") or r.config["metadata"].get("type", "Standard") == q["ServiceType"],
            lambda r: all(r.labels.get(str(k)) == str(v) for k, v in label.items()),
        ]
        found = [r for r in self.store.all() if all(check(r) for check in checks)]
        found.sort(key=lambda r: r.create_time, reverse=q.get("Order", "desc").lower() != "asc")
        number, size = _int_param(q, "PageNumber", 1), _int_param(q, "PageSize", 100)
        return {
            "PageNumber": number,
            "PageSize": size,
            "TotalCount": len(found),
            "Services": [self._view(r) for r in _page(found, number, size)],
        }

    def _versions(self, call: Call) -> dict[str, Any]:
        versions = list(reversed(self.store.get(call.service).versions))  # newest first
        number, size = _int_param(call.query, "PageNumber", 1), _int_param(call.query, "PageSize", 100)
        page = _page(versions, number, size)
        return {"PageNumber": number, "PageSize": size, "TotalCount": len(versions), "Versions": page}

    def _switch_version(self, call: Call) -> dict[str, Any]:
        version = call.json().get("Version")
        self.store.switch_version(call.service, version)
        return {"Message": f"Service [{call.service}] is switching to version {version}"}

    def _events(self, call: Call) -> dict[str, Any]:
        q = call.query
        start, end, kind = _time_param(q, "StartTime"), _time_param(q, "EndTime"), q.get("EventType")
        events = [
            {k: v for k, v in e.items() if k != "ts"}
            for e in self.store.get(call.service).events
            if (not kind or e["Type"] == kind)
            and (start is None or e["ts"] >= start)
            and (end is None or e["ts"] <= end)
        ]
        number, size = _int_param(q, "PageNum", 1), _int_param(q, "PageSize", 100)
        return {
            "PageNum": number,
            "TotalCount": len(events),
            "TotalPageNum": math.ceil(len(events) / size),
            "Events": _page(events, number, size),
        }

    def _update_labels(self, call: Call) -> dict[str, Any]:
        labels = call.json().get("Labels")
        if not isinstance(labels, dict) or not labels:
            raise invalid("Labels must be a non-empty object")
        self.store.set_labels(call.service, {str(k): str(v) for k, v in labels.items()})
        return {"Message": f"Labels of service [{call.service}] updated"}

    def _delete_labels(self, call: Call) -> dict[str, Any]:
        raw = call.query.get("Keys", "")
        keys = _json_param(call.query, "Keys", list) if raw.startswith("[") else [k for k in raw.split(",") if k]
        if not keys:
            raise EasError(400, "MissingParameter", "Keys is required")
        self.store.delete_labels(call.service, [str(k) for k in keys])
        return {"Message": f"Labels of service [{call.service}] deleted"}

    def _endpoints(self, call: Call) -> dict[str, Any]:
        rec = self.store.get(call.service)
        endpoint = {
            "EndpointType": "DefaultGateway",
            "BackendId": "",
            "PathType": "",
            "Port": self._server.port,
            "InternetEndpoints": [self.internet_endpoint(rec.name)],
            "IntranetEndpoints": [self.intranet_endpoint(rec.name)],
        }
        return {"AccessToken": rec.access_token, "Message": "", "Endpoints": [endpoint]}

    def _describe_autoscaler(self, call: Call) -> dict[str, Any]:
        scaler = self.store.get(call.service).autoscaler or {}
        return {
            "ServiceName": call.service,
            "MinReplica": scaler.get("min", 0),
            "MaxReplica": scaler.get("max", 0),
            "Behavior": scaler.get("behavior", {}),
            "ScaleStrategies": scaler.get("scaleStrategies", []),
            "CurrentMetrics": [],
        }

    def _put_autoscaler(self, call: Call, create: bool) -> dict[str, Any]:
        self.store.set_autoscaler(call.service, call.json(), create)
        return {"Message": f"Autoscaler of service [{call.service}] saved"}

    def _signed_url(self, call: Call) -> dict[str, Any]:
        rec = self.store.get(call.service)
        kind = call.query.get("Type") or "webview"
        if kind not in ("webview", "monitor"):
            raise invalid("Type must be webview or monitor")
        seconds = min(_int_param(call.query, "Expire", DEFAULT_SIGNED_URL_SECONDS), MAX_SIGNED_URL_SECONDS)
        expire = int(time.time()) + seconds
        path = f"{'/vpc' if _bool_param(call.query, 'Internal') else ''}/{kind}/{rec.name}/"
        return {"SignedUrl": f"{self.url}{path}?expire={expire}&signature={self._link_signature(path, expire)}"}

    def _link_signature(self, path: str, expire: int) -> str:
        return hmac.new(self.store.url_key.encode(), f"{path}\n{expire}".encode(), hashlib.sha256).hexdigest()

    def _view(self, rec: ServiceRecord) -> dict[str, Any]:
        """A ServiceRecord as the SDK's ``Service`` model (ServiceConfig is a JSON string)."""
        metadata = rec.config.get("metadata", {})
        running = rec.instance if rec.status == RUNNING else 0
        return {
            "ServiceName": rec.name,
            "ServiceId": rec.service_id,
            "ServiceUid": rec.service_uid,
            "Region": rec.region,
            "Status": rec.status,
            "Reason": rec.reason,
            "Message": rec.message,
            "CreateTime": iso(rec.create_time),
            "UpdateTime": iso(rec.update_time),
            "ServiceConfig": _config_json(rec.config),
            "Image": rec.image,
            "CurrentVersion": rec.current_version,
            "LatestVersion": rec.latest_version,
            "RunningInstance": running,
            "PendingInstance": rec.instance if rec.status in PENDING_STATUSES else 0,
            "TotalInstance": rec.instance,
            "Cpu": metadata.get("cpu", 0),
            "Gpu": metadata.get("gpu", 0),
            "Memory": metadata.get("memory", 0),
            "Resource": metadata.get("resource", ""),
            "ServiceGroup": metadata.get("group", ""),
            "WorkspaceId": rec.workspace_id,
            "Namespace": rec.name,
            "CallerUid": SANDBOX_UID,
            "ParentUid": SANDBOX_UID,
            "InternetEndpoint": self.internet_endpoint(rec.name),
            "IntranetEndpoint": self.intranet_endpoint(rec.name),
            "AccessToken": rec.access_token,
            "Labels": [{"LabelKey": k, "LabelValue": v} for k, v in sorted(rec.labels.items())],
        }

    # -- service endpoints -----------------------------------------------------------------------
    async def _predict(self, request: web.Request) -> web.StreamResponse:
        rec = self.store.find(request.match_info["service"])
        if rec is None:
            return web.Response(status=404, text="service not found")
        token = request.headers.get("Authorization", "")
        if not hmac.compare_digest(token.encode(), rec.access_token.encode()):
            return web.Response(status=401, text="Unauthorized")
        return await self._serve(request, rec, "predict")

    async def _signed_visit(self, request: web.Request) -> web.StreamResponse:
        rec = self.store.find(request.match_info["service"])
        if rec is None:
            return web.Response(status=404, text="service not found")
        internal = request.path.startswith("/vpc/")
        path = f"{'/vpc' if internal else ''}/{request.match_info['kind']}/{rec.name}/"
        try:
            expire = int(request.query.get("expire", ""))
        except ValueError:
            return web.Response(status=403, text="invalid signed url")
        good = hmac.compare_digest(self._link_signature(path, expire), request.query.get("signature", ""))
        if not good or time.time() > expire:
            return web.Response(status=403, text="signed url expired or invalid")
        return await self._serve(request, rec, request.match_info["kind"])

    async def _serve(self, request: web.Request, rec: ServiceRecord, kind: str) -> web.StreamResponse:
        if not self.store.is_ready(rec):
            return web.Response(status=503, text="no healthy upstream")
        ctx = PredictContext(
            service=rec.name,
            subpath=request.match_info["subpath"],
            internal=request.path.startswith("/vpc/"),
            kind=kind,
            config=json.loads(_config_json(rec.config)),
        )
        return await self.route_to_backend(request, ctx)

    async def route_to_backend(self, request: web.Request, ctx: PredictContext) -> web.StreamResponse:
        """The hook for service emulators (e.g. ComfyUI): ``backends[name]``, else
        ``default_backend``, else a plain ``{"ok": true}``."""
        backend = self.backends.get(ctx.service) or self.default_backend
        if backend is None:
            return web.json_response({"ok": True})
        return await backend(request, ctx)
