"""``eascomfy init``: the commented eascomfy.yaml, checked before it is written."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import SpecError, UsageError
from .files import check_directory, check_output_file, write_atomic

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
# health: {{startup: {{failure_threshold: 120}}}}   # probes; the edition sets ComfyUI's defaults
# warmup: {{workflow: flows/tiny.json, count: 1}}   # run on new instances before they take traffic
# network: {{vpc_id: vpc-xxxxxxxx, vswitch_id: vsw-xxxxxxxx, security_group_id: sg-xxxxxxxx}}   # your VPC
# overrides: {{}}                  # raw EAS service JSON, deep-merged last

# Environment overlays, picked with --env NAME (or a file eascomfy.NAME.yaml beside this one):
# merged onto the fields above; mappings merge, lists replace, null deletes.
environments:
  prod:
    resources: {{instances: 2}}
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
    from ..core.editions import UnknownEdition, load_edition
    from ..core.spec import load_spec

    for param, value in (("name", name), ("region", region)):
        if not value:
            raise UsageError("is required", "e.g. eascomfy init --name comfy_dev --region cn-hangzhou", param=param)
    directory = Path(directory)
    path = directory / "eascomfy.yaml"
    check_directory(directory)
    check_output_file(path, force=force)
    try:
        ed = load_edition(edition, directory if directory.is_dir() else None)
    except UnknownEdition as exc:
        raise UsageError(exc.message(), exc.hint, param="edition") from None
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
            param = {"name": "name", "region": "region", "storage.oss": "oss"}.get(
                exc.path or "", "instance_type" if (exc.path or "").startswith("resources") else None
            )
            raise UsageError(exc.message if param else f"{exc.path}: {exc.message}", exc.hint, param=param) from None
    write_atomic(path, text)
    return path
