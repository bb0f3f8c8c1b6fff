"""What runs behind each service of the EAS sandbox: ``attach`` makes an ``Attachment`` the EAS
sandbox's default backend; for every service it builds (and rebuilds when the edition, the mount
or ``metadata.type`` change) a ``ServiceBackend``: a ``ComfyUIEmulator`` on the service's mount,
plus, for an Async service (``metadata.type: "Async"``), the ``EasQueue`` in front of it and one
worker per instance. A service that is not Async is synchronous and has no sink: its requests go
straight to the container, so queue calls (``/sink``, watches) get the container's 404.

The queue is kept under the EAS sandbox's state dir, ``queue/<ServiceUid>/`` (a service created
again under the same name gets a new uid, so an empty queue, as on EAS), and survives a restart
of the sandbox. Workers start with the first request to the service after a (re)start, as a
client's watch on the sink or a new put; entries a worker held when the sandbox stopped are run
again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..fidelity import Fidelity
from ..eas.warmup import KEY as WARMUP_KEY
from ..queue import EasQueue
from .emulator import ComfyUIEmulator, cancel_tasks
from .mount import ServiceMount

if TYPE_CHECKING:
    from ..eas.sandbox import EasSandbox, PredictContext
    from ..oss.sandbox import OssSandbox

log = logging.getLogger(__name__)

Json = dict[str, Any]


def edition_of(config: Json) -> str:
    """``api``, ``cluster`` or ``standard``, from the suffix of the first container's image tag:
    what the container runs (the API-edition image serves ``/api_prompt`` only)."""
    image = str(((config.get("containers") or [{}])[0] or {}).get("image", ""))
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    suffix = tag.rpartition("-")[2] if "-" in tag else ""
    return suffix if suffix in ("api", "cluster") else "standard"


def is_async(config: Json, fidelity: Fidelity) -> bool:
    """Whether EAS puts its queue (and a sink) in front of the service. ``metadata_type``: the
    config has ``metadata.type: "Async"`` (alipai ``pai/model/_model.py`` sets it for an
    asynchronous service, ``pai/predictor.py`` checks ``type == "Async"``; the SDK's ServiceType
    values are Standard, Async, OfflineTask, Proxima). ``image_tag``: the image tag ends in ``-api``
    (the emulator's old guess; ``Fidelity.async_from``)."""
    if fidelity.async_from == "image_tag":
        return edition_of(config) == "api"
    metadata = config.get("metadata") if isinstance(config.get("metadata"), dict) else {}
    return metadata.get("type") == "Async"


class ServiceBackend:
    """What runs behind one service: ComfyUI (the API-edition image: its ``/api_prompt`` only),
    plus, for an Async service, the queue and its workers."""

    def __init__(self, name: str, edition: str, mount: ServiceMount, instances: int, job_seconds: float,
                 fidelity: Fidelity, uid: str = "", queue_dir: Path | None = None, asynchronous: bool = False) -> None:
        self.name, self.edition, self.mount, self.instances, self.uid = name, edition, mount, instances, uid
        self.asynchronous = asynchronous
        self.comfyui = ComfyUIEmulator(mount, job_seconds, fidelity, api_image=edition == "api")
        self.queue = EasQueue(name, queue_dir) if asynchronous else None
        self._workers: list[asyncio.Task[None]] = []

    async def handle(self, request: web.Request, ctx: PredictContext) -> web.StreamResponse:
        if ctx.kind == "monitor":
            return web.Response(text="monitor (eascomfy sandbox)")
        if ctx.kind == "webview":
            return await self.comfyui.handle(request, ctx.subpath)
        if self.queue is None:  # synchronous: the gateway hands the request to the container
            return await self.comfyui.serve_container(request, ctx.subpath)
        self._staff()
        return await self.queue.handle(request, ctx.subpath)

    def _staff(self) -> None:
        """One worker per instance (started on the loop, on the first request)."""
        self._workers = [w for w in self._workers if not w.done()]
        for extra in self._workers[self.instances:]:
            extra.cancel()
        del self._workers[self.instances:]
        while len(self._workers) < self.instances:
            worker = f"{self.name}-{uuid.uuid4().hex[:8]}"
            self._workers.append(asyncio.get_running_loop().create_task(self._work(worker)))

    async def _work(self, worker: str) -> None:
        assert self.queue is not None
        queue = self.queue
        while True:
            message = await queue.input.take(worker)
            try:
                code, data = await self.comfyui.container_answer(message.path, message.data)
            except asyncio.CancelledError:
                queue.input.release(worker)
                raise
            except Exception:  # a sandbox bug: answer like a crashed instance would
                log.exception("ComfyUI sandbox failed on queue entry %s", message.index)
                code, data = 500, b"500 Internal Server Error"
            tags = {**message.tags, "requestId": message.request_id}
            if code != 200:
                tags["lastCode"] = str(code)
            queue.sink.put(data, tags, request_id=message.request_id)
            queue.input.remove([message.index])

    def close(self) -> None:
        self.comfyui.close()
        cancel_tasks(self._workers)


class Attachment:
    """The emulators attached to an ``EasSandbox`` (its ``default_backend``), one set per service,
    made on first use from the service's stored config and remade when its edition or mount change."""

    def __init__(self, eas: EasSandbox, oss: OssSandbox, job_seconds: float = 0.2) -> None:
        self.eas, self.oss = eas, oss
        self._job_seconds = job_seconds
        self._previous = eas.default_backend
        self._services: dict[tuple[str, str], ServiceBackend] = {}  # (region, name) -> backend
        self._delays: dict[str, float] = {}  # service -> its own job seconds (``delay``)
        self._lock = threading.Lock()

    @property
    def job_seconds(self) -> float:
        return self._job_seconds

    @job_seconds.setter
    def job_seconds(self, seconds: float) -> None:
        """How long a job takes, on every service (``comfyui(name).job_seconds`` sets one); it
        also forgets every ``delay``."""
        with self._lock:
            self._job_seconds = seconds
            self._delays.clear()
            for backend in self._services.values():
                backend.comfyui.job_seconds = seconds

    def delay(self, service: str, seconds: float) -> None:
        """How long a job takes on ``service`` (in every region), also on a service that does not
        exist yet: a canary made by the command under test is slow from its first job."""
        with self._lock:
            self._delays[service] = seconds
            for (_, name), backend in self._services.items():
                if name == service:
                    backend.comfyui.job_seconds = seconds

    async def handle(self, request: web.Request, ctx: PredictContext) -> web.StreamResponse:
        return await self._backend(ctx.service, ctx.config, ctx.service_uid, ctx.region).handle(request, ctx)

    async def warm_up(self, service: str, region: str, config: Json, uid: str) -> tuple[bool, str, int]:
        """EAS's warm-up of ``service``'s new instances (``sandbox/eas/warmup.py``): every line of
        the request file on the OSS emulator, sent to the container one after the other, each run
        to its end. UNVERIFIED: the container path a line goes to (here ComfyUI's ``POST
        /prompt``, or ``/api_prompt`` for the API image)."""
        url = str(config.get(WARMUP_KEY))
        bucket, _, key = url.removeprefix("oss://").partition("/")
        try:
            data = await asyncio.to_thread(self.oss.object_bytes, bucket, key)
        except KeyError:
            return False, f"the warm-up request file {url} does not exist", 0
        lines = [line for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
        if self.eas.fidelity.warmup_repeat == "five_times":  # an older doc: each file five times in a row
            lines *= 5
        comfy = self._backend(service, config, uid, region).comfyui
        path = "/api_prompt" if comfy.api_image else "/prompt"
        for n, line in enumerate(lines, 1):
            code, answer = await comfy.container_answer(path, line.encode())
            if code == 200 and not comfy.api_image:  # ComfyUI queued it: wait for its end
                prompt_id = json.loads(answer)["prompt_id"]
                while prompt_id not in comfy.history:
                    await asyncio.sleep(0.02)
                if comfy.history[prompt_id]["status"]["status_str"] != "success":
                    code = 500
            if code != 200:
                return False, f"warm-up request {n} of {url} failed ({code}): {_why(answer)}", n
        return True, f"{len(lines)} warm-up request(s) from {url} sent", len(lines)

    def comfyui(self, service: str, region: str | None = None) -> ComfyUIEmulator:
        """The service's ComfyUI (made now if needed), e.g. to set ``job_seconds`` or ``fail``."""
        region = region or self.eas.region
        return self._backend(service, *self._config(service, region), region).comfyui

    def queue(self, service: str, region: str | None = None) -> EasQueue:
        region = region or self.eas.region
        queue = self._backend(service, *self._config(service, region), region).queue
        if queue is None:
            raise ValueError(f"{service} is not an Async service: it has no queue")
        return queue

    def close(self) -> None:
        """Detach: the EAS sandbox gets its previous backend back; workers stop."""
        self.eas.default_backend = self._previous
        self.eas.warmer = None
        with self._lock:
            backends, self._services = list(self._services.values()), {}
        for backend in backends:
            backend.close()

    def __enter__(self) -> "Attachment":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _config(self, service: str, region: str) -> tuple[Json, str]:
        record = self.eas.get_service(service, region)
        if record is None:
            raise KeyError(f"no service {service!r} in {region} in the EAS sandbox")
        return record["config"], str(record["service_uid"])

    def _backend(self, service: str, config: Json, uid: str, region: str) -> ServiceBackend:
        edition, mount = edition_of(config), ServiceMount.of_service(self.oss, service, config)
        asynchronous = is_async(config, self.eas.fidelity)
        instances = max(1, int((config.get("metadata") or {}).get("instance") or 1))
        with self._lock:
            backend = self._services.get((region, service))
            if backend is None or (backend.edition, backend.mount, backend.uid, backend.asynchronous) != (
                    edition, mount, uid, asynchronous):
                if backend is not None:
                    backend.close()
                queue_dir = self.eas.state_dir / "queue" / uid if uid else None
                seconds = self._delays.get(service, self._job_seconds)
                backend = self._services[(region, service)] = ServiceBackend(service, edition, mount, instances, seconds,
                                                                   self.eas.fidelity, uid, queue_dir, asynchronous)
            backend.instances = instances
            return backend


def _why(answer: bytes) -> str:
    """ComfyUI's refusal in one line: its error message and the first node error's details."""
    try:
        data = json.loads(answer)
    except ValueError:
        return answer[:200].decode(errors="replace")
    if not isinstance(data, dict) or not isinstance(data.get("error"), dict):
        return answer[:200].decode(errors="replace")
    why = str(data["error"].get("message", ""))
    for node, errors in (data.get("node_errors") or {}).items():
        for error in errors.get("errors", [])[:1]:
            why += f"; node {node}: {error.get('message', '')} {error.get('details', '')}".rstrip()
        break
    return why


def attach(eas: EasSandbox, oss: OssSandbox, job_seconds: float = 0.2) -> Attachment:
    """Serve every service of ``eas`` with a ComfyUI (or, API edition, its queue) whose data dir is
    the service's OSS mount on ``oss``. Call it after both are started; ``close()`` detaches."""
    attachment = Attachment(eas, oss, job_seconds)
    eas.default_backend = attachment.handle
    eas.warmer = attachment.warm_up
    return attachment
