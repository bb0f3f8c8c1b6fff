"""The API edition's queue: ``submit`` posts jobs to ``/api_prompt`` (each task id journaled
before it is sent), ``results`` reads the ``sink`` queue and stores each result durably before
it is committed (``Collector``), its outputs fetched from the mount on request.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from ..core.comfy_answers import parse_sink_result
from ..core.duration import format_duration
from ..core.workflow import Workflow
from ..errors import CloudError, EascomfyError, UsageError, WaitTimeout
from ..local.files import folder_problem, id_name, safe_local_path, write_atomic
from .journal import SAFE_ID, Journal

if TYPE_CHECKING:
    from ..adapters.comfy_http import ServiceClient
    from ..adapters.eas_queue import SinkFrame, SinkReader
    from ..ports import Progress
    from ..storage.mount import Mount
    from .target import Target

DRAIN_IDLE = 1.0  # results without follow: stop after this long without a new result
OVERDUE_AFTER = 30 * 60.0  # a task without a result this long after its last try is reported overdue
FOLLOW_TICK = 0.5  # results with follow: how often the journal is re-read while the sink is quiet


@dataclass
class SubmitReport:
    journal: str
    task_ids: list[str]
    failed: dict[str, str]
    seconds: float
    unknown: list[str] = field(default_factory=list)  # sent, answer lost: maybe queued

    def to_dict(self) -> dict[str, Any]:
        sent = len(self.task_ids) - len(self.failed)
        return {"journal": self.journal, "sent": sent, "failed": self.failed, "unknown": self.unknown,
                "task_ids": self.task_ids, "seconds": round(self.seconds, 3),
                "per_second": round(sent / self.seconds, 1) if self.seconds else None}


def task_prefix(text: str) -> str:
    return SAFE_ID.sub("-", text).strip("-.") or "job"


def submit(client: "ServiceClient", jobs: list[tuple[Workflow, list[str]]], journal: Journal, progress: "Progress", *,
           prefix: str = "job", source: str = "", concurrency: int = 16, chunk: int = 128) -> SubmitReport:
    """Post each job to ``/api_prompt?task_id=<unique id>``, ``concurrency`` in flight over the
    client's pooled connections. Each chunk's ids are journaled (fsync) before it is sent and
    marked sent after; the next chunk is journaled while one is in flight. A job whose answer was
    lost is never sent again here: it is journaled ``unknown`` and its result settles it."""
    from ..adapters.comfy_http import AnswerLost

    run_id = time.strftime("%Y%m%d%H%M%S") + uuid.uuid4().hex[:4]
    width = max(4, len(str(len(jobs))))
    bodies: dict[int, bytes] = {}  # identical workflows (--count) are serialized once
    tasks = []
    for n, (flow, overrides) in enumerate(jobs):
        body = bodies.get(id(flow))
        if body is None:
            body = bodies[id(flow)] = json.dumps(flow, separators=(",", ":")).encode()
        tasks.append((f"{prefix}-{run_id}-{n:0{width}d}", body, overrides))
    kept: dict[int, str] = {}  # id(body) -> its name in the journal's bodies folder

    def keep(body: bytes) -> str:
        """The workflow kept beside the journal, so its task can be sent again."""
        if id(body) not in kept:
            kept[id(body)] = journal.keep_body(body)
        return kept[id(body)]
    started = time.monotonic()
    failed: dict[str, str] = {}
    unknown: list[str] = []
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
            except AnswerLost as exc:
                unknown.append(task_id)
                records.append({"event": "unknown", "task_id": task_id, "error": exc.message, "time": time.time()})
            except CloudError as exc:
                failed[task_id] = exc.message
                first_error.append(exc)
                records.append({"event": "send_failed", "task_id": task_id, "error": exc.message, "time": time.time()})
        journal.append(records)
        done += len(batch)
        progress.info(f"  sent {done - len(failed)}/{len(tasks)}" + (f", {len(failed)} failed" if failed else "")
                      + (f", {len(unknown)} answer(s) lost" if unknown else ""))
        return any(r["event"] != "send_failed" for r in records)

    # While this run is open, `results --follow` knows ids may be journaled but not yet marked sent.
    journal.append([{"event": "submit_started", "run": run_id, "pid": os.getpid(), "time": time.time()}])
    try:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="submit") as pool:
            for start in range(0, len(tasks), chunk):
                batch = tasks[start:start + chunk]
                journal.append([{"event": "submit", "task_id": t, "workflow": source, "overrides": o, "body": keep(b),
                                 "time": time.time()} for t, b, o in batch])
                in_flight.append((batch, [pool.submit(client.api_prompt, body, t) for t, body, _ in batch]))
                if len(in_flight) > 1 and not settle():
                    break
            while in_flight:
                settle()
    finally:
        journal.append([{"event": "submit_done", "run": run_id, "time": time.time()}])
    report = SubmitReport(str(journal.path), [t for t, _, _ in tasks[:done]], failed, time.monotonic() - started, unknown)
    if unknown:
        progress.warn(f"{len(unknown)} job(s) were sent but their answer was lost: they may be queued, and were not "
                      "sent again (a job is never queued twice); their results settle it")
    if failed and len(failed) == done:
        raise CloudError(f"no job was accepted: {first_error[0].message}", code=first_error[0].code,
                         hint=first_error[0].hint)
    return report


@dataclass
class ResultsReport:
    journal: str
    written: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0
    pending: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    unwritable: list[dict[str, Any]] = field(default_factory=list)  # outputs that could not be stored locally
    dead: list[dict[str, Any]] = field(default_factory=list)  # tasks put in the dead-letter file by this run
    dead_letters: str = ""
    not_sent: list[str] = field(default_factory=list)  # refused by the queue when submitted
    overdue: list[str] = field(default_factory=list)  # outstanding, last try older than overdue_after
    overdue_after: float = 0.0
    resent: list[str] = field(default_factory=list)  # sent again by this run
    timed_out: float | None = None  # the time allowed, when it ran out before the end

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.written if not r["ok"]]

    @property
    def outstanding(self) -> int:
        return len(self.pending) + len(self.unknown) + len(self.unconfirmed)

    def to_dict(self) -> dict[str, Any]:
        return {"journal": self.journal, "written": self.written, "duplicates_skipped": self.duplicates,
                "failed": len(self.failed), "pending": self.pending, "unknown": self.unknown, "unconfirmed": self.unconfirmed,
                "overdue": self.overdue, "overdue_after": self.overdue_after, "resent": self.resent,
                "not_sent": self.not_sent, "refused": self.refused, "unwritable": self.unwritable, "dead": self.dead,
                "dead_letters": self.dead_letters, "timed_out": self.timed_out is not None}

    def error(self) -> EascomfyError | None:
        """What ends the command in an error, if anything: the time ran out (exit 5), or a job
        failed, an output was refused or not written, a task was dead-lettered (exit 1)."""
        if self.timed_out is not None:
            return WaitTimeout(f"{self.outstanding} task(s) still have no result after {format_duration(self.timed_out)} "
                               f"({len(self.pending)} pending, {len(self.unknown)} answer(s) lost, "
                               f"{len(self.unconfirmed)} unconfirmed)",
                               "allow more time, or have overdue tasks sent again", param="timeout")
        if self.failed or self.refused or self.unwritable or self.dead:
            return EascomfyError(f"{len(self.failed)} job(s) failed"
                                 + (f", {len(self.refused)} output name(s) refused" if self.refused else "")
                                 + (f", {len(self.unwritable)} output(s) could not be written" if self.unwritable else "")
                                 + (f", {len(self.dead)} task(s) put in the dead-letter file" if self.dead else ""))
        return None


def _fetch(mount: "Mount", files: Iterable[Any], dest: Path, progress: "Progress") -> tuple[list[dict[str, Any]], list[str]]:
    """Output files from the mount into ``dest``: names escaping it refused, missing ones noted,
    one that cannot be written locally (``error``) does not stop the others."""
    fetched, refused = [], []
    for item in files:
        target = safe_local_path(dest, item.relative)
        if target is None:
            progress.warn(f"refused output name {item.relative!r} of node {item.node}: it would be written outside {dest}")
            refused.append(item.relative)
            continue
        key = mount.key(f"{item.type}/{item.relative}")
        partial = target.with_name(target.name + ".part")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            mount.bucket.download(key, str(partial))
            with open(partial, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(partial, target)
        except CloudError as exc:
            _unlink(partial)
            if exc.code not in ("NoSuchKey", "NotFound") and exc.status != 404:
                raise
            progress.warn(f"output {item.relative} is not on the mount ({mount.url(key)})")
            fetched.append({**item.to_dict(), "path": None, "missing": True})
            continue
        except OSError as exc:
            _unlink(partial)
            error = f"cannot write {target}: {exc.strerror or exc}"
            progress.warn(f"output {item.relative}: {error} (it stays on the mount: {mount.url(key)})")
            fetched.append({**item.to_dict(), "path": None, "error": error})
            continue
        fetched.append({**item.to_dict(), "path": str(target), "size": target.stat().st_size})
    return fetched, refused


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _text(data: bytes) -> str:
    """Sink data for the dead-letter file: the text, or base64 when it is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode()


class Collector:
    """Stores sink results: outputs (with ``download``), the result file, the journal line, in
    that order, each durable; only then is the entry committed on the queue."""

    def __init__(self, journal: Journal, reader: "SinkReader", progress: "Progress", *,
                 mount: "Mount | None" = None, download: Path | None = None) -> None:
        self.journal, self.reader, self.progress = journal, reader, progress
        self.mount, self.download = mount, download
        self.state = journal.read()
        self.report = ResultsReport(str(journal.path))

    def handle(self, frame: "SinkFrame") -> None:
        task_id = frame.tags.get("task_id") or f"index-{frame.index}"
        dead = self.state.dead.get(task_id)
        if task_id in self.state.results or (dead is not None and dead.get("received")):
            self.reader.commit(frame.index)  # delivered again after a crash: already stored
            self.report.duplicates += 1
            return
        result = parse_sink_result(frame.tags, frame.data)
        files: list[dict[str, Any]] = []
        path = self.journal.result_path(task_id)
        record = {"event": "result", "task_id": task_id, "ok": result.ok, "code": result.code, "index": frame.index,
                  "request_id": frame.tags.get("requestId"), "file": str(path), "outputs": [o.relative for o in result.outputs],
                  "error": result.error, "known": task_id in self.state.submitted}
        try:
            if self.download is not None and self.mount is not None and result.outputs:
                where = safe_local_path(self.download, id_name(task_id))
                if where is None:
                    self.report.refused += [o.relative for o in result.outputs]
                else:
                    files, refused = _fetch(self.mount, result.outputs, where, self.progress)
                    self.report.refused += refused
                    self.report.unwritable += [{"task_id": task_id, **f} for f in files if f.get("error")]
            body = {**{k: v for k, v in record.items() if k != "event"}, "files": files, "tags": frame.tags,
                    "data": result.data}
            write_atomic(path, json.dumps(body, indent=1, ensure_ascii=False), durable=True)
        except OSError as exc:  # this result cannot be stored here: keep it aside, let the queue move on
            self._dead_letter(frame, task_id, f"cannot write the result: {exc.strerror or exc}"
                              + (f": {exc.filename}" if exc.filename else ""))
            return
        record["time"] = time.time()
        self.journal.append([record])
        self.state.feed(record)
        self.reader.commit(frame.index)
        self.report.written.append({**record, "files": files})
        if result.ok:
            self.progress.info(f"  {task_id}: done, {len(result.outputs)} output{'s' if len(result.outputs) != 1 else ''}")
        else:
            self.progress.warn(f"{task_id} failed: {result.error}")

    def _dead_letter(self, frame: "SinkFrame", task_id: str, reason: str) -> None:
        """The whole sink entry to the dead-letter file, a ``dead`` line, then the commit."""
        entry = {"task_id": task_id, "reason": reason, "received": True, "index": frame.index,
                 "request_id": frame.tags.get("requestId"), "tags": frame.tags, "data": _text(frame.data),
                 "time": time.time()}
        self.journal.dead_letter(entry)
        self.state.feed({"event": "dead", **entry})
        self.reader.commit(frame.index)
        self.report.dead.append({"task_id": task_id, "reason": reason})
        self.progress.warn(f"{task_id}: {reason}; the result was put in {self.journal.dead_letters}")

    def finish(self, overdue_after: float) -> ResultsReport:
        """The report, with every task still outstanding (and which are overdue) named."""
        state = self.state = self.journal.read(self.state)
        report = self.report
        report.pending, report.unknown = state.pending(), state.lost_answers()
        report.unconfirmed, report.not_sent = state.unconfirmed(), state.not_sent()
        report.overdue, report.overdue_after = state.overdue(overdue_after, time.time()), overdue_after
        report.dead_letters = str(self.journal.dead_letters)
        if report.unknown:
            self.progress.warn(f"{len(report.unknown)} task(s) were sent but the answer was lost; no result yet")
        if report.unconfirmed and not state.submitting():
            self.progress.warn(f"{len(report.unconfirmed)} task(s) are unconfirmed: the submit that sent them stopped "
                               "before it knew whether the queue took them; no result yet")
        if report.overdue:
            self.progress.warn(f"{len(report.overdue)} task(s) have had no result for over {format_duration(overdue_after)}: "
                               "they may be lost; they can be sent again after a while, with the same task id")
        return report


def results(target: Target, journal: Journal, progress: "Progress", *, follow: bool = False, task_id: str | None = None,
            mount: "Mount | None" = None, download: Path | None = None, window: int = 8,
            drain_idle: float = DRAIN_IDLE, timeout: float | None = None, resubmit_after: float | None = None,
            max_tries: int = 3, overdue_after: float = OVERDUE_AFTER) -> ResultsReport:
    """Read the sink. Without ``follow``: what is there, until it is quiet for ``drain_idle`` s
    (an empty sink is waited on for that long too, for a job about to finish).
    With it: until every task that may be on the queue (sent, its answer lost, or unconfirmed
    after a submit died) has a result or is dead-lettered (or ``task_id`` has one).
    ``timeout`` bounds either (the report says it ran out). ``resubmit_after``: tasks without a
    result that long after their last try are sent again, up to ``max_tries`` tries in all, then
    dead-lettered (``Resubmitter``)."""
    from ..adapters.eas_queue import SinkReader
    from .resubmit import Resubmitter

    if download is not None and mount is None:
        raise UsageError("needs the service's storage (the spec's storage.oss)", "give the service's spec", param="download")
    problem = folder_problem(download) if download is not None else None
    if problem:
        raise UsageError(problem, "give a folder for the outputs", param="download")
    for name, value in (("timeout", timeout), ("resubmit_after", resubmit_after)):
        if value is not None and not value > 0:
            raise UsageError(f"must be more than 0 (got {value})", param=name)
    if max_tries < 1:
        raise UsageError(f"must be at least 1 (got {max_tries})", param="max_tries")
    deadline = time.monotonic() + timeout if timeout is not None else None
    reader = SinkReader(target.endpoint, target.token, window=window, tags={"task_id": task_id} if task_id else None,
                        log=progress.debug)
    try:
        collector = Collector(journal, reader, progress, mount=mount, download=download)  # reads the journal
    except BaseException:
        reader.close()
        raise
    client = target.client(progress) if resubmit_after is not None else None
    again = (Resubmitter(client, journal, progress, after=resubmit_after, max_tries=max_tries)
             if client is not None and resubmit_after is not None else None)

    def finished() -> bool:
        state = collector.state = journal.read(collector.state)
        if task_id:
            return state.settled(task_id)
        return bool(state.outcome) and not state.outstanding() and not state.submitting()

    def look_again(force: bool = False) -> None:
        if again is not None:
            done = again.tick(collector.state, force, only=task_id)
            collector.report.resent += done.resent
            collector.report.dead += done.dead

    try:
        look_again(force=True)
        if follow and finished():
            return collector.finish(resubmit_after or overdue_after)
        for frame in reader.frames(FOLLOW_TICK if follow else drain_idle):
            if frame is not None and not (task_id and frame.tags.get("task_id") != task_id):
                collector.handle(frame)
            look_again()
            if follow and finished():
                break
            if not follow and frame is None:
                break
            if deadline is not None and time.monotonic() >= deadline:
                collector.report.timed_out = timeout
                break
    finally:
        reader.close()
        if client is not None:
            client.close()
    return collector.finish(resubmit_after or overdue_after)
