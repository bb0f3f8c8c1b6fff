"""Operations that can hurt a live service, tried the way a mistaken user or a fault would (issue
11): each is refused, or fails fast and clearly, through the CLI against the EAS emulator."""

from __future__ import annotations

import threading
import time
from typing import Callable

import pytest
from alibabacloud_eas20210701.client import Client
from alibabacloud_tea_openapi.models import Config

from eascomfy.sandbox.credentials import SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET
from eascomfy.sandbox.eas import EasSandbox

from .conftest import REGION, Project, api_calls, mark


def console(sandbox: EasSandbox) -> Client:
    """What a person in the console (or another tool) does, straight through the SDK."""
    return Client(Config(access_key_id=SANDBOX_ACCESS_KEY_ID, access_key_secret=SANDBOX_ACCESS_KEY_SECRET,
                         endpoint=sandbox.endpoint, protocol="http", region_id=REGION))


def after_call(sandbox: EasSandbox, since: int, action: str, then: Callable[[], None], nth: int = 1) -> threading.Thread:
    """Run ``then`` in a thread as soon as the emulator has answered ``action`` ``nth`` times (after ``since``)."""

    def watch() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if sum(r.action == action and r.status == 200 for r in api_calls(sandbox, since)) >= nth:
                then()
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("value", ["-1", "0", "-0.5", "nan"])
def test_a_timeout_of_zero_or_less_is_refused_before_any_call(
    sandbox: EasSandbox, project: Callable[..., Project], value: str
) -> None:
    """`deploy --timeout -1` used to send UpdateService, time out at once and roll back."""
    p = project(f"tmo_{value.replace('-', 'm').replace('.', '_')}_svc")
    assert p.cli("deploy").exit_code == 0
    p.edit("instances: 1", "instances: 2")
    commands = [["deploy"], ["update-image", "1.9"], ["rollback", "1"], ["start"], ["stop"], ["restart"]]
    before = mark(sandbox)
    for command in commands:
        res = p.cli(*command, "--timeout", value)
        assert res.exit_code == 2, (command, res.stderr)
        assert f"--timeout: expected a number of seconds above 0, got {value}" in res.stderr, res.stderr
    assert api_calls(sandbox, before) == []
    record = sandbox.get_service(p.name)
    assert record is not None and record["config"]["metadata"]["instance"] == 1 and record["latest_version"] == 1
    assert '"1.8"' in p.spec.read_text()


def test_a_service_deleted_during_the_wait_fails_fast(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    """Someone deletes the service while deploy waits for it: DescribeService answers NotFound, and
    deploy says so at once (exit 4) instead of polling a service that is gone until --timeout."""
    p = project("vanish_svc")
    assert p.cli("deploy").exit_code == 0
    sandbox.set_stuck("vanish_svc", "Waiting")  # the update would wait for resources for ever
    p.edit("instances: 1", "instances: 2")
    before = mark(sandbox)
    # the first UpdateServiceLabel takes the deploy lock; the second labels the applied config
    deleter = after_call(sandbox, before, "UpdateServiceLabel", lambda: console(sandbox).delete_service(REGION, "vanish_svc"),
                         nth=2)
    started = time.monotonic()
    res = p.cli("deploy", "--timeout", "8")
    took = time.monotonic() - started
    deleter.join(5)
    assert res.exit_code == 4, res.stderr
    assert took < 5, f"waited {took:.1f} s on a deleted service"
    last = res.stderr.strip().splitlines()[-1]
    assert "vanish_svc" in last and "deleted while waiting" in last, last
    assert "rolled back" not in last and "Traceback" not in res.stderr
    # nothing is sent to a service that is gone: no rollback, no label writes after the delete
    writes = [r.action for r in api_calls(sandbox, before) if r.method != "GET"]
    assert writes[-1] == "DeleteService" and "UpdateServiceVersion" not in writes, writes


def test_no_changes_while_updating_says_so_and_waits(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    """A second deploy while the first one's update still rolls out: the config already is the
    spec's, but the service is not ready; "no changes" alone would pass a pipeline too early."""
    p = project("busy_svc")
    assert p.cli("deploy").exit_code == 0
    p.edit("instances: 1", "instances: 2")
    assert p.cli("deploy", "--no-wait").exit_code == 0
    sandbox.set_stuck("busy_svc", "Updating")  # the first deploy's update is still rolling out

    before = mark(sandbox)
    res = p.cli("deploy", "--no-wait")
    assert res.exit_code == 0, res.stderr
    assert "no changes, but it is Updating" in res.stdout and "not ready yet" in res.stdout, res.stdout
    assert "a change is still in progress" in res.stderr, res.stderr
    data = p.cli("-o", "json", "deploy", "--no-wait").json()["data"]
    assert (data["applied"], data["ready"], data["plan"]["action"]) == (False, False, "noop")
    assert any("Updating" in n for n in data["notes"]), data["notes"]

    res = p.cli("deploy", "--timeout", "1")  # waits for the change in progress, as a deploy would
    assert res.exit_code == 5, res.stderr
    assert "did not get there within 1 s: status Updating" in res.stderr and "rolled back" not in res.stderr
    assert not [r for r in api_calls(sandbox, before) if r.method != "GET"]  # nothing was sent

    sandbox.set_stuck("busy_svc", None)  # the rollout finishes
    res = p.cli("-o", "json", "deploy")
    assert res.exit_code == 0, res.stdout
    assert res.json()["data"]["ready"] is True


def test_a_stale_applied_label_is_not_drift_and_deploy_repairs_it(
    sandbox: EasSandbox, project: Callable[..., Project]
) -> None:
    """A deploy that stopped between UpdateService and UpdateServiceLabel (a crash, a refused label
    call) leaves the live config equal to the spec under an old applied-sha label: that is not a
    change made outside eascomfy."""
    from eascomfy.core.plan import APPLIED_SHA_LABEL, config_sha

    p = project("stale_svc")
    assert p.cli("deploy").exit_code == 0
    p.edit("instances: 1", "instances: 2")
    sandbox.faults.add(kind="slow", delay=0, action="UpdateServiceLabel", times=1)  # the deploy lock goes through
    sandbox.faults.add(kind="status", status=400, code="InvalidParameter", action="UpdateServiceLabel", times=-1)
    res = p.cli("deploy")
    assert res.exit_code == 4 and "UpdateServiceLabel" not in res.stdout, res.stderr
    sandbox.faults.clear()
    record = sandbox.get_service("stale_svc")
    assert record["config"]["metadata"]["instance"] == 2
    assert record["labels"][APPLIED_SHA_LABEL] != config_sha(record["config"])  # the label is stale

    res = p.cli("plan")
    assert res.exit_code == 0, res.stderr
    assert "outside eascomfy" not in res.stdout and "already equals the spec" in res.stdout, res.stdout
    data = p.cli("-o", "json", "plan").json()["data"]
    assert (data["action"], data["drift"], data["changes"]) == ("labels", False, [])
    assert list(data["labels_set"]) == [APPLIED_SHA_LABEL]

    res = p.cli("deploy")
    assert res.exit_code == 0, res.stderr
    record = sandbox.get_service("stale_svc")
    assert record["labels"][APPLIED_SHA_LABEL] == config_sha(record["config"])
    assert record["latest_version"] == 2  # repaired with a label call, not another update
    assert p.cli("plan", "--detailed-exitcode").exit_code == 0


def test_the_instance_count_the_autoscaler_chose_is_neither_drift_nor_reset(
    sandbox: EasSandbox, project: Callable[..., Project]
) -> None:
    """With `autoscaling:` the autoscaler owns the instance count (Terraform's ignore_changes trap,
    hashicorp/terraform#10308): plan reports no drift for it and deploy sends the live count."""
    p = project("scaled_svc")
    p.edit("# autoscaling: {min: 1, max: 4, metric: qps, threshold: 10}", "autoscaling: {min: 1, max: 4}")
    assert p.cli("deploy").exit_code == 0
    sandbox.autoscale("scaled_svc", 3)

    res = p.cli("plan", "--detailed-exitcode")
    assert res.exit_code == 0, res.stdout
    assert "outside eascomfy" not in res.stdout and "~ metadata.instance" not in res.stdout, res.stdout
    assert "metadata.instance stays 3, the autoscaler's choice" in res.stdout
    data = p.cli("-o", "json", "plan").json()["data"]
    assert (data["action"], data["drift"]) == ("noop", False)

    p.edit("# env: {TZ: Asia/Shanghai}", "env: {TZ: Asia/Shanghai}")  # an unrelated change
    data = p.cli("-o", "json", "plan").json()["data"]
    assert [c["path"] for c in data["changes"]] == ["containers[0].env"], data["changes"]
    assert any("autoscaler" in n and "3" in n for n in data["notes"]), data["notes"]
    res = p.cli("deploy")
    assert res.exit_code == 0, res.stderr
    record = sandbox.get_service("scaled_svc")
    assert record["config"]["metadata"]["instance"] == 3  # the autoscaler's choice, not the spec's 1
    assert record["config"]["containers"][0]["env"] == [{"name": "TZ", "value": "Asia/Shanghai"}]
    assert p.cli("plan", "--detailed-exitcode").exit_code == 0

    # without autoscaling, the spec owns the count again: the plan takes it back, visibly
    p.edit("autoscaling: {min: 1, max: 4}", "# no autoscaling")
    res = p.cli("plan")
    assert "~ metadata.instance: 3 -> 1" in res.stdout and "- autoscaler" in res.stdout, res.stdout


def test_update_image_and_rollback_follow_the_environment_deployed_and_never_resize(
    sandbox: EasSandbox, project: Callable[..., Project]
) -> None:
    """After `deploy --env prod` (4 instances), `update-image` without --env applied the base spec
    and scaled prod to 1. The service's labels say which environment was deployed: update-image
    follows it, refuses another one, and refuses any change beyond the image unless allowed."""
    from alibabacloud_eas20210701.models import DeleteServiceLabelRequest

    p = project("envimg_svc", version="1.8")
    text = p.spec.read_text()
    written = "environments:\n  prod:\n    resources: {instances: 2}\n"  # what init writes
    assert written in text
    p.spec.write_text(text.replace(written, "environments:\n  prod:\n    resources: {instances: 4}\n"
                                            "  dev:\n    labels: {tier: dev}\n"))
    assert p.cli("deploy", "--env", "prod").exit_code == 0
    labels = sandbox.get_service("envimg_svc")["labels"]
    assert (labels["eascomfy/env"], labels["eascomfy/spec"]) == ("prod", "eascomfy.yaml")

    # no --env: the labels say prod; the image changes and the 4 instances stay
    res = p.cli("update-image", "1.9")
    assert res.exit_code == 0, res.stderr
    assert "environment prod (from the service's labels)" in res.stderr
    record = sandbox.get_service("envimg_svc")
    assert record["config"]["metadata"]["instance"] == 4
    assert record["config"]["containers"][0]["image"].endswith(":1.9-api") and record["labels"]["eascomfy/env"] == "prod"
    assert 'version: "1.9"' in p.spec.read_text()
    assert p.cli("plan", "--env", "prod", "--detailed-exitcode").exit_code == 0

    # --env names another environment than the one deployed: refused, nothing sent
    before = mark(sandbox)
    for command in (["update-image", "2.0", "--env", "dev"], ["rollback", "--env", "dev"]):
        res = p.cli(*command)
        assert res.exit_code == 2, (command, res.stderr)
        assert "--env: service envimg_svc was deployed with environment prod, not dev" in res.stderr, res.stderr
    assert not [r for r in api_calls(sandbox, before) if r.method != "GET"]

    # an image change never resizes: the prod overlay now says 2 instances
    p.edit("prod:\n    resources: {instances: 4}", "prod:\n    resources: {instances: 2}")
    res = p.cli("update-image", "2.0")
    assert res.exit_code == 2, res.stderr
    assert "~ metadata.instance: 4 -> 2" in res.stderr and "--allow-other-changes" in res.stderr, res.stderr
    data = p.cli("-o", "json", "update-image", "2.0", "--dry-run").json()
    assert data["error"]["type"] == "usage" and [c["path"] for c in data["error"]["changes"]] == ["metadata.instance"]
    assert not [r for r in api_calls(sandbox, before) if r.method != "GET"]
    assert 'version: "1.9"' in p.spec.read_text()
    res = p.cli("update-image", "2.0", "--allow-other-changes")
    assert res.exit_code == 0, res.stderr
    assert sandbox.get_service("envimg_svc")["config"]["metadata"]["instance"] == 2

    # rolling back to the 4-instance version changes more than the image: refused unless allowed.
    # Official images: EAS returns no version config (the realistic default), so nothing can be
    # checked and the rollback is refused as blind; custom images: the diff is shown.
    before = mark(sandbox)
    res = p.cli("rollback")
    assert res.exit_code == 2 and "cannot check that it changes nothing but the image" in res.stderr, res.stderr
    assert not [r for r in api_calls(sandbox, before) if r.method != "GET"]
    sandbox.fidelity.versions_service_config = "always"
    res = p.cli("rollback")
    assert res.exit_code == 2 and "~ metadata.instance: 2 -> 4" in res.stderr, res.stderr
    assert not [r for r in api_calls(sandbox, before) if r.method != "GET"]
    sandbox.fidelity.versions_service_config = "custom_images"
    res = p.cli("rollback", "--allow-other-changes")
    assert res.exit_code == 0, res.stderr
    record = sandbox.get_service("envimg_svc")
    assert record["config"]["metadata"]["instance"] == 4 and record["labels"]["eascomfy/env"] == "prod"
    p.edit("prod:\n    resources: {instances: 2}", "prod:\n    resources: {instances: 4}")

    # no record of the environment (deployed before eascomfy labelled it) and a spec with
    # environments: which one is meant is ambiguous, so nothing is sent until --env says it
    console(sandbox).delete_service_label(REGION, "envimg_svc", DeleteServiceLabelRequest(keys=["eascomfy/env", "eascomfy/spec"]))
    before = mark(sandbox)
    res = p.cli("update-image", "2.1")
    assert res.exit_code == 2, res.stderr
    assert "no record of the environment it was deployed with" in res.stderr and "dev, prod" in res.stderr, res.stderr
    assert not [r for r in api_calls(sandbox, before) if r.method != "GET"]
    res = p.cli("update-image", "2.1", "--env", "prod")
    assert res.exit_code == 0, res.stderr
    record = sandbox.get_service("envimg_svc")
    assert record["config"]["metadata"]["instance"] == 4 and record["labels"]["eascomfy/env"] == "prod"

    # the environment it runs was removed from the spec: refused, not an "unknown --env" nobody gave
    p.edit("  prod:\n    resources: {instances: 4}\n", "")
    res = p.cli("update-image", "2.2")
    assert res.exit_code == 2 and "deployed with environment prod, which the spec no longer defines" in res.stderr, res.stderr


def test_an_image_version_outside_the_catalogue_is_refused_before_any_call(
    sandbox: EasSandbox, project: Callable[..., Project]
) -> None:
    """`update-image 9.9` was sent, rolled out and failed on ImagePullFailed: the version is checked
    against the known ComfyUI images first; --force sends a version newer than the table."""
    p = project("catalogue_svc", version="1.8")
    assert p.cli("deploy").exit_code == 0
    text = p.spec.read_text()
    before = mark(sandbox)
    res = p.cli("update-image", "9.9")
    assert res.exit_code == 2, res.stderr
    assert "VERSION: 9.9 is not a known ComfyUI image version (known: 1.7, 1.8, 1.9, 2.0, 2.1, 2.2)" in res.stderr
    assert "--force" in res.stderr
    assert api_calls(sandbox, before) == [] and p.spec.read_text() == text

    res = p.cli("update-image", "9.9", "--force")  # sent: the registry has the last word
    assert res.exit_code == 4 and "ImagePullFailed" in res.stderr and "rolled back" in res.stderr, res.stderr
    # the deploy lock first, then the update
    assert [r.action for r in api_calls(sandbox, before) if r.method != "GET"][:2] == ["UpdateServiceLabel", "UpdateService"]
    assert p.spec.read_text() == text
