"""The mounted OSS folder: the folders ComfyUI expects in it, the bucket check, where files go."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from ..errors import CloudError, UsageError
from ..ports import Bucket

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
LAYOUT = (*(f"models/{k}/" for k in MODEL_KINDS), "models/whl/", "custom_nodes/", "input/", "output/", "temp/")
SKIP_IN_NODES = {"__pycache__", ".git", ".github", ".DS_Store", ".venv", "node_modules"}



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
            hint="create it with `eascomfy storage init --create-bucket`",
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
    for folder in (prefix, prefix + "models/"):
        existing.update(key for key, _, _, _ in bucket.list(folder, "/"))
    created = []
    for folder in LAYOUT:
        if prefix + folder not in existing:
            bucket.put(prefix + folder, b"")
            created.append(prefix + folder)
    return created


# -- what goes where -----------------------------------------------------------------------------
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
