"""``EasSandbox``: the EAS emulator's server on 127.0.0.1 (the OpenAPI and, on the same port, each
service's endpoints and signed links), its lifecycle, and direct access to its state for tests.
A ready service's requests go to a backend (``backends[name]``, then ``default_backend``): the
hook the ComfyUI emulator attaches to.
"""

from __future__ import annotations

import hmac
import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

from aiohttp import web

from ..server import CONTROL_PREFIX, RecordedRequest, SandboxServer, ServerBacked
from .errors import EasError, api_not_found, eas_error_response
from .openapi import OpenApi
from .params import config_json
from .state import WAITING, ImageCatalogue, ServiceRecord, ServiceStore, Timings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictContext:
    """What a backend gets with a request on a ready service's endpoint or signed link."""

    service: str
    subpath: str  # "" or "/prompt", "/history/x", ... (after /api/predict/<service>)
    internal: bool  # came through the intranet (VPC) form
    kind: str  # "predict", "webview" or "monitor"
    config: dict[str, Any]


Backend = Callable[[web.Request, PredictContext], Awaitable[web.StreamResponse]]


def action_of(request: web.Request) -> str | None:
    """The OpenAPI action a request names (what the recorder and faults match on)."""
    return request.headers.get("x-acs-action")


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
        self._server = SandboxServer(self._build_app, eas_error_response, action_of, port=port, name="eas")
        self.openapi = OpenApi(self.store, region, self._server)

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
    ) -> None:
        """The next version created for ``name`` (deploy, update) crash-loops: it becomes Failed with
        ``reason``, each instance logs ``lines`` on every start. ``diagnosis`` (``error``,
        ``causes``, ``advices``) replaces the default DescribeServiceDiagnosis entry."""
        plan = {"lines": list(lines), "reason": reason, "message": message, "restarts": restarts, "exit": exit_code}
        self.store.plan_crash(name, {**plan, **(diagnosis or {})})

    def add_logs(self, name: str, lines: list[str], instance: int | str = 0, container: str = "worker0") -> None:
        """Append ``lines`` to an instance's current log (by index or name)."""
        self.store.add_log_lines(name, instance, list(lines), container)

    def restart_instance(
        self, name: str, instance: int | str = 0, reason: str = "OOMKilled", exit_code: int = 137, lines: list[str] = ()
    ) -> str:
        """An instance's container dies after logging ``lines`` and starts again; its name."""
        return self.store.restart_instance(name, instance, reason, exit_code, list(lines))

    def writes(self) -> list[RecordedRequest]:
        """Recorded OpenAPI calls that are not GETs (service endpoint traffic is not included)."""
        return [r for r in self.recorder.all() if r.method != "GET" and r.path.startswith("/api/v2/")]

    def internet_endpoint(self, name: str) -> str:
        return self.openapi.internet_endpoint(name)

    def intranet_endpoint(self, name: str) -> str:
        return self.openapi.intranet_endpoint(name)

    # -- the application -----------------------------------------------------------------------
    def _build_app(self, server: SandboxServer) -> web.Application:
        app = web.Application(middlewares=[self._errors], client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/v2/{tail:.*}", self.openapi.handle)
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
        good = hmac.compare_digest(self.openapi.link_signature(path, expire), request.query.get("signature", ""))
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
            config=json.loads(config_json(rec.config)),
        )
        return await self.route_to_backend(request, ctx)

    async def route_to_backend(self, request: web.Request, ctx: PredictContext) -> web.StreamResponse:
        """The hook for service emulators (e.g. ComfyUI): ``backends[name]``, else
        ``default_backend``, else a plain ``{"ok": true}``."""
        backend = self.backends.get(ctx.service) or self.default_backend
        if backend is None:
            return web.json_response({"ok": True})
        return await backend(request, ctx)
