"""Files in the user's project: ``eascomfy init`` and atomic writes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import SpecError, UsageError

_TEMPLATE = """\
# eascomfy.yaml: one ComfyUI service on Alibaba Cloud PAI-EAS, reviewed in git.
# Reference: docs/spec-reference.md. Check it with `eascomfy validate`, see the EAS service JSON
# with `eascomfy render`. Precedence: edition defaults < this file < environment overlay < flags.

# EAS service name: 3-63 lowercase letters, digits and underscores, starting with a letter.
name: {name}
region: {region}
# workspace_id: "123456"          # PAI workspace id (optional)

# standard (WebUI + sync API), api (async, EAS queue), cluster (multi-user WebUI),
# serverless (console only; cn-shanghai / cn-hangzhou). `eascomfy editions` compares them.
edition: {edition}

image:
  version: "{image_version}"              # tag = version + edition suffix ({tag})
  # registry: vpc                 # vpc (default) or public
  # uri: registry.example.com/team/comfyui:custom   # a custom image instead

{storage}
resources:
  instance_type: {instance_type}
  # fallback_instance_types: [ecs.gn6i-c16g1.4xlarge]   # tried in order when out of stock
  instances: 1
  # resource_group: eas-r-xxxx    # a dedicated group instead (then cpu, memory, gpu)
{queue}
# wheels: [my_node_dep-1.0-py3-none-any.whl]   # from models/whl/ on the mount, installed first
# pip: ["opencv-python-headless==4.10.0.84"]
# env: {{TZ: Asia/Shanghai}}
# labels: {{team: creative}}
# autoscaling: {{min: 1, max: 4, metric: qps, threshold: 10}}
# overrides: {{}}                  # raw EAS service JSON, deep-merged last

# environments:                   # pick with --env prod
#   prod:
#     resources: {{instances: 2}}
"""

_STORAGE_OSS = """\
storage:
  oss: {oss}
  mount_path: /code/data-oss      # also ComfyUI's --data-dir, set for you
"""
_STORAGE_NONE = """\
# storage:                        # needed for your own models, custom nodes and API calls
#   oss: oss://your-bucket/comfyui/
#   mount_path: /code/data-oss
"""
_QUEUE_API = """
queue:                            # the API edition's queue sub-service (extra CPU)
  cpu: 1
  memory: 4000                    # MB
"""


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


def init_spec(
    directory: Path,
    *,
    name: str,
    region: str,
    edition: str,
    oss: str | None = None,
    instance_type: str | None = None,
    image_version: str | None = None,
    force: bool = False,
) -> Path:
    """Write a commented eascomfy.yaml into ``directory``; checked before anything is written."""
    from .core.editions import UnknownEdition, load_edition
    from .core.spec import load_spec

    for flag, value in (("--name", name), ("--region", region)):
        if not value:
            raise UsageError(f"{flag} is required", "e.g. eascomfy init --name comfy_dev --region cn-hangzhou")
    directory = Path(directory)
    path = directory / "eascomfy.yaml"
    if path.exists() and not force:
        raise UsageError(f"{path} exists; not overwritten", "pass --force to replace it")
    try:
        ed = load_edition(edition, directory if directory.is_dir() else None)
    except UnknownEdition as exc:
        raise UsageError(f"--edition: {exc.message()}", exc.hint) from None
    version = image_version or "1.9"
    text = _TEMPLATE.format(
        name=name,
        region=region,
        edition=edition,
        image_version=version,
        tag=f"{version}{ed.image_suffix}" if ed.image_suffix is not None else "console-managed",
        storage=_STORAGE_OSS.format(oss=oss) if oss else _STORAGE_NONE,
        instance_type=instance_type or "ml.gu7i.c16m60.1-gu30",
        queue=_QUEUE_API if ed.capabilities.get("async_api") else "",
    )
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        probe = Path(scratch) / "eascomfy.yaml"
        probe.write_text(text, encoding="utf-8")
        try:
            load_spec(probe)
        except SpecError as exc:
            option = {"name": "--name", "region": "--region", "storage.oss": "--oss"}.get(
                exc.path or "", "--instance-type" if (exc.path or "").startswith("resources") else (exc.path or "")
            )
            raise UsageError(f"{option}: {exc.message}", exc.hint) from None
    write_atomic(path, text)
    return path
