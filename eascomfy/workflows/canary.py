"""The checks of a canary release: each reference workflow runs on the live service and on the
canary, one after the other (``run.run``, the synchronous path of the Standard and Cluster
editions). The canary passes when every workflow succeeded on both, produced outputs on the
canary, and took at most ``max_slowdown`` times as long on the canary as on the live service.

The API edition is refused: its workflows go through the EAS queue, where a job's time is the
queue's as much as the service's, so the latency comparison would not mean what it says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import EascomfyError, UsageError
from .run import run
from .target import Target

if TYPE_CHECKING:
    from ..adapters.eas import LiveService
    from ..core.editions import Edition
    from ..core.workflow import Workflow
    from ..ports import Progress


def check_edition(edition: "Edition") -> None:
    """Refused before any call: the editions whose workflows a canary check cannot run."""
    if edition.image_suffix is None:
        raise UsageError(f"the {edition.title} takes no API calls: its canary cannot run workflows",
                         "release without workflow checks", param="check")
    if edition.can("async_api"):
        raise UsageError(f"the {edition.title} queues its jobs: canary checks run workflows synchronously and "
                         "compare their times, which the queue's wait would blur",
                         "release without workflow checks, and check the canary with `eascomfy submit`",
                         param="check")


@dataclass
class FlowCheck:
    """One reference workflow on both services."""

    workflow: str
    live_seconds: float | None = None
    canary_seconds: float | None = None
    outputs: int = 0
    problem: str | None = None

    @property
    def slowdown(self) -> float | None:
        if self.live_seconds is None or self.canary_seconds is None or self.live_seconds <= 0:
            return None
        return self.canary_seconds / self.live_seconds

    def to_dict(self) -> dict[str, Any]:
        slowdown = self.slowdown
        return {"workflow": self.workflow, "ok": self.problem is None,
                "live_seconds": None if self.live_seconds is None else round(self.live_seconds, 3),
                "canary_seconds": None if self.canary_seconds is None else round(self.canary_seconds, 3),
                "slowdown": None if slowdown is None else round(slowdown, 3), "outputs": self.outputs,
                "problem": self.problem}


@dataclass
class CanaryChecks:
    max_slowdown: float
    flows: list[FlowCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.problem is None for f in self.flows)

    def failure(self) -> str:
        return "; ".join(f"{f.workflow}: {f.problem}" for f in self.flows if f.problem)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "max_slowdown": self.max_slowdown, "workflows": [f.to_dict() for f in self.flows]}


def _one_line(exc: EascomfyError) -> str:
    return " ".join(str(exc).split())


class WorkflowChecker:
    """A ``control.release.Checker``: the reference workflows on the live service and the canary."""

    def __init__(self, flows: list[tuple[str, "Workflow"]], progress: "Progress", *, out_dir: Path, timeout: float,
                 max_slowdown: float, edition: "Edition | None" = None) -> None:
        self.flows, self.progress, self.out_dir = flows, progress, out_dir
        self.timeout, self.max_slowdown, self.edition = timeout, max_slowdown, edition

    def _run(self, service: "LiveService", flow: "Workflow", dest: Path) -> tuple[float, int]:
        target = Target(service.internet_endpoint, service.access_token, service.name, self.edition)
        with target.client(self.progress) as client:
            report = run(client, flow, self.progress, out_dir=dest, timeout=self.timeout)
        return report.seconds, len(report.files)

    def __call__(self, live: "LiveService", canary: "LiveService") -> CanaryChecks:
        checks = CanaryChecks(self.max_slowdown)
        for label, flow in self.flows:
            found = FlowCheck(label)
            checks.flows.append(found)
            stem = Path(label).stem
            for role, service in (("live", live), ("canary", canary)):
                self.progress.info(f"check {label} on the {role} service {service.name}")
                try:
                    seconds, outputs = self._run(service, flow, self.out_dir / stem / role)
                except EascomfyError as exc:
                    where = "the live service too (the reference workflow itself is broken)" if role == "live" else "the canary"
                    found.problem = f"failed on {where}: {_one_line(exc)}"
                    break
                if role == "live":
                    found.live_seconds = seconds
                    continue
                found.canary_seconds, found.outputs = seconds, outputs
                if outputs == 0:
                    found.problem = "the canary produced no outputs"
                elif found.slowdown is not None and found.slowdown > self.max_slowdown:
                    found.problem = (f"the canary took {seconds:.2f} s against {found.live_seconds:.2f} s live "
                                     f"({found.slowdown:.2f}x, more than {self.max_slowdown:g}x)")
            if found.problem:
                self.progress.warn(f"{label}: {found.problem}")
                break  # a release fails on its first failed check: no more GPU time on a bad canary
            self.progress.info(f"{label}: ok on both ({found.slowdown or 0:.2f}x the live time, {found.outputs} outputs)")
        return checks
