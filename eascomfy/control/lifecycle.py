"""The operations on a live service besides deploying it: status, versions, start / stop /
restart (and wait), delete. Talks to EAS only through ``adapters.eas.EasClient``.

Each change takes the service's lock (``control.locks``) as deploy does, so it cannot interleave
with another run's deploy, rollback or restart; ``force_unlock`` breaks one a crashed run left."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Literal

from ..adapters.eas import EasClient, Event, LiveService, Version
from ..core.limits import check_timeout
from ..errors import CloudError
from ..ports import Progress
from .locks import holding, ttl_for
from .wait import NotReady, Poll, Watcher

Lifecycle = Literal["start", "stop", "restart"]


def status(client: EasClient, name: str, last: int = 5) -> tuple[LiveService, list[Event]]:
    """The live service and its newest ``last`` events, oldest first."""
    live = client.require(name)
    return live, client.events(name, last=last)[-last:] if last > 0 else []


@dataclass
class Versions:
    """A service's versions, newest first, and the one it runs. A version's image is unknown
    ("") when EAS returned no config for it (official images, see ``adapters.eas.Version``)."""

    current: int
    found: list[Version]

    def to_dict(self) -> list[dict[str, Any]]:
        return [
            {"version": v.version, "build_time": v.build_time, "image": v.image, "runnable": v.runnable,
             "current": v.version == self.current, "message": v.message, "config_returned": v.config is not None}
            for v in self.found
        ]


def versions(client: EasClient, name: str) -> Versions:
    """ListServiceVersions; the current version's image, when EAS left its config out, is the one
    DescribeService shows (the service runs the current version's config)."""
    live = client.require(name)
    found = [
        replace(v, image=live.image) if v.version == live.current_version and not v.image and live.image else v
        for v in client.versions(name)
    ]
    return Versions(live.current_version, found)


def lifecycle(
    client: EasClient, name: str, action: Lifecycle, progress: Progress, *, wait: bool, timeout: float,
    poll: Poll = Poll(), force_unlock: bool = False,
) -> LiveService | None:
    """Start, stop or restart under the service's lock; then wait until ready (start, restart) or
    Stopped (stop), still holding it."""
    check_timeout(timeout)
    live = client.require(name)
    with holding(client, live, progress, ttl=ttl_for(timeout, wait), force=force_unlock) as held:
        since = time.time() - 1
        _unless_locked(client, live, action)
        progress.info(f"{action} {name}: requested")
        if not wait:
            return None
        watcher = Watcher(client, name, progress, timeout, poll, since)
        try:
            if action == "stop":
                held.seen = watcher.until(lambda s: s is not None and s.status == "Stopped")
            else:
                time.sleep(poll.first)  # let the service leave Running before waiting for it
                held.seen = watcher.ready()
        except NotReady as exc:
            raise exc.error(name) from None
        return held.seen


def delete(client: EasClient, name: str, progress: Progress, *, force_unlock: bool = False) -> bool:
    """DeleteService under the service's lock; False when there was nothing to delete. The lock
    label goes with the service; a refused delete releases it."""
    live = client.describe(name)
    if live is None:
        progress.info(f"{name} does not exist in {client.region}: nothing to delete")
        return False
    with holding(client, live, progress, ttl=ttl_for(0, False), force=force_unlock) as held:
        _unless_locked(client, live, "delete")
        held.gone = True
    progress.info(f"{name}: deleting")
    return True


def _unless_locked(client: EasClient, live: LiveService, action: Literal["start", "stop", "restart", "delete"]) -> None:
    """The action, or the error EAS answered with, explained when the service's safety lock
    refused it (EAS decides: the request is sent whatever the lock says)."""
    try:
        client.lifecycle(live.name, action)
    except CloudError as exc:
        refused = "lock" in f"{exc.code or ''} {exc.message}".lower()
        if not refused or live.safety_lock in ("", "none"):
            raise
        exc.hint = (
            f"the service's safety lock is {live.safety_lock!r}, which refuses {action}; lift it first: set "
            "safety_lock: none in its spec and deploy it, or UpdateServiceSafetyLock with Lock none "
            "(the console's safety lock setting), then try again"
        )
        raise
