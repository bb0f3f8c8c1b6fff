"""The mount's half of the lockfile: plan the bucket against the spec and the lock (models,
wheels, custom nodes), sync it, and record what it then holds (``core.lockfile`` for the format,
``local.lockfile`` for the file).

Cheap by design: the mount is read with one LIST of ``models/`` (wheels are under it) and one of
``custom_nodes/``; a CRC64 is asked of OSS (HEAD) only for an object whose ETag is not the one the
lock or the upload cache recorded with its CRC64.

Rollback needs the lock a version ran with: after a deploy, the section is stored on the mount as
``.eascomfy/locks/<service>/v<version>.json`` (one small PUT), and the service carries the
section's digest in its ``eascomfy/lockfile-sha`` label.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..core.lockfile import LOCKFILE_SHA_LABEL, differences, digest, section_key, tree_hash
from ..core.render import image_uri
from ..errors import EascomfyError
from ..local.files import file_sha256
from ..local.lockfile import lock_path, read_section, record_nodes, write_section
from ..ports import SILENT, Progress
from .mount import MODELS, NODES, WHEELS, Mount
from .sync import RemoteCrc, SyncItem, SyncPlan, list_objects, plan_sync

if TYPE_CHECKING:
    from ..adapters.eas import EasClient
    from ..core.spec import Spec
    from .upload import PushResult

SNAPSHOTS = ".eascomfy/locks/"


@dataclass
class StorageItem:
    """A wheel or a custom node folder the spec or the lock wants, and how the mount compares."""

    what: str  # wheel | node
    name: str
    key: str
    action: str  # ok | missing | changed
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StoragePlan:
    """The bucket's part of a plan: the spec's models (``storage.sync``), its wheels, and the
    custom node folders the lock records, each against the mount."""

    models: SyncPlan
    wheels: list[StorageItem] = field(default_factory=list)
    nodes: list[StorageItem] = field(default_factory=list)
    listing: dict[str, tuple[int, str]] = field(default_factory=dict)
    crc: RemoteCrc | None = None

    @property
    def items(self) -> list[SyncItem | StorageItem]:
        return [*self.models.items, *self.wheels, *self.nodes]

    @property
    def changes(self) -> int:
        """How many entries are not as the spec and the lock say (what --detailed-exitcode counts)."""
        return sum(1 for i in self.items if i.action != "ok")

    @property
    def wrong(self) -> list[SyncItem | StorageItem]:
        """What no sync can fix: missing, or not what the spec says."""
        return [*self.models.wrong, *(i for i in [*self.wheels, *self.nodes] if i.action == "missing")]

    def check(self) -> None:
        if self.wrong:
            raise EascomfyError(
                "the mount is not what the spec and the lock say: "
                + "; ".join(f"{getattr(i, 'what', 'model')} {i.name}: {i.reason}" for i in self.wrong),
                "upload the right files (models push, wheels push, nodes push) or fix the spec",
            )

    def to_dict(self) -> dict[str, Any]:
        """The plan JSON's ``storage`` section (docs/json-output.md)."""
        models = [{"what": "model", **i.to_dict()} for i in self.models.items]
        counts: dict[str, int] = {}
        for i in self.items:
            counts[i.action] = counts.get(i.action, 0) + 1
        return {"has_changes": self.changes > 0, "changes": self.changes, "summary": counts,
                "items": models + [i.to_dict() for i in [*self.wheels, *self.nodes]]}

    def saved(self) -> list[dict[str, Any]]:
        """What a saved plan keeps of it: each entry's key, action, the listed object's size and
        ETag, a local file's size and CRC64 (cached: read once), so a deploy of that plan refuses a bucket or a file that changed
        since the review."""
        out = []
        for item in self.items:
            listed = self.listing.get(item.key)
            row: dict[str, Any] = {"key": item.key, "action": item.action, "remote": list(listed) if listed else None}
            if isinstance(item, SyncItem) and item.file and item.action == "upload":
                row["size"], row["crc64"] = _local_crc(Path(item.file))
            if isinstance(item, SyncItem) and item.source:
                row["source"] = item.source
            out.append(row)
        return out


def spec_section(spec: "Spec") -> dict[str, Any]:
    """The spec's service's section of its lockfile (empty when there is none; a damaged lockfile
    is refused)."""
    return read_section(lock_path(spec.file), section_key(spec.name, spec.region))


def _local_crc(file: Path) -> tuple[int, int]:
    """(size, CRC64) of a local file, through the upload cache (an unchanged file is read once)."""
    from .upload import CrcCache, file_crc64

    cache = CrcCache()
    st = file.stat()
    known = cache.get(file, st)
    if known is not None:
        return st.st_size, known[0]
    crc = file_crc64(file)
    cache.put(file, st, crc, "")
    cache.save()
    return st.st_size, crc


def involved(spec: "Spec") -> bool:
    """Whether deploy and plan look at the bucket: the spec has a mount and lists models or wheels,
    or the lock records something on it."""
    if not (spec.data.get("storage") or {}).get("oss"):
        return False
    if spec.data.get("models") or spec.data.get("wheels"):
        return True
    section = spec_section(spec)
    return any(section.get(k) for k in ("models", "nodes", "wheels"))


def _known(section: dict[str, Any], mount: Mount) -> dict[str, tuple[str, int]]:
    """key -> (ETag, CRC64) the lock recorded for models and wheels."""
    known = {}
    for e in section.get("models") or []:
        if e.get("etag") and e.get("crc64") is not None:
            known[mount.key(f"{MODELS}{e['kind']}/{e['name']}")] = (e["etag"], e["crc64"])
    for e in section.get("wheels") or []:
        if e.get("etag") and e.get("crc64") is not None:
            known[mount.key(WHEELS + e["name"])] = (e["etag"], e["crc64"])
    return known


def _node_trees(mount: Mount) -> dict[str, str]:
    """Each folder under custom_nodes/ with the hash of its listing (one recursive LIST)."""
    root = mount.key(NODES)
    files: dict[str, list[tuple[str, int, str]]] = {}
    for key, (size, etag) in list_objects(mount, NODES).items():
        rel = key[len(root):]
        if "/" not in rel or rel.endswith("/"):
            continue  # a marker, or a file loose in custom_nodes/
        name, path = rel.split("/", 1)
        files.setdefault(name, []).append((path, size, etag))
    return {name: tree_hash(found) for name, found in files.items()}


def _against_lock(item: StorageItem | SyncItem, entry: dict[str, Any] | None, crc: RemoteCrc, listed: tuple[int, str]) -> None:
    """An object in place that is not the one the lock recorded becomes ``changed``."""
    if entry is None or entry.get("etag") in (None, listed[1]):
        return
    now = crc(item.key)
    if entry.get("crc64") is not None and now != entry["crc64"]:
        item.action, item.reason = "changed", f"not the file the lock records (CRC64 {now}, locked {entry['crc64']})"


def plan_storage(mount: Mount, spec: "Spec", section: dict[str, Any] | None = None) -> StoragePlan:
    """The spec's models and wheels and the lock's nodes against the mount."""
    section = section if section is not None else spec_section(spec)
    listing = list_objects(mount, MODELS)
    known = _known(section, mount)
    models = plan_sync(mount, spec, listing=listing, known=known)
    crc = RemoteCrc(mount, listing, known)
    locked_models = {mount.key(f"{MODELS}{e['kind']}/{e['name']}"): e for e in section.get("models") or []}
    for item in models.items:
        if item.action == "ok":
            _against_lock(item, locked_models.get(item.key), crc, listing[item.key])
    locked_wheels = {e["name"]: e for e in section.get("wheels") or []}
    wheels = []
    for name in spec.data.get("wheels") or []:
        item = StorageItem("wheel", name, mount.key(WHEELS + name), "ok")
        listed = listing.get(item.key)
        if listed is None:
            item.action, item.reason = "missing", "not on the mount (wheels push uploads it)"
        else:
            _against_lock(item, locked_wheels.get(name), crc, listed)
        wheels.append(item)
    nodes = []
    locked_nodes = section.get("nodes") or []
    if locked_nodes:
        trees = _node_trees(mount)
        for entry in locked_nodes:
            item = StorageItem("node", entry["name"], mount.key(f"{NODES}{entry['name']}/"), "ok")
            if entry["name"] not in trees:
                item.action, item.reason = "missing", "the lock records it; put it back (nodes push) or remove it from the lock"
            elif entry.get("tree") and trees[entry["name"]] != entry["tree"]:
                item.action, item.reason = "changed", "its files are not the ones the lock records"
            nodes.append(item)
    return StoragePlan(models, wheels, nodes, listing, crc)


# -- sync and record ---------------------------------------------------------------------------------
Push = Callable[[list[tuple[Path, str]]], "list[PushResult]"]
Pull = Callable[[list[SyncItem]], "tuple[list[PushResult], dict[str, str | None]]"]


def sync_and_build(mount: Mount, spec: "Spec", plan: StoragePlan, previous: dict[str, Any], push: Push, pull: Pull,
                   *, image: bool = False) -> dict[str, Any]:
    """Refuse a plan with something missing or wrong before anything is sent, upload and pull what
    the plan says (``push``/``pull``: the caller's engines, with its progress bars), then the
    section as the mount now is (``build_section``)."""
    plan.check()
    uploaded = push(plan.models.uploads) if plan.models.uploads else []
    pulled, sha256 = pull(plan.models.pulls) if plan.models.pulls else ([], {})
    return build_section(mount, spec, previous, [*uploaded, *pulled], sha256, image=image)


def build_section(
    mount: Mount,
    spec: "Spec",
    previous: dict[str, Any],
    results: "list[PushResult]" = (),  # type: ignore[assignment]
    sha256: dict[str, str | None] | None = None,
    *,
    image: bool = False,
) -> dict[str, Any]:
    """The section as the mount now is (listed again: one LIST per folder): the spec's models and
    wheels with size, CRC64, ETag and SHA-256 when known, every custom node folder with its tree
    hash (git URL and commit kept from the lock while the tree is unchanged), the image when
    ``image`` (a deploy; a sync keeps the one last deployed)."""
    listing = list_objects(mount, MODELS)
    known = _known(previous, mount)
    for r in results:
        if r.key in listing:
            known[r.key] = (listing[r.key][1], r.crc64)
    crc = RemoteCrc(mount, listing, known)
    sha256 = sha256 or {}
    old_models = {(e["kind"], e["name"]): e for e in previous.get("models") or []}
    models = []
    for item in plan_sync_items(mount, spec):
        listed = listing.get(item.key)
        if listed is None:
            continue
        old = old_models.get((item.kind, item.name)) or {}
        entry = {"kind": item.kind, "name": item.name, "source": item.source, "size": listed[0],
                 "crc64": crc(item.key), "etag": listed[1], "sha256": sha256.get(item.key)}
        if entry["sha256"] is None and old.get("crc64") == entry["crc64"] and old.get("size") == entry["size"]:
            entry["sha256"] = old.get("sha256")
        models.append(entry)
    old_wheels = {e["name"]: e for e in previous.get("wheels") or []}
    wheels = []
    for name in spec.data.get("wheels") or []:
        key = mount.key(WHEELS + name)
        if key not in listing:
            continue
        old = old_wheels.get(name) or {}
        entry = {"name": name, "size": listing[key][0], "crc64": crc(key), "etag": listing[key][1], "sha256": None}
        if old.get("crc64") == entry["crc64"] and old.get("size") == entry["size"]:
            entry["sha256"] = old.get("sha256")
        wheels.append(entry)
    old_nodes = {e["name"]: e for e in previous.get("nodes") or []}
    nodes = []
    for name, tree in sorted(_node_trees(mount).items()):
        old = old_nodes.get(name) or {}
        same = old.get("tree") in (None, tree)
        nodes.append({"name": name, "tree": tree, "url": old.get("url") if same else None,
                      "commit": old.get("commit") if same else None})
    return {
        "env": spec.env,
        "image": image_uri(spec) if image else previous.get("image"),
        "mount": (spec.data.get("storage") or {}).get("oss"),
        "models": models,
        "nodes": nodes,
        "wheels": wheels,
    }


def plan_sync_items(mount: Mount, spec: "Spec") -> list[SyncItem]:
    """(kind, name, key, source) of the spec's models, without reading the mount."""
    from .pull_source import parse_source

    items = []
    for entry in spec.data.get("models") or []:
        name = entry.get("name") or (Path(entry["file"]).name if entry.get("file") else parse_source(entry["source"]).name)
        items.append(SyncItem(name, entry["kind"], mount.key(f"{MODELS}{entry['kind']}/{name}"), "ok", source=entry.get("source")))
    return items


def deployed_section(spec: "Spec", synced: dict[str, Any] | None) -> dict[str, Any]:
    """The section a deploy records: the one its sync built or, with no files on the mount to
    lock, the lock's own with the image deployed (and where the mount is)."""
    if synced is not None:
        return synced
    return {**spec_section(spec), "env": spec.env, "image": image_uri(spec), "mount": (spec.data.get("storage") or {}).get("oss")}


def write_lock(spec: "Spec", section: dict[str, Any]) -> Path:
    """Write the service's section into the spec's lockfile; returns the file."""
    path = lock_path(spec.file)
    write_section(path, section_key(spec.name, spec.region), section)
    return path


def record_wheels(spec: "Spec", results: "list[PushResult]") -> Path:
    """After ``wheels push``: each wheel's SHA-256 (of the local file just verified by CRC64 against
    OSS) in the lock, which later syncs keep while the object's size and CRC64 hold."""
    key = section_key(spec.name, spec.region)
    path = lock_path(spec.file)
    section = read_section(path, key)
    entries = {e["name"]: dict(e) for e in section.get("wheels") or []}
    for r in results:
        name = Path(r.file).name
        old = entries.get(name) or {}
        same = (old.get("size"), old.get("crc64")) == (r.size, r.crc64)
        entries[name] = {"name": name, "size": r.size, "crc64": r.crc64, "etag": old.get("etag", "") if same else "",
                         "sha256": file_sha256(Path(r.file))}
    section["wheels"] = list(entries.values())
    write_section(path, key, section)
    return path


def record_node_packs(spec: "Spec", packs: dict[str, dict[str, str | None]]) -> Path:
    """After ``nodes add``: each git pack's URL and commit (``storage.nodes.lock``) in the lock;
    the next sync adds the folder's content hash."""
    path = lock_path(spec.file)
    record_nodes(path, section_key(spec.name, spec.region),
                 [(name, entry.get("url"), entry.get("commit")) for name, entry in sorted(packs.items())])
    return path


def record_deployed(client: "EasClient", mount: Mount, name: str, section: dict[str, Any], version: int | None) -> int:
    """After a deploy: the section stored for the version the service now runs (for rollback) and
    its digest in the service's label; returns the version."""
    if version is None:
        live = client.require(name)
        version = live.latest_version
    body = json.dumps(section, indent=2, sort_keys=True) + "\n"
    mount.bucket.put(mount.key(f"{SNAPSHOTS}{name}/v{version}.json"), body.encode("utf-8"))
    client.set_labels(name, {LOCKFILE_SHA_LABEL: digest(section)})
    return version


def version_differences(mount: Mount, spec: "Spec", version: int, now: dict[str, Any],
                        progress: Progress = SILENT) -> dict[str, Any]:
    """What differs between the lock section ``now`` (the lockfile's) and the one ``version`` of
    the service was deployed with (stored on the mount at that deploy):
    ``{"version", "recorded", "differences"}``."""
    key = mount.key(f"{SNAPSHOTS}{spec.name}/v{version}.json")
    if mount.bucket.head(key) is None:
        return {"version": version, "recorded": False, "differences": []}
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / "lock.json"
        mount.bucket.download(key, str(dest))
        try:
            then = json.loads(dest.read_text(encoding="utf-8"))
        except ValueError:
            progress.warn(f"{mount.url(key)} is not a lock section; cannot compare")
            return {"version": version, "recorded": False, "differences": []}
    return {"version": version, "recorded": True, "differences": differences(now, then)}
