"""One service's ComfyUI: its HTTP API and websocket, its queue of jobs and history, running jobs
node by node (with ComfyUI's events), and what an API-edition instance answers for a request taken
from the EAS queue.
"""

from __future__ import annotations

import asyncio
import json
import logging
import mimetypes
import posixpath
import re
import threading
import time
import uuid
from typing import Any, Awaitable, Callable, Iterable

from aiohttp import web

from ..fidelity import Fidelity
from ..oss.streaming import send_object
from ..queue import NOT_FOUND, Signal
from .files import INTERNAL_ERROR, FileRoutes, internal_error
from .jobs import Interrupted, Job, NodeFailure, Run
from .mount import KNOWN_MODEL_FOLDERS, ServiceMount, object_info_for
from .outputs import SAVERS
from .validation import Validation, error_info, execution_order, invalid_prompt, validate_prompt

log = logging.getLogger(__name__)

MAX_HISTORY = 10000

Json = dict[str, Any]
Handler = Callable[[web.Request, "re.Match[str]"], Awaitable[web.StreamResponse]]


def _now_ms() -> int:
    return int(time.time() * 1000)


class ComfyUIEmulator:
    """One service's ComfyUI: its HTTP API, websocket, queue of jobs and history. Runs on the EAS
    sandbox's event loop; tests may set ``job_seconds`` and failures from any thread."""

    def __init__(self, mount: ServiceMount, job_seconds: float = 0.2, fidelity: Fidelity | None = None,
                 api_image: bool = False) -> None:
        self.mount = mount
        self.api_image = api_image  # the API-edition image: its container serves /api_prompt only
        self.job_seconds = job_seconds
        self.fidelity = fidelity or Fidelity()
        self.flags: Json = {}  # what POST /free asked for (ComfyUI's prompt_queue.set_flag)
        self.failures: dict[str, NodeFailure] = {}
        self.history: dict[str, Json] = {}
        self._pending: list[Job] = []
        self._running: list[Job] = []
        self._number = 0
        self._queued = Signal()
        self._runner: asyncio.Task[None] | None = None
        self._sockets: dict[str, web.WebSocketResponse] = {}
        self._save_lock = threading.Lock()
        # output node class -> what it writes and returns (a test may swap one)
        self._savers: dict[str, Callable[[Run, str, Json], Json]] = {
            class_type: self._saver(save) for class_type, save in SAVERS.items()}
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            (method, re.compile(pattern), handler) for method, pattern, handler in (
                ("GET", r"/?", self._index),
                ("GET", r"/ws", self._websocket),
                ("POST", r"/prompt", self._post_prompt),
                ("GET", r"/prompt", self._get_prompt),
                ("GET", r"/history", self._get_history),
                ("GET", r"/history/(?P<id>[^/]+)", self._get_history),
                ("POST", r"/history", self._post_history),
                ("GET", r"/queue", self._get_queue),
                ("POST", r"/queue", self._post_queue),
                ("POST", r"/interrupt", self._interrupt),
                ("GET", r"/view", self._view),
                ("GET", r"/object_info", self._object_info),
                ("GET", r"/object_info/(?P<class>[^/]+)", self._object_info),
                ("GET", r"/models", self._models),
                ("GET", r"/models/(?P<folder>[^/]+)", self._models),
                ("GET", r"/system_stats", self._system_stats),
                ("POST", r"/free", self._free),
                *FileRoutes(mount).routes(),
            )
        ]

    def _saver(self, save: Callable[..., Json]) -> Callable[[Run, str, Json], Json]:
        return lambda run, node_id, inputs: save(self.mount, run, node_id, inputs, self.fidelity.output_names)

    # -- test hooks ------------------------------------------------------------------------------
    def fail(self, target: str, message: str = "Sandbox fault: this node failed",
             exception_type: str = "RuntimeError") -> None:
        """Make nodes whose id or class_type is ``target`` raise when they run."""
        self.failures[target] = NodeFailure(message, exception_type)

    def clear_failures(self) -> None:
        self.failures.clear()

    def object_info(self) -> Json:
        return object_info_for(self.mount)

    def validate(self, prompt: Any) -> Validation:
        return validate_prompt(prompt, self.object_info(), self.mount.has_input)

    def close(self) -> None:
        cancel_tasks([self._runner] if self._runner else [])

    # -- HTTP --------------------------------------------------------------------------------------
    async def handle(self, request: web.Request, path: str) -> web.StreamResponse:
        """Serve ``path`` (the part after ``/api/predict/<svc>``; an ``/api`` prefix is ignored)."""
        if path.startswith("/api/"):
            path = path[len("/api"):]
        # aiohttp's ``RouteTableDef.get`` registers each GET route with ``allow_head=True`` (its
        # default), so ComfyUI's GET routes answer HEAD too
        method_wanted = "GET" if request.method == "HEAD" else request.method
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match and method == method_wanted:
                return await handler(request, match)
        return web.Response(status=404, text=NOT_FOUND)

    async def _index(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        return web.Response(text="<!DOCTYPE html><html><head><title>ComfyUI</title></head>"
                                 "<body>ComfyUI (eascomfy sandbox)</body></html>", content_type="text/html")

    async def serve_container(self, request: web.Request, path: str) -> web.StreamResponse:
        """A request that reached the container directly (a synchronous service): ComfyUI's HTTP
        API, or for the API-edition image its ``POST /api_prompt`` answered in the request (an
        unverified reading: the guide calls that image only through the queue)."""
        if not self.api_image:
            return await self.handle(request, path)
        if request.method != "POST" or path.rstrip("/") != "/api_prompt":
            return web.Response(status=404, text=NOT_FOUND)
        code, data = await self.api_prompt(path, await request.read())
        return web.Response(status=code, body=data, content_type="application/json")

    async def container_answer(self, path: str, body: bytes) -> tuple[int, bytes]:
        """What the container answers a POST the EAS queue hands it: (status, body), the body
        becoming the sink entry's data. The API-edition image runs ``/api_prompt``; any other
        image is ComfyUI, whose ``POST /prompt`` queues the workflow and answers its id."""
        if self.api_image:
            return await self.api_prompt(path, body)
        if path.removeprefix("/api").rstrip("/") != "/prompt":
            return 404, NOT_FOUND.encode()
        try:
            status, answer = await self.submit(json.loads(body or b"null"))
        except ValueError:
            return 500, INTERNAL_ERROR.encode()
        return status, json.dumps(answer).encode()

    async def _post_prompt(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:  # ComfyUI does not catch it either
            return internal_error()
        status, answer = await self.submit(body)
        return web.json_response(answer, status=status)

    async def submit(self, body: Any) -> tuple[int, Json]:
        """``POST /prompt``'s body -> (status, answer): validated, then queued."""
        if not isinstance(body, dict) or "prompt" not in body:
            error = error_info("no_prompt", "No prompt provided", "No prompt provided")
            return 400, {"error": error, "node_errors": {}}
        check = await asyncio.to_thread(self.validate, body["prompt"])  # lists the mount
        if not check.ok:
            return 400, {"error": check.error, "node_errors": check.node_errors}
        if "number" in body:
            number: float = float(body["number"])
        else:
            number = -self._number if body.get("front") else self._number
            self._number += 1
        extra_data = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra_data["client_id"] = body["client_id"]
        prompt_id = body["prompt_id"] if isinstance(body.get("prompt_id"), str) else str(uuid.uuid4())
        self._pending.append(Job(number, prompt_id, body["prompt"], extra_data, check.outputs))
        self._queued.notify()
        self._ensure_runner()
        await self._send_status()
        return 200, {"prompt_id": prompt_id, "number": number, "node_errors": check.node_errors}

    async def _get_prompt(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        return web.json_response(self._status())

    async def _get_history(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        prompt_id = match.groupdict().get("id")
        if prompt_id is not None:
            entry = self.history.get(prompt_id)
            return web.json_response({prompt_id: entry} if entry else {})
        items = list(self.history.items())
        max_items = request.query.get("max_items", "")
        if max_items.isdigit():
            items = items[len(items) - int(max_items):] if int(max_items) else []
        return web.json_response(dict(items))

    async def _post_history(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        body = await _json_object(request)
        if body is None:
            return internal_error()
        if body.get("clear"):
            self.history.clear()
        for prompt_id in body.get("delete") or []:
            self.history.pop(prompt_id, None)
        return web.Response()

    async def _get_queue(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        pending = sorted(self._pending, key=lambda job: job.number)
        return web.json_response({"queue_running": [job.item() for job in self._running],
                                  "queue_pending": [job.item() for job in pending]})

    async def _post_queue(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        """Pending prompts only: ``delete`` (ids) and ``clear``; a running one stays (server.py
        ``post_queue``: ``delete_queue_item``/``wipe_queue`` act on the queue, not the executor)."""
        body = await _json_object(request)
        if body is None:
            return internal_error()
        doomed = set(body.get("delete") or [])
        self._pending = [job for job in self._pending if not body.get("clear") and job.prompt_id not in doomed]
        await self._send_status()
        return web.Response()

    async def _interrupt(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        """``Fidelity.interrupt``: ``any`` is ComfyUI before PR #9607 (server.py ``post_interrupt``
        calls ``nodes.interrupt_processing()`` and never reads the body), so it stops whatever runs,
        whoever's it is; ``prompt_id`` is ComfyUI after it (Comfy-Org/ComfyUI#9607, merged
        2025-08-28: a ``prompt_id`` that is not the running prompt's is ignored; no ``prompt_id``, or
        no JSON body, interrupts as before). Pending prompts are never touched: ``POST /queue
        {"delete": [...]}`` removes those. Answers 200 with an empty body either way."""
        prompt_id = None
        if self.fidelity.interrupt == "prompt_id":
            prompt_id = (await _json_body(request)).get("prompt_id") or None
        for job in self._running:
            if prompt_id is None or prompt_id == job.prompt_id:
                job.interrupted = True
        return web.Response()

    async def _free(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        """server.py ``post_free``: ``{"unload_models": bool, "free_memory": bool}`` set flags the
        prompt worker reads between prompts; nothing to unload here."""
        body = await _json_object(request)
        if body is None:
            return internal_error()
        for flag in ("unload_models", "free_memory"):
            if body.get(flag):
                self.flags[flag] = body[flag]
        return web.Response()

    async def _view(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        query = request.query
        filename = query.get("filename", "")
        if not filename:
            return web.Response(status=404)
        if filename.startswith("/") or ".." in filename:
            return web.Response(status=400)
        kind = query.get("type", "output")
        if kind not in ("output", "input", "temp"):
            return web.Response(status=400)
        root = f"{self.mount.path}/{kind}"
        folder = posixpath.normpath(posixpath.join(root, query.get("subfolder", "")))
        if posixpath.commonpath([root, folder]) != root:
            return web.Response(status=403)
        filename = posixpath.basename(filename)
        reader = self.mount.open(f"{posixpath.relpath(folder, self.mount.path)}/{filename}")
        if reader is None:
            return web.Response(status=404)
        if request.method == "HEAD":  # the headers of the file's answer, without its body
            reader.close()
            return web.Response(headers={"Content-Type": mimetypes.guess_type(filename)[0] or "application/octet-stream"})
        with reader:
            content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
            response = web.StreamResponse(headers={"Content-Type": content_type,
                                                   "Content-Disposition": f'filename="{filename}"'})
            response.content_length = reader.meta.size
            await response.prepare(request)
            await send_object(response, reader, 0, reader.meta.size)
            await response.write_eof()
        return response

    async def _object_info(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        info = self.object_info()
        class_type = match.groupdict().get("class")
        if class_type is None:
            return web.json_response(info)
        return web.json_response({class_type: info[class_type]} if class_type in info else {})

    async def _models(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        folder = match.groupdict().get("folder")
        if folder is None:
            return web.json_response(list(KNOWN_MODEL_FOLDERS))
        if folder not in KNOWN_MODEL_FOLDERS:
            return web.Response(status=404)
        return web.json_response(self.mount.models([folder]))

    async def _system_stats(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        gib = 1 << 30
        return web.json_response({
            "system": {"os": "posix", "ram_total": 60 * gib, "ram_free": 50 * gib, "comfyui_version": "sandbox",
                       "python_version": "3.11 (eascomfy sandbox)", "pytorch_version": "sandbox",
                       "embedded_python": False, "argv": ["main.py", "--listen", "--port", "8000",
                                                          "--data-dir", self.mount.path]},
            "devices": [{"name": "cuda:0 NVIDIA A10 (sandbox)", "type": "cuda", "index": 0,
                         "vram_total": 24 * gib, "vram_free": 23 * gib,
                         "torch_vram_total": 0, "torch_vram_free": 0}],
        })

    # -- websocket ---------------------------------------------------------------------------------
    async def _websocket(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        if not ws.can_prepare(request).ok:
            return web.Response(status=400, text="Expected a websocket upgrade")
        await ws.prepare(request)
        sid = request.query.get("clientId") or uuid.uuid4().hex
        self._sockets[sid] = ws  # a reused clientId replaces the older socket, as in ComfyUI
        try:
            await _send_to(ws, "status", {"status": self._status(), "sid": sid})
            for job in self._running:  # a client that reconnects mid-job learns where it is
                if job.client_id == sid and job.node is not None:
                    await _send_to(ws, "executing", {"node": job.node, "display_node": job.node, "prompt_id": job.prompt_id})
            async for _ in ws:  # ComfyUI ignores what clients send here
                pass
        finally:
            if self._sockets.get(sid) is ws:
                del self._sockets[sid]
        return ws

    def _status(self) -> Json:
        return {"exec_info": {"queue_remaining": len(self._pending) + len(self._running)}}

    async def _send(self, event: str, data: Json, sid: str | None) -> None:
        """To the client ``sid``, or to every client when None (ComfyUI's ``send_sync``)."""
        targets = list(self._sockets.values()) if sid is None else [self._sockets[sid]] if sid in self._sockets else []
        for ws in targets:
            await _send_to(ws, event, data)

    async def _send_status(self) -> None:
        await self._send("status", {"status": self._status()}, None)

    async def _event(self, run: Run, event: str, data: Json, *, message: bool = False, broadcast: bool = False) -> None:
        """Events go to the job's client, or to everyone if it has none; a ``message`` (one of the
        history's status messages) is sent without a client only when ``broadcast``."""
        if message:
            run.messages.append([event, data])
            if run.job.client_id is None and not broadcast:
                return
        await self._send(event, data, run.job.client_id)

    # -- running jobs ----------------------------------------------------------------------------
    def _ensure_runner(self) -> None:
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run_queue())

    async def _run_queue(self) -> None:
        while True:
            version = self._queued.version
            if not self._pending:
                await self._queued.wait(version)
                continue
            job = min(self._pending, key=lambda j: j.number)  # first queued among equal numbers
            self._pending.remove(job)
            try:
                await self.execute(job)
            except Exception:  # a sandbox bug: keep serving the queue
                log.exception("ComfyUI sandbox failed on prompt %s", job.prompt_id)

    def new_job(self, prompt: Json, outputs: list[str], extra_data: Json | None = None) -> Job:
        job = Job(self._number, str(uuid.uuid4()), prompt, dict(extra_data or {}), outputs)
        self._number += 1
        return job

    async def execute(self, job: Job) -> Run:
        """Run ``job`` now: events, output files, history. Returns what it produced."""
        run, prompt_id = Run(job), job.prompt_id
        self._running.append(job)
        try:
            await self._send_status()
            await self._event(run, "execution_start", {"prompt_id": prompt_id, "timestamp": _now_ms()}, message=True)
            await self._event(run, "execution_cached", {"nodes": [], "prompt_id": prompt_id, "timestamp": _now_ms()},
                              message=True)
            order = execution_order(job.prompt, job.outputs)
            for node_id in order:
                await self._run_node(run, node_id, self.job_seconds / len(order))
            await self._event(run, "execution_success", {"prompt_id": prompt_id, "timestamp": _now_ms()}, message=True)
        except NodeFailure as exc:
            await self._fail(run, "execution_error", {
                "exception_message": str(exc), "exception_type": exc.exception_type,
                "traceback": [f"  (eascomfy sandbox) node {job.node} raised {exc.exception_type}\n"],
                "current_inputs": {k: [v] for k, v in job.prompt[job.node or ""]["inputs"].items() if not isinstance(v, list)},
                "current_outputs": list(run.executed)})
        except Interrupted:
            await self._fail(run, "execution_interrupted", {}, broadcast=True)
        finally:
            self._running.remove(job)
        self.history[prompt_id] = run.history()
        while len(self.history) > MAX_HISTORY:
            del self.history[next(iter(self.history))]
        await self._send_status()
        if job.client_id is not None:
            await self._send("executing", {"node": None, "prompt_id": prompt_id}, job.client_id)
        return run

    async def _fail(self, run: Run, event: str, details: Json, broadcast: bool = False) -> None:
        job = run.job
        data = {"prompt_id": job.prompt_id, "node_id": job.node, "node_type": job.prompt[job.node or ""]["class_type"],
                "executed": list(run.executed), **details, "timestamp": _now_ms()}
        run.success, run.failure = False, {"type": event, "data": data}
        await self._event(run, event, data, message=True, broadcast=broadcast)

    async def _run_node(self, run: Run, node_id: str, seconds: float) -> None:
        job = run.job
        node = job.prompt[node_id]
        job.node = node_id
        if job.interrupted:
            raise Interrupted()
        await self._event(run, "executing", {"node": node_id, "display_node": node_id, "prompt_id": job.prompt_id})
        steps = node["inputs"].get("steps")  # samplers report progress, in up to 4 ticks
        sampler = isinstance(steps, int) and not isinstance(steps, bool) and steps > 0
        ticks = min(steps, 4) if sampler else 1
        for tick in range(1, ticks + 1):
            await asyncio.sleep(seconds / ticks)
            if job.interrupted:
                raise Interrupted()
            if sampler:
                await self._event(run, "progress", {"value": steps * tick // ticks, "max": steps,
                                                    "prompt_id": job.prompt_id, "node": node_id})
        failure = self.failures.get(node_id) or self.failures.get(node["class_type"])
        if failure is not None:
            raise NodeFailure(str(failure), failure.exception_type)
        output = await asyncio.to_thread(self._save, run, node_id, node["class_type"], node["inputs"])
        run.executed.append(node_id)
        if output is not None:
            run.outputs[node_id] = output
            run.meta[node_id] = {"node_id": node_id, "display_node": node_id, "parent_node": None, "real_node_id": node_id}
            run.executed_events.append({"type": "executed", "data": {"node": node_id, "output": output,
                                                                     "prompt_id": job.prompt_id}})
            await self._event(run, "executed", {"node": node_id, "display_node": node_id, "output": output,
                                                "prompt_id": job.prompt_id})

    # -- output nodes ------------------------------------------------------------------------------
    def _save(self, run: Run, node_id: str, class_type: str, inputs: Json) -> Json | None:
        """An output node's files and UI output (on a worker thread: the mount's listing and writes
        block; the lock keeps choosing a file name and writing it together)."""
        saver = self._savers.get(class_type)
        if saver is None:
            return None
        with self._save_lock:
            return saver(run, node_id, inputs)

    # -- the API edition ---------------------------------------------------------------------------
    async def api_prompt(self, path: str, body: bytes) -> tuple[int, bytes]:
        """What the API-edition instance answers for a request taken from the input queue:
        (status, body). The body becomes the sink entry's data."""
        if path.rstrip("/") != "/api_prompt":
            return 404, NOT_FOUND.encode()
        try:
            prompt = json.loads(body or b"null")
        except ValueError as exc:
            error = invalid_prompt("The request body is not JSON.", str(exc))
            return 400, json.dumps({"error": error, "node_errors": {}}).encode()
        check = await asyncio.to_thread(self.validate, prompt)
        if not check.ok:
            return 400, json.dumps({"error": check.error, "node_errors": check.node_errors}).encode()
        run = await self.execute(self.new_job(prompt, check.outputs))
        return (200 if run.success else 500), run.sink_data()


async def _send_to(ws: web.WebSocketResponse, event: str, data: Json) -> None:
    """One ComfyUI event as a text frame; a client that went away is skipped."""
    try:
        await ws.send_str(json.dumps({"type": event, "data": data}))
    except (ConnectionError, RuntimeError):
        pass


async def _json_object(request: web.Request) -> Json | None:
    """The JSON object body, or None where ComfyUI's unguarded ``await request.json()`` (and
    ``json_data.get``) would raise: no body, bad JSON, not an object."""
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def _json_body(request: web.Request) -> Json:
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def cancel_tasks(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel tasks from any thread (a no-op once their loop is closed)."""
    for task in tasks:
        try:
            task.get_loop().call_soon_threadsafe(task.cancel)
        except RuntimeError:
            pass
