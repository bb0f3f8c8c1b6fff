"""The EAS OpenAPI (version 2021-07-01) over a ``ServiceStore``: each ``/api/v2/...`` call is
checked (signature, version), routed by method and ROA path to its action (CreateService,
DescribeService, ...), and answered with the JSON body the SDK's models read.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from typing import Any, Callable
from urllib.parse import unquote

from aiohttp import web

from ..server import SandboxServer
from .errors import EasError, api_not_found, invalid, new_request_id, not_found
from .capacity import Capacity
from .ops_api import OpsApi
from .groups import GroupApi
from .scalers import ScalerApi
from .params import Call, bool_param, config_json, int_param, json_param, numbered_page, page_of, time_param
from .signing import NonceCache, verify_signature
from .state import CREATING, RUNNING, STARTING, UPDATING, WAITING, ServiceRecord, ServiceStore, iso, service_name_of

API_VERSION = "2021-07-01"
SANDBOX_UID = "1000000000000000"
PRIVILEGE_CHECK_FAILED = "Forbidden.PrivilegeCheckFailed"


def intranet_host(region: str) -> str:
    """The VPC endpoint host of the sandbox account's services in ``region``."""
    return f"{SANDBOX_UID}.vpc.{region}.pai-eas.aliyuncs.com"


def foreign(name: str) -> EasError:
    """A service name another account owns: agentscope-runtime's ``pai_deployer.py`` reads
    ``Forbidden.PrivilegeCheckFailed`` on DescribeService as "Given service name is owned by
    another user"; the status (403) and the message are unverified."""
    return EasError(403, PRIVILEGE_CHECK_FAILED, f"Privilege check failed: service {name} belongs to another account")
MAX_SIGNED_URL_SECONDS = 12 * 3600
DEFAULT_SIGNED_URL_SECONDS = 3600
SERVICE_PATH = re.compile(
    r"^/api/v2/services/(?P<cluster>[^/]+)/(?P<service>[^/]+)"
    r"(?:/(?P<op>[a-z_]+)(?:/(?P<instance>[^/]+)/(?P<sub>[a-z_]+))?)?/?$"
)
GROUP_PATH = re.compile(r"^/api/v2/groups/(?P<cluster>[^/]+)/(?P<group>[^/]+)/?$")
PENDING_STATUSES = (CREATING, UPDATING, STARTING, WAITING)

# What a safety lock refuses (SDK ``UpdateServiceSafetyLockRequest.lock`` docstring: "all: locks
# all operations; dangerous: locks dangerous operations such as delete and stop operations").
# Which operations besides delete and stop count as dangerous, whether labels and the lock call
# itself count under ``all``, and the error (status, code, message) are UNVERIFIED
# (docs/unverified.md): the emulator refuses DeleteService and StopService under ``dangerous``,
# every write but the labels and UpdateServiceSafetyLock under ``all``, with 400
# ``ServiceSafetyLocked`` (the reference's proposal: 400 or 403, a code naming the lock).
DANGEROUS_OPS = {("DELETE", ""), ("PUT", "stop")}
LOCK_EXEMPT_OPS = {("PUT", "lock"), ("PUT", "label"), ("DELETE", "label")}
SAFETY_LOCKED = "ServiceSafetyLocked"


class OpenApi:
    """The OpenAPI actions of one region's services; ``server`` gives the URLs of their endpoints."""

    def __init__(self, store: ServiceStore, region: str, server: SandboxServer) -> None:
        self.store = store
        self.region = region
        # DescribeRegions: (RegionId, RegionName) of the regions EAS offers (EasSandbox sets the
        # regions it serves; a test may set others).
        self.regions: list[tuple[str, str]] = [(region, region)]
        self._server = server
        self._nonces = NonceCache()
        self.foreign: set[str] = set()  # names another account owns (a test hook)
        self.capacity = Capacity(region)  # DescribeMachineSpec, DescribeSpotDiscountHistory
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
            ("PUT", "lock"): self._safety_lock,
            ("DELETE", "label"): self._delete_labels,
            ("GET", "signed_url"): self._signed_url,
            ("GET", "endpoints"): self._endpoints,
        }
        self._service_ops.update(OpsApi(store).routes())  # instances, logs, diagnosis
        self._service_ops.update(ScalerApi(store).routes())  # autoscaler, cronscaler
        self.groups = GroupApi(store, lambda name, internal: (self.intranet_endpoint if internal else self.internet_endpoint)(name))
        self._service_ops.update(self.groups.service_routes())  # release, mirror

    def internet_endpoint(self, name: str) -> str:
        """The sandbox's reachable stand-in for ``http://<uid>.<region>.pai-eas.aliyuncs.com``."""
        return f"{self._server.url_for(self.region)}/api/predict/{name}"

    def intranet_endpoint(self, name: str) -> str:
        """``Fidelity.intranet_endpoint``: ``host`` is the API doc's form (the Service struct's
        example ``http://10123*****.vpc.cn-shanghai.aliyuncs.com/api/predict/echo``; groups'
        endpoints ``http://<uid>.<region>.pai-eas.aliyuncs.com``, whose intranet host "gains
        ``.vpc``"): reachable from inside the VPC only, so not from the machine running the
        sandbox (a request to the sandbox carrying that Host header is served as internal);
        ``path`` is the sandbox's reachable ``<url>/vpc/api/predict/<svc>``."""
        if self.store.fidelity.intranet_endpoint == "host":
            return f"http://{intranet_host(self.region)}/api/predict/{name}"
        return f"{self._server.url_for(self.region)}/vpc/api/predict/{name}"

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
        elif raw_path.rstrip("/") == "/api/v2/regions":
            handler = {"GET": self._regions}.get(method)
        elif raw_path.startswith("/api/v2/public/"):
            handler = self.capacity.routes().get((method, raw_path.rstrip("/")))
        elif raw_path.rstrip("/") == "/api/v2/groups":
            handler = {"GET": self.groups.list_groups}.get(method)
        elif (g := GROUP_PATH.match(raw_path)) and method == "GET":
            if unquote(g["cluster"]) != self.region:
                raise not_found()
            group = unquote(g["group"])
            handler = lambda c: self.groups.describe_group(group)  # noqa: E731
        elif m := SERVICE_PATH.match(raw_path):
            op = f"{m['op']}/{m['sub']}" if m["sub"] else m["op"] or ""
            handler = self._service_ops.get((method, op))
            if handler is not None:
                call.instance = unquote(m["instance"] or "")
                if unquote(m["cluster"]) != self.region:
                    raise not_found()
                call.service = unquote(m["service"])
                if call.service in self.foreign:
                    raise foreign(call.service)
                self._check_safety_lock(method, m["op"] or "", call.service)
        if handler is None:
            raise api_not_found()
        return handler

    def _check_safety_lock(self, method: str, op: str, name: str) -> None:
        if method == "GET" or (method, op) in LOCK_EXEMPT_OPS:
            return
        rec = self.store.find(name)
        level = rec.safety_lock if rec is not None else "none"
        if level == "all" or (level == "dangerous" and (method, op) in DANGEROUS_OPS):
            raise EasError(400, SAFETY_LOCKED,
                           f"Service [{name}] is protected by its safety lock [{level}]; update the lock to none first")

    def _safety_lock(self, call: Call) -> dict[str, Any]:
        """UpdateServiceSafetyLock: body ``{"Lock": ...}``, answer ``{RequestId, Message}`` (PY7)."""
        level = call.json().get("Lock")
        self.store.set_safety_lock(call.service, str(level or ""))
        return {"Message": f"service safety lock updated to {level}"}

    def _regions(self, call: Call) -> dict[str, Any]:
        """DescribeRegions: ``{Regions: [{RegionId, RegionName}]}`` (eas-operations.md section 7)."""
        return {"Regions": [{"RegionId": rid, "RegionName": name} for rid, name in self.regions]}

    def _create(self, call: Call) -> dict[str, Any]:
        labels = {str(k): str(v) for k, v in json_param(call.query, "Labels", dict).items()}
        config = call.json()
        name = service_name_of(config)
        if name in self.foreign:  # names are unique per region across accounts (unverified for create)
            raise foreign(name)
        rec = self.store.create(config, labels, call.query.get("WorkspaceId", ""))
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
        """Newest first. ``ServiceConfig`` "is returned only if the service is deployed by using a
        custom image" (SDK ``ListServiceVersionsResponseBodyVersions.service_config`` docstring):
        a version whose image is an official one (``pai-eas/...``) has none, unless
        ``Fidelity.versions_service_config`` is ``always``."""
        versions = [self._version_view(v) for v in reversed(self.store.get(call.service).versions)]
        number, size = int_param(call.query, "PageNumber", 1), int_param(call.query, "PageSize", 100)
        page = page_of(versions, number, size)
        return {"PageNumber": number, "PageSize": size, "TotalCount": len(versions), "Versions": page}

    def _version_view(self, version: dict[str, Any]) -> dict[str, Any]:
        if self.store.fidelity.versions_service_config == "always":
            return dict(version)
        containers = json.loads(version["ServiceConfig"]).get("containers") or [{}]
        image = str((containers[0] or {}).get("image", "")) if isinstance(containers, list) else ""
        if self.store.catalogue.is_official(image):
            return {k: v for k, v in version.items() if k != "ServiceConfig"}
        return dict(version)

    def _switch_version(self, call: Call) -> dict[str, Any]:
        version = call.json().get("Version")
        self.store.switch_version(call.service, version)
        return {"Message": f"Service [{call.service}] is switching to version {version}"}

    def _events(self, call: Call) -> dict[str, Any]:
        """DescribeServiceEvent. ``Message`` "is formatted and returned in the JSON format" (SDK
        ``DescribeServiceEventResponseBodyEvents.message`` docstring): ``{"versionId": N,
        "message": "..."}`` with the service version the event belongs to, or plain text
        (``Fidelity.event_message``). The page order is undocumented: ``Fidelity.event_order``."""
        q = call.query
        start, end, kind = time_param(q, "StartTime"), time_param(q, "EndTime"), q.get("EventType")
        as_json = self.store.fidelity.event_message == "json"
        events = [
            {"Type": e["Type"], "Reason": e["Reason"], "Time": e["Time"],
             "Message": _event_json(e) if as_json else e["Message"]}
            for e in self.store.get(call.service).events
            if (not kind or e["Type"] == kind)
            and (start is None or e["ts"] >= start)
            and (end is None or e["ts"] <= end)
        ]
        if self.store.fidelity.event_order == "newest_first":
            events.reverse()
        return numbered_page(q, events, "Events", 100)

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
            "Port": self._server.ports[self.region],
            "InternetEndpoints": [self.internet_endpoint(rec.name)],
            "IntranetEndpoints": [self.intranet_endpoint(rec.name)],
        }
        return {"AccessToken": rec.access_token, "Message": "", "Endpoints": [endpoint]}

    def _signed_url(self, call: Call) -> dict[str, Any]:
        rec = self.store.get(call.service)
        kind = call.query.get("Type") or "webview"
        if kind not in ("webview", "monitor"):
            raise invalid("Type must be webview or monitor")
        seconds = min(int_param(call.query, "Expire", DEFAULT_SIGNED_URL_SECONDS), MAX_SIGNED_URL_SECONDS)
        expire = int(time.time()) + seconds
        path = f"{'/vpc' if bool_param(call.query, 'Internal') else ''}/{kind}/{rec.name}/"
        url = self._server.url_for(self.region)
        return {"SignedUrl": f"{url}{path}?expire={expire}&signature={self.link_signature(path, expire)}"}

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
            "SafetyLock": rec.safety_lock,
            "TrafficState": rec.traffic_state,  # Go SDK service_model.go (groups.py)
            "Weight": rec.weight,
        }


def _event_json(event: dict[str, Any]) -> str:
    """An event's ``Message`` in EAS's JSON form (compact, as in the issue's example)."""
    return json.dumps({"versionId": event.get("version", 0), "message": event["Message"]},
                      ensure_ascii=False, separators=(",", ":"))
