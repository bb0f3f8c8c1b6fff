"""Waiting for a service: DescribeService with backoff, each new status and event reported once,
until it is ready (Running AND its endpoint answers the service token) or in a wanted state.

A failed status, the service disappearing (DescribeService answers NotFound, or it is being
deleted) or the deadline ends the wait with ``NotReady``, which carries what the service showed
last and its diagnosis (``control.diagnose``: EAS's diagnosis, the last log lines, the known
causes, printed as progress); ``NotReady.error`` turns it into the error people see, the known
causes first in its hint.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..adapters.eas import NOT_FOUND, EasClient, Event, LiveService, probe
from ..errors import CloudError, WaitTimeout
from ..ports import Progress
from ..retry import Backoff, poll

if TYPE_CHECKING:
    from .diagnose import Report

RUNNING, FAILED, DELETING = "Running", "Failed", "Deleting"
FAILED_STATUSES = (FAILED, "DeleteFailed")
GONE = "gone"  # what the waiter reports when DescribeService answers NotFound
# A change is still rolling out (a create, an update, a start, or waiting for resources): the
# service may already have the spec's config and still not be ready.
IN_PROGRESS = ("Creating", "Updating", "Starting", "Waiting")
DEFAULT_TIMEOUT = 1800.0


@dataclass(frozen=True)
class Poll:
    """How often to look. DescribeService backs off from ``first`` to ``cap``; once Running, the
    endpoint is probed every ``probe`` seconds (not an API call) and the status re-read every
    ``recheck`` seconds, so readiness is noticed within ``probe`` seconds."""

    first: float = 0.2
    factor: float = 1.5
    cap: float = 3.0
    probe: float = 0.2
    recheck: float = 3.0

    @property
    def backoff(self) -> Backoff:
        """The DescribeService delays."""
        return Backoff(self.first, self.factor, self.cap)


class NotReady(Exception):
    """The service failed, or was not ready in time: what it showed last."""

    def __init__(self, live: LiveService | None, events: list[Event], timed_out: bool, detail: str,
                 report: "Report | None" = None) -> None:
        super().__init__(detail)
        self.live, self.events, self.timed_out, self.detail = live, events, timed_out, detail
        self.report = report

    @property
    def gone(self) -> bool:
        """The service was deleted under the wait: nothing to wait for, nothing to roll back."""
        return not self.timed_out and (self.live is None or self.live.status == DELETING)

    def describe(self, name: str) -> str:
        if self.live is None:
            return f"service {name} {self.detail}: DescribeService answers {NOT_FOUND}"
        text = f"service {name} {self.detail}: status {self.live.status}"
        if self.live.reason or self.live.message:
            text += f" ({self.live.reason}: {self.live.message})"
        if self.events:
            text += "; last events: " + " | ".join(f"{e.reason}: {e.message}" for e in self.events[-3:])
        return text

    def error(self, service: str, hint: str | None = None) -> CloudError | WaitTimeout:
        """The error to raise: a timeout (exit 5) or a failed service (exit 4), with advice."""
        message = self.describe(service)
        if self.gone:
            advice = "it was deleted elsewhere (e.g. in the console) while eascomfy waited; deploy again to create it"
            return CloudError(message, code="ServiceGone", service=service, hint=hint or advice)
        known = self.report.hint() if self.report else None
        hint = "; ".join(h for h in (known, hint) if h) or None
        if self.timed_out:
            advice = "Waiting usually means no stock for the instance type (add fallback_instance_types) or a wrong spec"
            return WaitTimeout(message, "; ".join(h for h in (hint, advice, "see `eascomfy status`") if h))
        return CloudError(message, code="ServiceFailed", service=service, hint=hint or "see `eascomfy status` and the events")


def ready(status: int | None) -> bool:
    """The probe's verdict: the gateway routes to a healthy instance (2xx/3xx)."""
    return status is not None and 200 <= status < 400


class Watcher:
    """Polls one service, reporting each new status and event once."""

    def __init__(self, client: EasClient, name: str, progress: Progress, timeout: float, poll: Poll, since: float) -> None:
        self.client, self.name, self.progress, self.poll, self.since = client, name, progress, poll, since
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self._state: tuple[str, ...] | None = None
        self._seen: set[Event] = set()

    def _report(self, live: LiveService | None) -> None:
        state = (live.status, live.reason, live.message) if live else (GONE,)
        if state == self._state:
            return
        self._state = state
        if live is None:
            self.progress.info(f"{self.name}: gone")
            return
        self.progress.info(f"{self.name}: {live.status} ({live.running}/{live.total} instances)")
        for event in self._events():
            if event not in self._seen:
                self._seen.add(event)
                self.progress.info(f"  event {event.line()}")

    def _events(self) -> list[Event]:
        """The service's events; none when it vanished between DescribeService and this read (the
        next DescribeService tells the waiter it is gone)."""
        try:
            return self.client.events(self.name, self.since)
        except CloudError as exc:
            if exc.code == NOT_FOUND:
                return []
            raise

    def fail(self, live: LiveService | None, timed_out: bool, detail: str) -> NotReady:
        events = self._events() if live is not None else []
        return NotReady(live, events, timed_out, detail, self.diagnose(live))

    def diagnose(self, live: LiveService | None) -> "Report | None":
        """Why it is not ready, printed as progress (a failed call here only shows with --verbose)."""
        if live is None or live.status == DELETING:
            return None
        from .diagnose import diagnose

        report = diagnose(self.client, self.name, live, progress=self.progress)
        for line in report.lines():
            self.progress.info(line)
        return report

    def until(self, check: Callable[[LiveService | None], bool]) -> LiveService | None:
        """Describe with backoff until ``check(live)``; NotReady on a failed status or the deadline."""

        def done(live: LiveService | None) -> bool:
            self._report(live)
            if check(live):
                return True
            if live is None or live.status == DELETING:
                raise self.fail(live, False, "was deleted while waiting for it")
            if live.status in FAILED_STATUSES:
                raise self.fail(live, False, "failed")
            return False

        live, reached = poll(lambda: self.client.describe(self.name), done, self.poll.backoff.delays(), self.deadline)
        if not reached:
            raise self.fail(live, True, f"did not get there within {self.timeout:g} s")
        return live

    def ready(self) -> LiveService:
        """Running AND the endpoint answers the probe with the service token: the status is read
        again every ``recheck`` seconds, the endpoint probed every ``probe`` seconds in between."""
        while True:
            live = self.until(lambda s: s is not None and s.status == RUNNING)
            assert live is not None
            recheck = min(self.deadline, time.monotonic() + self.poll.recheck)
            answers = lambda: probe(live.internet_endpoint, live.access_token)  # noqa: E731
            _, reached = poll(answers, ready, itertools.repeat(self.poll.probe), recheck)
            if reached:
                self.progress.info(f"{self.name}: ready (the endpoint answers)")
                return live
            if time.monotonic() >= self.deadline:
                raise self.fail(live, True, f"is Running but its endpoint did not answer within {self.timeout:g} s")


def wait_ready(
    client: EasClient, name: str, progress: Progress, timeout: float, poll: Poll = Poll(), since: float | None = None
) -> LiveService:
    return Watcher(client, name, progress, timeout, poll, time.time() if since is None else since).ready()
