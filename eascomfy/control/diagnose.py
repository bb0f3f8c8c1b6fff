"""Why a service is not well: its instances (state, restarts, last reason), EAS's own diagnosis
(DescribeServiceDiagnosis and, per troubled instance, DescribeServiceInstanceDiagnosis), the last
log lines of the troubled instances (the previous container's when one restarted) and the known
causes they show, named in ComfyUI terms by ``core.causes``.

Used by ``status`` (the instances, and the diagnosis when one restarted) and by the waiter when a deploy, start or rollback fails
(``control.wait``). A diagnosis never hides the failure it explains: a call that fails here is
reported at debug level and left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..adapters.eas import EasClient, LiveService
from ..adapters.eas_ops import Diagnosis, EasOps, Instance
from ..core.causes import Cause, classify
from ..errors import CloudError
from ..ports import SILENT, Progress
from ..redact import redact

LAST_LINES = 20  # log lines shown per troubled instance
MAX_INSTANCES = 3  # troubled instances looked at closely


def instance_states(client: EasClient, name: str) -> list[Instance]:
    """The service's instances, with the last termination reason of those that restarted."""
    return EasOps(client).instances(name)


def instance_types(live: LiveService | None) -> list[str]:
    """The instance types a live config asks for, the main one first (then its fallbacks)."""
    if live is None:
        return []
    computing = (live.config.get("cloud") or {}).get("computing") or {}
    return [str(i.get("type")) for i in computing.get("instances") or [] if isinstance(i, dict) and i.get("type")]


def troubled(item: Instance) -> bool:
    return item.status != "Running" or item.restarts > 0 or not item.ready


@dataclass
class Report:
    """What a failing service shows, and the known causes in it."""

    service: str
    diagnosis: list[Diagnosis] = field(default_factory=list)
    instances: list[Instance] = field(default_factory=list)
    logs: dict[str, list[str]] = field(default_factory=dict)  # instance -> its last lines
    causes: list[Cause] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "causes": [c.to_dict() for c in self.causes],
            "diagnosis": [d.to_dict() for d in self.diagnosis],
            "instances": [i.to_dict() for i in self.instances],
            "logs": self.logs,
        }

    def lines(self) -> list[str]:
        """The report for people, one line each."""
        out: list[str] = []
        for cause in self.causes:
            out.append(f"cause: {cause.summary}; {cause.advice}")
        for d in self.diagnosis:
            where = f" (instance {d.instance})" if d.instance else ""
            out.append(f"diagnosis{where}: {d.error}")
            out += [f"  cause: {c}" for c in d.causes] + [f"  advice: {a}" for a in d.advices]
        for instance, lines in self.logs.items():
            if lines:
                out.append(f"last log lines of {instance}:")
                out += [f"  | {line}" for line in lines]
        return out

    def hint(self) -> str | None:
        """The known causes as one sentence (for the error's hint), or None."""
        return "; ".join(f"{c.summary}: {c.advice}" for c in self.causes) or None


def restart_diagnosis(client: EasClient, live: LiveService, *, progress: Progress = SILENT,
                      last: int = LAST_LINES) -> tuple[list[Instance], Report | None]:
    """The instances of a service, and, when one of them restarted (outside any wait: the
    kernel killed ComfyUI, a node failed to import...), the diagnosis of its last failure with
    its previous container's last log lines; None when no instance restarted. For ``status``."""
    instances = instance_states(client, live.name)
    if not any(i.restarts > 0 for i in instances):
        return instances, None
    return instances, diagnose(client, live.name, live, progress=progress, last=last, instances=instances)


def diagnose(client: EasClient, name: str, live: LiveService | None = None, *, progress: Progress = SILENT,
             last: int = LAST_LINES, instances: list[Instance] | None = None) -> Report:
    """Everything EAS says about why ``name`` is not well, and the known causes in it
    (``instances``: ListServiceInstances already read by the caller)."""
    ops = EasOps(client)
    report = Report(name)

    def attempt(what: str, fn: Any, default: Any) -> Any:
        try:
            return fn()
        except CloudError as exc:
            progress.debug(f"diagnosis: {what} failed: {exc}")
            return default

    report.diagnosis = list(attempt("DescribeServiceDiagnosis", lambda: ops.diagnosis(name), []))
    report.instances = list(instances) if instances is not None else list(
        attempt("ListServiceInstances", lambda: ops.instances(name), []))
    for item in [i for i in report.instances if troubled(i)][:MAX_INSTANCES]:
        own = attempt("DescribeServiceInstanceDiagnosis", lambda: ops.instance_diagnosis(name, item.name), None)
        if own is not None and all((own.error, own.causes) != (d.error, d.causes) for d in report.diagnosis):
            report.diagnosis.append(own)
        lines: list[str] = []
        if item.restarts > 0:  # what it said before it died
            lines = attempt("DescribeServiceLog", lambda: _tail(ops, name, item.name, True, last), [])
        if not lines:
            lines = attempt("DescribeServiceLog", lambda: _tail(ops, name, item.name, False, last), [])
        report.logs[item.name] = [redact(line) for line in lines]
    reasons = [live.reason, live.message] if live is not None else []
    for d in report.diagnosis:
        reasons += [d.error, *d.causes]
    for i in report.instances:
        reasons += [i.reason, i.last_reason]
    types = instance_types(live)
    all_lines = [line for lines in report.logs.values() for line in lines]
    report.causes = classify(all_lines, [r for r in reasons if r], instance_type=types[0] if types else "", fallbacks=types[1:])
    return report


def _tail(ops: EasOps, name: str, instance: str, previous: bool, count: int) -> list[str]:
    """The last ``count`` lines: the count first, then one page sized to end on the last line
    (and the page before when the last one is short)."""
    total = ops.logs(name, instance=instance, previous=previous, page=1, size=1).total
    if not total:
        return []
    size = max(1, min(count, total))
    pages = -(-total // size)
    got = ops.logs(name, instance=instance, previous=previous, page=pages, size=size).lines
    if len(got) < size and pages > 1:
        got = ops.logs(name, instance=instance, previous=previous, page=pages - 1, size=size).lines + got
    return got[-count:]
