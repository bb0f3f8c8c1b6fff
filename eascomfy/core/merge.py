"""Deep merge, the one rule used everywhere layers meet (edition defaults, spec, overlays,
``overrides``): mappings merge key by key, lists and scalars replace, and ``None`` deletes the key.
"""

from __future__ import annotations

import copy
from typing import Any


def deep_merge(base: Any, top: Any) -> Any:
    """Return ``base`` with ``top`` merged onto it; neither input is modified."""
    if not isinstance(base, dict) or not isinstance(top, dict):
        return copy.deepcopy(top)
    out = copy.deepcopy(base)
    for key, value in top.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def merge_all(*layers: Any) -> Any:
    result: Any = {}
    for layer in layers:
        if layer is not None:
            result = deep_merge(result, layer)
    return result


def apply_defaults(data: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Fill the schema's ``default`` values for properties of the mappings that are present."""
    out = dict(data)
    for name, sub in schema.get("properties", {}).items():
        if name not in out and "default" in sub:
            out[name] = copy.deepcopy(sub["default"])
        if isinstance(out.get(name), dict) and "properties" in sub:
            out[name] = apply_defaults(out[name], sub)
    return out


def canonical(value: Any) -> Any:
    """Keys sorted recursively, so rendered JSON is byte-stable whatever the merge order."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value
