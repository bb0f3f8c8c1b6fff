"""Generate docs/spec-reference.md from the shipped schema, so the reference cannot drift.

``python -m eascomfy.core.docs > docs/spec-reference.md``; tests/test_docs.py checks it is current.
"""

from __future__ import annotations

import json
from typing import Any

from .validate import load_schema

_HEADER = """\
# eascomfy.yaml reference

Generated from `eascomfy/schemas/spec.schema.json` (`eascomfy schema` prints it) by
`python -m eascomfy.core.docs`; do not edit by hand.

Precedence, lowest first: edition defaults (`editions/<name>.yaml` `defaults:`) < schema
defaults for unset fields < `eascomfy.yaml` < the environment overlay (`--env NAME`:
`environments.NAME` in the file, or `eascomfy.NAME.yaml` beside it; defining both is an error) <
command-line flags (`--edition`). Overlays and `overrides` merge the same way: mappings merge key
by key, lists replace, `null` deletes.

| field | type | default | becomes in the EAS service JSON | description |
|---|---|---|---|---|
"""


def _type(schema: dict[str, Any]) -> str:
    t = schema.get("type", "any")
    if isinstance(t, list):
        t = " or ".join(t)
    if t == "array" and "items" in schema:
        t = f"list of {schema['items'].get('type', 'any')}"
    if "enum" in schema:
        t += " (" + " / ".join(str(v) for v in schema["enum"]) + ")"
    return t


def _rows(schema: dict[str, Any], prefix: str = "", root: dict[str, Any] | None = None) -> list[str]:
    root = schema if root is None else root
    rows = []
    for name, sub in schema.get("properties", {}).items():
        if "$ref" in sub:  # a shared definition (#/$defs/...), under this field's own words
            target: Any = root
            for part in sub["$ref"][2:].split("/"):
                target = target[part]
            sub = {**target, **{k: v for k, v in sub.items() if k != "$ref"}}
        path = f"{prefix}{name}"
        default = json.dumps(sub["default"]) if "default" in sub else ""
        required = " (required)" if name in schema.get("required", []) else ""
        desc = sub.get("description", "").replace("|", "\\|")
        eas = sub.get("x-eas", "").replace("|", "\\|")
        rows.append(f"| `{path}`{required} | {_type(sub)} | {default} | {eas} | {desc} |")
        rows += _rows(sub, path + ".", root)
    return rows


def spec_reference() -> str:
    schema = load_schema("spec.schema.json")
    return _HEADER + "\n".join(_rows(schema)) + "\n"


if __name__ == "__main__":
    print(spec_reference(), end="")
