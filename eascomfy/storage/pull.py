"""Files from the mount to a local folder: every object under a prefix (e.g. output/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..local.files import safe_local_path
from ..ports import Bucket


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
