"""The job journal: JSON lines, each append one write and one fsync, that make submit and results
exactly-once.

``submit`` is written before a task is sent, ``sent`` (or ``send_failed``) after, or
``unknown`` when the request went out and its answer was lost (the job may be queued: its
result settles it); ``result`` after the result file (and its outputs) are on disk. A result that
cannot be written locally goes, with its data, to the dead-letter file beside the journal, then
a ``dead`` line settles its task, so one bad entry never blocks the queue. ``results`` commits a sink entry only after
its ``result`` line is durable, and commits without writing again an entry whose task already has
one: a crash at any point loses nothing and writes nothing twice.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..local.files import fsync_dir, id_name, state_dir

SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]+")  # what may not be in a file name or a task id


@dataclass
class JournalState:
    submitted: dict[str, dict[str, Any]] = field(default_factory=dict)
    sent: set[str] = field(default_factory=set)
    send_failed: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)  # sent, answer lost: maybe queued
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    dead: dict[str, dict[str, Any]] = field(default_factory=dict)  # settled in the dead-letter file
    runs: dict[str, int] = field(default_factory=dict)  # submit runs under way: run id -> pid
    offset: int = 0

    def feed(self, record: Mapping[str, Any]) -> None:
        task_id, event = str(record.get("task_id")), record.get("event")
        if event == "submit":
            self.submitted[task_id] = dict(record)
        elif event == "sent":
            self.sent.add(task_id)
            self.send_failed.discard(task_id)
            self.unknown.discard(task_id)
        elif event == "send_failed":
            self.send_failed.add(task_id)
        elif event == "unknown":
            self.unknown.add(task_id)
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

    def pending(self) -> list[str]:
        """Sent tasks without a result yet."""
        return sorted(t for t in self.sent if not self.settled(t))

    def lost_answers(self) -> list[str]:
        """Sent, but the answer was lost, and no result yet: maybe queued."""
        return sorted(t for t in self.unknown if t not in self.sent and not self.settled(t))

    def unconfirmed(self) -> list[str]:
        """Recorded but neither marked sent nor failed (a submit that died mid-way): maybe sent."""
        return sorted(t for t in self.submitted if t not in self.sent and t not in self.send_failed
                      and t not in self.unknown and not self.settled(t))


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
        self._fd: int | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_service(cls, service: str, path: Path | None = None) -> "Journal":
        return cls(path if path is not None else state_dir() / "jobs" / f"{SAFE_ID.sub('_', service)}.jsonl")

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
        """``<journal>.results/<task id>.json``; any task id gives a name this file system takes."""
        return self.results_dir / id_name(task_id, ".json")

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
