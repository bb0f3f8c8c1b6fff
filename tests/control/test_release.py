"""Canary releases through the CLI (`eascomfy release`) against the whole sandbox: the EAS emulator
(groups, ReleaseService, mirrors), OSS and a ComfyUI behind every service. Each test deploys its
own live service in its own group, so nothing depends on another test or on the order."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from eascomfy.core.plan import LOCK_LABEL
from eascomfy.sandbox.fidelity import Fidelity
from eascomfy.sandbox.stack import SandboxStack
from tests.conftest import TESTS, Result, clean_emulators, run_cli
from tests.control.conftest import REGION, Project
from tests.control.test_locks import _hold
from tests.workflows.conftest import FAST, MODELS, VHS_PACK, WORKFLOW

BUCKET = "canary-data"
JOB_SECONDS = 0.1
WRITES = ("POST", "PUT", "DELETE")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxStack]:
    root = tmp_path_factory.mktemp("release")
    with SandboxStack(root / "state", timings=FAST, region=REGION, job_seconds=JOB_SECONDS) as sb:
        sb.oss.create_bucket(BUCKET, region=REGION)
        for key in MODELS:
            sb.oss.put_object(BUCKET, "comfyui/" + key, b"not really a model")
        sb.oss.put_object(BUCKET, "comfyui/" + VHS_PACK, b"# VHS stand-in\n")
        yield sb


@pytest.fixture(autouse=True)
def _env(stack: SandboxStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in stack.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("EASCOMFY_STATE_DIR", str(tmp_path / "client-state"))
    monkeypatch.setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
    monkeypatch.setenv("EASCOMFY_LOCK_SETTLE", "0.05")
    for key in ("EASCOMFY_OUTPUT", "EASCOMFY_SERVICE_URL", "EASCOMFY_SERVICE_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    clean_emulators((stack.eas, stack.oss), stack.comfyui, job_seconds=JOB_SECONDS)
    yield
    stack.fidelity.update(**Fidelity().to_dict())


class Live(Project):
    """A live service in its own group, deployed through the CLI from its own spec."""

    def __init__(self, stack: SandboxStack, root: Path, name: str, version: str = "1.8") -> None:
        super().__init__(root / name, name)
        self.stack, self.canary = stack, f"{name}_canary"
        res = run_cli("init", str(self.dir), "--name", name, "--region", REGION, "--edition", "standard",
                      "--oss", f"oss://{BUCKET}/comfyui/", "--image-version", version)
        assert res.exit_code == 0, res.stderr
        self.spec.write_text(self.spec.read_text() + f"overrides:\n  metadata:\n    group: grp_{name}\n")
        res = self.cli("deploy", "--timeout", "30")
        assert res.exit_code == 0, res.stderr
        (self.dir / "flows").mkdir()
        shutil.copy(WORKFLOW, self.dir / "flows" / "seed.json")
        stack.eas.recorder.clear()

    def record(self, name: str | None = None) -> dict[str, Any] | None:
        return self.stack.eas.get_service(name or self.name)

    def actions(self) -> list[tuple[str, str]]:
        """(action, service) of every OpenAPI call recorded since the deploy."""
        out = []
        for r in self.stack.eas.recorder.all():
            if r.path.startswith("/api/v2/services/"):
                out.append((r.action or "", r.path.split("/")[5]))
            elif r.path.startswith("/api/v2/"):
                out.append((r.action or "", ""))
        return out

    def writes(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.stack.eas.recorder.all() if r.method in WRITES]

    def prompts(self, service: str) -> list[int]:
        """Indexes in the recorder of the prompts posted to ``service``'s endpoint."""
        return [i for i, r in enumerate(self.stack.eas.recorder.all())
                if r.method == "POST" and r.path == f"/api/predict/{service}/prompt"]

    def releases(self) -> list[int]:
        return [i for i, r in enumerate(self.stack.eas.recorder.all()) if r.action == "ReleaseService"]


@pytest.fixture
def live(stack: SandboxStack, tmp_path: Path, request: pytest.FixtureRequest) -> Live:
    name = "cn_" + "".join(c for c in request.node.name.lower() if c.isalnum())[-40:]
    return Live(stack, tmp_path, name)


# -- a good canary ---------------------------------------------------------------------------------
@pytest.mark.parametrize("join", ["standalone", "grouping"])
def test_good_canary_is_checked_before_it_gets_its_weight(live: Live, stack: SandboxStack, join: str) -> None:
    stack.fidelity.group_join = join
    live.edit('version: "1.8"', 'version: "1.9"')
    res = live.cli("release", "--canary", "10", "--check", "flows/*.json", "--max-slowdown", "5", "-o", "json")
    assert res.exit_code == 0, res.stderr
    data = res.json()["data"]
    canary, primary = live.record(live.canary), live.record()
    assert canary is not None and primary is not None
    assert (canary["traffic_state"], canary["weight"]) == ("grouping", 10)
    assert (primary["traffic_state"], primary["weight"]) == ("grouping", 90)
    assert canary["config"]["metadata"]["group"] == f"grp_{live.name}"
    assert canary["config"]["containers"][0]["image"].endswith(":1.9")
    assert primary["config"]["containers"][0]["image"].endswith(":1.8")  # the live service is not changed
    assert canary["labels"]["eascomfy/canary-of"] == live.name
    # the workflow ran on both, and every weight was set after the last check finished
    assert live.prompts(live.name) and live.prompts(live.canary)
    releases = live.releases()
    grouping = releases[-2:]
    assert min(grouping) > max(live.prompts(live.canary) + live.prompts(live.name))
    if join == "grouping":  # it took traffic on creation: taken out at once, before any check
        assert len(releases) == 3 and releases[0] < min(live.prompts(live.canary))
    else:
        assert len(releases) == 2
    shares = {s["role"]: s["share"] for s in data["services"]}
    assert shares == {"live": 90.0, "canary": 10.0}
    flow = data["checks"]["workflows"][0]
    assert flow["ok"] and flow["outputs"] > 0 and flow["slowdown"] <= 5
    assert list((live.dir / "canary-checks" / "seed" / "canary").iterdir())
    assert list((live.dir / "canary-checks" / "seed" / "live").iterdir())
    # the status shows the group, both services and their weights
    res = live.cli("release", "--status")
    assert res.exit_code == 0, res.stderr
    assert f"group grp_{live.name}" in res.stdout and "weight 10" in res.stdout and "weight 90" in res.stdout


def test_a_canary_with_a_new_warmup_gets_its_request_file_first(live: Live, stack: SandboxStack) -> None:
    """The live service was deployed without ``warmup:``; the canary's config names a request file
    nobody wrote yet: release writes it before it creates the canary, which then warms up."""
    shutil.copy(TESTS / "fixtures" / "warmup-tiny.api.json", live.dir / "flows" / "tiny.json")
    live.spec.write_text(live.spec.read_text().replace("environments:", "warmup:\n  workflow: flows/tiny.json\n"
                                                       "environments:", 1))
    res = live.cli("release", "--canary", "10", "-o", "json")
    assert res.exit_code == 0, res.stderr
    canary = live.record(live.canary)
    assert canary is not None and (canary["traffic_state"], canary["weight"]) == ("grouping", 10)
    path = canary["config"]["warm_up_data_path"]
    key = path.removeprefix(f"oss://{BUCKET}/")
    assert path != key and stack.oss.object_bytes(BUCKET, key)  # on the mount, where the config points
    puts = [r for r in stack.oss.recorder.all() if r.method == "PUT" and r.path.endswith(key.rsplit("/", 1)[1])]
    creates = [r for r in stack.eas.recorder.all() if r.action == "CreateService"]
    assert len(puts) == 1 and len(creates) == 1 and puts[0].time <= creates[0].time
    assert live.record()["config"].get("warm_up_data_path") is None  # the live service is not changed


# -- failed checks abort by themselves -------------------------------------------------------------
def _assert_aborted(live: Live, res: Result, before: dict[str, Any]) -> None:
    assert res.exit_code == 1, res.stdout + res.stderr
    _assert_aborted_calls(live, before)


def _assert_aborted_calls(live: Live, before: dict[str, Any]) -> None:
    assert "ReleaseService" not in [a for a, _ in live.actions()]
    assert ("DeleteService", live.canary) in live.actions()
    assert live.record(live.canary) is None  # deleted, and gone
    after = live.record()
    assert after is not None
    for key in ("config", "current_version", "traffic_state", "weight"):
        assert after[key] == before[key], key


def test_a_failing_workflow_aborts_and_deletes_the_canary(live: Live) -> None:
    before = live.record()
    live.edit(f"oss://{BUCKET}/comfyui/", f"oss://{BUCKET}/empty/")  # the canary's mount lacks the models
    res = live.cli("release", "--canary", "10", "--check", "flows/seed.json", "-o", "json")
    assert before is not None
    _assert_aborted(live, res, before)
    error = res.json()["error"]
    assert error["type"] == "canary_check" and "flows/seed.json" in error["message"]
    assert "failed on the canary" in error["message"] and "LandscapeBING" in error["message"]


def test_a_too_slow_canary_aborts(live: Live, stack: SandboxStack) -> None:
    before = live.record()
    assert stack.comfyui is not None
    stack.comfyui.delay(live.canary, 1.5)  # fifteen times the live service's job
    res = live.cli("release", "--canary", "25", "--check", "flows/seed.json", "--max-slowdown", "2")
    assert before is not None
    _assert_aborted(live, res, before)
    assert "more than 2x" in res.stderr and "flows/seed.json" in res.stderr


def test_a_failing_check_under_grouping_join_also_leaves_live_untouched(live: Live, stack: SandboxStack) -> None:
    stack.fidelity.group_join = "grouping"
    before = live.record()
    assert stack.comfyui is not None
    stack.comfyui.delay(live.canary, 1.5)
    res = live.cli("release", "--canary", "25", "--check", "flows/seed.json", "--max-slowdown", "2")
    assert res.exit_code == 1, res.stderr
    # only the canary was released (out of the group's traffic), never the live service
    assert [s for a, s in live.actions() if a == "ReleaseService"] == [live.canary]
    assert live.record(live.canary) is None
    after = live.record()
    assert before is not None and after is not None and after["weight"] == before["weight"]


# -- promote, abort, mirror ------------------------------------------------------------------------
def test_promote_moves_the_canary_config_to_the_live_service(live: Live) -> None:
    version = live.record()["current_version"]  # type: ignore[index]
    live.edit('version: "1.8"', 'version: "1.9"')
    assert live.cli("release", "--canary", "10", "--check", "flows/seed.json", "--max-slowdown", "5").exit_code == 0
    res = live.cli("release", "--promote", "-o", "json")
    assert res.exit_code == 0, res.stderr
    primary = live.record()
    assert primary is not None and live.record(live.canary) is None
    assert primary["config"]["containers"][0]["image"].endswith(":1.9")
    assert primary["current_version"] == version + 1  # the old config stays a version to roll back to
    assert (primary["traffic_state"], primary["weight"]) == ("grouping", 100)
    assert res.json()["data"]["canary"] is None
    # all traffic went to the canary before the live service was updated
    actions = live.actions()
    update = actions.index(("UpdateService", live.name))
    assert ("ReleaseService", live.canary) in actions[:update] and ("ReleaseService", live.name) in actions[:update]
    # the spec is still the truth: nothing to plan
    res = live.cli("plan", "--detailed-exitcode")
    assert res.exit_code == 0, res.stdout + res.stderr


def test_abort_removes_the_canary_and_its_mirror(live: Live) -> None:
    before = live.record()
    res = live.cli("release", "--canary", "10", "--mirror", "20")
    assert res.exit_code == 0, res.stderr
    assert "no workflow checks" in res.stderr
    primary = live.record()
    assert primary is not None and primary["mirror"] == {"Ratio": 20, "Target": [live.canary]}
    assert ("CreateServiceMirror", live.name) in live.actions()
    res = live.cli("release", "--abort")
    assert res.exit_code == 0, res.stderr
    after = live.record()
    assert after is not None and before is not None
    assert live.record(live.canary) is None
    assert after["mirror"] is None and ("DeleteServiceMirror", live.name) in live.actions()
    assert (after["traffic_state"], after["weight"]) == ("grouping", 100)
    assert after["current_version"] == before["current_version"] and after["config"] == before["config"]


# -- refused before any cloud call -----------------------------------------------------------------
@pytest.mark.parametrize("args, fragment", [
    (["--canary", "0"], "from 1 to 100"),
    (["--canary", "101"], "from 1 to 100"),
    (["--canary", "abc"], "abc"),
    (["--canary", "10", "--check", "flows/missing.json"], "file not found"),
    (["--canary", "10", "--check", "nowhere/*.json"], "matches no file"),
    (["--canary", "10", "--mirror", "0"], "from 1 to 100"),
    (["--canary", "10", "--max-slowdown", "0.5"], "at least 1"),
    (["--promote", "--abort"], "choose one"),
    ([], "choose one"),
])
def test_bad_requests_make_no_cloud_call(live: Live, args: list[str], fragment: str) -> None:
    res = live.cli("release", *args)
    assert res.exit_code == 2, res.stdout + res.stderr
    assert fragment in res.stderr
    assert "Traceback" not in res.stderr
    assert len([line for line in res.stderr.splitlines() if fragment in line]) == 1  # one clear line
    assert live.actions() == []


def test_a_spec_without_a_group_is_refused_offline(live: Live) -> None:
    live.edit(f"group: grp_{live.name}", "type: Standard")
    res = live.cli("release", "--canary", "10")
    assert res.exit_code == 2 and "no service group" in res.stderr and "metadata" in res.stderr
    assert live.actions() == []


def test_no_live_service_makes_no_write(live: Live) -> None:
    live.edit(f"name: {live.name}", "name: cn_nobody_here")
    live.edit(f"group: grp_{live.name}", "group: grp_nobody")
    res = live.cli("release", "--canary", "10")
    assert res.exit_code == 4, res.stderr
    assert "cn_nobody_here does not exist" in res.stderr and "deploy" in res.stderr
    assert live.writes() == []


def test_an_existing_canary_is_refused_without_a_write(live: Live) -> None:
    assert live.cli("release", "--canary", "10").exit_code == 0
    live.stack.eas.recorder.clear()
    res = live.cli("release", "--canary", "20")
    assert res.exit_code == 2 and "already has a canary" in res.stderr
    assert live.writes() == []
    assert live.record(live.canary)["weight"] == 10  # type: ignore[index]


def test_the_api_edition_checks_are_refused_offline(stack: SandboxStack, tmp_path: Path) -> None:
    where = tmp_path / "cn_api_canary_spec"
    res = run_cli("init", str(where), "--name", "cn_api_x", "--region", REGION, "--edition", "api",
                  "--oss", f"oss://{BUCKET}/comfyui/", "--image-version", "1.9")
    assert res.exit_code == 0, res.stderr
    spec = where / "eascomfy.yaml"
    spec.write_text(spec.read_text() + "overrides:\n  metadata:\n    group: grp_api_x\n")
    shutil.copy(WORKFLOW, where / "seed.json")
    stack.eas.recorder.clear()
    res = run_cli("release", "--canary", "10", "--check", "seed.json", cwd=where)
    assert res.exit_code == 2 and "API Edition queues its jobs" in res.stderr
    assert [r for r in stack.eas.recorder.all() if r.path.startswith("/api/v2/")] == []


def test_abort_and_promote_without_a_canary_say_so(live: Live) -> None:
    for mode in ("--abort", "--promote"):
        res = live.cli("release", mode)
        assert res.exit_code == 2 and "has no canary" in res.stderr
    assert live.writes() == []


def test_status_without_a_canary_as_json(live: Live) -> None:
    res = live.cli("release", "--status", "-o", "json")
    assert res.exit_code == 0, res.stderr
    data = res.json()["data"]
    assert data["group"] == f"grp_{live.name}" and data["canary"] is None
    assert [s["role"] for s in data["services"]] == ["live"]
    assert data["endpoint"].endswith(f"/api/predict/grp_{live.name}")
    assert "AccessToken" not in json.dumps(data)


def test_a_release_that_fails_half_way_puts_the_live_traffic_back(live: Live, stack: SandboxStack) -> None:
    before = live.record()
    # the live weight is set, then the canary's ReleaseService is refused (the live one is its first)
    stack.eas.faults.add(kind="status", status=400, code="InvalidParameter", action="ReleaseService",
                         path=f"/{live.canary}/release")
    res = live.cli("release", "--canary", "30")
    assert res.exit_code == 4, res.stderr
    after = live.record()
    assert before is not None and after is not None
    assert (after["traffic_state"], after["weight"]) == (before["traffic_state"], before["weight"])
    assert live.record(live.canary) is None
    assert [s for a, s in live.actions() if a == "ReleaseService"] == [live.name, live.canary, live.name]


def test_no_token_is_ever_printed(live: Live, stack: SandboxStack) -> None:
    res = live.cli("-v", "release", "--canary", "10", "--check", "flows/seed.json", "--max-slowdown", "5")
    assert res.exit_code == 0, res.stderr
    printed = res.stdout + res.stderr
    group = stack.eas.openapi.groups.describe_group(f"grp_{live.name}")["AccessToken"]
    tokens = [group, live.record()["access_token"], live.record(live.canary)["access_token"]]  # type: ignore[index]
    for args in (("-v", "release", "--status"), ("release", "--status", "-o", "json"), ("-v", "release", "--abort")):
        res = live.cli(*args)
        assert res.exit_code == 0, res.stderr
        printed += res.stdout + res.stderr
    assert "GET /api/predict" in printed or "DescribeService" in printed  # verbose really was verbose
    for token in tokens:
        assert token and token not in printed


def test_a_canary_that_never_gets_ready_is_deleted(live: Live, stack: SandboxStack) -> None:
    before = live.record()
    stack.eas.fail_deploy(live.canary, ["Traceback (most recent call last):", "IMPORT FAILED: ComfyUI-Broken"])
    res = live.cli("release", "--canary", "10", "--check", "flows/seed.json", "--timeout", "20")
    assert before is not None
    assert res.exit_code == 4, res.stderr
    assert f"service {live.canary} failed" in res.stderr and "the live service is untouched" in res.stderr
    assert live.prompts(live.canary) == [] and live.prompts(live.name) == []  # no check ran on a broken canary
    _assert_aborted_calls(live, before)


# -- the live service's deploy lock ----------------------------------------------------------------
@pytest.mark.parametrize("step", ["canary", "abort", "promote"])
def test_release_steps_respect_the_live_services_deploy_lock(live: Live, stack: SandboxStack, step: str) -> None:
    """Another run holding the live service's lock refuses each release step before any write
    (exit 6, who holds it); --force-unlock breaks it, and the step leaves no lock behind."""
    if step != "canary":
        live.edit('version: "1.8"', 'version: "1.9"')
        assert live.cli("release", "--canary", "10").exit_code == 0
    now = time.time()
    _hold(stack.eas, live.name, "alice@build-7:4242", now - 60, now + 3600)
    stack.eas.recorder.clear()
    args = {"canary": ["--canary", "10"], "abort": ["--abort"], "promote": ["--promote"]}[step]
    res = live.cli("release", *args)
    assert res.exit_code == 6, res.stderr
    assert "locked by alice@build-7:4242" in res.stderr and live.writes() == []
    res = live.cli("release", *args, "--force-unlock")
    assert res.exit_code == 0, res.stderr
    assert "breaking the lock held by alice@build-7:4242" in res.stderr
    record = live.record()
    assert record is not None and LOCK_LABEL not in record["labels"]
    assert (live.record(live.canary) is None) == (step != "canary")
    if step == "promote":
        assert record["config"]["containers"][0]["image"].endswith(":1.9")
