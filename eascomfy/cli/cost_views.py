"""Text forms of the cost section of a plan and of ``eascomfy cost`` (docs/cost.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core.cost import JobsCost, PlanCost


def _price(value: float | None, currency: str, per: str = "") -> str:
    if value is None:
        return "price unknown"
    return f"{value:,.2f}{' ' + currency if currency else ''}{per}"


def _signed(value: float | None, currency: str) -> str:
    if value is None:
        return "unknown"
    return f"{value:+,.2f}{' ' + currency if currency else ''}"


def _type_line(row: dict[str, Any], currency: str) -> str:
    parts = [_price(row["hourly"], currency, "/h")]
    if row["spot_discount"] is not None:
        spot = f"spot x{row['spot_discount']:g}"
        parts.append(f"{spot} = {_price(row['spot_hourly'], currency, '/h')}" if row["spot_hourly"] is not None else spot)
    if row["offered"] is not None:
        parts.append(f"stock {row['stock']}" if row["offered"] else "not offered in the region")
    return f"  {row['role']:<9}{row['instance_type']:<28}" + ", ".join(parts)


def plan_cost_text(cost: "PlanCost | None") -> str:
    """The lines under the plan; "" when the change pays for nothing new."""
    if cost is None:
        return ""
    head = f"cost in {cost.region}" + (f" (prices: {cost.prices})" if cost.prices else " (no prices file)") + ":"
    lines = [head, *(_type_line(r, cost.currency) for r in cost.types)]
    lines.append(
        f"  monthly ({cost.hours_per_month:g} h): {cost.instances} instance(s) {_price(cost.monthly, cost.currency)}"
        + (f", live {cost.live_instances} instance(s) {_price(cost.live_monthly, cost.currency)}"
           if cost.live_instances is not None else "")
        + f"; difference {_signed(cost.monthly_difference, cost.currency)}"
    )
    return "\n".join(lines)


def plan_cost_markdown(cost: "PlanCost | None") -> str:
    if cost is None:
        return ""
    rows = ["| | instance type | hourly | spot | stock |", "|---|---|---|---|---|"]
    for r in cost.types:
        spot = "" if r["spot_discount"] is None else f"x{r['spot_discount']:g}"
        rows.append(f"| {r['role']} | `{r['instance_type']}` | {_price(r['hourly'], cost.currency)} | {spot} | "
                    f"{r['stock'] if r['offered'] else 'not offered' if r['offered'] is False else 'unknown'} |")
    rows += ["", f"Monthly difference: **{_signed(cost.monthly_difference, cost.currency)}** "
             f"({cost.instances} instance(s), {cost.hours_per_month:g} h a month)"]
    rows += [f"> **Warning**: {w}" for w in cost.warnings]
    return "\n".join(rows) + "\n"


def _seconds(spread: dict[str, float | None]) -> str:
    keys = ("mean", "p50", "p90", "p99", "max")
    return ", ".join(f"{k} {spread[k]:.1f} s" for k in keys if spread[k] is not None) or "none"


def jobs_cost_text(cost: "JobsCost") -> str:
    c = cost.currency
    lines = [
        f"{cost.jobs} finished job(s) ({cost.failed} failed) on {cost.instances} x {cost.instance_type} "
        f"at {_price(cost.hourly, c, '/h')}",
        f"  instance time per job: {_seconds(cost.busy)}",
        f"  send to result:        {_seconds(cost.latency)}",
        f"  total: {cost.busy_seconds:,.1f} instance-seconds"
        + (f", {cost.gpu_seconds:,.1f} GPU-seconds" if cost.gpu_seconds is not None else "")
        + (f", utilization {cost.utilization:.0%} of {cost.window_seconds:,.1f} s" if cost.utilization is not None else ""),
    ]
    if cost.cost_per_job is not None:
        per = cost.cost_per_job
        lines.append(f"  cost per job: mean {_price(per['mean'], c)}, p50 {_price(per['p50'], c)}, "
                     f"p90 {_price(per['p90'], c)}, max {_price(per['max'], c)}")
        lines.append(f"  cost of the jobs: {_price(cost.total_cost, c)}; of the window at {cost.instances} "
                     f"instance(s): {_price(cost.window_cost, c)}")
    if cost.spot_discount is not None:
        lines.append(f"  on spot (x{cost.spot_discount:g}): {_price(cost.spot_total_cost, c)}")
    lines += [f"  note: {n}" for n in cost.notes]
    return "\n".join(lines)
