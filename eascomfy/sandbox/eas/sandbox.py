"""``EasSandbox``: the EAS emulator's server on 127.0.0.1 (the OpenAPI and, on the same port, each
service's endpoints and signed links; one port per region served), its lifecycle, and direct
access to its state for tests.
A ready service's requests go to a backend (``backends[name]``, then ``default_backend``): the
hook the ComfyUI emulator attaches to.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Mapping

from aiohttp import web

from ..fidelity import Fidelity, fidelity_control
from ..regions import DEFAULT_REGION, served
from ..server import CONTROL_PREFIX, FAULT_KEY, RecordedRequest, SandboxServer, ServerBacked
from .errors import EasError, api_not_found, eas_error_response
from .openapi import OpenApi, intranet_host
from .params import config_json
from .images import ImageCatalogue
from . import warmup
from .state import WAITING, ServiceRecord, ServiceStore, Timings, split_single_region_state

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictContext:
    """What a backend gets with a request on a ready service's endpoint or signed link."""

    service: str
    subpath: str  # "" or "/prompt", "/history/x", ... (after /api/predict/<service>)
    internal: bool  # came through the intranet (VPC) form
    kind: str  # "predict", "webview" or "monitor"
    config: dict[str, Any]
    service_uid: str = ""  # new for every CreateService, even of a name used before
    region: str = DEFAULT_REGION  # the endpoint (port) the request came in on


Backend = Callable[[web.Request, PredictContext], Awaitable[web.StreamResponse]]
Warmer = Callable[[str, str, dict[str, Any], str], Awaitable[tuple[bool, str, int]]]
WARMUP_POLL = 0.05  # seconds between looks for a version that came up and needs its warm-up
WARMUPS = web.AppKey("warmups", asyncio.Task)


def action_of(request: web.Request) -> str | None:
    """The OpenAPI action a request names (what the recorder and faults match on)."""
    return request.headers.get("x-acs-action")


class EasSandbox(ServerBacked):
    """The EAS OpenAPI emulator on 127.0.0.1, plus each service's endpoint on the same port.

    It serves ``region`` (the default) and any other ``regions`` asked for, each on its own port
    (``ports`` maps a region to one; 0 or absent picks a free one; ``port`` is the default
    region's): the endpoint is the region, as on EAS, whose CreateService carries no region. Each
    region has its own services, persisted in ``state_dir/eas/<region>/state.json``.
    """

    def __init__(
        self,
        state_dir: Path | None = None,
        port: int = 0,
        timings: Timings | None = None,
        catalogue: ImageCatalogue | None = None,
        region: str = DEFAULT_REGION,
        fidelity: Fidelity | None = None,
        regions: Iterable[str] | None = None,
        ports: Mapping[str, int] | None = None,
    ) -> None:
        self.region = region
        self.regions = served(region, regions)
        self.fidelity = fidelity or Fidelity()
        self.timings = timings or Timings()
        self.catalogue = catalogue or ImageCatalogue()
        # Without a state_dir the state lives in a temporary directory removed with this object.
        self._tmp = tempfile.TemporaryDirectory(prefix="eas-sandbox-") if state_dir is None else None
        self.state_dir = Path(self._tmp.name) if self._tmp else Path(state_dir or ".")
        split_single_region_state(self.state_dir / "eas")
        self.stores = {
            r: ServiceStore(self.state_dir / "eas" / r / "state.json", r, self.timings, self.catalogue,
                            fidelity=self.fidelity)
            for r in self.regions
        }
        self.backends: dict[str, Backend] = {}
        self.default_backend: Backend | None = None
        # Who sends a service's warm-up requests (``warmup.py``): (service, region, config, uid) ->
        # (ok, message, requests sent); the ComfyUI attachment sets it. None: warm-ups never end.
        self.warmer: Warmer | None = None
        self._warming: dict[tuple[str, str, str], asyncio.Task[None]] = {}
        controls = {"fidelity": fidelity_control(self.fidelity), "foreign": self._foreign_control}
        sites = {r: (ports or {}).get(r, port if r == region else 0) for r in self.regions}
        self._server = SandboxServer(self._build_app, self.error_response, action_of, name="eas",
                                     controls=controls, sites=sites)
        self.openapis = {r: OpenApi(self.stores[r], r, self._server) for r in self.regions}
        for api in self.openapis.values():  # DescribeRegions answers the same at every endpoint
            api.regions = [(r, r) for r in self.regions]

    @property
    def store(self) -> ServiceStore:
        """The default region's services."""
        return self.stores[self.region]

    @property
    def openapi(self) -> OpenApi:
        return self.openapis[self.region]

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
        """What the SDK ``Config(endpoint=...)`` wants (with ``protocol="http"``), default region."""
        return self.endpoint_for(self.region)

    def endpoint_for(self, region: str) -> str:
        """``host:port`` of ``region``'s endpoint (KeyError when it is not served)."""
        return f"{self._server.host}:{self._server.ports[region]}"

    def region_of(self, request: web.Request) -> str:
        """The region whose endpoint (port) a request came in on."""
        return self._server.site_of(request)

    def get_service(self, name: str, region: str | None = None) -> dict[str, Any] | None:
        """The stored record (config parsed, status, versions, labels, events, token), or None."""
        rec = self.stores[region or self.region].snapshot(name)
        return asdict(rec) if rec else None

    def set_stuck(self, name: str, status: str | None = WAITING, region: str | None = None) -> None:
        """Keep ``name`` in ``status`` instead of Running (e.g. Waiting for resources); None frees it."""
        self.stores[region or self.region].set_stuck(name, status)

    def mark_foreign(self, name: str, foreign: bool = True, region: str | None = None) -> None:
        """Make ``name`` a service another account owns (in ``region``, or every region served):
        calls naming it (CreateService too) answer 403 ``Forbidden.PrivilegeCheckFailed``. Also
        ``POST /_sandbox/foreign {"name": ...}`` (``DELETE`` with the same body undoes it)."""
        for r in [region] if region else self.regions:
            if foreign:
                self.openapis[r].foreign.add(name)
            else:
                self.openapis[r].foreign.discard(name)

    async def _foreign_control(self, request: web.Request) -> web.StreamResponse:
        region = self.region_of(request)
        if request.method in ("POST", "DELETE"):
            body = await request.json()
            if not isinstance(body, dict) or not isinstance(body.get("name"), str):
                return web.json_response({"error": 'give {"name": "<service>"}'}, status=400)
            self.mark_foreign(body["name"], request.method == "POST", region)
        return web.json_response(sorted(self.openapis[region].foreign))

    def autoscale(self, name: str, instances: int) -> None:
        """Move ``name`` to ``instances`` as its autoscaler would (in place, no new version)."""
        self.store.scale(name, instances)

    # instances, logs and diagnosis (sandbox/eas/instances.py)
    def fail_deploy(
        self,
        name: str,
        lines: list[str],
        reason: str = "CrashLoopBackOff",
        message: str = "Container worker0 keeps exiting",
        *,
        restarts: int = 3,
        exit_code: int = 1,
        diagnosis: dict[str, Any] | None = None,
        region: str | None = None,
    ) -> None:
        """The next version created for ``name`` (deploy, update) crash-loops: it becomes Failed with
        ``reason``, each instance logs ``lines`` on every start. ``diagnosis`` (``error``,
        ``causes``, ``advices``) replaces the default DescribeServiceDiagnosis entry."""
        plan = {"lines": list(lines), "reason": reason, "message": message, "restarts": restarts, "exit": exit_code}
        self.stores[region or self.region].plan_crash(name, {**plan, **(diagnosis or {})})

    def add_logs(self, name: str, lines: list[str], instance: int | str = 0, container: str = "worker0",
                 region: str | None = None) -> None:
        """Append ``lines`` to an instance's current log (by index or name)."""
        self.stores[region or self.region].add_log_lines(name, instance, list(lines), container)

    def restart_instance(
        self, name: str, instance: int | str = 0, reason: str = "OOMKilled", exit_code: int = 137, lines: list[str] = (),
        region: str | None = None,
    ) -> str:
        """An instance's container dies after logging ``lines`` and starts again; its name."""
        return self.stores[region or self.region].restart_instance(name, instance, reason, exit_code, list(lines))

    def writes(self) -> list[RecordedRequest]:
        """Recorded OpenAPI calls that are not GETs (service endpoint traffic is not included)."""
        return [r for r in self.recorder.all() if r.method != "GET" and r.path.startswith("/api/v2/")]

    def internet_endpoint(self, name: str, region: str | None = None) -> str:
        return self.openapis[region or self.region].internet_endpoint(name)

    def intranet_endpoint(self, name: str, region: str | None = None) -> str:
        return self.openapis[region or self.region].intranet_endpoint(name)

    def error_response(self, request: web.Request, status: int, code: str, message: str) -> web.Response:
        """An error in EAS's shape; a throttling answer asks the client to wait one second, in the
        unit ``Fidelity.retry_after_unit`` names (the SDK's own retry reads milliseconds), unless
        the injected fault names its own value (``Fault.retry_after``)."""
        retry_after = "1000" if self.fidelity.retry_after_unit == "ms" else "1"
        fault = request.get(FAULT_KEY)
        if fault is not None and fault.retry_after is not None:
            retry_after = str(fault.retry_after)
        return eas_error_response(request, status, code, message, retry_after)

    # -- the application -----------------------------------------------------------------------
    def _build_app(self, server: SandboxServer) -> web.Application:
        app = web.Application(middlewares=[self._errors], client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/v2/{tail:.*}", self._openapi)
        for prefix in ("", "/vpc"):
            app.router.add_route("*", prefix + "/api/predict/{service}{subpath:.*}", self._predict)
            app.router.add_route("*", prefix + "/{kind:webview|monitor}/{service}{subpath:.*}", self._signed_visit)
        app.on_startup.append(self._start_warmups)
        app.on_cleanup.append(self._stop_warmups)
        return app

    # -- warm-up (warmup.py): the engine sends a new version's warm-up requests ------------------
    async def _start_warmups(self, app: web.Application) -> None:
        app[WARMUPS] = asyncio.get_running_loop().create_task(self._watch_warmups())

    async def _stop_warmups(self, app: web.Application) -> None:
        for task in [app[WARMUPS], *self._warming.values()]:
            task.cancel()
        await asyncio.gather(app[WARMUPS], *self._warming.values(), return_exceptions=True)
        self._warming.clear()

    async def _watch_warmups(self) -> None:
        while True:
            await asyncio.sleep(WARMUP_POLL)
            if self.warmer is None:
                continue
            for region, store in self.stores.items():
                for rec in store.all():
                    key = (region, rec.name, json.dumps(warmup.generation(rec)))
                    if warmup.pending(rec) and key not in self._warming:
                        self._warming[key] = asyncio.get_running_loop().create_task(self._warm(region, rec))

    async def _warm(self, region: str, rec: ServiceRecord) -> None:
        assert self.warmer is not None
        try:
            ok, message, sent = await self.warmer(rec.name, region, rec.config, rec.service_uid)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a sandbox bug: fail the warm-up visibly
            log.exception("EAS sandbox warm-up of %s failed", rec.name)
            ok, message, sent = False, f"warm-up failed: {exc}", 0
        self.stores[region].warmed(rec.name, warmup.generation(rec), ok, message, sent)

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
        return self.error_response(request, error.status, error.code, error.message)

    async def _openapi(self, request: web.Request) -> web.StreamResponse:
        return await self.openapis[self.region_of(request)].handle(request)

    # -- service endpoints -----------------------------------------------------------------------
    async def _predict(self, request: web.Request) -> web.StreamResponse:
        region, name = self.region_of(request), request.match_info["service"]
        rec = self.stores[region].find(name)
        expected = rec.access_token if rec is not None else ""
        if rec is None:  # a group's endpoint: one of its members serves (sandbox/eas/groups.py)
            groups = self.openapis[region].groups
            if not groups.members(name):
                return web.Response(status=404, text="service not found")
            expected, rec = groups.token(name), groups.route(name)
        token = request.headers.get("Authorization", "")
        if not hmac.compare_digest(token.encode(), expected.encode()):
            return web.Response(status=401, text="Unauthorized")
        if rec is None:
            return web.Response(status=503, text="no healthy upstream")
        return await self._serve(request, rec, "predict")

    async def _signed_visit(self, request: web.Request) -> web.StreamResponse:
        region = self.region_of(request)
        rec = self.stores[region].find(request.match_info["service"])
        if rec is None:
            return web.Response(status=404, text="service not found")
        internal = request.path.startswith("/vpc/")
        path = f"{'/vpc' if internal else ''}/{request.match_info['kind']}/{rec.name}/"
        try:
            expire = int(request.query.get("expire", ""))
        except ValueError:
            return web.Response(status=403, text="invalid signed url")
        good = hmac.compare_digest(self.openapis[region].link_signature(path, expire), request.query.get("signature", ""))
        if not good or time.time() > expire:
            return web.Response(status=403, text="signed url expired or invalid")
        return await self._serve(request, rec, request.match_info["kind"])

    async def _serve(self, request: web.Request, rec: ServiceRecord, kind: str) -> web.StreamResponse:
        if not self.stores[rec.region].is_ready(rec):
            return web.Response(status=503, text="no healthy upstream")
        ctx = PredictContext(
            service=rec.name,
            subpath=request.match_info["subpath"],
            internal=self._internal(request, rec.region),
            kind=kind,
            config=json.loads(config_json(rec.config)),
            service_uid=rec.service_uid,
            region=rec.region,
        )
        return await self.route_to_backend(request, ctx)

    @staticmethod
    def _internal(request: web.Request, region: str) -> bool:
        """Came through the intranet: the ``/vpc`` path form, or the VPC host name (``Host`` header)."""
        return request.path.startswith("/vpc/") or request.host.split(":")[0] == intranet_host(region)

    async def route_to_backend(self, request: web.Request, ctx: PredictContext) -> web.StreamResponse:
        """The hook for service emulators (e.g. ComfyUI): ``backends[name]``, else
        ``default_backend``, else a plain ``{"ok": true}``."""
        backend = self.backends.get(ctx.service) or self.default_backend
        if backend is None:
            return web.json_response({"ok": True})
        return await backend(request, ctx)
