"""Checks of a workflow before a GPU is spent: its graph, the mount's models and custom node
packs, and ComfyUI's ``/object_info`` on the service. Every problem is listed at once.

``OnlineCheck`` gathers what the online checks need (the edition, the mount's inventory,
``/object_info``) from a spec or a given target; what it cannot reach becomes a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from ..core.workflow import Problem, Workflow, graph_problems, mount_problems, object_info_problems
from ..errors import EXIT_ERROR, CloudError, EascomfyError

if TYPE_CHECKING:
    from ..core.editions import Edition
    from ..core.spec import Spec
    from ..ports import Progress
    from ..storage.mount import Mount
    from .target import Target


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


def inventory(mount: "Mount") -> Inventory:
    """Two listings: everything under ``models/``, and the top level of ``custom_nodes/``."""
    models: dict[str, set[str]] = {}
    base = mount.key("models/")
    for key, _, is_dir, _ in mount.bucket.list(base):
        kind, slash, name = key[len(base):].partition("/")
        if slash and name and not is_dir and not name.endswith("/"):
            models.setdefault(kind, set()).add(name)
    packs = set()
    nodes = mount.key("custom_nodes/")
    for key, _, is_dir, _ in mount.bucket.list(nodes, "/"):
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


def refuse_broken_graph(workflow: Workflow, source: str) -> None:
    """Nothing is sent for a workflow whose graph is broken (checked offline: no service needed)."""
    problems = errors_only(graph_problems(workflow))
    if problems:
        raise JobError(f"{source}: the graph is broken; nothing was sent", [p.line() for p in problems])


@dataclass
class CheckReport:
    """What a check found: ``errors`` stop a run, ``unverified`` could not be checked."""

    workflow: str
    nodes: int
    checked: list[str]
    edition: str | None
    errors: list[Problem]
    unverified: list[Problem]
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"workflow": self.workflow, "nodes": self.nodes, "checked": self.checked, "edition": self.edition,
                "problems": [p.to_dict() for p in self.errors], "unverified": [p.to_dict() for p in self.unverified],
                "notes": self.notes}


@dataclass
class OnlineCheck:
    """What the online checks could reach: the edition, the mount's inventory, ``/object_info``;
    what they could not reach becomes a note (the offline checks still run)."""

    progress: "Progress"
    checked: list[str] = field(default_factory=lambda: ["format", "graph"])
    notes: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    edition: "Edition | None" = None
    target: "Target | None" = None
    info: dict[str, Any] | None = None
    mount: Inventory | None = None

    def given(self, target: "Target") -> None:
        """Check against this service (its edition as far as it is known)."""
        self.target, self.edition = target, target.edition

    def from_spec(self, spec: "Spec") -> None:
        """The spec's edition, its mount (``storage.oss``) and its service, each as far as it can be reached."""
        from ..storage.mount import Mount
        from .target import require_edition, resolve_target

        self.edition = spec.edition
        try:
            require_edition(spec.edition, "check")
        except EascomfyError as exc:  # Serverless: no API calls at all
            self.problems.append(Problem(None, None, exc.message, exc.hint, code="edition"))
            return
        self.checked.append("edition")
        if (spec.data.get("storage") or {}).get("oss"):
            try:
                self.mount = inventory(Mount.open(spec, self.progress))
                self.checked.append("storage")
            except CloudError as exc:
                self.notes.append(f"storage not checked: {exc}")
        else:
            self.notes.append("storage not checked: the spec has no storage.oss")
        if spec.edition.can("async_api"):
            self.notes.append(f"the {spec.edition.title} serves no /object_info: node types were checked against "
                              "custom_nodes/ on the mount; run it with `eascomfy submit`")
            return
        try:
            self.target = resolve_target(self.progress, spec=spec, command="check")
        except CloudError as exc:
            self.notes.append(f"service not checked: {exc}")

    def object_info(self) -> None:
        """Read ``/object_info`` from the target, if there is one."""
        if self.target is None:
            return
        try:
            with self.target.client(self.progress) as client:
                self.info = client.object_info()
        except CloudError as exc:
            self.notes.append(f"service not checked: {exc}")
            return
        if self.info is None:
            self.notes.append("the service serves no /object_info (API edition?): node types not checked there")
        else:
            self.checked.append("object_info")

    def check(self, workflow: Workflow, source: str) -> CheckReport:
        """``/object_info`` (when there is a target), then every problem of ``workflow`` at once."""
        self.object_info()
        problems = self.problems + check_workflow(workflow, info=self.info, mount=self.mount)
        return CheckReport(source, len(workflow), self.checked, self.edition.name if self.edition else None,
                           errors_only(problems), [p for p in problems if p.severity != "error"], self.notes)


# -- check --fix -------------------------------------------------------------------------------------------
@dataclass
class ModelFixes:
    """What ``check --fix`` can pull (the spec's ``models:`` entries with a source that the
    workflow needs and the mount lacks) and what it cannot fix, each with the reason."""

    pulls: list[Any] = field(default_factory=list)  # storage.sync.SyncItem
    unfixable: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"pulled": [{"name": i.name, "kind": i.kind, "source": i.source} for i in self.pulls],
                "not_fixed": [p.to_dict() for p in self.unfixable]}


def plan_model_fixes(workflow: Workflow, errors: Iterable[Problem], spec: "Spec", mount: "Mount") -> ModelFixes:
    """Match each missing model of ``errors`` with a spec ``models:`` entry that has a ``source``
    (what ``storage sync`` would pull for it, ``storage.sync.plan_sync``); every other error is
    not fixable here and says why."""
    from ..core.workflow import model_kind
    from ..storage.sync import plan_sync

    errors = list(errors)
    pullable = {(i.kind, i.name): i for i in plan_sync(mount, spec).pulls} if any(
        p.code == "missing_model" for p in errors) else {}
    fixes, taken = ModelFixes(), set()
    for p in errors:
        if p.code == "missing_model" and p.node in workflow and p.input:
            node = workflow[p.node]
            filename = str((node.get("inputs") or {}).get(p.input))
            kind = model_kind(node["class_type"], p.input, filename)
            item = pullable.get((kind or "", filename))
            if item is not None:
                if (item.kind, item.name) not in taken:
                    taken.add((item.kind, item.name))
                    fixes.pulls.append(item)
                continue
            reason = (f"no source for models/{kind}/{filename} in the spec's models: (add one, e.g. "
                      f"{{kind: {kind}, name: {filename}, source: hf://ORG/REPO/FILE}})")
        elif p.code == "missing_node":
            reason = f"a custom node pack is not fixed by --fix: {p.hint}" if p.hint else "a custom node pack is missing"
        else:
            reason = "not a missing model"
        fixes.unfixable.append(Problem(p.node, p.title, p.message, reason, code=p.code, input=p.input))
    return fixes
