"""Fleets, the pure part: a spec that names several ``regions`` (one service per region, each with
its own bucket), the specs of a project (``services/*.yaml`` and ``eascomfy.yaml``) and the
selectors that pick some of them (``--service``, ``--region``, ``--label k=v``).

A multi-region spec is checked as a whole (every listed region has a bucket, no bucket for an
unlisted region, a bucket in one region only), then resolved once per region as if its file said
``region: R`` and ``storage.oss: <R's bucket>``: every rule of a single-region spec (the region
table, the bucket endpoint's region, the edition's regions) applies to each. docs/gitops.md "Fleets".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import UsageError
from .validate import Violation, did_you_mean
from .yamlio import Positions

SERVICES_DIR = "services"
DEFAULT_FILE = "eascomfy.yaml"
_BUCKET_OF = "oss://"


def _bucket(uri: str) -> str:
    return uri[len(_BUCKET_OF):].split("/", 1)[0] if uri.startswith(_BUCKET_OF) else uri


def regions_problems(user: dict[str, Any]) -> list[Violation]:
    """What is wrong with the ``regions``/``storage.oss`` pair of a schema-valid spec: a per-region
    mapping without ``regions``; with ``regions``, one bucket for all (a bucket lives in one
    region), a region without a bucket, a bucket for a region not listed, one bucket for two
    regions, NAS, a fixed endpoint or a VPC network (each belongs to one region)."""
    regions = user.get("regions")
    storage = user.get("storage") or {}
    oss = storage.get("oss") if isinstance(storage, dict) else None
    if regions is None:
        if isinstance(oss, dict):
            return [Violation(("storage", "oss"), "a mapping of regions to buckets needs `regions:`; with `region:`, "
                              "storage.oss is one oss://bucket/prefix/ directory")]
        return []
    problems: list[Violation] = []
    if "nas" in storage:
        problems.append(Violation(("storage", "nas"), "a NAS file system is in one region; with regions, mount a "
                                  "bucket per region (storage.oss: {REGION: oss://bucket/prefix/})"))
    if "endpoint" in storage:
        problems.append(Violation(("storage", "endpoint"), "an OSS endpoint names one region; with regions, each "
                                  "service mounts its bucket through its own region's endpoint (leave it out)"))
    if user.get("network"):
        problems.append(Violation(("network",), "a VPC, its vSwitches and security group are in one region; a spec "
                                  "with regions cannot give one network to all (write one spec per region for VPC "
                                  "services)"))
    if isinstance(oss, str):
        problems.append(Violation(("storage", "oss"), "with regions, storage.oss maps each region to a bucket in it, "
                                  f"e.g. {{{regions[0]}: {oss}}}: a bucket lives in one region and EAS mounts "
                                  "buckets of the service's region only"))
    elif isinstance(oss, dict):
        missing = [r for r in regions if r not in oss]
        if missing:
            problems.append(Violation(("storage", "oss"), f"no bucket for region {', '.join(missing)} "
                                      f"(listed in regions); add `{missing[0]}: oss://BUCKET/PREFIX/`"))
        seen: dict[str, str] = {}
        for region, uri in oss.items():
            if region not in regions:
                listed = ", ".join(regions)
                problems.append(Violation(("storage", "oss", region), f"a bucket for region {region!r}, which "
                                          f"regions does not list ({listed})", did_you_mean(region, regions)))
            bucket = _bucket(str(uri))
            if bucket in seen:
                problems.append(Violation(("storage", "oss", region), f"bucket {bucket} is also mapped to "
                                          f"{seen[bucket]}: a bucket lives in one region"))
            seen.setdefault(bucket, region)
    return problems


def for_region(user: dict[str, Any], positions: Positions, region: str) -> tuple[dict[str, Any], Positions]:
    """A multi-region spec as its file would read for ``region`` alone, with positions that point
    problems of ``region`` and ``storage.oss`` at the lines that set them."""
    regions: list[str] = user["regions"]
    one = {k: v for k, v in user.items() if k != "regions"}
    one["region"] = region
    storage = user.get("storage")
    moved = {("region",): ("regions", regions.index(region))}
    if isinstance(storage, dict) and isinstance(storage.get("oss"), dict):
        one["storage"] = {**storage, "oss": storage["oss"][region]}
        moved[("storage", "oss")] = ("storage", "oss", region)
    where = Positions(dict(positions.lines), dict(positions.plain))
    for to, source in moved.items():
        if source in positions.lines:
            where.lines[to] = positions.lines[source]
        if source in positions.plain:
            where.plain[to] = positions.plain[source]
    return one, where


def pick_region(regions: Sequence[str], region: str | None, file: str) -> str:
    """The region of a multi-region spec a single-service command works on."""
    if region is None:  # no param: not every command that gets here has a --region
        raise UsageError(f"{file} names several regions ({', '.join(regions)}): name the one to work on",
                         f"a command on one service takes --region {regions[0]}; plan, deploy, status, "
                         "update-image and delete take --all for every one")
    if region not in regions:
        guess = did_you_mean(region, regions)
        raise UsageError(f"{file} does not deploy to {region} (its regions: {', '.join(regions)})", guess, param="region")
    return region


# -- the specs of a project ------------------------------------------------------------------------
def fleet_files(root: Path) -> list[Path]:
    """The spec files of the fleet in ``root``: ``eascomfy.yaml`` and ``services/*.yaml`` (an
    environment overlay beside its spec, ``services/a.prod.yaml``, is not a spec of its own)."""
    found = [root / DEFAULT_FILE] if (root / DEFAULT_FILE).is_file() else []
    folder = root / SERVICES_DIR
    if folder.is_dir():
        files = sorted(p for p in [*folder.glob("*.yaml"), *folder.glob("*.yml")] if p.is_file())
        stems = {p.name[: -len(p.suffix)] for p in files}
        for p in files:
            stem = p.name[: -len(p.suffix)]
            base = stem.split(".", 1)[0]
            if "." in stem and base in stems:
                continue  # base.ENV.yaml: an overlay of base.yaml
            found.append(p)
    if not found:
        raise UsageError(f"no fleet in {root}: expected {DEFAULT_FILE} or {SERVICES_DIR}/*.yaml there",
                         "put one spec per service in services/NAME.yaml (`eascomfy init` writes one), or run from the project folder")
    return found


@dataclass(frozen=True)
class Member:
    """What selecting needs of one service of the fleet (a resolved spec, one region)."""

    name: str
    region: str
    labels: dict[str, str]
    file: str


@dataclass(frozen=True)
class Selector:
    """``--service``, ``--region`` and ``--label k=v`` (all must match; labels are ANDed)."""

    service: str | None = None
    region: str | None = None
    labels: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, service: str | None, region: str | None, labels: Iterable[str]) -> "Selector":
        pairs = []
        for raw in labels:
            key, sep, value = raw.partition("=")
            if not sep or not key:
                raise UsageError(f"expected KEY=VALUE, got {raw!r}", "e.g. --label team=vision", param="label")
            pairs.append((key, value))
        return cls(service, region, tuple(pairs))

    def matches(self, m: Member) -> bool:
        return ((self.service is None or m.name == self.service) and (self.region is None or m.region == self.region)
                and all(m.labels.get(k) == v for k, v in self.labels))

    def describe(self) -> str:
        parts = [f"service {self.service}"] if self.service else []
        parts += [f"region {self.region}"] if self.region else []
        parts += [f"label {k}={v}" for k, v in self.labels]
        return ", ".join(parts) or "everything"


def check_unique(members: Sequence[Member]) -> None:
    """Two specs for one service in one region would fight over it."""
    seen: dict[tuple[str, str], str] = {}
    for m in members:
        key = (m.name, m.region)
        if key in seen:
            raise UsageError(f"service {m.name} in {m.region} is defined twice: by {seen[key]} and by {m.file}",
                             "keep one of the two specs (or give one another name)")
        seen[key] = m.file


def select(members: Sequence[Member], selector: Selector) -> list[int]:
    """The indexes of the members ``selector`` picks; refused, naming what exists, when none."""
    picked = [i for i, m in enumerate(members) if selector.matches(m)]
    if picked:
        return picked
    names = sorted({m.name for m in members})
    regions = sorted({m.region for m in members})
    labels = sorted({f"{k}={v}" for m in members for k, v in m.labels.items() if not k.startswith("eascomfy/")})
    hint = None
    if selector.service and selector.service not in names:
        what, param, hint = f"no service {selector.service!r} in the fleet (services: {', '.join(names)})", "service", \
            did_you_mean(selector.service, names)
    elif selector.region and selector.region not in regions:
        what, param, hint = f"no service of the fleet is in {selector.region!r} (regions: {', '.join(regions)})", \
            "region", did_you_mean(selector.region, regions)
    else:
        missing = [f"{k}={v}" for k, v in selector.labels if f"{k}={v}" not in labels]
        if missing:
            what, param = f"no service of the fleet has label {missing[0]} (labels: {', '.join(labels) or 'none'})", "label"
            hint = did_you_mean(missing[0], labels)
        else:  # each selector matches something, not all at once
            what, param = f"no service of the fleet matches {selector.describe()} together", None
            hint = "; ".join(f"{m.name} is in {m.region}" for m in members if m.name == selector.service) or None
    raise UsageError(what, hint, param=param)
