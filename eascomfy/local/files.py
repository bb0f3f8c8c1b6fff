"""Local files: writes a reader never sees half of, the state directory, and local names for
names that come from a server (never escaping the destination, always short enough to write)."""

from __future__ import annotations

import hashlib
import os
import re
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

# Bytes a local name may take: under NAME_MAX (255 on Linux and macOS file systems), with room
# for the ".part" of a download and write_atomic's ".<name>.<8 random>" temporary file.
NAME_LIMIT = 200
_EXTENSION_LIMIT = 16
_PLAIN = re.compile(r"[^A-Za-z0-9_.-]+")


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


def _digest(text: str, size: int) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:size]


def fit_name(name: str, limit: int = NAME_LIMIT) -> str:
    """One path component from a server (a file name, a task id) as a local name: itself when it
    fits in ``limit`` UTF-8 bytes; else cut, with a hash of the whole name (two long names never
    meet) and its extension kept. The same name always gives the same local name."""
    raw = name.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    suffix = f".{ext}" if dot and stem and len(ext.encode("utf-8", "surrogatepass")) < _EXTENSION_LIMIT else ""
    stem = name[: len(name) - len(suffix)]
    keep = limit - len(suffix.encode("utf-8", "surrogatepass")) - 17  # "~" + 16 hex digits
    head = stem.encode("utf-8", "surrogatepass")[:keep].decode("utf-8", "ignore")
    return f"{head}~{_digest(name, 16)}{suffix}"


def id_name(text: str, suffix: str = "") -> str:
    """A local file name for an id from a server (a task id) plus ``suffix``: the id itself when it
    is plain (letters, digits, ``_.-``, not starting with a dot); else its other characters
    replaced and a hash added, so distinct ids never share a file. Always fits (``fit_name``)."""
    plain = _PLAIN.sub("_", text).lstrip(".")
    if plain != text or not plain:
        plain = f"{plain or '_'}~{_digest(text, 8)}"
    return fit_name(plain + suffix)


def safe_local_path(dest: Path, remote_name: str) -> Path | None:
    """Where ``remote_name`` (``sub/folder/name``, from a server) lands under ``dest``, or None if
    it would escape it. Each part is made to fit a local file system (``fit_name``). THE one way
    names from a server become local paths: run's downloads, results, outputs pull."""
    if not remote_name or "\x00" in remote_name or remote_name.startswith(("/", "\\")):
        return None
    if len(remote_name) > 1 and remote_name[1] == ":":  # a Windows drive letter
        return None
    parts = remote_name.replace("\\", "/").split("/")
    if ".." in parts:
        return None
    target = (dest / "/".join(fit_name(p) for p in parts if p not in ("", "."))).resolve()
    root = dest.resolve()
    return target if root in target.parents else None


def folder_problem(path: Path) -> str | None:
    """Why ``path`` cannot be (made into) a writable folder, or None when it can: checked before
    work whose results go there is started. Nothing is created."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            return f"{path} is a file, not a folder"
        return None if os.access(path, os.W_OK | os.X_OK) else f"{path}: the folder is not writable"
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{path}: {parent} is a file, so the folder cannot be made"
    return None if os.access(parent, os.W_OK | os.X_OK) else f"{path}: cannot make it, {parent} is not writable"
