"""Local files: writes a reader never sees half of, the state directory, and local names for
names that come from a server (never escaping the destination)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

from ..errors import UsageError


class FileExists(UsageError):
    """An output file that exists and may not be replaced (the caller did not allow it)."""

    code = "FileExists"


def check_output_file(path: Path, *, force: bool = False, inputs: Iterable[Path] = (), param: str | None = None) -> None:
    """Refuse, before anything is computed or written, a path ``write_atomic`` must not write: a
    directory, one of the ``inputs`` the output is made from (never, even with ``force``), or any
    existing file unless ``force``."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path} is a directory; give a file name", param=param)
    if path.exists():
        for source in inputs:
            if Path(source).exists() and os.path.samefile(path, source):
                raise UsageError(f"{path} is the spec being rendered; not overwritten", "give another file name", param=param)
        if not force:
            raise FileExists(f"{path} exists; not overwritten", "allow replacing it, or give another file name", param=param)
    check_directory(path.parent)


def check_directory(path: Path) -> None:
    """Refuse a folder to write into that is a file (or lies under one): clear, before any work."""
    for probe in (Path(path), *Path(path).parents):
        if probe.exists():
            if not probe.is_dir():
                raise UsageError(f"{probe} is a file, not a directory")
            return


def write_atomic(path: Path, data: str | bytes, *, durable: bool = False) -> None:
    """Write ``data`` (text is UTF-8) to ``path`` so a reader never sees half a file: a temp file
    renamed over it. ``durable``: also fsync the file and its folder, so after a crash or power
    loss ``path`` holds the new data or the old, never nothing. A symlink stays a link: the file
    it points to is the one replaced (a spec kept elsewhere and linked into the project)."""
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """fsync a folder, so a file created or renamed in it survives a crash (best effort)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def state_dir() -> Path:
    """Where eascomfy keeps local state (upload checkpoints, the CRC cache)."""
    base = os.environ.get("EASCOMFY_STATE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "eascomfy"
    )
    return Path(base)


def safe_local_path(dest: Path, remote_name: str) -> Path | None:
    """Where ``remote_name`` lands under ``dest``, or None if it would escape it."""
    if not remote_name or "\x00" in remote_name or remote_name.startswith(("/", "\\")):
        return None
    if len(remote_name) > 1 and remote_name[1] == ":":  # a Windows drive letter
        return None
    parts = remote_name.replace("\\", "/").split("/")
    if ".." in parts:
        return None
    target = (dest / "/".join(p for p in parts if p not in ("", "."))).resolve()
    root = dest.resolve()
    return target if root in target.parents else None
