"""Autoscaling and scheduled scaling: the spec's ``autoscaling:`` and ``schedules:`` as the bodies
of EAS's AutoScaler and CronScaler APIs, their offline checks, and the plan of scaler changes
against what DescribeServiceAutoScaler / DescribeServiceCronScaler returned.

Pure: no SDK. The API shapes (docs/control-plane.md "Scaling"): AutoScaler ``{min, max,
scaleStrategies: [{metricName, threshold}], behavior}`` (camelCase); CronScaler ``{ScaleJobs:
[{Name, Schedule, TargetSize, TimeZone}], ExcludeDates}`` (PascalCase); cron is six fields,
seconds first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from .validate import Violation

QUEUE_METRIC = "queue[avgbacklog]"  # eascmd's async backlog flag; its API spelling is unverified
METRICS = ("qps", "cpu", "gpu[util]", QUEUE_METRIC)

_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
_FIELDS: tuple[tuple[str, int, int, list[str]], ...] = (
    ("second", 0, 59, []), ("minute", 0, 59, []), ("hour", 0, 23, []),
    ("day of month", 1, 31, []), ("month", 1, 12, _MONTHS), ("day of week", 0, 6, _DAYS),
)
_ITEM = re.compile(r"^(?:\*|(?P<a>[0-9A-Za-z]+)(?:-(?P<b>[0-9A-Za-z]+))?)(?:/(?P<step>[0-9]+))?$")


def cron_problem(expr: str) -> str | None:
    """Why ``expr`` is not an EAS cron expression (six fields, seconds first, ``* / , -`` only)."""
    parts = expr.split()
    if len(parts) == 5:
        return (f"cron {expr!r} has 5 fields; EAS takes 6, seconds first: "
                f"did you mean: add a seconds field ({'0 ' + ' '.join(parts)!r})?")
    if len(parts) != 6:
        return f"cron {expr!r} has {len(parts)} fields; EAS takes 6: second minute hour day-of-month month day-of-week"
    for part, (what, low, high, names) in zip(parts, _FIELDS):
        for item in part.split(","):
            m = _ITEM.match(item)
            if not m or m["step"] == "0":
                return f"cron {expr!r}: bad {what} field {part!r} (EAS allows only numbers, names, * / , -)"
            for value in (m["a"], m["b"]):
                if value is None:
                    continue
                upper = value.upper()
                number = names.index(upper) + low if upper in names else (int(value) if value.isdigit() else None)
                if number is None or not low <= number <= high:
                    return f"cron {expr!r}: {what} {value!r} is outside {low}-{high}"
    return None


def metrics(scaling: dict[str, Any]) -> list[tuple[str, float]]:
    """The spec's scaling metrics: ``metrics`` when given, else the one ``metric``/``threshold``."""
    if scaling.get("metrics"):
        return [(m["name"], m["threshold"]) for m in scaling["metrics"]]
    return [(scaling.get("metric", "qps"), scaling.get("threshold", 10))]


def problems(data: dict[str, Any], user: dict[str, Any], async_api: bool, edition: str) -> list[Violation]:
    """What is wrong with ``autoscaling``/``schedules`` beyond the schema (``data``: with defaults;
    ``user``: as written, to tell a default from a choice)."""
    out: list[Violation] = []
    scaling = data.get("autoscaling")
    if scaling:
        if scaling["max"] <= scaling["min"]:
            out.append(Violation(("autoscaling", "max"), f"expected max > min ({scaling['min']}), got {scaling['max']}"))
        written = user.get("autoscaling") or {}
        if written.get("metrics") and ({"metric", "threshold"} & set(written)):
            out.append(Violation(("autoscaling", "metrics"), "set metrics or metric/threshold, not both"))
        names = [name for name, _ in metrics(scaling)]
        if len(set(names)) != len(names):
            out.append(Violation(("autoscaling", "metrics"), "each metric may appear once"))
        if QUEUE_METRIC in names and not async_api:
            out.append(Violation(("autoscaling",), f"the {QUEUE_METRIC} metric needs the EAS queue: only the API edition has it (edition: {edition})"))
        if scaling["min"] == 0 and not (async_api and QUEUE_METRIC in names):
            why = (f"the {edition} edition has no queue to hold requests while no instance runs"
                   if not async_api else f"scale to zero needs the {QUEUE_METRIC} metric (a queued request wakes the service)")
            out.append(Violation(("autoscaling", "min"), f"min 0 (scale to zero) is refused: {why}"))
        if "scale_to_zero_after" in scaling and scaling["min"] != 0:
            out.append(Violation(("autoscaling", "scale_to_zero_after"), "only applies with min 0"))
    seen: set[str] = set()
    for i, job in enumerate(data.get("schedules") or []):
        if problem := cron_problem(job["cron"]):
            out.append(Violation(("schedules", i, "cron"), problem))
        name = job_name(job, i)
        if name in seen:
            out.append(Violation(("schedules", i, "name"), f"schedule name {name} is used twice"))
        seen.add(name)
        if scaling and not scaling["min"] <= job["target_instances"] <= scaling["max"]:
            out.append(Violation(("schedules", i, "target_instances"),
                               f"{job['target_instances']} is outside autoscaling's {scaling['min']}-{scaling['max']}"))
    return out


def job_name(job: dict[str, Any], index: int) -> str:
    return str(job.get("name") or f"schedule-{index + 1}")


# -- the API bodies --------------------------------------------------------------------------------
def autoscaler_body(data: dict[str, Any]) -> dict[str, Any] | None:
    """The CreateServiceAutoScaler body for the spec's ``autoscaling`` (None: no autoscaler)."""
    scaling = data.get("autoscaling")
    if not scaling:
        return None
    body: dict[str, Any] = {
        "min": scaling["min"],
        "max": scaling["max"],
        "scaleStrategies": [{"metricName": n, "threshold": t} for n, t in metrics(scaling)],
    }
    behavior: dict[str, Any] = {}
    if "scale_in_delay" in scaling:
        behavior["scaleDown"] = {"stabilizationWindowSeconds": scaling["scale_in_delay"]}
    if "scale_to_zero_after" in scaling:
        behavior["onZero"] = {"scaleDownGracePeriodSeconds": scaling["scale_to_zero_after"]}
    if behavior:
        body["behavior"] = behavior
    return body


def cron_body(data: dict[str, Any]) -> dict[str, Any] | None:
    """The CreateServiceCronScaler body for the spec's ``schedules`` (None: no cron scaler)."""
    jobs = data.get("schedules")
    if not jobs:
        return None
    out = []
    for i, job in enumerate(jobs):
        item = {"Name": job_name(job, i), "Schedule": job["cron"], "TargetSize": job["target_instances"]}
        if job.get("timezone"):
            item["TimeZone"] = job["timezone"]
        out.append(item)
    return {"ScaleJobs": out}


def live_autoscaler(body: dict[str, Any]) -> dict[str, Any] | None:
    """DescribeServiceAutoScaler's answer in the request's form (None: no autoscaler: EAS answers
    zeros then, as far as the emulator knows)."""
    strategies = body.get("ScaleStrategies") or []
    if not strategies and not body.get("MaxReplica"):
        return None
    out: dict[str, Any] = {
        "min": int(body.get("MinReplica") or 0),
        "max": int(body.get("MaxReplica") or 0),
        "scaleStrategies": [{"metricName": str(s.get("metricName", "")), "threshold": s.get("threshold")} for s in strategies],
    }
    if body.get("Behavior"):
        out["behavior"] = body["Behavior"]
    return out


def live_cron(body: dict[str, Any]) -> dict[str, Any] | None:
    jobs = body.get("ScaleJobs") or []
    if not jobs:
        return None
    keep = ("Name", "Schedule", "TargetSize", "TimeZone")
    return {"ScaleJobs": [{k: j[k] for k in keep if j.get(k) is not None} for j in jobs]}


# -- the plan --------------------------------------------------------------------------------------
ScalerKind = Literal["autoscaler", "cronscaler"]


@dataclass(frozen=True)
class ScalerChange:
    """One scaler call deploy makes: create, update or delete of the autoscaler or cron scaler."""

    kind: ScalerKind
    action: Literal["create", "update", "delete"]
    body: dict[str, Any] | None
    old: dict[str, Any] | None = None
    fields: list[str] = field(default_factory=list)

    def line(self) -> str:
        what = "autoscaler" if self.kind == "autoscaler" else "cron scaler"
        shown = summary(self.kind, self.body if self.body is not None else self.old)
        if self.action == "update":
            return f"~ {what}: {summary(self.kind, self.old)} -> {shown}"
        return f"{'+' if self.action == 'create' else '-'} {what}: {shown}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "action": self.action, "old": self.old, "new": self.body}


def summary(kind: ScalerKind, body: dict[str, Any] | None) -> str:
    if not body:
        return "none"
    if kind == "autoscaler":
        strategies = ", ".join(f"{s['metricName']}>{_num(s['threshold'])}" for s in body["scaleStrategies"])
        delay = ((body.get("behavior") or {}).get("scaleDown") or {}).get("stabilizationWindowSeconds")
        return f"{body['min']}-{body['max']} on {strategies}" + (f", scale-in delay {delay}s" if delay is not None else "")
    return "; ".join(f"{j['Name']} '{j['Schedule']}'{' ' + j['TimeZone'] if j.get('TimeZone') else ''} -> {j['TargetSize']}"
                     for j in body["ScaleJobs"])


def _num(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _comparable(kind: ScalerKind, body: dict[str, Any] | None, with_timezone: bool) -> Any:
    """The form two bodies are compared in: metric names lower-cased (Describe may echo them in
    upper case), thresholds as floats; a cron job's TimeZone only when the reader returns it."""
    if body is None:
        return None
    if kind == "autoscaler":
        return {
            **body,
            "scaleStrategies": sorted((s["metricName"].lower(), float(s["threshold"])) for s in body["scaleStrategies"]),
            "behavior": body.get("behavior") or {},
        }
    drop = () if with_timezone else ("TimeZone",)
    return [{k: v for k, v in j.items() if k not in drop} for j in body["ScaleJobs"]]


def scaler_changes(
    desired: dict[ScalerKind, dict[str, Any] | None],
    live: dict[ScalerKind, dict[str, Any] | None],
) -> list[ScalerChange]:
    """The scaler calls that make ``live`` what ``desired`` says; none when they match."""
    out: list[ScalerChange] = []
    for kind in ("autoscaler", "cronscaler"):
        want, have = desired.get(kind), live.get(kind)
        if want is None and have is None:
            continue
        if have is None:
            out.append(ScalerChange(kind, "create", want))
        elif want is None:
            out.append(ScalerChange(kind, "delete", None, have))
        else:
            timezone = any(j.get("TimeZone") for j in have.get("ScaleJobs", [])) if kind == "cronscaler" else True
            if _comparable(kind, want, timezone) != _comparable(kind, have, timezone):
                out.append(ScalerChange(kind, "update", want, have))
    return out
