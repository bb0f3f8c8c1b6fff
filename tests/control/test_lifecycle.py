"""Replace mode, drift, waiting, rollback, versions, status, delete, start/stop/restart."""

from __future__ import annotations

import json
from typing import Callable

from alibabacloud_eas20210701 import models
from alibabacloud_eas20210701.client import Client
from alibabacloud_tea_openapi.models import Config

from eascomfy.core.plan import APPLIED_SHA_LABEL, config_sha
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


def test_versions_rollback_status_and_delete(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("ops_svc")
    assert p.cli("deploy").exit_code == 0
    assert p.cli("update-image", "2.0").exit_code == 0
    res = p.cli("versions")
    assert res.exit_code == 0
    lines = res.stdout.splitlines()
    assert lines[0].startswith("*   2") and "2.0-api" in lines[0] and "1.8-api" in lines[1]

    res = p.cli("rollback")
    assert res.exit_code == 0, res.stderr
    record = sandbox.get_service("ops_svc")
    assert record["current_version"] == 1 and record["config"]["containers"][0]["image"].endswith(":1.8-api")
    assert record["labels"][APPLIED_SHA_LABEL] == config_sha(record["config"])
    plan = p.cli("-o", "json", "plan").json()["data"]
    assert plan["action"] == "update" and plan["drift"] is False  # eascomfy did it: not drift
    before = mark(sandbox)
    res = p.cli("rollback", "7")
    assert res.exit_code == 2 and "no version 7 of ops_svc (versions: " in res.stderr
    assert not [r for r in api_calls(sandbox, before) if r.method != "GET"]  # refused before any write

    res = p.cli("status")
    assert res.exit_code == 0 and "Running, 1/1 instances" in res.stdout and "last events:" in res.stdout
    by_name = p.cli("-o", "json", "status", "--service", "ops_svc", "--region", REGION).json()["data"]
    assert by_name["current_version"] == 1 and by_name["image"].endswith(":1.8-api")

    for action, call, expected in (("stop", "StopService", "Stopped"), ("start", "StartService", "Running"),
                                   ("restart", "RestartService", "Running")):
        before = mark(sandbox)
        res = p.cli(action)
        assert res.exit_code == 0, res.stderr
        assert [r.action for r in api_calls(sandbox, before) if r.method != "GET"] == [call]
        assert sandbox.get_service("ops_svc")["status"] == expected

    before = mark(sandbox)
    res = p.cli("delete")  # stdin is not a terminal: refused without --yes
    assert res.exit_code == 2 and "--yes" in res.stderr
    assert not [r for r in api_calls(sandbox, before) if r.method == "DELETE"]
    res = p.cli("delete", "--yes")
    assert res.exit_code == 0 and "ops_svc: deleting" in res.stdout
    assert [r.action for r in api_calls(sandbox, before) if r.method != "GET"] == ["DeleteService"]
    wait_until(lambda: sandbox.get_service("ops_svc") is None, what="ops_svc gone from the emulator")


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
