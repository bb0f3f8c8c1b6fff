"""The main job end to end through the CLI, against the sandbox with the real SDK (issue 4)."""

from __future__ import annotations

import json
from typing import Callable

import pytest

from eascomfy.core.plan import APPLIED_SHA_LABEL
from eascomfy.core.render import MANAGED_BY_LABEL
from eascomfy.sandbox.eas import EasSandbox

from tests.conftest import TESTS

from .conftest import Project, api_calls, mark

COMFY = "eas-registry-vpc.cn-hangzhou.cr.aliyuncs.com/pai-eas/comfyui"


def stored(sandbox: EasSandbox, name: str) -> dict:
    record = sandbox.get_service(name)
    assert record is not None, f"{name} not in the sandbox"
    return record


def test_create_redeploy_change_update_rollback_signed_url(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("chain_svc", version="1.8")

    # create
    res = p.cli("deploy")
    assert res.exit_code == 0, res.stderr
    assert "ready" in res.stdout
    record = stored(sandbox, "chain_svc")
    assert record["status"] == "Running"
    assert record["config"]["containers"][0]["image"] == f"{COMFY}:1.8-api"
    assert record["labels"][MANAGED_BY_LABEL] == "eascomfy" and len(record["labels"][APPLIED_SHA_LABEL]) == 64

    # an unchanged redeploy: exactly one read, no write
    before = mark(sandbox)
    res = p.cli("deploy")
    assert res.exit_code == 0 and "no changes" in res.stdout
    assert [(r.action, r.method) for r in api_calls(sandbox, before)] == [("DescribeService", "GET")]
    assert p.cli("plan", "--detailed-exitcode").exit_code == 0

    # change the spec: plan shows it, --detailed-exitcode gives 2, nothing is written
    p.edit("instances: 1", "instances: 2")
    before = mark(sandbox)
    res = p.cli("plan", "--detailed-exitcode")
    assert res.exit_code == 2, res.stderr
    assert "~ metadata.instance: 1 -> 2" in res.stdout
    assert not [r for r in api_calls(sandbox, before) if r.method != "GET"]
    data = p.cli("-o", "json", "plan").json()["data"]
    assert data["action"] == "update" and [c["path"] for c in data["changes"]] == ["metadata.instance"]

    res = p.cli("deploy")
    assert res.exit_code == 0, res.stderr
    assert stored(sandbox, "chain_svc")["config"]["metadata"]["instance"] == 2
    assert [r.query.get("UpdateType") for r in api_calls(sandbox, before) if r.action == "UpdateService"] == ["replace"]

    # update-image 1.8-api -> 1.9-api: only the image changes; the spec keeps its comments
    old_config = stored(sandbox, "chain_svc")["config"]
    old_text = p.spec.read_text()
    res = p.cli("update-image", "1.9")
    assert res.exit_code == 0, res.stderr
    new_config = stored(sandbox, "chain_svc")["config"]
    assert new_config["containers"][0]["image"] == f"{COMFY}:1.9-api"
    for key in ("storage", "cloud", "metadata", "queue"):
        assert new_config[key] == old_config[key], key
    assert new_config["containers"][0]["script"] == old_config["containers"][0]["script"]
    new_text = p.spec.read_text()
    changed = [(a, b) for a, b in zip(old_text.splitlines(), new_text.splitlines()) if a != b]
    assert len(changed) == 1 and '"1.9"' in changed[0][1] and "# tag = version" in changed[0][1]
    assert new_text.count("#") == old_text.count("#")

    # a failed update (a tag the registry does not have) rolls back, exit 4, the spec is unchanged
    version_before = stored(sandbox, "chain_svc")["current_version"]
    res = p.cli("update-image", "9.9", "--force")  # newer than the table: sent, the registry lacks it
    assert res.exit_code == 4, res.stderr
    assert "rolled back to version" in res.stderr and "ImagePullFailed" in res.stderr
    record = stored(sandbox, "chain_svc")
    assert record["current_version"] == version_before
    assert record["config"]["containers"][0]["image"] == f"{COMFY}:1.9-api"
    assert '"1.9"' in p.spec.read_text() and "9.9" not in p.spec.read_text()
    res = p.cli("plan", "--detailed-exitcode")  # labels were restored: no drift, nothing to do
    assert res.exit_code == 0 and "outside eascomfy" not in res.stdout, res.stdout

    # signed-url: 43200 works, 43201 is refused before any request
    res = p.cli("signed-url", "--expire", "43200")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.startswith(f"{sandbox.url}/webview/chain_svc/?expire=") and res.stdout.count("\n") == 1
    before = mark(sandbox)
    res = p.cli("signed-url", "--expire", "43201")
    assert res.exit_code == 2 and "1..43200" in res.stderr
    assert mark(sandbox) == before
    data = p.cli("-o", "json", "signed-url", "--internal").json()["data"]
    assert "/vpc/webview/chain_svc/" in data["signed_url"] and data["internal"] is True


def test_dry_run_and_no_wait_write_nothing_or_return_at_once(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("dry_svc")
    before = mark(sandbox)
    res = p.cli("deploy", "--dry-run")
    assert res.exit_code == 0 and "create service dry_svc" in res.stderr
    assert [r.action for r in api_calls(sandbox, before)] == ["DescribeService"]
    assert sandbox.get_service("dry_svc") is None

    res = p.cli("deploy", "--no-wait")
    assert res.exit_code == 0 and "not waiting" in res.stdout
    assert [r.action for r in api_calls(sandbox, before)][-1] == "CreateService"

    p.edit("instances: 1", "instances: 3")
    before = mark(sandbox)
    res = p.cli("update-image", "2.2", "--dry-run")  # the spec moved beyond the image: refused
    assert res.exit_code == 2 and "~ metadata.instance: 1 -> 3" in res.stderr, res.stderr
    assert p.cli("update-image", "2.2", "--dry-run", "--allow-other-changes").exit_code == 0
    assert all(r.method == "GET" for r in api_calls(sandbox, before))
    assert '"1.8"' in p.spec.read_text()
    res = p.cli("update-image", "2.2", "--no-write", "--allow-other-changes")
    assert res.exit_code == 0, res.stderr
    assert '"1.8"' in p.spec.read_text()
    assert stored(sandbox, "dry_svc")["config"]["containers"][0]["image"] == f"{COMFY}:2.2-api"


def test_update_image_refusals_send_nothing(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    serverless = project("srvless_svc", edition="serverless")
    custom = project("custom_svc")
    custom.edit('version: "1.8"', "uri: registry.example.com/me/comfyui:mine")
    api = project("badver_svc")
    before = mark(sandbox)
    cases = [
        (serverless, "2.2", "does not take image updates"),
        (custom, "2.2", "custom image"),
        (api, "2.2-api", "expected an official image version"),
        (api, "latest", "expected an official image version"),
    ]
    for proj, version, message in cases:
        res = proj.cli("update-image", version)
        assert res.exit_code == 2, (version, res.stderr)
        assert message in res.stderr
    res = serverless.cli("deploy")
    assert res.exit_code == 2 and "cannot be created or updated through the EAS API" in res.stderr
    assert mark(sandbox) == before


def test_json_envelopes(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("json_svc")
    env = p.cli("-o", "json", "deploy").json()
    assert env["ok"] and env["data"]["ready"] and env["data"]["plan"]["action"] == "create"
    status = p.cli("status", "-o", "json").json()["data"]
    assert (status["status"], status["running"], status["total"]) == ("Running", 1, 1)
    assert status["internet_endpoint"] == sandbox.internet_endpoint("json_svc")
    assert status["events"] and "access_token" not in json.dumps(status).lower()


def test_update_image_writes_the_version_where_the_environment_takes_it_from(
    sandbox: EasSandbox, project: Callable[..., Project]
) -> None:
    """With --env, the version written back is the one that environment reads, so the next deploy
    with the same --env keeps the new image (no silent revert, no drift)."""
    p = project("env_image_svc", version="1.8")
    p.edit("  prod:\n    resources: {instances: 2}\n", '  prod:\n    image: {version: "1.8"}  # pinned for prod\n')
    staging = p.dir / "eascomfy.staging.yaml"
    staging.write_text('name: env_image_stg\nimage:\n  version: "1.8"   # staging follows\n')
    base_before = p.spec.read_text()

    assert p.cli("deploy", "--env", "prod").exit_code == 0
    res = p.cli("update-image", "1.9", "--env", "prod", "-o", "json")
    assert res.exit_code == 0, res.stderr
    assert res.json()["data"]["file"] == "eascomfy.yaml"  # relative, as the spec was given
    text = p.spec.read_text()
    assert 'image: {version: "1.9"}  # pinned for prod' in text
    assert text.replace('{version: "1.9"}', '{version: "1.8"}') == base_before  # nothing else touched
    assert p.cli("plan", "--env", "prod", "--detailed-exitcode").exit_code == 0
    assert stored(sandbox, "env_image_svc")["config"]["containers"][0]["image"] == f"{COMFY}:1.9-api"

    assert p.cli("deploy", "--env", "staging").exit_code == 0
    res = p.cli("update-image", "1.9", "--env", "staging")
    assert res.exit_code == 0, res.stderr
    assert staging.read_text() == 'name: env_image_stg\nimage:\n  version: "1.9"   # staging follows\n'
    assert p.cli("plan", "--env", "staging", "--detailed-exitcode").exit_code == 0


def test_saved_plan_applies_only_while_it_holds(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    """plan --out, review, deploy --plan: applied when nothing moved; refused, with no write call,
    when the spec or the live service changed in between (a stale plan)."""
    p = project("saved_plan_svc", version="1.8")
    plan_file = p.dir / "plan.json"
    assert p.cli("plan", "--out", str(plan_file)).exit_code == 0
    saved = json.loads(plan_file.read_text())
    assert saved["format"] == "eascomfy-plan/1" and saved["action"] == "create" and saved["live_sha"] is None
    res = p.cli("deploy", "--plan", str(plan_file))
    assert res.exit_code == 0, res.stderr

    # the spec changed after the plan was reviewed
    assert p.cli("plan", "--out", str(plan_file)).exit_code == 0
    p.edit('version: "1.8"', 'version: "1.9"')
    before = mark(sandbox)
    res = p.cli("deploy", "--plan", str(plan_file))
    assert res.exit_code == 1 and "the saved plan is stale: the spec renders differently" in res.stderr
    assert [r.method for r in api_calls(sandbox, before)] == ["GET"]

    # the live service changed after the plan was made (another deploy, or the console)
    assert p.cli("plan", "--out", str(plan_file)).exit_code == 0
    assert p.cli("deploy").exit_code == 0
    before = mark(sandbox)
    res = p.cli("deploy", "--plan", str(plan_file))
    assert res.exit_code == 1 and "the live service changed since the plan was made" in res.stderr
    assert [r.method for r in api_calls(sandbox, before)] == ["GET"]

    bad = p.dir / "not-a-plan.json"
    bad.write_text("[1, 2]")
    assert p.cli("deploy", "--plan", str(bad)).exit_code == 2


@pytest.mark.parametrize("override, where", [
    ("overrides:\n  metadata:\n    type: Standard\n", "overrides.metadata.type"),
    ("overrides:\n  metadata:\n    type: null\n", "overrides.metadata.type"),
    ("overrides:\n  metadata: null\n", "overrides.metadata"),
])
def test_an_api_edition_spec_that_drops_the_async_type_is_refused(
    sandbox: EasSandbox, project: Callable[..., Project], override: str, where: str
) -> None:
    """The queue (and the sink) come from metadata.type Async (alipai pai/model/_model.py,
    pai/predictor.py), not from the -api image tag: without it the service is synchronous.
    check, submit, plan and deploy refuse such a spec before any call, saying why."""
    p = project("sync_api_svc")
    p.spec.write_text(p.spec.read_text() + override)
    before = mark(sandbox)
    for args in (["check", str(TESTS / "fixtures" / "seed-workflow.api.json")],
                 ["submit", str(TESTS / "fixtures" / "seed-workflow.api.json")], ["plan"], ["deploy"]):
        res = p.cli(*args)
        assert res.exit_code == 3, (args, res.stdout, res.stderr)
        assert f"{where}:" in res.stderr and "needs metadata.type Async" in res.stderr, res.stderr
        assert "synchronous" in res.stderr
    assert api_calls(sandbox, before) == [] and sandbox.get_service("sync_api_svc") is None
    # setting it again, as the edition does, is fine
    p.spec.write_text(p.spec.read_text().replace(override, "overrides:\n  metadata:\n    type: Async\n"))
    assert p.cli("plan").exit_code == 0
