"""``safety_lock:`` in the spec (issue 12) maps to UpdateServiceSafetyLock: plan shows it, deploy
sets it (lowering before the other writes, raising after), and stop/delete explain how to lift
it when the emulator refuses them."""

from __future__ import annotations

from typing import Callable

from eascomfy.sandbox.eas import EasSandbox

from .conftest import Project, api_calls, mark


def test_safety_lock_from_plan_to_refused_delete_and_back(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("guarded_svc")
    with p.spec.open("a") as fh:
        fh.write("safety_lock: dangerous\n")
    res = p.cli("-o", "json", "plan")
    assert res.exit_code == 0 and res.json()["data"]["safety_lock"] == {"old": None, "new": "dangerous"}, res.stdout
    assert p.cli("deploy").exit_code == 0
    assert sandbox.get_service("guarded_svc")["safety_lock"] == "dangerous"
    before = mark(sandbox)
    res = p.cli("plan", "--detailed-exitcode")
    assert res.exit_code == 0 and "no changes" in res.stdout, res.stdout
    assert [r.action for r in api_calls(sandbox, before)] == ["DescribeService"]

    res = p.cli("stop")
    assert res.exit_code == 4 and "ServiceSafetyLocked" in res.stderr, res.stderr
    assert "safety lock is 'dangerous'" in res.stderr and "safety_lock: none" in res.stderr
    res = p.cli("delete", "--yes")
    assert res.exit_code == 4 and "safety_lock: none" in res.stderr, res.stderr
    assert sandbox.get_service("guarded_svc") is not None

    # all: even an update is refused by EAS, so lowering it goes first
    p.edit("safety_lock: dangerous", "safety_lock: all")
    res = p.cli("plan")
    assert '~ safety_lock: "dangerous" -> "all"' in res.stdout, res.stdout
    assert p.cli("deploy").exit_code == 0
    p.edit("instances: 1", "instances: 2")
    p.edit("safety_lock: all", "safety_lock: none")
    before = mark(sandbox)
    res = p.cli("deploy")
    assert res.exit_code == 0, res.stderr
    writes = [r.action for r in api_calls(sandbox, before) if r.method != "GET"]
    assert writes.index("UpdateServiceSafetyLock") < writes.index("UpdateService"), writes
    record = sandbox.get_service("guarded_svc")
    assert record["safety_lock"] == "none" and record["config"]["metadata"]["instance"] == 2
    assert p.cli("delete", "--yes").exit_code == 0


def test_a_spec_without_safety_lock_leaves_the_live_one(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("unguarded_svc")
    assert p.cli("deploy").exit_code == 0
    before = mark(sandbox)
    res = p.cli("-o", "json", "plan")
    assert res.json()["data"]["safety_lock"] is None and res.json()["data"]["action"] == "noop"
    assert [r.action for r in api_calls(sandbox, before)] == ["DescribeService"]
