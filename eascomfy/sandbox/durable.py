"""Durable files for the sandbox's state: ``write_durably`` (write a temporary file, fsync it,
rename it over the target, fsync the directory) and ``QueueFiles``, the on-disk form of one EAS
queue, so that restarting ``eascomfy sandbox`` on the same ``--state`` loses no job and no result.

A queue lives in one directory: ``meta.json`` (``{"last_index": N}``, so indexes keep growing
after a restart) and one ``<index>.json`` per entry (index, base64 data, tags, request id, the
sub-path it was posted to, priority, message). A put writes its entry's file before it answers; a
commit or delete removes the files. Which consumer held an entry is not kept: after a restart every
uncommitted entry is free again, as when a watcher disconnects.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

META = "meta.json"


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new content, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


class QueueFiles:
    """One queue's directory. Not thread-safe: its ``MessageQueue`` calls it under its lock."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def load(self) -> tuple[int, list[dict[str, Any]]]:
        """(last index, entries by index); leftovers of an interrupted write are removed."""
        if not self.directory.is_dir():
            return 0, []
        last, entries = 0, []
        for path in self.directory.iterdir():
            if path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)
            elif path.name == META:
                last = max(last, int(json.loads(path.read_text(encoding="utf-8"))["last_index"]))
            elif path.suffix == ".json" and path.stem.isdigit():
                raw = json.loads(path.read_text(encoding="utf-8"))
                raw["data"] = base64.b64decode(raw["data"])
                entries.append(raw)
        entries.sort(key=lambda e: int(e["index"]))
        return max([last] + [int(e["index"]) for e in entries]), entries

    def save(self, entry: dict[str, Any]) -> None:
        """Write an entry (its index is new), then the last index."""
        raw = {**entry, "data": base64.b64encode(entry["data"]).decode("ascii")}
        write_durably(self.directory / f"{entry['index']}.json", json.dumps(raw).encode())
        write_durably(self.directory / META, json.dumps({"last_index": entry["index"]}).encode())

    def remove(self, indexes: Iterable[int]) -> None:
        removed = False
        for index in indexes:
            path = self.directory / f"{index}.json"
            if path.exists():
                path.unlink()
                removed = True
        if removed:
            fsync_dir(self.directory)
