"""Checks of a workflow before a GPU is spent: its graph, the mount's models and custom node
packs, and ComfyUI's ``/object_info`` on the service. Every problem is listed at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..core.workflow import Problem, Workflow, graph_problems, mount_problems, object_info_problems
from ..errors import EXIT_ERROR, EascomfyError
from ..ports import Bucket


class JobError(EascomfyError):
    """A job ComfyUI refused or that failed: a summary plus one line per node."""

    kind = "job"

    def __init__(self, message: str, lines: Iterable[str] = (), hint: str | None = None, exit_code: int = EXIT_ERROR,
                 *, param: str | None = None) -> None:
        self.lines = list(lines)
        super().__init__(message + "".join(f"\n  {line}" for line in self.lines), hint, param=param)
        self.exit_code = exit_code

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "problems": self.lines}


@dataclass
class Inventory:
    """What is on the mount: model file names per ``models/<kind>/`` and custom node packs."""

    models: dict[str, set[str]]
    packs: set[str]


def inventory(bucket: Bucket, prefix: str) -> Inventory:
    """Two listings: everything under ``models/``, and the top level of ``custom_nodes/``."""
    models: dict[str, set[str]] = {}
    base = prefix + "models/"
    for key, _, is_dir, _ in bucket.list(base):
        kind, slash, name = key[len(base):].partition("/")
        if slash and name and not is_dir and not name.endswith("/"):
            models.setdefault(kind, set()).add(name)
    packs = set()
    nodes = prefix + "custom_nodes/"
    for key, _, is_dir, _ in bucket.list(nodes, "/"):
        name = key[len(nodes):].rstrip("/")
        if name and (is_dir or name.endswith(".py")):
            packs.add(name.removesuffix(".py").lower())
    return Inventory(models, packs)


def check_workflow(workflow: Workflow, *, info: Mapping[str, Any] | None = None,
                   mount: Inventory | None = None) -> list[Problem]:
    """Every problem at once: the graph; with ``info`` (``/object_info``) node types, inputs and
    combo values as ComfyUI validates them; with ``mount`` models in their folders and custom node
    packs (node types only when there is no ``info``, which is authoritative)."""
    problems = object_info_problems(workflow, info) if info is not None else graph_problems(workflow)
    if mount is not None:
        seen = {(p.node, p.input) for p in problems}
        for p in mount_problems(workflow, mount.models, mount.packs):
            if info is not None and p.code != "missing_model":
                continue
            if (p.node, p.input) not in seen:
                problems.append(p)
    return problems


def errors_only(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]
