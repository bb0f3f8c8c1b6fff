"""The lockfile on disk: ``eascomfy.lock`` beside the spec (``<spec stem>.lock`` for a spec with
another name), read and validated (``core.lockfile``), written atomically, one section per
service (``service@region``).

``record_nodes`` is the library API for commands that put custom nodes on the mount from git
(``nodes add``): it records each pack's git URL and commit in the service's section, keeping
what else the section says.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterable

from ..core.lockfile import canonical, dumps_lock, empty_lock, parse_lock
from ..core.yamlio import not_regular
from ..errors import UsageError
from .files import write_atomic


def lock_path(spec_file: str | Path) -> Path:
    """Where a spec's lockfile is: beside it, ``eascomfy.yaml`` -> ``eascomfy.lock``."""
    return Path(spec_file).with_suffix(".lock")


def read_lock(path: Path) -> dict[str, Any]:
    """The lockfile's data (an empty lock when there is none); a damaged one is refused."""
    path = Path(path)
    if (kind := not_regular(path)) is not None:
        raise UsageError(f"{path}: is {kind}, not a lockfile")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return empty_lock()
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a lockfile (not UTF-8 text)", "delete it and run `eascomfy storage sync`") from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    return parse_lock(text, str(path))


def read_section(path: Path, key: str) -> dict[str, Any]:
    """One service's section (empty when the lock has none)."""
    return dict(read_lock(path)["services"].get(key) or {})


_WRITING = threading.Lock()  # a fleet deploys a multi-region spec's services at once: one lockfile


def write_section(path: Path, key: str, section: dict[str, Any]) -> str:
    """Replace one service's section (the others kept), atomically; returns the file's text."""
    with _WRITING:
        data = read_lock(path)
        data["services"][key] = canonical(section)
        text = dumps_lock(data)
        write_atomic(Path(path), text)
    return text


def record_nodes(lock: Path, key: str, nodes: Iterable[tuple[str, str | None, str | None]]) -> None:
    """Record custom node packs installed from git in section ``key`` (``service@region``,
    ``core.lockfile.section_key``): (folder name, git URL, commit). An entry of the same name is
    updated (its content hash kept), the others are kept."""
    section = read_section(lock, key)
    entries = {e["name"]: dict(e) for e in section.get("nodes") or []}
    for name, url, commit in nodes:
        entry = entries.setdefault(name, {"name": name, "tree": None})
        entry["url"], entry["commit"] = url, commit
    section["nodes"] = list(entries.values())
    write_section(lock, key, section)
