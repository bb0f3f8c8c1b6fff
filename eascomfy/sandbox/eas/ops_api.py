"""The EAS OpenAPI's instance, log and diagnosis actions, over ``instances``. Paths and query
parameters are the SDK 7.0.0's (``alibabacloud_eas20210701/client.py``):

- ListServiceInstances: GET ``/api/v2/services/{ClusterId}/{ServiceName}/instances``; query
  ``PageNumber`` (1), ``PageSize`` (100), ``InstanceName``, ``InstanceStatus``, ``Filter``,
  ``Order`` (``asc``|``desc``), ``Sort`` (``StartTime``); answers ``{PageNumber, PageSize,
  TotalCount, Instances}``.
- ListServiceContainers: GET ``.../instances/{InstanceName}/containers``; ``{ServiceName,
  Containers}``.
- DescribeServiceLog: GET ``.../logs``; query ``InstanceName``, ``ContainerName``, ``Keyword``,
  ``Ip``, ``StartTime``/``EndTime`` (UTC ``yyyy-MM-dd HH:mm:ss``), ``PageNum`` (1), ``PageSize``
  (500), ``Previous`` (bool: before the last restart); answers ``{Logs: [str], PageNum,
  TotalCount, TotalPageNum}``.
- DescribeServiceDiagnosis: GET ``.../diagnosis``; ``{DiagnosisList: [{Error, Causes, Advices}]}``.
- DescribeServiceInstanceDiagnosis: GET ``.../instances/{InstanceName}/diagnosis``;
  ``{Diagnosis: {Error, Causes, Advices}}`` (one object, not a list).
"""

from __future__ import annotations

from typing import Any, Callable

from . import instances as inst
from .errors import EasError
from .params import Call, bool_param, int_param, numbered_page, page_of, time_param
from .state import ServiceRecord, ServiceStore, iso

Handler = Callable[[Call], dict[str, Any]]


class OpsApi:
    """The five read actions, keyed like ``OpenApi``'s service operations: (method, sub-path),
    where an instance's sub-resource is ``instances/<sub>`` (the instance name is in ``call``)."""

    def __init__(self, store: ServiceStore) -> None:
        self.store = store

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {
            ("GET", "instances"): self.list_instances,
            ("GET", "logs"): self.logs,
            ("GET", "diagnosis"): self.diagnosis,
            ("GET", "instances/diagnosis"): self.instance_diagnosis,
            ("GET", "instances/containers"): self.containers,
        }

    def _listed(self, rec: ServiceRecord) -> list[dict[str, Any]]:
        return inst.instances(rec, self.store.is_ready(rec), iso)

    def _instance(self, rec: ServiceRecord, name: str) -> dict[str, Any]:
        for item in self._listed(rec):
            if item["InstanceName"] == name:
                return item
        # The code for an unknown instance is not documented (docs/unverified.md).
        raise EasError(404, "InvalidInstance.NotFound", f"Instance {name} of service {rec.name} not found")

    def list_instances(self, call: Call) -> dict[str, Any]:
        q = call.query
        rec = self.store.get(call.service)
        found = [
            i for i in self._listed(rec)
            if (not q.get("InstanceName") or i["InstanceName"] == q["InstanceName"])
            and (not q.get("InstanceStatus") or i["Status"] == q["InstanceStatus"])
            and (q.get("Filter", "") in i["InstanceName"])
        ]
        if q.get("Sort") == "StartTime":
            found.sort(key=lambda i: i["StartTime"], reverse=q.get("Order", "desc").lower() != "asc")
        number, size = int_param(q, "PageNumber", 1), int_param(q, "PageSize", 100)
        return {"PageNumber": number, "PageSize": size, "TotalCount": len(found), "Instances": page_of(found, number, size)}

    def containers(self, call: Call) -> dict[str, Any]:
        rec = self.store.get(call.service)
        return {"ServiceName": rec.name, "Containers": inst.containers(rec, self._instance(rec, call.instance), iso)}

    def logs(self, call: Call) -> dict[str, Any]:
        q = call.query
        rec = self.store.get(call.service)
        names = [i["InstanceName"] for i in self._listed(rec)]
        if q.get("InstanceName"):
            self._instance(rec, q["InstanceName"])
        lines = inst.log_lines(
            rec, names, instance=q.get("InstanceName", ""), container=q.get("ContainerName", ""),
            keyword=q.get("Keyword", ""), previous=bool_param(q, "Previous"),
            start=time_param(q, "StartTime"), end=time_param(q, "EndTime"),
        )
        return numbered_page(q, lines, "Logs", 500)

    def diagnosis(self, call: Call) -> dict[str, Any]:
        rec = self.store.get(call.service)
        return {"DiagnosisList": inst.diagnosis(rec, self._listed(rec))}

    def instance_diagnosis(self, call: Call) -> dict[str, Any]:
        rec = self.store.get(call.service)
        return {"Diagnosis": inst.instance_diagnosis(rec, self._instance(rec, call.instance))}
