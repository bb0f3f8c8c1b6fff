"""Local files: writes a reader never sees half of, the state directory, files that are safe to
read whole, and local names for names that come from a server (never escaping the destination)."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

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
