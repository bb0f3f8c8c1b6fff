"""The workflows to send: one with its overrides (``run``, ``check``), or the jobs of one submit,
``count`` copies or one job per entry of a matrix (a JSON or YAML list of override sets).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from ..core.workflow import Override, Workflow, apply_overrides, load_workflow
from ..core.yamlio import not_regular
from ..errors import UsageError


def load_with_overrides(path: Path, sets: Iterable[str]) -> Workflow:
    """The workflow file with each ``NODE.inputs.FIELD=VALUE`` of ``sets`` applied."""
    return apply_overrides(load_workflow(path), [Override.parse(s) for s in sets])


def load_jobs(workflow: Workflow, sets: Iterable[str], count: int, matrix: list[Any] | None) -> list[tuple[Workflow, list[str]]]:
    """The workflows to send, with the override texts of each: ``sets`` apply to all, then each
    matrix entry adds its own (one job per entry), else ``count`` copies."""
    base_overrides = [Override.parse(s) for s in sets]
    base = apply_overrides(workflow, base_overrides)
    if matrix is None:
        if count < 1:
            raise UsageError("must be at least 1", param="count")
        return [(base, [o.text for o in base_overrides])] * count
    if not matrix:
        raise UsageError("the matrix file has no entries", "expected a list: one job per entry", param="matrix")
    jobs = []
    for i, item in enumerate(matrix):
        overrides = Override.of(item)
        try:
            jobs.append((apply_overrides(base, overrides), [o.text for o in base_overrides + overrides]))
        except UsageError as exc:
            raise UsageError(f"entry {i + 1}: {exc.message}", exc.hint, param="matrix") from None
    return jobs


def read_matrix(path: Path) -> list[Any]:
    """A JSON or YAML list of override sets."""
    if (kind := not_regular(path)) is not None:
        raise UsageError(f"{path}: is {kind}, not a matrix file", param="matrix")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}", param="matrix") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text ({exc.reason})", param="matrix") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else _yaml(text)
    except RecursionError:
        raise UsageError(f"{path}: nested too deeply to be a matrix", param="matrix") from None
    except ValueError as exc:
        raise UsageError(f"{path}: not valid JSON/YAML ({exc})", param="matrix") from None
    if not isinstance(data, list):
        raise UsageError(f"{path}: expected a list (one entry of overrides per job)", param="matrix")
    return data


def _yaml(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc).splitlines()[0]) from None
