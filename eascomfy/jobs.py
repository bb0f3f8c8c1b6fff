"""Running workflows: check, run (synchronous: Standard and Cluster editions), submit and results
(asynchronous: the API edition's queue), with a local journal that makes results exactly-once.

- The service endpoint and token come from DescribeService for the spec's service (or
  ``--service NAME --region R``), or are given (``--service-url``/``--token``, or
  ``EASCOMFY_SERVICE_URL``/``EASCOMFY_SERVICE_TOKEN``). The token is registered with ``redact``
  the moment it is known and never printed.
- The journal (JSON lines, each append fsync'd): ``submit`` is written before a task is sent,
  ``sent`` (or ``send_failed``) after; ``result`` after the result file (and its outputs) are on
  disk. ``results`` commits a sink entry only after its ``result`` line is durable, and commits
  without writing again an entry whose task already has one: a crash at any point loses nothing
  and writes nothing twice.

Talks to services only through ``adapters.comfy_http`` and ``adapters.eas_queue``; progress goes to a ``Progress`` (the CLI's Out).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from .core.workflow import (
    Override,
    Problem,
    Workflow,
    apply_overrides,
    execution_error_line,
    graph_problems,
    mount_problems,
    node_error_lines,
    object_info_problems,
    output_files,
    parse_sink_result,
    prompt_error_lines,
    title,
)
from .errors import EXIT_ERROR, CloudError, EascomfyError, UsageError, WaitTimeout
from .local.files import fsync_dir, write_atomic
from .redact import register_secret
from .local.files import safe_local_path, state_dir
from .ports import Bucket

if TYPE_CHECKING:
    from .adapters.comfy_http import EventSocket, ServiceClient
    from .adapters.eas_queue import SinkFrame, SinkReader
    from .core.editions import Edition
    from .core.spec import Spec
    from .ports import Progress

URL_ENV, TOKEN_ENV = "EASCOMFY_SERVICE_URL", "EASCOMFY_SERVICE_TOKEN"
DRAIN_IDLE = 1.0  # results without --follow: stop after this long without a new result
FOLLOW_TICK = 0.5  # results --follow: how often the journal is re-read while the sink is quiet
_SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]+")


class JobError(EascomfyError):
    """A job ComfyUI refused or that failed: a summary plus one line per node."""

    kind = "job"

    def __init__(self, message: str, lines: Iterable[str] = (), hint: str | None = None, exit_code: int = EXIT_ERROR) -> None:
        self.lines = list(lines)
        super().__init__(message + "".join(f"\n  {line}" for line in self.lines), hint)
        self.exit_code = exit_code

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "problems": self.lines}


# -- the service: endpoint, token, edition ----------------------------------------------------------------
@dataclass
class Target:
    endpoint: str
    token: str = field(repr=False)
    service: str
    edition: "Edition | None" = None
    spec: "Spec | None" = None

    def client(self, progress: "Progress", **kwargs: Any) -> "ServiceClient":
        from .adapters.comfy_http import ServiceClient

        return ServiceClient(self.endpoint, self.token, log=progress.debug, **kwargs)


def edition_of_image(image: str, project_dir: Path | None = None) -> "Edition | None":
    """The edition whose image suffix the tag ends with (``2.2-api`` -> api; no suffix -> standard)."""
    from .core.editions import all_editions

    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    if not tag:
        return None
    editions = sorted((e for e in all_editions(project_dir) if e.image_suffix is not None),
                      key=lambda e: len(e.image_suffix or ""), reverse=True)
    return next((e for e in editions if tag.endswith(e.image_suffix or "")), None)


def require_edition(edition: "Edition | None", command: str) -> None:
    """Refuse what the edition cannot do: run on the API edition, submit on the others, any
    API call on the Serverless edition. Unknown edition (a bare --service-url): allowed."""
    if edition is None:
        return
    if edition.image_suffix is None:
        raise UsageError(f"the {edition.title} takes no API calls at all: run workflows in its console",
                         "deploy a Standard or API edition service to call it from eascomfy")
    if command == "run" and edition.can("async_api"):
        raise UsageError(f"the {edition.title} is asynchronous only: run cannot wait on it",
                         "use `eascomfy submit WORKFLOW.json` then `eascomfy results --follow`")
    if command in ("submit", "results") and not edition.can("async_api"):
        raise UsageError(f"the {edition.title} has no queue: {command} needs the API edition",
                         "use `eascomfy run WORKFLOW.json` (synchronous)")


def resolve_target(
    progress: "Progress",
    *,
    spec: "Spec | None" = None,
    service: str | None = None,
    region: str | None = None,
    url: str | None = None,
    token: str | None = None,
    command: str | None = None,
) -> Target:
    """Endpoint and token: given (``url``/``token`` or the environment), else DescribeService for
    ``service``/``region`` or the spec's service. The edition is checked against ``command``
    before any call."""
    url = url or os.environ.get(URL_ENV) or None
    token = token or os.environ.get(TOKEN_ENV) or None
    register_secret(token)
    if url:
        if not token:
            raise UsageError("--service-url needs the service token", f"pass --token or set {TOKEN_ENV}")
        if not re.match(r"^https?://", url):
            raise UsageError(f"--service-url {url!r}: expected http(s)://…/api/predict/<service>")
        target = Target(url.rstrip("/"), token, url.rstrip("/").rsplit("/", 1)[-1])
        progress.debug(f"service endpoint {target.endpoint} (given)")
        return target
    if token:
        raise UsageError("--token needs --service-url", f"or set {URL_ENV}")
    if service:
        if not region:
            raise UsageError("--service needs --region", "e.g. --service comfy_dev --region cn-hangzhou")
        name, region_id, edition = service, region, None
    elif spec is not None:
        name, region_id, edition = spec.name, region or spec.region, spec.edition
    else:
        raise UsageError("no service: pass -f SPEC, --service NAME --region R, or --service-url URL --token T")
    if command:
        require_edition(edition, command)
    from .deploy import connect

    live = connect(region_id, progress).require(name)
    if not live.internet_endpoint:
        raise CloudError(f"service {name} has no internet endpoint yet (status {live.status})", service=name,
                         hint="wait until it is running: eascomfy status")
    if edition is None:
        edition = edition_of_image(live.image)
        if command:
            require_edition(edition, command)
    progress.debug(f"service {name}: {live.status}, endpoint {live.internet_endpoint}")
    return Target(live.internet_endpoint, live.access_token, name, edition, spec)


# -- checks ------------------------------------------------------------------------------------------------
@dataclass
class Inventory:
    """What is on the mount: model file names per ``models/<kind>/`` and custom node packs."""

    models: dict[str, set[str]]
    packs: set[str]


def inventory(bucket: Bucket, prefix: str) -> Inventory:
    """Two listings: everything under ``models/``, and the top level of ``custom_nodes/``."""
    models: dict[str, set[str]] = {}
    base = prefix + "models/"
    for key, _, is_dir, _ in bucket.list(base):
        kind, slash, name = key[len(base):].partition("/")
        if slash and name and not is_dir and not name.endswith("/"):
            models.setdefault(kind, set()).add(name)
    packs = set()
    nodes = prefix + "custom_nodes/"
    for key, _, is_dir, _ in bucket.list(nodes, "/"):
        name = key[len(nodes):].rstrip("/")
        if name and (is_dir or name.endswith(".py")):
            packs.add(name.removesuffix(".py").lower())
    return Inventory(models, packs)


def check_workflow(workflow: Workflow, *, info: Mapping[str, Any] | None = None,
                   mount: Inventory | None = None) -> list[Problem]:
    """Every problem at once: the graph; with ``info`` (``/object_info``) node types, inputs and
    combo values as ComfyUI validates them; with ``mount`` models in their folders and custom node
    packs (node types only when there is no ``info``, which is authoritative)."""
    problems = object_info_problems(workflow, info) if info is not None else graph_problems(workflow)
    if mount is not None:
        seen = {(p.node, p.input) for p in problems}
        for p in mount_problems(workflow, mount.models, mount.packs):
            if info is not None and p.code != "missing_model":
                continue
            if (p.node, p.input) not in seen:
                problems.append(p)
    return problems


def errors_only(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def load_jobs(workflow: Workflow, sets: Iterable[str], count: int, matrix: list[Any] | None) -> list[tuple[Workflow, list[str]]]:
    """The workflows to send, with the override texts of each: ``--set`` applies to all, then each
    matrix entry adds its own (one job per entry), else ``count`` copies."""
    base_overrides = [Override.parse(s) for s in sets]
    base = apply_overrides(workflow, base_overrides)
    if matrix is None:
        if count < 1:
            raise UsageError("--count must be at least 1")
        return [(base, [o.text for o in base_overrides])] * count
    if not matrix:
        raise UsageError("the matrix file has no entries", "expected a list: one job per entry")
    jobs = []
    for i, item in enumerate(matrix):
        overrides = Override.of(item)
        try:
            jobs.append((apply_overrides(base, overrides), [o.text for o in base_overrides + overrides]))
        except UsageError as exc:
            raise UsageError(f"matrix entry {i + 1}: {exc.message}", exc.hint) from None
    return jobs


def read_matrix(path: Path) -> list[Any]:
    """A JSON or YAML list of override sets."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--matrix {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else _yaml(text)
    except ValueError as exc:
        raise UsageError(f"--matrix {path}: not valid JSON/YAML ({exc})") from None
    if not isinstance(data, list):
        raise UsageError(f"--matrix {path}: expected a list (one entry of overrides per job)")
    return data


def _yaml(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc).splitlines()[0]) from None


# -- the journal -------------------------------------------------------------------------------------------------
@dataclass
class JournalState:
    submitted: dict[str, dict[str, Any]] = field(default_factory=dict)
    sent: set[str] = field(default_factory=set)
    send_failed: set[str] = field(default_factory=set)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)  # submit runs under way: run id -> pid
    offset: int = 0

    def feed(self, record: Mapping[str, Any]) -> None:
        task_id, event = str(record.get("task_id")), record.get("event")
        if event == "submit":
            self.submitted[task_id] = dict(record)
        elif event == "sent":
            self.sent.add(task_id)
            self.send_failed.discard(task_id)
        elif event == "send_failed":
            self.send_failed.add(task_id)
        elif event == "result":
            self.results.setdefault(task_id, dict(record))
        elif event == "submit_started":
            self.runs[str(record.get("run"))] = int(record.get("pid") or 0)
        elif event == "submit_done":
            self.runs.pop(str(record.get("run")), None)

    def submitting(self) -> bool:
        """A submit on this machine is still sending (its ids may not be marked sent yet); one that
        died without saying so is not waited for."""
        return any(_alive(pid) for pid in self.runs.values())

    def pending(self) -> list[str]:
        """Sent tasks without a result yet."""
        return sorted(t for t in self.sent if t not in self.results)

    def unconfirmed(self) -> list[str]:
        """Recorded but neither marked sent nor failed (a submit that died mid-way): maybe sent."""
        return sorted(t for t in self.submitted if t not in self.sent and t not in self.send_failed and t not in self.results)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Journal:
    """Append-only JSON lines; every append is one write and one fsync. Lines a crash cut short
    are ignored; several processes may append (O_APPEND)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.results_dir = self.path.parent / f"{self.path.stem}.results"
        self._fd: int | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_service(cls, service: str, path: Path | None = None) -> "Journal":
        return cls(path if path is not None else state_dir() / "jobs" / f"{_SAFE_ID.sub('_', service)}.jsonl")

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            if not created and os.fstat(fd).st_size:
                with open(self.path, "rb") as fh:
                    fh.seek(-1, os.SEEK_END)
                    if fh.read(1) != b"\n":  # a line cut short by a crash: start on a fresh line
                        os.write(fd, b"\n")
            if created:
                fsync_dir(self.path.parent)
            self._fd = fd
        return self._fd

    def append(self, records: Iterable[Mapping[str, Any]]) -> None:
        data = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records).encode()
        if not data:
            return
        with self._lock:
            fd = self._open()
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)

    def read(self, state: JournalState | None = None) -> JournalState:
        """The journal's state (``state`` brought up to date from where it stopped reading)."""
        state = state or JournalState()
        try:
            with open(self.path, "rb") as fh:
                fh.seek(state.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return state
        end = chunk.rfind(b"\n") + 1
        for line in chunk[:end].splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                state.feed(record)
        state.offset += end
        return state

    def result_path(self, task_id: str) -> Path:
        return self.results_dir / f"{_SAFE_ID.sub('_', task_id)}.json"

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


# -- run (synchronous) ---------------------------------------------------------------------------------------------
@dataclass
class RunReport:
    prompt_id: str
    status: str
    seconds: float
    files: list[dict[str, Any]]
    refused: list[str]
    node_errors: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"prompt_id": self.prompt_id, "status": self.status, "seconds": round(self.seconds, 3),
                "files": self.files, "refused": self.refused, "node_errors": self.node_errors}


class _Follower:
    """Progress of one prompt from ComfyUI's events, as lines for people."""

    def __init__(self, prompt_id: str, workflow: Workflow, progress: "Progress") -> None:
        self.prompt_id, self.workflow, self.progress = prompt_id, workflow, progress
        self._quarter: dict[str, int] = {}

    def name(self, node: Any) -> str:
        item = self.workflow.get(str(node))
        return f"node {node} ({title(item)})" if item else f"node {node}"

    def event(self, event: Mapping[str, Any]) -> bool:
        """Report one event; True when it ends the prompt."""
        kind, data = event.get("type"), event.get("data") or {}
        if not isinstance(data, Mapping) or (data.get("prompt_id") not in (None, self.prompt_id)):
            return False
        if kind == "executing":
            if data.get("node") is None:
                return data.get("prompt_id") == self.prompt_id
            self.progress.info(f"  running {self.name(data['node'])}")
        elif kind == "progress" and data.get("max"):
            quarter = int(4 * int(data.get("value", 0)) / int(data["max"]))
            if quarter > self._quarter.get(str(data.get("node")), 0):
                self._quarter[str(data.get("node"))] = quarter
                self.progress.info(f"  {self.name(data.get('node'))}: step {data.get('value')}/{data['max']}")
        elif kind == "executed":
            count = len(output_files({str(data.get("node")): data.get("output") or {}}))
            self.progress.info(f"  {self.name(data.get('node'))} wrote {count} file{'s' if count != 1 else ''}")
        elif kind == "execution_cached" and data.get("nodes"):
            self.progress.info(f"  cached: {', '.join(map(str, data['nodes']))}")
        return kind in ("execution_success", "execution_error", "execution_interrupted") and data.get("prompt_id") == self.prompt_id


def _left(deadline: float) -> float:
    return deadline - time.monotonic()


def _timeout_error(prompt_id: str, timeout: float, client: "ServiceClient") -> WaitTimeout:
    try:
        client.cancel(prompt_id)
        what = "interrupted it on the server"
    except CloudError:
        what = "could not interrupt it on the server"
    return WaitTimeout(f"prompt {prompt_id} did not finish within {timeout:g} s; {what}", "raise --timeout")


def wait_history(client: "ServiceClient", prompt_id: str, deadline: float, timeout: float, first: float = 0.1) -> dict[str, Any]:
    """Poll ``/history/<id>`` with backoff (``first`` s, x1.5, at most 2 s) until it is there."""
    delay = first
    while True:
        entry = client.history(prompt_id)
        if entry is not None:
            return entry
        if _left(deadline) <= 0:
            raise _timeout_error(prompt_id, timeout, client)
        time.sleep(max(0.0, min(delay, _left(deadline))))
        delay = min(delay * 1.5, 2.0)


def _follow(client: "ServiceClient", events: "EventSocket | None", follower: _Follower, deadline: float,
            timeout: float) -> dict[str, Any]:
    """Follow the websocket until the prompt ends (or the socket drops), then read its history."""
    if events is not None:
        try:
            while _left(deadline) > 0:
                event = events.next(min(1.0, max(_left(deadline), 0.01)))
                if event is not None and follower.event(event):
                    break
        except ConnectionError as exc:
            follower.progress.debug(f"{exc}; polling /history instead")
        finally:
            events.close()
    return wait_history(client, follower.prompt_id, deadline, timeout)


def _history_error(entry: Mapping[str, Any], workflow: Workflow) -> str | None:
    status = entry.get("status") or {}
    if status.get("status_str") != "error":
        return None
    for kind, data in status.get("messages") or []:
        if kind == "execution_error":
            return execution_error_line(data or {}, workflow)
        if kind == "execution_interrupted":
            return "interrupted"
    return "ComfyUI reported an error"


def download_outputs(client: "ServiceClient", outputs: Mapping[str, Any], dest: Path,
                     progress: "Progress") -> tuple[list[dict[str, Any]], list[str]]:
    """Every output file through ``/view`` into ``dest``; names that would escape it are refused."""
    files, refused = [], []
    for item in output_files(outputs):
        target = safe_local_path(dest, item.relative)
        if target is None:
            progress.warn(f"refused output name {item.relative!r} of node {item.node}: it would be written outside {dest}")
            refused.append(item.relative)
            continue
        size = client.download({"filename": item.filename, "subfolder": item.subfolder, "type": item.type}, target)
        files.append({**item.to_dict(), "path": str(target), "size": size})
        progress.info(f"  saved {target} ({size} bytes)")
    return files, refused


def run(client: "ServiceClient", workflow: Workflow, progress: "Progress", *, out_dir: Path, timeout: float,
        allow_partial: bool = False, check: bool = True, confirm: Callable[[str], bool] = lambda q: True) -> RunReport:
    """Send the workflow to ``/prompt``, follow it, download its outputs."""
    started = time.monotonic()
    deadline = started + timeout
    if check:
        info = client.object_info()
        if info is None:
            raise UsageError(f"{client.endpoint} serves no /object_info: it is not a Standard/Cluster-edition ComfyUI; "
                             "nothing was sent", "an API-edition service queues work: use eascomfy submit")
        problems = errors_only(check_workflow(workflow, info=info))
        if problems:
            raise JobError(f"the workflow cannot run on this service ({len(problems)} problem{'s' if len(problems) != 1 else ''}); "
                           "nothing was sent", [p.line() for p in problems])
    client_id = uuid.uuid4().hex
    events = client.events(client_id, timeout=min(10.0, timeout))
    try:
        status, body = client.post_prompt(workflow, client_id)
    except BaseException:
        if events is not None:
            events.close()
        raise
    if status == 400 or not isinstance(body, Mapping) or "prompt_id" not in body:
        if events is not None:
            events.close()
        raise JobError("ComfyUI refused the workflow", prompt_error_lines(body, workflow),
                       "fix the nodes above (eascomfy check WORKFLOW.json lists every problem)")
    prompt_id = str(body["prompt_id"])
    partial = node_error_lines(body.get("node_errors") or {}, workflow)
    progress.info(f"queued as {prompt_id}" + (f" (number {body.get('number')})" if body.get("number") is not None else ""))
    if partial:
        for line in partial:
            progress.warn(line)
        if not allow_partial:
            if events is not None:
                events.close()
            client.cancel(prompt_id)
            raise JobError("ComfyUI accepted only some of the outputs; the job was cancelled", partial,
                           "fix the nodes above, or pass --allow-partial to run the outputs that passed")
    try:
        entry = _follow(client, events, _Follower(prompt_id, workflow, progress), deadline, timeout)
    except KeyboardInterrupt:
        if confirm(f"interrupt prompt {prompt_id} on the server?"):
            client.cancel(prompt_id)
            progress.info(f"interrupted {prompt_id} on the server")
        else:
            progress.info(f"left {prompt_id} running on the server")
        raise
    failure = _history_error(entry, workflow)
    files, refused = download_outputs(client, entry.get("outputs") or {}, out_dir, progress)
    report = RunReport(prompt_id, "error" if failure else "success", time.monotonic() - started, files, refused, partial)
    if failure:
        raise JobError(f"prompt {prompt_id} failed", [failure], "see the node above; fix its inputs or the model")
    return report


# -- submit (API edition) ------------------------------------------------------------------------------------------
@dataclass
class SubmitReport:
    journal: str
    task_ids: list[str]
    failed: dict[str, str]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        sent = len(self.task_ids) - len(self.failed)
        return {"journal": self.journal, "sent": sent, "failed": self.failed, "task_ids": self.task_ids,
                "seconds": round(self.seconds, 3), "per_second": round(sent / self.seconds, 1) if self.seconds else None}


def task_prefix(text: str) -> str:
    return _SAFE_ID.sub("-", text).strip("-.") or "job"


def submit(client: "ServiceClient", jobs: list[tuple[Workflow, list[str]]], journal: Journal, progress: "Progress", *,
           prefix: str = "job", source: str = "", concurrency: int = 16, chunk: int = 128) -> SubmitReport:
    """Post each job to ``/api_prompt?task_id=<unique id>``, ``concurrency`` in flight over the
    client's pooled connections. Each chunk's ids are journaled (fsync) before it is sent and
    marked sent after; the next chunk is journaled while one is in flight."""
    run_id = time.strftime("%Y%m%d%H%M%S") + uuid.uuid4().hex[:4]
    width = max(4, len(str(len(jobs))))
    bodies: dict[int, bytes] = {}  # identical workflows (--count) are serialized once
    tasks = []
    for n, (flow, overrides) in enumerate(jobs):
        body = bodies.get(id(flow))
        if body is None:
            body = bodies[id(flow)] = json.dumps(flow, separators=(",", ":")).encode()
        tasks.append((f"{prefix}-{run_id}-{n:0{width}d}", body, overrides))
    started = time.monotonic()
    failed: dict[str, str] = {}
    first_error: list[CloudError] = []
    in_flight: deque[tuple[list[tuple[str, bytes, list[str]]], list[Future[Any]]]] = deque()
    done = 0

    def settle() -> bool:
        """Journal the outcome of the oldest chunk in flight; False when all of it failed."""
        nonlocal done
        batch, futures = in_flight.popleft()
        records = []
        for (task_id, _, _), future in zip(batch, futures):
            try:
                sent = future.result()
                records.append({"event": "sent", "task_id": task_id, "index": sent.index, "request_id": sent.request_id,
                                "time": time.time()})
            except CloudError as exc:
                failed[task_id] = exc.message
                first_error.append(exc)
                records.append({"event": "send_failed", "task_id": task_id, "error": exc.message, "time": time.time()})
        journal.append(records)
        done += len(batch)
        progress.info(f"  sent {done - len(failed)}/{len(tasks)}" + (f", {len(failed)} failed" if failed else ""))
        return any("index" in r for r in records)

    # While this run is open, `results --follow` knows ids may be journaled but not yet marked sent.
    journal.append([{"event": "submit_started", "run": run_id, "pid": os.getpid(), "time": time.time()}])
    try:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="submit") as pool:
            for start in range(0, len(tasks), chunk):
                batch = tasks[start:start + chunk]
                journal.append({"event": "submit", "task_id": t, "workflow": source, "overrides": o, "time": time.time()}
                               for t, _, o in batch)
                in_flight.append((batch, [pool.submit(client.api_prompt, body, t) for t, body, _ in batch]))
                if len(in_flight) > 1 and not settle():
                    break
            while in_flight:
                settle()
    finally:
        journal.append([{"event": "submit_done", "run": run_id, "time": time.time()}])
    report = SubmitReport(str(journal.path), [t for t, _, _ in tasks[:done]], failed, time.monotonic() - started)
    if failed and len(failed) == done:
        raise CloudError(f"no job was accepted: {first_error[0].message}", code=first_error[0].code,
                         hint=first_error[0].hint)
    return report


# -- results (API edition) ------------------------------------------------------------------------------------------
@dataclass
class ResultsReport:
    journal: str
    written: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0
    pending: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.written if not r["ok"]]

    def to_dict(self) -> dict[str, Any]:
        return {"journal": self.journal, "written": self.written, "duplicates_skipped": self.duplicates,
                "failed": len(self.failed), "pending": self.pending, "unconfirmed": self.unconfirmed,
                "refused": self.refused}


@dataclass
class Storage:
    """Where the service's outputs are: its mounted OSS folder."""

    bucket: Bucket
    prefix: str


def _fetch(storage: Storage, files: Iterable[Any], dest: Path, progress: "Progress") -> tuple[list[dict[str, Any]], list[str]]:
    """Output files from the mount into ``dest``: names escaping it refused, missing ones noted."""
    fetched, refused = [], []
    for item in files:
        target = safe_local_path(dest, item.relative)
        if target is None:
            progress.warn(f"refused output name {item.relative!r} of node {item.node}: it would be written outside {dest}")
            refused.append(item.relative)
            continue
        key = f"{storage.prefix}{item.type}/{item.relative}"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        try:
            storage.bucket.download(key, str(partial))
        except CloudError as exc:
            partial.unlink(missing_ok=True)
            if exc.code not in ("NoSuchKey", "NotFound") and exc.status != 404:
                raise
            progress.warn(f"output {item.relative} is not on the mount (oss://{storage.bucket.name}/{key})")
            fetched.append({**item.to_dict(), "path": None, "missing": True})
            continue
        with open(partial, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(partial, target)
        fetched.append({**item.to_dict(), "path": str(target), "size": target.stat().st_size})
    return fetched, refused


class Collector:
    """Stores sink results: outputs (with ``download``), the result file, the journal line, in
    that order, each durable; only then is the entry committed on the queue."""

    def __init__(self, journal: Journal, reader: "SinkReader", progress: "Progress", *,
                 storage: Storage | None = None, download: Path | None = None) -> None:
        self.journal, self.reader, self.progress = journal, reader, progress
        self.storage, self.download = storage, download
        self.state = journal.read()
        self.report = ResultsReport(str(journal.path))

    def handle(self, frame: "SinkFrame") -> None:
        task_id = frame.tags.get("task_id") or f"index-{frame.index}"
        if task_id in self.state.results:
            self.reader.commit(frame.index)  # delivered again after a crash: already stored
            self.report.duplicates += 1
            return
        result = parse_sink_result(frame.tags, frame.data)
        files: list[dict[str, Any]] = []
        if self.download is not None and self.storage is not None and result.outputs:
            where = safe_local_path(self.download, _SAFE_ID.sub("_", task_id))
            if where is None:
                self.report.refused += [o.relative for o in result.outputs]
            else:
                files, refused = _fetch(self.storage, result.outputs, where, self.progress)
                self.report.refused += refused
        path = self.journal.result_path(task_id)
        record = {"event": "result", "task_id": task_id, "ok": result.ok, "code": result.code, "index": frame.index,
                  "request_id": frame.tags.get("requestId"), "file": str(path), "outputs": [o.relative for o in result.outputs],
                  "error": result.error, "known": task_id in self.state.submitted}
        body = {**{k: v for k, v in record.items() if k != "event"}, "files": files, "tags": frame.tags, "data": result.data}
        write_atomic(path, json.dumps(body, indent=1, ensure_ascii=False), durable=True)
        record["time"] = time.time()
        self.journal.append([record])
        self.state.feed(record)
        self.reader.commit(frame.index)
        self.report.written.append({**record, "files": files})
        if result.ok:
            self.progress.info(f"  {task_id}: done, {len(result.outputs)} output{'s' if len(result.outputs) != 1 else ''}")
        else:
            self.progress.warn(f"{task_id} failed: {result.error}")

    def finish(self) -> ResultsReport:
        self.state = self.journal.read(self.state)
        self.report.pending = self.state.pending()
        self.report.unconfirmed = self.state.unconfirmed()
        return self.report


def results(target: Target, journal: Journal, progress: "Progress", *, follow: bool = False, task_id: str | None = None,
            storage: Storage | None = None, download: Path | None = None, window: int = 8,
            drain_idle: float = DRAIN_IDLE) -> ResultsReport:
    """Read the sink. Without ``follow``: what is there, until it is quiet for ``drain_idle`` s
    (an empty sink is waited on for that long too, for a job about to finish).
    With it: until every task sent through this journal has a result (or ``task_id`` has one)."""
    from .adapters.eas_queue import SinkReader

    if download is not None and storage is None:
        raise UsageError("--download needs the service's storage (the spec's storage.oss)", "pass -f SPEC")
    reader = SinkReader(target.endpoint, target.token, window=window, tags={"task_id": task_id} if task_id else None,
                        log=progress.debug)
    collector = Collector(journal, reader, progress, storage=storage, download=download)

    def finished() -> bool:
        state = collector.state = journal.read(collector.state)
        if task_id:
            return task_id in state.results
        return bool(state.submitted) and not state.pending() and not state.submitting()

    try:
        if follow and finished():
            return collector.finish()
        for frame in reader.frames(FOLLOW_TICK if follow else drain_idle):
            if frame is not None:
                if task_id and frame.tags.get("task_id") != task_id:
                    continue
                collector.handle(frame)
                if not follow or not finished():
                    continue
                break
            if not follow or finished():
                break
    finally:
        reader.close()
    return collector.finish()
