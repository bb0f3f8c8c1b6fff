"""The saved-plan format (``plan --out FILE``, ``deploy --plan FILE``): a plan as a reviewable
JSON file, with fingerprints of both sides, so a deploy can refuse a plan that no longer holds.

A plan file says what will change (the plan's JSON form, secrets masked) plus ``desired_sha``
(the rendered config), ``live_sha`` and ``live_version`` (the live service it was made against).
When either config holds a secret, both shas are ``core.secrets.fingerprint``s salted with
``secret_salt`` (random per plan): a changed secret still makes the plan stale, and the file holds
neither the value nor a fast hash of it. Errors about the file carry ``param="plan"``.
"""

from __future__ import annotations

import json
import secrets as random
from pathlib import Path
from typing import Any

from ..errors import EascomfyError, UsageError
from .plan import Plan
from .secrets import fingerprint
from .yamlio import not_regular

PLAN_FORMAT = "eascomfy-plan/1"
_WRITE_ONE = "save one with `eascomfy plan`"


def saved_plan(plan: Plan, salt: str | None = None) -> dict[str, Any]:
    """A plan as a reviewable file: what will change, and fingerprints of both sides (salted with
    ``salt``, or a new random one, when a config holds secrets)."""
    desired_sha, live_sha = plan.desired_sha, plan.live_sha
    if plan.has_secrets:
        salt = salt or random.token_hex(16)
        desired_sha = fingerprint(plan.desired, plan.secrets, salt)
        live_sha = fingerprint(plan.live, plan.secrets, salt) if plan.live is not None else None
    else:
        salt = None
    return {
        "format": PLAN_FORMAT,
        **plan.to_dict(),
        "desired_sha": desired_sha,
        "live_sha": live_sha,
        "live_version": plan.live_version,
        "secret_salt": salt,
    }


def dumps(plan: Plan, storage: list[dict[str, Any]] | None = None) -> str:
    """The text of a plan file; ``storage``: the bucket's part of the plan, when there is one
    (each entry's key and action: a deploy of this plan refuses a bucket that changed since)."""
    data = saved_plan(plan)
    if storage is not None:
        data["storage"] = storage
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def read_plan(path: Path) -> dict[str, Any]:
    """A plan file as saved; refused when it cannot be read or is not a JSON mapping."""
    if (kind := not_regular(path)) is not None:
        raise UsageError(f"{path}: is {kind}, not a plan file", _WRITE_ONE, param="plan")
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}", param="plan") from None
    except ValueError:
        raise UsageError(f"{path}: not a plan file (not JSON)", _WRITE_ONE, param="plan") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: not a plan file", _WRITE_ONE, param="plan")
    return data


class StalePlan(EascomfyError):
    """A saved plan that no longer describes what deploy would do: refused before any write."""

    code = "StalePlan"

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(f"the saved plan is stale: {'; '.join(reasons)}", "save a new plan with `eascomfy plan` and review it")
        self.reasons = reasons


def check_saved(saved: dict[str, Any], current: Plan) -> None:
    """``StalePlan`` unless ``saved`` still describes ``current``."""
    reasons = stale_reasons(saved, current)
    if reasons:
        raise StalePlan(reasons)


def check_saved_storage(saved: dict[str, Any], storage: list[dict[str, Any]] | None) -> None:
    """``StalePlan`` unless the bucket's part of ``saved`` (absent in a plan saved without one) is
    the bucket's part of the plan now (``storage``; None when deploy does not touch the bucket)."""
    then = saved.get("storage")
    if then == storage:
        return
    if then is None:
        raise StalePlan(["it has no bucket part, but the spec or the lock now wants files on the mount"])
    if storage is None:
        raise StalePlan(["it has a bucket part, but the spec and the lock no longer want files on the mount"])
    raise StalePlan(["the bucket, or a file to upload, changed since the plan was made"])


def stale_reasons(saved: dict[str, Any], current: Plan) -> list[str]:
    """Why a saved plan no longer describes what deploy would do now (empty: it still does)."""
    if saved.get("format") != PLAN_FORMAT:
        return [f"not an eascomfy plan file (format {saved.get('format')!r}, expected {PLAN_FORMAT!r})"]
    salt = saved.get("secret_salt")
    now = saved_plan(current, salt if isinstance(salt, str) and salt else None)
    reasons = []
    if (saved.get("service"), saved.get("region")) != (now["service"], now["region"]):
        reasons.append(f"it is for service {saved.get('service')} in {saved.get('region')}, not {now['service']} in {now['region']}")
    if saved.get("desired_sha") != now["desired_sha"] or saved.get("labels_set") != now["labels_set"]:
        reasons.append("the spec renders differently now than when the plan was made")
    if (saved.get("live_sha"), saved.get("live_version")) != (now["live_sha"], now["live_version"]):
        reasons.append("the live service changed since the plan was made")
    return reasons
