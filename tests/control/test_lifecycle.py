"""Replace mode, drift, waiting, rollback, versions, status, delete, start/stop/restart."""

from __future__ import annotations

import json
import time
from typing import Callable

import pytest

from alibabacloud_eas20210701 import models
from alibabacloud_eas20210701.client import Client
from alibabacloud_tea_openapi.models import Config

from eascomfy.core.plan import APPLIED_SHA_LABEL, LOCK_LABEL, config_sha
from eascomfy.sandbox.credentials import SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET
from eascomfy.sandbox.eas import EasSandbox

from tests.conftest import wait_until

from .conftest import REGION, Project, api_calls, mark


def console(sandbox: EasSandbox) -> Client:
    """What a person in the console does, straight through the SDK."""
    return Client(Config(access_key_id=SANDBOX_ACCESS_KEY_ID, access_key_secret=SANDBOX_ACCESS_KEY_SECRET,
                         endpoint=sandbox.endpoint, protocol="http", region_id=REGION))


def test_a_field_removed_from_the_spec_is_removed_on_the_service(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("replace_svc")
    p.edit("# env: {TZ: Asia/Shanghai}", "env: {TZ: Asia/Shanghai}")
    assert p.cli("deploy").exit_code == 0
    assert sandbox.get_service("replace_svc")["config"]["containers"][0]["env"] == [{"name": "TZ", "value": "Asia/Shanghai"}]
    p.edit("env: {TZ: Asia/Shanghai}", "# env: {TZ: Asia/Shanghai}")
    res = p.cli("plan")
    assert "- containers[0].env:" in res.stdout
    assert p.cli("deploy").exit_code == 0
    assert "env" not in sandbox.get_service("replace_svc")["config"]["containers"][0]


def test_drift_made_in_the_console_is_reported(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("drift_svc")
    assert p.cli("deploy").exit_code == 0
    assert p.cli("-o", "json", "plan").json()["data"]["drift"] is False
    request = models.UpdateServiceRequest(body=json.dumps({"metadata": {"instance": 3}}))
    console(sandbox).update_service(REGION, "drift_svc", request)
    res = p.cli("plan", "--detailed-exitcode")
    assert res.exit_code == 2
    assert "changed outside eascomfy" in res.stdout and "~ metadata.instance: 3 -> 1" in res.stdout
    assert p.cli("-o", "json", "plan").json()["data"]["drift"] is True
    before = mark(sandbox)
    res = p.cli("deploy")  # deploy puts the spec back
    assert res.exit_code == 0, res.stderr
    assert "UpdateService" in [r.action for r in api_calls(sandbox, before)]
    assert sandbox.get_service("drift_svc")["config"]["metadata"]["instance"] == 1
    after = p.cli("-o", "json", "plan").json()["data"]
    assert (after["action"], after["drift"]) == ("noop", False)


def test_stuck_in_waiting_times_out_naming_status_and_events(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("stuck_svc")
    assert p.cli("deploy", "--no-wait").exit_code == 0
    sandbox.set_stuck("stuck_svc", "Waiting")
    p.edit("instances: 1", "instances: 2")
    res = p.cli("deploy", "--timeout", "0.8")
    assert res.exit_code == 5, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: service stuck_svc did not get there within 0.8 s: status Waiting")
    assert "InsufficientResources" in last and "rolled back to version 1" in last and "fallback_instance_types" in last


@pytest.mark.parametrize("configs", ["custom_images", "always"])
def test_versions_rollback_status_and_delete(sandbox: EasSandbox, project: Callable[..., Project], configs: str) -> None:
    """ListServiceVersions returns ServiceConfig "only if the service is deployed by using a custom
    image" (SDK docstring), so not for ComfyUI's official images (``custom_images``); ``always``
    returns it anyway. versions, rollback and the applied-sha label work either way."""
    sandbox.fidelity.versions_service_config = configs
    name = f"ops_{configs}_svc"
    p = project(name)
    assert p.cli("deploy").exit_code == 0
    assert p.cli("update-image", "2.0").exit_code == 0
    res = p.cli("versions")
    assert res.exit_code == 0
    lines = res.stdout.splitlines()
    assert lines[0].startswith("*   2") and "2.0-api" in lines[0]  # the current one: DescribeService's image
    if configs == "always":
        assert "1.8-api" in lines[1]
    else:
        assert lines[1].startswith("    1") and "image not reported" in lines[1]
    listed = p.cli("-o", "json", "versions").json()["data"]
    assert [(v["version"], v["current"], v["config_returned"]) for v in listed] == [
        (2, True, configs == "always"), (1, False, configs == "always")]

    res = p.cli("rollback", "--allow-other-changes")  # official images: EAS returns no version config to check
    assert res.exit_code == 0, res.stderr
    record = sandbox.get_service(name)
    assert record["current_version"] == 1 and record["config"]["containers"][0]["image"].endswith(":1.8-api")
    assert record["labels"][APPLIED_SHA_LABEL] == config_sha(record["config"])
    plan = p.cli("-o", "json", "plan").json()["data"]
    assert plan["action"] == "update" and plan["drift"] is False  # eascomfy did it: not drift
    before = mark(sandbox)
    res = p.cli("rollback", "7")
    assert res.exit_code == 2 and f"no version 7 of {name}: its latest is 2" in res.stderr, res.stderr
    assert not [r for r in api_calls(sandbox, before) if r.method != "GET"]  # refused before any write

    res = p.cli("status")
    assert res.exit_code == 0 and "Running, 1/1 instances" in res.stdout and "last events:" in res.stdout
    by_name = p.cli("-o", "json", "status", "--service", name, "--region", REGION).json()["data"]
    assert by_name["current_version"] == 1 and by_name["image"].endswith(":1.8-api")

    for action, call, expected in (("stop", "StopService", "Stopped"), ("start", "StartService", "Running"),
                                   ("restart", "RestartService", "Running")):
        before = mark(sandbox)
        res = p.cli(action)
        assert res.exit_code == 0, res.stderr
        # under the lock (issue 12): taken, the call, released; the wait's last read spares another
        calls = [r.action for r in api_calls(sandbox, before)]
        assert [c for c in calls if not c.startswith(("Describe", "List"))] == [
            "UpdateServiceLabel", call, "DeleteServiceLabel"], calls
        assert calls[-2] != "DescribeService", calls  # released on the wait's last read
        assert sandbox.get_service(name)["status"] == expected
        assert LOCK_LABEL not in sandbox.get_service(name)["labels"]

    before = mark(sandbox)
    res = p.cli("delete")  # stdin is not a terminal: refused without --yes
    assert res.exit_code == 2 and "--yes" in res.stderr
    assert not [r for r in api_calls(sandbox, before) if r.method == "DELETE"]
    res = p.cli("delete", "--yes")
    assert res.exit_code == 0 and f"{name}: deleting" in res.stdout
    assert [r.action for r in api_calls(sandbox, before) if r.method != "GET"] == ["UpdateServiceLabel", "DeleteService"]
    wait_until(lambda: sandbox.get_service(name) is None, what=f"{name} gone from the emulator")


def test_a_label_removed_from_the_spec_is_removed_but_console_labels_stay(sandbox, project) -> None:
    from alibabacloud_eas20210701.client import Client
    from alibabacloud_eas20210701.models import UpdateServiceLabelRequest
    from alibabacloud_tea_openapi.models import Config

    from eascomfy.sandbox.credentials import SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET

    p = project("label_svc")
    p.spec.write_text(p.spec.read_text() + "labels:\n  team: creative\n  cost_center: cc42\n")
    assert p.cli("deploy").exit_code == 0
    console = Client(Config(access_key_id=SANDBOX_ACCESS_KEY_ID, access_key_secret=SANDBOX_ACCESS_KEY_SECRET,
                            endpoint=sandbox.endpoint, protocol="http", region_id="cn-hangzhou"))
    console.update_service_label("cn-hangzhou", "label_svc", UpdateServiceLabelRequest(labels={"owner": "ops"}))
    p.edit("  cost_center: cc42\n", "")
    plan = p.cli("plan", "-o", "json").json()["data"]
    assert plan["labels_remove"] == ["cost_center"]
    assert p.cli("deploy").exit_code == 0
    labels = sandbox.get_service("label_svc")["labels"]
    assert labels["team"] == "creative" and labels["owner"] == "ops" and "cost_center" not in labels
    assert labels["eascomfy/user-labels"] == "team"
    res = p.cli("plan", "--detailed-exitcode")
    assert res.exit_code == 0 and "no changes" in res.stdout, res.stdout


@pytest.mark.parametrize("switch", ["below_current", "up_to_latest"])
def test_rollback_refuses_what_is_never_valid_and_moves_forward(
    sandbox: EasSandbox, project: Callable[..., Project], switch: str
) -> None:
    """UpdateServiceVersion takes a version "greater than 0 and smaller than the current version"
    (SDK docstring; ``below_current``), or, read loosely, any up to LatestVersion (``up_to_latest``).
    rollback works under both: backwards it switches, forwards it applies the version's config
    again (a new version) or, without that config (official images), says why it cannot."""
    sandbox.fidelity.version_switch = switch
    name = f"fwd_{switch}_svc"
    p = project(name)
    assert p.cli("deploy").exit_code == 0
    assert p.cli("update-image", "2.0").exit_code == 0  # version 2 on 2.0, version 1 on 1.8

    before = mark(sandbox)
    refused = [p.cli("rollback", "0"), p.cli("rollback", "--", "-1")]
    assert api_calls(sandbox, before) == []  # refused before any call
    for res in refused:
        assert res.exit_code == 2 and "numbers versions from 1" in res.stderr, res.stderr
    res = p.cli("rollback", "3")
    assert res.exit_code == 2 and "its latest is 2" in res.stderr
    assert [r.action for r in api_calls(sandbox, before)] == ["DescribeService"]  # no write, no listing

    assert p.cli("rollback", "1", "--allow-other-changes").exit_code == 0
    assert sandbox.get_service(name)["current_version"] == 1

    # forward to 2; EAS does not return version 2's config (an official image)
    before = mark(sandbox)
    res = p.cli("rollback", "2", "--allow-other-changes")
    record = sandbox.get_service(name)
    if switch == "up_to_latest":  # the loose reading lets UpdateServiceVersion go forward
        assert res.exit_code == 0, res.stderr
        assert (record["current_version"], record["latest_version"]) == (2, 2)
        assert record["labels"][APPLIED_SHA_LABEL] == config_sha(record["config"])
        assert p.cli("rollback", "1", "--allow-other-changes").exit_code == 0
    else:
        assert res.exit_code == 4, res.stderr
        assert "cannot move" in res.stderr and "only backwards" in res.stderr and "custom images" in res.stderr
        assert (record["current_version"], record["latest_version"]) == (1, 2)
    assert "UpdateService" not in [r.action for r in api_calls(sandbox, before)]

    # with version 2's config returned (as for a custom image), it is applied again: version 3
    sandbox.fidelity.versions_service_config = "always"
    before = mark(sandbox)
    res = p.cli("-o", "json", "rollback", "2")
    assert res.exit_code == 0, res.stderr
    assert res.json()["data"]["version"] == 3
    actions = [r.action for r in api_calls(sandbox, before)]
    assert "UpdateService" in actions and "UpdateServiceVersion" not in actions
    record = sandbox.get_service(name)
    assert (record["current_version"], record["latest_version"], record["status"]) == (3, 3, "Running")
    assert record["config"]["containers"][0]["image"].endswith(":2.0-api")
    assert record["labels"][APPLIED_SHA_LABEL] == config_sha(record["config"])
    plan = p.cli("-o", "json", "plan").json()["data"]  # the spec says 2.0: nothing to do, no drift
    assert (plan["action"], plan["drift"]) == ("noop", False)


@pytest.mark.parametrize("order", ["oldest_first", "newest_first"])
def test_status_shows_the_newest_events_in_time_order(
    sandbox: EasSandbox, project: Callable[..., Project], order: str
) -> None:
    """DescribeServiceEvent's Message is JSON ({"versionId":1,"message":"..."}; SDK docstring) or
    plain text, and its page order is undocumented: status shows the messages, and its "last
    events" are the newest ones, oldest first, whichever way the pages are ordered."""
    name = f"ev_{order}_svc"
    p = project(name)
    assert p.cli("deploy").exit_code == 0
    sdk = console(sandbox)
    for n in range(120):  # more than one page (100), over two seconds at least
        if n == 60:
            time.sleep(1.1)
        sdk.update_service_label(REGION, name, models.UpdateServiceLabelRequest(labels={f"n{n}": "x"}))
    newest = [(e["Reason"], e["Message"]) for e in sandbox.get_service(name)["events"][-5:]]
    assert newest[-1] == ("LabelsUpdated", "Labels set: n119")

    sandbox.fidelity.event_order = order
    for form in ("json", "text"):
        sandbox.fidelity.event_message = form
        res = p.cli("-o", "json", "status")
        assert res.exit_code == 0, res.stderr
        events = res.json()["data"]["events"]
        assert [(e["reason"], e["message"]) for e in events] == newest, form
        assert [e["version"] for e in events] == [1 if form == "json" else None] * 5
        text = p.cli("status").stdout
        assert text.rstrip().endswith("LabelsUpdated: Labels set: n119") and '{"versionId"' not in text


@pytest.mark.parametrize("form", ["host", "path"])
def test_status_shows_reason_message_and_the_intranet_endpoint(
    sandbox: EasSandbox, project: Callable[..., Project], form: str
) -> None:
    """A running service's Reason and Message are RUNNING / "Service start successfully", and its
    IntranetEndpoint is http://<uid>.vpc.<region>.pai-eas.aliyuncs.com/api/predict/<svc> (the API
    doc's Service example; ``host``), reachable from inside the VPC only; ``path`` is the sandbox's
    reachable stand-in."""
    sandbox.fidelity.intranet_endpoint = form
    name = f"vpc_{form}_svc"
    p = project(name)
    assert p.cli("deploy").exit_code == 0
    intranet = sandbox.intranet_endpoint(name)
    data = p.cli("-o", "json", "status").json()["data"]
    assert (data["reason"], data["message"], data["intranet_endpoint"]) == (
        "RUNNING", "Service start successfully", intranet)
    text = p.cli("status").stdout
    assert "reason: RUNNING: Service start successfully" in text
    if form == "host":
        assert intranet == f"http://1000000000000000.vpc.{REGION}.pai-eas.aliyuncs.com/api/predict/{name}"
        assert f"intranet endpoint: {intranet} (from inside the VPC only)\n" in text
    else:
        assert f"intranet endpoint: {intranet}\n" in text
