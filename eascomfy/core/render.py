"""Render a resolved spec into the EAS service JSON that CreateService accepts.

``autoscaling:`` and ``schedules:`` are not in it: deploy applies them through the AutoScaler and
CronScaler APIs (core/scaling.py, docs/control-plane.md "Scaling").

template (templates/service.yaml) <- the edition's ``service`` fragment <- what the spec says
<- the spec's ``overrides``; merged as data (see merge.py), keys sorted for byte-stable output.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from ..errors import SpecError
from . import health, network, wire
from .editions import load_template
from .merge import canonical, deep_merge, merge_all
from .secrets import env_text
from .spec import Spec

MANAGED_BY_LABEL = "eascomfy/managed-by"
# What was deployed: the spec file's name, and the environment (absent when none was), so that
# update-image and rollback act on the environment the service runs (core/guard.py).
SPEC_LABEL = "eascomfy/spec"
ENV_LABEL = "eascomfy/env"


def image_uri(spec: Spec) -> str:
    image = spec.data["image"]
    if image.get("uri"):
        return image["uri"]
    host = wire.REGISTRY_HOSTS[image["registry"]].format(region=spec.region)
    return f"{host}/{wire.IMAGE_REPOSITORY}:{image['version']}{spec.edition.image_suffix or ''}"


def run_command(spec: Spec, base: str) -> str:
    """The container's script: wheels first, then ComfyUI with --data-dir = the mount path."""
    data = spec.data
    storage = data.get("storage")
    command = base
    if storage:
        command += f" --data-dir {shlex.quote(storage['mount_path'])}"
    if data.get("extra_args"):
        command += " " + " ".join(shlex.quote(a) for a in data["extra_args"])
    if data.get("wheels"):
        whl_dir = storage["mount_path"].rstrip("/") + "/models/whl/"
        wheels = " ".join(shlex.quote(whl_dir + w) for w in data["wheels"])
        command = f"pip install {wheels} && {command}"
    return command


def _storage(spec: Spec) -> list[dict[str, Any]]:
    storage = spec.data.get("storage")
    if not storage:
        return []
    if "oss" in storage:
        backend: dict[str, Any] = {"path": storage["oss"], wire.OSS_READ_ONLY_KEY: storage["read_only"]}
        if storage.get("endpoint"):
            backend["endpoint"] = storage["endpoint"]
        return [{"mount_path": storage["mount_path"], "oss": backend}]
    nas = storage["nas"]
    return [
        {
            "mount_path": storage["mount_path"],
            wire.NFS_KEY: {"server": nas["server"], "path": nas["path"], wire.OSS_READ_ONLY_KEY: storage["read_only"]},
        }
    ]


def _base_container(template: dict[str, Any], edition_fragment: dict[str, Any]) -> dict[str, Any]:
    return merge_all((template.get("containers") or [{}])[0], (edition_fragment.get("containers") or [{}])[0])


def container_port(spec: Spec) -> Any:
    """The port ComfyUI listens on (the template's, or the edition's), before ``overrides``."""
    return _base_container(load_template(spec.project_dir), spec.edition.service).get("port")


def _container(spec: Spec, template: dict[str, Any], edition_fragment: dict[str, Any]) -> dict[str, Any]:
    base = _base_container(template, edition_fragment)
    container = dict(base)
    container["image"] = image_uri(spec)
    container["script"] = run_command(spec, base.get("script", ""))
    env = spec.data.get("env") or {}
    if env:
        container["env"] = [{"name": k, "value": env_text(v)} for k, v in sorted(env.items())]
    if spec.data.get("pip"):
        outer, inner = wire.PIP_REQUIREMENTS
        container[outer] = {inner: list(spec.data["pip"])}
    container.update(health.render(spec.data))
    return container


def comfy_container(spec: Spec) -> dict[str, Any]:
    """The ComfyUI container (containers[0]) as the spec renders it, before ``overrides``."""
    if not spec.edition.can("api_deploy"):
        return {}
    return _container(spec, load_template(spec.project_dir), spec.edition.service)


def _resources(spec: Spec) -> dict[str, Any]:
    res = spec.data["resources"]
    out: dict[str, Any] = {"metadata": {"instance": res["instances"]}}
    if res.get("resource_group"):
        meta = out["metadata"]
        meta["resource"] = res["resource_group"]
        for key, eas_key in (("cpu", "cpu"), ("memory", "memory"), ("gpu", "gpu"), ("burstable", "resource_burstable")):
            if key in res:
                meta[eas_key] = res[key]
    else:
        types = [res["instance_type"], *res.get("fallback_instance_types", [])]
        out["cloud"] = {"computing": {"instances": [{"type": t} for t in types]}}
    return out


def _queue(spec: Spec) -> dict[str, Any]:
    queue = spec.data.get("queue")
    if not queue:
        return {}
    block = {wire.QUEUE_FIELDS[k]: queue[k] for k in ("cpu", "memory") if k in queue}
    block.update(queue.get("extra") or {})
    return {wire.QUEUE_KEY: block}


def _warmup(spec: Spec) -> dict[str, Any]:
    if not spec.data.get("warmup"):
        return {}
    from .warmup import oss_path

    return {wire.WARMUP_KEY: oss_path(spec)}


def render(spec: Spec) -> dict[str, Any]:
    """The CreateService body for ``spec``; for console-only editions, what the console needs.
    It carries the secret env values (``core.secrets.mask_config`` hides them for people)."""
    for name, variable in spec.unresolved.items():
        raise SpecError(
            f"the environment variable {variable} is not set",
            location=spec.positions.location(("env", name)),
            path=f"env.{name}",
            hint=f"export {variable} (the value is read from the environment, never stored in the spec)",
        )
    if not spec.edition.can("api_deploy"):
        return render_console(spec)
    template = load_template(spec.project_dir)
    fragment = spec.edition.service
    data = spec.data
    metadata: dict[str, Any] = {"name": data["name"]}
    if data.get("workspace_id"):
        metadata["workspace_id"] = data["workspace_id"]
    derived = merge_all(
        {"name": data["name"], "metadata": metadata},
        _resources(spec),
        {"containers": [_container(spec, template, fragment)]},
        {"storage": _storage(spec)} if data.get("storage") else {},
        _queue(spec),
        network.render(data),
        _warmup(spec),
    )
    base = deep_merge(template, {k: v for k, v in fragment.items() if k != "containers"})
    doc = deep_merge(deep_merge(base, derived), data.get("overrides") or {})
    return canonical(doc)


def render_console(spec: Spec) -> dict[str, Any]:
    """EAS has no CreateService form for this edition: the console scenario's parameters."""
    res = spec.data["resources"]
    return canonical(
        {
            "deployable_by_api": False,
            "reason": f"the {spec.edition.title} can only be created by the console's scenario-based deployment",
            "console": {
                **spec.edition.console,
                "region": spec.region,
                "service_name": spec.name,
                "instance_type": res["instance_type"],
                **({"workspace_id": spec.data["workspace_id"]} if spec.data.get("workspace_id") else {}),
            },
        }
    )


def labels(spec: Spec) -> dict[str, str]:
    """The labels eascomfy sets on the service: the user's plus its own marks."""
    out = dict(spec.data.get("labels") or {})
    out[MANAGED_BY_LABEL] = "eascomfy"
    out["eascomfy/edition"] = spec.edition.name
    out[SPEC_LABEL] = Path(spec.file).name
    if spec.env is not None:
        out[ENV_LABEL] = spec.env
    return out


def dumps(doc: Any) -> str:
    """The one JSON formatting of rendered output: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
