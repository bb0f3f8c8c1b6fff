"""The mounted OSS folder: where it is (``Mount``), the folders ComfyUI expects in it, the bucket
check, and where each kind of file goes.

``Mount`` is the one bucket-plus-prefix type: the spec's ``storage.oss`` (``oss://bucket/prefix/``)
opened as a bucket client and the prefix inside it. Everything that reads or writes the mount
(uploads, pulls, sync, the workflow checks) takes one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from ..core.validate import did_you_mean
from ..core.workflow import kind_for, load_workflow
from ..errors import CloudError, UsageError
from ..ports import SILENT, Bucket, Progress

if TYPE_CHECKING:
    from ..core.spec import Spec

# ComfyUI's folders under the mounted data directory (EAS creates them on first start too).
MODEL_KINDS = (
    "checkpoints",
    "loras",
    "vae",
    "clip",
    "clip_vision",
    "controlnet",
    "diffusion_models",
    "unet",
    "text_encoders",
    "upscale_models",
    "embeddings",
    "style_models",
    "styles",
    "ipadapter",
)
MODELS, WHEELS, NODES, OUTPUT = "models/", "models/whl/", "custom_nodes/", "output/"
LAYOUT = (*(f"{MODELS}{k}/" for k in MODEL_KINDS), WHEELS, NODES, "input/", OUTPUT, "temp/")
SKIP_IN_NODES = {"__pycache__", ".git", ".github", ".DS_Store", ".venv", "node_modules"}
_OSS_URI = re.compile(r"^oss://(?P<bucket>[a-z0-9][a-z0-9-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?$")


# -- where the mount is ----------------------------------------------------------------------------
def parse_oss_uri(uri: str) -> tuple[str, str]:
    """``oss://bucket/prefix/`` -> (bucket name, prefix); the prefix is "" or ends with "/"."""
    m = _OSS_URI.match(uri)
    if not m:
        raise UsageError(f"not an OSS URI: {uri!r}", "expected oss://bucket/prefix/")
    prefix = m.group("prefix") or ""
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return m.group("bucket"), prefix


@dataclass(frozen=True)
class Mount:
    """The service's mounted folder: one bucket (a client) and the prefix ComfyUI's data is under."""

    bucket: Bucket
    prefix: str = ""  # "" or ending with "/"

    @classmethod
    def open(cls, spec: "Spec", progress: Progress = SILENT, *, check: bool = True) -> "Mount":
        """The spec's ``storage.oss`` through the OSS adapter; with ``check``, a missing bucket or one
        in another region than the service is refused before anything is sent."""
        from ..adapters.oss import OssClient

        oss = (spec.data.get("storage") or {}).get("oss")
        if not oss:
            raise UsageError(f"{spec.file}: storage.oss is not set", "storage commands work on the mounted OSS folder")
        name, prefix = parse_oss_uri(oss)
        mount = cls(OssClient(name, spec.region), prefix)
        progress.debug(f"bucket {name}, prefix {prefix!r}, region {spec.region}")
        if check:
            check_bucket(mount.bucket, mount.region)
        return mount

    @property
    def region(self) -> str:
        return self.bucket.region

    def key(self, relative: str) -> str:
        """The object key of a path relative to the mounted folder."""
        return self.prefix + relative.lstrip("/")

    def url(self, key: str = "") -> str:
        """``oss://bucket/key``, as people read it."""
        return f"oss://{self.bucket.name}/{key}"

    def place(self, targets: Iterable[tuple[Path, str]]) -> list[tuple[Path, str]]:
        """(file, key) pairs for the upload engine from (file, path under the mount) pairs."""
        return [(file, self.key(relative)) for file, relative in targets]


# -- the bucket itself ---------------------------------------------------------------------------
def check_bucket(bucket: Bucket, region: str, *, create: bool = False) -> bool:
    """Refuse a missing bucket or one in another region before any data is sent; True if created."""
    actual = bucket.bucket_region()
    if actual is None and create:
        bucket.create_bucket()
        return True
    if actual is None:
        raise CloudError(
            f"bucket {bucket.name} does not exist",
            code="NoSuchBucket",
            hint="create it in the service's region first",
        )
    if actual != region:
        raise CloudError(
            f"bucket {bucket.name} is in {actual} but the service is in {region}; EAS mounts buckets of its own region only",
            code="BucketRegionMismatch",
        )
    return False


def init_layout(bucket: Bucket, prefix: str) -> list[str]:
    """Create the folders ComfyUI expects under ``prefix`` (idempotent); returns the keys created.

    Two listings (the prefix and its models/) tell what is there, as marker objects or as
    folders that already hold files."""
    existing: set[str] = set()
    for folder in (prefix, prefix + MODELS):
        existing.update(key for key, _, _, _ in bucket.list(folder, "/"))
    created = []
    for folder in LAYOUT:
        if prefix + folder not in existing:
            bucket.put(prefix + folder, b"")
            created.append(prefix + folder)
    return created


def list_folder(mount: Mount, path: str = "", *, recursive: bool = False) -> list[dict[str, Any]]:
    """Files and folders under ``path`` on the mount: name (relative to the mount), size, folder."""
    prefix = mount.key(path.strip("/") + "/" if path.strip("/") else "")
    return [
        {"name": key[len(mount.prefix):], "size": size, "folder": folder}
        for key, size, folder, _ in mount.bucket.list(prefix, "" if recursive else "/")
        if key != prefix
    ]


# -- what goes where -----------------------------------------------------------------------------
# Paths are relative to the mounted folder; ``Mount.key``/``Mount.place`` make them object keys.
def check_kind(kind: str) -> str:
    """A models/ folder ComfyUI knows, or a usage error naming the near miss."""
    if kind not in MODEL_KINDS:
        raise UsageError(
            f"unknown model folder {kind!r}; expected one of {', '.join(MODEL_KINDS)}", did_you_mean(kind, MODEL_KINDS), param="kind"
        )
    return kind


def model_path(kind: str, name: str) -> str:
    """Where a model file goes: ``models/<kind>/<name>``."""
    return f"{MODELS}{kind}/{name}"


def model_targets(files: Iterable[Path], kind: str | None = None, workflow: Path | None = None) -> list[tuple[Path, str]]:
    """(file, path) for model files: in ``models/<kind>/``, the ``kind`` given for all of them or,
    with an API-format ``workflow``, the folder its loader node expects each file in (``kind``
    then covers the files the workflow does not use)."""
    files = list(files)
    if kind is not None:
        check_kind(kind)
    kinds: dict[Path, str | None] = {f: kind for f in files}
    if workflow is not None:
        flow = load_workflow(workflow)
        for f in files:
            guessed = kind_for(flow, f.name)
            if guessed is None and kind is None:
                raise UsageError(f"{f.name} is not used by {workflow}", "name the model kind")
            kinds[f] = kind or guessed
    elif kind is None:
        raise UsageError("name the model kind (e.g. checkpoints) or a workflow that uses the files", param="kind")
    return [(f, model_path(str(kinds[f]), f.name)) for f in files]


def wheel_targets(wheels: Iterable[Path]) -> list[tuple[Path, str]]:
    """(wheel, path) for wheels: ``models/whl/``, where the service installs them from at start."""
    wheels = list(wheels)
    for w in wheels:
        if not w.name.endswith(".whl"):
            raise UsageError(f"{w}: not a wheel (expected a .whl file)")
    return [(w, WHEELS + w.name) for w in wheels]


def node_targets(folders: Iterable[Path]) -> list[tuple[Path, str]]:
    """(file, path) for custom node folders: each under ``custom_nodes/<folder name>/``."""
    return [(f, NODES + rel) for folder in folders for f, rel in node_files(folder)]


def node_files(folder: Path) -> Iterator[tuple[Path, str]]:
    """(file, path relative to the custom_nodes/ root) for a custom node folder, skipping caches."""
    if not folder.is_dir():
        raise UsageError(f"{folder}: not a folder", "nodes push takes custom node folders")
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_IN_NODES)
        for name in sorted(files):
            if name in SKIP_IN_NODES or name.endswith(".pyc"):
                continue
            path = Path(root) / name
            yield path, f"{folder.name}/{path.relative_to(folder).as_posix()}"
