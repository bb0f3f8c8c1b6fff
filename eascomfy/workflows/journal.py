"""The job journal: JSON lines, each append one write and one fsync, that make submit and results
exactly-once.

``submit`` is written before a task is sent (its workflow kept in ``<journal>.bodies/``),
``sent`` (or ``send_failed``) after, or ``unknown`` when the request went out and its answer was
lost (the job may be queued: its result settles it); ``resend`` before a task is sent again on
request, ``result`` after the result file (and its outputs) are on disk. A result that cannot be
written locally, or a task that never returned after its last try, goes to the dead-letter file
beside the journal, then a ``dead`` line settles it, so one bad entry never blocks the queue.
``results`` commits a sink entry only after its ``result`` line is durable, and commits without
writing again an entry whose task already has one: a crash at any point loses nothing and
writes nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import UsageError
from ..local.files import fsync_dir, id_name, state_dir, write_atomic

SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]+")  # what may not be in a file name or a task id


# What is known of whether a task is on the queue, weakest first: nothing yet (being sent, or the
# submit died), sent but the answer was lost, sent and confirmed. A resend never weakens it.
_CERTAINTY = {None: 0, "unknown": 1, "sent": 2}


@dataclass
class JournalState:
    submitted: dict[str, dict[str, Any]] = field(default_factory=dict)  # the first submit line
    outcome: dict[str, str | None] = field(default_factory=dict)  # None, "sent", "unknown", "send_failed"
    tries: dict[str, int] = field(default_factory=dict)  # send attempts: the submit, then each resend
    last_try: dict[str, float] = field(default_factory=dict)  # wall-clock time of the last attempt
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    dead: dict[str, dict[str, Any]] = field(default_factory=dict)  # settled in the dead-letter file
    runs: dict[str, int] = field(default_factory=dict)  # submit runs under way: run id -> pid
    offset: int = 0

    def feed(self, record: Mapping[str, Any]) -> None:
        task_id, event = str(record.get("task_id")), record.get("event")
        if event in ("submit", "resend"):
            if event == "submit":
                self.submitted.setdefault(task_id, dict(record))
                self.outcome[task_id] = None
            self.tries[task_id] = self.tries.get(task_id, 0) + 1
            self.last_try[task_id] = float(record.get("time") or 0)
        elif event in ("sent", "unknown", "send_failed"):
            before = self.outcome.get(task_id)
            if record.get("resent") and before != "send_failed":  # a resend only adds certainty
                if _CERTAINTY.get(event, 0) > _CERTAINTY.get(before, 0):
                    self.outcome[task_id] = event
            else:
                self.outcome[task_id] = event
        elif event == "result":
            self.results.setdefault(task_id, dict(record))
        elif event == "dead":
            self.dead.setdefault(task_id, dict(record))
        elif event == "submit_started":
            self.runs[str(record.get("run"))] = int(record.get("pid") or 0)
        elif event == "submit_done":
            self.runs.pop(str(record.get("run")), None)

    def submitting(self) -> bool:
        """A submit on this machine is still sending (its ids may not be marked sent yet); one that
        died without saying so is not waited for."""
        return any(_alive(pid) for pid in self.runs.values())

    def settled(self, task_id: str) -> bool:
        """It has a result, or it is in the dead-letter file."""
        return task_id in self.results or task_id in self.dead

    def _with(self, outcome: str | None) -> list[str]:
        return sorted(t for t, o in self.outcome.items() if o == outcome and not self.settled(t))

    def pending(self) -> list[str]:
        """Sent (the queue confirmed it), no result yet."""
        return self._with("sent")

    def lost_answers(self) -> list[str]:
        """Sent, but the answer was lost, and no result yet: maybe queued."""
        return self._with("unknown")

    def unconfirmed(self) -> list[str]:
        """Journaled, but no outcome of its sending (being sent, or the submit died): maybe queued."""
        return self._with(None)

    def not_sent(self) -> list[str]:
        """The queue refused them: never queued, nothing to wait for."""
        return self._with("send_failed")

    def outstanding(self) -> list[str]:
        """Every task that may be on the queue and has no result: pending, lost answers, unconfirmed."""
        return sorted(t for t, o in self.outcome.items() if o != "send_failed" and not self.settled(t))

    def overdue(self, after: float, now: float) -> list[str]:
        """Outstanding tasks whose last attempt is more than ``after`` seconds old (tasks a live
        submit is still sending are not)."""
        live = self.submitting()
        return [t for t in self.outstanding()
                if now - self.last_try.get(t, 0.0) > after and not (live and self.outcome.get(t) is None)]


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
        self.dead_letters = self.path.parent / f"{self.path.stem}.dead.jsonl"
        self.bodies_dir = self.path.parent / f"{self.path.stem}.bodies"
        self._fd: int | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_service(cls, service: str, path: Path | None = None) -> "Journal":
        return cls(path if path is not None else state_dir() / "jobs" / f"{SAFE_ID.sub('_', service)}.jsonl")

    def _unusable(self, exc: OSError) -> UsageError:
        try:
            folder = isinstance(exc, IsADirectoryError) or self.path.is_dir()
        except OSError:  # the name itself is unusable (too long): the same error again
            folder = False
        what = "is a folder, not a file" if folder else f"cannot be used ({exc.strerror or exc})"
        return UsageError(f"{self.path}: {what}", "give a file path for the journal", param="journal")

    def _open(self) -> int:
        if self._fd is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                created = not self.path.exists()
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            except OSError as exc:  # the first write: before anything was sent
                raise self._unusable(exc) from None
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
        except OSError as exc:
            raise self._unusable(exc) from None
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
        """``<journal>.results/<task id>.json``; any task id gives a name this file system takes."""
        return self.results_dir / id_name(task_id, ".json")

    def keep_body(self, body: bytes) -> str:
        """Keep a workflow as sent (content-addressed, durable) so its task can be sent again;
        returns its name for the ``submit`` line."""
        digest = hashlib.sha256(body).hexdigest()[:32]
        path = self.bodies_dir / f"{digest}.json"
        if not path.exists():
            write_atomic(path, body, durable=True)
        return digest

    def body(self, digest: str) -> bytes | None:
        """A kept workflow, or None when it was not kept."""
        if not re.fullmatch(r"[0-9a-f]{32}", digest or ""):
            return None
        try:
            return (self.bodies_dir / f"{digest}.json").read_bytes()
        except OSError:
            return None

    def dead_letter(self, record: Mapping[str, Any]) -> None:
        """Append ``record`` (a task that cannot be settled normally, with what is known of it) to
        the dead-letter file, durably, then a ``dead`` line to the journal."""
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        with self._lock:
            fd = os.open(self.dead_letters, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
        self.append([{"event": "dead", "task_id": record.get("task_id"), "reason": record.get("reason"),
                      "received": bool(record.get("received")), "file": str(self.dead_letters),
                      "time": record.get("time")}])

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
