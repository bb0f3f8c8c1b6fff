"""Deploying: plan -> apply -> wait until ready -> roll back on failure; ``update-image`` (a deploy
on another image version, written back to the spec); saved plans; switching a service to an
earlier version. Talks to EAS only through ``adapters.eas.EasClient`` (``connect`` builds one).

Progress goes to a ``Progress`` (the CLI passes its ``Out``): ``info`` for people, ``debug`` for
``--verbose``. Nothing here prints a token or a signed URL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..adapters.eas import EasClient, LiveService
from ..core.plan import APPLIED_SHA_LABEL, Plan, config_sha, make_plan
from ..core.planfile import check_saved, dumps
from ..core.render import labels as spec_labels
from ..core.render import render
from ..core.spec import Spec
from ..errors import UsageError
from ..local.files import write_atomic
from ..local.specfile import write_image_version
from ..ports import Progress
from .wait import DEFAULT_TIMEOUT, RUNNING, NotReady, Poll, Watcher, wait_ready


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


def save_plan(plan: Plan, path: Path) -> None:
    """Write ``plan`` as a reviewable plan file (``core.planfile``) for a later ``deploy(saved=...)``."""
    write_atomic(path, dumps(plan))


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
    UpdateType=replace (the full rendered JSON: removed fields are removed) plus the labels.
    A write retried after a lost answer counts as done when the live config is the one planned."""

    def applied(live: LiveService) -> bool:
        return config_sha(live.config) == plan.desired_sha

    if plan.action == "create":
        client.create(plan.desired, plan.labels_set, applied=applied)
        return
    if plan.action == "update":
        client.update(plan.service, plan.desired, update_type="replace", applied=applied)
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
    """Create or update the service, wait until ready, roll back a failed update (unless
    ``rollback`` is False). With ``saved`` (a plan file, ``core.planfile``), refuse before any
    write unless it still holds."""
    started = time.monotonic()
    plan, live = plan_service(spec, client)
    if saved is not None:
        check_saved(saved, plan)
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
        hint = _rollback(plan, live, client, progress, rollback, timeout, poll)
        raise exc.error(plan.service, hint) from None
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
    client: EasClient,
    progress: Progress,
    *,
    write: bool = True,
    dry_run: bool = False,
    wait: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    rollback: bool = True,
    poll: Poll = Poll(),
) -> ImageUpdate:
    """Deploy ``spec`` -- the spec on its new version, from ``core.image.with_image_version``,
    which refuses before anything connects -- then, unless ``write`` is False or this is a dry
    run, record the version where the spec's files set it (comments kept)."""
    version = spec.data["image"]["version"]
    result = deploy(spec, client, progress, dry_run=dry_run, wait=wait, timeout=timeout, rollback=rollback, poll=poll)
    written = None
    if write and not dry_run:
        written = write_image_version(spec, version)
        if written:
            progress.info(f"wrote image.version {version} to {written}")
    return ImageUpdate(version, result, written)


# -- rollback --------------------------------------------------------------------------------------
def _record_applied(client: EasClient, name: str, version: int) -> None:
    """Label the config the service runs after a switch to ``version`` as eascomfy's (no drift):
    the live DescribeService config, not the version's ListServiceVersions entry, which EAS
    returns for custom images only."""
    live = client.require(name)
    if live.current_version == version and live.config:
        client.set_labels(name, {APPLIED_SHA_LABEL: config_sha(live.config)})


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
    _record_applied(client, name, target)
    progress.info(f"{name}: switching to version {target}")
    if wait:
        try:
            Watcher(client, name, progress, timeout, poll, since).ready()
        except NotReady as exc:
            raise exc.error(name) from None
    return target

