"""What a deploy would change: normalize the live config, diff it against the rendered one, plan.

Pure: a function of the rendered service JSON, the spec's labels and what DescribeService
returned (parsed ``ServiceConfig`` and labels). No SDK, no network.

Update mode: eascomfy always sends the FULL rendered JSON with ``UpdateType=replace``. EAS's
default (``merge``) keeps every key of the old config that the body does not mention, so a field
removed from the spec (storage, a fallback instance type, an env variable) would stay on the
service forever; ``replace`` makes the service config exactly what was rendered. See
docs/control-plane.md.

One canonical form: ``render`` returns the config with its keys sorted; the plan carries it as
it is (``Plan.desired``, the body sent) with its fingerprint computed once (``Plan.desired_sha``),
which the applied-sha label, saved plans and the "did my lost write land?" check all reuse. Only the
live side is made canonical here (``normalize``), once per read.

Drift: the sha256 of the canonical JSON last applied is stored in the ``eascomfy/applied-sha``
label. When the live config no longer hashes to it, someone changed the service outside
eascomfy (the console, another tool); ``plan`` says so. Unless the live config is exactly the
spec's: then the label is stale (a deploy stopped between UpdateService and UpdateServiceLabel),
which is not drift; the plan only rewrites the label.

Scalers: the spec's ``autoscaling``/``schedules`` are planned apart from the config, as calls to
the AutoScaler and CronScaler APIs (``core.scaling.scaler_changes``) against what Describe*
returned; ``Plan.scalers`` lists them.

Autoscaling: when the spec and the live service both have an autoscaler, the autoscaler owns the
instance count (Terraform's ``ignore_changes`` trap, hashicorp/terraform#10308). The count is left
out of the fingerprint, never shown as a change, and the body sent carries the live count, so a
deploy never undoes what the autoscaler chose (UpdateType=replace needs the key: it is sent, not
omitted).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from .merge import canonical
from .lockfile import LOCKFILE_SHA_LABEL
from .render import MANAGED_BY_LABEL
from .scaling import ScalerChange, ScalerKind, scaler_changes
from .secrets import MASK, Secrets, has_secrets, mask_value
from .wire import AUTOSCALER_KEY

APPLIED_SHA_LABEL = "eascomfy/applied-sha"
# The keys of the user's own labels last applied, so a label removed from the spec is removed from
# the service while labels added elsewhere (the console) are left alone (kubectl apply's rule).
USER_LABELS_LABEL = "eascomfy/user-labels"
# Which scalers eascomfy applied (autoscaler, cronscaler): deploy reads them back only when the
# spec has one or this label lists one, so removing `autoscaling:` deletes what eascomfy created.
SCALERS_LABEL = "eascomfy/scalers"
OWN_LABEL_PREFIX = "eascomfy/"
# The deploy lock (control/locks.py): set and removed by the run holding it, never by a plan.
LOCK_LABEL = "eascomfy/lock"

# Fields EAS adds to a service config by itself (never rendered by eascomfy), dropped from the
# live config before comparing. UNVERIFIED against a real account: the ServiceConfig that
# DescribeService returns was only seen in examples. One place to correct.
EAS_ADDED_FIELDS: tuple[tuple[str, ...], ...] = (
    ("metadata", "cluster_id"),
    ("metadata", "region"),
    ("metadata", "uid"),
    ("metadata", "owner"),
    ("metadata", "create_time"),
    ("metadata", "update_time"),
    ("metadata", "service_id"),
)

# EAS safety lock levels, from refusing nothing to refusing every change.
SAFETY_RANK = {"none": 0, "dangerous": 1, "all": 2}

INSTANCE = ("metadata", "instance")  # the replica count, which an autoscaler may own

Action = Literal["create", "update", "labels", "noop"]
ChangeKind = Literal["add", "remove", "change"]


@dataclass(frozen=True)
class Change:
    """One field that differs: ``path`` like ``containers[0].image``; old/new are JSON values."""

    path: str
    old: Any
    new: Any
    kind: ChangeKind

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "old": self.old, "new": self.new}

    def masked(self, desired: Any, live: Any, secrets: Secrets) -> "Change":
        """This change as shown: secret values (of the desired or the live config) masked."""
        return Change(
            self.path, mask_value(self.old, self.path, live, secrets), mask_value(self.new, self.path, desired, secrets), self.kind
        )

    def line(self) -> str:
        show = lambda v: json.dumps(v, ensure_ascii=False, sort_keys=True)  # noqa: E731
        if self.kind == "add":
            return f"+ {self.path}: {show(self.new)}"
        if self.kind == "remove":
            return f"- {self.path}: {show(self.old)}"
        return f"~ {self.path}: {show(self.old)} -> {show(self.new)}"


@dataclass
class Plan:
    """What deploy will do to one service."""

    service: str
    region: str
    action: Action
    desired: dict[str, Any]
    changes: list[Change] = field(default_factory=list)
    labels_set: dict[str, str] = field(default_factory=dict)
    labels_remove: list[str] = field(default_factory=list)
    drift: bool = False  # the live config was changed outside eascomfy since the last apply
    managed: bool = True  # the live service carries eascomfy's managed-by label
    live_version: int | None = None  # CurrentVersion before the change: the rollback target
    live_sha: str | None = None  # config_sha of the normalized live config the plan was made against
    desired_sha: str = ""  # config_sha(desired), computed once by make_plan
    notes: list[str] = field(default_factory=list)  # what people should know about this plan
    live: dict[str, Any] | None = None  # the normalized live config (None: no service yet)
    secrets: Secrets = field(default_factory=Secrets)  # the spec's secret env values: never shown
    # EAS's safety lock: the level to set (None: leave it) and the live one ("" before a create)
    safety_lock: str | None = None
    live_safety_lock: str = ""
    scalers: list[ScalerChange] = field(default_factory=list)  # AutoScaler/CronScaler calls
    autoscaled: bool = False  # the spec has autoscaling: the instance count is not fingerprinted
    live_autoscaled: bool = False  # live_sha was taken without the instance count (the live side autoscaled)

    @property
    def has_changes(self) -> bool:
        return self.action != "noop" or bool(self.scalers)

    @property
    def lowers_safety_lock(self) -> bool:
        """The new level refuses less than the live one: sent before the other writes."""
        return self.safety_lock is not None and SAFETY_RANK[self.safety_lock] < SAFETY_RANK.get(self.live_safety_lock, 0)

    @property
    def has_secrets(self) -> bool:
        """The desired or the live config holds a secret value: shown masked, fingerprinted salted."""
        return has_secrets(self.desired, self.secrets) or (self.live is not None and has_secrets(self.live, self.secrets))

    def shown_changes(self) -> list[Change]:
        return [c.masked(self.desired, self.live, self.secrets) for c in self.changes]

    def shown_labels(self) -> dict[str, str]:
        """The labels to set, as shown: the applied-sha of a config with secrets is a fast hash
        of them, so it is masked too."""
        if APPLIED_SHA_LABEL in self.labels_set and self.has_secrets:
            return {**self.labels_set, APPLIED_SHA_LABEL: MASK}
        return dict(self.labels_set)

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "region": self.region,
            "action": self.action,
            "changes": [c.to_dict() for c in self.shown_changes()],
            "labels_set": self.shown_labels(),
            "labels_remove": self.labels_remove,
            "drift": self.drift,
            "managed": self.managed,
            "notes": self.notes,
            "safety_lock": {"old": self.live_safety_lock or None, "new": self.safety_lock} if self.safety_lock else None,
            "scalers": [c.to_dict() for c in self.scalers],
        }

    def lines(self) -> list[str]:
        head = {
            "create": f"create service {self.service} in {self.region}",
            "update": f"update service {self.service} in {self.region} ({len(self.changes)} field(s), UpdateType=replace)",
            "labels": f"update the labels of service {self.service} in {self.region}",
            "noop": f"service {self.service} in {self.region} is up to date: no changes",
        }[self.action]
        if self.action == "noop" and self.scalers:
            head = f"update the scalers of service {self.service} in {self.region} (the config is up to date)"
        out = [head]
        if self.drift:
            out.append("! the live service was changed outside eascomfy (e.g. in the console) since the last deploy")
        if not self.managed and self.action != "create":
            out.append("! the live service is not marked as managed by eascomfy; deploy will take it over")
        out += [f"  note: {note}" for note in self.notes]
        out += [f"  {c.line()}" for c in self.shown_changes()]
        if self.safety_lock:
            out.append(f"  ~ safety_lock: {json.dumps(self.live_safety_lock or None)} -> {json.dumps(self.safety_lock)}")
        for key, value in sorted(self.shown_labels().items()):
            out.append(f"  label {key}={value}")
        out += [f"  label -{key}" for key in self.labels_remove]
        out += [f"  {c.line()}" for c in self.scalers]
        return out


def _drop(doc: Any, path: tuple[str, ...]) -> Any:
    """``doc`` without the key at ``path``: copies only the mappings along the path, keeps key order."""
    if not isinstance(doc, dict) or path[0] not in doc:
        return doc
    if len(path) == 1:
        return {k: v for k, v in doc.items() if k != path[0]}
    child = _drop(doc[path[0]], path[1:])
    return doc if child is doc[path[0]] else {**doc, path[0]: child}


def _without_eas_fields(config: dict[str, Any]) -> dict[str, Any]:
    for path in EAS_ADDED_FIELDS:
        config = _drop(config, path)
    return config


def normalize(live_config: dict[str, Any]) -> dict[str, Any]:
    """The live config as eascomfy would have rendered it: EAS's own fields dropped, keys sorted."""
    return canonical(_without_eas_fields(live_config))


def autoscaled(config: dict[str, Any] | None) -> bool:
    """The config has an autoscaler: its instance count is the autoscaler's to choose."""
    return isinstance(config, dict) and isinstance(config.get(AUTOSCALER_KEY), dict)


def instances(config: dict[str, Any]) -> Any:
    metadata = config.get("metadata")
    return metadata.get("instance") if isinstance(metadata, dict) else None


def config_sha(config: dict[str, Any], autoscaler: bool = False) -> str:
    """sha256 of a config's JSON, EAS's own fields dropped and keys sorted: what the applied-sha
    label holds. The same for a rendered config and the live config it became. An autoscaled
    config's instance count is left out (``autoscaler``: it has one through the AutoScaler API):
    the autoscaler changes it, eascomfy does not."""
    config = _without_eas_fields(config)
    if autoscaler or autoscaled(config):
        config = _drop(config, INSTANCE)
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _set(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """``doc`` with ``value`` at ``path`` (an existing key): copies only the mappings along it."""
    if len(path) == 1:
        return {**doc, path[0]: value}
    return {**doc, path[0]: _set(doc[path[0]], path[1:], value)}


def keep_autoscaled_count(
    desired: dict[str, Any], live: dict[str, Any], both: bool | None = None
) -> tuple[dict[str, Any], str | None]:
    """``desired`` with the live instance count when both sides are autoscaled (the autoscaler
    chose it; ``both`` says so when the autoscalers are the API's, not config keys), and a note
    when that differs from the spec's count; else ``desired`` as it is."""
    count, spec_count = instances(live), instances(desired)
    if both is None:
        both = autoscaled(desired) and autoscaled(live)
    if not both or count is None or spec_count is None:
        return desired, None
    if count == spec_count:
        return desired, None
    note = f"metadata.instance stays {count}, the autoscaler's choice; the spec's {spec_count} applies only without autoscaling"
    return _set(desired, INSTANCE, count), note


def _join(base: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else key


def _is_env_entry(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"name", "value"}


def leaves(doc: Any, path: str = "") -> list[Change]:
    """Every field of ``doc`` as an "add": mappings and lists of mappings are opened down to their
    values (an env entry ``{name, value}`` and a list of plain values stay whole). What a create
    plan shows, so a reviewer sees the whole service, as Terraform shows a create."""
    if isinstance(doc, dict) and doc and not _is_env_entry(doc):
        return [c for key in doc for c in leaves(doc[key], _join(path, key))]
    if isinstance(doc, list) and doc and all(isinstance(item, dict) for item in doc):
        return [c for i, item in enumerate(doc) for c in leaves(item, _join(path, i))]
    return [Change(path or "(config)", None, doc, "add")]


def diff(desired: Any, live: Any, path: str = "") -> list[Change]:
    """Field-level differences from ``live`` to ``desired``. Mappings are compared key by key,
    lists of equal length item by item; anything else (or lists of different lengths) whole."""
    if isinstance(desired, dict) and isinstance(live, dict):
        changes: list[Change] = []
        for key in sorted(set(desired) | set(live)):
            where = _join(path, key)
            if key not in live:
                changes.append(Change(where, None, desired[key], "add"))
            elif key not in desired:
                changes.append(Change(where, live[key], None, "remove"))
            else:
                changes += diff(desired[key], live[key], where)
        return changes
    if isinstance(desired, list) and isinstance(live, list) and len(desired) == len(live):
        return [c for i, (d, l) in enumerate(zip(desired, live)) for c in diff(d, l, _join(path, i))]
    if desired == live and type(desired) is type(live):
        return []
    return [Change(path or "(config)", live, desired, "change")]


def make_plan(
    service: str,
    region: str,
    desired: dict[str, Any],
    desired_labels: dict[str, str],
    live_config: dict[str, Any] | None,
    live_labels: dict[str, str] | None = None,
    live_version: int | None = None,
    secrets: Secrets | None = None,
    safety_lock: str | None = None,
    live_safety_lock: str = "",
    desired_scalers: dict[ScalerKind, dict[str, Any] | None] | None = None,
    live_scalers: dict[ScalerKind, dict[str, Any] | None] | None = None,
) -> Plan:
    """Compare the rendered config and labels with the live service (None: it does not exist).
    ``desired`` is what ``render`` returned, already canonical: it is carried as it is.
    ``secrets`` (the spec's) says which values the plan never shows; without it, env values of
    names that look secret are masked. ``safety_lock`` (the spec's, None: not managed) is set
    when it differs from ``live_safety_lock`` (a create sets any level but none).
    ``desired_scalers``/``live_scalers``: the AutoScaler and
    CronScaler bodies the spec wants and Describe* returned (``live_scalers`` None: not read, no
    scaler is planned and the live side is taken to be autoscaled as the spec is)."""
    secrets = secrets or Secrets()
    desired_scalers = desired_scalers or {}
    spec_scaled = desired_scalers.get("autoscaler") is not None
    desired_sha = config_sha(desired, spec_scaled)
    labels = {**desired_labels, APPLIED_SHA_LABEL: desired_sha}
    user_keys = sorted(k for k in desired_labels if not k.startswith(OWN_LABEL_PREFIX))
    if user_keys:
        labels[USER_LABELS_LABEL] = ",".join(user_keys)
    scaler_kinds = [k for k, body in sorted(desired_scalers.items()) if body is not None]
    if scaler_kinds:
        labels[SCALERS_LABEL] = ",".join(scaler_kinds)
    if live_config is None:
        return Plan(
            service, region, "create", desired, changes=leaves(desired), labels_set=labels, desired_sha=desired_sha, secrets=secrets,
            safety_lock=safety_lock if safety_lock and safety_lock != "none" else None,
            scalers=scaler_changes(desired_scalers, {}), autoscaled=spec_scaled,
        )
    live_labels = live_labels or {}
    live = normalize(live_config)
    live_scaled = spec_scaled if live_scalers is None else live_scalers.get("autoscaler") is not None
    live_sha = config_sha(live, live_scaled)
    scaled = (spec_scaled and (live_scaled or autoscaled(live))) if desired_scalers else None
    desired, kept = keep_autoscaled_count(desired, live, scaled)
    changes = diff(desired, live)
    applied = live_labels.get(APPLIED_SHA_LABEL)
    labels_set = {k: v for k, v in labels.items() if live_labels.get(k) != v}
    applied_user = set(filter(None, live_labels.get(USER_LABELS_LABEL, "").split(",")))
    labels_remove = sorted(
        k for k in live_labels
        if (k.startswith(OWN_LABEL_PREFIX) or k in applied_user) and k not in labels and k not in (LOCK_LABEL, LOCKFILE_SHA_LABEL)
    )
    lock_set = safety_lock if safety_lock and safety_lock != (live_safety_lock or "none") else None
    # a safety lock change alone is a metadata change like the labels: no UpdateService
    action: Action = "update" if changes else ("labels" if labels_set or labels_remove or lock_set else "noop")
    notes = [kept] if kept else []
    stale = applied is not None and applied != live_sha
    if stale and live_sha == desired_sha:
        stale = False  # the config is the spec's: only the label missed the last deploy
        notes.append(
            "the applied-sha label is stale, but the live config already equals the spec "
            "(an earlier deploy stopped before labelling it): only the label is rewritten"
        )
    return Plan(
        service,
        region,
        action,
        desired,
        changes=changes,
        labels_set=labels_set,
        labels_remove=labels_remove,
        drift=stale,
        live_sha=live_sha,
        desired_sha=desired_sha,
        managed=live_labels.get(MANAGED_BY_LABEL) == "eascomfy",
        live_version=live_version,
        notes=notes,
        live=live,
        secrets=secrets,
        safety_lock=lock_set,
        live_safety_lock=live_safety_lock,
        scalers=scaler_changes(desired_scalers, live_scalers) if live_scalers is not None else [],
        autoscaled=spec_scaled,
        live_autoscaled=live_scaled,
    )

