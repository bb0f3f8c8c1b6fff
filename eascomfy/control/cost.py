"""Cost and stock: the lookups behind ``plan``'s cost section and ``eascomfy cost``.

The arithmetic is ``core.cost``; this module reads the user's prices file, the journal, and asks
EAS (``adapters.eas_capacity``) for stock and spot discounts, only when an answer is needed:
a plan whose change pays for nothing new (same instance types, same count) makes no call, and a
``Capacity`` object asks DescribeMachineSpec at most once per region for a whole command, however
many services it plans.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..adapters.eas import EasClient
from ..adapters.eas_capacity import EasCapacity
from ..core.cost import (JobsCost, JobTime, PlanCost, Prices, costs_money, journal_jobs, jobs_cost, parse_prices,
                         placement, plan_cost)
from ..core.plan import Plan
from ..core.spec import Spec
from ..core.yamlio import not_regular, read_text
from ..errors import CloudError, UsageError


class Capacity:
    """What DescribeMachineSpec answered, per region, for one command (a cache that lives as long
    as the command: stock changes, so it is never kept on disk)."""

    def __init__(self) -> None:
        self._specs: dict[str, dict[str, dict[str, Any]] | CloudError] = {}

    def specs(self, client: EasClient) -> dict[str, dict[str, Any]]:
        """The region's ``InstanceMetas`` by type; a failed read raises (once: it is kept too)."""
        if client.region not in self._specs:
            try:
                self._specs[client.region] = EasCapacity(client).machine_specs()
            except CloudError as exc:
                self._specs[client.region] = exc
        found = self._specs[client.region]
        if isinstance(found, CloudError):
            raise found
        return found


def load_prices(path: Path | None) -> Prices:
    """The user's prices file (``core.cost.parse_prices``); no file, no prices."""
    if path is None:
        return Prices()
    return parse_prices(read_text(path, str(path)), str(path))


def cost_of_plan(
    plan: Plan, live_config: dict[str, Any] | None, client: EasClient, prices: Prices, capacity: Capacity
) -> PlanCost | None:
    """The cost section of ``plan``, or None (no call made) when the change pays for nothing new."""
    if not costs_money(plan.desired, live_config):
        return None
    try:
        metas: dict[str, dict[str, Any]] | None = capacity.specs(client)
        why = ""
    except CloudError as exc:  # the plan itself stands; only the stock is unknown
        metas, why = None, f"DescribeMachineSpec failed: {exc.code or 'error'}: {exc.message}"
    return plan_cost(plan.region, plan.desired, live_config, metas, prices, why)


def current_placement(spec: Spec, client: EasClient) -> tuple[str, int]:
    """(instance type, instance count) the live service runs on; the spec's when not deployed."""
    live = client.describe(spec.name)
    found = placement(live.config) if live else None
    if found and found.types:
        return found.types[0], max(found.instances, 1)
    res = spec.data["resources"]
    if not res.get("instance_type"):
        raise UsageError("the service runs on a dedicated resource group: give the type to price",
                         param="instance_type")
    return str(res["instance_type"]), max(int(res["instances"]), 1)


def read_journal(path: Path) -> bytes:
    """The journal's bytes; a FIFO or a device is refused without opening it (it would block or
    never end)."""
    what = not_regular(path)
    if what is not None:
        raise UsageError(f"{path}: is {what}, not a journal file", param="journal")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such journal", "give the file `eascomfy submit --journal` wrote",
                         param="journal") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a folder, not a journal file", param="journal") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read ({exc.strerror or exc})", param="journal") from None


def latest_spot_discount(client: EasClient, instance_type: str) -> float | None:
    """The newest spot discount (1-hour protection) DescribeSpotDiscountHistory lists for the type,
    the lowest across zones at that time; None when the type has no spot offer."""
    history = EasCapacity(client).spot_history(instance_type, protect=True)
    found: list[tuple[str, float]] = []
    for entry in history:
        try:
            found.append((str(entry.get("Timestamp") or ""), float(entry.get("SpotDiscount"))))
        except (TypeError, ValueError):
            continue
    if not found:
        return None
    newest = max(stamp for stamp, _ in found)
    return min(value for stamp, value in found if stamp == newest)


def read_jobs(path: Path) -> list[JobTime]:
    """The finished jobs of a journal file (``core.cost.journal_jobs``: a bad line is refused with
    its file:line)."""
    return journal_jobs(read_journal(path), str(path))


def check_instances(instances: int | None) -> None:
    """A count of workers to price: 1 or more (None: not given)."""
    if instances is not None and instances < 1:
        raise UsageError(f"instances must be 1 or more, got {instances}", param="instances")


def cost_of_jobs(
    jobs: list[JobTime],
    instance_type: str,
    instances: int,
    prices: Prices,
    spot_discount: float | None = None,
) -> JobsCost:
    """``eascomfy cost``: GPU time and cost of the finished jobs on ``instances`` x ``instance_type``."""
    check_instances(instances)
    return jobs_cost(jobs, instance_type, instances, prices.of(instance_type), prices.currency,
                     spot_discount=spot_discount)
