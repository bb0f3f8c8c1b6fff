"""Fleets: many services in many regions, one command. Loads and checks every spec of the project
first (a bad one refuses the run before any call), then runs one service's work per thread,
``parallel`` at a time, with one EAS client per region; one failure does not stop the others
unless ``fail_fast`` (a rolling update is ``fail_fast`` with ``parallel`` = max unavailable).
Each service's own failure handling (a failed deploy rolls back) is the single-service path's.
docs/gitops.md "Fleets".
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..adapters.eas import EasClient
from ..core.fleet import Member, Selector, check_unique, fleet_files, select
from ..core.spec import Spec, load_spec, load_specs
from ..errors import EXIT_OK, EXIT_PLAN_CHANGES, EascomfyError, UsageError
from ..ports import Progress
from .deploy import connect

DEFAULT_PARALLEL = 4
OK, CHANGES, FAILED, SKIPPED = "ok", "changes", "failed", "skipped"


def load_fleet(root: Path, env: str | None = None, edition: str | None = None) -> list[Spec]:
    """Every service of the project in ``root`` (``core.fleet.fleet_files``), one per region."""
    specs: list[Spec] = []
    for file in fleet_files(root):
        try:
            specs += load_specs(file, env=env, edition=edition)
        except UsageError as exc:
            if exc.param == "env":  # which spec lacks it
                exc.message = f"{file}: {exc.message}"
            raise
    check_unique([member(s) for s in specs])
    return specs


def member(spec: Spec) -> Member:
    return Member(spec.name, spec.region, dict(spec.data.get("labels") or {}), spec.file)


def choose(specs: Sequence[Spec], selector: Selector) -> list[Spec]:
    """The specs ``selector`` picks; a selector that picks none is refused, naming what exists."""
    return [specs[i] for i in select([member(s) for s in specs], selector)]


@dataclass
class Outcome:
    """One service's row of the summary."""

    service: str
    region: str
    file: str
    action: str = ""
    result: str = SKIPPED
    seconds: float = 0.0
    exit_code: int = EXIT_OK
    error: EascomfyError | None = None
    data: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.service, "region": self.region, "file": self.file, "action": self.action,
                "result": self.result, "seconds": round(self.seconds, 3), "exit_code": self.exit_code,
                "error": self.error.to_dict() if self.error else None, "data": self.data}


@dataclass
class FleetRun:
    outcomes: list[Outcome] = field(default_factory=list)

    def exit_code(self, detailed: bool = False) -> int:
        """The worst: the highest exit code of a failed service; else, with ``detailed`` (plan
        --detailed-exitcode), 2 when any service would change."""
        worst = max((o.exit_code for o in self.outcomes), default=EXIT_OK)
        if worst:
            return worst
        return EXIT_PLAN_CHANGES if detailed and any(o.result == CHANGES for o in self.outcomes) else EXIT_OK

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for o in self.outcomes:
            found[o.result] = found.get(o.result, 0) + 1
        return found

    def to_list(self) -> list[dict[str, Any]]:
        return [o.to_dict() for o in self.outcomes]


class Clients:
    """One EAS client per region, made on first use and shared by the threads (the SDK client holds
    no per-request state; each call builds its own request)."""

    def __init__(self, progress: Progress, make: Callable[[str, Progress], EasClient] = connect) -> None:
        self._progress, self._make = progress, make
        self._lock = threading.Lock()
        self._made: dict[str, EasClient] = {}

    def __call__(self, region: str) -> EasClient:
        with self._lock:
            if region not in self._made:
                self._made[region] = self._make(region, self._progress)
            return self._made[region]


class Prefixed:
    """A service's progress inside a fleet run: shown with ``--verbose`` only, prefixed by which
    service it is about (one line per finished service is what people see)."""

    def __init__(self, progress: Progress, who: str) -> None:
        self._progress, self._who = progress, who

    def info(self, message: str) -> None:
        self._progress.debug(f"{self._who}: {message}")

    def debug(self, message: str) -> None:
        self._progress.debug(f"{self._who}: {message}")

    def warn(self, message: str) -> None:
        self._progress.warn(f"{self._who}: {message}")


# What a command does to one service: (action, result, data); raises on failure.
Work = Callable[[Spec, EasClient, Progress], "tuple[str, str, Any]"]


def run(
    specs: Sequence[Spec],
    work: Work,
    progress: Progress,
    *,
    parallel: int = DEFAULT_PARALLEL,
    fail_fast: bool = False,
    clients: Clients | None = None,
) -> FleetRun:
    """``work`` on every spec, ``parallel`` at a time; after a failure with ``fail_fast``, the
    services not started yet are skipped (left untouched). Outcomes keep the order of ``specs``."""
    if parallel < 1:
        raise UsageError(f"expected at least 1, got {parallel}", param="parallel")
    clients = clients or Clients(progress)
    fleet = FleetRun([Outcome(s.name, s.region, s.file) for s in specs])
    pending = list(range(len(specs)))
    lock = threading.Lock()
    stop = threading.Event()
    done = [0]

    def one(i: int) -> None:
        spec, outcome = specs[i], fleet.outcomes[i]
        started = time.monotonic()
        try:
            outcome.action, outcome.result, outcome.data = work(spec, clients(spec.region),
                                                                Prefixed(progress, f"{spec.name} ({spec.region})"))
        except EascomfyError as exc:
            outcome.result, outcome.error, outcome.exit_code = FAILED, exc, exc.exit_code
            if fail_fast:
                stop.set()
        except Exception as exc:  # noqa: BLE001 - a bug in one service's work must not lose the others'
            outcome.result, outcome.exit_code = FAILED, 1
            outcome.error = EascomfyError(f"internal error: {type(exc).__name__}: {exc}", "please report it")
            if fail_fast:
                stop.set()
        outcome.seconds = time.monotonic() - started
        with lock:
            done[0] += 1
            n = done[0]
        detail = f": {outcome.error}" if outcome.error else ""
        progress.info(f"[{n}/{len(specs)}] {spec.name} ({spec.region}): {outcome.action or '-'} {outcome.result}"
                      f" ({outcome.seconds:.1f} s){detail}")

    def worker() -> None:
        while not stop.is_set():
            with lock:
                if not pending:
                    return
                i = pending.pop(0)
            one(i)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(parallel, len(specs)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return fleet


# -- the commands' work on one service ---------------------------------------------------------------
def plan_work() -> Work:
    from ..core.planreport import plan_json
    from .deploy import plan_service

    def work(spec: Spec, client: EasClient, progress: Progress) -> tuple[str, str, Any]:
        plan, _ = plan_service(spec, client)
        return plan.action, CHANGES if plan.has_changes else OK, plan_json(plan)

    return work


def deploy_work(**options: Any) -> Work:
    """``control.deploy.deploy`` with ``options`` (dry_run, wait, timeout, rollback, force_unlock):
    the service only (the CLI's fleet deploy also syncs each mount first, as its single deploy does)."""
    from .deploy import deploy

    def work(spec: Spec, client: EasClient, progress: Progress) -> tuple[str, str, Any]:
        result = deploy(spec, client, progress, **options)
        return result.plan.action, OK, result.to_dict()

    return work


def update_image_work(version: str, edition: str | None, **options: Any) -> Work:
    """``control.deploy.update_image`` on each service, its spec file left alone (written once per
    file after the run: ``write_versions``)."""
    from .deploy import update_image

    def work(spec: Spec, client: EasClient, progress: Progress) -> tuple[str, str, Any]:
        def load(env: str | None) -> Spec:
            return load_spec(spec.file, env=env, edition=edition, region=spec.region)

        change = update_image(spec, version, client, progress, load=load, write=False, **options)
        return change.result.plan.action, OK, change.to_dict()

    return work


def write_versions(specs: Sequence[Spec], fleet: FleetRun, version: str) -> list[str]:
    """Record ``version`` in each spec file whose every selected service was updated: a file never
    claims a version one of its services failed or was skipped on (running again finishes them).
    Each updated service's data says whether its file was written; returns a line per file."""
    from ..core.image import with_image_version
    from ..local.specfile import write_image_version

    notes, by_file = [], {}
    for spec, outcome in zip(specs, fleet.outcomes):
        by_file.setdefault(spec.file, []).append((spec, outcome))
    for file, pairs in by_file.items():
        if not all(o.result == OK for _, o in pairs):
            notes.append(f"{file}: image.version not written (not every service of it was updated)")
            continue
        path = write_image_version(with_image_version(pairs[0][0], version), version)
        for _, outcome in pairs:
            outcome.data.update(file_written=path is not None, file=str(path) if path else None)
        if path:
            notes.append(f"wrote image.version {version} to {path}")
    return notes


def status_work() -> Work:
    def work(spec: Spec, client: EasClient, progress: Progress) -> tuple[str, str, Any]:
        live = client.require(spec.name)
        return "status", live.status, {**live.to_dict(), "region": spec.region}

    return work


def delete_work() -> Work:
    from .lifecycle import delete

    def work(spec: Spec, client: EasClient, progress: Progress) -> tuple[str, str, Any]:
        deleted = delete(client, spec.name, progress)
        return "delete", "deleting" if deleted else "not found", {"deleted": deleted}

    return work
