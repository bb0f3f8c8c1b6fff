"""Applying ``autoscaling:`` and ``schedules:`` through EAS's AutoScaler and CronScaler APIs:
read back what the service has (for the plan and drift), then the Create/Update/Delete calls the
plan lists, after the service itself was written. docs/control-plane.md "Scaling".
"""

from __future__ import annotations

from typing import Any

from ..adapters.eas import EasClient, LiveService
from ..adapters.eas_scaling import EasScaling
from ..core.plan import SCALERS_LABEL, Plan
from ..core.scaling import ScalerKind, autoscaler_body, cron_body, live_autoscaler, live_cron
from ..core.spec import Spec


def desired_scalers(spec: Spec) -> dict[ScalerKind, dict[str, Any] | None]:
    return {"autoscaler": autoscaler_body(spec.data), "cronscaler": cron_body(spec.data)}


def read_scalers(client: EasClient, spec: Spec, live: LiveService) -> dict[ScalerKind, dict[str, Any] | None]:
    """What the service's autoscaler and cron scaler are (None: it has none). Read only when the
    spec has one or eascomfy applied one (its label): scalers set elsewhere are left alone."""
    name = spec.name
    if not any(desired_scalers(spec).values()) and not live.labels.get(SCALERS_LABEL):
        return {}
    scaling = EasScaling(client)
    return {
        "autoscaler": live_autoscaler(scaling.describe(name, "autoscaler")),
        "cronscaler": live_cron(scaling.describe(name, "cronscaler")),
    }


def apply_scalers(plan: Plan, client: EasClient) -> None:
    """The plan's scaler calls. Moving an existing autoscaler to min 0 deletes and re-creates it:
    UpdateServiceAutoScaler's documentation says min "must be greater than 0", Create's does not."""
    scaling = EasScaling(client)
    for change in plan.scalers:
        body = change.body
        if change.action == "update" and change.kind == "autoscaler" and body is not None and body["min"] == 0:
            scaling.write(plan.service, change.kind, "delete", None)
            scaling.write(plan.service, change.kind, "create", body)
        else:
            scaling.write(plan.service, change.kind, change.action, body)
