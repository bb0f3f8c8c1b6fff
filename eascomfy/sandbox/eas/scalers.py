"""The EAS OpenAPI's horizontal (AutoScaler) and scheduled (CronScaler) scaling actions, stored
per service. Paths, methods and body keys are the SDK 7.0.0's (``alibabacloud_eas20210701``
``client.py`` ``*_service_auto_scaler_with_options`` / ``*_service_cron_scaler_with_options``,
``models.py`` ``to_map`` names):

- Create/Update/Describe/DeleteServiceAutoScaler: POST/PUT/GET/DELETE
  ``/api/v2/services/{ClusterId}/{ServiceName}/autoscaler``; body (camelCase) ``min``, ``max``,
  ``scaleStrategies: [{metricName, threshold, service}]``, ``behavior: {scaleUp, scaleDown:
  {stabilizationWindowSeconds}, onZero: {scaleDownGracePeriodSeconds, scaleUpActivationReplicas}}``;
  Describe answers ``{ServiceName, MinReplica, MaxReplica, Behavior, ScaleStrategies,
  CurrentMetrics}`` (``Behavior`` unwrapped: the doc example's ``{"behavior": ...}`` wrapper is
  unverified).
- Create/Update/Describe/DeleteServiceCronScaler: the same on ``.../cronscaler``; body (PascalCase)
  ``ScaleJobs: [{Name, Schedule, TargetSize, TimeZone}]``, ``ExcludeDates: [cron]``; Describe
  answers ``{ServiceName, ScaleJobs: [{Name, Schedule, TargetSize, TimeZone, State, Message,
  CreateTime, LastProbeTime}], ExcludeDates}``. ``TimeZone`` was added to the API on 2025-09-10
  (Go SDK changelog): SDK 7.0.0 cannot send it, so it is accepted, never required.
- Mutations answer ``{RequestId, Message}``; the Create message is the Go SDK example's
  ``Succeed to auto scale service [<name>]``.

Validation follows the API pages (createserviceautoscaler, createservicecronscaler): ``max``
greater than ``min``, at most 1000 (the console doc); ``scaleStrategies`` required; cron
expressions are six fields, seconds first, with only ``* / , -``. The error codes and statuses for
these are not documented: the emulator answers 400 ``InvalidParameter`` (unverified, as the
ledger in docs/unverified.md says). Metric names: ``qps``, ``cpu``, ``gpu[util]`` (the SDK's
Create docstring), ``qps1k`` (eascmd, the HPA doc), ``queue[avgbacklog]`` (eascmd's async backlog
flag; its API spelling is unverified), ``memory`` ([SKILLS], unverified); compared
case-insensitively (Describe docstrings write ``QPS``). Update with ``min: 0`` follows the
``autoscaler_update_min`` switch: Update's docstring says "must be greater than 0" while Create,
the console and the async doc allow 0.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Callable

from .errors import invalid
from .params import Call
from .state import ServiceStore, iso

Handler = Callable[[Call], dict[str, Any]]

METRICS = ("qps", "qps1k", "cpu", "gpu[util]", "queue[avgbacklog]", "memory")
MAX_REPLICAS = 1000

# cron: (low, high, names) per field, seconds first (API pages createservicecronscaler)
_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
CRON_FIELDS: tuple[tuple[str, int, int, list[str]], ...] = (
    ("second", 0, 59, []), ("minute", 0, 59, []), ("hour", 0, 23, []),
    ("day of month", 1, 31, []), ("month", 1, 12, _MONTHS), ("day of week", 0, 6, _DAYS),
)
_ITEM = re.compile(r"^(?:\*|(?P<a>[0-9A-Za-z]+)(?:-(?P<b>[0-9A-Za-z]+))?)(?:/(?P<step>[0-9]+))?$")


def cron_problem(expr: Any) -> str | None:
    """Why ``expr`` is not a six-field EAS cron expression (None: it is one)."""
    if not isinstance(expr, str):
        return "a cron expression must be a string"
    parts = expr.split()
    if len(parts) != 6:
        return f"cron {expr!r} has {len(parts)} fields; EAS takes 6 (second minute hour day month weekday)"
    for part, (what, low, high, names) in zip(parts, CRON_FIELDS):
        for item in part.split(","):
            m = _ITEM.match(item)
            if not m or m["step"] == "0":
                return f"cron {expr!r}: bad {what} field {part!r} (only * / , - are allowed)"
            for value in (m["a"], m["b"]):
                if value is None:
                    continue
                upper = value.upper()
                number = names.index(upper) + low if upper in names else (int(value) if value.isdigit() else None)
                if number is None or not low <= number <= high:
                    return f"cron {expr!r}: {what} {value!r} is outside {low}-{high}"
    return None


def _int(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if value is None:
        raise invalid(f"{key} is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"{key} must be an integer")
    return value


def check_autoscaler(body: dict[str, Any], update: bool, positive_min_on_update: bool) -> dict[str, Any]:
    """The body as stored (the legacy ``strategies`` map becomes ``scaleStrategies``), or an error."""
    body = copy.deepcopy(body)
    if "scaleStrategies" not in body and isinstance(body.get("strategies"), dict):
        # the old SDK's map form (pai-python-sdk's vendored models); whether EAS still accepts it
        # is unverified: the emulator accepts it and answers in the new shape
        body["scaleStrategies"] = [{"metricName": k, "threshold": v} for k, v in body.pop("strategies").items()]
    low, high = _int(body, "min"), _int(body, "max")
    if low < 0:
        raise invalid("min must be 0 or greater")
    if update and positive_min_on_update and low == 0:
        raise invalid("min must be greater than 0")
    if high <= low:
        raise invalid("max must be greater than min")
    if high > MAX_REPLICAS:
        raise invalid(f"max must be at most {MAX_REPLICAS}")
    strategies = body.get("scaleStrategies")
    if not isinstance(strategies, list) or not strategies:
        raise invalid("scaleStrategies is required")
    for item in strategies:
        name = item.get("metricName") if isinstance(item, dict) else None
        if not isinstance(name, str) or name.lower() not in METRICS:
            raise invalid(f"metricName {name!r} is not supported (supported: {', '.join(METRICS)})")
        threshold = item.get("threshold")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or threshold <= 0:
            raise invalid(f"threshold of {name} must be a number greater than 0")
    behavior = body.get("behavior")
    if behavior is not None and not isinstance(behavior, dict):
        raise invalid("behavior must be an object")
    return body


def check_cron(body: dict[str, Any]) -> dict[str, Any]:
    """The cron scaler body as stored (jobs named ``scale-job-<i>`` when unnamed), or an error."""
    jobs = body.get("ScaleJobs")
    if not isinstance(jobs, list) or not jobs:
        raise invalid("ScaleJobs is required")
    out = []
    for i, job in enumerate(jobs):
        if not isinstance(job, dict):
            raise invalid("ScaleJobs items must be objects")
        problem = cron_problem(job.get("Schedule")) if "Schedule" in job else "Schedule is required"
        if problem:
            raise invalid(problem)
        size = _int(job, "TargetSize")
        if size < 0:
            raise invalid("TargetSize must be 0 or greater")
        out.append({**job, "Name": job.get("Name") or f"scale-job-{i}", "TargetSize": size})
    excluded = body.get("ExcludeDates") or []
    if not isinstance(excluded, list):
        raise invalid("ExcludeDates must be a list of cron expressions")
    for expr in excluded:
        if problem := cron_problem(expr):
            raise invalid(problem)
    return {"ScaleJobs": out, "ExcludeDates": list(excluded)}


class ScalerApi:
    """The eight scaler actions, keyed like ``OpenApi``'s service operations."""

    def __init__(self, store: ServiceStore) -> None:
        self.store = store

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {
            ("GET", "autoscaler"): self.describe_autoscaler,
            ("POST", "autoscaler"): lambda c: self.put_autoscaler(c, create=True),
            ("PUT", "autoscaler"): lambda c: self.put_autoscaler(c, create=False),
            ("DELETE", "autoscaler"): self.delete_autoscaler,
            ("GET", "cronscaler"): self.describe_cron,
            ("POST", "cronscaler"): lambda c: self.put_cron(c, create=True),
            ("PUT", "cronscaler"): lambda c: self.put_cron(c, create=False),
            ("DELETE", "cronscaler"): self.delete_cron,
        }

    def describe_autoscaler(self, call: Call) -> dict[str, Any]:
        # Without an autoscaler: zeros and empty lists (what EAS answers is unverified).
        scaler = self.store.get(call.service).autoscaler or {}
        return {
            "ServiceName": call.service,
            "MinReplica": scaler.get("min", 0),
            "MaxReplica": scaler.get("max", 0),
            "Behavior": scaler.get("behavior", {}),
            "ScaleStrategies": [{"service": call.service, **s} for s in scaler.get("scaleStrategies", [])],
            "CurrentMetrics": [],
        }

    def put_autoscaler(self, call: Call, create: bool) -> dict[str, Any]:
        strict = self.store.fidelity.autoscaler_update_min == "positive"
        body = check_autoscaler(call.json(), update=not create, positive_min_on_update=strict)
        self.store.set_scaler(call.service, "autoscaler", body, create)
        return {"Message": f"Succeed to auto scale service [{call.service}]"}

    def delete_autoscaler(self, call: Call) -> dict[str, Any]:
        self.store.set_scaler(call.service, "autoscaler", None, False)
        return {"Message": f"Succeed to delete autoscaler of service [{call.service}]"}

    def describe_cron(self, call: Call) -> dict[str, Any]:
        rec = self.store.get(call.service)
        cron = rec.cronscaler or {}
        created = iso(cron.get("created", rec.update_time))
        jobs = [
            {**job, "State": "Succeed", "Message": "", "CreateTime": created, "LastProbeTime": created}
            for job in cron.get("ScaleJobs", [])
        ]
        return {"ServiceName": call.service, "ScaleJobs": jobs, "ExcludeDates": cron.get("ExcludeDates", [])}

    def put_cron(self, call: Call, create: bool) -> dict[str, Any]:
        body = check_cron(call.json())
        self.store.set_scaler(call.service, "cronscaler", body, create)
        return {"Message": f"Succeed to cron scale service [{call.service}]"}

    def delete_cron(self, call: Call) -> dict[str, Any]:
        self.store.set_scaler(call.service, "cronscaler", None, False)
        return {"Message": f"Succeed to delete cronscaler of service [{call.service}]"}
