"""A plan for bots and reviewers: the versioned JSON form (``plan -o json``) and a Markdown pull
request comment (``plan -o markdown``). Pure functions of a ``Plan``.

Secrets are masked in both: values of env variables and keys whose names look like secrets
(token, secret, password, AccessKey, API key) become ``***``, wherever the same value appears.
The format is documented in docs/json-output.md; a change that removes or renames a field bumps
``PLAN_JSON_FORMAT``, adding a field does not.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .plan import Change, Plan

PLAN_JSON_FORMAT = "eascomfy-plan-json/1"
MASK = "***"
SECRET_NAME = re.compile(r"(?i)(token|secret|passw|access_?key|api_?key|credential)")
_ENV_ITEM = re.compile(r"^(?P<env>.*\.env)\[(?P<i>\d+)\]\.value$")
_CELL_MAX = 60


# -- secrets ---------------------------------------------------------------------------------------
def _gather(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        name = value.get("name")
        if isinstance(name, str) and SECRET_NAME.search(name) and isinstance(value.get("value"), str):
            found.add(value["value"])
        for key, sub in value.items():
            if SECRET_NAME.search(str(key)) and isinstance(sub, (str, int)) and not isinstance(sub, bool):
                found.add(str(sub))
            _gather(sub, found)
    elif isinstance(value, list):
        for sub in value:
            _gather(sub, found)


def _lookup(doc: Any, dotted: str) -> Any:
    node = doc
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", dotted):
        if part.startswith("["):
            index = int(part[1:-1])
            node = node[index] if isinstance(node, list) and index < len(node) else None
        else:
            node = node.get(part) if isinstance(node, dict) else None
    return node


def secret_values(plan: Plan) -> set[str]:
    """The secret-looking values in the plan's rendered config and in its changes."""
    found: set[str] = set()
    _gather(plan.desired, found)
    for change in plan.changes:
        _gather(change.old, found)
        _gather(change.new, found)
        last = change.path.rsplit(".", 1)[-1]
        secret = bool(SECRET_NAME.search(last))
        m = _ENV_ITEM.match(change.path)
        if m:
            item = _lookup(plan.desired, f"{m['env']}[{m['i']}]")
            secret = isinstance(item, dict) and bool(SECRET_NAME.search(str(item.get("name", ""))))
        if secret:
            found |= {str(v) for v in (change.old, change.new) if isinstance(v, (str, int)) and not isinstance(v, bool)}
    return {s for s in found if len(s) >= 4}


def masked(value: Any, secrets: set[str]) -> Any:
    """``value`` (JSON) with every secret string replaced by ``***``."""
    if isinstance(value, dict):
        return {k: masked(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v, secrets) for v in value]
    if isinstance(value, str):
        for secret in sorted(secrets, key=len, reverse=True):
            value = value.replace(secret, MASK)
        return value
    if isinstance(value, int) and not isinstance(value, bool) and str(value) in secrets:
        return MASK
    return value


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


def plan_json(plan: Plan) -> dict[str, Any]:
    """The documented, versioned JSON form of a plan (docs/json-output.md)."""
    secrets = secret_values(plan)
    data = {
        "format": PLAN_JSON_FORMAT,
        **plan.to_dict(),
        "has_changes": plan.has_changes,
        "summary": summary(plan),
        "desired_sha": plan.desired_sha,
        "live_sha": plan.live_sha,
        "live_version": plan.live_version,
    }
    return masked(data, secrets)


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
    secrets = secret_values(plan)
    changes = [Change(c.path, masked(c.old, secrets), masked(c.new, secrets), c.kind) for c in plan.changes]
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
                json.dumps(masked(plan.desired, secrets), indent=2, sort_keys=True, ensure_ascii=False),
                "```", "", "</details>", ""]
    if plan.labels_set or plan.labels_remove:
        labels = [f"`{k}={masked(v, secrets)}`" for k, v in sorted(plan.labels_set.items())]
        labels += [f"~~`{k}`~~ (removed)" for k in plan.labels_remove]
        out += ["Labels: " + ", ".join(labels), ""]
    out.append(f"<!-- {PLAN_JSON_FORMAT} service={plan.service} region={plan.region} action={plan.action} "
               f"desired_sha={plan.desired_sha} -->")
    return "\n".join(out) + "\n"
