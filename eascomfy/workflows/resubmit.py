"""Tasks that never come back: sent again on request, then put in the dead-letter file.

A task is outstanding while it may be on the queue and has no result: sent, sent with its answer
lost, or journaled by a submit that died before it knew. Once its last try is older than the
given duration, ``Resubmitter`` sends it again, with the same task id and the workflow kept
beside the journal, journaling ``resend`` before and the outcome after; once it has had
``max_tries`` tries it goes to the dead-letter file instead. Results are stored once per task id,
so a job that was only slow, and now runs twice, still gives exactly one result.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.duration import format_duration
from ..errors import CloudError, UsageError

if TYPE_CHECKING:
    from ..adapters.comfy_http import ServiceClient
    from ..ports import Progress
    from .journal import Journal, JournalState

CHECK_EVERY = 0.5  # seconds between looks at what is overdue


@dataclass
class Resent:
    """What one look did: tasks sent again, tasks given up (dead-lettered)."""

    resent: list[str] = field(default_factory=list)
    dead: list[dict[str, Any]] = field(default_factory=list)


class Resubmitter:
    """Sends overdue tasks again (``after`` seconds since their last try), ``concurrency`` at a
    time; a task with ``max_tries`` tries behind it goes to the dead-letter file."""

    def __init__(self, client: "ServiceClient", journal: "Journal", progress: "Progress", *, after: float,
                 max_tries: int = 3, concurrency: int = 16) -> None:
        if max_tries < 1:
            raise UsageError(f"must be at least 1 (got {max_tries})", param="max_tries")
        self.client, self.journal, self.progress = client, journal, progress
        self.after, self.max_tries, self.concurrency = after, max_tries, concurrency
        self._next = 0.0

    def tick(self, state: "JournalState", force: bool = False, only: str | None = None) -> Resent:
        """At most every ``CHECK_EVERY`` s (or now, with ``force``): resend or give up on what is
        overdue (``only`` that task, if given); ``state`` is brought up to date with what was
        journaled."""
        done = Resent()
        if not force and time.monotonic() < self._next:
            return done
        self._next = time.monotonic() + CHECK_EVERY
        if state.submitting():  # a live submit may be about to mark its tasks sent
            return done
        overdue = [t for t in state.overdue(self.after, time.time()) if only is None or t == only]
        if not overdue:
            return done
        again: list[tuple[str, bytes, int]] = []
        for task_id in overdue:
            tries = state.tries.get(task_id, 1)
            submitted = state.submitted.get(task_id, {})
            body = self.journal.body(str(submitted.get("body") or ""))
            if tries >= self.max_tries or body is None:
                reason = (f"no result after {tries} tr{'y' if tries == 1 else 'ies'}, the last "
                          f"{format_duration(self.after)}+ ago" if body is not None
                          else "no result, and its workflow was not kept beside the journal: it cannot be sent again")
                done.dead.append({"task_id": task_id, "reason": reason})
                self.journal.dead_letter({"task_id": task_id, "reason": reason, "received": False, "tries": tries,
                                          "workflow": submitted.get("workflow"), "overrides": submitted.get("overrides"),
                                          "body": submitted.get("body"), "time": time.time()})
                self.progress.warn(f"{task_id}: {reason}; put in {self.journal.dead_letters}")
            else:
                again.append((task_id, body, tries + 1))
        if again:
            self._send(again)
            done.resent = [t for t, _, _ in again]
            self.progress.info(f"  sent {len(again)} overdue task(s) again (no result for {format_duration(self.after)})")
        self.journal.read(state)
        return done

    def _send(self, tasks: list[tuple[str, bytes, int]]) -> None:
        """Journal each ``resend``, send them, journal each outcome (``resent``: it never weakens
        what is known)."""
        from ..adapters.comfy_http import AnswerLost

        self.journal.append([{"event": "resend", "task_id": t, "try": n, "time": time.time()} for t, _, n in tasks])
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(tasks)), thread_name_prefix="resend") as pool:
            futures = [(t, pool.submit(self.client.api_prompt, body, t)) for t, body, _ in tasks]
            records = []
            refused: CloudError | None = None
            for task_id, future in futures:
                try:
                    sent = future.result()
                    records.append({"event": "sent", "task_id": task_id, "index": sent.index,
                                    "request_id": sent.request_id, "resent": True, "time": time.time()})
                except AnswerLost as exc:
                    records.append({"event": "unknown", "task_id": task_id, "error": exc.message, "resent": True,
                                    "time": time.time()})
                except CloudError as exc:
                    records.append({"event": "send_failed", "task_id": task_id, "error": exc.message, "resent": True,
                                    "time": time.time()})
                    if exc.code == "Unauthorized":
                        refused = exc
        self.journal.append(records)
        if refused is not None:
            raise refused
