"""The emulator's service groups, ReleaseService and traffic mirroring, driven by the unmodified
SDK 7.0.0 (shapes: sandbox/eas/groups.py and its sources)."""

from __future__ import annotations

from alibabacloud_eas20210701 import models as m
from alibabacloud_eas20210701.client import Client

from eascomfy.sandbox.eas import EasSandbox

from .test_eas_sandbox import (REGION, client, clock, create, describe, sandbox, sdk_error,  # noqa: F401
                               service_config, wait_until)


def grouped(name: str, group: str) -> dict:
    config = service_config(name)
    config["metadata"]["group"] = group
    return config


def test_groups_are_the_services_that_name_them(client: Client) -> None:
    create(client, grouped("gr_live", "team_a"))
    create(client, grouped("gr_canary", "team_a"))
    create(client, grouped("gr_other", "team_b"))
    create(client, service_config("gr_alone"))
    body = client.list_groups(m.ListGroupsRequest()).body
    assert body.total_count == 2 and [g.name for g in body.groups] == ["team_a", "team_b"]
    assert client.list_groups(m.ListGroupsRequest(filter="_b")).body.total_count == 1
    paged = client.list_groups(m.ListGroupsRequest(page_number="2", page_size="1")).body
    assert (paged.page_number, paged.page_size, [g.name for g in paged.groups]) == (2, 1, ["team_b"])
    group = client.describe_group(REGION, "team_a").body
    assert group.name == "team_a" and group.cluster_id == REGION and group.traffic_mode == "auto"
    assert group.internet_endpoint.endswith("/api/predict/team_a") and ".vpc." in group.intranet_endpoint
    assert group.access_token and group.create_time.endswith("Z")
    assert sdk_error(lambda: client.describe_group(REGION, "no_group")).data["statusCode"] == 404
    # a member reports its group, traffic state and weight (Go SDK service_model.go)
    service = describe(client, "gr_live")
    assert (service.service_group, service.traffic_state, service.weight) == ("team_a", "standalone", 100)


def test_release_sets_state_and_weight_within_the_documented_range(client: Client, sandbox: EasSandbox) -> None:
    create(client, grouped("rel_svc", "team_r"))
    answer = client.release_service(REGION, "rel_svc", m.ReleaseServiceRequest(traffic_state="grouping", weight=40))
    assert answer.body.message.startswith("Releasing service [rel_svc] in region [cn-hangzhou] with weight [40]")
    service = describe(client, "rel_svc")
    assert (service.traffic_state, service.weight) == ("grouping", 40)
    assert client.describe_group(REGION, "team_r").body.traffic_mode == "customized"
    for request, words in ((m.ReleaseServiceRequest(weight=1001), "Weight"),
                           (m.ReleaseServiceRequest(weight=-2), "Weight"),
                           (m.ReleaseServiceRequest(traffic_state="mixed"), "TrafficState"),
                           (m.ReleaseServiceRequest(), "required")):
        err = sdk_error(lambda: client.release_service(REGION, "rel_svc", request))
        assert err.code == "InvalidParameter" and words in err.message, err.message
    client.release_service(REGION, "rel_svc", m.ReleaseServiceRequest(weight=-1))  # in range; meaning unverified
    create(client, service_config("rel_alone"))
    err = sdk_error(lambda: client.release_service(REGION, "rel_alone", m.ReleaseServiceRequest(weight=10)))
    assert err.code == "InvalidParameter" and "not in a service group" in err.message


def test_group_join_switch(client: Client, sandbox: EasSandbox) -> None:
    sandbox.fidelity.group_join = "grouping"
    create(client, grouped("join_svc", "team_j"))
    assert describe(client, "join_svc").traffic_state == "grouping"
    create(client, service_config("join_alone"))  # no group: nothing to join
    assert describe(client, "join_alone").traffic_state == "standalone"


def test_mirror_round_trip(client: Client) -> None:
    create(client, grouped("mir_live", "team_m"))
    create(client, grouped("mir_canary", "team_m"))
    request = m.CreateServiceMirrorRequest(ratio=30, target=["mir_canary"])
    body = client.create_service_mirror(REGION, "mir_live", request).body
    assert body.message == "Traffic mirroring is ON for service [mir_live] in region [cn-hangzhou], ratio [30%]"
    described = client.describe_service_mirror(REGION, "mir_live").body
    assert (described.ratio, described.target) == ("30", "mir_canary")
    assert sdk_error(lambda: client.create_service_mirror(REGION, "mir_live", request)).data["statusCode"] == 409
    client.update_service_mirror(REGION, "mir_live", m.UpdateServiceMirrorRequest(ratio=70, target=["mir_canary"]))
    assert client.describe_service_mirror(REGION, "mir_live").body.ratio == "70"
    for bad in (m.CreateServiceMirrorRequest(ratio=101, target=["mir_canary"]),
                m.CreateServiceMirrorRequest(ratio=10, target=["nobody"]),
                m.CreateServiceMirrorRequest(ratio=10)):
        assert sdk_error(lambda: client.create_service_mirror(REGION, "mir_canary", bad)).code == "InvalidParameter"
    assert "OFF" in client.delete_service_mirror(REGION, "mir_live").body.message
    assert client.describe_service_mirror(REGION, "mir_live").body.ratio == "0"


def test_the_group_endpoint_shares_requests_by_weight(client: Client, sandbox: EasSandbox) -> None:
    import urllib.error
    import urllib.request

    from aiohttp import web

    for name in ("wr_live", "wr_canary", "wr_off"):
        create(client, grouped(name, "team_w"))

        async def answer(request: web.Request, ctx, name: str = name) -> web.Response:
            return web.Response(text=ctx.service)

        sandbox.backends[name] = answer
    for name in ("wr_live", "wr_canary", "wr_off"):  # every member Running and ready
        wait_until(lambda name=name: sandbox.store.is_ready(sandbox.store.get(name)))
    for name, weight in (("wr_live", 90), ("wr_canary", 10)):
        client.release_service(REGION, name, m.ReleaseServiceRequest(traffic_state="grouping", weight=weight))
    group = client.describe_group(REGION, "team_w").body  # wr_off stays standalone: no group traffic
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(token: str) -> str:
        request = urllib.request.Request(group.internet_endpoint, headers={"Authorization": token})
        try:
            with opener.open(request, timeout=5) as response:
                return response.read().decode()
        except urllib.error.HTTPError as exc:
            return str(exc.code)

    served = [call(group.access_token) for _ in range(100)]
    assert (served.count("wr_live"), served.count("wr_canary"), served.count("wr_off")) == (90, 10, 0)
    assert call(describe(client, "wr_live").access_token) == "401"  # the group has its own token
    client.release_service(REGION, "wr_live", m.ReleaseServiceRequest(weight=0))
    assert {call(group.access_token) for _ in range(5)} == {"wr_canary"}
