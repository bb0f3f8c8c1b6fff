"""A ComfyUI emulator behind the EAS sandbox's service endpoints, reading models and custom nodes
from, and writing outputs into, the service's mount on the OSS sandbox.

    eas, oss = EasSandbox().start(), OssSandbox().start()
    attachment = attach(eas, oss, job_seconds=0.05)     # every service now runs "ComfyUI"
    attachment.comfyui("my_svc").fail("19", "CUDA out of memory")

The edition comes from the tag of ``containers[0].image``: ``-api`` is the API edition, anything
else (standard, ``-cluster``) serves ComfyUI's HTTP API on ``/api/predict/<svc>/...`` (and under
``/api/...`` like ComfyUI): ``POST /prompt``, ``GET /prompt``, ``GET|POST /history[/{id}]``,
``GET /view``, ``GET|POST /queue``, ``POST /interrupt``, ``GET /object_info[/{class}]``,
``GET /models[/{folder}]``, ``GET /system_stats``, ``GET /`` and the websocket ``/ws?clientId=``.
Unknown routes answer 404 ``404 page not found``. Signed WebUI links (``/webview/<svc>/``) reach the
same app on every edition.

The API edition is an ``EasQueue`` (see ``queue.py``): ``POST /api_prompt?task_id=T`` with the
bare workflow is put on the input queue; ``metadata.instance`` workers take entries one at a time,
run them, and put the result on the sink with the input's tags plus ``requestId`` (and
``lastCode`` when it is not 200), then commit the input entry. Sink data:

* success: ``[{"type": "executed", "data": {"node", "output", "prompt_id"}}, ..., {node: output}]``,
  the shape of the guide's sample (``tests/fixtures/seed-sink-messages.jsonl``);
* a workflow ComfyUI refuses: ``lastCode`` 400 and ComfyUI's ``/prompt`` error body
  ``{"error": {...}, "node_errors": {...}}`` (the queue cannot validate, so the put succeeds);
* a node failing at run time: ``lastCode`` 500 and ``[executed events..., {"type":
  "execution_error", "data": {prompt_id, node_id, node_type, executed, exception_message,
  exception_type, traceback, current_inputs, current_outputs, timestamp}}]`` (or
  ``execution_interrupted``);
* a POST to another path: ``lastCode`` 404, data ``404 page not found``.
The failure shapes are guesses, unverified against the real API-edition image.

Object info is ``data/object_info.json`` (the guide's 11 node classes) adjusted to the mount: model
combos (``ckpt_name``, ...) list the files really in ``models/<folder>/``, and a custom node class
exists only when its pack's folder is in ``custom_nodes/`` (``CUSTOM_NODE_PACKS``, case-insensitive).
``/prompt`` validates like ComfyUI's ``validate_prompt`` (same error types, messages and
``node_errors``; outputs whose inputs are fine still run when others fail). Jobs run one at a time,
``job_seconds`` each; SaveImage, SaveAnimatedWEBP and VHS_VideoCombine write small real files named
like ComfyUI's under ``output/`` (or ``temp/``), and a prefix escaping ``output/`` fails the node
with ComfyUI's message. Not emulated: node caching (ComfyUI skips nodes whose inputs did not change,
so re-running an identical workflow returns the earlier files without writing new ones), batches,
previews, uploads and ``%date%``-style prefix variables.

Faults: ``fail(node id or class_type, message, exception_type)`` makes that node raise at run time;
``job_seconds`` is per emulator.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import mimetypes
import posixpath
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable

from aiohttp import web

from . import media
from .oss.streaming import send_object
from .queue import NOT_FOUND, EasQueue, Signal

if TYPE_CHECKING:
    from .eas.sandbox import EasSandbox, PredictContext
    from .oss.sandbox import OssSandbox
    from .oss.store import ObjectReader

__all__ = ["Attachment", "ComfyUIEmulator", "Mount", "attach", "edition_of", "validate_prompt"]

log = logging.getLogger(__name__)

DATA = Path(__file__).with_name("data")
DEFAULT_MOUNT_PATH = "/code/data-oss"
LOCAL_BUCKET = "eas-sandbox-local"  # a service without an OSS mount keeps its files here, per service
MAX_HISTORY = 10000
IMAGE_SIZE = 16  # outputs are IMAGE_SIZE x IMAGE_SIZE
MODEL_EXTENSIONS = (".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft")
MODEL_FOLDERS: dict[str, tuple[str, ...]] = {  # combo input -> folders under models/ it lists
    "ckpt_name": ("checkpoints",),
    "lora_name": ("loras",),
    "vae_name": ("vae",),
    "control_net_name": ("controlnet",),
    "unet_name": ("diffusion_models", "unet"),
}
CUSTOM_NODE_PACKS: dict[str, tuple[str, ...]] = {  # folder in custom_nodes/ (lower case) -> classes
    "comfyui-videohelpersuite": ("VHS_VideoCombine",),
}
KNOWN_MODEL_FOLDERS = ("checkpoints", "clip_vision", "controlnet", "diffusion_models", "embeddings", "loras",
                       "text_encoders", "unet", "upscale_models", "vae")

Json = dict[str, Any]
Handler = Callable[[web.Request, "re.Match[str]"], Awaitable[web.StreamResponse]]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _node_order(node_id: str) -> tuple[int, int, str]:
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)


def edition_of(config: Json) -> str:
    """``api``, ``cluster`` or ``standard``, from the suffix of the first container's image tag."""
    image = str(((config.get("containers") or [{}])[0] or {}).get("image", ""))
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    suffix = tag.rpartition("-")[2] if "-" in tag else ""
    return suffix if suffix in ("api", "cluster") else "standard"


# -- the mount -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mount:
    """ComfyUI's ``--data-dir``: a bucket and prefix on the OSS sandbox, mounted at ``path``."""

    oss: OssSandbox = field(compare=False, repr=False)
    bucket: str
    prefix: str  # "" or "some/prefix/"
    path: str = DEFAULT_MOUNT_PATH

    @classmethod
    def of_service(cls, oss: OssSandbox, service: str, config: Json) -> "Mount":
        """The first OSS entry of ``storage``; without one, the service's own "local disk"."""
        for entry in config.get("storage") or []:
            uri = str(((entry or {}).get("oss") or {}).get("path", ""))
            if uri.startswith("oss://"):
                bucket, _, prefix = uri[len("oss://"):].partition("/")
                prefix = prefix.strip("/")
                return cls(oss, bucket, prefix + "/" if prefix else "", str(entry.get("mount_path") or DEFAULT_MOUNT_PATH))
        return cls(oss, LOCAL_BUCKET, f"{service}/", "/code/ComfyUI")

    def keys(self, folder: str) -> list[str]:
        """Keys under ``folder`` (relative to the mount, ending in ``/``), relative to it."""
        base = self.prefix + folder
        return [key[len(base):] for key in self.oss.list_keys(self.bucket, base) if len(key) > len(base)]

    def children(self, folder: str) -> list[str]:
        return [name for name in self.keys(folder) if "/" not in name]

    def models(self, folders: Iterable[str]) -> list[str]:
        return sorted({name for f in folders for name in self.keys(f"models/{f}/") if name.lower().endswith(MODEL_EXTENSIONS)})

    def custom_node_packs(self) -> dict[str, str]:
        """Installed packs: lower-case name -> folder (or ``name.py`` module) in ``custom_nodes/``."""
        packs: dict[str, str] = {}
        for key in self.keys("custom_nodes/"):
            name, slash, _ = key.partition("/")
            if not slash:
                if not name.endswith(".py"):
                    continue
                name = name[:-3]
            if not name.endswith(".disabled") and name != "__pycache__":
                packs.setdefault(name.lower(), name)
        return packs

    def open(self, relative: str) -> ObjectReader | None:
        return self.oss.store.open(self.bucket, self.prefix + relative)

    def write(self, relative: str, data: bytes, content_type: str) -> None:
        if self.oss.store.bucket(self.bucket) is None:  # mounting a missing bucket: the first write creates it
            self.oss.create_bucket(self.bucket)
        self.oss.put_object(self.bucket, self.prefix + relative, data, content_type)


@lru_cache(maxsize=1)
def _object_info_text() -> str:
    return (DATA / "object_info.json").read_text(encoding="utf-8")


def object_info_for(mount: Mount) -> Json:
    """``GET /object_info`` for what is on ``mount``: model combos and custom node classes."""
    info: Json = json.loads(_object_info_text())
    packs = mount.custom_node_packs()
    for pack, classes in CUSTOM_NODE_PACKS.items():
        for class_type in classes:
            if pack in packs and class_type in info:
                info[class_type]["python_module"] = f"custom_nodes.{packs[pack]}"
            else:
                info.pop(class_type, None)
    for node in info.values():
        for section in ("required", "optional"):
            for name, spec in node["input"].get(section, {}).items():
                if name in MODEL_FOLDERS and spec and isinstance(spec[0], list):
                    spec[0] = mount.models(MODEL_FOLDERS[name])
    return info


# -- validation: the logic (and answers) of ComfyUI's execution.validate_prompt ------------------------
def _error(kind: str, message: str, details: str = "", **extra: Any) -> Json:
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


def _invalid_prompt(message: str, details: str = "") -> Json:
    return _error("invalid_prompt", message, details)


_CONVERTERS: dict[str, Callable[[Any], Any]] = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}


def _types_match(received: str, expected: Any) -> bool:
    if not isinstance(expected, str):  # a link into a combo input
        return True
    return "*" in (received, expected) or received == expected or received in expected.split(",")


def _literal_error(name: str, value: Any, spec: list[Any]) -> Json | None:
    kind, options = spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
    if isinstance(value, dict) and "__value__" in value:
        value = value["__value__"]
    converter = _CONVERTERS.get(kind) if isinstance(kind, str) else None
    try:
        value = converter(value) if converter else value
    except (TypeError, ValueError) as exc:
        return _error("invalid_input_type", f"Failed to convert an input value to a {kind} value",
                      f"{name}, {value}, {exc}", input_name=name, input_config=spec, received_value=value,
                      exception_message=str(exc))
    if "min" in options and value < options["min"]:
        return _error("value_smaller_than_min", f"Value {value} smaller than min of {options['min']}", name,
                      input_name=name, input_config=spec, received_value=value)
    if "max" in options and value > options["max"]:
        return _error("value_bigger_than_max", f"Value {value} bigger than max of {options['max']}", name,
                      input_name=name, input_config=spec, received_value=value)
    if isinstance(kind, list) and value not in kind:
        listed = f"(list of length {len(kind)})" if len(kind) > 20 else str(kind)
        return _error("value_not_in_list", "Value not in list", f"{name}: '{value}' not in {listed}",
                      input_name=name, input_config=spec if len(kind) <= 20 else None, received_value=value)
    return None


class _Validator:
    """``validate_inputs``: each node once, following links; like ComfyUI, a lookup that fails (a
    link to a missing node or output) raises, and the node that raised gets the error."""

    def __init__(self, prompt: Json, info: Json) -> None:
        self.prompt, self.info = prompt, info
        self.validated: dict[str, tuple[bool, list[Json]]] = {}

    def node(self, node_id: str) -> bool:
        if node_id in self.validated:
            return self.validated[node_id][0]
        node = self.prompt[node_id]
        inputs, spec = node["inputs"], self.info[node["class_type"]]["input"]
        errors: list[Json] = []
        valid = True
        for section in ("required", "optional"):
            for name, input_spec in spec.get(section, {}).items():
                if name not in inputs:
                    if section == "required":
                        errors.append(_error("required_input_missing", "Required input is missing", name, input_name=name))
                    continue
                value = inputs[name]
                if not isinstance(value, list):
                    error = _literal_error(name, value, input_spec)
                    if error:
                        errors.append(error)
                    continue
                if len(value) != 2:
                    errors.append(_error("bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                                         name, input_name=name, input_config=input_spec, received_value=value))
                    continue
                source_id, slot = value
                received = self.info[self.prompt[source_id]["class_type"]]["output"][slot]
                if not _types_match(received, input_spec[0]):
                    errors.append(_error("return_type_mismatch", "Return type mismatch between linked nodes",
                                         f"{name}, received_type({received}) mismatch input_type({input_spec[0]})",
                                         input_name=name, input_config=input_spec, received_type=received, linked_node=value))
                    continue
                try:
                    valid = self.node(source_id) and valid
                except Exception as exc:  # noqa: BLE001 - reported like ComfyUI does
                    valid = False
                    self.validated[source_id] = (False, [_error(
                        "exception_during_inner_validation", "Exception when validating inner node", str(exc),
                        input_name=name, input_config=input_spec, exception_message=str(exc),
                        exception_type=type(exc).__name__, traceback=[], linked_node=value)])
        result = (valid and not errors, errors)
        self.validated[node_id] = result
        return result[0]


@dataclass
class Validation:
    """ComfyUI's ``validate_prompt`` result: ``error`` and ``node_errors`` are its answer shapes."""

    ok: bool
    error: Json | None
    outputs: list[str]
    node_errors: Json


def validate_prompt(prompt: Any, info: Json) -> Validation:
    """ComfyUI's checks: every node has a known class_type, there is an output node, and each
    output's inputs (recursively) are linked and valid. Outputs that pass run even if others fail."""
    if not isinstance(prompt, dict):
        return Validation(False, _invalid_prompt("Cannot execute because the prompt is not a JSON object."), [], {})
    outputs = []
    for node_id, node in prompt.items():
        if not isinstance(node, dict) or "class_type" not in node:
            return Validation(False, _invalid_prompt(
                "Cannot execute because a node is missing the class_type property.", f"Node ID '#{node_id}'"), [], {})
        class_type = node["class_type"]
        if class_type not in info:
            return Validation(False, _invalid_prompt(
                f"Cannot execute because node {class_type} does not exist.", f"Node ID '#{node_id}'"), [], {})
        if info[class_type].get("output_node"):
            outputs.append(node_id)
    if not outputs:
        return Validation(False, _error("prompt_no_outputs", "Prompt has no outputs"), [], {})
    checker = _Validator(prompt, info)
    good: list[str] = []
    failed: list[Json] = []
    node_errors: Json = {}
    for output in sorted(outputs, key=_node_order):
        try:
            ok = checker.node(output)
        except Exception as exc:  # noqa: BLE001 - reported like ComfyUI does
            ok = False
            checker.validated[output] = (False, [_error("exception_during_validation", "Exception when validating node",
                                                         str(exc), exception_type=type(exc).__name__, traceback=[])])
        if ok:
            good.append(output)
            continue
        failed += checker.validated[output][1]
        for node_id, (valid, reasons) in checker.validated.items():
            if not valid and reasons:
                entry = node_errors.setdefault(node_id, {"errors": reasons, "dependent_outputs": [],
                                                         "class_type": prompt[node_id]["class_type"]})
                entry["dependent_outputs"].append(output)
    if not good:
        details = "\n".join(f"{e['message']}: {e['details']}" for e in failed)
        return Validation(False, _error("prompt_outputs_failed_validation", "Prompt outputs failed validation", details),
                          [], node_errors)
    return Validation(True, None, good, node_errors)


def execution_order(prompt: Json, outputs: Iterable[str]) -> list[str]:
    """The nodes the outputs need, each after the nodes it links to."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(node_id: str) -> None:
        if node_id in seen:
            return
        seen.add(node_id)
        for value in prompt[node_id]["inputs"].values():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and value[0] in prompt:
                visit(value[0])
        order.append(node_id)

    for output in outputs:
        visit(output)
    return order


# -- jobs ----------------------------------------------------------------------------------------------
class NodeFailure(Exception):
    """A node raising at run time (becomes ``execution_error``)."""

    def __init__(self, message: str, exception_type: str = "RuntimeError") -> None:
        super().__init__(message)
        self.exception_type = exception_type


class Interrupted(Exception):
    pass


@dataclass
class Job:
    number: float
    prompt_id: str
    prompt: Json
    extra_data: Json
    outputs: list[str]
    interrupted: bool = False
    node: str | None = None  # executing now

    @property
    def client_id(self) -> str | None:
        return self.extra_data.get("client_id")

    def item(self) -> list[Any]:
        """The job as ``/queue`` and ``/history`` show it."""
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


@dataclass
class Run:
    """What executing a job produced."""

    job: Job
    success: bool = True
    outputs: Json = field(default_factory=dict)
    meta: Json = field(default_factory=dict)
    messages: list[list[Any]] = field(default_factory=list)  # the history's status messages
    executed: list[str] = field(default_factory=list)
    executed_events: list[Json] = field(default_factory=list)  # as in the sink data
    failure: Json | None = None  # {"type": "execution_error" | "execution_interrupted", "data": {...}}

    def history(self) -> Json:
        status = {"status_str": "success" if self.success else "error", "completed": self.success,
                  "messages": self.messages}
        return {"prompt": self.job.item(), "outputs": self.outputs, "status": status, "meta": self.meta}

    def sink_data(self) -> bytes:
        tail = self.outputs if self.success else self.failure
        return json.dumps([*self.executed_events, tail]).encode()


def _colour(*seed: str) -> media.Rgb:
    digest = hashlib.sha256("/".join(seed).encode()).digest()
    return digest[0], digest[1], digest[2]


def _image_counter(names: Iterable[str], filename: str) -> int:
    """SaveImage's counter: one more than the highest ``{filename}_{n}_...`` in the folder."""
    highest = 0
    for name in names:
        head, rest = name[:len(filename) + 1], name[len(filename) + 1:]
        if head == filename + "_":
            digits = rest.split("_")[0]
            highest = max(highest, int(digits) if digits.isdigit() else 0)
    return highest + 1


def _video_counter(names: Iterable[str], filename: str) -> int:
    """VHS_VideoCombine's counter: one more than the highest ``{filename}_{n}<non-digits>.<ext>``."""
    pattern = re.compile(f"{re.escape(filename)}_(\\d+)\\D*\\..+", re.IGNORECASE)
    return max([int(m[1]) for m in map(pattern.fullmatch, names) if m] + [0]) + 1


def _video_kind(fmt: str) -> str:
    if fmt in ("image/gif", "video/ffmpeg-gif"):
        return "gif"
    if fmt == "image/webp":
        return "webp"
    if fmt.startswith("video/") and fmt.endswith("mp4"):
        return "mp4"
    raise NodeFailure(f"The eascomfy sandbox does not emulate the VHS_VideoCombine format {fmt!r}", "NotImplementedError")


def _video(kind: str, frames: list[media.Rgb], fps: int) -> tuple[bytes, str]:
    """The file VHS_VideoCombine writes for ``kind`` (see ``_video_kind``) and its content type."""
    if kind == "mp4":
        return media.mp4(IMAGE_SIZE, IMAGE_SIZE, frames, fps), "video/mp4"
    if kind == "webp":
        return media.animated_webp(IMAGE_SIZE, IMAGE_SIZE, frames, 1000 // fps), "image/webp"
    return media.gif(IMAGE_SIZE, IMAGE_SIZE, frames[0]), "image/gif"


# -- the emulator --------------------------------------------------------------------------------------
class ComfyUIEmulator:
    """One service's ComfyUI: its HTTP API, websocket, queue of jobs and history. Runs on the EAS
    sandbox's event loop; tests may set ``job_seconds`` and failures from any thread."""

    def __init__(self, mount: Mount, job_seconds: float = 0.2) -> None:
        self.mount = mount
        self.job_seconds = job_seconds
        self.failures: dict[str, NodeFailure] = {}
        self.history: dict[str, Json] = {}
        self._pending: list[Job] = []
        self._running: list[Job] = []
        self._number = 0
        self._queued = Signal()
        self._runner: asyncio.Task[None] | None = None
        self._sockets: dict[str, web.WebSocketResponse] = {}
        self._save_lock = threading.Lock()
        self._savers: dict[str, Callable[[Run, str, Json], Json]] = {
            "SaveImage": self._save_image,
            "SaveAnimatedWEBP": self._save_webp,
            "VHS_VideoCombine": self._save_video,
        }
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
            )
        ]

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
        return validate_prompt(prompt, self.object_info())

    def close(self) -> None:
        _cancel([self._runner] if self._runner else [])

    # -- HTTP --------------------------------------------------------------------------------------
    async def handle(self, request: web.Request, path: str) -> web.StreamResponse:
        """Serve ``path`` (the part after ``/api/predict/<svc>``; an ``/api`` prefix is ignored)."""
        if path.startswith("/api/"):
            path = path[len("/api"):]
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match and method == request.method:
                return await handler(request, match)
        return web.Response(status=404, text=NOT_FOUND)

    async def _index(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        return web.Response(text="<!DOCTYPE html><html><head><title>ComfyUI</title></head>"
                                 "<body>ComfyUI (eascomfy sandbox)</body></html>", content_type="text/html")

    async def _post_prompt(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:  # ComfyUI does not catch it either
            return web.Response(status=500, text="500 Internal Server Error\n\nServer got itself in trouble")
        if not isinstance(body, dict) or "prompt" not in body:
            error = _error("no_prompt", "No prompt provided", "No prompt provided")
            return web.json_response({"error": error, "node_errors": {}}, status=400)
        check = await asyncio.to_thread(self.validate, body["prompt"])  # lists the mount
        if not check.ok:
            return web.json_response({"error": check.error, "node_errors": check.node_errors}, status=400)
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
        return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": check.node_errors})

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
        body = await _json_body(request)
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
        body = await _json_body(request)
        doomed = set(body.get("delete") or [])
        self._pending = [job for job in self._pending if not body.get("clear") and job.prompt_id not in doomed]
        await self._send_status()
        return web.Response()

    async def _interrupt(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        prompt_id = (await _json_body(request)).get("prompt_id")
        for job in self._running:
            if prompt_id in (None, job.prompt_id):
                job.interrupted = True
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

    def _save_path(self, prefix: str, kind: str) -> tuple[str, str, str]:
        """ComfyUI's ``get_save_image_path``: (folder relative to the mount, file name stem, subfolder).
        A prefix that leaves the output folder fails the node with ComfyUI's message."""
        root = f"{self.mount.path}/{kind}"
        normal = posixpath.normpath(prefix)
        subfolder, name = posixpath.dirname(normal), posixpath.basename(normal)
        folder = posixpath.normpath(posixpath.join(root, subfolder))
        common = posixpath.commonpath([root, folder])
        if common != root:
            raise NodeFailure("**** ERROR: Saving image outside the output folder is not allowed."
                              f"\n full_output_folder: {folder}\n         output_dir: {root}"
                              f"\n         commonpath: {common}", "Exception")
        return posixpath.relpath(folder, self.mount.path) + "/", name, subfolder

    def _png_text(self, run: Run) -> dict[str, str]:
        text = {"prompt": json.dumps(run.job.prompt)}
        workflow = (run.job.extra_data.get("extra_pnginfo") or {}).get("workflow")
        if workflow is not None:
            text["workflow"] = json.dumps(workflow)
        return text

    def _save_image(self, run: Run, node_id: str, inputs: Json) -> Json:
        folder, name, subfolder = self._save_path(str(inputs.get("filename_prefix", "ComfyUI")), "output")
        filename = f"{name}_{_image_counter(self.mount.children(folder), name):05}_.png"
        data = media.png(IMAGE_SIZE, IMAGE_SIZE, _colour(run.job.prompt_id, node_id), self._png_text(run))
        self.mount.write(folder + filename, data, "image/png")
        return {"images": [{"filename": filename, "subfolder": subfolder, "type": "output"}]}

    def _save_webp(self, run: Run, node_id: str, inputs: Json) -> Json:
        folder, name, subfolder = self._save_path(str(inputs.get("filename_prefix", "ComfyUI")), "output")
        filename = f"{name}_{_image_counter(self.mount.children(folder), name):05}_.webp"
        fps = float(inputs.get("fps") or 6.0)
        frames = [_colour(run.job.prompt_id, node_id, str(i)) for i in range(3)]
        self.mount.write(folder + filename, media.animated_webp(IMAGE_SIZE, IMAGE_SIZE, frames, int(1000 / fps)), "image/webp")
        return {"images": [{"filename": filename, "subfolder": subfolder, "type": "output"}], "animated": [True]}

    def _save_video(self, run: Run, node_id: str, inputs: Json) -> Json:
        fmt = str(inputs.get("format", "image/gif"))
        kind = _video_kind(fmt)
        where = "output" if inputs.get("save_output", True) else "temp"
        folder, name, subfolder = self._save_path(str(inputs.get("filename_prefix", "AnimateDiff")), where)
        stem = f"{name}_{_video_counter(self.mount.children(folder), name):05}"
        frames = [_colour(run.job.prompt_id, node_id, str(i)) for i in range(3)]
        # Like VHS, keep the first frame as a PNG carrying the workflow, next to the video.
        first = media.png(IMAGE_SIZE, IMAGE_SIZE, frames[0], self._png_text(run))
        self.mount.write(f"{folder}{stem}.png", first, "image/png")
        self.mount.write(f"{folder}{stem}.{kind}", *_video(kind, frames, max(1, round(float(inputs.get("frame_rate") or 8)))))
        return {"gifs": [{"filename": f"{stem}.{kind}", "subfolder": subfolder, "type": where, "format": fmt}]}

    # -- the API edition ---------------------------------------------------------------------------
    async def api_prompt(self, path: str, body: bytes) -> tuple[int, bytes]:
        """What the API-edition instance answers for a request taken from the input queue:
        (status, body). The body becomes the sink entry's data."""
        if path.rstrip("/") != "/api_prompt":
            return 404, NOT_FOUND.encode()
        try:
            prompt = json.loads(body or b"null")
        except ValueError as exc:
            error = _invalid_prompt("The request body is not JSON.", str(exc))
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


async def _json_body(request: web.Request) -> Json:
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _cancel(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel tasks from any thread (a no-op once their loop is closed)."""
    for task in tasks:
        try:
            task.get_loop().call_soon_threadsafe(task.cancel)
        except RuntimeError:
            pass


# -- one service, and the attachment to the EAS sandbox -------------------------------------------------
class ServiceBackend:
    """What runs behind one service: ComfyUI, plus the queue and its workers for the API edition."""

    def __init__(self, name: str, edition: str, mount: Mount, instances: int, job_seconds: float) -> None:
        self.name, self.edition, self.mount, self.instances = name, edition, mount, instances
        self.comfyui = ComfyUIEmulator(mount, job_seconds)
        self.queue = EasQueue(name) if edition == "api" else None
        self._workers: list[asyncio.Task[None]] = []

    async def handle(self, request: web.Request, ctx: PredictContext) -> web.StreamResponse:
        if ctx.kind == "monitor":
            return web.Response(text="monitor (eascomfy sandbox)")
        if self.queue is None or ctx.kind == "webview":
            return await self.comfyui.handle(request, ctx.subpath)
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
                code, data = await self.comfyui.api_prompt(message.path, message.data)
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
        _cancel(self._workers)


class Attachment:
    """The emulators attached to an ``EasSandbox`` (its ``default_backend``), one set per service,
    made on first use from the service's stored config and remade when its edition or mount change."""

    def __init__(self, eas: EasSandbox, oss: OssSandbox, job_seconds: float = 0.2) -> None:
        self.eas, self.oss = eas, oss
        self._job_seconds = job_seconds
        self._previous = eas.default_backend
        self._services: dict[str, ServiceBackend] = {}
        self._lock = threading.Lock()

    @property
    def job_seconds(self) -> float:
        return self._job_seconds

    @job_seconds.setter
    def job_seconds(self, seconds: float) -> None:
        """How long a job takes, on every service (``comfyui(name).job_seconds`` sets one)."""
        with self._lock:
            self._job_seconds = seconds
            for backend in self._services.values():
                backend.comfyui.job_seconds = seconds

    async def handle(self, request: web.Request, ctx: PredictContext) -> web.StreamResponse:
        return await self._backend(ctx.service, ctx.config).handle(request, ctx)

    def comfyui(self, service: str) -> ComfyUIEmulator:
        """The service's ComfyUI (made now if needed), e.g. to set ``job_seconds`` or ``fail``."""
        return self._backend(service, self._config(service)).comfyui

    def queue(self, service: str) -> EasQueue:
        queue = self._backend(service, self._config(service)).queue
        if queue is None:
            raise ValueError(f"{service} is not an API-edition service: it has no queue")
        return queue

    def close(self) -> None:
        """Detach: the EAS sandbox gets its previous backend back; workers stop."""
        self.eas.default_backend = self._previous
        with self._lock:
            backends, self._services = list(self._services.values()), {}
        for backend in backends:
            backend.close()

    def __enter__(self) -> "Attachment":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _config(self, service: str) -> Json:
        record = self.eas.get_service(service)
        if record is None:
            raise KeyError(f"no service {service!r} in the EAS sandbox")
        config: Json = record["config"]
        return config

    def _backend(self, service: str, config: Json) -> ServiceBackend:
        edition, mount = edition_of(config), Mount.of_service(self.oss, service, config)
        instances = max(1, int((config.get("metadata") or {}).get("instance") or 1))
        with self._lock:
            backend = self._services.get(service)
            if backend is None or (backend.edition, backend.mount) != (edition, mount):
                if backend is not None:
                    backend.close()
                backend = self._services[service] = ServiceBackend(service, edition, mount, instances, self._job_seconds)
            backend.instances = instances
            return backend


def attach(eas: EasSandbox, oss: OssSandbox, job_seconds: float = 0.2) -> Attachment:
    """Serve every service of ``eas`` with a ComfyUI (or, API edition, its queue) whose data dir is
    the service's OSS mount on ``oss``. Call it after both are started; ``close()`` detaches."""
    attachment = Attachment(eas, oss, job_seconds)
    eas.default_backend = attachment.handle
    return attachment
