"""A plan for bots and reviewers: the versioned JSON form (``plan -o json``) and a Markdown pull
request comment (``plan -o markdown``). Pure functions of a ``Plan``.

Secrets are masked in both, by the plan itself (``Plan.shown_changes``/``shown_labels`` and
``core.secrets``: env values whose names look secret, values marked secret, ``${env:...}``); the
fingerprints of a config that holds secrets are masked too (a plain sha256 of a short secret is a
guessable hash of it).
The format is documented in docs/json-output.md; a change that removes or renames a field bumps
``PLAN_JSON_FORMAT``, adding a field does not.
"""

from __future__ import annotations

import json
from typing import Any

from .cost import PlanCost
from .plan import Change, Plan
from .secrets import MASK, mask_config

PLAN_JSON_FORMAT = "eascomfy-plan-json/1"
_CELL_MAX = 60


# -- JSON ------------------------------------------------------------------------------------------
def summary(plan: Plan) -> dict[str, int]:
    kinds = [c.kind for c in plan.changes]
    return {
        "add": kinds.count("add"),
        "change": kinds.count("change"),
        "remove": kinds.count("remove"),
        "labels_set": len(plan.labels_set),
        "labels_remove": len(plan.labels_remove),
    }


def plan_json(plan: Plan, storage: dict[str, Any] | None = None, cost: PlanCost | None = None) -> dict[str, Any]:
    """The documented, versioned JSON form of a plan (docs/json-output.md); ``storage``: the
    bucket's part (``storage.lock.StoragePlan.to_dict``), null when deploy does not touch it;
    ``cost``: the cost section (``core.cost``), null when the change pays for nothing new or it
    was not asked."""
    hide = plan.has_secrets
    return {
        "storage": storage,
        "format": PLAN_JSON_FORMAT,
        **plan.to_dict(),
        "has_changes": plan.has_changes,
        "summary": summary(plan),
        "desired_sha": MASK if hide else plan.desired_sha,
        "live_sha": MASK if hide and plan.live_sha else plan.live_sha,
        "live_version": plan.live_version,
        "cost": cost.to_dict() if cost is not None else None,
    }


# -- Markdown --------------------------------------------------------------------------------------
def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = _show(value)
    if len(text) > _CELL_MAX:
        text = text[: _CELL_MAX - 1] + "…"
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`"


def _diff_lines(change: Change) -> list[str]:
    if change.kind == "add":
        return [f"+ {change.path}: {_show(change.new)}"]
    if change.kind == "remove":
        return [f"- {change.path}: {_show(change.old)}"]
    return [f"- {change.path}: {_show(change.old)}", f"+ {change.path}: {_show(change.new)}"]


def _headline(plan: Plan) -> str:
    s = summary(plan)
    if plan.action == "create":
        return f"**create** a new service ({len(plan.labels_set)} label(s))"
    if plan.action == "noop":
        return "**no changes**: the live service is what the spec says"
    if plan.action == "labels":
        return f"**labels only**: {s['labels_set']} to set, {s['labels_remove']} to remove (the service config is unchanged)"
    return (
        f"**update**: {s['add']} to add, {s['change']} to change, {s['remove']} to remove "
        f"(UpdateType=replace; labels: {s['labels_set']} to set, {s['labels_remove']} to remove)"
    )


def plan_markdown(plan: Plan) -> str:
    """The plan as a pull request comment: summary, a table of changes, a diff block. Secrets masked."""
    changes = plan.shown_changes()
    out = [
        f"### eascomfy plan: `{plan.service}` in `{plan.region}`",
        "",
        _headline(plan),
        "",
    ]
    if plan.drift:
        out += ["> **Warning**: the live service was changed outside eascomfy (e.g. in the console) since the last deploy.", ""]
    if not plan.managed and plan.action != "create":
        out += ["> **Note**: the live service is not marked as managed by eascomfy; deploying takes it over.", ""]
    if plan.action != "create" and changes:
        out += ["| | field | live | planned |", "|---|---|---|---|"]
        sign = {"add": "+", "remove": "-", "change": "~"}
        out += [f"| {sign[c.kind]} | `{c.path}` | {_cell(c.old)} | {_cell(c.new)} |" for c in changes]
        out += ["", "<details><summary>diff</summary>", "", "```diff"]
        out += [line for c in changes for line in _diff_lines(c)]
        out += ["```", "", "</details>", ""]
    if plan.action == "create":
        out += ["<details><summary>service config</summary>", "", "```json",
                json.dumps(mask_config(plan.desired, plan.secrets), indent=2, sort_keys=True, ensure_ascii=False),
                "```", "", "</details>", ""]
    if plan.labels_set or plan.labels_remove:
        labels = [f"`{k}={v}`" for k, v in sorted(plan.shown_labels().items())]
        labels += [f"~~`{k}`~~ (removed)" for k in plan.labels_remove]
        out += ["Labels: " + ", ".join(labels), ""]
    out.append(f"<!-- {PLAN_JSON_FORMAT} service={plan.service} region={plan.region} action={plan.action} "
               f"desired_sha={MASK if plan.has_secrets else plan.desired_sha} -->")
    return "\n".join(out) + "\n"
