"""Load ``eascomfy.yaml``: parse, overlay an environment, validate, resolve defaults, check rules.

Precedence, lowest first: edition defaults < schema defaults for unset fields < the spec <
the environment overlay (``environments.<env>`` in the file, or ``eascomfy.<env>.yaml`` beside
it) < command-line flags. Every problem is a ``SpecError`` naming the file, line and field path.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import Location, SpecError, UsageError
from . import health
from .editions import Edition, UnknownEdition, load_edition
from .fleet import for_region, pick_region, regions_problems
from .instances import gpu_count
from .merge import apply_defaults, deep_merge
from .overrides import override_problems
from .regions import region_problem
from .scaling import problems as scaling_problems
from .secrets import Secrets, resolve_env
from .validate import Violation, Validator, did_you_mean, load_schema, raise_first
from .yamlio import PathT, Positions, load_yaml, read_text

DEFAULT_FILE = "eascomfy.yaml"
_OSS_ENDPOINT_REGION = re.compile(r"^oss-([a-z]{2,3}-[a-z0-9-]+?)(-internal)?\.aliyuncs\.com$")


@dataclass
class Spec:
    """A resolved spec: every default applied, every rule passed."""

    file: str
    data: dict[str, Any]
    edition: Edition
    env: str | None = None
    warnings: list[str] = field(default_factory=list)
    user: dict[str, Any] = field(default_factory=dict)  # what the user's files and flags set
    positions: Positions = field(default_factory=Positions)
    secrets: Secrets = field(default_factory=Secrets)  # which env values are secret, and their values
    unresolved: dict[str, str] = field(default_factory=dict)  # env name -> ${env:VAR} not set

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def region(self) -> str:
        return self.data["region"]

    @property
    def project_dir(self) -> Path:
        return Path(self.file).parent

    @property
    def files(self) -> list[Path]:
        """The files this spec was read from: the spec and, with an environment, its overlay."""
        found = dict.fromkeys([self.file, *(file for file, _ in self.positions.lines.values())])
        return [Path(f) for f in found]


def _spec_schema() -> dict[str, Any]:
    return load_schema("spec.schema.json")


def _read(path: Path) -> tuple[Any, Positions]:
    display = str(path)
    data, positions = load_yaml(read_text(path, display), display)
    if data is None:
        raise SpecError(
            "is empty: expected a mapping with at least name, region and edition",
            location=Location(display),
            hint="create one with `eascomfy init`",
        )
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        raise SpecError(f"expected a mapping at the top level, got {kind}", location=Location(display, 1))
    return data, positions


def _overlay_files(path: Path) -> dict[str, Path]:
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    found = {}
    for p in path.parent.glob(f"{stem}.*{path.suffix or '.yaml'}"):
        env = p.name[len(stem) + 1 : len(p.name) - len(path.suffix or ".yaml")]
        if env and "." not in env:
            found[env] = p
    return found


def known_environments(path: str | Path) -> list[str]:
    """The environments a spec file offers: ``environments.<name>`` and ``<stem>.<name>.yaml``
    files beside it (sorted). Read without validating: for knowing whether a name is needed."""
    path = Path(path)
    try:
        base, _ = _read(path)
    except SpecError:
        base = {}
    block = base.get("environments") if isinstance(base, dict) else None
    return sorted(set(block if isinstance(block, dict) else {}) | set(_overlay_files(path)))


def _partial_problems(
    data: dict[str, Any], positions: Positions, where: str, at: PathT = (), overlay: bool = False
) -> None:
    """Check a partial spec (a base file, or an overlay at path ``at``): all but required fields."""
    schema = _spec_schema()
    problems = Validator(schema, positions.plain, required=False, overlay=overlay).problems(data, schema, at)
    raise_first(problems, positions, where)


def load_spec(
    path: str | Path = DEFAULT_FILE,
    env: str | None = None,
    edition: str | None = None,
    region: str | None = None,
) -> Spec:
    """Load, overlay, validate and resolve a spec file. Raises ``SpecError`` or ``UsageError``.

    A spec that names several ``regions`` resolves for one of them: ``region`` (refused when
    missing or not listed; ``load_specs`` gives them all). A single-region spec ignores ``region``."""
    user, user_pos, ed = _load_user(Path(path), env, edition)
    if "regions" in user:
        region = pick_region(user["regions"], region, str(path))
        return resolve(str(path), *for_region(user, user_pos, region), ed, env)
    return resolve(str(path), user, user_pos, ed, env)


def load_specs(path: str | Path = DEFAULT_FILE, env: str | None = None, edition: str | None = None) -> list[Spec]:
    """A spec file's services: one, or one per region of ``regions`` (in the order listed); every
    one checked before any is returned."""
    user, user_pos, ed = _load_user(Path(path), env, edition)
    if "regions" not in user:
        return [resolve(str(path), user, user_pos, ed, env)]
    return [resolve(str(path), *for_region(user, user_pos, r), ed, env) for r in user["regions"]]


def _load_user(path: Path, env: str | None, edition: str | None) -> tuple[dict[str, Any], Positions, Edition]:
    """What the file (its environment overlay, ``--edition``) sets, schema-checked, and its edition."""
    base, positions = _read(path)
    schema = _spec_schema()
    _partial_problems(base, positions, str(path))
    environments: dict[str, Any] = base.pop("environments", None) or {}
    for env_name, overlay in environments.items():
        if isinstance(overlay, dict) and "environments" in overlay:
            raise SpecError(
                "an environment overlay cannot define environments",
                location=positions.location(("environments", env_name, "environments")),
                path=f"environments.{env_name}.environments",
            )
        _partial_problems(overlay, positions, str(path), ("environments", env_name), overlay=True)

    user, user_pos = base, positions
    if env is not None:
        files = _overlay_files(path)
        known = sorted(set(environments) | set(files))
        if env in environments and env in files:
            raise SpecError(
                f"environment {env!r} is defined twice: environments.{env} and {files[env].name}",
                location=positions.location(("environments", env)),
                hint="keep one of the two",
            )
        if env in environments:
            overlay, overlay_pos = environments[env], positions.under(("environments", env))
        elif env in files:
            overlay, overlay_pos = _read(files[env])
            if "environments" in overlay:
                raise SpecError(
                    "an environment overlay cannot define environments",
                    location=overlay_pos.location(("environments",)),
                    path="environments",
                )
            _partial_problems(overlay, overlay_pos, str(files[env]), overlay=True)
        else:
            hint = did_you_mean(env, known)
            listing = ", ".join(known) if known else "none defined"
            raise UsageError(f"unknown environment {env!r} (known: {listing})", hint, param="env")
        user, user_pos = deep_merge(base, overlay), positions.overlay(overlay_pos)

    if edition is not None:
        user = {**user, "edition": edition}
    problems = Validator(schema, user_pos.plain).problems(user)
    raise_first(problems, user_pos, str(path))
    raise_first(regions_problems(user), user_pos, str(path))

    project_dir = path.parent
    try:
        ed = load_edition(user["edition"], project_dir)
    except UnknownEdition as exc:
        if edition is not None:
            raise UsageError(exc.message(), exc.hint, param="edition") from None
        raise SpecError(
            exc.message(), location=user_pos.location(("edition",)), path="edition", hint=exc.hint
        ) from None
    return user, user_pos, ed


def resolve(file: str, user: dict[str, Any], positions: Positions, edition: Edition, env: str | None) -> Spec:
    """The spec from what the user set (already schema-valid): the edition's defaults and the
    schema's under it, then the rules (``finish``). ``load_spec`` and ``core.image`` both end here."""
    data = apply_defaults(deep_merge(edition.defaults, user), _spec_schema())
    health.settle(data, user)
    spec = Spec(file=file, data=data, edition=edition, env=env, user=user, positions=positions)
    finish(spec)
    return spec


def finish(spec: Spec, environ: Mapping[str, str] | None = None) -> None:
    """The last steps of resolving a spec: ``env`` values filled from the environment
    (``${env:NAME}``, secrets marked), then the rules. A variable that is not set is a warning
    here and an error where the body is rendered (render, plan, deploy): ``validate`` runs
    without the secrets."""
    resolved = resolve_env(spec.data.get("env") or {}, os.environ if environ is None else environ)
    spec.data["env"], spec.secrets, spec.unresolved = resolved.env, resolved.secrets, resolved.unresolved
    for name, variable in resolved.unresolved.items():
        spec.warnings.append(f"env.{name}: ${{env:{variable}}} is not set here; render, plan and deploy need it")
    problems = [Violation(("env", name), message) for name, message in resolved.problems]
    raise_first(problems, spec.positions, spec.file)
    check_rules(spec)


def _get(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _present(value: Any) -> bool:
    return value is not None and value != [] and value != {}


def _path(dotted: str) -> PathT:
    return tuple(dotted.split("."))


def check_rules(spec: Spec) -> None:
    """Edition rules from the edition's data, then the rules every edition shares."""
    data, user, ed = spec.data, spec.user, spec.edition
    problems: list[Violation] = []
    for rule in ed.rules:
        value = _get(data, rule.field)
        if rule.present is not None:
            fired = _present(value) == rule.present
        else:
            fired = isinstance(value, (int, float)) and not isinstance(value, bool) and value > (rule.above or 0)
        if not fired:
            continue
        if rule.error:
            problems.append(Violation(_path(rule.field), rule.error))
        elif rule.warning:
            spec.warnings.append(f"{rule.field}: {rule.warning}")

    if data.get("region_check", True):
        unknown = region_problem(spec.region)
        if unknown is not None:
            problems.append(unknown)
    if ed.regions and spec.region not in ed.regions:
        problems.append(
            Violation(
                ("region",),
                f"the {ed.title} is only available in {', '.join(ed.regions)}, not {spec.region}",
            )
        )
    problems += _resource_problems(spec)
    problems += _storage_problems(spec)
    problems += _queue_type_problems(spec)
    image = user.get("image") or {}
    if "uri" in image and "version" in image:
        problems.append(Violation(("image",), "set image.uri or image.version, not both"))
    if ed.image_suffix is None and ed.can("api_deploy"):
        problems.append(Violation(("edition",), f"edition {ed.name} has no image suffix but is deployable"))
    problems += scaling_problems(data, user, ed.can("async_api"), ed.name)
    if data.get("overrides"):
        from .render import comfy_container  # render builds on Spec: imported when needed

        problems += override_problems(data["overrides"], comfy_container(spec), {"name": spec.name, "region": spec.region})
    if data.get("health") and ed.can("api_deploy"):
        from .render import container_port

        port = container_port(spec)
        problems += health.problems(data, port)
        spec.warnings += health.warnings(data, port)
    if data.get("warmup"):
        from .warmup import problems as warmup_problems

        problems += warmup_problems(spec)
    raise_first(problems, spec.positions, spec.file)


def _resource_problems(spec: Spec) -> list[Violation]:
    res, user_res = spec.data["resources"], spec.user.get("resources") or {}
    problems = []
    if "resource_group" in res:
        for key in ("instance_type", "fallback_instance_types"):
            if key in user_res:
                problems.append(
                    Violation(
                        ("resources", key),
                        "instance types are for public resources; a resource group takes cpu, memory and gpu",
                    )
                )
        for key in ("cpu", "memory"):
            if key not in res:
                problems.append(Violation(("resources",), f"resources.resource_group needs resources.{key}"))
    else:
        for key in ("cpu", "memory", "gpu", "burstable"):
            if key in user_res:
                problems.append(
                    Violation(
                        ("resources", key),
                        f"resources.{key} applies to a dedicated resource group only",
                        "set resources.resource_group, or choose an instance_type",
                    )
                )
        types = [res["instance_type"], *res.get("fallback_instance_types", [])]
        for t in types:
            n = gpu_count(t)
            if n is not None and n > 1:
                spec.warnings.append(
                    f"resources: {t} has {n} GPUs, but ComfyUI uses one GPU per instance; "
                    "the others stay idle (choose a single-GPU type such as ml.gu7i.c16m60.1-gu30)"
                )
        if res["instance_type"] in res.get("fallback_instance_types", []):
            problems.append(Violation(("resources", "fallback_instance_types"), "lists the main instance_type again"))
    if res.get("gpu") is not None and res["gpu"] > 1:
        spec.warnings.append(f"resources.gpu: {res['gpu']} GPUs per instance, but ComfyUI uses one")
    return problems


def _storage_problems(spec: Spec) -> list[Violation]:
    storage, data = spec.data.get("storage"), spec.data
    problems = []
    if not storage:
        if data.get("wheels"):
            problems.append(
                Violation(("wheels",), "wheels are installed from <mount>/models/whl/, which needs storage (set storage.oss)")
            )
        return problems
    endpoint = storage.get("endpoint")
    if endpoint:
        if "nas" in storage:
            problems.append(Violation(("storage", "endpoint"), "storage.endpoint is an OSS endpoint; NAS has none"))
        m = _OSS_ENDPOINT_REGION.match(endpoint)
        if m and m.group(1) != spec.region:
            problems.append(
                Violation(
                    ("storage", "endpoint"),
                    f"the bucket's endpoint is in {m.group(1)} but the service is in {spec.region}; "
                    "EAS mounts buckets of its own region only",
                )
            )
    return problems


# EAS gives a service the queue (and the sink its results are read from) when its config has
# metadata.type "Async": alipai pai/model/_model.py sets it for an async service
# (add_option("metadata.type", ServiceType.Async)), pai/predictor.py checks type == "Async".
ASYNC_TYPE = "Async"


def _queue_type_problems(spec: Spec) -> list[Violation]:
    """An edition that works through the queue must render ``metadata.type: Async``; overrides
    that drop or change it would deploy a synchronous service with no queue and no sink."""
    ed = spec.edition
    if not ed.can("async_api") or not ed.can("api_deploy"):
        return []
    why = (
        "EAS gives a service its queue, and the sink results come from, only when metadata.type is Async; "
        "without it the service is synchronous and submitted jobs have nowhere to go"
    )
    overrides = spec.data.get("overrides") or {}
    if "metadata" in overrides:
        metadata = overrides["metadata"]
        if metadata is None:
            return [Violation(("overrides", "metadata"), f"the {ed.title} needs metadata.type {ASYNC_TYPE}, which this "
                            f"removes with the rest of metadata: {why}", "keep metadata, or choose another edition")]
        if isinstance(metadata, dict) and "type" in metadata:
            if metadata["type"] == ASYNC_TYPE:
                return []
            change = "removes it" if metadata["type"] is None else f"sets {metadata['type']!r}"
            return [Violation(("overrides", "metadata", "type"), f"the {ed.title} needs metadata.type {ASYNC_TYPE}, and "
                            f"this {change}: {why}", f"remove this override: the edition sets {ASYNC_TYPE}")]
    if (ed.service.get("metadata") or {}).get("type") != ASYNC_TYPE:
        return [Violation(("edition",), f"edition {ed.name} works through the queue (async_api) but its service does "
                        f"not set metadata.type {ASYNC_TYPE}: {why}")]
    return []
