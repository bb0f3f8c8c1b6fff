"""Cost and stock through the CLI against the EAS emulator (the unmodified SDK): the plan's cost
section (prices from a prices file, stock and spot discounts from DescribeMachineSpec), the
out-of-stock warning naming the fallbacks, no lookup when nothing that costs money changes, and
``eascomfy cost --journal`` (offline with a type and a price, or the live service's type and a
spot discount from DescribeSpotDiscountHistory)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from eascomfy.core.cost import HOURS_PER_MONTH, Prices, plan_cost
from eascomfy.sandbox.eas import EasSandbox

from .conftest import REGION, Project, api_calls, mark

MAIN = "ml.gu7i.c16m60.1-gu30"
FALLBACK = "ecs.gn6i-c16g1.4xlarge"
PRICES = f"""currency: CNY
hourly:
  {MAIN}: 13.5
  {FALLBACK}: 9.25
"""
SPEC_PATH = "/api/v2/public/instance_types"
SPOT_PATH = "/api/v2/public/spot_discount"


def capacity_calls(sandbox: EasSandbox, since: int) -> list[str]:
    return [r.path for r in api_calls(sandbox, since) if r.path.startswith("/api/v2/public/")]


def prices_file(p: Project, text: str = PRICES) -> Path:
    path = p.dir / "prices.yaml"
    path.write_text(text)
    return path


def test_plan_of_a_new_service_shows_prices_spot_and_stock(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("cost_new")
    p.edit("  instances: 1", "  instances: 2")
    p.edit("  # fallback_instance_types: [ecs.gn6i-c16g1.4xlarge]", f"  fallback_instance_types: [{FALLBACK}]")
    prices_file(p)
    before = mark(sandbox)
    res = p.cli("plan", "--prices", "prices.yaml", "-o", "json")
    assert res.exit_code == 0, res.stderr
    cost = res.json()["data"]["cost"]
    assert res.json()["data"]["format"] == "eascomfy-plan-json/1"
    main, fallback = cost["types"]
    assert (main["instance_type"], main["role"], main["hourly"], main["stock"]) == (MAIN, "planned", 13.5, "WithStock")
    meta = sandbox.openapi.capacity.metas[MAIN]
    assert main["spot_discount"] == meta["SpotDiscount"]
    assert main["spot_hourly"] == round(13.5 * meta["SpotDiscount"], 4)
    assert (fallback["instance_type"], fallback["role"], fallback["hourly"]) == (FALLBACK, "fallback", 9.25)
    assert cost["currency"] == "CNY" and cost["instances"] == 2 and cost["live_instances"] is None
    assert cost["monthly"] == round(13.5 * 2 * HOURS_PER_MONTH, 4)
    assert cost["monthly_difference"] == cost["monthly"] and cost["live_monthly"] == 0
    assert cost["warnings"] == []
    assert capacity_calls(sandbox, before) == [SPEC_PATH]  # one DescribeMachineSpec, no spot history

    text = p.cli("plan", "--prices", "prices.yaml")
    assert f"planned  {MAIN}" in text.stdout and "13.50 CNY/h" in text.stdout, text.stdout
    assert "difference +19,710.00 CNY" in text.stdout


def test_out_of_stock_is_a_warning_naming_the_fallbacks(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("cost_stock")
    p.edit("  # fallback_instance_types: [ecs.gn6i-c16g1.4xlarge]", f"  fallback_instance_types: [{FALLBACK}]")
    sandbox.openapi.capacity.set(MAIN, stock="NoStock")
    res = p.cli("plan")
    assert res.exit_code == 0, res.stderr
    warning = [line for line in res.stderr.splitlines() if line.startswith(f"warning: {MAIN} has no stock")]
    assert warning and f"falls back to the spec's resources.fallback_instance_types: {FALLBACK}" in warning[0], res.stderr
    assert "stock NoStock" in res.stdout

    sandbox.openapi.capacity.set(FALLBACK, stock="NoStock")
    data = p.cli("plan", "-o", "json").json()
    assert any(w.startswith(f"fallback {FALLBACK} has no stock") for w in data["warnings"]), data["warnings"]
    assert any("no fallback type" in w and "has stock either" in w for w in data["warnings"])


def test_out_of_stock_without_fallbacks_says_to_add_them(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("cost_nofb")
    sandbox.openapi.capacity.set(MAIN, stock="NoStock")
    data = p.cli("plan", "-o", "json").json()
    assert any("the spec lists no fallback: add resources.fallback_instance_types" in w for w in data["warnings"])


def test_unknown_price_is_said_never_invented(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("cost_noprice")
    prices_file(p, f"hourly:\n  {FALLBACK}: 9.25\n")
    res = p.cli("plan", "--prices", "prices.yaml", "-o", "json")
    cost = res.json()["data"]["cost"]
    assert cost["types"][0]["hourly"] is None and cost["monthly"] is None and cost["monthly_difference"] is None
    assert any(w.startswith(f"price unknown for {MAIN}") for w in cost["warnings"])
    text = p.cli("plan")  # no prices file at all
    assert "price unknown" in text.stdout and "difference unknown" in text.stdout, text.stdout


def test_unchanged_plan_makes_no_cost_call_and_a_count_change_prices_the_difference(
    sandbox: EasSandbox, project: Callable[..., Project]
) -> None:
    p = project("cost_update")
    prices_file(p)
    assert p.cli("deploy").exit_code == 0
    before = mark(sandbox)
    res = p.cli("plan", "--prices", "prices.yaml", "-o", "json")
    assert res.json()["data"]["cost"] is None
    assert capacity_calls(sandbox, before) == []
    p.edit("  instances: 1", "  instances: 3")
    before = mark(sandbox)
    cost = p.cli("plan", "--prices", "prices.yaml", "-o", "json").json()["data"]["cost"]
    assert (cost["instances"], cost["live_instances"]) == (3, 1)
    assert cost["live_monthly"] == round(13.5 * HOURS_PER_MONTH, 4)
    assert cost["monthly_difference"] == round(13.5 * 2 * HOURS_PER_MONTH, 4)
    assert capacity_calls(sandbox, before) == [SPEC_PATH]
    md = p.cli("plan", "--prices", "prices.yaml", "-o", "markdown")
    assert "Monthly difference: **+19,710.00 CNY**" in md.stdout, md.stdout


def test_a_bad_prices_file_is_one_line_and_no_call(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("cost_badprice")
    prices_file(p, f"currency: CNY\nhourly:\n  {MAIN}: cheap\n")
    before = mark(sandbox)
    res = p.cli("plan", "--prices", "prices.yaml")
    assert res.exit_code == 3
    assert res.stderr.strip().splitlines()[0].startswith(f"error: prices.yaml:3: hourly.{MAIN}: expected a price"), res.stderr
    assert "Traceback" not in res.stderr
    prices_file(p, "curency: CNY\n")
    res = p.cli("plan", "--prices", "prices.yaml")
    assert "did you mean 'currency'?" in res.stderr
    assert api_calls(sandbox, before) == []


# -- eascomfy cost --journal -----------------------------------------------------------------------
def journal(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


JOBS = [
    {"event": "submit_started", "run": "r", "pid": 1, "time": 99},
    {"event": "submit", "task_id": "a", "time": 100.0},
    {"event": "submit", "task_id": "b", "time": 100.0},
    {"event": "sent", "task_id": "a", "time": 100.1},
    {"event": "submit", "task_id": "c", "time": 105.0},
    {"event": "result", "task_id": "a", "ok": True, "time": 112.0},
    {"event": "result", "task_id": "b", "ok": True, "time": 130.0},
    {"event": "resend", "task_id": "c", "try": 2, "time": 131.0},
    {"event": "result", "task_id": "c", "ok": False, "time": 140.0},
    {"event": "submit", "task_id": "never", "time": 141.0},
]


def test_journal_cost_offline(sandbox: EasSandbox, tmp_path: Path) -> None:
    from tests.conftest import run_cli

    path = journal(tmp_path / "jobs.jsonl", JOBS)
    before = mark(sandbox)
    res = run_cli("cost", "--journal", str(path), "--instance-type", MAIN, "--price", "13.5", "-o", "json", cwd=tmp_path)
    assert res.exit_code == 0, res.stderr
    data = res.json()["data"]
    # one worker: a 100->112 (12 s); b waits for a: 112->130 (18 s); c resent at 131: 131->140 (9 s)
    assert (data["jobs"], data["failed"], data["busy_seconds"], data["gpu_seconds"]) == (3, 1, 39.0, 39.0)
    assert data["busy"]["max"] == 18.0 and data["busy"]["p50"] == 12.0
    assert data["latency"]["max"] == 30.0  # b: sent at 100, result at 130
    assert data["total_cost"] == round(39 / 3600 * 13.5, 4)
    assert data["cost_per_job"]["max"] == round(18 / 3600 * 13.5, 4)
    assert data["window_seconds"] == 40.0 and data["utilization"] == round(39 / 40, 4)
    assert api_calls(sandbox, before) == []  # offline
    text = run_cli("cost", "--journal", str(path), "--instance-type", MAIN, "--price", "13.5", cwd=tmp_path)
    assert "3 finished job(s) (1 failed) on 1 x ml.gu7i.c16m60.1-gu30 at 13.50/h" in text.stdout, text.stdout


def test_journal_cost_on_the_live_type_with_spot(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("cost_jobs")
    p.edit("  instances: 1", "  instances: 2")
    assert p.cli("deploy").exit_code == 0
    prices_file(p)
    journal(p.dir / "jobs.jsonl", JOBS)
    sandbox.openapi.capacity.set(MAIN, spot=0.25)
    before = mark(sandbox)
    res = p.cli("cost", "--journal", "jobs.jsonl", "--prices", "prices.yaml", "--spot", "-o", "json")
    assert res.exit_code == 0, res.stderr
    data = res.json()["data"]
    # two workers: a 100->112, b 100->130, c 131->140
    assert (data["instance_type"], data["instances"], data["busy_seconds"]) == (MAIN, 2, 51.0)
    assert data["spot_discount"] == 0.25
    assert data["spot_total_cost"] == round(51 / 3600 * 13.5 * 0.25, 4)
    spot = [r for r in api_calls(sandbox, before) if r.path == SPOT_PATH]
    assert len(spot) == 1 and spot[0].query == {"InstanceType": MAIN, "IsProtect": "True"}


def test_a_bad_journal_line_is_one_line_with_file_and_line(sandbox: EasSandbox, tmp_path: Path) -> None:
    from tests.conftest import run_cli

    path = tmp_path / "jobs.jsonl"
    path.write_text('{"event":"submit","task_id":"a","time":1}\n{"event": "result", oops\n')
    before = mark(sandbox)
    res = run_cli("cost", "--journal", str(path), cwd=tmp_path)
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{path}:2: not a JSON line" in lines[0], res.stderr
    path.write_text('{"event":"result","task_id":"a","time":"noon"}\n')
    res = run_cli("cost", "--journal", str(path), cwd=tmp_path)
    assert f"{path}:1: a result line needs a number in \"time\"" in res.stderr
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it would block until a writer comes
    res = run_cli("cost", "--journal", str(fifo), cwd=tmp_path)
    assert res.exit_code == 2 and f"{fifo}: is a FIFO, not a journal file" in res.stderr, res.stderr
    assert api_calls(sandbox, before) == []


def test_describe_machine_spec_is_read_once_per_region_per_command(sandbox: EasSandbox) -> None:
    from eascomfy.adapters.eas import EasClient
    from eascomfy.control.cost import Capacity

    capacity, client = Capacity(), EasClient(REGION)
    before = mark(sandbox)
    for _ in range(5):  # a fleet of services in one region
        assert MAIN in capacity.specs(client)
    assert capacity_calls(sandbox, before) == [SPEC_PATH]


# -- the arithmetic --------------------------------------------------------------------------------
counts = st.integers(min_value=0, max_value=1000)
price = st.one_of(st.none(), st.floats(min_value=0, max_value=1000, allow_nan=False))


@settings(max_examples=200, deadline=None)
@given(new_count=counts, old_count=counts, new_price=price, old_price=price)
def test_monthly_difference_is_new_minus_old(new_count: int, old_count: int, new_price: float | None,
                                             old_price: float | None) -> None:
    hourly = {t: v for t, v in ((MAIN, new_price), (FALLBACK, old_price)) if v is not None}
    desired = {"metadata": {"instance": new_count}, "cloud": {"computing": {"instances": [{"type": MAIN}]}}}
    live = {"metadata": {"instance": old_count}, "cloud": {"computing": {"instances": [{"type": FALLBACK}]}}}
    cost = plan_cost(REGION, desired, live, {}, Prices(hourly))
    if new_price is None or old_price is None:
        assert cost.monthly_difference is None
        return
    assert cost.monthly_difference is not None
    expected = (new_price * new_count - old_price * old_count) * HOURS_PER_MONTH
    assert abs(cost.monthly_difference - expected) <= 1e-9 * max(1.0, abs(expected))
    assert [r["role"] for r in cost.types] == ["planned", "live"]


def test_cost_refuses_zero_instances_before_any_call(sandbox: EasSandbox, tmp_path: Path) -> None:
    from tests.conftest import run_cli

    path = journal(tmp_path / "jobs.jsonl", JOBS)
    before = mark(sandbox)
    res = run_cli("cost", "--journal", str(path), "--instances", "0", cwd=tmp_path)
    assert res.exit_code == 2 and "--instances: instances must be 1 or more, got 0" in res.stderr, res.stderr
    assert api_calls(sandbox, before) == []


def test_a_refused_stock_read_leaves_the_plan_standing(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("cost_denied")
    prices_file(p)
    sandbox.faults.add(kind="status", status=403, code="Forbidden.RAM", message="no permission",
                       action="DescribeMachineSpec", times=-1)
    res = p.cli("plan", "--prices", "prices.yaml", "-o", "json")
    assert res.exit_code == 0, res.stdout
    data = res.json()["data"]
    assert data["action"] == "create"
    cost = data["cost"]
    assert cost["monthly"] == round(13.5 * HOURS_PER_MONTH, 4)  # prices still shown
    assert cost["types"][0]["stock"] is None and cost["types"][0]["offered"] is None
    assert any(w.startswith(f"stock unknown in {REGION}: DescribeMachineSpec failed: Forbidden.RAM") for w in cost["warnings"])


def test_a_misspelt_type_in_the_prices_file_is_pointed_at(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("cost_typo")
    prices_file(p, "hourly:\n  ml.gu7i.c16m60.1-gu3: 13.5\n")
    cost = p.cli("plan", "--prices", "prices.yaml", "-o", "json").json()["data"]["cost"]
    assert f"price unknown for {MAIN}: prices.yaml has no price for it (did you mean 'ml.gu7i.c16m60.1-gu3'?)" in cost["warnings"]


def test_placement_reads_both_instance_type_forms() -> None:
    from eascomfy.core.cost import placement

    listed = {"metadata": {"instance": 2}, "cloud": {"computing": {"instances": [{"type": MAIN}, {"type": FALLBACK}]}}}
    single = {"metadata": {"instance": 1}, "cloud": {"computing": {"instance_type": MAIN}}}
    group = {"metadata": {"instance": 1, "resource": "eas-r-abc"}}
    assert (placement(listed).types, placement(listed).instances) == ((MAIN, FALLBACK), 2)
    assert placement(single).types == (MAIN,)
    assert placement(group).group == "eas-r-abc" and placement(None) is None
