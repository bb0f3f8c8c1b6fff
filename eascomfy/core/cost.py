"""What a change and a batch of jobs cost: pure arithmetic over prices the user gives and what
DescribeMachineSpec / DescribeSpotDiscountHistory answered (passed in as plain dicts).

Where prices come from: EAS's API has no list price (``DescribeMachineSpecResponseBodyInstanceMetas``
in SDK 7.0.0 carries stock, spot discounts and sizes, never a price), so eascomfy never invents
one. Hourly prices per instance come from a prices file the user keeps (``--prices prices.yaml``,
copied from the console's price page or their contract)::

    currency: CNY
    hourly:
      ml.gu7i.c16m60.1-gu30: 13.5

A type without a price is "price unknown", and every sum it is part of is unknown too. A spot
price is the hourly price times the API's spot discount (``0.1`` = 90% off, SDK docstring).

A month is ``HOURS_PER_MONTH`` hours (365 * 24 / 12 = 730), the convention of cloud price pages.
"""

from __future__ import annotations

import heapq
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping

from ..errors import SpecError, UsageError
from .instances import gpu_count
from .validate import did_you_mean
from .yamlio import load_yaml

HOURS_PER_MONTH = 730.0
NO_STOCK = "NoStock"  # DescribeMachineSpec StockStatus: WithStock | ClosedWithStock | NoStock (SDK docstring)
_PRICE_KEYS = ("currency", "hourly")


# -- prices ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prices:
    """Hourly prices per instance type, as the user's prices file states them."""

    hourly: dict[str, float] = field(default_factory=dict)
    currency: str = ""
    source: str = ""

    def of(self, instance_type: str) -> float | None:
        return self.hourly.get(instance_type)


def parse_prices(text: str, file: str) -> Prices:
    """A prices file (YAML: ``currency``, ``hourly: {type: price}``), or ``SpecError`` naming the
    file, line and field."""
    data, positions = load_yaml(text, file)

    def fail(path: tuple[str, ...], message: str, hint: str | None = None) -> SpecError:
        return SpecError(message, location=positions.location(path), path=".".join(path) or None, hint=hint)

    if not isinstance(data, dict):
        raise fail((), "expected a mapping with currency and hourly (instance type: price per hour)")
    for key in data:
        if key not in _PRICE_KEYS:
            raise fail((key,), "unknown key", did_you_mean(key, _PRICE_KEYS) or "a prices file has currency and hourly")
    currency = data.get("currency", "")
    if not isinstance(currency, str):
        raise fail(("currency",), f"expected a currency name such as CNY or USD, got {currency!r}")
    hourly = data.get("hourly")
    if not isinstance(hourly, dict) or not hourly:
        raise fail(("hourly",), "expected a mapping of instance type to hourly price, e.g. ml.gu7i.c16m60.1-gu30: 13.5")
    prices: dict[str, float] = {}
    for name, value in hourly.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise fail(("hourly", name), f"expected a price per instance-hour (a number of 0 or more), got {value!r}")
        prices[name] = float(value)
    return Prices(prices, currency, file)


def one_price(instance_type: str, hourly: float, currency: str = "") -> Prices:
    """A price given on the command line."""
    if not math.isfinite(hourly) or hourly < 0:
        raise UsageError(f"the price must be a number of 0 or more, got {hourly}", param="price")
    return Prices({instance_type: hourly}, currency, "command line")


def _money(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


# -- what DescribeMachineSpec says about a type ----------------------------------------------------
@dataclass(frozen=True)
class TypeFacts:
    """One ``InstanceMetas`` entry, or ``listed=False`` when the region does not offer the type."""

    instance_type: str
    listed: bool = False
    stock: str | None = None
    available: bool | None = None
    spot_discount: float | None = None
    gpus: int | None = None

    @classmethod
    def from_meta(cls, instance_type: str, meta: Mapping[str, Any] | None) -> "TypeFacts":
        if meta is None:
            return cls(instance_type, gpus=gpu_count(instance_type))
        spot = meta.get("SpotDiscount")
        amount = meta.get("GPUAmount")
        return cls(
            instance_type,
            listed=True,
            stock=str(meta["StockStatus"]) if meta.get("StockStatus") is not None else None,
            available=bool(meta["IsAvailable"]) if meta.get("IsAvailable") is not None else None,
            spot_discount=float(spot) if isinstance(spot, (int, float)) and not isinstance(spot, bool) else None,
            gpus=int(amount) if isinstance(amount, int) and not isinstance(amount, bool) else gpu_count(instance_type),
        )


# -- one side of a change --------------------------------------------------------------------------
@dataclass(frozen=True)
class Placement:
    """What a service config pays for: its instance types (the first is used, the others are
    fallbacks) and its instance count. ``group`` is a dedicated resource group (not priced here)."""

    types: tuple[str, ...] = ()
    instances: int = 0
    group: str = ""


def placement(config: Mapping[str, Any] | None) -> Placement | None:
    """The placement a rendered or live service config asks for; None for no service."""
    if config is None:
        return None
    metadata = config.get("metadata") if isinstance(config.get("metadata"), dict) else {}
    count = metadata.get("instance")
    computing = (config.get("cloud") or {}).get("computing") if isinstance(config.get("cloud"), dict) else None
    items = computing.get("instances") if isinstance(computing, dict) else None
    types = tuple(str(i.get("type")) for i in items or [] if isinstance(i, dict) and i.get("type"))
    if not types and isinstance(computing, dict) and computing.get("instance_type"):
        types = (str(computing["instance_type"]),)  # the single-type form a console service may have
    return Placement(types, int(count) if isinstance(count, int) and not isinstance(count, bool) else 0,
                     str(metadata.get("resource") or ""))


def costs_money(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """Does the change touch what is paid for (instance types, count, group)? A plan that does not
    needs no price or stock lookup."""
    return placement(desired) != placement(live)


def monthly(hourly: float | None, instances: int, hours: float = HOURS_PER_MONTH) -> float | None:
    """What ``instances`` instances at ``hourly`` cost in a month; None when the price is unknown."""
    return None if hourly is None else hourly * instances * hours


def monthly_difference(new: float | None, old: float | None) -> float | None:
    """New minus old monthly cost; unknown when either side is."""
    return None if new is None or old is None else new - old


@dataclass
class PlanCost:
    """The cost section of a plan (docs/json-output.md ``cost``)."""

    region: str
    currency: str
    types: list[dict[str, Any]]
    instances: int
    live_instances: int | None
    monthly: float | None
    live_monthly: float | None
    monthly_difference: float | None
    warnings: list[str] = field(default_factory=list)
    prices: str = ""  # where the prices came from (a file), "" when none were given
    hours_per_month: float = HOURS_PER_MONTH

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("monthly", "live_monthly", "monthly_difference"):
            data[key] = _money(data[key])
        return data


def _type_row(role: str, facts: TypeFacts, prices: Prices) -> dict[str, Any]:
    hourly = prices.of(facts.instance_type)
    spot = None if hourly is None or facts.spot_discount is None else hourly * facts.spot_discount
    return {
        "instance_type": facts.instance_type,
        "role": role,
        "hourly": _money(hourly),
        "spot_discount": facts.spot_discount,
        "spot_hourly": _money(spot),
        "stock": facts.stock,
        "available": facts.available,
        "offered": facts.listed,
        "gpus": facts.gpus,
    }


def _stock_warnings(region: str, types: tuple[str, ...], facts: Mapping[str, TypeFacts]) -> list[str]:
    warnings = []
    lacking = [t for t in types if not facts[t].listed or facts[t].stock == NO_STOCK or facts[t].available is False]
    for t in lacking:
        f = facts[t]
        why = ("is not offered" if not f.listed else "has no stock" if f.stock == NO_STOCK else "is not available")
        if t != types[0]:
            warnings.append(f"fallback {t} {why} in {region} (DescribeMachineSpec)")
            continue
        others = [o for o in types[1:] if o not in lacking]
        if others:
            tail = f"EAS falls back to the spec's resources.fallback_instance_types: {', '.join(others)}"
        elif types[1:]:
            tail = "and no fallback type in resources.fallback_instance_types has stock either: instances will not start"
        else:
            tail = "the spec lists no fallback: add resources.fallback_instance_types, or instances will not start"
        warnings.append(f"{t} {why} in {region} (DescribeMachineSpec StockStatus {f.stock}); {tail}")
    return warnings


def plan_cost(
    region: str,
    desired: Mapping[str, Any],
    live: Mapping[str, Any] | None,
    metas: Mapping[str, Mapping[str, Any]] | None,
    prices: Prices,
    stock_error: str = "",
) -> PlanCost:
    """The cost section for a change from ``live`` (None: no service yet) to ``desired``:
    per type its price, spot discount and stock; the monthly cost of both sides at their instance
    counts and the difference. ``metas`` is DescribeMachineSpec's ``InstanceMetas`` by type (None:
    it could not be read, ``stock_error`` says why; prices are still shown)."""
    new, old = placement(desired), placement(live)
    assert new is not None
    shown = list(dict.fromkeys([*new.types, *(old.types[:1] if old else ())]))
    facts = {t: TypeFacts.from_meta(t, metas.get(t)) if metas is not None else TypeFacts(t, gpus=gpu_count(t))
             for t in shown}
    rows = [_type_row("planned" if i == 0 else "fallback", facts[t], prices) for i, t in enumerate(new.types)]
    if old and old.types and old.types[0] not in new.types:
        rows.append(_type_row("live", facts[old.types[0]], prices))
    if metas is None:
        warnings = [f"stock unknown in {region}: {stock_error or 'DescribeMachineSpec was not read'}"]
        for row in rows:
            row["offered"] = None
    else:
        warnings = _stock_warnings(region, new.types, facts) if new.types else []
    unknown = sorted({t for t in [*new.types[:1], *(old.types[:1] if old else ())] if prices.of(t) is None})
    for t in unknown:
        close = did_you_mean(t, prices.hourly) if prices.hourly else None
        warnings.append(f"price unknown for {t}: " + (f"{prices.source} has no price for it ({close})" if close else
                        "the API gives no list price; give hourly prices in a prices file (docs/cost.md)"))
    if new.group:
        warnings.append(f"a dedicated resource group ({new.group}) is billed by the group, not per instance: not priced")
    new_monthly = monthly(prices.of(new.types[0]), new.instances) if new.types and not new.group else None
    if old is None:
        old_monthly: float | None = 0.0
    else:
        old_monthly = monthly(prices.of(old.types[0]), old.instances) if old.types and not old.group else None
    return PlanCost(
        region=region,
        currency=prices.currency,
        types=rows,
        instances=new.instances,
        live_instances=old.instances if old else None,
        monthly=new_monthly,
        live_monthly=old_monthly,
        monthly_difference=monthly_difference(new_monthly, old_monthly),
        warnings=warnings,
        prices=prices.source,
    )


# -- the journal: what jobs cost -------------------------------------------------------------------
@dataclass(frozen=True)
class JobTime:
    """One finished job: when its last attempt was sent, when its result was stored, and the
    instance time it is estimated to have used (``busy``: the queue wait left out)."""

    task_id: str
    sent: float
    done: float
    ok: bool
    busy: float = 0.0

    @property
    def latency(self) -> float:
        return self.done - self.sent


def _number(record: Mapping[str, Any], key: str) -> float | None:
    value = record.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else None


def journal_jobs(data: bytes, file: str) -> list[JobTime]:
    """The finished jobs of a journal (``workflows/journal.py`` lines), or ``UsageError`` naming
    ``file:line`` for a line that is not a JSON object or whose time is not a number. A last line
    without its newline is one a crash cut short: ignored, as the journal itself does."""
    end = data.rfind(b"\n") + 1
    sent: dict[str, float] = {}
    jobs: dict[str, JobTime] = {}
    for number, raw in enumerate(data[:end].split(b"\n")[:-1], 1):
        if not raw.strip():
            continue

        def bad(what: str) -> UsageError:
            return UsageError(f"{file}:{number}: {what}", "a journal is written by `eascomfy submit`; "
                              "remove or fix the line", param="journal")

        try:
            record = json.loads(raw)
        except ValueError as exc:
            raise bad(f"not a JSON line ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise bad(f"expected a JSON object, got {type(record).__name__}")
        event, task = record.get("event"), str(record.get("task_id"))
        if event not in ("submit", "resend", "result"):
            continue
        when = _number(record, "time")
        if when is None:
            raise bad(f"a {event} line needs a number in \"time\" (seconds since the epoch), got {record.get('time')!r}")
        if event in ("submit", "resend"):
            sent[task] = when
        elif task in sent and task not in jobs and when >= sent[task]:
            jobs[task] = JobTime(task, sent[task], when, bool(record.get("ok")))
    return list(jobs.values())


def with_busy_time(jobs: Iterable[JobTime], instances: int) -> list[JobTime]:
    """Each job's instance time, estimated from send and result times as a first-come first-served
    queue of ``instances`` workers: a job starts when it was sent or when a worker became free
    (the earliest free worker, in the order results came), whichever is later. The estimate is
    exact for one worker when results are collected as they come (``results --follow``); results
    collected late count as longer jobs."""
    free = [-math.inf] * max(instances, 1)
    out = []
    for job in sorted(jobs, key=lambda j: (j.done, j.sent)):
        start = max(job.sent, heapq.heappop(free))
        heapq.heappush(free, job.done)
        out.append(JobTime(job.task_id, job.sent, job.done, job.ok, job.done - start))
    return out


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100), linear between ranks (numpy's default); None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _spread(values: list[float]) -> dict[str, float | None]:
    return {"mean": _money(sum(values) / len(values)) if values else None,
            **{f"p{q}": _money(percentile(values, q)) for q in (50, 90, 99)},
            "max": _money(max(values)) if values else None}


@dataclass
class JobsCost:
    """``eascomfy cost``: what the journal's finished jobs used and cost."""

    instance_type: str
    instances: int
    gpus_per_instance: int | None
    hourly: float | None
    currency: str
    jobs: int
    failed: int
    busy_seconds: float
    gpu_seconds: float | None
    window_seconds: float
    busy: dict[str, float | None]
    latency: dict[str, float | None]
    cost_per_job: dict[str, float | None] | None
    total_cost: float | None
    window_cost: float | None
    utilization: float | None
    spot_discount: float | None = None
    spot_total_cost: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def jobs_cost(
    jobs: list[JobTime],
    instance_type: str,
    instances: int,
    hourly: float | None,
    currency: str = "",
    gpus: int | None = None,
    spot_discount: float | None = None,
) -> JobsCost:
    """Totals and percentiles of instance time, GPU time and cost for ``jobs`` run on
    ``instances`` instances of ``instance_type`` at ``hourly`` per instance-hour."""
    timed = with_busy_time(jobs, instances)
    busy = [j.busy for j in timed]
    total_busy = sum(busy)
    gpus = gpus if gpus is not None else gpu_count(instance_type)
    window = (max(j.done for j in timed) - min(j.sent for j in timed)) if timed else 0.0
    notes = []
    if hourly is None:
        notes.append(f"price unknown for {instance_type}: give --price or a prices file for costs")
    if gpus is None:
        notes.append(f"GPUs per instance unknown for {instance_type}: GPU-seconds not shown")
    per_job = None if hourly is None else _spread([b / 3600 * hourly for b in busy])
    total = None if hourly is None else total_busy / 3600 * hourly
    return JobsCost(
        instance_type=instance_type,
        instances=instances,
        gpus_per_instance=gpus,
        hourly=hourly,
        currency=currency,
        jobs=len(timed),
        failed=sum(1 for j in timed if not j.ok),
        busy_seconds=round(total_busy, 3),
        gpu_seconds=None if gpus is None else round(total_busy * gpus, 3),
        window_seconds=round(window, 3),
        busy=_spread(busy),
        latency=_spread([j.latency for j in timed]),
        cost_per_job=per_job,
        total_cost=_money(total),
        window_cost=None if hourly is None else _money(window / 3600 * hourly * instances),
        utilization=round(total_busy / (window * instances), 4) if window > 0 and instances > 0 else None,
        spot_discount=spot_discount,
        spot_total_cost=None if total is None or spot_discount is None else _money(total * spot_discount),
        notes=notes,
    )
