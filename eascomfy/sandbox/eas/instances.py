"""Instances, their logs and their diagnosis, behind the EAS emulator's ListServiceInstances,
ListServiceContainers, DescribeServiceLog, DescribeServiceDiagnosis and
DescribeServiceInstanceDiagnosis (``ops_api``). Nothing here speaks HTTP.

Everything lives in ``ServiceRecord.ops`` (plain JSON, persisted with the record):

- ``generation``: the instances of the version that last came up (``version``, ``started``,
  ``crash``): each new Running (create, update, start, restart, version switch) or crashed
  version starts fresh instances with new names, restart counts at zero and a few ComfyUI boot
  lines in their log;
- ``instances``: per instance name, ``restarts`` and the last termination (``reason``, ``exit``,
  ``at``); ``logs``: ``{ts, instance, container, run, text}`` where ``run`` is the restart count
  when the line was written (``Previous=true`` reads the run before the last restart);
- ``crash``: a test's request that a version fail (``EasSandbox.fail_deploy``): the service
  becomes Failed, its instances crash-loop and log the given lines.

Shapes follow the SDK 7.0.0 models (``Instance``, ``ContainerInfo``, ``DescribeServiceLog*``,
``DescribeService*Diagnosis*``) and the API reference pages for those structs. What the
sources leave open (``Instance.Status`` values, instance naming, the order of log lines, what a
healthy instance's diagnosis looks like) is chosen here and listed in docs/unverified.md.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable

CONTAINER = "worker0"  # the main container's name in EAS (the SDK's ContainerName example)
MAX_LINES = 20000  # log lines kept per service

# What ComfyUI prints when it comes up (shortened): the log of a healthy instance.
BOOT_LINES = (
    "Total VRAM 22699 MB, total RAM 30111 MB",
    "pytorch version: 2.3.1+cu121",
    "Set vram state to: NORMAL_VRAM",
    "Device: cuda:0 NVIDIA A10 : cudaMallocAsync",
    "Using pytorch cross attention",
    "",
    "Import times for custom nodes:",
    "   0.0 seconds: /root/ComfyUI/custom_nodes/websocket_image_save.py",
    "",
    "Starting server",
    "",
    "To see the GUI go to: http://0.0.0.0:8000",
)


def _ops(rec: Any) -> dict[str, Any]:
    return rec.ops


def instance_names(rec: Any, version: int | None = None, count: int | None = None) -> list[str]:
    """Pod-style names, ``<service>-<template hash>-<suffix>`` (the doc's example is
    ``foo-5fc8946767-v****``); new names for each version and each start of it."""
    generation = _ops(rec).get("generation") or {}
    version = version if version is not None else rec.current_version
    seed = f"{rec.name}:{version}:{generation.get('started', 0) if version == generation.get('version') else 0}"
    template = hashlib.sha1(seed.encode()).hexdigest()[:10]
    base = rec.name.replace("_", "-")
    total = rec.instance if count is None else count
    return [f"{base}-{template}-{hashlib.sha1(f'{seed}:{i}'.encode()).hexdigest()[:5]}" for i in range(total)]


# -- state changes (called by ServiceStore) --------------------------------------------------------
def arm_crash(rec: Any, plan: dict[str, Any] | None) -> None:
    """Attach a pending crash request to the version just created."""
    if plan is not None:
        _ops(rec)["crash"] = {**plan, "version": rec.latest_version}


def crash_of(rec: Any) -> dict[str, Any] | None:
    """The crash the current version was told to have, if any."""
    crash = _ops(rec).get("crash")
    return crash if crash and crash.get("version") == rec.current_version else None


def came_up(rec: Any, status: str, at: float) -> None:
    """A transition happened: a new generation of instances when the service became Running or
    crashed; their boot lines (and, for a crash, the crash lines, once per restart)."""
    crash = crash_of(rec) if status == "Failed" else None
    if status != "Running" and crash is None:
        return
    ops = _ops(rec)
    ops["generation"] = {"version": rec.current_version, "started": at, "crash": crash is not None}
    ops.setdefault("instances", {})
    for name in instance_names(rec):
        if crash is None:
            ops["instances"][name] = {"restarts": 0}
            add_lines(rec, name, BOOT_LINES, at)
            continue
        restarts = int(crash.get("restarts", 3))
        for run in range(restarts + 1):
            add_lines(rec, name, crash["lines"], at, run=run)
        ops["instances"][name] = {"restarts": restarts, "reason": crash["reason"], "exit": crash.get("exit", 1), "at": at}


def add_lines(rec: Any, instance: str, lines: Iterable[str], at: float, *, run: int | None = None,
              container: str = CONTAINER) -> None:
    ops = _ops(rec)
    if run is None:
        run = int(ops.get("instances", {}).get(instance, {}).get("restarts", 0))
    logs = ops.setdefault("logs", [])
    logs.extend({"ts": at, "instance": instance, "container": container, "run": run, "text": t} for t in lines)
    del logs[:-MAX_LINES]


def restart(rec: Any, instance: str, reason: str, exit_code: int, lines: Iterable[str], at: float) -> None:
    """The instance's container dies (``lines`` are its last words) and comes back up."""
    add_lines(rec, instance, lines, at)
    state = _ops(rec).setdefault("instances", {}).setdefault(instance, {"restarts": 0})
    state.update(restarts=int(state.get("restarts", 0)) + 1, reason=reason, exit=exit_code, at=at)
    add_lines(rec, instance, BOOT_LINES, at)


# -- views (the wire shapes) -----------------------------------------------------------------------
def _state_of(rec: Any, ready: bool) -> tuple[str, str, bool]:
    """(Instance.Status, Instance.Reason, ready) for the service's current state."""
    generation = _ops(rec).get("generation") or {}
    current = generation.get("version") == rec.current_version
    if rec.status == "Running" and current:
        return "Running", "RUNNING", ready
    if rec.status == "Failed" and current and generation.get("crash"):
        return "Failed", "CrashLoopBackOff", False
    if rec.status == "Failed" and rec.reason == "ImagePullFailed":
        return "Pending", "ImagePullBackOff", False
    if rec.status == "Waiting":
        return "Pending", "Unschedulable", False
    return "Pending", "ContainerCreating", False


def instances(rec: Any, ready: bool, iso: Any) -> list[dict[str, Any]]:
    """``Instance`` objects of the service (none while it is stopped or being deleted)."""
    if rec.status in ("Stopped", "Stopping", "Deleting") or rec.instance == 0:
        return []
    status, reason, is_ready = _state_of(rec, ready)
    generation = _ops(rec).get("generation") or {}
    started = generation.get("started") if status in ("Running", "Failed") else rec.update_time
    metadata = rec.config.get("metadata", {})
    instance_type = str((rec.config.get("cloud", {}).get("computing", {}).get("instances") or [{}])[0].get("type", ""))
    out = []
    for i, name in enumerate(instance_names(rec)):
        state = _ops(rec).get("instances", {}).get(name, {}) if status in ("Running", "Failed") else {}
        out.append({
            "InstanceName": name,
            "Namespace": rec.name,
            "Role": "Standard",
            "Status": status,
            "Reason": reason,
            "RestartCount": int(state.get("restarts", 0)),
            "LastState": [],  # the doc example is []; its inner keys are unverified
            "ReadyProcesses": 1 if is_ready else 0,
            "TotalProcesses": 1,
            "Isolated": False,
            "StartTime": iso(started or rec.update_time),
            "StartAt": iso(started or rec.update_time),
            "HostIP": f"10.0.0.{10 + i}",
            "HostName": f"sandbox-node-{i}",
            "InnerIP": f"10.1.0.{10 + i}",
            "InstancePort": 8000,
            "ResourceType": "PrivateResource" if metadata.get("resource") else "PublicResource",
            "Zone": f"{rec.region}-a",
            "InstanceType": instance_type,
            "IsSpot": False,
        })
    return out


def containers(rec: Any, instance: dict[str, Any], iso: Any) -> list[dict[str, Any]]:
    """``ContainerInfo`` of one instance: the main container (``CurrentReaon`` is misspelt on the
    wire, as in the SDK model)."""
    state = _ops(rec).get("instances", {}).get(instance["InstanceName"], {})
    running = instance["Status"] == "Running"
    waiting_reason = instance["Reason"] if not running else ""
    return [{
        "Name": CONTAINER,
        "Image": rec.image,
        "Port": 8000,
        "Ready": bool(instance["ReadyProcesses"]),
        "RestartCount": instance["RestartCount"],
        "CurrentStatus": "Running" if running else "Waiting",
        "CurrentReaon": waiting_reason,
        "CurrentTimestamp": instance["StartTime"],
        "LastStatus": "Terminated" if state.get("reason") else "",
        "LastReason": str(state.get("reason", "")),
        "LastTimestamp": iso(state["at"]) if state.get("at") else "",
    }]


def log_lines(rec: Any, names: list[str], *, instance: str, container: str, keyword: str, previous: bool,
              start: float | None, end: float | None) -> list[str]:
    """The lines that match, oldest first."""
    states = _ops(rec).get("instances", {})
    wanted = [instance] if instance else names

    def run_of(name: str) -> int:
        restarts = int(states.get(name, {}).get("restarts", 0))
        return restarts - 1 if previous else restarts

    runs = {name: run_of(name) for name in wanted}
    return [
        line["text"]
        for line in _ops(rec).get("logs", [])
        if line["instance"] in runs
        and line["run"] == runs[line["instance"]]
        and (not container or line["container"] == container)
        and (not keyword or keyword in line["text"])
        and (start is None or line["ts"] >= start)
        and (end is None or line["ts"] <= end)
    ]


def _entry(error: str, causes: list[str], advices: list[str]) -> dict[str, Any]:
    return {"Error": error, "Causes": causes, "Advices": advices}


def diagnosis(rec: Any, listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``DiagnosisList``: one entry per problem the service shows (empty when healthy). The error
    texts follow the SDK's example (``Container worker0 failed to pull image.``)."""
    crash = crash_of(rec)
    if rec.status == "Failed" and rec.reason == "ImagePullFailed":
        return [_entry(f"Container {CONTAINER} failed to pull image.", [rec.message],
                       ["Check that the image address and tag exist and that the service can reach the registry."])]
    if rec.status == "Waiting":
        return [_entry("Instances cannot be scheduled.", [rec.message or "Insufficient resources."],
                       ["Choose another instance type or zone, or wait until resources are available."])]
    found = []
    if crash is not None and rec.status == "Failed":
        found.append(_entry(crash.get("error") or f"Container {CONTAINER} exited unexpectedly.",
                            list(crash.get("causes") or [f"The container terminated: {crash['reason']}."]),
                            list(crash.get("advices") or ["Check the container logs."])))
    for item in listed:
        one = instance_diagnosis(rec, item)
        if one and not (crash is not None and rec.status == "Failed"):
            found.append(one)
    return found


def instance_diagnosis(rec: Any, instance: dict[str, Any]) -> dict[str, Any]:
    """The ``Diagnosis`` of one instance: ``{}`` when it has nothing to report (unverified)."""
    state = _ops(rec).get("instances", {}).get(instance["InstanceName"], {})
    crash = crash_of(rec)
    if instance["Status"] == "Failed" and crash is not None:
        return _entry(crash.get("error") or f"Container {CONTAINER} exited unexpectedly.",
                      list(crash.get("causes") or [f"The container terminated: {crash['reason']}."]),
                      list(crash.get("advices") or ["Check the container logs."]))
    if instance["Reason"] == "ImagePullBackOff":
        return _entry(f"Container {CONTAINER} failed to pull image.", [rec.message], [])
    if instance["Reason"] == "Unschedulable":
        return _entry("The instance cannot be scheduled.", [rec.message or "Insufficient resources."], [])
    if state.get("reason"):
        return _entry(f"Container {CONTAINER} restarted {state.get('restarts', 0)} time(s).",
                      [f"Last termination: {state['reason']} (exit code {state.get('exit', '')})."],
                      ["Check the logs of the previous container."])
    return {}
