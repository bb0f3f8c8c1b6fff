"""Files from the mount to a local folder: every object under a prefix (e.g. output/)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EascomfyError
from ..local.files import safe_local_path
from ..ports import SILENT, Bucket, Progress
from .mount import OUTPUT, Mount


@dataclass
class Pulled:
    """What a pull wrote (name, size, local path) and the names it refused to write."""

    dest: Path
    files: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"pulled": self.files, "refused": self.refused}

    def check(self) -> None:
        """A refused name is an error (after the rest was pulled): someone wrote a hostile name."""
        if self.refused:
            raise EascomfyError(f"{len(self.refused)} output names were refused (they would escape {self.dest})")


def pull_outputs(mount: Mount, dest: Path, prefix: str = "", progress: Progress = SILENT) -> Pulled:
    """What ComfyUI wrote to output/ (names starting with ``prefix``) into ``dest``."""
    files, refused = pull(mount.bucket, mount.key(OUTPUT) + prefix, dest)
    for name in refused:
        progress.warn(f"refused {name!r}: it would be written outside {dest}")
    return Pulled(dest, files, refused)


def pull(bucket: Bucket, prefix: str, dest: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Download every object under ``prefix`` into ``dest``; names escaping ``dest`` are refused."""
    dest.mkdir(parents=True, exist_ok=True)
    pulled, refused = [], []
    for key, size, _, _ in bucket.list(prefix):
        name = key[len(prefix):]
        if not name or name.endswith("/"):
            continue
        target = safe_local_path(dest, name)
        if target is None:
            refused.append(name)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        bucket.download(key, str(target))
        pulled.append({"name": name, "size": size, "path": str(target)})
    return pulled, refused
