"""How storage results look to people: uploads, listings, the sync plan, pulls (the JSON forms are
the objects' ``to_dict``). Pure functions of their inputs; nothing here prints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from ..storage.mount import Mount
    from ..storage.pull import Pulled
    from ..storage.sync import SyncPlan
    from ..storage.upload import PushResult


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


def push_text(mount: "Mount", results: "Iterable[PushResult]") -> str:
    """One line a file (uploaded or unchanged, resumed parts), then the counts."""
    results = list(results)
    lines = [
        f"{'unchanged' if r.skipped else 'uploaded '} {mount.url(r.key)} ({human_size(r.size)}"
        + (f", resumed {r.resumed_parts}/{r.parts} parts" if r.resumed_parts else "")
        + ")"
        for r in results
    ]
    sent = [r for r in results if not r.skipped]
    lines.append(f"{len(sent)} uploaded, {len(results) - len(sent)} unchanged")
    return "\n".join(lines)


def ls_text(rows: list[dict]) -> str:
    """A size column ('-' for folders) and the name, one row a line."""
    return "".join(f"{'-' if r['folder'] else human_size(r['size']):>12}  {r['name']}\n" for r in rows)


def layout_text(mount: "Mount", created: list[str], existing: int) -> str:
    return f"{mount.url(mount.prefix)}: {len(created)} folders created, {existing} already there"


def sync_lines(mount: "Mount", items: "list[Any]") -> list[str]:
    """A storage plan, one entry a line: action, where, why."""
    return [f"  {i.action:<8} {mount.url(i.key)}" + (f"  ({i.reason})" if i.reason else "") for i in items]


def sync_text(plan: "SyncPlan", dry_run: bool) -> str:
    summary = f"{len(plan.uploads)} to upload, {len(plan.in_place)} in place, {len(plan.wrong)} wrong"
    if plan.pulls:
        summary += f", {len(plan.pulls)} pulled from their source" if not dry_run else f", {len(plan.pulls)} to pull"
    return ("plan: " if dry_run else "synced: ") + summary


def pull_text(pulled: "Pulled") -> str:
    counts = [(len(pulled.renamed), "renamed"), (len(pulled.refused), "refused"), (len(pulled.failed), "not written")]
    return f"{len(pulled.files)} files into {pulled.dest}" + "".join(f", {n} {what}" for n, what in counts if n)
