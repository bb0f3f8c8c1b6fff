"""Adopt a live service: its EAS service config back into the fields of an ``eascomfy.yaml``.

Pure: a function of the ServiceConfig that DescribeService returned, its labels and the
editions. Terraform's ``import`` + ``plan -generate-config-out`` is the model: the written spec,
rendered again, must be the live config, so a plan right after an import shows no change.

Three steps, each pure and used by ``control.importer``:
- ``spec_fields``: the fields eascomfy models (edition, image, storage, resources, queue,
  autoscaling, health, network, env, pip, wheels, extra_args, labels), each taken only when it renders back to
  exactly what the service has; what could not be read is said in ``notes``.
- ``overrides_for``: the merge patch from what those fields render to, to the live config: every
  key eascomfy does not model (or could not map) goes into ``overrides:`` so nothing is lost.
- ``spec_text``: the commented YAML.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

import yaml

from . import health as health_checks, network as networking, wire
from .secrets import looks_secret
from .editions import Edition

OWN_LABEL_PREFIX = "eascomfy/"
_TAG = re.compile(r"^(?P<version>\d+\.\d+(?:\.\d+)?)(?P<suffix>-[a-z0-9-]+)?$")
_INSTANCE_TYPE = re.compile(r"^(ml|ecs)\.[a-z0-9.-]+$")
_RESOURCE_GROUP = re.compile(r"^eas-r-[a-z0-9]+$")
_OSS_DIR = re.compile(r"^oss://[a-z0-9][a-z0-9-]{1,61}[a-z0-9](/([^\s]*/)?)?$")
_METRIC = re.compile(r"^[a-z][a-z0-9_\[\]]*$")


@dataclass
class Imported:
    """The spec fields read from a live service, and what could not be read."""

    data: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # what could not be mapped, or was guessed
    secrets: list[str] = field(default_factory=list)  # fields that look like secrets (now in the file)
    why: dict[str, str] = field(default_factory=dict)  # field -> where it came from (a YAML comment)


def same(a: Any, b: Any) -> bool:
    """JSON equality (1 and 1.0 and True differ, as they do on the wire)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _container(config: dict[str, Any]) -> dict[str, Any]:
    containers = config.get("containers")
    if isinstance(containers, list) and containers and isinstance(containers[0], dict):
        return containers[0]
    return {}


# -- edition and image -----------------------------------------------------------------------------
def _edition_and_image(
    config: dict[str, Any], region: str, editions: list[Edition], out: Imported
) -> None:
    image = str(_container(config).get("image") or "")
    metadata = config.get("metadata") if isinstance(config.get("metadata"), dict) else {}
    by_suffix = {e.image_suffix: e for e in editions if e.image_suffix is not None and e.can("api_deploy")}
    registry = None
    for name, host in wire.REGISTRY_HOSTS.items():
        prefix = f"{host.format(region=region)}/{wire.IMAGE_REPOSITORY}:"
        if image.startswith(prefix):
            registry, tag = name, image[len(prefix):]
            break
    m = _TAG.match(tag) if registry else None
    if m and (m["suffix"] or "") in by_suffix:
        edition = by_suffix[m["suffix"] or ""]
        out.data["edition"] = edition.name
        out.why["edition"] = f'from the image tag {tag} (suffix "{m["suffix"] or ""}")'
        out.data["image"] = {"version": m["version"]} if registry == "vpc" else {"version": m["version"], "registry": registry}
        return
    # A custom image (or an official tag eascomfy does not know): the edition from the metadata.
    is_async = metadata.get("type") == "Async"
    out.data["edition"] = "api" if is_async else "standard"
    out.why["edition"] = "guessed from metadata.type" + (" (Async)" if is_async else " (not Async)")
    out.notes.append(f"edition: the image {image or '(none)'} is not an official ComfyUI tag; the edition was {out.why['edition']}")
    if image:
        out.data["image"] = {"uri": image}


# -- storage ---------------------------------------------------------------------------------------
def _storage(config: dict[str, Any], out: Imported) -> None:
    mounts = config.get("storage")
    if not mounts:
        return
    if not isinstance(mounts, list):
        out.notes.append("storage: not a list; kept in overrides")
        return
    data_dir = _data_dir(str(_container(config).get("script") or ""))
    chosen = next((m for m in mounts if isinstance(m, dict) and m.get("mount_path") == data_dir), None)
    if chosen is None and len(mounts) == 1 and isinstance(mounts[0], dict):
        chosen = mounts[0]
    if chosen is None:
        out.notes.append("storage: several mounts and none is ComfyUI's --data-dir; all kept in overrides")
        return
    if len(mounts) > 1:
        out.notes.append("storage: several mounts; the whole storage list is kept in overrides (lists replace)")
    spec: dict[str, Any] = {}
    if isinstance(chosen.get("oss"), dict):
        oss = chosen["oss"]
        path = str(oss.get("path") or "")
        if not _OSS_DIR.match(path):
            out.notes.append(f"storage: the OSS path {path!r} is not a directory oss://bucket/prefix/; kept in overrides")
            return
        spec["oss"] = path
        if oss.get("endpoint"):
            spec["endpoint"] = oss["endpoint"]
        read_only = oss.get(wire.OSS_READ_ONLY_KEY)
    elif isinstance(chosen.get(wire.NFS_KEY), dict):
        nfs = chosen[wire.NFS_KEY]
        spec["nas"] = {"server": nfs.get("server"), "path": nfs.get("path") or "/"}
        read_only = nfs.get(wire.OSS_READ_ONLY_KEY)
    else:
        out.notes.append("storage: a mount of a kind eascomfy does not model; kept in overrides")
        return
    spec["mount_path"] = chosen.get("mount_path") or "/code/data-oss"
    if read_only is True:
        spec["read_only"] = True
    out.data["storage"] = spec


def _data_dir(script: str) -> str | None:
    try:
        words = shlex.split(script)
    except ValueError:
        return None
    for i, word in enumerate(words[:-1]):
        if word == "--data-dir":
            return words[i + 1]
    return None


# -- the run command -------------------------------------------------------------------------------
def _script(config: dict[str, Any], base: str, out: Imported) -> None:
    """wheels and extra_args from ``[pip install <whl>... && ]<base> [--data-dir M] [args]``."""
    script = str(_container(config).get("script") or "")
    storage = out.data.get("storage")
    mount = storage["mount_path"] if storage else None
    command = script
    if command.startswith("pip install ") and " && " in command:
        head, command = command.split(" && ", 1)
        whl_dir = (mount or "").rstrip("/") + "/models/whl/"
        try:
            files = shlex.split(head)[2:]
        except ValueError:
            files = []
        if not mount or not files or not all(f.startswith(whl_dir) and f.endswith(".whl") for f in files):
            out.notes.append("containers[0].script: a `pip install` prefix that is not wheels from models/whl/; kept in overrides")
            return
        out.data["wheels"] = [f[len(whl_dir):] for f in files]
    if not command.startswith(base):
        out.notes.append(f"containers[0].script: does not start with the official run command ({base}); kept in overrides")
        return
    try:
        rest = shlex.split(command[len(base):])
    except ValueError:
        rest = None
    if rest is None:
        out.notes.append("containers[0].script: cannot be split into arguments; kept in overrides")
        return
    if mount is not None:
        if rest[:2] != ["--data-dir", mount]:
            out.notes.append("containers[0].script: ComfyUI's --data-dir is not the storage mount path; kept in overrides")
            return
        rest = rest[2:]
    if rest:
        out.data["extra_args"] = rest


# -- resources, queue, autoscaling -----------------------------------------------------------------
def _resources(config: dict[str, Any], out: Imported) -> None:
    metadata = config.get("metadata") if isinstance(config.get("metadata"), dict) else {}
    res: dict[str, Any] = {}
    instances = metadata.get("instance")
    if isinstance(instances, int) and not isinstance(instances, bool) and 0 <= instances <= 1000:
        res["instances"] = instances
    if metadata.get("resource"):
        group = str(metadata["resource"])
        if not _RESOURCE_GROUP.match(group):
            out.notes.append(f"metadata.resource: {group!r} is not a resource group id eas-r-...; kept in overrides")
        else:
            res["resource_group"] = group
            for key, eas_key in (("cpu", "cpu"), ("memory", "memory"), ("gpu", "gpu"), ("burstable", "resource_burstable")):
                if eas_key in metadata:
                    res[key] = metadata[eas_key]
    else:
        computing = (config.get("cloud") or {}).get("computing") if isinstance(config.get("cloud"), dict) else None
        items = computing.get("instances") if isinstance(computing, dict) else None
        types = [i.get("type") for i in items] if isinstance(items, list) and all(isinstance(i, dict) for i in items) else []
        if types and all(isinstance(t, str) and _INSTANCE_TYPE.match(t) for t in types) and len(set(types)) == len(types):
            res["instance_type"] = types[0]
            if types[1:]:
                res["fallback_instance_types"] = types[1:]
        elif items:
            out.notes.append("cloud.computing.instances: not a list of instance types eascomfy models; kept in overrides")
    out.data["resources"] = res


def _queue(config: dict[str, Any], edition: str, out: Imported) -> None:
    queue = config.get(wire.QUEUE_KEY)
    if not isinstance(queue, dict) or edition != "api":
        return
    names = {v: k for k, v in wire.QUEUE_FIELDS.items()}
    spec: dict[str, Any] = {}
    extra = {}
    for key, value in queue.items():
        if key in names and isinstance(value, int) and not isinstance(value, bool):
            spec[names[key]] = value
        else:
            extra[key] = value
    if extra:
        spec["extra"] = extra
    out.data["queue"] = spec


def _health(config: dict[str, Any], edition: Edition | None, out: Imported) -> None:
    """The container's probes; a probe the edition would add and the service has not is null."""
    found, notes = health_checks.read_back(_container(config))
    out.notes += notes
    defaults = (edition.defaults.get("health") if edition is not None else None) or {}
    for kind in health_checks.KINDS:
        if kind in defaults and kind not in found and wire.HEALTH_KEYS[kind] not in _container(config):
            found[kind] = None
    if found:
        out.data["health"] = found


def _network(config: dict[str, Any], out: Imported) -> None:
    found, notes = networking.read_back(config)
    out.notes += notes
    if found:
        out.data["network"] = found


def _autoscaling(config: dict[str, Any], out: Imported) -> None:
    """An autoscaler embedded in the service JSON stays there (in overrides): eascomfy's
    ``autoscaling:`` is applied through the AutoScaler API, another form (docs/control-plane.md)."""
    if isinstance(config.get(wire.AUTOSCALER_KEY), dict):
        out.notes.append("autoscaler: embedded in the service JSON, kept in overrides; `autoscaling:` would apply "
                         "it through the AutoScaler API instead")


# -- env, pip, labels ------------------------------------------------------------------------------
def _env(config: dict[str, Any], out: Imported) -> None:
    env = _container(config).get("env")
    if not env:
        return
    pairs = [(e.get("name"), e.get("value")) for e in env if isinstance(e, dict)] if isinstance(env, list) else []
    names = [n for n, _ in pairs]
    if len(pairs) != len(env) or len(set(names)) != len(names) or not all(isinstance(n, str) and isinstance(v, str) for n, v in pairs):
        out.notes.append("containers[0].env: not a list of distinct name/value strings; kept in overrides")
        return
    if names != sorted(names):
        out.notes.append("containers[0].env: eascomfy writes variables sorted by name and the live order differs, so "
                         "overrides.containers holds the whole container (image included: image.version changes do not "
                         "reach the service until you delete overrides.containers; the deploy after that only sorts env)")
    out.data["env"] = dict(pairs)
    out.secrets += [f"env.{n}" for n in names if looks_secret(n)]


def _pip(config: dict[str, Any], out: Imported) -> None:
    outer, inner = wire.PIP_REQUIREMENTS
    prepare = _container(config).get(outer)
    reqs = prepare.get(inner) if isinstance(prepare, dict) else None
    if isinstance(reqs, list) and reqs and all(isinstance(r, str) for r in reqs) and len(set(reqs)) == len(reqs):
        out.data["pip"] = reqs


def _labels(labels: dict[str, str], out: Imported) -> None:
    user = {k: v for k, v in sorted(labels.items()) if not k.startswith(OWN_LABEL_PREFIX)}
    long = [k for k, v in user.items() if len(v) > 128]
    for key in long:
        out.notes.append(f"label {key}: its value is longer than 128 characters; not imported")
        user.pop(key)
    if user:
        out.data["labels"] = user


def spec_fields(
    name: str, region: str, config: dict[str, Any], labels: dict[str, str], editions: list[Edition],
    base_scripts: dict[str, str],
) -> Imported:
    """``base_scripts``: each edition's run command (the template's, merged with its fragment)."""
    out = Imported({"name": name, "region": region})
    metadata = config.get("metadata") if isinstance(config.get("metadata"), dict) else {}
    if metadata.get("workspace_id"):
        out.data["workspace_id"] = str(metadata["workspace_id"])
    _edition_and_image(config, region, editions, out)
    _storage(config, out)
    _resources(config, out)
    _queue(config, out.data["edition"], out)
    _autoscaling(config, out)
    _health(config, next((e for e in editions if e.name == out.data["edition"]), None), out)
    _network(config, out)
    _script(config, base_scripts.get(out.data["edition"], ""), out)
    _pip(config, out)
    _env(config, out)
    _labels(labels, out)
    return out


# -- overrides -------------------------------------------------------------------------------------
def overrides_for(rendered: Any, live: Any, path: str = "") -> tuple[dict[str, Any], list[str]]:
    """The merge patch (``core.merge`` rules: mappings merge, lists replace, null deletes) that
    turns ``rendered`` into ``live``, and the paths it cannot express (a live value that is null)."""
    patch: dict[str, Any] = {}
    lost: list[str] = []
    for key in sorted(set(rendered) | set(live)):
        where = f"{path}.{key}" if path else key
        if key not in live:
            patch[key] = None
        elif key in rendered and same(rendered[key], live[key]):
            continue
        elif isinstance(live[key], dict) and isinstance(rendered.get(key), dict):
            sub, sub_lost = overrides_for(rendered[key], live[key], where)
            patch[key], lost = sub, lost + sub_lost
        elif live[key] is None or _has_null_in_mapping(live[key]):
            lost.append(where)
        else:
            patch[key] = live[key]
    return patch, lost


def _has_null_in_mapping(value: Any) -> bool:
    if isinstance(value, dict):
        return any(v is None or _has_null_in_mapping(v) for v in value.values())
    return False


def secret_paths(value: Any, path: str = "overrides") -> list[str]:
    """Keys under ``value`` whose names look like secrets (a token, a password, an AccessKey)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, sub in value.items():
            where = f"{path}.{key}"
            if looks_secret(str(key)) and isinstance(sub, (str, int)):
                found.append(where)
            found += secret_paths(sub, where)
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            found += secret_paths(sub, f"{path}[{i}]")
    return found


# -- the commented YAML ----------------------------------------------------------------------------
def _block(key: str, value: Any) -> str:
    return yaml.safe_dump({key: value}, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)


def spec_text(imported: Imported, overrides: dict[str, Any], lost: list[str]) -> str:
    """The commented eascomfy.yaml for ``imported`` (byte-stable: no dates, keys in a fixed order)."""
    data = imported.data
    lines = [
        f"# eascomfy.yaml: imported by `eascomfy import` from the live service {data['name']} in {data['region']}.",
        "# Review it; `eascomfy plan` right after the import shows no change. Reference: docs/spec-reference.md.",
    ]
    notes = imported.notes + [f"{p}: null on the live service; a spec cannot say null (it deletes)" for p in lost]
    if notes:
        lines.append("#")
        lines.append("# Not mapped to eascomfy's fields (kept verbatim in `overrides:` where possible):")
        lines += [f"#   - {n}" for n in notes]
    if imported.secrets:
        lines.append("#")
        lines.append("# WARNING: these look like secrets and are now in this file; keep them out of git:")
        lines += [f"#   - {s}" for s in imported.secrets]
    lines.append("")
    text = "\n".join(lines) + "\n"
    text += _block("name", data["name"]) + _block("region", data["region"])
    if "workspace_id" in data:
        text += _block("workspace_id", data["workspace_id"])
    text += "\n# " + imported.why.get("edition", "") + "\n" + _block("edition", data["edition"])
    sections = [
        ("image", "the official image by version (tag = version + the edition's suffix), or a custom uri"),
        ("storage", "ComfyUI's data directory; mount_path is also its --data-dir"),
        ("resources", "instance types (the first, then fallbacks in order) or a dedicated resource group"),
        ("queue", "the API edition's queue sub-service"),
        ("autoscaling", None),
        ("health", "health checks of the ComfyUI container (null: none of this kind)"),
        ("network", "the VPC the instances run in"),
        ("wheels", "installed from <mount>/models/whl/ before ComfyUI starts"),
        ("extra_args", "appended to ComfyUI's command line"),
        ("pip", None),
        ("env", None),
        ("labels", "your labels; eascomfy keeps its own under eascomfy/"),
    ]
    for key, comment in sections:
        if key in data and data[key] not in ({}, [], None):
            text += "\n" + (f"# {comment}\n" if comment else "") + _block(key, data[key])
    if overrides:
        text += "\n# Raw EAS service JSON that eascomfy does not model, deep-merged last (null deletes a key).\n"
        text += "# Kept so that nothing the service has is lost; remove a key here to let eascomfy own it.\n"
        text += _block("overrides", overrides)
    return text


# -- takeover --------------------------------------------------------------------------------------
def _said_null(overrides: Any, path: str) -> bool:
    """True when the spec's ``overrides`` sets ``path`` (``a.b.c``, no list indexes) to null."""
    node = overrides
    parts = path.split(".")
    for part in parts[:-1]:
        if not isinstance(node, dict) or not isinstance(node.get(part), dict):
            return False
        node = node[part]
    return isinstance(node, dict) and parts[-1] in node and node[parts[-1]] is None


def takeover_removals(changes: list[Any], overrides: dict[str, Any] | None) -> list[str]:
    """The keys a first deploy over a service eascomfy does not manage would remove although the
    spec does not say so (an explicit null in ``overrides`` says so)."""
    return [c.path for c in changes if c.kind == "remove" and not _said_null(overrides or {}, c.path)]
