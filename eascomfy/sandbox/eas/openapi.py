"""The EAS OpenAPI (version 2021-07-01) over a ``ServiceStore``: each ``/api/v2/...`` call is
checked (signature, version), routed by method and ROA path to its action (CreateService,
DescribeService, ...), and answered with the JSON body the SDK's models read.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import time
from typing import Any, Callable
from urllib.parse import unquote

from aiohttp import web

from ..server import SandboxServer
from .errors import EasError, api_not_found, invalid, new_request_id, not_found
from .ops_api import OpsApi
from .params import Call, bool_param, config_json, int_param, json_param, page_of, time_param
from .signing import NonceCache, verify_signature
from .state import CREATING, RUNNING, STARTING, UPDATING, WAITING, ServiceRecord, ServiceStore, iso

API_VERSION = "2021-07-01"
SANDBOX_UID = "1000000000000000"
MAX_SIGNED_URL_SECONDS = 12 * 3600
DEFAULT_SIGNED_URL_SECONDS = 3600
SERVICE_PATH = re.compile(
    r"^/api/v2/services/(?P<cluster>[^/]+)/(?P<service>[^/]+)"
    r"(?:/(?P<op>[a-z_]+)(?:/(?P<instance>[^/]+)/(?P<sub>[a-z_]+))?)?/?$"
)
PENDING_STATUSES = (CREATING, UPDATING, STARTING, WAITING)


class OpenApi:
    """The OpenAPI actions of one region's services; ``server`` gives the URLs of their endpoints."""

    def __init__(self, store: ServiceStore, region: str, server: SandboxServer) -> None:
        self.store = store
        self.region = region
        self._server = server
        self._nonces = NonceCache()
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
        self._service_ops.update(OpsApi(store).routes())  # instances, logs, diagnosis

    def internet_endpoint(self, name: str) -> str:
        return f"{self._server.url}/api/predict/{name}"

    def intranet_endpoint(self, name: str) -> str:
        return f"{self._server.url}/vpc/api/predict/{name}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """One ``/api/v2/...`` call: authenticate, route, answer (errors raise ``EasError``)."""
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
            op = f"{m['op']}/{m['sub']}" if m["sub"] else m["op"] or ""
            handler = self._service_ops.get((method, op))
            if handler is not None:
                call.instance = unquote(m["instance"] or "")
                if unquote(m["cluster"]) != self.region:
                    raise not_found()
                call.service = unquote(m["service"])
        if handler is None:
            raise api_not_found()
        return handler

    def _create(self, call: Call) -> dict[str, Any]:
        labels = {str(k): str(v) for k, v in json_param(call.query, "Labels", dict).items()}
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
        label = json_param(q, "Label", dict)
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
        number, size = int_param(q, "PageNumber", 1), int_param(q, "PageSize", 100)
        return {
            "PageNumber": number,
            "PageSize": size,
            "TotalCount": len(found),
            "Services": [self._view(r) for r in page_of(found, number, size)],
        }

    def _versions(self, call: Call) -> dict[str, Any]:
        versions = list(reversed(self.store.get(call.service).versions))  # newest first
        number, size = int_param(call.query, "PageNumber", 1), int_param(call.query, "PageSize", 100)
        page = page_of(versions, number, size)
        return {"PageNumber": number, "PageSize": size, "TotalCount": len(versions), "Versions": page}

    def _switch_version(self, call: Call) -> dict[str, Any]:
        version = call.json().get("Version")
        self.store.switch_version(call.service, version)
        return {"Message": f"Service [{call.service}] is switching to version {version}"}

    def _events(self, call: Call) -> dict[str, Any]:
        q = call.query
        start, end, kind = time_param(q, "StartTime"), time_param(q, "EndTime"), q.get("EventType")
        events = [
            {k: v for k, v in e.items() if k != "ts"}
            for e in self.store.get(call.service).events
            if (not kind or e["Type"] == kind)
            and (start is None or e["ts"] >= start)
            and (end is None or e["ts"] <= end)
        ]
        number, size = int_param(q, "PageNum", 1), int_param(q, "PageSize", 100)
        return {
            "PageNum": number,
            "TotalCount": len(events),
            "TotalPageNum": math.ceil(len(events) / size),
            "Events": page_of(events, number, size),
        }

    def _update_labels(self, call: Call) -> dict[str, Any]:
        labels = call.json().get("Labels")
        if not isinstance(labels, dict) or not labels:
            raise invalid("Labels must be a non-empty object")
        self.store.set_labels(call.service, {str(k): str(v) for k, v in labels.items()})
        return {"Message": f"Labels of service [{call.service}] updated"}

    def _delete_labels(self, call: Call) -> dict[str, Any]:
        raw = call.query.get("Keys", "")
        keys = json_param(call.query, "Keys", list) if raw.startswith("[") else [k for k in raw.split(",") if k]
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
        seconds = min(int_param(call.query, "Expire", DEFAULT_SIGNED_URL_SECONDS), MAX_SIGNED_URL_SECONDS)
        expire = int(time.time()) + seconds
        path = f"{'/vpc' if bool_param(call.query, 'Internal') else ''}/{kind}/{rec.name}/"
        return {"SignedUrl": f"{self._server.url}{path}?expire={expire}&signature={self.link_signature(path, expire)}"}

    def link_signature(self, path: str, expire: int) -> str:
        """The signature of a signed WebUI link (``DescribeServiceSignedUrl``)."""
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
            "ServiceConfig": config_json(rec.config),
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
