"""Deploying: plan -> apply -> wait until ready -> roll back on failure; ``update-image`` (a deploy
on another image version, written back to the spec); saved plans. Moving a service to another of
its versions is ``control.rollback``. Talks to EAS only through ``adapters.eas.EasClient`` (``connect`` builds one).

Progress goes to a ``Progress`` (the CLI passes its ``Out``): ``info`` for people, ``debug`` for
``--verbose``. Nothing here prints a token or a signed URL.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..adapters.eas import EasClient, LiveService
from ..core.catalogue import check_known_version
from ..core.guard import EnvironmentMismatch, beyond_image, choose_env, image_only
from ..core.image import with_image_version
from ..core.limits import check_timeout
from ..core.plan import Plan, config_sha, make_plan, normalize
from ..core.planfile import check_saved, dumps
from ..core.scaling import ScalerKind
from ..core.render import labels as spec_labels
from ..core.render import render
from ..core.spec import Spec, known_environments, load_spec
from ..errors import EascomfyError, UsageError
from ..local.files import write_atomic
from ..local.specfile import write_image_version
from ..ports import Progress
from .locks import Holding, holding, ttl_for
from .regions import check_region
from .scaling import apply_scalers, desired_scalers, read_scalers
from .wait import DEFAULT_TIMEOUT, IN_PROGRESS, RUNNING, NotReady, Poll, wait_ready


def connect(region: str, progress: Progress) -> EasClient:
    """An EAS client for ``region`` from the standard credential chain, at the region's endpoint
    (or the one the environment names: ``adapters.endpoints``)."""
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


def _plan(
    spec: Spec,
    wanted: tuple[dict[str, Any], dict[str, str]],
    live: LiveService | None,
    live_scalers: dict[ScalerKind, dict[str, Any] | None] | None = None,
) -> Plan:
    config, labels = wanted
    return make_plan(
        spec.name,
        spec.region,
        config,
        labels,
        live.config if live else None,
        live.labels if live else None,
        live.current_version if live else None,
        secrets=spec.secrets,
        safety_lock=spec.data.get("safety_lock"),
        live_safety_lock=live.safety_lock if live else "",
        desired_scalers=desired_scalers(spec),
        live_scalers=live_scalers,
    )


def plan_against(spec: Spec, live: LiveService | None) -> Plan:
    """The plan for ``spec`` against ``live`` (what DescribeService returned; None: no service)."""
    return _plan(spec, desired(spec), live)


def plan_service(spec: Spec, client: EasClient) -> tuple[Plan, LiveService | None]:
    """One read (DescribeService) and the plan against it; a spec the API cannot deploy is
    refused before the read."""
    wanted = desired(spec)
    check_region(spec, client)
    live = client.describe(spec.name)
    return _plan(spec, wanted, live, read_scalers(client, spec, live) if live else None), live


def save_plan(plan: Plan, path: Path, storage: list[dict[str, Any]] | None = None) -> None:
    """Write ``plan`` as a reviewable plan file (``core.planfile``) for a later ``deploy(saved=...)``;
    ``storage``: the bucket's part of the plan (``storage.lock.StoragePlan.saved``), kept beside it."""
    write_atomic(path, dumps(plan, storage))


# -- deploy ----------------------------------------------------------------------------------------
@dataclass
class DeployResult:
    plan: Plan
    applied: bool = False
    ready: bool = False
    live: LiveService | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    in_progress: str | None = None  # the status of a change already rolling out when deploy looked

    @property
    def running_version(self) -> int | None:
        """The version the service runs after this deploy, when known without another read (it
        was waited for, or nothing was sent); None after a change sent without waiting."""
        if self.live is not None and (self.ready or self.plan.action == "noop"):
            return self.live.current_version
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan.to_dict(),
            "applied": self.applied,
            "ready": self.ready,
            "status": self.live.to_dict() if self.live else None,
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
            "in_progress": self.in_progress,
        }


def apply(plan: Plan, client: EasClient) -> None:
    """The write calls for a plan: CreateService (labels in the query) or UpdateService with
    UpdateType=replace (the full rendered JSON: removed fields are removed) plus the labels.
    A write retried after a lost answer counts as done when the live config is the one planned."""

    def applied(live: LiveService) -> bool:
        return config_sha(live.config, plan.autoscaled) == plan.desired_sha

    if plan.action == "create":
        client.create(plan.desired, plan.labels_set, applied=applied)
        apply_scalers(plan, client)
        if plan.safety_lock:  # last: a lock may refuse the scaler writes
            client.set_safety_lock(plan.service, plan.safety_lock)
        return
    if plan.safety_lock and plan.lowers_safety_lock:  # lift it first: the lock may refuse the update
        client.set_safety_lock(plan.service, plan.safety_lock)
    if plan.action == "update":
        client.update(plan.service, plan.desired, update_type="replace", applied=applied)
    if plan.labels_set:
        client.set_labels(plan.service, plan.labels_set)
    if plan.labels_remove:
        client.delete_labels(plan.service, plan.labels_remove)
    apply_scalers(plan, client)
    if plan.safety_lock and not plan.lowers_safety_lock:  # raise it last: it may refuse the rest
        client.set_safety_lock(plan.service, plan.safety_lock)


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
    force_unlock: bool = False,
    prepare: Callable[[Plan], None] | None = None,
) -> DeployResult:
    """Create or update the service, wait until ready, roll back a failed update (unless
    ``rollback`` is False). With ``saved`` (a plan file, ``core.planfile``), refuse before any
    write unless it still holds. A ``timeout`` of 0 or less is refused before any call.
    ``prepare(plan)`` (not on a dry run) runs once the plan is checked and before anything is sent
    to the service: the CLI syncs the mount there (so a failed sync leaves the service untouched)
    and writes the warm-up request file the config names (``storage.warmup``).

    When the config already is the spec's but a change is still rolling out (another deploy's
    update, a create), there is nothing to send, yet the service is not ready: deploy says so
    and, when waiting, waits for that change as it would for its own (never rolling it back)."""
    check_timeout(timeout)
    started = time.monotonic()
    plan, live = plan_service(spec, client)
    if saved is not None:
        check_saved(saved, plan)
    if not dry_run and not plan.managed and plan.action == "update":
        _refuse_takeover_removals(plan, spec)
    if prepare is not None and not dry_run:
        prepare(plan)
    return execute(plan, live, client, progress, started, dry_run=dry_run, wait=wait, timeout=timeout,
                   rollback=rollback, poll=poll, force_unlock=force_unlock)


def execute(
    plan: Plan,
    live: LiveService | None,
    client: EasClient,
    progress: Progress,
    started: float,
    *,
    dry_run: bool,
    wait: bool,
    timeout: float,
    rollback: bool,
    poll: Poll,
    force_unlock: bool = False,
    held: Holding | None = None,
) -> DeployResult:
    """Carry out a plan made against ``live``: print it, take the service's deploy lock
    (``control.locks``; a service that exists and changes), apply, wait, roll back on failure,
    release the lock. ``force_unlock`` breaks a lock another run holds; ``held``: the lock the
    caller already holds on the service (it then neither takes nor releases one)."""
    result = DeployResult(plan, live=live)
    for line in plan.lines():
        progress.info(line)
    busy = live is not None and plan.action in ("noop", "labels") and live.status in IN_PROGRESS
    if busy:
        assert live is not None
        result.in_progress = live.status
        result.notes.append(f"{plan.service} is {live.status}: a change is still in progress")
        then = "waiting for it" if wait and not dry_run else "not ready yet; `eascomfy status` shows it"
        progress.info(f"{plan.service} is {live.status}: a change is still in progress (another deploy, or a change "
                      f"made elsewhere); {then}")
    if dry_run or (plan.action == "noop" and not plan.scalers and not (busy and wait)):
        if dry_run:
            result.notes.append("dry run: nothing was changed")
        result.ready = live is not None and live.status == RUNNING
        result.seconds = time.monotonic() - started
        return result
    if live is None or plan.action not in ("update", "labels"):
        return _carry_out(plan, live, client, progress, started, result, busy, wait=wait, timeout=timeout,
                          rollback=rollback, poll=poll)
    own = held is None  # else the caller holds the service's lock for a longer change (release --promote)
    lock = holding(client, live, progress, ttl=ttl_for(timeout, wait), force=force_unlock) if own else nullcontext(held)
    with lock as held:
        if own and (config_sha(normalize(held.back.config), plan.live_autoscaled) != plan.live_sha
                    or held.back.current_version != live.current_version):
            raise EascomfyError(
                f"service {plan.service} changed while eascomfy took its lock (another run applied a change)",
                "plan again, review, and deploy",
            )
        done = _carry_out(plan, live, client, progress, started, result, busy, wait=wait, timeout=timeout,
                          rollback=rollback, poll=poll)
        if done.ready:  # the wait's last read came after every write: releasing needs no other read
            held.seen = done.live
        return done


def _carry_out(
    plan: Plan,
    live: LiveService | None,
    client: EasClient,
    progress: Progress,
    started: float,
    result: DeployResult,
    busy: bool,
    *,
    wait: bool,
    timeout: float,
    rollback: bool,
    poll: Poll,
) -> DeployResult:
    applied_at = time.time()
    if plan.has_changes:
        apply(plan, client)
        result.applied = True
    if busy and wait:
        result.live = _wait_in_progress(plan, client, progress, timeout, poll, applied_at - 1)
        result.ready = True
        result.seconds = time.monotonic() - started
        return result
    if plan.action in ("labels", "noop") or not wait:
        result.seconds = time.monotonic() - started
        return result
    try:
        result.live = wait_ready(client, plan.service, progress, timeout, poll, since=applied_at - 1)
    except NotReady as exc:
        hint = None if exc.gone else _rollback(plan, live, client, progress, rollback, timeout, poll)
        raise exc.error(plan.service, hint) from None
    result.ready = True
    result.seconds = time.monotonic() - started
    return result


def _wait_in_progress(plan: Plan, client: EasClient, progress: Progress, timeout: float, poll: Poll, since: float) -> LiveService:
    """Wait for a change someone else started (nothing of ours to roll back), then check that the
    service ended on the spec's config: that change may have been rolled back meanwhile."""
    try:
        live = wait_ready(client, plan.service, progress, timeout, poll, since=since)
    except NotReady as exc:
        raise exc.error(plan.service, "nothing was sent: the change in progress was not eascomfy's to roll back") from None
    if config_sha(live.config) != plan.desired_sha:
        raise EascomfyError(
            f"service {plan.service} changed while eascomfy waited for the change in progress: "
            "its config is no longer the spec's (was that change rolled back?)",
            "plan again, review, and deploy",
        )
    return live


def _refuse_takeover_removals(plan: Plan, spec: Spec) -> None:
    """A takeover never deletes keys set outside eascomfy (the console) unless the spec says so."""
    from ..core.importer import takeover_removals

    removed = takeover_removals(plan.changes, spec.data.get("overrides"))
    if removed:
        raise UsageError(
            f"taking over {plan.service} would remove keys set outside eascomfy: {', '.join(removed)}",
            "import the service first to keep them in overrides (`eascomfy import`), or set each to null "
            "in overrides to remove it",
        )


def _rollback(
    plan: Plan, before: LiveService | None, client: EasClient, progress: Progress, enabled: bool, timeout: float, poll: Poll
) -> str | None:
    """Back to the version that ran before a failed update; a sentence saying what happened."""
    if plan.action != "update" or before is None or not plan.live_version:
        return None
    if not enabled:
        progress.info("not rolling back (rollback is off)")
        return f"not rolled back (rollback is off); `eascomfy rollback {plan.live_version}` restores the previous version"
    version = plan.live_version
    progress.info(f"rolling back {plan.service} to version {version}")
    client.switch_version(plan.service, version)
    _restore_labels(client, plan, before.labels)
    try:
        wait_ready(client, plan.service, progress, timeout, poll)
    except NotReady as exc:
        return f"rolled back to version {version}, which is not ready either ({exc.detail})"
    return f"rolled back to version {version}, which is running again"


# -- update-image ----------------------------------------------------------------------------------
def check_update_image(spec: Spec, version: str, force: bool = False) -> None:
    """What can be refused about an image update before anything connects: the edition, a custom
    image, the version's form, and a version outside the known catalogue (unless ``force``)."""
    with_image_version(spec, version)
    check_known_version(version, force)


@dataclass
class ImageUpdate:
    """A deploy on another image version, and the spec file the version was written to."""

    version: str
    result: DeployResult
    written: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        file = str(self.written) if self.written else None
        return {**self.result.to_dict(), "version": self.version, "file_written": file is not None, "file": file}


def update_image(
    spec: Spec,
    version: str,
    client: EasClient,
    progress: Progress,
    *,
    load: Callable[[str | None], Spec] | None = None,
    allow_other_changes: bool = False,
    force: bool = False,
    write: bool = True,
    dry_run: bool = False,
    wait: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    rollback: bool = True,
    poll: Poll = Poll(),
    force_unlock: bool = False,
) -> ImageUpdate:
    """Deploy the live service's spec on image ``version``, changing nothing but the image.

    The spec is the one of the environment the service was deployed with (its labels,
    ``core.guard.choose_env``): ``spec`` when that is its environment, else ``load(env)`` (the same
    file under that environment). A plan that changes more than the image is refused (listing
    those changes) unless ``allow_other_changes``. Then, unless ``write`` is False or this is a
    dry run, the version is recorded where the spec's files set it (comments kept). A version
    outside the known catalogue (``core.catalogue``) is refused unless ``force``."""
    check_update_image(spec, version, force)  # refused before any call
    check_timeout(timeout)
    started = time.monotonic()
    live = client.require(spec.name)
    env = choose_env(spec.env, live.labels, known_environments(spec.file), spec.name)
    if env != spec.env:
        progress.info(f"{spec.name}: environment {env} (from the service's labels)")
        spec = _spec_for(spec, env, live, client.region, load)
    updated = with_image_version(spec, version)
    plan = plan_against(updated, live)
    if beyond_image(plan.changes) and not allow_other_changes:
        for line in plan.lines():
            progress.info(line)
        image_only(f"update-image {version}", plan.changes, allow_other_changes)
    result = execute(plan, live, client, progress, started, dry_run=dry_run, wait=wait, timeout=timeout,
                     rollback=rollback, poll=poll, force_unlock=force_unlock)
    written = None
    if write and not dry_run:
        written = write_image_version(updated, version)
        if written:
            progress.info(f"wrote image.version {version} to {written}")
    return ImageUpdate(version, result, written)


def _spec_for(
    spec: Spec, env: str | None, live: LiveService, region: str, load: Callable[[str | None], Spec] | None
) -> Spec:
    """The same spec file under ``env``, the environment ``live`` was deployed with; refused when
    the spec no longer has it, or when it now names another service."""
    try:
        found = load(env) if load is not None else load_spec(spec.file, env=env)
    except UsageError as exc:
        if exc.param != "env":
            raise
        raise EnvironmentMismatch(
            f"service {live.name} was deployed with environment {env}, which the spec no longer defines",
            "name the environment to use",
            param="env",
        ) from None
    if (found.name, found.region) != (live.name, region):
        raise EnvironmentMismatch(
            f"service {live.name} was deployed with environment {env}, which now names service {found.name} in {found.region}",
            "name the environment to use",
            param="env",
        )
    return found
