"""Editions and templates are data: ``editions/<name>.yaml`` and ``templates/service.yaml``.

The built-in ones ship inside the package (``eascomfy/_data/``; in a source checkout, the
repository's top-level folders). A user's project may add or override them with folders of the
same names beside its ``eascomfy.yaml``. Adding an edition is adding a file.
"""

from __future__ import annotations

import copy

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Location, SpecError
from .validate import Validator, did_you_mean, load_schema, raise_first
from .yamlio import load_yaml, read_text

_PKG = Path(__file__).resolve().parent.parent


def builtin_dir(kind: str) -> Path:
    """Folder of the built-in ``editions`` or ``templates``: in the wheel, or the source tree."""
    installed = _PKG / "_data" / kind
    return installed if installed.is_dir() else _PKG.parent / kind


def search_dirs(kind: str, project_dir: Path | None) -> list[Path]:
    """Where to look, most specific first: the project's folder, then the built-in one."""
    dirs = [project_dir / kind] if project_dir is not None else []
    return [d for d in dirs if d.is_dir()] + [builtin_dir(kind)]


@dataclass(frozen=True)
class Rule:
    field: str
    present: bool | None = None
    above: float | None = None
    error: str | None = None
    warning: str | None = None


@dataclass(frozen=True)
class Edition:
    name: str
    title: str
    description: str
    image_suffix: str | None
    capabilities: dict[str, bool]
    regions: tuple[str, ...]
    defaults: dict[str, Any]
    service: dict[str, Any]
    rules: tuple[Rule, ...] = ()
    console: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def can(self, capability: str) -> bool:
        return bool(self.capabilities.get(capability))


def _parse_edition(path: Path) -> Edition:
    data, positions = load_yaml(read_text(path), str(path))
    if not isinstance(data, dict):
        raise SpecError("expected an edition definition (a mapping)", location=Location(str(path)))
    raise_first(Validator(load_schema("edition.schema.json"), positions.plain).problems(data), positions, str(path))
    if data["name"] != path.stem:
        raise SpecError(
            f"edition name {data['name']!r} differs from its file name",
            location=positions.location(("name",)),
            path="name",
            hint=f"name it {path.stem!r} or rename the file",
        )
    rules = []
    for i, raw in enumerate(data.get("rules") or []):
        rule = Rule(**raw)
        if (rule.error is None) == (rule.warning is None) or (rule.present is None) == (rule.above is None):
            raise SpecError(
                "a rule needs exactly one of error/warning and one of present/above",
                location=positions.location(("rules", i)),
                path=f"rules[{i}]",
            )
        rules.append(rule)
    # Edition defaults are a partial spec: check them like an overlay, so a typo fails here.
    spec_validator = Validator(load_schema("spec.schema.json"), positions.under(("defaults",)).plain, overlay=True)
    raise_first(spec_validator.problems(data.get("defaults") or {}), positions.under(("defaults",)), str(path))
    return Edition(
        name=data["name"],
        title=data["title"],
        description=" ".join(data["description"].split()),
        image_suffix=data["image_suffix"],
        capabilities=data["capabilities"],
        regions=tuple(data.get("regions") or ()),
        defaults=data.get("defaults") or {},
        service=data["service"],
        rules=tuple(rules),
        console=data.get("console") or {},
        source=str(path),
    )


@functools.lru_cache(maxsize=None)
def _load_cached(path: Path, mtime_ns: int) -> Edition:
    return _parse_edition(path)


def edition_names(project_dir: Path | None = None) -> list[str]:
    names: set[str] = set()
    for d in search_dirs("editions", project_dir):
        names.update(p.stem for p in d.glob("*.yaml"))
    return sorted(names)


def load_edition(name: str, project_dir: Path | None = None) -> Edition:
    """The edition called ``name``; ``KeyError`` (with a did-you-mean) if there is none."""
    for d in search_dirs("editions", project_dir):
        path = d / f"{name}.yaml"
        try:
            if path.is_file():
                return _load_cached(path, path.stat().st_mtime_ns)
        except (OSError, ValueError):  # a name no file can have (too long, a NUL): unknown
            continue
    known = edition_names(project_dir)
    hint = did_you_mean(name, known)
    raise UnknownEdition(name, known, hint)


def all_editions(project_dir: Path | None = None) -> list[Edition]:
    order = {"standard": 0, "api": 1, "cluster": 2, "serverless": 3}
    editions = [load_edition(n, project_dir) for n in edition_names(project_dir)]
    return sorted(editions, key=lambda e: (order.get(e.name, 99), e.name))


class UnknownEdition(KeyError):
    def __init__(self, name: str, known: list[str], hint: str | None) -> None:
        super().__init__(name)
        self.name = name
        self.known = known
        self.hint = hint

    def message(self) -> str:
        return f"unknown edition {self.name!r}; expected one of {', '.join(self.known)}"


# Parsed templates by (path, mtime, size): a fleet renders the same template for every service,
# and parsing it was the largest part of planning one (bench/fleet.py). A changed file is re-read.
_TEMPLATES: dict[tuple[str, int, int], dict[str, Any]] = {}


def load_template(project_dir: Path | None = None, name: str = "service.yaml") -> dict[str, Any]:
    for d in search_dirs("templates", project_dir):
        path = d / name
        if path.is_file():
            info = path.stat()
            key = (str(path), info.st_mtime_ns, info.st_size)
            if key not in _TEMPLATES:
                data, _ = load_yaml(read_text(path), str(path))
                if not isinstance(data, dict):
                    raise SpecError("expected an EAS service document (a mapping)", location=Location(str(path)))
                _TEMPLATES[key] = data
            return copy.deepcopy(_TEMPLATES[key])  # the caller's to change
    raise SpecError(f"template {name} not found", hint="reinstall eascomfy")
