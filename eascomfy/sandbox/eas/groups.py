"""The EAS OpenAPI's service groups, traffic release and traffic mirroring, over a ``ServiceStore``.
Paths, methods and wire names are the SDK 7.0.0's (``alibabacloud_eas20210701`` ``client.py``
``list_groups_with_options``, ``describe_group_with_options``, ``release_service_with_options``,
``*_service_mirror_with_options``; ``models.py`` ``Group``, ``ReleaseServiceRequest``,
``CreateServiceMirrorRequest``):

- A group is not stored: it is the set of services whose config names it (``metadata.group``).
  "A group is created automatically when a service names a new group, and deleted when its last
  member leaves" (https://www.alibabacloud.com/help/en/pai/manage-service-groups).
- ListGroups: GET ``/api/v2/groups``, query ``Filter`` (a name fragment), ``PageNumber``,
  ``PageSize``; answers ``{RequestId, PageNumber, PageSize, TotalCount, Groups: [Group]}``.
- DescribeGroup: GET ``/api/v2/groups/{ClusterId}/{GroupName}``; the body IS the ``Group``
  (``DescribeGroupResponse.body: Group``, no RequestId). ``Group``: ``Name``, ``ClusterId``,
  ``AccessToken``, ``InternetEndpoint``/``IntranetEndpoint`` (``.../api/predict/<group>``),
  ``QueueService``, ``TrafficMode``, ``CreateTime``, ``UpdateTime``. ``TrafficMode`` is ``auto``
  (weights follow instance counts) while every member has the default weight (100), else
  ``customized`` (Go SDK ``UpdateGroupRequest``; what EAS reports then is UNVERIFIED).
- ReleaseService: PUT ``.../{ServiceName}/release``, body ``{TrafficState, Weight}``;
  ``TrafficState`` standalone | grouping, ``Weight`` an integer in [-1, 1000]
  (``ReleaseServiceRequest`` docstrings; the meaning of -1 is unverified, so it is stored as
  given). Answers ``{RequestId, Message}`` with the API page's message ("Releasing service [foo]
  in region [cn-shanghai] with weight [40], service status: [Running]"). A service in no group
  is refused with 400 InvalidParameter (UNVERIFIED).
- Create/Update/Describe/DeleteServiceMirror: POST/PUT/GET/DELETE ``.../{ServiceName}/mirror``;
  body ``{Ratio: 0-100, Target: [service]}`` (the docstring says "instances"; Describe and the
  doc example name services); Describe answers ``Ratio`` as a string and ``Target`` comma-joined
  (eas-operations section 4, the Go SDK's examples); the messages are the Go SDK's ("Traffic
  mirroring is ON for service [foo] in region [cn-shanghai], ratio [70%]", "... is OFF ...").
  Describe and Delete without a mirror: Ratio "0", Target "" and success (UNVERIFIED).

A group's endpoint (``.../api/predict/<group>``, with the group's AccessToken) hands each request
to one of its ``grouping`` members with a weight above 0, in proportion to the weights (smooth
weighted round robin, so the shares are exact over a run of requests; EAS's own balancing is
not documented). Mirroring is stored and reported, not carried out.

Where the service JSON's group is reported: DescribeService ``ServiceGroup``, ``TrafficState``
and ``Weight`` (Go SDK ``service_model.go``), added by ``OpenApi._view``.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from typing import Any, Callable

from .errors import invalid, not_found
from .params import Call, int_param, page_of
from .state import ServiceRecord, ServiceStore, iso

Handler = Callable[[Call], dict[str, Any]]
TRAFFIC_STATES = ("standalone", "grouping")
MIN_WEIGHT, MAX_WEIGHT = -1, 1000


def _int(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(f"{what} must be an integer from {low} to {high}")
    return value


class GroupApi:
    """Groups (``/api/v2/groups``) and the per-service release and mirror actions."""

    def __init__(self, store: ServiceStore, endpoint: Callable[[str, bool], str]) -> None:
        self.store = store
        self._endpoint = endpoint  # (name, internal) -> the URL of a service or group endpoint
        self._credit: dict[str, dict[str, int]] = {}  # group -> member -> its round-robin credit
        self._lock = threading.Lock()

    def service_routes(self) -> dict[tuple[str, str], Handler]:
        return {
            ("PUT", "release"): self.release,
            ("POST", "mirror"): lambda c: self.put_mirror(c, create=True),
            ("PUT", "mirror"): lambda c: self.put_mirror(c, create=False),
            ("GET", "mirror"): self.describe_mirror,
            ("DELETE", "mirror"): self.delete_mirror,
        }

    # -- groups ----------------------------------------------------------------------------------
    def members(self, group: str) -> list[ServiceRecord]:
        return [rec for rec in self.store.all() if rec.group == group]

    def token(self, group: str) -> str:
        return hmac.new(self.store.url_key.encode(), f"group\n{group}".encode(), hashlib.sha256).hexdigest()

    def route(self, group: str) -> ServiceRecord | None:
        """The member the next request to the group's endpoint goes to; None when no member takes
        group traffic (not a group, or every member standalone or at weight 0 or less)."""
        members = [m for m in self.members(group) if m.traffic_state == "grouping" and m.weight > 0]
        if not members:
            return None
        with self._lock:
            credit = self._credit.setdefault(group, {})
            for member in members:
                credit[member.name] = credit.get(member.name, 0) + member.weight
            chosen = max(members, key=lambda m: (credit[m.name], m.name))
            credit[chosen.name] -= sum(m.weight for m in members)
        return chosen

    def view(self, group: str, members: list[ServiceRecord]) -> dict[str, Any]:
        token = self.token(group)
        customized = any(rec.weight != 100 for rec in members)
        return {
            "Name": group,
            "ClusterId": self.store.region,
            "AccessToken": token,
            "InternetEndpoint": self._endpoint(group, False),
            "IntranetEndpoint": self._endpoint(group, True),
            "QueueService": "",
            "TrafficMode": "customized" if customized else "auto",
            "CreateTime": iso(min(rec.create_time for rec in members)),
            "UpdateTime": iso(max(rec.update_time for rec in members)),
        }

    def list_groups(self, call: Call) -> dict[str, Any]:
        fragment = call.query.get("Filter") or ""
        names = sorted({rec.group for rec in self.store.all() if rec.group and fragment in rec.group})
        number = int_param(call.query, "PageNumber", 1)
        size = int_param(call.query, "PageSize", 100)
        groups = [self.view(name, self.members(name)) for name in page_of(names, number, size)]
        return {"PageNumber": number, "PageSize": size, "TotalCount": len(names), "Groups": groups}

    def describe_group(self, group: str) -> dict[str, Any]:
        members = self.members(group)
        if not members:
            raise not_found()
        return self.view(group, members)

    # -- ReleaseService --------------------------------------------------------------------------
    def release(self, call: Call) -> dict[str, Any]:
        body = call.json()
        state, weight = body.get("TrafficState"), body.get("Weight")
        if state is None and weight is None:
            raise invalid("TrafficState or Weight is required")
        if state is not None and state not in TRAFFIC_STATES:
            raise invalid(f"TrafficState must be one of {', '.join(TRAFFIC_STATES)}")
        if weight is not None:
            weight = _int(weight, "Weight", MIN_WEIGHT, MAX_WEIGHT)
        if not self.store.get(call.service).group:
            raise invalid(f"Service [{call.service}] is not in a service group")
        rec = self.store.release(call.service, state, weight)
        return {"Message": f"Releasing service [{rec.name}] in region [{self.store.region}] with weight "
                           f"[{rec.weight}], service status: [{rec.status}]"}

    # -- mirror ----------------------------------------------------------------------------------
    def put_mirror(self, call: Call, create: bool) -> dict[str, Any]:
        body = call.json()
        ratio = _int(body.get("Ratio"), "Ratio", 0, 100)
        targets = body.get("Target")
        if not isinstance(targets, list) or not targets or not all(isinstance(t, str) and t for t in targets):
            raise invalid("Target must be a non-empty list of service names")
        rec = self.store.get(call.service)
        if create and rec.mirror is not None:
            raise invalid(f"Traffic mirroring of service [{call.service}] already exists", status=409)
        for name in targets:
            if self.store.find(name) is None:
                raise invalid(f"Target service [{name}] does not exist")
        self.store.set_mirror(call.service, {"Ratio": ratio, "Target": list(targets)})
        return {"Message": f"Traffic mirroring is ON for service [{call.service}] in region [{self.store.region}], "
                           f"ratio [{ratio}%]"}

    def describe_mirror(self, call: Call) -> dict[str, Any]:
        mirror = self.store.get(call.service).mirror or {"Ratio": 0, "Target": []}
        return {"ServiceName": call.service, "Ratio": str(mirror["Ratio"]), "Target": ",".join(mirror["Target"])}

    def delete_mirror(self, call: Call) -> dict[str, Any]:
        self.store.set_mirror(call.service, None)
        return {"Message": f"Traffic mirroring is OFF for service [{call.service}] in region [{self.store.region}]"}
