"""autoscaling: and schedules: through the CLI: applied with the AutoScaler and CronScaler APIs
(the unmodified SDK against the emulator), shown in plan, read back for drift, idempotent."""

from __future__ import annotations

from typing import Callable

from eascomfy.sandbox.eas import EasSandbox

from .conftest import Project, api_calls, mark

SCALING = """
autoscaling:
  min: 0
  max: 4
  metrics:
    - {name: "queue[avgbacklog]", threshold: 5}
    - {name: "gpu[util]", threshold: 80}
  scale_in_delay: 120
  scale_to_zero_after: 900
schedules:
  - {cron: "0 0 8 * * MON-FRI", timezone: Asia/Shanghai, target_instances: 2, name: workday}
"""


def scaler_writes(sandbox: EasSandbox, since: int) -> list[tuple[str, str]]:
    return [(r.method, r.path.rsplit("/", 1)[-1]) for r in api_calls(sandbox, since)
            if r.path.endswith(("autoscaler", "cronscaler")) and r.method != "GET"]


def test_scalers_are_planned_applied_read_back_and_removed(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("scaling_svc")  # the API edition: scale to zero with the queue metric
    p.spec.write_text(p.spec.read_text() + SCALING)
    res = p.cli("plan")
    assert "  + autoscaler: 0-4 on queue[avgbacklog]>5, gpu[util]>80, scale-in delay 120s" in res.stdout, res.stdout
    assert "  + cron scaler: workday '0 0 8 * * MON-FRI' Asia/Shanghai -> 2" in res.stdout
    assert "autoscaler.min" not in res.stdout  # not in the service JSON

    before = mark(sandbox)
    assert p.cli("deploy").exit_code == 0
    assert scaler_writes(sandbox, before) == [("POST", "autoscaler"), ("POST", "cronscaler")]
    record = sandbox.get_service("scaling_svc")
    assert "autoscaler" not in record["config"]
    assert record["autoscaler"] == {
        "min": 0, "max": 4,
        "scaleStrategies": [{"metricName": "queue[avgbacklog]", "threshold": 5}, {"metricName": "gpu[util]", "threshold": 80}],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 120}, "onZero": {"scaleDownGracePeriodSeconds": 900}},
    }
    assert record["cronscaler"]["ScaleJobs"] == [
        {"Name": "workday", "Schedule": "0 0 8 * * MON-FRI", "TargetSize": 2, "TimeZone": "Asia/Shanghai"}]

    # an unchanged redeploy makes no scaler write; the autoscaler's count is not drift
    sandbox.autoscale("scaling_svc", 3)
    assert p.cli("plan", "--detailed-exitcode").exit_code == 0
    before = mark(sandbox)
    assert p.cli("deploy").exit_code == 0
    assert scaler_writes(sandbox, before) == []

    # a change outside eascomfy (the console) shows in plan and deploy puts it back
    sandbox.fidelity.autoscaler_update_min = "zero_ok"
    from alibabacloud_eas20210701 import models as m

    from tests.sandbox.test_eas_sandbox import REGION, make_client
    strategies = [m.UpdateServiceAutoScalerRequestScaleStrategies(metric_name="QPS", threshold=10)]
    make_client(sandbox).update_service_auto_scaler(
        REGION, "scaling_svc", m.UpdateServiceAutoScalerRequest(min=0, max=9, scale_strategies=strategies))
    res = p.cli("plan", "--detailed-exitcode")
    assert res.exit_code == 2 and "~ autoscaler: 0-9 on QPS>10 -> 0-4" in res.stdout, res.stdout
    sandbox.fidelity.autoscaler_update_min = "positive"
    before = mark(sandbox)
    assert p.cli("deploy").exit_code == 0
    # min 0: Update is documented as refusing it, so deploy deletes and re-creates
    assert scaler_writes(sandbox, before) == [("DELETE", "autoscaler"), ("POST", "autoscaler")]
    assert sandbox.get_service("scaling_svc")["autoscaler"]["max"] == 4

    # a new bound updates; removing both from the spec deletes what eascomfy created
    p.spec.write_text(p.spec.read_text().replace("  min: 0\n  max: 4", "  min: 1\n  max: 6").replace(
        "  scale_to_zero_after: 900\n", ""))
    before = mark(sandbox)
    assert p.cli("deploy").exit_code == 0
    assert scaler_writes(sandbox, before) == [("PUT", "autoscaler")]
    p.spec.write_text(p.spec.read_text().split("\nautoscaling:")[0] + "\n")
    data = p.cli("-o", "json", "plan").json()["data"]
    assert [(s["kind"], s["action"]) for s in data["scalers"]] == [("autoscaler", "delete"), ("cronscaler", "delete")]
    before = mark(sandbox)
    assert p.cli("deploy").exit_code == 0
    assert scaler_writes(sandbox, before) == [("DELETE", "autoscaler"), ("DELETE", "cronscaler")]
    record = sandbox.get_service("scaling_svc")
    assert record["autoscaler"] is None and record["cronscaler"] is None
    assert p.cli("plan", "--detailed-exitcode").exit_code == 0
