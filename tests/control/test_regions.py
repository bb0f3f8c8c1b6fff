"""Regions: the shipped table offline, DescribeRegions online for a region newer than the table
(``region_check: false``), and no extra call for a region the table knows (issue 11, item 6)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from eascomfy.sandbox.eas import EasSandbox
from tests.conftest import run_cli

from .conftest import FAST, Project, api_calls, mark

NEW_REGION = "me-central-1"  # Riyadh: not in eascomfy's table


def _actions(sandbox: EasSandbox, since: int) -> list[str]:
    return [r.action or "" for r in api_calls(sandbox, since)]


def test_a_typo_is_refused_offline_with_did_you_mean(tmp_path: Path) -> None:
    res = run_cli("init", str(tmp_path), "--name", "region_svc", "--region", "cn-hangzhuo")
    assert res.exit_code == 2, res.stderr
    assert "--region: 'cn-hangzhuo' is not an EAS region eascomfy knows (did you mean 'cn-hangzhou'?" in res.stderr
    assert not (tmp_path / "eascomfy.yaml").exists()


def test_a_known_region_costs_no_describe_regions(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("region_known_svc")
    before = mark(sandbox)
    assert p.cli("plan").exit_code == 0
    # a new service's plan also reads its instance types' stock (docs/cost.md): still no DescribeRegions
    assert _actions(sandbox, before) == ["DescribeService", "DescribeMachineSpec"]


def test_region_check_false_asks_eas_and_refuses_what_it_does_not_offer(
    sandbox: EasSandbox, project: Callable[..., Project]
) -> None:
    p = project("region_typo_svc")
    p.edit("region: cn-hangzhou", "region: cn-hangzhuo\nregion_check: false")
    assert p.cli("validate").exit_code == 0  # offline, the table is skipped
    before = mark(sandbox)
    res = p.cli("deploy")
    assert res.exit_code == 3, res.stderr
    assert (
        "eascomfy.yaml:7: region: EAS does not offer region 'cn-hangzhuo' (DescribeRegions lists cn-hangzhou) "
        "(did you mean 'cn-hangzhou'?)"
    ) in res.stderr
    assert _actions(sandbox, before) == ["DescribeRegions"]  # nothing read, nothing written


def test_region_check_false_deploys_to_a_region_eas_offers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A region newer than the table: refused offline by default, deployed with region_check:
    false once DescribeRegions lists it."""
    with EasSandbox(state_dir=tmp_path / "state", timings=FAST, region=NEW_REGION) as new:
        monkeypatch.setenv("EASCOMFY_EAS_ENDPOINT", new.url)
        where = tmp_path / "p"
        args = ("init", str(where), "--name", "region_new_svc", "--edition", "standard")
        res = run_cli(*args, "--region", NEW_REGION)
        assert res.exit_code == 2 and "set region_check: false" in res.stderr
        assert run_cli(*args, "--region", "cn-hangzhou").exit_code == 0
        spec = where / "eascomfy.yaml"
        spec.write_text(spec.read_text().replace("region: cn-hangzhou", f"region: {NEW_REGION}\nregion_check: false"))
        before = mark(new)
        res = run_cli("deploy", cwd=where)
        assert res.exit_code == 0, res.stderr
        assert _actions(new, before)[:3] == ["DescribeRegions", "DescribeService", "CreateService"]
        assert new.get_service("region_new_svc")["status"] == "Running"


def test_the_emulator_lists_every_region_it_serves(tmp_path: Path) -> None:
    """DescribeRegions through the unmodified SDK: the same list at each region's endpoint."""
    from eascomfy.adapters.credentials import AccessKey, credential_client
    from eascomfy.adapters.eas import EasClient
    from eascomfy.sandbox.credentials import SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET

    with EasSandbox(state_dir=tmp_path, timings=FAST, regions=["cn-shanghai"]) as sb:
        key = credential_client(AccessKey(SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET))
        for region in ("cn-hangzhou", "cn-shanghai"):
            client = EasClient(region, endpoint=sb.url_for(region), credential=key)
            assert client.regions() == {"cn-hangzhou": "cn-hangzhou", "cn-shanghai": "cn-shanghai"}
