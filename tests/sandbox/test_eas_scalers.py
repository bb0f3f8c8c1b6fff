"""The emulator's AutoScaler and CronScaler actions, driven by the unmodified SDK 7.0.0."""

from __future__ import annotations

from alibabacloud_eas20210701 import models as m
from alibabacloud_eas20210701.client import Client

from eascomfy.sandbox.eas import EasSandbox
from eascomfy.sandbox.eas.scalers import cron_problem

from .test_eas_sandbox import REGION, client, clock, create, sandbox, sdk_error, service_config  # noqa: F401


def strategies(*pairs: tuple[str, float]) -> list[m.CreateServiceAutoScalerRequestScaleStrategies]:
    return [m.CreateServiceAutoScalerRequestScaleStrategies(metric_name=n, threshold=t) for n, t in pairs]


def test_autoscaler_round_trip_and_validation(sandbox: EasSandbox, client: Client) -> None:
    create(client, service_config("as2_svc"))
    behavior = m.CreateServiceAutoScalerRequestBehavior(
        scale_down=m.CreateServiceAutoScalerRequestBehaviorScaleDown(stabilization_window_seconds=120),
        on_zero=m.CreateServiceAutoScalerRequestBehaviorOnZero(scale_down_grace_period_seconds=600),
    )
    request = m.CreateServiceAutoScalerRequest(
        min=0, max=4, scale_strategies=strategies(("queue[avgbacklog]", 5), ("gpu[util]", 80)), behavior=behavior
    )
    assert "Succeed" in client.create_service_auto_scaler(REGION, "as2_svc", request).body.message
    body = client.describe_service_auto_scaler(REGION, "as2_svc").body
    assert (body.min_replica, body.max_replica) == (0, 4)
    assert [(s.metric_name, s.threshold, s.service) for s in body.scale_strategies] == [
        ("queue[avgbacklog]", 5.0, "as2_svc"), ("gpu[util]", 80.0, "as2_svc")]
    assert body.behavior == {"scaleDown": {"stabilizationWindowSeconds": 120}, "onZero": {"scaleDownGracePeriodSeconds": 600}}
    # a second Create is refused; Update is the way (409 unverified)
    assert sdk_error(lambda: client.create_service_auto_scaler(REGION, "as2_svc", request)).code == "InvalidParameter"

    def update(low: int, high: int, metric: str = "qps") -> m.UpdateServiceAutoScalerResponse:
        scale = [m.UpdateServiceAutoScalerRequestScaleStrategies(metric_name=metric, threshold=10)]
        return client.update_service_auto_scaler(REGION, "as2_svc", m.UpdateServiceAutoScalerRequest(min=low, max=high, scale_strategies=scale))

    for low, high, metric, words in ((3, 3, "qps", "greater than min"), (1, 1001, "qps", "at most 1000"),
                                     (1, 3, "latency", "not supported"), (0, 3, "qps", "greater than 0")):
        err = sdk_error(lambda: update(low, high, metric))
        assert (err.code, err.data["statusCode"]) == ("InvalidParameter", 400) and words in err.message, err.message
    sandbox.fidelity.autoscaler_update_min = "zero_ok"  # Create, the console and the async doc allow 0
    update(0, 3)
    update(1, 3, "QPS")  # the Describe docstrings write metric names in upper case
    assert client.describe_service_auto_scaler(REGION, "as2_svc").body.scale_strategies[0].metric_name == "QPS"
    client.delete_service_auto_scaler(REGION, "as2_svc")
    assert client.describe_service_auto_scaler(REGION, "as2_svc").body.max_replica == 0
    err = sdk_error(lambda: client.describe_service_auto_scaler(REGION, "no_such_svc"))
    assert err.code == "InvalidService.NotFound"


def test_cron_scaler_round_trip_and_validation(client: Client) -> None:
    create(client, service_config("cron_svc"))
    jobs = [m.CreateServiceCronScalerRequestScaleJobs(schedule="0 0 8 * * MON-FRI", target_size=3),
            m.CreateServiceCronScalerRequestScaleJobs(name="night", schedule="0 0 20 * * *", target_size=0)]
    request = m.CreateServiceCronScalerRequest(scale_jobs=jobs, exclude_dates=["* * * 1 JAN *"])
    client.create_service_cron_scaler(REGION, "cron_svc", request)
    body = client.describe_service_cron_scaler(REGION, "cron_svc").body
    assert [(j.name, j.schedule, j.target_size, j.state) for j in body.scale_jobs] == [
        ("scale-job-0", "0 0 8 * * MON-FRI", 3, "Succeed"), ("night", "0 0 20 * * *", 0, "Succeed")]
    assert body.exclude_dates == ["* * * 1 JAN *"] and body.scale_jobs[0].create_time.endswith("Z")

    five = [m.UpdateServiceCronScalerRequestScaleJobs(schedule="0 8 * * *", target_size=2)]
    err = sdk_error(lambda: client.update_service_cron_scaler(REGION, "cron_svc", m.UpdateServiceCronScalerRequest(scale_jobs=five)))
    assert err.code == "InvalidParameter" and "has 5 fields" in err.message
    client.delete_service_cron_scaler(REGION, "cron_svc")
    assert client.describe_service_cron_scaler(REGION, "cron_svc").body.scale_jobs == []


def test_cron_expressions() -> None:
    for good in ("0 18 * * * *", "* * * * * 0,6", "*/15 0-30/5 8-20 1,15 JAN-MAR SUN", "0 0 0 31 12 6"):
        assert cron_problem(good) is None, good
    for bad, words in (("0 18 * * *", "5 fields"), ("60 * * * * *", "outside 0-59"), ("0 0 0 ? * *", "only * / , -"),
                       ("0 0 0 L * *", "outside"), ("0 0 0 * 13 *", "outside 1-12"), ("0 0 0 * * 7", "outside 0-6"),
                       ("*/0 * * * * *", "only")):
        assert words in (cron_problem(bad) or ""), bad
