"""Write the warm-up request file (``core.warmup``) to the mounted bucket, where the service
JSON's ``warm_up_data_path`` points, before the service that reads it is created or updated.

The key is the file's content hash, so writing is idempotent and a file already there (same
size, same CRC-64) is not sent again; an old file is left for the versions that still name it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..crc64 import crc64
from ..ports import Progress
from .mount import Mount

if TYPE_CHECKING:
    from ..core.spec import Spec


def writer(spec: "Spec", progress: Progress) -> Callable[[], None] | None:
    """What deploy calls right before it sends the config (None: the spec has no warm-up)."""
    if not spec.data.get("warmup"):
        return None

    def write() -> None:
        put_request_file(spec, progress)

    return write


def put_request_file(spec: "Spec", progress: Progress) -> str:
    """Upload the request file unless the same bytes are there; its ``oss://`` URL."""
    from ..core.warmup import object_key, request_file

    data = request_file(spec)
    mount = Mount.open(spec, progress)
    key = mount.key(object_key(spec))
    there = mount.bucket.head(key)
    if there is not None and there.size == len(data) and there.crc64 in (None, crc64(data)):
        progress.debug(f"warm-up request file already at {mount.url(key)}")
        return mount.url(key)
    mount.bucket.put(key, data)
    progress.info(f"warm-up request file written: {mount.url(key)}")
    return mount.url(key)
