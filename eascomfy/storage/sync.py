"""Declarative models (``storage sync``): the spec's ``models:`` list against the mount. An entry
with a ``source`` that the mount lacks is pulled (``pull_source``); its name defaults to the
source's file name."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import EascomfyError, UsageError
from .mount import Mount, model_path
from .pull_source import parse_source, source_name
from .upload import CrcCache, file_crc64

if TYPE_CHECKING:
    from ..core.spec import Spec


@dataclass
class SyncItem:
    name: str
    kind: str
    key: str
    action: str  # upload | pull | ok | missing | mismatch
    file: str | None = None
    reason: str = ""
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SyncPlan:
    """Each entry of the spec's ``models:`` list with what to do about it."""

    items: list[SyncItem]

    @property
    def uploads(self) -> list[tuple[Path, str]]:
        """(file, key) pairs for the upload engine."""
        return [(Path(i.file), i.key) for i in self.items if i.action == "upload" and i.file]

    @property
    def pulls(self) -> list[SyncItem]:
        """Entries to stream from their ``source`` (``pull_source``)."""
        return [i for i in self.items if i.action == "pull" and i.source]

    @property
    def in_place(self) -> list[SyncItem]:
        return [i for i in self.items if i.action == "ok"]

    @property
    def wrong(self) -> list[SyncItem]:
        """Entries no upload can fix: missing from the mount, or not what the spec says."""
        return [i for i in self.items if i.action in ("missing", "mismatch")]

    def check(self) -> None:
        if self.wrong:
            raise EascomfyError(
                "; ".join(f"{i.name}: {i.reason}" for i in self.wrong), "upload the right file or fix models[] in the spec"
            )


def plan_sync(mount: Mount, spec: "Spec", cache: CrcCache | None = None) -> SyncPlan:
    """Compare the spec's ``models`` with the mount: what to upload, what is fine, what is wrong.
    Local files are compared by CRC64 (cached, so an unchanged file is read once)."""
    cache = cache or CrcCache()
    models: list[dict[str, Any]] = spec.data.get("models") or []
    base_dir = spec.project_dir
    items = []
    for i, entry in enumerate(models):
        if not entry.get("file") and not entry.get("name") and not entry.get("source"):
            raise UsageError(f"models[{i}]: set file (to upload), source (to pull) or name (already on the mount)")
        if entry.get("file") and entry.get("source"):
            raise UsageError(f"models[{i}]: set file or source, not both")
        local = (base_dir / entry["file"]) if entry.get("file") else None
        source = parse_source(entry["source"]) if entry.get("source") else None
        name = entry.get("name") or (Path(entry["file"]).name if local else source_name(source) if source else "")
        key = mount.key(model_path(entry["kind"], name))
        remote = mount.bucket.head(key)
        item = SyncItem(name, entry["kind"], key, "ok", str(local) if local else None, source=entry.get("source"))
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
        elif source is not None and remote is None:
            item.action, item.reason = "pull", "not on the mount"
        elif remote is None:
            item.action, item.reason = "missing", "not on the mount and no local file to upload"
        elif "size" in entry and entry["size"] != remote.size:
            item.action, item.reason = "mismatch", f"size {remote.size}, expected {entry['size']}"
        elif "crc64" in entry and entry["crc64"] != remote.crc64:
            item.action, item.reason = "mismatch", f"CRC64 {remote.crc64}, expected {entry['crc64']}"
        items.append(item)
    cache.save()
    return SyncPlan(items)
