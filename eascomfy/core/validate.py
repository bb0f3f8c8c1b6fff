"""Validate data against the shipped JSON Schemas, with field paths, lines and typo hints.

The schemas are standard JSON Schema (editors and CI can use them with any validator; the test
suite checks that ``jsonschema`` agrees with this module on every spec in the corpus). eascomfy
interprets the keyword subset its schemas use itself, because that keeps `render` cold starts
fast (the ``jsonschema`` import alone costs more than the whole render) and lets every error say
what was expected, where, and "did you mean".
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Iterable

from ..errors import Location, SpecError
from .yamlio import PathT, Positions, format_path

_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


@dataclass(frozen=True)
class Violation:
    """A spec value that breaks a rule: where (field path), what was expected, a hint. (A workflow's
    problems are ``core.workflow.Problem``: they carry node ids and titles, not field paths.)"""

    path: PathT
    message: str
    hint: str | None = None


@functools.lru_cache(maxsize=None)
def load_schema(name: str) -> dict[str, Any]:
    """A schema shipped in ``eascomfy/schemas/`` by file name."""
    text = resources.files("eascomfy").joinpath("schemas", name).read_text(encoding="utf-8")
    return json.loads(text)


@functools.lru_cache(maxsize=None)
def _pattern(pattern: str) -> re.Pattern[str]:
    """A schema pattern as JSON Schema (ECMA-262) reads it: a final ``$`` is the end of the text,
    where Python's ``$`` also matches before a trailing newline (``"comfy\\n"`` would pass)."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    choices = list(choices)
    # a bare name of a bracketed one (gpu -> gpu[util]) before a merely similar word (cpu)
    match = [c for c in choices if c.startswith(f"{word}[")][:1] or difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean {match[0]!r}?" if match else None


def _is_type(value: Any, t: str) -> bool:
    if t == "object":
        return isinstance(value, dict)
    if t == "array":
        return isinstance(value, list)
    if t == "string":
        return isinstance(value, str)
    if t == "boolean":
        return isinstance(value, bool)
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "null":
        return value is None
    raise ValueError(f"schema uses unsupported type {t!r}")


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return repr(shown)
    return repr(value)


class Validator:
    """Walks one schema over data, collecting ``Violation``s (all of them, in document order)."""

    def __init__(
        self,
        schema: dict[str, Any],
        plain: dict[PathT, str] | None = None,
        *,
        required: bool = True,
        overlay: bool = False,
    ):
        """``required=False`` relaxes the top level's required fields (a base before overlays);
        ``overlay=True`` also does, and lets any field be null (an overlay's null deletes it)."""
        self.root = schema
        self.plain = plain or {}
        self.required = required and not overlay
        self.overlay = overlay

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        if ref is None:
            return schema
        if not ref.startswith("#/"):
            raise ValueError(f"only local $ref is supported, not {ref!r}")
        node: Any = self.root
        for part in ref[2:].split("/"):
            node = node[part]
        return node

    def problems(self, value: Any, schema: dict[str, Any] | None = None, path: PathT = ()) -> list[Violation]:
        out: list[Violation] = []
        self._top = path  # `required=False` relaxes the required fields of this level only
        self._check(value, self.root if schema is None else schema, path, out)
        return out

    def _collect(self, value: Any, schema: dict[str, Any], path: PathT) -> list[Violation]:
        out: list[Violation] = []
        self._check(value, schema, path, out)
        return out

    def _check(self, value: Any, schema: dict[str, Any], path: PathT, out: list[Violation]) -> None:
        schema = self._resolve(schema)
        types = schema.get("type")
        if types is not None:
            types_l = [types] if isinstance(types, str) else list(types)
            if not any(_is_type(value, t) for t in types_l):
                expected = " or ".join(_TYPE_NAMES[t] for t in types_l)
                hint = None
                if "string" in types_l and path in self.plain:
                    hint = f'quote it to keep it text: "{self.plain[path]}"'
                out.append(Violation(path, f"expected {expected}, got {_describe(value)}", hint))
                return
        if "const" in schema and value != schema["const"]:
            out.append(Violation(path, f"expected {schema['const']!r}, got {_describe(value)}"))
        if "enum" in schema and value not in schema["enum"]:
            allowed = ", ".join(str(v) for v in schema["enum"])
            hint = did_you_mean(value, [str(v) for v in schema["enum"]]) if isinstance(value, str) else None
            out.append(Violation(path, f"expected one of {allowed}, got {_describe(value)}", hint))
        if isinstance(value, str):
            self._check_string(value, schema, path, out)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            self._check_number(value, schema, path, out)
        elif isinstance(value, list):
            self._check_array(value, schema, path, out)
        elif isinstance(value, dict):
            self._check_object(value, schema, path, out)
        if "oneOf" in schema and not self._choice_left_open(schema["oneOf"], path):
            passing = [s for s in schema["oneOf"] if not self._collect(value, s, path)]
            if len(passing) != 1:
                out.append(Violation(path, _one_of_message(schema["oneOf"], len(passing))))

    def _choice_left_open(self, branches: list[dict[str, Any]], path: PathT) -> bool:
        """A partial document (a base before its overlay, an overlay) may leave a choice between
        required fields (region or regions) to the other part, as it may leave a required field."""
        return not self.required and path == self._top and bool(_required_names(branches))

    def _check_string(self, value: str, schema: dict[str, Any], path: PathT, out: list[Violation]) -> None:
        if "minLength" in schema and len(value) < schema["minLength"]:
            out.append(Violation(path, f"expected at least {schema['minLength']} characters, got {len(value)}"))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            out.append(Violation(path, f"expected at most {schema['maxLength']} characters, got {len(value)}"))
        pattern = schema.get("pattern")
        if pattern and not _pattern(pattern).search(value):
            what = schema.get("x-expected", f"text matching {pattern}")
            out.append(Violation(path, f"{_describe(value)} is not valid: expected {what}"))

    def _check_number(self, value: float, schema: dict[str, Any], path: PathT, out: list[Violation]) -> None:
        if "minimum" in schema and value < schema["minimum"]:
            out.append(Violation(path, f"expected a value >= {schema['minimum']}, got {value}"))
        if "maximum" in schema and value > schema["maximum"]:
            out.append(Violation(path, f"expected a value <= {schema['maximum']}, got {value}"))
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            out.append(Violation(path, f"expected a value > {schema['exclusiveMinimum']}, got {value}"))

    def _check_array(self, value: list[Any], schema: dict[str, Any], path: PathT, out: list[Violation]) -> None:
        if "minItems" in schema and len(value) < schema["minItems"]:
            out.append(Violation(path, f"expected at least {schema['minItems']} items, got {len(value)}"))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append(Violation(path, f"expected at most {schema['maxItems']} items, got {len(value)}"))
        items = schema.get("items")
        if items is not None:
            for i, item in enumerate(value):
                self._check(item, items, path + (i,), out)
        if schema.get("uniqueItems"):
            seen: list[Any] = []
            for i, item in enumerate(value):
                if item in seen:
                    out.append(Violation(path + (i,), f"{_describe(item)} is listed twice"))
                seen.append(item)

    def _check_object(self, value: dict[str, Any], schema: dict[str, Any], path: PathT, out: list[Violation]) -> None:
        props: dict[str, Any] = schema.get("properties", {})
        if self.required or path != self._top:
            for name in schema.get("required", []):
                if name not in value:
                    out.append(Violation(path, f"missing required field {name!r}"))
        names = schema.get("propertyNames")
        if names is not None:
            for key in value:
                self._check(key, names, path + (key,), out)
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if item is None and self.overlay:
                continue
            if key in props:
                self._check(item, props[key], path + (key,), out)
            elif extra is False:
                hint = did_you_mean(key, props)
                allowed = ", ".join(props)
                out.append(Violation(path + (key,), f"unknown field {key!r}; expected one of: {allowed}", hint))
            elif isinstance(extra, dict):
                self._check(item, extra, path + (key,), out)


def _required_names(branches: list[dict[str, Any]]) -> list[str]:
    """The field names of a ``oneOf`` whose branches each only require one field ([] otherwise)."""
    names = [b["required"][0] for b in branches if list(b) == ["required"] and len(b["required"]) == 1]
    return names if len(names) == len(branches) else []


def field_problem(value: Any, *path: str) -> str | None:
    """What is wrong with ``value`` as the spec field at ``path`` (``"image", "version"``;
    ``"wheels", "items"`` for a list's items), by the spec schema's own rule, or None: a value
    from the command line is held to exactly what the spec file would be held to."""
    schema = load_schema("spec.schema.json")
    rule = schema
    for key in path:
        rule = rule["items"] if key == "items" else rule["properties"][key]
    problems = Validator(schema).problems(value, rule)
    return problems[0].message if problems else None


def _one_of_message(branches: list[dict[str, Any]], passing: int) -> str:
    names = _required_names(branches)
    if names and passing == 0:  # the first is the usual one (region), the others the alternatives
        return f"missing required field {names[0]!r} (or {' or '.join(repr(n) for n in names[1:])})"
    if names:
        choice = " or ".join(repr(n) for n in names)
        return f"set exactly one of {choice}" + (", not both" if passing > 1 else "")
    return "matches none of the allowed forms" if passing == 0 else "is ambiguous between allowed forms"


def raise_first(problems: list[Violation], positions: Positions, file: str | None = None) -> None:
    """Raise a ``SpecError`` for the first problem in document order, carrying the others."""
    if not problems:
        return
    errors = [
        SpecError(p.message, location=_location(positions, p.path, file), path=format_path(p.path), hint=p.hint)
        for p in problems
    ]
    errors.sort(key=lambda e: (e.location.file or "", e.location.line or 0))
    first = errors[0]
    first.others = errors[1:]
    raise first


def _location(positions: Positions, path: PathT, file: str | None) -> Location:
    loc = positions.location(path)
    return Location(file) if loc.file is None and file is not None else loc
