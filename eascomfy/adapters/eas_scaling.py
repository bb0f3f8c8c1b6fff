"""The EAS AutoScaler and CronScaler calls (SDK ``alibabacloud_eas20210701`` 7.0.0), on one
``EasClient``'s region, with its retries and mapped errors. Bodies go in and come back as plain
dicts in the API's own keys (camelCase for the autoscaler, PascalCase for the cron scaler).

SDK 7.0.0 has no ``TimeZone`` on a cron job (added to the API on 2025-09-10, newer SDKs send it):
a job with a time zone is sent through ``_Job``, the SDK's own job model plus that one key.
"""

from __future__ import annotations

from typing import Any, Literal

from .eas import EasClient

Kind = Literal["autoscaler", "cronscaler"]
Action = Literal["create", "update", "delete"]


class EasScaling:
    def __init__(self, client: EasClient) -> None:
        self.client = client

    def describe(self, name: str, kind: Kind) -> dict[str, Any]:
        sdk, region = self.client._sdk, self.client.region
        if kind == "autoscaler":
            fn = lambda: sdk.describe_service_auto_scaler(region, name)  # noqa: E731
            action = "DescribeServiceAutoScaler"
        else:
            fn = lambda: sdk.describe_service_cron_scaler(region, name)  # noqa: E731
            action = "DescribeServiceCronScaler"
        return self.client._body(self.client._call(action, fn, name, idempotent=True))

    def write(self, name: str, kind: Kind, action: Action, body: dict[str, Any] | None) -> None:
        from alibabacloud_eas20210701 import models

        sdk, region = self.client._sdk, self.client.region
        label = f"{action.capitalize()}Service{'AutoScaler' if kind == 'autoscaler' else 'CronScaler'}"
        if action == "delete":
            fn = (lambda: sdk.delete_service_auto_scaler(region, name)) if kind == "autoscaler" else (
                lambda: sdk.delete_service_cron_scaler(region, name))
            self.client._call(label, fn, name, idempotent=True)
            return
        assert body is not None
        prefix = "Create" if action == "create" else "Update"
        if kind == "autoscaler":
            request = getattr(models, f"{prefix}ServiceAutoScalerRequest")().from_map(body)
            method = getattr(sdk, f"{action}_service_auto_scaler")
        else:
            job_model = getattr(models, f"{prefix}ServiceCronScalerRequestScaleJobs")
            request = getattr(models, f"{prefix}ServiceCronScalerRequest")(
                scale_jobs=[_job(job_model, j) for j in body["ScaleJobs"]], exclude_dates=body.get("ExcludeDates"))
            method = getattr(sdk, f"{action}_service_cron_scaler")
        self.client._call(label, lambda: method(region, name, request), name, idempotent=action == "update")


def _job(model: Any, job: dict[str, Any]) -> Any:
    item = model().from_map(job)
    if not job.get("TimeZone"):
        return item

    class _Job(model):  # type: ignore[misc, valid-type]
        def to_map(self) -> dict[str, Any]:
            return {**super().to_map(), "TimeZone": job["TimeZone"]}

    return _Job().from_map(job)
