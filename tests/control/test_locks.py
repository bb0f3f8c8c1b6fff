"""The deploy lock (issue 12): two deploys of one service must not interleave. The lock is the
service's ``eascomfy/lock`` label; another tool (the console, a crashed run) is played straight
through the SDK against the EAS emulator."""

from __future__ import annotations

import threading
import time
from typing import Callable

import pytest
from alibabacloud_eas20210701 import models

from eascomfy.control.locks import Lock
from eascomfy.core.plan import LOCK_LABEL
from eascomfy.sandbox.eas import EasSandbox

from .conftest import REGION, Project, api_calls, mark
from .test_safe_operations import console


def _hold(sandbox: EasSandbox, name: str, owner: str, since: float, expires: float, token: int = 7) -> None:
    """Another run's lock, as it writes it (UpdateServiceLabel)."""
    value = Lock(owner, token, since, expires).value()
    request = models.UpdateServiceLabelRequest(labels={LOCK_LABEL: value})
    console(sandbox).update_service_label(REGION, name, request)


def test_a_live_lock_refuses_and_force_unlock_breaks_it(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("locked_svc")
    assert p.cli("deploy").exit_code == 0
    now = time.time()
    _hold(sandbox, "locked_svc", "alice@build-7:4242", now - 60, now + 3600)
    p.edit("instances: 1", "instances: 2")
    before = mark(sandbox)
    res = p.cli("deploy")
    assert res.exit_code == 6, res.stderr
    assert "locked by alice@build-7:4242 since " in res.stderr and "--force-unlock" in res.stderr, res.stderr
    assert [r.action for r in api_calls(sandbox, before)] == ["DescribeService"]  # nothing written
    assert sandbox.get_service("locked_svc")["config"]["metadata"]["instance"] == 1

    res = p.cli("-o", "json", "deploy")
    assert res.exit_code == 6
    error = res.json()["error"]
    assert error["type"] == "locked" and error["lock"]["owner"] == "alice@build-7:4242", error

    res = p.cli("deploy", "--force-unlock")
    assert res.exit_code == 0, res.stderr
    assert "breaking the lock held by alice@build-7:4242" in res.stderr
    record = sandbox.get_service("locked_svc")
    assert record["config"]["metadata"]["instance"] == 2 and LOCK_LABEL not in record["labels"]


def test_an_expired_lock_is_taken_over_and_released(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    """A crashed run leaves its lock behind; it expires, and the next deploy takes it over."""
    p = project("crashed_svc")
    assert p.cli("deploy").exit_code == 0
    _hold(sandbox, "crashed_svc", "bob@ci:99", time.time() - 7200, time.time() - 60, token=5)
    p.edit("instances: 1", "instances: 2")
    res = p.cli("deploy")
    assert res.exit_code == 0, res.stderr
    assert "taking over the expired lock held by bob@ci:99" in res.stderr
    record = sandbox.get_service("crashed_svc")
    assert record["config"]["metadata"]["instance"] == 2 and LOCK_LABEL not in record["labels"]
    taken = [e for e in record["events"] if e["Reason"] == "LabelsUpdated" and LOCK_LABEL in e["Message"]]
    assert taken, record["events"]


def test_an_unchanged_deploy_takes_no_lock(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    """Nothing to write, nothing to lock: still one call, even under someone else's lock."""
    p = project("quiet_lock_svc")
    assert p.cli("deploy").exit_code == 0
    _hold(sandbox, "quiet_lock_svc", "carol@laptop:1", time.time(), time.time() + 600)
    before = mark(sandbox)
    assert p.cli("deploy").exit_code == 0
    assert [r.action for r in api_calls(sandbox, before)] == ["DescribeService"]


def test_two_concurrent_deploys_exactly_one_applies(
    sandbox: EasSandbox, project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    from eascomfy.control.deploy import connect, deploy
    from eascomfy.core.spec import load_spec
    from eascomfy.errors import Locked
    from eascomfy.ports import SILENT

    monkeypatch.setenv("EASCOMFY_LOCK_SETTLE", "0.3")
    p = project("race_svc")
    assert p.cli("deploy").exit_code == 0
    p.edit("instances: 1", "instances: 2")
    spec = load_spec(p.spec)
    start = threading.Barrier(2)
    outcomes: list[object] = []

    def run() -> None:
        client = connect(REGION, SILENT)
        start.wait()
        try:
            outcomes.append(deploy(spec, client, SILENT, timeout=30))
        except Locked as exc:
            outcomes.append(exc)

    before = mark(sandbox)
    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    applied = [o for o in outcomes if not isinstance(o, Locked) and o.applied]  # type: ignore[attr-defined]
    refused = [o for o in outcomes if isinstance(o, Locked)]
    assert len(applied) == 1 and len(refused) == 1, outcomes
    assert [r.action for r in api_calls(sandbox, before)].count("UpdateService") == 1
    assert LOCK_LABEL not in sandbox.get_service("race_svc")["labels"]
