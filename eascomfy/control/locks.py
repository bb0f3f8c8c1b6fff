"""The deploy lock: two runs changing the same service at once must not interleave.

The lock lives with the service, as its label ``eascomfy/lock`` (``core.plan.LOCK_LABEL``):
``<owner>;token=<n>;since=<unix s>;expires=<unix s>``, the owner being ``user@host:pid``. It is
taken only when there is something to write (an unchanged deploy stays one read):

1. the plan's DescribeService shows the current holder; a live lock (not expired) refuses the run
   (``errors.Locked``: who, since when, until when) unless ``force`` breaks it; an expired one
   (its run crashed) is taken over;
2. UpdateServiceLabel writes ours, with a token above the previous holder's (a fencing token);
3. after ``settle`` seconds, DescribeService reads it back: only the run whose value is there goes
   on, the other one is refused. The read-back also re-checks that the service is still the one
   the plan was made against.

Labels are not compare-and-swap: two runs that both read "no lock" and both write are told apart
only by the read-back, which sees the later write. Both would go on only if one run read back
its own value before the other wrote (the other's read-to-write gap longer than ``settle``): the
race window docs/control-plane.md describes. A service that does not exist yet has no labels:
creating it is serialized by EAS itself (a second CreateService of the name answers 409).

Every command that changes a live service takes it (``holding``): deploy and update-image, rollback,
start, stop, restart, delete, and the release steps (canary, promote, abort; promote passes its
lock to deploy's ``execute``). Releasing reads the lock back before it deletes it (a run that broke
it owns it now); a command that waited passes the service its wait read last (``Holding.seen``),
so releasing costs one call, DeleteServiceLabel: a changing deploy that waits pays 3 calls for the
lock (write, read back, delete). ``delete`` releases nothing: the label goes with the service.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from ..adapters.eas import EasClient, LiveService
from ..core.plan import LOCK_LABEL
from ..errors import Locked
from ..ports import Progress

SETTLE_ENV = "EASCOMFY_LOCK_SETTLE"  # seconds between writing the lock and reading it back
DEFAULT_SETTLE = 1.0
MIN_TTL = 600.0  # a lock outlives its run's wait by this much; a crashed run's lock expires then


def settle_from_env() -> float:
    raw = os.environ.get(SETTLE_ENV)
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_SETTLE
    except ValueError:
        return DEFAULT_SETTLE


def ttl_for(timeout: float, wait: bool) -> float:
    """How long a lock holds: the wait and a rollback's wait, plus a margin."""
    return (2 * timeout if wait else 0.0) + MIN_TTL


def whoami() -> str:
    """``user@host:pid``: enough to find the run that holds a lock."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name (a container without one)
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}:{os.getpid()}"


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@dataclass(frozen=True)
class Lock:
    owner: str
    token: int
    since: float
    expires: float

    def value(self) -> str:
        return f"{self.owner};token={self.token};since={int(self.since)};expires={int(self.expires)}"

    @classmethod
    def parse(cls, value: str | None) -> "Lock | None":
        """The lock in a label value; None when there is none. An unreadable value counts as a
        lock held by "unknown" that has expired (so it never blocks forever)."""
        if not value:
            return None
        owner, _, rest = value.partition(";")
        fields = dict(part.partition("=")[::2] for part in rest.split(";") if "=" in part)
        try:
            return cls(owner or "unknown", int(fields["token"]), float(fields["since"]), float(fields["expires"]))
        except (KeyError, ValueError):
            return cls(owner or "unknown", 0, 0.0, 0.0)

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires

    def to_dict(self) -> dict[str, Any]:
        return {"owner": self.owner, "token": self.token, "since": _utc(self.since), "expires": _utc(self.expires)}

    def describe(self) -> str:
        return f"{self.owner} since {_utc(self.since)} (expires {_utc(self.expires)}, token {self.token})"


def _refuse(name: str, held: Lock, why: str = "another eascomfy run is changing it") -> Locked:
    return Locked(
        f"service {name} is locked by {held.describe()}: {why}",
        "wait for that run to finish; if it crashed, its lock expires by itself, or break it",
        lock=held.to_dict(),
    )


def acquire(
    client: EasClient,
    live: LiveService,
    progress: Progress,
    *,
    ttl: float,
    force: bool = False,
    settle: float | None = None,
    owner: str | None = None,
) -> tuple[Lock, LiveService]:
    """Take the lock on ``live`` (what the plan read); returns it and the service as read back."""
    name = live.name
    now = time.time()
    held = Lock.parse(live.labels.get(LOCK_LABEL))
    if held is not None:
        if not held.expired(now) and not force:
            raise _refuse(name, held)
        what = "breaking the lock" if not held.expired(now) else "taking over the expired lock"
        progress.info(f"{name}: {what} held by {held.describe()}")
    mine = Lock(owner or whoami(), max(time.time_ns(), (held.token + 1) if held else 0), now, now + ttl)
    client.set_labels(name, {LOCK_LABEL: mine.value()})
    time.sleep(settle_from_env() if settle is None else settle)
    back = client.describe(name)
    if back is None:
        return mine, live  # deleted under us: the caller's next call says so
    got = Lock.parse(back.labels.get(LOCK_LABEL))
    if got is None or got.token != mine.token or got.owner != mine.owner:
        raise _refuse(name, got or held or mine, "another eascomfy run took it at the same moment")
    progress.debug(f"{name}: locked ({mine.value()})")
    return mine, back


def release(client: EasClient, name: str, mine: Lock, seen: LiveService | None = None) -> None:
    """Remove the lock if it is still ours (a run that broke it owns it now). ``seen``: a
    DescribeService made after this run's last write (a wait's last read) spares reading it again.
    Best effort: a lock left behind expires."""
    try:
        live = seen if seen is not None else client.describe(name)
        got = Lock.parse(live.labels.get(LOCK_LABEL)) if live is not None else None
        if got is not None and got.token == mine.token and got.owner == mine.owner:
            client.delete_labels(name, [LOCK_LABEL])
    except Exception:  # noqa: BLE001 - the run's own outcome matters more; the lock expires
        pass


@dataclass
class Holding:
    """A lock held by one command. ``back``: the service as read back after taking it; ``seen``:
    set by the command to its last read after its last write (released without another read);
    ``gone``: the service was deleted, so there is nothing to release."""

    lock: Lock
    back: LiveService
    seen: LiveService | None = None
    gone: bool = False


@contextmanager
def holding(
    client: EasClient, live: LiveService, progress: Progress, *, ttl: float, force: bool = False
) -> Iterator[Holding]:
    """Take the lock on ``live`` for the ``with`` block and release it after, whatever happened."""
    lock, back = acquire(client, live, progress, ttl=ttl, force=force)
    held = Holding(lock, back)
    try:
        yield held
    finally:
        if not held.gone:
            release(client, live.name, lock, held.seen)
