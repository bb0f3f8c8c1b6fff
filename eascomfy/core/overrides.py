"""What ``overrides`` may not touch: the service's identity and the fields a dedicated spec field
owns. ``overrides`` is raw EAS service JSON merged last, so ``overrides: {metadata: {name: x}}``
would make deploy create another service and then wait on the spec's name, and
``metadata.instance`` would fight ``resources.instances``. Each such key is refused, naming the
spec field to change instead. Pure.
"""

from __future__ import annotations

from typing import Any

from . import wire
from .validate import Violation
from .yamlio import PathT

_IDENTITY = "the service's identity is the spec's {field}; change {field} instead"
_OWNED = "set by the spec's {field}; change {field} instead"

# EAS service JSON path -> (the spec field that owns it, message template).
OWNED: dict[tuple[str, ...], tuple[str, str]] = {
    ("name",): ("name", _IDENTITY),
    ("metadata", "name"): ("name", _IDENTITY),
    ("metadata", "region"): ("region", _IDENTITY),
    ("metadata", "workspace_id"): ("workspace_id", _OWNED),
    ("metadata", "instance"): ("resources.instances", _OWNED),
    ("metadata", "resource"): ("resources.resource_group", _OWNED),
    ("metadata", "cpu"): ("resources.cpu", _OWNED),
    ("metadata", "memory"): ("resources.memory", _OWNED),
    ("metadata", "gpu"): ("resources.gpu", _OWNED),
    ("metadata", "resource_burstable"): ("resources.burstable", _OWNED),
    ("cloud", "computing", "instances"): ("resources.instance_type and fallback_instance_types", _OWNED),
    ("storage",): ("storage", _OWNED),
    **{(wire.QUEUE_KEY, eas): (f"queue.{key}", _OWNED) for key, eas in wire.QUEUE_FIELDS.items()},
}
# Keys of the ComfyUI container (containers[0]) that the spec renders. ``overrides.containers``
# replaces the whole list (lists replace), so it may repeat them, but only with the same value:
# a different image would pin the image against image.version and update-image.
CONTAINER_OWNED = {
    "image": "image.version or image.uri",
    "script": "extra_args, wheels and storage.mount_path",
    "env": "env",
    wire.PIP_REQUIREMENTS[0]: "pip",
}


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path)


def _same(key: str, a: Any, b: Any) -> bool:
    """Equal as EAS reads them: env is a set of name/value pairs, so its order does not matter."""
    if key == "env" and isinstance(a, list) and isinstance(b, list):
        def pairs(items: list[Any]) -> Any:
            return sorted((str(e.get("name")), str(e.get("value"))) if isinstance(e, dict) else ("", repr(e)) for e in items)
        return len(a) == len(b) and pairs(a) == pairs(b)
    return bool(a == b)


def override_problems(overrides: dict[str, Any], container: dict[str, Any],
                      identity: dict[str, Any] | None = None) -> list[Violation]:
    """Problems with ``overrides`` (the spec's), given the ComfyUI container the spec renders and
    the spec's identity (``{"name": ..., "region": ...}``): an identity key that only repeats the
    spec's value (as ``eascomfy import`` may write) renames nothing and passes."""
    problems: list[Violation] = []
    identity = identity or {}

    def walk(node: dict[str, Any], at: tuple[str, ...]) -> None:
        for key, value in node.items():
            path = at + (key,)
            where: PathT = ("overrides", *path)
            if path in OWNED:
                field, template = OWNED[path]
                if template is _IDENTITY and field in identity and value == identity[field]:
                    continue  # repeats the spec's identity: renames nothing
                if path == ("name",) and value is None:
                    continue  # drops the top-level copy only; metadata.name still names the service
                problems.append(Violation(where, template.format(field=field)))
            elif value is None:
                for owned, (field, _) in OWNED.items():
                    if owned[: len(path)] == path:
                        problems.append(Violation(where, f"null would delete {_dotted(owned)}, set by the spec's {field}"))
                        break
            elif isinstance(value, dict):
                walk(value, path)

    walk(overrides, ())
    items = overrides.get("containers")
    if isinstance(items, list) and items and isinstance(items[0], dict):
        for key, field in CONTAINER_OWNED.items():
            if key in items[0] and not _same(key, items[0][key], container.get(key)):
                problems.append(
                    Violation(
                        ("overrides", "containers", 0, key),
                        f"set by the spec's {field}; change {field} instead",
                        "overrides.containers may repeat the rendered value (see `eascomfy render`), not change it",
                    )
                )
    return problems
