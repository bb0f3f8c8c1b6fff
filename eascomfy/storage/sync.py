"""Declarative models (``storage sync``): the spec's ``models:`` list against the mount."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..ports import Bucket
from .upload import CrcCache, file_crc64


@dataclass
class SyncItem:
    name: str
    kind: str
    key: str
    action: str  # upload | ok | missing | mismatch
    file: str | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_sync(bucket: Bucket, prefix: str, models: list[dict[str, Any]], base_dir: Path, cache: CrcCache) -> list[SyncItem]:
    """Compare the spec's ``models`` with the mount: what to upload, what is fine, what is wrong."""
    items = []
    for i, entry in enumerate(models):
        if not entry.get("file") and not entry.get("name"):
            raise UsageError(f"models[{i}]: set file (to upload) or name (already on the mount)")
        local = (base_dir / entry["file"]) if entry.get("file") else None
        name = entry.get("name") or Path(entry["file"]).name
        key = f"{prefix}models/{entry['kind']}/{name}"
        remote = bucket.head(key)
        item = SyncItem(name, entry["kind"], key, "ok", str(local) if local else None)
        if local is not None:
            if not local.is_file():
                raise UsageError(f"models[{i}].file: {local} not found")
            st = local.stat()
            known = cache.get(local, st)
            local_crc = known[0] if known else None
            if remote is None:
                item.action, item.reason = "upload", "not on the mount"
            elif remote.size != st.st_size:
                item.action, item.reason = "upload", f"size differs ({remote.size} on the mount, {st.st_size} here)"
            else:
                local_crc = local_crc if local_crc is not None else file_crc64(local)
                cache.put(local, st, local_crc, remote.etag if remote.crc64 == local_crc else "")
                if remote.crc64 != local_crc:
                    item.action, item.reason = "upload", "content differs (CRC64)"
        elif remote is None:
            item.action, item.reason = "missing", "not on the mount and no local file to upload"
        elif "size" in entry and entry["size"] != remote.size:
            item.action, item.reason = "mismatch", f"size {remote.size}, expected {entry['size']}"
        elif "crc64" in entry and entry["crc64"] != remote.crc64:
            item.action, item.reason = "mismatch", f"CRC64 {remote.crc64}, expected {entry['crc64']}"
        items.append(item)
    return items
