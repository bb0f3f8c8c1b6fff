"""How results look to people: the text forms of plans, deploy results, status, versions and
events (the JSON forms are the objects' ``to_dict``). Pure functions of their inputs; nothing here
prints."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..adapters.eas import Event, LiveService
    from ..adapters.eas_ops import Instance
    from ..control.deploy import DeployResult
    from ..control.diagnose import Report
    from ..control.lifecycle import Versions
    from ..control.logs import LogLine
    from ..core.plan import Plan


def plan_text(plan: "Plan") -> str:
    return "\n".join(plan.lines())


def deploy_text(result: "DeployResult") -> str:
    plan = result.plan
    if result.in_progress and plan.action == "noop":
        if result.ready:
            return f"{plan.service}: no changes; ready in {result.seconds:.1f} s (waited for the change in progress)"
        return f"{plan.service}: no changes, but it is {result.in_progress} (a change is still in progress): not ready yet"
    if not result.applied:
        return "dry run: nothing changed" if plan.has_changes else f"{plan.service}: no changes"
    if result.ready:
        return f"{plan.service}: {plan.action} done, ready in {result.seconds:.1f} s"
    return f"{plan.service}: {plan.action} sent (not waiting)" if plan.action != "labels" else f"{plan.service}: labels updated"


def events_lines(events: "list[Event]") -> list[str]:
    return [f"  {e.line()}" for e in events]


def _vpc_host(live: "LiveService") -> bool:
    """The API doc's intranet form, ``http://<uid>.vpc.<region>.pai-eas.aliyuncs.com/...``."""
    host = live.intranet_endpoint.split("://", 1)[-1].split("/", 1)[0]
    return ".vpc." in f".{host}."


def status_text(live: "LiveService", region: str, events: "list[Event]", instances: "list[Instance]" = (),
                report: "Report | None" = None) -> str:
    lines = [
        f"service {live.name} ({region}): {live.status}, {live.running}/{live.total} instances running",
        f"image: {live.image}",
        f"version: {live.current_version} (latest {live.latest_version})",
        f"internet endpoint: {live.internet_endpoint}",
        f"intranet endpoint: {live.intranet_endpoint}" + (" (from inside the VPC only)" if _vpc_host(live) else ""),
    ]
    if live.reason or live.message:
        lines.append(f"reason: {live.reason}: {live.message}")
    if instances:
        lines += ["instances:", *instance_lines(instances)]
    if report is not None:
        lines += ["last failure (an instance restarted):", *(f"  {line}" for line in report.lines())]
    if events:
        lines += ["last events:", *events_lines(events)]
    return "\n".join(lines)


def instance_lines(instances: "list[Instance]") -> list[str]:
    """One row per instance: name, state (and reason), restarts, start time, last reason."""
    rows = []
    for i in instances:
        state = i.status if i.reason in ("", "RUNNING") or i.reason == i.status else f"{i.status} ({i.reason})"
        if i.status == "Running" and not i.ready:
            state += ", not ready"
        row = f"  {i.name}  {state}  restarts {i.restarts}  started {i.started or '-'}"
        rows.append(row + (f"  last: {i.last_reason}" if i.last_reason else ""))
    return rows


UNKNOWN_IMAGE = "(image not reported: EAS returns a version's config for custom images only)"


def versions_text(versions: "Versions") -> str:
    lines = [
        f"{'*' if v.version == versions.current else ' '} {v.version:>3}  {v.build_time}  {v.image or UNKNOWN_IMAGE}"
        + ("" if v.runnable else "  (not runnable)")
        for v in versions.found
    ]
    return "\n".join(lines) or "no versions"


def lifecycle_text(name: str, action: str, live: "LiveService | None") -> str:
    state = live.status if live else "requested"
    return f"{name}: {action} {'done' if live else 'requested'} ({state})"


def log_text(lines: "list[LogLine]", prefix: bool) -> str:
    """Log lines as they were written; ``[instance]`` first when several instances speak."""
    return "\n".join(f"[{l.instance}] {l.text}" if prefix else l.text for l in lines)
