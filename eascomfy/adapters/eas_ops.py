"""The EAS reads that show what a service's instances do: ListServiceInstances,
ListServiceContainers, DescribeServiceLog, DescribeServiceDiagnosis and
DescribeServiceInstanceDiagnosis, through an ``EasClient`` (its retries and its one error
mapping). Request and response fields are the SDK 7.0.0's (``models.ListServiceInstancesRequest``,
``Instance``, ``ContainerInfo``, ``DescribeServiceLogRequest``/``ResponseBody``,
``DescribeService[Instance]DiagnosisResponseBody``); all are reads, so all are retried.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .eas import EasClient

LOG_PAGE = 500  # DescribeServiceLog's default PageSize (SDK docstring)


@dataclass(frozen=True)
class Instance:
    """One instance as ListServiceInstances shows it, plus its main container's last
    termination reason (ListServiceContainers ``LastReason``) when it has restarted."""

    name: str
    status: str
    reason: str
    restarts: int
    started: str
    ready: bool
    instance_type: str = ""
    last_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Diagnosis:
    """One DescribeService[Instance]Diagnosis entry."""

    error: str
    causes: list[str] = field(default_factory=list)
    advices: list[str] = field(default_factory=list)
    instance: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LogPage:
    lines: list[str]
    page: int
    total: int
    pages: int


def utc(seconds: float) -> str:
    """The time format DescribeServiceLog takes (UTC ``yyyy-MM-dd HH:mm:ss``)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


class EasOps:
    """Instance, log and diagnosis reads on one client's region."""

    def __init__(self, client: EasClient) -> None:
        self.client = client

    def _get(self, action: str, fn: Any, name: str) -> dict[str, Any]:
        response = self.client._call(action, fn, name, idempotent=True)
        return self.client._body(response)

    def instances(self, name: str, *, last_reasons: bool = True) -> list[Instance]:
        from alibabacloud_eas20210701 import models

        sdk, region = self.client._sdk, self.client.region
        found: list[dict[str, Any]] = []
        number = 1
        while True:
            request = models.ListServiceInstancesRequest(page_number=number, page_size=100)
            body = self._get("ListServiceInstances", lambda: sdk.list_service_instances(region, name, request), name)
            found += body.get("Instances") or []
            if len(found) >= int(body.get("TotalCount") or 0) or not body.get("Instances"):
                break
            number += 1
        out = []
        for item in found:
            restarts = int(item.get("RestartCount") or 0)
            last = self.last_reason(name, str(item.get("InstanceName"))) if last_reasons and restarts else ""
            out.append(Instance(
                name=str(item.get("InstanceName") or ""),
                status=str(item.get("Status") or ""),
                reason=str(item.get("Reason") or ""),
                restarts=restarts,
                started=str(item.get("StartTime") or item.get("StartAt") or ""),
                ready=int(item.get("ReadyProcesses") or 0) > 0,
                instance_type=str(item.get("InstanceType") or ""),
                last_reason=last,
            ))
        return out

    def last_reason(self, name: str, instance: str) -> str:
        """The main container's last termination reason (``ContainerInfo.LastReason``)."""
        sdk, region = self.client._sdk, self.client.region
        body = self._get("ListServiceContainers", lambda: sdk.list_service_containers(region, name, instance), name)
        reasons = [str(c.get("LastReason") or "") for c in body.get("Containers") or []]
        return next((r for r in reasons if r), "")

    def logs(
        self,
        name: str,
        *,
        instance: str | None = None,
        since: float | None = None,
        keyword: str | None = None,
        previous: bool = False,
        page: int = 1,
        size: int = LOG_PAGE,
    ) -> LogPage:
        from alibabacloud_eas20210701 import models

        request = models.DescribeServiceLogRequest(
            instance_name=instance or None,
            start_time=utc(since) if since is not None else None,
            keyword=keyword or None,
            previous=True if previous else None,
            page_num=page,
            page_size=size,
        )
        sdk, region = self.client._sdk, self.client.region
        body = self._get("DescribeServiceLog", lambda: sdk.describe_service_log(region, name, request), name)
        return LogPage(
            lines=[str(line) for line in body.get("Logs") or []],
            page=int(body.get("PageNum") or page),
            total=int(body.get("TotalCount") or 0),
            pages=int(body.get("TotalPageNum") or 0),
        )

    def diagnosis(self, name: str) -> list[Diagnosis]:
        sdk, region = self.client._sdk, self.client.region
        body = self._get("DescribeServiceDiagnosis", lambda: sdk.describe_service_diagnosis(region, name), name)
        return [_diagnosis(d) for d in body.get("DiagnosisList") or [] if d]

    def instance_diagnosis(self, name: str, instance: str) -> Diagnosis | None:
        sdk, region = self.client._sdk, self.client.region
        call = lambda: sdk.describe_service_instance_diagnosis(region, name, instance)  # noqa: E731
        body = self._get("DescribeServiceInstanceDiagnosis", call, name)
        found = body.get("Diagnosis") or {}
        return _diagnosis(found, instance) if found.get("Error") or found.get("Causes") else None


def _diagnosis(data: dict[str, Any], instance: str = "") -> Diagnosis:
    return Diagnosis(
        error=str(data.get("Error") or ""),
        causes=[str(c) for c in data.get("Causes") or []],
        advices=[str(a) for a in data.get("Advices") or []],
        instance=instance,
    )
