"""Custom node packs with their dependencies (``nodes add``, ``nodes push``, the spec's ``nodes:``).

A pack from git is checked out at a pinned commit (``adapters.git``: branches and tags resolved to
the commit id, which is recorded: ``Pack.lock_entry`` for the lockfile, ``rev:`` in the spec) into
a temporary folder, then uploaded to ``custom_nodes/<pack>/`` on the mount by the same path as
``nodes push`` (``mount.node_targets``: ``.git`` and caches are not uploaded). Files an earlier
version of the pack left on the mount are removed after the upload, as ComfyUI-Manager removes
them when it switches versions (its ``.tracking`` file, ``cnr_switch_version_instant``), so the
folder holds exactly the pinned commit.

A pack's ``requirements.txt`` is merged into the spec's ``pip:`` (``core.requirements``): conflicts
between packs are refused by name before anything is uploaded or written; the spec is edited as
text (``local.specfile``), its comments kept. The order is: check everything offline, fetch, merge
(a conflict stops here: nothing sent to the cloud), upload, then write the spec.

How a pack is named: ``URL[@REV]`` (the last ``@`` starts the revision, as ComfyUI-Manager splits
it, ``extract_url_and_commit_id``); the folder is the repository's name (``.git`` dropped), as a
``git clone`` names it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from ..core.requirements import Merge, Wanted, merge, owners, read_requirements
from ..errors import UsageError
from ..ports import SILENT, Progress
from .mount import NODES, Mount, node_targets, pack_name

if TYPE_CHECKING:
    from ..core.spec import Spec

_URL = re.compile(r"^((https?|git|file)://([^\s@/]+@)?[^\s@/]*/\S+|ssh://[^\s/]+/\S+|[A-Za-z0-9_.-]+@[^\s:/]+:\S+)$")
_REV = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+-]*$")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class RequirementConflict(UsageError):
    """Packs that want incompatible versions of a package: one line per package, naming them."""

    code = "RequirementConflict"

    def __init__(self, conflicts: list[Any]) -> None:
        self.conflicts = conflicts
        lines = "".join(f"\n  {c.line()}" for c in conflicts)
        super().__init__(f"custom node packs want incompatible Python packages; nothing was uploaded or written:{lines}",
                         "write the requirement you choose in the spec's pip: (a line without a '# nodes:' note is "
                         "yours, and yours wins), or leave one of the packs out")

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "conflicts": [c.to_dict() for c in self.conflicts]}


@dataclass(frozen=True)
class NodeSource:
    """A pack in git: its URL, the revision asked for (None: the default branch), its folder."""

    url: str
    rev: str | None
    name: str

    @property
    def text(self) -> str:
        return self.url + (f"@{self.rev}" if self.rev else "")


def parse_node_source(text: str, where: str = "") -> NodeSource:
    """``URL[@REV]`` (refused with the reason when it is not one). A password or token in the URL
    is registered as a secret first, so that no message shows it."""
    from ..adapters.git import public_url

    public_url(text.strip())
    url, rev = text.strip(), None
    head, at, tail = url.rpartition("@")
    if at and head and ":" not in tail and "/" in head and _URL.match(head):
        url, rev = head, tail
    label = f"{where}: " if where else ""
    if not _URL.match(url):
        raise UsageError(f"{label}not a git URL: {text!r}", "expected https://host/org/repo[.git][@REV] "
                         "(or ssh://..., git@host:org/repo)")
    if rev is not None and not _REV.match(rev):
        raise UsageError(f"{label}not a git revision: {rev!r}", "a commit id, a tag or a branch name")
    return NodeSource(url, rev, _repo_name(url, where))


def _repo_name(url: str, where: str = "") -> str:
    name = re.split(r"[/:]", url.rstrip("/"))[-1].removesuffix(".git")
    if not _NAME.match(name) or name in (".", ".."):
        raise UsageError(f"{where + ': ' if where else ''}{url}: no folder name for custom_nodes/ in it",
                         "name the repository itself (…/org/ComfyUI-Pack)")
    return name


def spec_sources(spec: "Spec") -> list[NodeSource]:
    """The spec's ``nodes:`` list (the schema checked its shape)."""
    found = []
    for i, entry in enumerate(spec.data.get("nodes") or []):
        source = parse_node_source(entry["git"], f"nodes[{i}].git")
        rev = entry.get("rev")
        found.append(NodeSource(source.url, str(rev) if rev is not None else source.rev, entry.get("name") or source.name))
    return found


def check_names(sources: Iterable[NodeSource]) -> None:
    seen: dict[str, str] = {}
    for s in sources:
        if s.name.lower() in seen:
            raise UsageError(f"two packs would go to custom_nodes/{s.name}/: {seen[s.name.lower()]} and {s.text}",
                             "give one of them a name (nodes[].name in the spec)")
        seen[s.name.lower()] = s.text


@dataclass
class Pack:
    """A pack ready to upload: where its files are, its commit (None for a local folder), its
    requirements and the lines of requirements.txt left out."""

    name: str
    folder: Path
    url: str | None = None
    commit: str | None = None
    rev: str | None = None
    requirements: list[str] = field(default_factory=list)
    left_out: list[tuple[str, str]] = field(default_factory=list)

    def lock_entry(self) -> dict[str, str | None]:
        return {"url": self.url, "commit": self.commit}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "rev": self.rev, "commit": self.commit,
                "requirements": self.requirements, "left_out": [{"line": ln, "reason": r} for ln, r in self.left_out]}


def read_pack(name: str, folder: Path) -> Pack:
    """A pack in a local folder with its requirements.txt (when it has one)."""
    pack = Pack(name, folder)
    req = folder / "requirements.txt"
    if req.is_file() and not req.is_symlink():
        pack.requirements, pack.left_out = read_requirements(req.read_text(encoding="utf-8", errors="replace"))
    return pack


def fetch(sources: list[NodeSource], workdir: Path, progress: Progress = SILENT) -> list[Pack]:
    """Check each source out at its pinned commit under ``workdir/<name>``."""
    from ..adapters.git import checkout, public_url

    packs = []
    for s in sources:
        shown = public_url(s.url)
        progress.info(f"fetching {s.name} from {shown}" + (f" at {s.rev}" if s.rev else ""))
        folder = workdir / s.name
        commit = checkout(s.url, s.rev, folder)
        pack = read_pack(s.name, folder)
        pack.url, pack.commit, pack.rev = shown, commit, s.rev
        progress.info(f"{s.name}: commit {commit}")
        packs.append(pack)
    return packs


def local_packs(folders: Iterable[Path]) -> list[Pack]:
    """``nodes push`` folders as packs (named as they go under custom_nodes/)."""
    return [read_pack(pack_name(f), f) for f in folders]


def pip_owners(spec: "Spec") -> list[Wanted]:
    """The spec's ``pip:`` list with the pack each line came from (its ``# nodes:`` note)."""
    from ..local.specfile import item_lines

    notes = owners(item_lines(Path(spec.file), "pip"))
    return [Wanted(line, notes.get(line)) for line in (spec.data.get("pip") or [])]


def plan_requirements(spec: "Spec", packs: list[Pack], progress: Progress = SILENT) -> Merge:
    """The spec's pip merged with the packs' requirements; a conflict between packs is refused."""
    from ..core.validate import field_problem

    result = merge(pip_owners(spec), {p.name: p.requirements for p in packs}, lambda line: field_problem(line, "pip", "items"))
    for p in packs:
        for line, reason in p.left_out:
            progress.warn(f"{p.name}: requirements.txt line {line!r} left out: {reason}")
    for s in result.skipped:
        progress.warn(f"{s['pack']}: {s['line']} left out: {s['reason']}")
    for c in result.overruled:
        progress.warn(f"{c.line()}: keeping the spec's own line")
    if result.conflicts:
        raise RequirementConflict(result.conflicts)
    return result


def write_requirements(spec: "Spec", result: Merge) -> list[str]:
    """Write the merge into the spec's ``pip:`` (a ``# nodes: <pack>`` note after each line a pack
    brought); the lines added."""
    from ..local.specfile import edit_list

    added = edit_list(Path(spec.file), "pip", [(w.line, f"nodes: {w.owner}") for w in result.add], remove=result.drop)
    return [item for item, _ in added]


def record_sources(spec: "Spec", packs: list[Pack]) -> list[str]:
    """Record git packs in the spec's ``nodes:`` at their commit (a pack already listed with
    another revision gets the new one); the texts of the entries added or changed."""
    from ..local.specfile import edit_list, set_list_item_value, yaml_scalar

    listed = {s.url: (i, s) for i, s in enumerate(spec_sources(spec))}
    add, changed = [], []
    for p in packs:
        if p.url is None or p.commit is None:
            continue
        note = p.rev if p.rev and p.rev != p.commit else None
        if p.url in listed:
            i, s = listed[p.url]
            if s.rev != p.commit and s.rev != p.rev:
                set_list_item_value(Path(spec.file), "nodes", i, "rev", p.commit)
                changed.append(f"{p.url}@{p.commit}")
            continue
        add.append((f"{{git: {yaml_scalar(p.url)}, rev: {p.commit}}}", note))
    done = edit_list(Path(spec.file), "nodes", add)
    return changed + [item for item, _ in done]


def targets(packs: list[Pack], progress: Progress = SILENT) -> list[tuple[Path, str]]:
    """(file, path under the mount) for every pack's files (``.git`` and caches left out)."""
    return node_targets([p.folder for p in packs], progress)  # each folder is named as its pack


def remove_stale(mount: Mount, packs: list[Pack], uploaded: set[str]) -> list[str]:
    """Delete what an earlier version of each git pack left in its folder (keys not just uploaded)."""
    removed = []
    for p in packs:
        if p.commit is None:
            continue
        for key, _, is_dir, _ in mount.bucket.list(mount.key(f"{NODES}{p.name}/")):
            if not is_dir and key not in uploaded and not key.endswith("/"):
                mount.bucket.delete(key)
                removed.append(key[len(mount.prefix):])
    return removed


def lock(packs: list[Pack]) -> dict[str, dict[str, str | None]]:
    """``{pack: {url, commit}}`` of the git packs, for the lockfile."""
    return {p.name: p.lock_entry() for p in packs if p.commit}
