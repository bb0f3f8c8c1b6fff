"""The spec's ``health:`` probes: the edition's ComfyUI defaults settled under what the user set,
the offline rules the schema cannot say, and the probes as EAS's service JSON has them.

EAS takes Kubernetes-style probes on each ``containers[]`` item: ``startup_check``,
``liveness_check``, ``readiness_check``, each one method (``http_get {path, port, scheme}``,
``tcp_socket {port}``, ``exec {command}``) and its timing (``initial_delay_seconds``,
``period_seconds``, ``timeout_seconds``, ``success_threshold``, ``failure_threshold``). Sources:
https://www.alibabacloud.com/help/en/pai/advanced-configuration-health-check (probe kinds,
Kubernetes semantics) and aliyun/alibabacloud-aiops-skills ``health-check.md`` /
``config-schema.md`` (key names); the key names are in ``wire.HEALTH_KEYS`` (docs/unverified.md).
The sources disagree on default timings, so every timing field is always sent.
"""

from __future__ import annotations

from typing import Any

from . import wire
from .validate import Violation, load_schema

KINDS = ("startup", "liveness", "readiness")
METHODS = ("http_get", "tcp_socket", "exec")
# The EAS engine listens on these ports in the instance: "the HTTP server cannot receive requests
# on ports 8080 and 9090 because the EAS engine listens on these ports"
# (https://www.alibabacloud.com/help/en/pai/user-guide/service-deployment-overview).
ENGINE_PORTS = (8080, 9090)


def _timing_defaults() -> dict[str, Any]:
    """The timing fields' defaults, from the schema (one home: docs/spec-reference.md shows them)."""
    props = load_schema("spec.schema.json")["$defs"]["probe"]["properties"]
    return {k: v["default"] for k, v in props.items() if "default" in v}


def settle(data: dict[str, Any], user: dict[str, Any]) -> None:
    """A probe the user gives a method for takes that method only: the edition's default method
    (merged under it field by field) is dropped, so ``startup: {tcp_socket: ...}`` replaces the
    edition's ``http_get`` instead of adding a second method."""
    health, written = data.get("health"), user.get("health")
    if not isinstance(health, dict) or not isinstance(written, dict):
        return
    for kind in KINDS:
        probe, mine = health.get(kind), written.get(kind)
        if isinstance(probe, dict) and isinstance(mine, dict) and any(m in mine for m in METHODS):
            for method in METHODS:
                if method not in mine:
                    probe.pop(method, None)


def problems(data: dict[str, Any], container_port: Any) -> list[Violation]:
    """What the schema cannot say about ``health``: one method per probe, thresholds Kubernetes
    refuses, the engine's ports."""
    out: list[Violation] = []
    for kind in KINDS:
        probe = (data.get("health") or {}).get(kind)
        if not isinstance(probe, dict):
            continue
        at = ("health", kind)
        methods = [m for m in METHODS if m in probe]
        if len(methods) != 1:
            got = " and ".join(methods) if methods else "none"
            out.append(Violation(at, f"a probe needs exactly one of {', '.join(METHODS)}; got {got}",
                                 "e.g. http_get: {path: /system_stats, port: 8000}"))
            continue
        method = methods[0]
        port = probe[method].get("port") if isinstance(probe[method], dict) else None
        if port in ENGINE_PORTS:
            out.append(Violation(at + (method, "port"), f"port {port} is the EAS engine's own port in the instance",
                                 f"probe ComfyUI's port ({container_port})"))
        if kind in ("startup", "liveness") and probe.get("success_threshold", 1) != 1:
            out.append(Violation(at + ("success_threshold",), f"must be 1 for a {kind} probe (Kubernetes semantics), "
                                 f"got {probe['success_threshold']}"))
    return out


def warnings(data: dict[str, Any], container_port: Any) -> list[str]:
    out = []
    for kind in KINDS:
        probe = (data.get("health") or {}).get(kind)
        for method in ("http_get", "tcp_socket"):
            port = (probe or {}).get(method, {}).get("port") if isinstance(probe, dict) else None
            if port is not None and container_port is not None and port != container_port:
                out.append(f"health.{kind}.{method}.port: {port}, but ComfyUI listens on {container_port}; "
                           "the probe will fail unless something else answers there")
    return out


def render(data: dict[str, Any]) -> dict[str, Any]:
    """The container keys for the spec's probes (every timing field filled in)."""
    defaults = _timing_defaults()
    out: dict[str, Any] = {}
    for kind in KINDS:
        probe = (data.get("health") or {}).get(kind)
        if isinstance(probe, dict):
            out[wire.HEALTH_KEYS[kind]] = {**defaults, **probe}
    return out


def read_back(container: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``health:`` from a live container's probes (for ``import``), and what could not be read.
    A probe is taken whole, timing included, so that it renders back to exactly itself."""
    props = load_schema("spec.schema.json")["$defs"]["probe"]["properties"]
    health: dict[str, Any] = {}
    notes: list[str] = []
    for kind in KINDS:
        probe = container.get(wire.HEALTH_KEYS[kind])
        if probe is None:
            continue
        methods = [m for m in METHODS if isinstance(probe, dict) and m in probe]
        if not isinstance(probe, dict) or len(methods) != 1 or not set(probe) <= set(props):
            notes.append(f"containers[0].{wire.HEALTH_KEYS[kind]}: not a probe eascomfy models; kept in overrides")
            continue
        health[kind] = probe
    return health, notes
