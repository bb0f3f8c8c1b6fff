"""Fleets through the CLI (issue 12, "Fleets: many services, many regions"): the specs of
services/*.yaml and eascomfy.yaml, a spec with several regions and a bucket per region, the
selectors, one summary and one exit code, --fail-fast, rolling update-image, and what an
unchanged service costs. Against a three-region EAS emulator; assertions on what it recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from eascomfy.sandbox.eas import EasSandbox
from eascomfy.sandbox.oss import OssSandbox
from eascomfy.sandbox.regions import format_endpoints
from tests.conftest import Result, run_cli

from .conftest import FAST, api_calls, mark

HZ, SH, SG = "cn-hangzhou", "cn-shanghai", "ap-southeast-1"
COMFY = "eas-registry-vpc.{region}.cr.aliyuncs.com/pai-eas/comfyui"


@pytest.fixture
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EasSandbox]:
    """This module's emulator serves three regions (it replaces the one-region fixture)."""
    with EasSandbox(state_dir=tmp_path_factory.mktemp("eas-fleet"), timings=FAST, region=HZ, regions=[SH, SG]) as sb:
        yield sb


@pytest.fixture(autouse=True)
def endpoints(eas_env: EasSandbox, monkeypatch: pytest.MonkeyPatch) -> EasSandbox:
    monkeypatch.setenv("EASCOMFY_EAS_ENDPOINTS", format_endpoints(eas_env.urls))
    return eas_env


def spec_text(name: str, *, region: str = HZ, regions: list[str] | None = None, version: str = "1.9",
              labels: dict[str, str] | None = None, extra: str = "") -> str:
    where = f"regions: [{', '.join(regions)}]" if regions else f"region: {region}"
    if regions:
        oss = "storage:\n  oss:\n" + "".join(f"    {r}: oss://b-{r}/{name}/\n" for r in regions)
    else:
        oss = f"storage:\n  oss: oss://b-{region}/{name}/\n"
    label_text = "labels:\n" + "".join(f"  {k}: {v}\n" for k, v in (labels or {}).items()) if labels else ""
    return (f"name: {name}\n{where}\nedition: standard\nimage:\n  version: \"{version}\"  # the image\n{oss}"
            f"resources:\n  instance_type: ml.gu7i.c16m60.1-gu30\n{label_text}{extra}")


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    """eascomfy.yaml (one service), services/ with a two-region spec, a one-region spec and an
    environment overlay beside it (not a spec of its own)."""
    (tmp_path / "services").mkdir()
    (tmp_path / "eascomfy.yaml").write_text(spec_text("fl_main", labels={"team": "web"}))
    (tmp_path / "services" / "multi.yaml").write_text(spec_text("fl_multi", regions=[HZ, SH], labels={"team": "vision"}))
    (tmp_path / "services" / "single.yaml").write_text(spec_text("fl_single", region=SG, labels={"team": "vision"}))
    (tmp_path / "services" / "single.prod.yaml").write_text("resources: {instances: 2}\n")
    return tmp_path


def cli(where: Path, *args: str) -> Result:
    return run_cli(*args, cwd=where)


def rows(res: Result) -> list[tuple[str, ...]]:
    """The summary table's rows (service, region, action, result)."""
    lines = res.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("SERVICE"))
    out = []
    for line in lines[start + 1:]:
        cells = line.split()
        if len(cells) != 5 or not cells[4].endswith("s"):
            break
        out.append(tuple(cells[:4]))
    return out


def services(sandbox: EasSandbox) -> set[tuple[str, str]]:
    return {(name, r) for r in sandbox.regions for name in ("fl_main", "fl_multi", "fl_single")
            if sandbox.get_service(name, region=r) is not None}


ALL = {("fl_main", HZ), ("fl_multi", HZ), ("fl_multi", SH), ("fl_single", SG)}


def test_discovery_regions_and_one_call_per_unchanged_service(sandbox: EasSandbox, fleet: Path) -> None:
    before = mark(sandbox)
    res = cli(fleet, "plan", "--all", "--detailed-exitcode")
    assert res.exit_code == 2, res.stderr  # everything would be created
    assert set(rows(res)) == {(n, r, "create", "changes") for n, r in ALL}
    assert "4 services: 4 changes" in res.stdout
    calls = api_calls(sandbox, before)
    assert sorted((r.action, r.site, r.path.rsplit("/", 1)[-1]) for r in calls) == sorted(
        ("DescribeService", r, n) for n, r in ALL)  # each region asked at its own endpoint, nothing written

    res = cli(fleet, "deploy", "--all", "--parallel", "3")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert services(sandbox) == ALL
    for region in (HZ, SH):  # one service per region, each with the bucket of its region
        config = sandbox.get_service("fl_multi", region=region)["config"]
        assert config["storage"][0]["oss"]["path"] == f"oss://b-{region}/fl_multi/"
        assert config["containers"][0]["image"] == COMFY.format(region=region) + ":1.9"

    for command in ("plan", "deploy"):  # an unchanged service costs exactly one DescribeService
        before = mark(sandbox)
        res = cli(fleet, command, "--all", *(["--detailed-exitcode"] if command == "plan" else []))
        assert res.exit_code == 0, res.stdout + res.stderr
        assert set(rows(res)) == {(n, r, "noop", "ok") for n, r in ALL}
        assert sorted(r.action for r in api_calls(sandbox, before)) == ["DescribeService"] * 4, command


def test_selectors_pick_and_a_selector_matching_nothing_names_what_exists(sandbox: EasSandbox, fleet: Path) -> None:
    res = cli(fleet, "plan", "--label", "team=vision")
    assert set(rows(res)) == {("fl_multi", HZ, "create", "changes"), ("fl_multi", SH, "create", "changes"),
                              ("fl_single", SG, "create", "changes")}
    res = cli(fleet, "plan", "--region", HZ)
    assert {r[:2] for r in rows(res)} == {("fl_main", HZ), ("fl_multi", HZ)}
    res = cli(fleet, "plan", "--service", "fl_multi", "--region", SH)
    assert [r[:2] for r in rows(res)] == [("fl_multi", SH)]

    before = mark(sandbox)
    for args, line in [
        (("--service", "fl_mult"), "--service: no service 'fl_mult' in the fleet (services: fl_main, fl_multi, "
                                   "fl_single) (did you mean 'fl_multi'?)"),
        (("--region", "cn-shangai"), "--region: no service of the fleet is in 'cn-shangai' (regions: "
                                     "ap-southeast-1, cn-hangzhou, cn-shanghai) (did you mean 'cn-shanghai'?)"),
        (("--label", "team=visoin"), "--label: no service of the fleet has label team=visoin (labels: team=vision, "
                                     "team=web) (did you mean 'team=vision'?)"),
        (("--service", "fl_single", "--region", HZ), "error: no service of the fleet matches service fl_single, "
                                                     "region cn-hangzhou together (fl_single is in ap-southeast-1)"),
        (("--label", "team"), "--label: expected KEY=VALUE, got 'team'"),
        (("--all", "--parallel", "0"), "--parallel: expected at least 1, got 0"),
    ]:
        res = cli(fleet, "deploy", *args)
        assert res.exit_code == 2, (args, res.stderr)
        assert line in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
    assert mark(sandbox) == before  # refused offline: nothing sent


def test_one_failure_does_not_stop_the_others_and_the_worst_exit_wins(sandbox: EasSandbox, fleet: Path) -> None:
    sandbox.faults.add(kind="status", status=400, code="InvalidParameter", message="injected", method="GET",
                       path="/fl_multi$", action="DescribeService", times=-1)
    res = cli(fleet, "-o", "json", "deploy", "--all", "--parallel", "2")
    assert res.exit_code == 4, res.stdout
    body = res.json()
    assert body["ok"] is False and body["exit_code"] == 4
    results = {(d["service"], d["region"]): d for d in body["data"]}
    assert set(results) == ALL
    for region in (HZ, SH):
        failed = results[("fl_multi", region)]
        assert failed["result"] == "failed" and failed["exit_code"] == 4
        assert failed["error"]["type"] == "cloud" and failed["error"]["code"] == "InvalidParameter"
    assert results[("fl_main", HZ)]["result"] == "ok" and results[("fl_main", HZ)]["data"]["applied"] is True
    assert services(sandbox) == {("fl_main", HZ), ("fl_single", SG)}  # the others were deployed

    res = cli(fleet, "plan", "--all", "--detailed-exitcode")  # a failure outranks "changes pending"
    assert res.exit_code == 4
    assert "fl_multi (cn-hangzhou): error: service fl_multi, InvalidParameter: injected" in res.stdout


def test_fail_fast_starts_nothing_after_the_first_failure(sandbox: EasSandbox, fleet: Path) -> None:
    sandbox.faults.add(kind="status", status=400, code="InvalidParameter", method="GET", path="/fl_main$",
                       action="DescribeService", times=-1)
    before = mark(sandbox)
    res = cli(fleet, "deploy", "--all", "--parallel", "1", "--fail-fast")
    assert res.exit_code == 4
    assert rows(res)[0] == ("fl_main", HZ, "-", "failed")  # eascomfy.yaml comes first
    assert [r[3] for r in rows(res)[1:]] == ["skipped"] * 3
    assert "4 services: 1 failed, 3 skipped" in res.stdout
    assert [r.action for r in api_calls(sandbox, before)] == ["DescribeService"]
    assert services(sandbox) == set()


def test_rolling_update_stops_at_the_first_failure(sandbox: EasSandbox, fleet: Path) -> None:
    assert cli(fleet, "deploy", "--all").exit_code == 0
    versions = {(n, r): sandbox.get_service(n, region=r)["current_version"] for n, r in ALL}
    sandbox.fail_deploy("fl_multi", ["ImportError: no module"], region=SH)
    before = mark(sandbox)
    res = cli(fleet, "update-image", "2.2", "--all", "--max-unavailable", "1")
    assert res.exit_code == 4, res.stdout + res.stderr
    assert rows(res) == [("fl_main", HZ, "update", "ok"), ("fl_multi", HZ, "update", "ok"),
                         ("fl_multi", SH, "-", "failed"), ("fl_single", SG, "-", "skipped")]
    assert "rolled back to version" in res.stdout

    def image(n: str, r: str) -> str:
        return sandbox.get_service(n, region=r)["config"]["containers"][0]["image"]

    assert image("fl_main", HZ).endswith(":2.2") and image("fl_multi", HZ).endswith(":2.2")
    assert image("fl_multi", SH).endswith(":1.9")  # rolled back on its own
    assert sandbox.get_service("fl_multi", region=SH)["current_version"] == versions[("fl_multi", SH)]
    assert image("fl_single", SG).endswith(":1.9")  # untouched
    assert not [r for r in api_calls(sandbox, before) if r.site == SG]
    # the file of a service that was updated everywhere says 2.2; the others keep 1.9
    assert '"2.2"  # the image' in (fleet / "eascomfy.yaml").read_text()
    assert "wrote image.version 2.2 to eascomfy.yaml" in res.stdout
    assert "services/multi.yaml: image.version not written (not every service of it was updated)" in res.stdout
    assert '"1.9"' in (fleet / "services" / "multi.yaml").read_text()
    assert '"1.9"' in (fleet / "services" / "single.yaml").read_text()


def test_status_and_delete_on_the_fleet(sandbox: EasSandbox, fleet: Path) -> None:
    with (fleet / "services" / "single.yaml").open("a") as fh:
        fh.write("safety_lock: dangerous\n")
    assert cli(fleet, "deploy", "--all").exit_code == 0
    before = mark(sandbox)
    res = cli(fleet, "-o", "json", "status", "--all")
    assert res.exit_code == 0
    assert {(d["service"], d["region"], d["data"]["status"]) for d in res.json()["data"]} == {
        (n, r, "Running") for n, r in ALL}
    assert len(api_calls(sandbox, before)) == 4

    before = mark(sandbox)
    res = cli(fleet, "delete", "--all")
    assert res.exit_code == 2 and "refusing to delete 4 service(s) without --yes" in res.stderr
    assert mark(sandbox) == before
    res = cli(fleet, "delete", "--all", "--yes")
    assert res.exit_code == 4  # the safety lock refused one: it stays, the others go
    assert ("fl_single", SG, "-", "failed") in rows(res) and "safety_lock: none" in res.stdout
    assert sandbox.get_service("fl_single", region=SG) is not None
    assert sandbox.get_service("fl_main", region=HZ) is None or sandbox.get_service("fl_main", region=HZ)["status"] in (
        "Deleting", "Deleted")


def test_a_multi_region_spec_alone(sandbox: EasSandbox, tmp_path: Path) -> None:
    (tmp_path / "eascomfy.yaml").write_text(spec_text("fl_alone", regions=[HZ, SH, SG]))
    before = mark(sandbox)
    res = cli(tmp_path, "plan")  # a single-service command needs the region
    assert res.exit_code == 2
    assert ("error: eascomfy.yaml names several regions (cn-hangzhou, cn-shanghai, ap-southeast-1): name the one "
            "to work on (a command on one service takes --region cn-hangzhou; plan, deploy, status, update-image "
            "and delete take --all for every one)") in res.stderr
    res = cli(tmp_path, "-o", "json", "validate")  # every region checked, offline
    assert res.exit_code == 0 and res.json()["data"]["regions"] == [HZ, SH, SG]
    res = cli(tmp_path, "-o", "json", "render", "--region", SH)
    assert res.json()["data"]["service"]["storage"][0]["oss"]["path"] == "oss://b-cn-shanghai/fl_alone/"
    assert mark(sandbox) == before
    res = cli(tmp_path, "deploy", "--all")
    assert res.exit_code == 0, res.stdout
    assert all(sandbox.get_service("fl_alone", region=r)["status"] == "Running" for r in (HZ, SH, SG))
    res = cli(tmp_path, "-o", "json", "status", "--region", SH)  # the single-service status of one region
    assert res.exit_code == 0 and res.json()["data"]["region"] == SH


@pytest.mark.parametrize("storage, line, message", [
    ("storage:\n  oss:\n    cn-hangzhou: oss://b-hz/x/\n", 6,
     "storage.oss: no bucket for region cn-shanghai (listed in regions)"),
    ("storage:\n  oss:\n    cn-hangzhou: oss://b-hz/x/\n    cn-shanghai: oss://b-sh/x/\n    cn-beijing: oss://b-bj/x/\n",
     9, "storage.oss.cn-beijing: a bucket for region 'cn-beijing', which regions does not list"),
    ("storage:\n  oss: oss://b-hz/x/\n", 6, "storage.oss: with regions, storage.oss maps each region to a bucket in it"),
    ("storage:\n  oss:\n    cn-hangzhou: oss://same/x/\n    cn-shanghai: oss://same/y/\n", 8,
     "storage.oss.cn-shanghai: bucket same is also mapped to cn-hangzhou"),
])
def test_a_bad_regions_mapping_is_refused_offline(sandbox: EasSandbox, tmp_path: Path, storage: str, line: int,
                                                  message: str) -> None:
    (tmp_path / "services").mkdir()
    text = f"name: fl_bad\nregions: [cn-hangzhou, cn-shanghai]\nedition: standard\nimage: {{version: \"1.9\"}}\n{storage}"
    (tmp_path / "services" / "bad.yaml").write_text(text)
    (tmp_path / "eascomfy.yaml").write_text(spec_text("fl_good"))
    before = mark(sandbox)
    for args in (("deploy", "--all"), ("plan", "--service", "fl_good"), ("validate", "-f", "services/bad.yaml")):
        res = cli(tmp_path, *args)
        assert res.exit_code == 3, (args, res.stderr)
        assert f"services/bad.yaml:{line}: {message}" in res.stderr, res.stderr
    assert mark(sandbox) == before


def test_a_service_defined_twice_and_region_with_regions(sandbox: EasSandbox, fleet: Path) -> None:
    (fleet / "services" / "again.yaml").write_text(spec_text("fl_multi", region=SH))
    before = mark(sandbox)
    res = cli(fleet, "plan", "--all")
    assert res.exit_code == 2 and "service fl_multi in cn-shanghai is defined twice" in res.stderr
    (fleet / "services" / "again.yaml").write_text(spec_text("fl_both", regions=[HZ]).replace("regions:", "region: cn-hangzhou\nregions:"))
    res = cli(fleet, "plan", "--all")
    assert res.exit_code == 3 and "set exactly one of 'region' or 'regions', not both" in res.stderr
    assert mark(sandbox) == before


def test_secrets_stay_out_of_the_fleet_summary(sandbox: EasSandbox, fleet: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "tok-Fleet-5ecret-0123456789"
    monkeypatch.setenv("FLEET_TOKEN", secret)
    with (fleet / "eascomfy.yaml").open("a") as fh:
        fh.write("env:\n  HF_TOKEN: \"${env:FLEET_TOKEN}\"\n")
    sandbox.faults.add(kind="status", status=400, code="InvalidParameter", message=f"bad value {secret}",
                       method="GET", path="/fl_main$", action="DescribeService", times=-1)
    for args in (("--verbose", "plan", "--all"), ("-o", "json", "deploy", "--all"), ("--verbose", "deploy", "--all")):
        res = cli(fleet, *args)
        assert res.exit_code == 4, res.stdout
        assert secret not in res.stdout + res.stderr, args
    sandbox.faults.clear()
    assert cli(fleet, "deploy", "--all").exit_code == 0
    config = sandbox.get_service("fl_main", region=HZ)["config"]
    assert any(e.get("value") == secret for e in config["containers"][0].get("env", []))  # it was sent, not shown


def test_one_client_per_region_serves_all_its_services(sandbox: EasSandbox, fleet: Path) -> None:
    """The runner makes one EAS client per region, shared by that region's services' threads."""
    from eascomfy.control.deploy import connect
    from eascomfy.control.fleet import Clients, load_fleet, plan_work, run
    from eascomfy.ports import SILENT

    made: list[str] = []

    def counted(region: str, progress: object) -> object:
        made.append(region)
        return connect(region, SILENT)

    specs = load_fleet(fleet)
    before = mark(sandbox)
    outcome = run(specs, plan_work(), SILENT, parallel=4, clients=Clients(SILENT, make=counted))  # type: ignore[arg-type]
    assert outcome.exit_code(detailed=True) == 2 and len(outcome.outcomes) == 4
    assert sorted(made) == sorted({HZ, SH, SG})  # 4 services, 3 regions, 3 clients
    assert len(api_calls(sandbox, before)) == 4


def test_deploy_all_syncs_each_regions_mount_first_and_records_the_lock(sandbox: EasSandbox, fleet: Path,
                                                                        tmp_path: Path, monkeypatch) -> None:
    """As a single deploy does, each service of a fleet gets its mount synced before the service
    (here a model for the two-region spec, one bucket per region), and the lockfile records both
    regions' sections; plan --all counts a bucket change as a change."""
    with OssSandbox(tmp_path / "oss", region=HZ, regions=[SH, SG]) as oss:
        monkeypatch.setenv("EASCOMFY_OSS_ENDPOINTS", format_endpoints(oss.urls))
        for region in (HZ, SH, SG):
            oss.create_bucket(f"b-{region}", region=region)
        multi = fleet / "services" / "multi.yaml"
        (fleet / "services" / "a.safetensors").write_bytes(b"weights" * 1000)
        multi.write_text(multi.read_text() + "models:\n  - {kind: checkpoints, file: a.safetensors}\n")
        res = cli(fleet, "plan", "--all", "--detailed-exitcode", "-o", "json")
        assert res.exit_code == 2, res.stdout + res.stderr
        storage = {(e["service"], e["region"]): e["data"]["storage"] for e in res.json()["data"]}
        assert storage[("fl_main", HZ)] is None
        assert [i["action"] for i in storage[("fl_multi", SH)]["items"]] == ["upload"]

        res = cli(fleet, "deploy", "--all")
        assert res.exit_code == 0, res.stdout + res.stderr
        for region in (HZ, SH):
            key = "fl_multi/models/checkpoints/a.safetensors"
            assert oss.object_bytes(f"b-{region}", key) == b"weights" * 1000
        # in cn-shanghai fl_multi is the only service: its model was stored before it was created
        put = [r.time for r in oss.requests() if r.action == "PutObject" and r.path.endswith("a.safetensors")
               and r.site == SH]
        made = [r.time for r in sandbox.recorder.all() if r.action == "CreateService" and r.site == SH]
        assert len(made) == 1 and put and max(put) < made[0]
        lock = json.loads((fleet / "services" / "multi.lock").read_text())
        assert sorted(lock["services"]) == [f"fl_multi@{HZ}", f"fl_multi@{SH}"]
        assert all(s["models"][0]["crc64"] for s in lock["services"].values())
        res = cli(fleet, "plan", "--all", "--detailed-exitcode")
        assert res.exit_code == 0, res.stdout + res.stderr  # nothing left to sync or change
