"""The state behind the EAS emulator: services, their versions, labels, events and lifecycle.

Nothing here speaks HTTP. ``ServiceStore`` keeps every service of one region in memory, persists
the whole state to one JSON file per region (``eas/<region>/state.json``, written atomically)
after each change, and raises ``EasError`` with the code and status the OpenAPI answers.

Lifecycle is driven by time, not threads: an operation puts the service in a transitional status
(``Creating``, ``Updating``, ``Stopping``, ``Starting``, ``Deleting``) and schedules one pending
``Transition`` at an absolute time. Every read applies the pending transition once its time has
come (and records its event at that time), so a service "becomes" Running while nobody looks.
A Running service answers on its endpoint only ``Timings.ready`` seconds after it became Running.
"""

from __future__ import annotations

import copy
import json
import os
import re
import secrets
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..fidelity import Fidelity
from . import instances as inst
from . import warmup
from .errors import invalid, not_found
from .images import ImageCatalogue

CREATING, UPDATING, RUNNING, FAILED = "Creating", "Updating", "Running", "Failed"
STOPPING, STOPPED, STARTING, DELETING = "Stopping", "Stopped", "Starting", "Deleting"
WAITING = "Waiting"
SAFETY_LOCKS = ("all", "dangerous", "none")
RUNNING_REASON, RUNNING_MESSAGE = "RUNNING", "Service start successfully"

SERVICE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{2,62}$")


def iso(ts: float) -> str:
    """The UTC time format the OpenAPI uses in CreateTime, UpdateTime, events and versions."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@dataclass(frozen=True)
class Timings:
    """Seconds each lifecycle step takes. Running is not ready: ``ready`` is the extra delay after
    Running before the service endpoint answers 200 (EAS routes traffic once probes pass)."""

    creating: float = 0.3
    updating: float = 0.3
    ready: float = 0.3
    stopping: float = 0.2
    starting: float = 0.3
    deleting: float = 0.2


@dataclass
class Transition:
    """The one status change a service waits for: at ``at`` it becomes ``status``."""

    at: float
    status: str
    reason: str
    message: str
    event_type: str = "Normal"
    remove: bool = False


@dataclass
class ServiceRecord:
    name: str
    service_id: str
    service_uid: str
    region: str
    workspace_id: str
    access_token: str
    config: dict[str, Any]
    create_time: float
    update_time: float
    status: str
    reason: str = ""
    message: str = ""
    current_version: int = 0
    latest_version: int = 0
    versions: list[dict[str, Any]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    pending: Transition | None = None
    ready_at: float | None = None
    stuck: str | None = None
    autoscaler: dict[str, Any] | None = None
    cronscaler: dict[str, Any] | None = None
    ops: dict[str, Any] = field(default_factory=dict)  # instances, logs, crash (see instances.py)
    safety_lock: str = "none"  # UpdateServiceSafetyLock: all | dangerous | none (default unverified)
    # ReleaseService (groups.py): TrafficState standalone | grouping, Weight in [-1, 1000]
    traffic_state: str = "standalone"
    weight: int = 100
    mirror: dict[str, Any] | None = None  # CreateServiceMirror: {"Ratio": int, "Target": [service]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ServiceRecord":
        pending = data.get("pending")
        return cls(**{**data, "pending": Transition(**pending) if pending else None})

    @property
    def instance(self) -> int:
        return int(self.config.get("metadata", {}).get("instance", 0))

    @property
    def image(self) -> str:
        containers = self.config.get("containers") or [{}]
        return str(containers[0].get("image", ""))

    @property
    def group(self) -> str:
        """The service group its config names (``metadata.group``), or ""."""
        metadata = self.config.get("metadata")
        return str(metadata.get("group") or "") if isinstance(metadata, dict) else ""


def merge_update(config: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """What EAS's UpdateService does with ``UpdateType=merge``: it merges the request body into the
    service's current config. Objects merge key by key; anything else (lists, scalars, null) in the
    body replaces the old value, so a null is stored as null rather than deleting the key."""
    out = copy.deepcopy(config)
    for key, value in body.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_update(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def service_name_of(config: dict[str, Any]) -> str:
    metadata = config.get("metadata") if isinstance(config.get("metadata"), dict) else {}
    names = {n for n in (metadata.get("name"), config.get("name")) if n}
    if len(names) > 1:
        raise invalid("metadata.name and name disagree")
    return str(names.pop()) if names else ""


def validate_config(config: dict[str, Any]) -> None:
    """The basic checks EAS makes before it accepts a service config."""
    metadata = config.get("metadata")
    if not isinstance(metadata, dict):
        raise invalid("metadata is required and must be an object")
    instance = metadata.get("instance")
    if isinstance(instance, bool) or not isinstance(instance, int) or instance < 0:
        raise invalid("metadata.instance must be an integer >= 0")
    containers = config.get("containers")
    if not isinstance(containers, list) or not containers or not isinstance(containers[0], dict):
        raise invalid("containers must be a non-empty list")
    for container in containers:
        if not isinstance(container, dict) or not isinstance(container.get("image"), str) or not container["image"]:
            raise invalid("containers[].image is required")


def validate_name(name: str) -> None:
    if not name:
        raise invalid("Service name is empty")
    if not SERVICE_NAME_RE.match(name):
        raise invalid(
            f"Invalid service name {name!r}: use 3-63 lowercase letters, digits and underscores, "
            "starting with a letter"
        )


def split_single_region_state(eas_dir: Path) -> None:
    """State dirs written before the sandbox served several regions kept every service in
    ``eas/state.json``; move each region's services to ``eas/<region>/state.json`` (unless that
    already exists) and keep the old file as ``state.json.migrated``."""
    legacy = eas_dir / "state.json"
    if not legacy.is_file():
        return
    data = json.loads(legacy.read_text(encoding="utf-8"))
    by_region: dict[str, dict[str, Any]] = {}
    for name, service in (data.get("services") or {}).items():
        by_region.setdefault(str(service.get("region", "")), {})[name] = service
    for region, services in by_region.items():
        target = eas_dir / region / "state.json"
        if region and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp")
            tmp.write_text(json.dumps({"url_key": data.get("url_key"), "services": services}, indent=1, sort_keys=True),
                           encoding="utf-8")
            os.replace(tmp, target)
    os.replace(legacy, legacy.with_name("state.json.migrated"))


class ServiceStore:
    """All services of one region, persisted to ``path`` (JSON) after every change. Thread-safe."""

    def __init__(
        self,
        path: Path,
        region: str,
        timings: Timings,
        catalogue: ImageCatalogue,
        clock: Callable[[], float] = time.time,
        fidelity: Fidelity | None = None,
    ) -> None:
        self.path = path
        self.fidelity = fidelity or Fidelity()
        self.region = region
        self.timings = timings
        self.catalogue = catalogue
        self.clock = clock
        self._lock = threading.RLock()
        self._services: dict[str, ServiceRecord] = {}
        self.url_key = secrets.token_hex(32)  # signs DescribeServiceSignedUrl links
        self.crash_plans: dict[str, dict[str, Any]] = {}  # the next version of a service crashes
        self._load()

    # -- persistence ---------------------------------------------------------------------------
    def _load(self) -> None:
        if not self.path.exists():
            return
        data = json.loads(self.path.read_text(encoding="utf-8"))
        self.url_key = data.get("url_key") or self.url_key
        self._services = {n: ServiceRecord.from_dict(s) for n, s in data.get("services", {}).items()}

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"url_key": self.url_key, "services": {n: asdict(s) for n, s in self._services.items()}}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".state-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        os.replace(tmp, self.path)

    # -- reads -----------------------------------------------------------------------------------
    def find(self, name: str) -> ServiceRecord | None:
        """The service after applying any due transition, or None. The record is live: copy it."""
        with self._lock:
            rec = self._services.get(name)
            if rec is not None and self._advance(rec):
                self._save()
            return self._services.get(name)

    def get(self, name: str) -> ServiceRecord:
        rec = self.find(name)
        if rec is None:
            raise not_found()
        return rec

    def snapshot(self, name: str) -> ServiceRecord | None:
        with self._lock:
            rec = self.find(name)
            return copy.deepcopy(rec) if rec else None

    def all(self) -> list[ServiceRecord]:
        with self._lock:
            changed = [self._advance(rec) for rec in list(self._services.values())]
            if any(changed):
                self._save()
            return [copy.deepcopy(r) for r in self._services.values()]

    def is_ready(self, rec: ServiceRecord) -> bool:
        """Running, with at least one instance, and past the ready delay."""
        return (
            rec.status == RUNNING
            and rec.instance > 0
            and rec.ready_at is not None
            and self.clock() >= rec.ready_at
            and not warmup.pending(rec)
        )

    def warmed(self, name: str, generation: list[Any], ok: bool, message: str, sent: int) -> None:
        """The warm-up of a ``generation`` of instances ended (``sandbox/eas/warmup.py``): ready
        after the ready delay, or, when it failed, Failed (``WarmUpFailed``; with
        ``Fidelity.warmup_failure`` ``proceed``: a Warning event, then ready). Instances replaced
        meanwhile are left alone."""
        with self._lock:
            rec = self.find(name)
            if rec is None or warmup.generation(rec) != generation or not warmup.pending(rec):
                return
            now = self.clock()
            warmup.record(rec, ok, message, sent, now)
            if ok or self.fidelity.warmup_failure == "proceed":
                rec.ready_at = max(rec.ready_at or now, now + self.timings.ready)
                self._event(rec, "Normal" if ok else "Warning", "WarmUpCompleted" if ok else "WarmUpFailed", message, now)
            else:
                rec.status, rec.reason, rec.message = FAILED, "WarmUpFailed", message
                rec.update_time, rec.ready_at = now, None
                self._event(rec, "Warning", "WarmUpFailed", message, now)
            self._save()

    # -- writes ----------------------------------------------------------------------------------
    def create(self, config: dict[str, Any], labels: dict[str, str], workspace_id: str) -> ServiceRecord:
        name = service_name_of(config)
        validate_name(name)
        validate_config(config)
        with self._lock:
            if self.find(name) is not None:
                raise invalid(f"Service already exists: {name} (region {self.region})", status=409)
            now = self.clock()
            metadata = config["metadata"]
            rec = ServiceRecord(
                name=name,
                service_id=f"eas-m-{secrets.token_hex(8)}",
                service_uid=secrets.token_hex(8),
                region=self.region,
                workspace_id=str(workspace_id or metadata.get("workspace_id", "")),
                access_token=str(config.get("token") or secrets.token_urlsafe(32)),
                config=copy.deepcopy(config),
                create_time=now,
                update_time=now,
                status=CREATING,
                labels=dict(labels),
            )
            if rec.group and self.fidelity.group_join == "grouping":
                rec.traffic_state = "grouping"  # Fidelity.group_join (groups.py)
            self._services[name] = rec
            self._new_version(rec, "Service created")
            self._begin(rec, CREATING, self.timings.creating, "Creating", "Creating the service")
            self._save()
            return copy.deepcopy(rec)

    def update(self, name: str, patch: dict[str, Any], update_type: str) -> None:
        if update_type not in ("merge", "replace"):
            raise invalid(f"UpdateType must be merge or replace, not {update_type!r}")
        with self._lock:
            rec = self._writable(name)
            config = merge_update(rec.config, patch) if update_type == "merge" else copy.deepcopy(patch)
            new_name = service_name_of(config)
            if new_name and new_name != name:
                raise invalid(f"The service name cannot be changed ({name} -> {new_name})")
            validate_config(config)
            rec.config = config
            self._new_version(rec, f"Service updated ({update_type})")
            self._begin(rec, UPDATING, self.timings.updating, "Updating", f"Updating to version {rec.latest_version}")
            self._save()

    def switch_version(self, name: str, version: Any) -> None:
        """UpdateServiceVersion. Its SDK docstring (``UpdateServiceVersionRequest.version``; API
        doc 412101): "greater than 0 and smaller than the current version of the service".
        ``Fidelity.version_switch``: ``below_current`` takes that literally (0 < v < CurrentVersion,
        so only backwards); ``up_to_latest`` accepts 1 <= v <= LatestVersion."""
        with self._lock:
            rec = self._writable(name)
            if isinstance(version, bool) or not isinstance(version, int):
                raise invalid("Version must be an integer")
            if self.fidelity.version_switch == "below_current":
                if not 0 < version < rec.current_version:
                    raise invalid(f"Version must be greater than 0 and smaller than the current version "
                                  f"of the service ({rec.current_version})")
            elif not 0 < version <= rec.latest_version:
                raise invalid(f"Version must be an integer between 1 and {rec.latest_version}")
            entry = rec.versions[version - 1]
            rec.config = json.loads(entry["ServiceConfig"])
            rec.current_version = version
            self._begin(rec, UPDATING, self.timings.updating, "VersionSwitched", f"Switching to version {version}")
            self._save()

    def start(self, name: str) -> None:
        with self._lock:
            rec = self._writable(name)
            self._begin(rec, STARTING, self.timings.starting, "Starting", "Starting the service")
            self._save()

    def restart(self, name: str) -> None:
        with self._lock:
            rec = self._writable(name)
            self._begin(rec, UPDATING, self.timings.starting, "Restarting", "Restarting all instances")
            self._save()

    def stop(self, name: str) -> None:
        with self._lock:
            rec = self._writable(name)
            done = Transition(self.clock() + self.timings.stopping, STOPPED, "Stopped", "The service is stopped")
            self._begin(rec, STOPPING, self.timings.stopping, "Stopping", "Stopping the service", done)
            self._save()

    def delete(self, name: str) -> None:
        with self._lock:
            rec = self.get(name)
            if rec.status == DELETING:
                return
            gone = Transition(self.clock() + self.timings.deleting, "Deleted", "Deleted", "", remove=True)
            self._begin(rec, DELETING, self.timings.deleting, "Deleting", "Deleting the service", gone)
            self._save()

    def set_labels(self, name: str, labels: dict[str, str]) -> None:
        with self._lock:
            rec = self._writable(name)
            rec.labels.update(labels)
            self._touch(rec, "LabelsUpdated", f"Labels set: {', '.join(sorted(labels))}")

    def delete_labels(self, name: str, keys: list[str]) -> None:
        with self._lock:
            rec = self._writable(name)
            for key in keys:
                rec.labels.pop(key, None)
            self._touch(rec, "LabelsDeleted", f"Labels deleted: {', '.join(sorted(keys))}")

    def set_safety_lock(self, name: str, level: str) -> None:
        """UpdateServiceSafetyLock: ``all`` | ``dangerous`` | ``none`` (SDK
        ``UpdateServiceSafetyLockRequest.lock`` docstring)."""
        if level not in SAFETY_LOCKS:
            raise invalid(f"Lock must be one of {', '.join(SAFETY_LOCKS)}, not {level!r}")
        with self._lock:
            rec = self._writable(name)
            rec.safety_lock = level
            self._touch(rec, "SafetyLockUpdated", f"Service safety lock updated to {level}")

    def set_scaler(self, name: str, kind: str, body: dict[str, Any] | None, create: bool) -> None:
        """Store (``body``) or delete (None) the service's ``autoscaler`` or ``cronscaler``
        (checked by ``scalers.py``). Create over an existing one answers 409 and Delete of a
        missing one succeeds: both unverified."""
        with self._lock:
            rec = self._writable(name)
            if create and getattr(rec, kind) is not None:
                raise invalid(f"The {kind} of service {name} already exists", status=409)
            setattr(rec, kind, copy.deepcopy(body))
            if kind == "cronscaler" and body is not None:
                rec.cronscaler = {**body, "created": self.clock()}
            detail = "deleted" if body is None else (
                f"min={body['min']} max={body['max']}" if kind == "autoscaler" else f"{len(body['ScaleJobs'])} job(s)")
            self._touch(rec, f"{kind.capitalize()}Updated", f"{kind.capitalize()} {detail}")

    def release(self, name: str, traffic_state: str | None, weight: int | None) -> ServiceRecord:
        """ReleaseService (checked by ``groups.py``): the traffic state and weight, in place."""
        with self._lock:
            rec = self._writable(name)
            if traffic_state is not None:
                rec.traffic_state = traffic_state
            if weight is not None:
                rec.weight = weight
            self._touch(rec, "ServiceReleased", f"Traffic state {rec.traffic_state}, weight {rec.weight}")
            return copy.deepcopy(rec)

    def set_mirror(self, name: str, mirror: dict[str, Any] | None) -> None:
        """Create/Update (a body) or Delete (None) the service's traffic mirror."""
        with self._lock:
            rec = self._writable(name)
            rec.mirror = copy.deepcopy(mirror)
            state = "OFF" if mirror is None else f"ON, ratio {mirror['Ratio']}%"
            self._touch(rec, "MirrorUpdated", f"Traffic mirroring is {state}")

    # -- instances and logs (test hooks; see instances.py) ---------------------------------------
    def plan_crash(self, name: str, plan: dict[str, Any] | None) -> None:
        """The next version created for ``name`` crash-loops (``None`` cancels)."""
        with self._lock:
            if plan is None:
                self.crash_plans.pop(name, None)
            else:
                self.crash_plans[name] = copy.deepcopy(plan)

    def add_log_lines(self, name: str, instance: int | str, lines: list[str], container: str) -> None:
        with self._lock:
            rec = self.get(name)
            inst.add_lines(rec, self._instance_name(rec, instance), lines, self.clock(), container=container)
            self._save()

    def restart_instance(self, name: str, instance: int | str, reason: str, exit_code: int, lines: list[str]) -> str:
        with self._lock:
            rec = self.get(name)
            which = self._instance_name(rec, instance)
            inst.restart(rec, which, reason, exit_code, lines, self.clock())
            self._event(rec, "Warning", "InstanceRestarted", f"Instance {which} restarted: {reason}", self.clock())
            self._save()
            return which

    @staticmethod
    def _instance_name(rec: ServiceRecord, instance: int | str) -> str:
        names = inst.instance_names(rec)
        if isinstance(instance, int):
            if not 0 <= instance < len(names):
                raise invalid(f"service {rec.name} has {len(names)} instance(s), no instance {instance}")
            return names[instance]
        if instance not in names:
            raise invalid(f"service {rec.name} has no instance {instance}")
        return instance

    def scale(self, name: str, instances: int) -> None:
        """What the autoscaler does (a test hook): the instance count changes in place, with an
        event and no new version. UNVERIFIED: that a real autoscaler's count shows in the
        ServiceConfig's ``metadata.instance`` (not only in TotalInstance)."""
        with self._lock:
            rec = self._writable(name)
            rec.config = {**rec.config, "metadata": {**rec.config.get("metadata", {}), "instance": instances}}
            self._touch(rec, "AutoScaled", f"The autoscaler scaled the service to {instances} instance(s)")

    def set_stuck(self, name: str, status: str | None) -> None:
        """Pin the service in ``status`` (e.g. Waiting: no resources) instead of becoming Running.
        ``None`` releases it: it then starts normally."""
        with self._lock:
            rec = self.get(name)
            previous, rec.stuck = rec.stuck, status
            if status is None:
                if previous is not None and rec.status == previous:
                    self._begin(rec, STARTING, self.timings.starting, "Starting", "Resources became available")
            elif rec.status != DELETING:
                rec.pending = None
                rec.ready_at = None
                rec.status, rec.reason, rec.message = status, *self._stuck_text(status)
                self._event(rec, "Warning", rec.reason, rec.message, self.clock())
            self._save()

    # -- internals -------------------------------------------------------------------------------
    def _writable(self, name: str) -> ServiceRecord:
        rec = self.get(name)
        if rec.status == DELETING:
            raise invalid(f"Service {name} is being deleted")
        return rec

    def _touch(self, rec: ServiceRecord, reason: str, message: str) -> None:
        rec.update_time = self.clock()
        self._event(rec, "Normal", reason, message, rec.update_time)
        self._save()

    def _new_version(self, rec: ServiceRecord, message: str) -> None:
        bad = self._unpullable(rec.config)
        rec.latest_version += 1
        inst.arm_crash(rec, self.crash_plans.pop(rec.name, None))
        rec.current_version = rec.latest_version
        rec.versions.append(
            {
                "Version": rec.latest_version,
                "ImageId": rec.latest_version,
                "ServiceConfig": json.dumps(rec.config, ensure_ascii=False, sort_keys=True),
                "BuildTime": iso(self.clock()),
                "ImageAvailable": "false" if bad else "true",
                "ServiceRunnable": "false" if bad else "true",
                "Message": self._pull_failure(bad) if bad else message,
            }
        )

    def _begin(
        self,
        rec: ServiceRecord,
        status: str,
        delay: float,
        reason: str,
        message: str,
        then: Transition | None = None,
    ) -> None:
        """Enter a transitional status now, and schedule where it ends (by default: Running, or
        Failed when an image cannot be pulled, or the stuck status)."""
        now = self.clock()
        rec.status, rec.reason, rec.message = status, reason, message
        rec.update_time = now
        rec.ready_at = None
        rec.pending = then or self._outcome(rec, now + delay)
        self._event(rec, "Normal", reason, message, now)

    def _outcome(self, rec: ServiceRecord, at: float) -> Transition:
        bad = self._unpullable(rec.config)
        if bad:
            return Transition(at, FAILED, "ImagePullFailed", self._pull_failure(bad), "Warning")
        if rec.stuck:
            return Transition(at, rec.stuck, *self._stuck_text(rec.stuck), "Warning")
        crash = inst.crash_of(rec)
        if crash is not None:
            return Transition(at, FAILED, crash["reason"], crash["message"], "Warning")
        # DescribeService's Reason and Message of a running service, as in the API doc's example
        # (help.aliyun.com/zh/pai/user-guide/api-eas-2021-07-01-struct-service): RUNNING and
        # "Service start successfully"
        return Transition(at, RUNNING, RUNNING_REASON, RUNNING_MESSAGE)

    def _advance(self, rec: ServiceRecord) -> bool:
        step = rec.pending
        if step is None or self.clock() < step.at:
            return False
        rec.pending = None
        if step.remove:
            del self._services[rec.name]
            return True
        rec.status, rec.reason, rec.message = step.status, step.reason, step.message
        rec.update_time = step.at
        rec.ready_at = step.at + self.timings.ready if step.status == RUNNING else None
        self._event(rec, step.event_type, step.reason, step.message, step.at)
        inst.came_up(rec, step.status, step.at)
        return True

    def _unpullable(self, config: dict[str, Any]) -> str | None:
        for container in config.get("containers") or []:
            image = str(container.get("image", ""))
            if not self.catalogue.can_pull(image, self.region):
                return image
        return None

    @staticmethod
    def _pull_failure(image: str) -> str:
        return f"Failed to pull image {image}: manifest unknown (no such tag in the registry)"

    @staticmethod
    def _stuck_text(status: str) -> tuple[str, str]:
        if status == WAITING:
            return "InsufficientResources", "Waiting for resources: no instance could be scheduled"
        return status, f"The service is stuck in {status}"

    @staticmethod
    def _event(rec: ServiceRecord, kind: str, reason: str, message: str, at: float) -> None:
        rec.events.append({"Type": kind, "Reason": reason, "Message": message, "Time": iso(at), "ts": at,
                           "version": rec.current_version})
