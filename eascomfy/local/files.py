"""Local files: writes a reader never sees half of, the state directory, files that are safe to
read whole, and local names for names that come from a server (never escaping the destination)."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..errors import UsageError


def write_atomic(path: Path, data: str | bytes, *, durable: bool = False) -> None:
    """Write ``data`` (text is UTF-8) to ``path`` so a reader never sees half a file: a temp file
    renamed over it. ``durable``: also fsync the file and its folder, so after a crash or power
    loss ``path`` holds the new data or the old, never nothing."""
    path = Path(path)
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


_FILE_TYPES = {
    stat.S_IFDIR: "a folder",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
}


def file_type(mode: int) -> str:
    """What a non-regular file is, in words ("a FIFO")."""
    return _FILE_TYPES.get(stat.S_IFMT(mode), "not a file")


def regular_file(path: Path) -> os.stat_result:
    """``path``'s stat (links followed) when it is a regular file; otherwise a usage error, decided
    without opening it: a device like /dev/zero never ends and a FIFO blocks until a writer comes."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: not found") from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{path}: not a regular file ({file_type(st.st_mode)})", "only regular files can be uploaded")
    return st


def state_dir() -> Path:
    """Where eascomfy keeps local state (upload checkpoints, the CRC cache)."""
    base = os.environ.get("EASCOMFY_STATE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "eascomfy"
    )
    return Path(base)


def _name_parts(remote_name: str) -> list[str] | None:
    """The path components of a server-given name, or None if it would escape its folder."""
    if not remote_name or "\x00" in remote_name or remote_name.startswith(("/", "\\")):
        return None
    if len(remote_name) > 1 and remote_name[1] == ":":  # a Windows drive letter
        return None
    parts = remote_name.replace("\\", "/").split("/")
    if ".." in parts:
        return None
    return [p for p in parts if p not in ("", ".")] or None


def safe_local_path(dest: Path, remote_name: str) -> Path | None:
    """Where ``remote_name`` lands under ``dest``, or None if it would escape it."""
    parts = _name_parts(remote_name)
    if parts is None:
        return None
    target = (dest / "/".join(parts)).resolve()
    root = dest.resolve()
    return target if root in target.parents else None


# -- names from a server as local file names ------------------------------------------------------
NAME_MAX = 255  # bytes in one path component (ext4, XFS, btrfs, APFS; NTFS counts 255 UTF-16 units)
_MAX_EXTENSION = 16  # longer "extensions" are part of the name


def hashed_name(name: str, key: str | None = None, limit: int = NAME_MAX) -> str:
    """``name`` made unique and short enough: its stem (cut to fit ``limit`` UTF-8 bytes), ``~``,
    12 hex digits of the SHA-256 of ``key`` (default: ``name``), then its extension:
    ``ComfyUI_xxxx~1a2b3c4d5e6f.png``. The same input always gives the same name."""
    stem, extension = os.path.splitext(name)
    if not stem or len(extension.encode()) > _MAX_EXTENSION:
        stem, extension = name, ""
    digest = hashlib.sha256((key if key is not None else name).encode("utf-8", "surrogatepass")).hexdigest()[:12]
    room = limit - len(extension.encode()) - len(digest) - 1
    cut = stem.encode("utf-8", "surrogatepass")[:room].decode("utf-8", "ignore")
    return f"{cut}~{digest}{extension}"


def fit_name(part: str, limit: int = NAME_MAX) -> str:
    """One path component as a local file name: unchanged when it fits in ``limit`` bytes."""
    return part if len(part.encode("utf-8", "surrogatepass")) <= limit else hashed_name(part, limit=limit)


@dataclass
class LocalNames:
    """Local relative paths for a set of server-given names (which are data, not paths)."""

    paths: dict[str, str] = field(default_factory=dict)  # name -> relative local path ("a/b.png")
    renamed: dict[str, str] = field(default_factory=dict)  # the names whose local path differs
    refused: list[str] = field(default_factory=list)  # names that would escape the folder


def local_names(names: Iterable[str]) -> LocalNames:
    """Safe, distinct local paths for ``names`` (e.g. object keys under a prefix).

    A name escaping its folder (``..``, absolute, a drive letter, NUL) is refused; a component
    over ``NAME_MAX`` bytes is cut with a hash (extension kept); a file whose path is also a folder
    of another name (keys ``dir`` and ``dir/x.png``), or that two names share, gets a hashed name."""
    result = LocalNames()
    planned: dict[str, list[str]] = {}
    for name in names:
        parts = _name_parts(name)
        if parts is None:
            result.refused.append(name)
        else:
            planned[name] = [fit_name(p) for p in parts]
    folders = {tuple(parts[:i]) for parts in planned.values() for i in range(1, len(parts))}
    used: set[tuple[str, ...]] = set()
    for name, parts in planned.items():
        if tuple(parts) in folders or tuple(parts) in used:
            parts[-1] = hashed_name(parts[-1], key=name)
        used.add(tuple(parts))
        path = "/".join(parts)
        result.paths[name] = path
        if path != name:
            result.renamed[name] = path
    return result
