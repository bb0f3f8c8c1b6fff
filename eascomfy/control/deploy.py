"""Orchestration: plan -> apply -> wait until ready -> roll back on failure, and the other
operations on a live service. Talks to EAS only through ``adapters.eas.EasClient``.

Progress goes to a ``Progress`` (the CLI passes its ``Out``): ``info`` for people, ``debug`` for
``--verbose``. Nothing here prints a token or a signed URL.
"""

from __future__ import annotations

import copy
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from ..adapters.eas import EasClient, Event, LiveService, probe
from ..core.plan import Plan, make_plan, stale_reasons
from ..core.render import labels as spec_labels
from ..core.render import render
from ..core.spec import Spec
from ..errors import CloudError, EascomfyError, UsageError, WaitTimeout
from ..ports import Progress

RUNNING, FAILED = "Running", "Failed"
FAILED_STATUSES = (FAILED, "DeleteFailed")
IMAGE_VERSION_RE = re.compile(r"^\d+\.\d+(\.\d+)?$")
MAX_SIGNED_URL_SECONDS = 43200  # EAS caps signed links at 12 hours
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


def connect(region: str, progress: Progress) -> EasClient:
    """An EAS client for ``region`` from the standard credential chain (and EASCOMFY_EAS_ENDPOINT)."""
    return EasClient(region, log=progress.debug)


# -- plan ------------------------------------------------------------------------------------------
def desired(spec: Spec) -> tuple[dict[str, Any], dict[str, str]]:
    """The rendered service JSON and labels; refused for editions the API cannot create."""
    if not spec.edition.can("api_deploy"):
        raise UsageError(
            f"the {spec.edition.title} cannot be created or updated through the EAS API",
            "use the console's scenario deployment; `eascomfy render` prints what it needs",
        )
    return render(spec), spec_labels(spec)


def plan_service(spec: Spec, client: EasClient) -> tuple[Plan, LiveService | None]:
    """One read (DescribeService) and the plan against it."""
    config, labels = desired(spec)
    live = client.describe(spec.name)
    plan = make_plan(
        spec.name,
        spec.region,
        config,
        labels,
        live.config if live else None,
        live.labels if live else None,
        live.current_version if live else None,
    )
    return plan, live


# -- waiting ---------------------------------------------------------------------------------------
class NotReady(Exception):
    """The service failed, or was not ready in time: what it showed last."""

    def __init__(self, live: LiveService | None, events: list[Event], timed_out: bool, detail: str) -> None:
        super().__init__(detail)
        self.live, self.events, self.timed_out, self.detail = live, events, timed_out, detail

    def describe(self, name: str) -> str:
        status = self.live.status if self.live else "gone"
        text = f"service {name} {self.detail}: status {status}"
        if self.live and (self.live.reason or self.live.message):
            text += f" ({self.live.reason}: {self.live.message})"
        if self.events:
            text += "; last events: " + " | ".join(f"{e.reason}: {e.message}" for e in self.events[-3:])
        return text


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
        state = (live.status, live.reason, live.message) if live else ("gone",)
        if state == self._state:
            return
        self._state = state
        if live is None:
            self.progress.info(f"{self.name}: gone")
            return
        self.progress.info(f"{self.name}: {live.status} ({live.running}/{live.total} instances)")
        for event in self.client.events(self.name, self.since):
            if event not in self._seen:
                self._seen.add(event)
                self.progress.info(f"  event {event.line()}")

    def fail(self, live: LiveService | None, timed_out: bool, detail: str) -> NotReady:
        events = self.client.events(self.name, self.since) if live is not None else []
        return NotReady(live, events, timed_out, detail)

    def until(self, check: Callable[[LiveService | None], bool]) -> LiveService | None:
        """Describe with backoff until ``check(live)``; NotReady on a failed status or the deadline."""
        interval = self.poll.first
        while True:
            live = self.client.describe(self.name)
            self._report(live)
            if check(live):
                return live
            if live is not None and live.status in FAILED_STATUSES:
                raise self.fail(live, False, "failed")
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise self.fail(live, True, f"did not get there within {self.timeout:g} s")
            time.sleep(min(interval, left))
            interval = min(interval * self.poll.factor, self.poll.cap)

    def ready(self) -> LiveService:
        """Running AND the endpoint answers the probe with the service token."""
        while True:
            live = self.until(lambda s: s is not None and s.status == RUNNING)
            assert live is not None
            recheck = min(self.deadline, time.monotonic() + self.poll.recheck)
            while True:
                if ready(probe(live.internet_endpoint, live.access_token)):
                    self.progress.info(f"{self.name}: ready (the endpoint answers)")
                    return live
                now = time.monotonic()
                if now >= self.deadline:
                    raise self.fail(live, True, f"is Running but its endpoint did not answer within {self.timeout:g} s")
                if now >= recheck:
                    break
                time.sleep(min(self.poll.probe, self.deadline - now))


def wait_ready(
    client: EasClient, name: str, progress: Progress, timeout: float, poll: Poll = Poll(), since: float | None = None
) -> LiveService:
    return Watcher(client, name, progress, timeout, poll, time.time() if since is None else since).ready()


# -- deploy ----------------------------------------------------------------------------------------
@dataclass
class DeployResult:
    plan: Plan
    applied: bool = False
    ready: bool = False
    live: LiveService | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan.to_dict(),
            "applied": self.applied,
            "ready": self.ready,
            "status": self.live.to_dict() if self.live else None,
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
        }


def apply(plan: Plan, client: EasClient) -> None:
    """The write calls for a plan: CreateService (labels in the query) or UpdateService with
    UpdateType=replace (the full rendered JSON: removed fields are removed) plus the labels."""
    if plan.action == "create":
        client.create(plan.desired, plan.labels_set)
        return
    if plan.action == "update":
        client.update(plan.service, plan.desired, update_type="replace")
    if plan.labels_set:
        client.set_labels(plan.service, plan.labels_set)
    if plan.labels_remove:
        client.delete_labels(plan.service, plan.labels_remove)


def _restore_labels(client: EasClient, plan: Plan, before: dict[str, str]) -> None:
    touched = [*plan.labels_set, *plan.labels_remove]
    old = {k: before[k] for k in touched if k in before}
    added = [k for k in touched if k not in before]
    if old:
        client.set_labels(plan.service, old)
    if added:
        client.delete_labels(plan.service, added)


def deploy(
    spec: Spec,
    client: EasClient,
    progress: Progress,
    *,
    dry_run: bool = False,
    wait: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    rollback: bool = True,
    poll: Poll = Poll(),
    saved: dict[str, Any] | None = None,
) -> DeployResult:
    """Create or update the service, wait until ready, roll back a failed update. With ``saved``
    (a plan file from ``plan --out``), refuse before any write unless it still holds."""
    started = time.monotonic()
    plan, live = plan_service(spec, client)
    if saved is not None:
        reasons = stale_reasons(saved, plan)
        if reasons:
            raise EascomfyError(f"the saved plan is stale: {'; '.join(reasons)}", "run `eascomfy plan --out FILE` again and review it")
    result = DeployResult(plan, live=live)
    for line in plan.lines():
        progress.info(line)
    if dry_run or plan.action == "noop":
        if dry_run:
            result.notes.append("dry run: nothing was changed")
        result.ready = live is not None and live.status == RUNNING
        result.seconds = time.monotonic() - started
        return result
    applied_at = time.time()
    apply(plan, client)
    result.applied = True
    if plan.action == "labels" or not wait:
        result.seconds = time.monotonic() - started
        return result
    try:
        result.live = wait_ready(client, plan.service, progress, timeout, poll, since=applied_at - 1)
    except NotReady as exc:
        message = exc.describe(plan.service)
        hint = _rollback(plan, live, client, progress, rollback, timeout, poll)
        raise _not_ready_error(exc, message, plan.service, hint) from None
    result.ready = True
    result.seconds = time.monotonic() - started
    return result


def _rollback(
    plan: Plan, before: LiveService | None, client: EasClient, progress: Progress, enabled: bool, timeout: float, poll: Poll
) -> str | None:
    """Back to the version that ran before a failed update; a sentence saying what happened."""
    if plan.action != "update" or before is None or not plan.live_version:
        return None
    if not enabled:
        progress.info("not rolling back (--no-rollback)")
        return f"not rolled back (--no-rollback); `eascomfy rollback {plan.live_version}` restores the previous version"
    version = plan.live_version
    progress.info(f"rolling back {plan.service} to version {version}")
    client.switch_version(plan.service, version)
    _restore_labels(client, plan, before.labels)
    try:
        wait_ready(client, plan.service, progress, timeout, poll)
    except NotReady as exc:
        return f"rolled back to version {version}, which is not ready either ({exc.detail})"
    return f"rolled back to version {version}, which is running again"


def _not_ready_error(exc: NotReady, message: str, service: str, hint: str | None) -> CloudError | WaitTimeout:
    if exc.timed_out:
        advice = "Waiting usually means no stock for the instance type (add fallback_instance_types) or a wrong spec"
        return WaitTimeout(message, "; ".join(h for h in (hint, advice, "see `eascomfy status`") if h))
    return CloudError(message, code="ServiceFailed", service=service, hint=hint or "see `eascomfy status` and the events")


# -- update-image ----------------------------------------------------------------------------------
def check_image_update(spec: Spec, version: str) -> None:
    """Refuse clearly: editions without image updates, custom images, impossible versions."""
    if not spec.edition.can("image_updates"):
        raise UsageError(f"the {spec.edition.title} does not take image updates", "EAS manages its image for you")
    if spec.data.get("image", {}).get("uri"):
        raise UsageError(
            "the spec uses a custom image (image.uri); update-image only switches official image versions",
            "edit image.uri and run `eascomfy deploy`",
        )
    if not IMAGE_VERSION_RE.match(version):
        raise UsageError(
            f"VERSION: expected an official image version like 2.2 or 1.9.1, got {version!r}",
            f"the edition's suffix ({spec.edition.image_suffix or 'none'}) is added for you",
        )


def with_image_version(spec: Spec, version: str) -> Spec:
    """A copy of ``spec`` on image ``version`` (suffix, registry and the rest unchanged)."""
    data = copy.deepcopy(spec.data)
    data.setdefault("image", {})["version"] = version
    return Spec(spec.file, data, spec.edition, spec.env, list(spec.warnings), spec.user, spec.positions)


# -- other operations ------------------------------------------------------------------------------
def check_expire(expire: int) -> None:
    if not 1 <= expire <= MAX_SIGNED_URL_SECONDS:
        raise UsageError(
            f"--expire: expected 1..{MAX_SIGNED_URL_SECONDS} seconds, got {expire}",
            "EAS signed links last at most 12 hours",
        )


def status(client: EasClient, name: str, last: int = 5) -> tuple[LiveService, list[Event]]:
    live = client.require(name)
    return live, client.events(name)[-last:]


Lifecycle = Literal["start", "stop", "restart"]


def lifecycle(
    client: EasClient, name: str, action: Lifecycle, progress: Progress, *, wait: bool, timeout: float, poll: Poll = Poll()
) -> LiveService | None:
    """Start, stop or restart; then wait until ready (start, restart) or Stopped (stop)."""
    client.require(name)
    since = time.time() - 1
    client.lifecycle(name, action)
    progress.info(f"{action} {name}: requested")
    if not wait:
        return None
    watcher = Watcher(client, name, progress, timeout, poll, since)
    try:
        if action == "stop":
            return watcher.until(lambda s: s is not None and s.status == "Stopped")
        time.sleep(poll.first)  # let the service leave Running before waiting for it
        return watcher.ready()
    except NotReady as exc:
        raise _not_ready_error(exc, exc.describe(name), name, None) from None


def rollback(
    client: EasClient,
    name: str,
    progress: Progress,
    version: int | None = None,
    *,
    wait: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    poll: Poll = Poll(),
) -> int:
    """Switch to ``version`` (default: the one before the current) and record it as applied."""
    from ..core.plan import APPLIED_SHA_LABEL, config_sha

    live = client.require(name)
    target = version if version is not None else live.current_version - 1
    known = {v.version: v for v in client.versions(name)}
    if target not in known:
        listing = ", ".join(str(v) for v in sorted(known)) or "none"
        raise UsageError(f"no version {target} of {name} (versions: {listing})", "see `eascomfy versions`")
    if target == live.current_version:
        progress.info(f"{name} already runs version {target}")
        return target
    since = time.time() - 1
    client.switch_version(name, target)
    client.set_labels(name, {APPLIED_SHA_LABEL: config_sha(known[target].config)})
    progress.info(f"{name}: switching to version {target}")
    if wait:
        try:
            Watcher(client, name, progress, timeout, poll, since).ready()
        except NotReady as exc:
            raise _not_ready_error(exc, exc.describe(name), name, None) from None
    return target


def delete(client: EasClient, name: str, progress: Progress) -> bool:
    """DeleteService; False when there was nothing to delete."""
    if client.describe(name) is None:
        progress.info(f"{name} does not exist in {client.region}: nothing to delete")
        return False
    client.lifecycle(name, "delete")
    progress.info(f"{name}: deleting")
    return True
