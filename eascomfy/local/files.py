"""Local files: writes a reader never sees half of, the state directory, files that are safe to
read whole, and local names for names that come from a server (never escaping the destination,
always short enough to write, distinct from each other)."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..errors import UsageError


class FileExists(UsageError):
    """An output file that exists and may not be replaced (the caller did not allow it)."""

    code = "FileExists"


def probe(path: Path, param: str | None = None) -> os.stat_result | None:
    """``path``'s stat (links followed), None when nothing is there; a usage error when the name
    itself cannot be used (too long, a symlink loop, not encodable): ``Path.exists`` raises on
    some of these and answers False on others, and the write that follows fails far from here."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}", param=param) from None
    except (ValueError, UnicodeError):  # a NUL, or a name the file system cannot encode
        raise UsageError(f"{path!r}: not a usable file name", param=param) from None


def check_output_file(path: Path, *, force: bool = False, inputs: Iterable[Path] = (), param: str | None = None) -> None:
    """Refuse, before anything is computed or written, a path ``write_atomic`` must not write: a
    directory, one of the ``inputs`` the output is made from (never, even with ``force``), or any
    existing file unless ``force``."""
    path = Path(path)
    found = probe(path, param)
    if found is not None and stat.S_ISDIR(found.st_mode):
        raise UsageError(f"{path} is a directory; give a file name", param=param)
    if found is not None and not stat.S_ISREG(found.st_mode):  # write_atomic would replace the FIFO or device
        raise UsageError(f"{path} is {file_type(found.st_mode)}, not a regular file; give a file name", param=param)
    if found is not None:
        for source in inputs:
            if Path(source).exists() and os.path.samefile(path, source):
                raise UsageError(f"{path} is the spec being rendered; not overwritten", "give another file name", param=param)
        if not force:
            raise FileExists(f"{path} exists; not overwritten", "allow replacing it, or give another file name", param=param)
    elif path.is_symlink():  # a link to nothing: write_atomic would write where it points
        raise UsageError(f"{path} is a broken symbolic link; give a file name", param=param)
    check_directory(path.parent, param)


def check_directory(path: Path, param: str | None = None) -> None:
    """Refuse a folder to write into that is a file (or lies under one): clear, before any work."""
    for probe_path in (Path(path), *Path(path).parents):
        found = probe(probe_path, param)
        if found is not None:
            if not stat.S_ISDIR(found.st_mode):
                raise UsageError(f"{probe_path} is a file, not a directory", param=param)
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


def _digest(text: str, size: int) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:size]


def _split_extension(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    suffix = f".{ext}" if dot and stem and len(ext.encode("utf-8", "surrogatepass")) < _EXTENSION_LIMIT else ""
    return name[: len(name) - len(suffix)], suffix


def hashed_name(name: str, key: str | None = None, limit: int = NAME_LIMIT) -> str:
    """``name`` cut to fit ``limit`` UTF-8 bytes with ``~`` and 16 hex digits of the SHA-256 of
    ``key`` (default: ``name``) before its extension: ``ComfyUI_xxxx~1a2b3c4d5e6f7a8b.png``. With
    another ``key``, a distinct name for one that clashes with another (``dir`` and ``dir/x.png``)."""
    stem, suffix = _split_extension(name)
    keep = limit - len(suffix.encode("utf-8", "surrogatepass")) - 17  # "~" + 16 hex digits
    head = stem.encode("utf-8", "surrogatepass")[:keep].decode("utf-8", "ignore")
    return f"{head}~{_digest(name if key is None else key, 16)}{suffix}"


def fit_name(name: str, limit: int = NAME_LIMIT) -> str:
    """One path component from a server (a file name, a task id) as a local name: itself when it
    fits in ``limit`` UTF-8 bytes; else cut, with a hash of the whole name (two long names never
    meet) and its extension kept. The same name always gives the same local name."""
    if len(name.encode("utf-8", "surrogatepass")) <= limit:
        return name
    return hashed_name(name, limit=limit)


def id_name(text: str, suffix: str = "") -> str:
    """A local file name for an id from a server (a task id) plus ``suffix``: the id itself when it
    is plain (letters, digits, ``_.-``, not starting with a dot); else its other characters
    replaced and a hash added, so distinct ids never share a file. Always fits (``fit_name``)."""
    plain = _PLAIN.sub("_", text).lstrip(".")
    if plain != text or not plain:
        plain = f"{plain or '_'}~{_digest(text, 8)}"
    return fit_name(plain + suffix)


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
    """Where ``remote_name`` (``sub/folder/name``, from a server) lands under ``dest``, or None if
    it would escape it. Each part is made to fit a local file system (``fit_name``). THE one way
    names from a server become local paths: run's downloads, results, outputs pull (which plans a
    whole listing at once with ``local_names``)."""
    parts = _name_parts(remote_name)
    if parts is None:
        return None
    target = (dest / "/".join(fit_name(p) for p in parts)).resolve()
    root = dest.resolve()
    return target if root in target.parents else None


def folder_problem(path: Path) -> str | None:
    """Why ``path`` cannot be (made into) a writable folder, or None when it can: checked before
    work whose results go there is started. Nothing is created."""
    path = Path(path)
    try:
        found = probe(path)
        if found is not None:
            if not stat.S_ISDIR(found.st_mode):
                return f"{path} is a file, not a folder"
            return None if os.access(path, os.W_OK | os.X_OK) else f"{path}: the folder is not writable"
        if path.is_symlink():
            return f"{path} is a broken symbolic link, not a folder"
        if len(os.fsencode(path.name)) > 255:
            return f"{path}: the name is too long for a folder"
        parent = path.parent
        while probe(parent) is None and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            return f"{path}: {parent} is a file, so the folder cannot be made"
    except UsageError as exc:
        return exc.message
    return None if os.access(parent, os.W_OK | os.X_OK) else f"{path}: cannot make it, {parent} is not writable"


@dataclass
class LocalNames:
    """Local relative paths for a set of server-given names (which are data, not paths)."""

    paths: dict[str, str] = field(default_factory=dict)  # name -> relative local path ("a/b.png")
    renamed: dict[str, str] = field(default_factory=dict)  # the names whose local path differs
    refused: list[str] = field(default_factory=list)  # names that would escape the folder


def local_names(names: Iterable[str]) -> LocalNames:
    """Safe, distinct local paths for ``names`` (e.g. the keys of one listing), as
    ``safe_local_path`` makes them one at a time, and distinct: a file whose path is also a folder
    of another name (keys ``dir`` and ``dir/x.png``), or that two names share (``a//b``, ``a/b``),
    gets a hashed name (``hashed_name``) instead of overwriting or crashing."""
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
            parts[-1] = hashed_name(_name_parts(name)[-1], key=name)  # type: ignore[index]
        used.add(tuple(parts))
        path = "/".join(parts)
        result.paths[name] = path
        if path != name:
            result.renamed[name] = path
    return result


def file_sha256(path: Path, chunk: int = 8 << 20) -> str:
    """A local file's SHA-256, read in chunks (a model or a wheel may be gigabytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
