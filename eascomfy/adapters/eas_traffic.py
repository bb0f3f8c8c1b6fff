"""The EAS service-group and traffic calls (SDK ``alibabacloud_eas20210701`` 7.0.0): DescribeGroup,
ReleaseService (a member's traffic state and weight) and Create/DeleteServiceMirror, on one
``EasClient``'s region, with its retries and mapped errors. Answers come back as plain dicts in
the API's own keys.
"""

from __future__ import annotations

from typing import Any

from .eas import NOT_FOUND, EasClient
from ..errors import CloudError


class EasTraffic:
    def __init__(self, client: EasClient) -> None:
        self.client = client

    def describe_group(self, group: str) -> dict[str, Any] | None:
        """DescribeGroup: the ``Group`` (its body is the group itself), or None when EAS has none
        of that name. The group's AccessToken is never kept."""
        sdk, region = self.client._sdk, self.client.region
        try:
            response = self.client._call("DescribeGroup", lambda: sdk.describe_group(region, group), group,
                                         idempotent=True)
        except CloudError as exc:
            if exc.status == 404 or exc.code in (NOT_FOUND, "InvalidGroup.NotFound"):
                return None
            raise
        body = self.client._body(response)
        body.pop("AccessToken", None)
        return body

    def release(self, name: str, traffic_state: str, weight: int) -> None:
        """ReleaseService: ``TrafficState`` (standalone | grouping) and ``Weight`` ([-1, 1000]); it
        sets a state, so repeating it is safe."""
        from alibabacloud_eas20210701 import models

        sdk, region = self.client._sdk, self.client.region
        request = models.ReleaseServiceRequest(traffic_state=traffic_state, weight=weight)
        self.client._call("ReleaseService", lambda: sdk.release_service(region, name, request), name, idempotent=True)

    def create_mirror(self, name: str, ratio: int, targets: list[str]) -> None:
        """CreateServiceMirror: copy ``ratio`` percent of ``name``'s requests to ``targets``."""
        from alibabacloud_eas20210701 import models

        sdk, region = self.client._sdk, self.client.region
        request = models.CreateServiceMirrorRequest(ratio=ratio, target=list(targets))
        self.client._call("CreateServiceMirror", lambda: sdk.create_service_mirror(region, name, request), name)

    def delete_mirror(self, name: str) -> None:
        sdk, region = self.client._sdk, self.client.region
        self.client._call("DeleteServiceMirror", lambda: sdk.delete_service_mirror(region, name), name, idempotent=True)
