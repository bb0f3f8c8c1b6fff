"""The EAS capacity reads: DescribeMachineSpec (GET ``/api/v2/public/instance_types``: each
instance type's stock, availability, spot discounts and size; no price) and
DescribeSpotDiscountHistory (GET ``/api/v2/public/spot_discount``), through an ``EasClient`` (its
retries and its one error mapping). Fields are SDK 7.0.0's
(``models.DescribeMachineSpecResponseBodyInstanceMetas``,
``DescribeSpotDiscountHistoryResponseBodySpotDiscounts``); answers come back as plain dicts in
the API's own keys. Both are reads, so both are retried.
"""

from __future__ import annotations

from typing import Any

from .eas import EasClient


class EasCapacity:
    """Instance-type reads on one client's region (the region is the endpoint's: no ClusterId)."""

    def __init__(self, client: EasClient) -> None:
        self.client = client

    def machine_specs(self) -> dict[str, dict[str, Any]]:
        """Every ``InstanceMetas`` entry of the region, by ``InstanceType``. The SDK's
        ``InstanceTypes`` filter is deprecated (its docstring), so the whole list is read once."""
        from alibabacloud_eas20210701 import models

        sdk = self.client._sdk
        call = lambda: sdk.describe_machine_spec(models.DescribeMachineSpecRequest())  # noqa: E731
        body = self.client._body(self.client._call("DescribeMachineSpec", call, idempotent=True))
        return {str(m["InstanceType"]): m for m in body.get("InstanceMetas") or [] if m and m.get("InstanceType")}

    def spot_history(self, instance_type: str, protect: bool = True) -> list[dict[str, Any]]:
        """The spot discounts of ``instance_type`` over time (``SpotDiscount`` is a string there,
        ``Timestamp`` ISO UTC), as EAS lists them; ``protect``: with the 1-hour protection."""
        from alibabacloud_eas20210701 import models

        sdk = self.client._sdk
        request = models.DescribeSpotDiscountHistoryRequest(instance_type=instance_type, is_protect=protect)
        call = lambda: sdk.describe_spot_discount_history(request)  # noqa: E731
        body = self.client._body(self.client._call("DescribeSpotDiscountHistory", call, idempotent=True))
        return [dict(d) for d in body.get("SpotDiscounts") or [] if d]
