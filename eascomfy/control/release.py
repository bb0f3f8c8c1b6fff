"""Canary releases (``eascomfy release``): the spec deployed as a second service in the live
service's group, checked with reference workflows before any traffic moves, then given a share of
the group's traffic; promoted or aborted later.

How names map (docs/operations.md, "Canary releases"): the canary of service ``comfy`` is
``comfy_canary``, labelled ``eascomfy/canary-of: comfy``. The spec keeps naming ``comfy``: on
``--promote`` the canary takes all of the group's traffic, ``comfy`` is updated to the spec (the
deploy path: lock, wait, roll back on failure), takes its traffic back, and the canary is
deleted. So after a promote ``plan`` has nothing to do, and the service's versions keep the old
config to roll back to.

Traffic: EAS weights are relative within a group (ReleaseService ``Weight``, [-1, 1000]), so
``--canary N`` sets the live service's weight to 100 - N and the canary's to N, both
``grouping``; ``--abort`` and ``--promote`` end with the live service ``grouping`` at weight 100
(all of the group's traffic). A release that stops half-way puts back the live service's traffic
state and weight as they were before it.

The workflow checks are the caller's (``Checker``: ``workflows.canary`` in the CLI): control never
imports workflows (docs/architecture.md).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from ..adapters.eas import EasClient, LiveService
from ..core.plan import config_sha, normalize
from ..core.spec import Spec
from ..errors import CloudError, EascomfyError, UsageError, WaitTimeout
from ..ports import Progress
from ..retry import poll as poll_until
from .deploy import desired, execute, plan_service
from .locks import holding, ttl_for
from .wait import DEFAULT_TIMEOUT, NotReady, Poll, wait_ready

CANARY_SUFFIX = "_canary"
CANARY_OF_LABEL = "eascomfy/canary-of"  # on the canary: the live service it is the canary of
MIRROR_LABEL = "eascomfy/mirror"  # on the canary: the percent of live requests mirrored to it
MAX_NAME = 63  # EAS service names: 3-63 lowercase letters, digits and underscores
GROUPING, STANDALONE = "grouping", "standalone"


class Verdict(Protocol):
    """What a check of the canary against the live service found."""

    ok: bool

    def failure(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


Checker = Callable[[LiveService, LiveService], Verdict]  # (live, canary) -> verdict


class CanaryCheckFailed(EascomfyError):
    """A reference workflow failed on the canary, or the canary was too slow: it was removed."""

    kind = "canary_check"

    def __init__(self, message: str, hint: str | None = None, *, verdict: dict[str, Any] | None = None) -> None:
        super().__init__(message, hint)
        self.code = "CanaryCheckFailed"
        self.verdict = verdict

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "code": self.code, "checks": self.verdict}


# -- offline checks --------------------------------------------------------------------------------
def canary_name(name: str) -> str:
    return name + CANARY_SUFFIX


def group_of(spec: Spec) -> str:
    """The service group the spec's service is in (its rendered ``metadata.group``)."""
    config, _ = desired(spec)
    group = (config.get("metadata") or {}).get("group")
    if not group:
        raise UsageError(
            f"{spec.name} is in no service group: a canary shares the group's traffic with it",
            "set overrides: {metadata: {group: NAME}} in the spec and deploy it, so the live service joins "
            "the group; send clients to the group's endpoint",
            param="spec",
        )
    return str(group)


def check_request(spec: Spec, percent: int, *, mirror: int | None = None, max_slowdown: float = 1.2) -> str:
    """Everything about ``release --canary`` that can be refused before any call; the group."""
    if not 1 <= percent <= 100:
        raise UsageError(f"the canary's share of traffic is a percent from 1 to 100, not {percent}", param="canary")
    if mirror is not None and not 1 <= mirror <= 100:
        raise UsageError(f"the percent of live requests mirrored is from 1 to 100, not {mirror}", param="mirror")
    if not max_slowdown >= 1.0 or max_slowdown == float("inf"):  # NaN too
        raise UsageError(f"must be a number of at least 1 (1.2: the canary may take 20% longer), not {max_slowdown}",
                         param="max_slowdown")
    if len(canary_name(spec.name)) > MAX_NAME:
        raise UsageError(f"{spec.name} is too long to have a canary: {canary_name(spec.name)} would be over "
                         f"{MAX_NAME} characters", param="spec")
    return group_of(spec)


# -- what the group looks like ---------------------------------------------------------------------
@dataclass
class ReleaseState:
    """The group, the live service and its canary (if any), with their weights."""

    group: str
    live: LiveService
    canary: LiveService | None
    group_info: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def share(self, member: LiveService | None) -> float | None:
        """Its percent of the group's traffic: its weight over the grouping members' (these two)."""
        members = [m for m in (self.live, self.canary) if m is not None and m.traffic_state == GROUPING]
        total = sum(max(m.weight or 0, 0) for m in members)
        if member is None or member not in members or total <= 0:
            return 0.0 if member is not None and members else None
        return round(100.0 * max(member.weight or 0, 0) / total, 1)

    def _member(self, role: str, live: LiveService) -> dict[str, Any]:
        return {"role": role, "name": live.name, "status": live.status, "image": live.image,
                "traffic_state": live.traffic_state, "weight": live.weight, "share": self.share(live)}

    def to_dict(self) -> dict[str, Any]:
        services = [self._member("live", self.live)] + ([self._member("canary", self.canary)] if self.canary else [])
        info = self.group_info or {}
        return {"group": self.group, "traffic_mode": info.get("TrafficMode"), "endpoint": info.get("InternetEndpoint"),
                "services": services, "canary": self.canary.name if self.canary else None, "notes": self.notes}


def _traffic(client: EasClient) -> Any:
    from ..adapters.eas_traffic import EasTraffic

    return EasTraffic(client)


def _canary_of(client: EasClient, live: LiveService) -> LiveService | None:
    """The live service's canary, or None; a service of that name that is not its canary is refused."""
    canary = client.describe(canary_name(live.name))
    if canary is not None and canary.labels.get(CANARY_OF_LABEL) != live.name:
        raise UsageError(f"a service named {canary.name} exists and is not eascomfy's canary of {live.name} "
                         f"(no {CANARY_OF_LABEL} label)", "rename or delete that service first")
    return canary


def _live(client: EasClient, name: str) -> LiveService:
    live = client.describe(name)
    if live is None:
        raise CloudError(f"service {name} does not exist in {client.region}: a canary needs a live service to compare "
                         "with", code="InvalidService.NotFound", service=name,
                         hint="deploy the spec first (`eascomfy deploy`), then release changes to it as canaries")
    return live


def status(client: EasClient, name: str) -> ReleaseState:
    """The live service ``name``, its canary and their group."""
    live = _live(client, name)
    canary = _canary_of(client, live)
    state = ReleaseState(live.group, live, canary)
    if live.group:
        state.group_info = _traffic(client).describe_group(live.group)
    else:
        state.notes.append(f"{name} is in no service group")
    return state


# -- release --canary ------------------------------------------------------------------------------
@dataclass
class CanaryResult:
    state: ReleaseState
    percent: int
    checks: dict[str, Any] | None
    mirror: int | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {**self.state.to_dict(), "percent": self.percent, "checks": self.checks, "mirror": self.mirror,
                "seconds": round(self.seconds, 3)}


def _canary_config(spec: Spec, name: str) -> tuple[dict[str, Any], dict[str, str]]:
    config, labels = desired(spec)
    config = copy.deepcopy(config)
    config["metadata"] = {**config["metadata"], "name": name}
    if "name" in config:
        config["name"] = name
    return config, labels


def _remove(client: EasClient, name: str, progress: Progress, timeout: float, poll: Poll) -> None:
    """DeleteService and wait until it is gone (a next canary of the same name can then be made)."""
    progress.info(f"{name}: deleting the canary")
    if client.describe(name) is None:
        return
    client.lifecycle(name, "delete")
    _, gone = poll_until(lambda: client.describe(name), lambda live: live is None, poll.backoff.delays(),
                         time.monotonic() + timeout)
    if not gone:
        raise WaitTimeout(f"the canary {name} was still being deleted after {timeout:g} s", "see `eascomfy release --status`")


def start(
    spec: Spec,
    client: EasClient,
    progress: Progress,
    *,
    percent: int,
    checker: Checker | None = None,
    mirror: int | None = None,
    max_slowdown: float = 1.2,
    timeout: float = DEFAULT_TIMEOUT,
    poll: Poll = Poll(),
    prepare: Callable[[], None] | None = None,
    force_unlock: bool = False,
) -> CanaryResult:
    """Deploy the spec as the canary of its live service, check it (``checker``) against the live
    one before any traffic moves, then give it ``percent`` of the group's traffic (and a mirror of
    ``mirror`` percent of the live requests). A failed check, a canary that does not get ready, or
    anything that stops the release before the weights are set deletes the canary: the live
    service's traffic is never touched. ``prepare`` runs right before the canary is created (the
    CLI writes the warm-up request file its config names there, as deploy does). The live
    service's deploy lock (``control.locks``) is held from the canary's creation to the weights:
    no other run changes the service the canary is compared with (``force_unlock`` breaks it)."""
    started = time.monotonic()
    group = check_request(spec, percent, mirror=mirror, max_slowdown=max_slowdown)
    name = canary_name(spec.name)
    live = _live(client, spec.name)
    if live.group != group:
        raise UsageError(f"{spec.name} is in group {live.group or '(none)'}, the spec says {group}: the live service "
                         "must be in the group first", "deploy the spec's group (`eascomfy deploy`), then release",
                         param="spec")
    if _canary_of(client, live) is not None:
        raise UsageError(f"{spec.name} already has a canary, {name}", "promote it (`release --promote`) or remove it "
                         "(`release --abort`) first", param="canary")
    with holding(client, live, progress, ttl=ttl_for(timeout, True), force=force_unlock):
        config, labels = _canary_config(spec, name)
        before = (live.traffic_state or STANDALONE, live.weight if live.weight is not None else 100)
        labels = {**labels, CANARY_OF_LABEL: spec.name}
        if mirror:
            labels[MIRROR_LABEL] = str(mirror)
        sha = config_sha(config)
        if prepare is not None:
            prepare()
        progress.info(f"{name}: creating the canary of {spec.name} in group {group} (no traffic yet)")
        client.create(config, labels, applied=lambda l: config_sha(l.config) == sha)
        traffic = _traffic(client)
        moved = False
        try:
            made = client.require(name)
            if made.traffic_state == GROUPING:  # it joined the group's traffic: take it out until checked
                progress.info(f"{name}: took group traffic on creation; taking it out until the checks pass")
                traffic.release(name, STANDALONE, 0)
            try:
                canary = wait_ready(client, name, progress, timeout, poll, since=time.time() - 1)
            except NotReady as exc:
                raise exc.error(name, "the canary was deleted; the live service is untouched") from None
            checks = None
            if checker is not None:
                verdict = checker(client.require(spec.name), canary)
                checks = verdict.to_dict()
                if not verdict.ok:
                    raise CanaryCheckFailed(f"the canary failed its checks: {verdict.failure()}",
                                            "the canary was deleted and the live service is untouched; fix the spec "
                                            "and release again", verdict=checks)
            else:
                progress.warn("no workflow checks (--check): the canary takes traffic unchecked")
            progress.info(f"traffic: {spec.name} {100 - percent}, {name} {percent} (weights, group {group})")
            moved = True
            traffic.release(spec.name, GROUPING, 100 - percent)
            traffic.release(name, GROUPING, percent)
            if mirror:
                progress.info(f"mirroring {mirror}% of {spec.name}'s requests to {name}")
                traffic.create_mirror(spec.name, mirror, [name])
        except BaseException:
            _undo(client, spec.name, name, before if moved else None, bool(mirror), progress, timeout, poll)
            raise
        return CanaryResult(status(client, spec.name), percent, checks, mirror, time.monotonic() - started)


def _undo(client: EasClient, live: str, name: str, before: tuple[str, int] | None, mirrored: bool,
          progress: Progress, timeout: float, poll: Poll) -> None:
    """Put things back after a release that stopped half-way: the live service's traffic state and
    weight as ``before`` (None: they were not touched), no mirror, the canary deleted. Errors here
    are reported, not raised over the one that stopped the release."""
    traffic = _traffic(client)
    steps: list[Callable[[], None]] = []
    if before is not None:
        steps.append(lambda: traffic.release(live, *before))
        if mirrored:
            steps.append(lambda: traffic.delete_mirror(live))
    steps.append(lambda: _remove(client, name, progress, timeout, poll))
    for step in steps:  # each on its own: one that fails does not keep the others from running
        try:
            step()
        except EascomfyError as exc:
            progress.warn(f"could not clean up after the failed release: {exc}; see `eascomfy release --status`")


# -- release --abort / --promote -------------------------------------------------------------------
def _require_canary(client: EasClient, name: str) -> tuple[LiveService, LiveService]:
    live = _live(client, name)
    canary = _canary_of(client, live)
    if canary is None:
        raise UsageError(f"{name} has no canary ({canary_name(name)} does not exist)",
                         "start one with `eascomfy release --canary PERCENT`")
    return live, canary


def abort(client: EasClient, name: str, progress: Progress, *, timeout: float = DEFAULT_TIMEOUT,
          poll: Poll = Poll(), force_unlock: bool = False) -> ReleaseState:
    """Remove the canary: no mirror, its weight 0, deleted; the live service takes all of the
    group's traffic (grouping, weight 100). Under the live service's deploy lock."""
    live, canary = _require_canary(client, name)
    with holding(client, live, progress, ttl=ttl_for(timeout, True), force=force_unlock):
        traffic = _traffic(client)
        if canary.labels.get(MIRROR_LABEL):
            traffic.delete_mirror(live.name)
        if canary.traffic_state == GROUPING:
            traffic.release(canary.name, GROUPING, 0)
        progress.info(f"traffic: all back to {name}")
        traffic.release(name, GROUPING, 100)
        _remove(client, canary.name, progress, timeout, poll)
    return status(client, name)


def promote(spec: Spec, client: EasClient, progress: Progress, *, timeout: float = DEFAULT_TIMEOUT,
            poll: Poll = Poll(), force_unlock: bool = False) -> ReleaseState:
    """Make the canary's config the live service's: all traffic to the canary, the live service
    updated to the spec (deploy's path: lock, wait, roll back on failure), its traffic back, the
    canary deleted. Refused when the spec is no longer what the canary runs."""
    live, canary = _require_canary(client, spec.name)
    config, _ = _canary_config(spec, canary.name)
    if config_sha(normalize(canary.config)) != config_sha(config):
        raise UsageError(f"the spec is no longer what the canary {canary.name} runs (it changed since "
                         "`release --canary`)", "abort this canary and release the spec again", param="spec")
    with holding(client, live, progress, ttl=ttl_for(timeout, True), force=force_unlock) as held:
        traffic = _traffic(client)
        if canary.labels.get(MIRROR_LABEL):
            traffic.delete_mirror(live.name)
        progress.info(f"traffic: all to {canary.name} while {spec.name} is updated")
        traffic.release(canary.name, GROUPING, 100)
        traffic.release(spec.name, GROUPING, 0)
        try:
            plan, now = plan_service(spec, client)
            execute(plan, now, client, progress, time.monotonic(), dry_run=False, wait=True, timeout=timeout,
                    rollback=True, poll=poll, held=held)
        except EascomfyError as exc:
            exc.hint = "; ".join(h for h in (exc.hint, f"all traffic stays on the canary {canary.name}: "
                                             "`release --promote` again, or `release --abort` to go back") if h)
            raise
        progress.info(f"traffic: all back to {spec.name}, now on the canary's config; retiring {canary.name}")
        traffic.release(spec.name, GROUPING, 100)
        traffic.release(canary.name, GROUPING, 0)
        _remove(client, canary.name, progress, timeout, poll)
    return status(client, spec.name)
