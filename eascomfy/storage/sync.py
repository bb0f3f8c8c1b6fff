"""Declarative models (``storage sync``): the spec's ``models:`` list against the mount. An entry
with a ``source`` that the mount lacks is pulled (``pull_source``); its name defaults to the
source's file name."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from .mount import MODELS, Mount, model_path
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


def list_objects(mount: Mount, folder: str) -> dict[str, tuple[int, str]]:
    """key -> (size, ETag) of every object under ``folder`` of the mount: one recursive LIST (paged)."""
    return {key: (size, etag) for key, size, is_dir, etag in mount.bucket.list(mount.key(folder)) if not is_dir}


class RemoteCrc:
    """The CRC64 of listed objects, asked of OSS (one HEAD) only when nothing known gives it: an
    entry of the lockfile, or the upload cache, with the same ETag as the listing."""

    def __init__(self, mount: Mount, listing: dict[str, tuple[int, str]], known: dict[str, tuple[str, int]] | None = None):
        self.mount, self.listing, self.known = mount, listing, dict(known or {})

    def learn(self, key: str, etag: str, crc: int | None) -> None:
        if crc is not None:
            self.known[key] = (etag, crc)

    def __call__(self, key: str) -> int | None:
        size_etag = self.listing.get(key)
        if size_etag is None:
            return None
        hit = self.known.get(key)
        if hit is not None and hit[0] == size_etag[1]:
            return hit[1]
        remote = self.mount.bucket.head(key)
        if remote is None or remote.crc64 is None:
            return None
        self.known[key] = (remote.etag or size_etag[1], remote.crc64)
        return remote.crc64


def plan_sync(
    mount: Mount,
    spec: "Spec",
    cache: CrcCache | None = None,
    *,
    listing: dict[str, tuple[int, str]] | None = None,
    known: dict[str, tuple[str, int]] | None = None,
) -> SyncPlan:
    """Compare the spec's ``models`` with the mount: what to upload, what is fine, what is wrong.

    The mount is read with one listing of models/ (``listing``, when the caller has it); a CRC64
    is asked of OSS (HEAD) only where a comparison needs it and neither ``known`` (key -> (ETag,
    CRC64), from the lockfile) nor the upload cache has it for that ETag. Local files are
    compared by CRC64 (cached, so an unchanged file is read once)."""
    cache = cache or CrcCache()
    models: list[dict[str, Any]] = spec.data.get("models") or []
    base_dir = spec.project_dir
    if listing is None and models:
        listing = list_objects(mount, MODELS)
    listing = listing or {}
    remote_crc = RemoteCrc(mount, listing, known)
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
        listed = listing.get(key)
        item = SyncItem(name, entry["kind"], key, "ok", str(local) if local else None, source=entry.get("source"))
        if local is not None:
            if not local.is_file():
                raise UsageError(f"models[{i}].file: {local} not found")
            st = local.stat()
            cached = cache.get(local, st)
            if cached is not None and cached[1]:
                remote_crc.learn(key, cached[1], cached[0])
            if listed is None:
                item.action, item.reason = "upload", "not on the mount"
            elif listed[0] != st.st_size:
                item.action, item.reason = "upload", f"size differs ({listed[0]} on the mount, {st.st_size} here)"
            else:
                local_crc = cached[0] if cached is not None else file_crc64(local)
                remote = remote_crc(key)
                cache.put(local, st, local_crc, listed[1] if remote == local_crc else "")
                if remote != local_crc:
                    item.action, item.reason = "upload", "content differs (CRC64)"
        elif source is not None and listed is None:
            item.action, item.reason = "pull", "not on the mount"
        elif listed is None:
            item.action, item.reason = "missing", "not on the mount and no local file to upload"
        elif "size" in entry and entry["size"] != listed[0]:
            item.action, item.reason = "mismatch", f"size {listed[0]}, expected {entry['size']}"
        elif "crc64" in entry and entry["crc64"] != (crc := remote_crc(key)):
            item.action, item.reason = "mismatch", f"CRC64 {crc}, expected {entry['crc64']}"
        items.append(item)
    cache.save()
    return SyncPlan(items)
