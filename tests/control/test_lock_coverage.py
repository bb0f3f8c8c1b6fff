"""Every command that changes a live service takes the service lock (issue 12), not only deploy:
update-image, rollback, start, stop, restart and delete refuse while another run holds it (exit 6,
who and since when, nothing written), take over a lock whose expiry passed (its run crashed), and
break a live one with --force-unlock. The lock's own cost is measured on the emulator's recorder."""

from __future__ import annotations

import time
from typing import Callable

import pytest

from eascomfy.core.plan import LOCK_LABEL
from eascomfy.sandbox.eas import EasSandbox

from .conftest import Project, api_calls, mark
from .test_locks import _hold


def _writes(sandbox: EasSandbox, since: int) -> list[str]:
    return [r.action or "" for r in api_calls(sandbox, since) if r.method != "GET"]


def _refused_then_taken_over(sandbox: EasSandbox, p: Project, name: str, *args: str) -> None:
    """A live lock refuses ``args`` before any write; an expired one is taken over and released."""
    now = time.time()
    _hold(sandbox, name, "alice@build-7:4242", now - 60, now + 3600)
    before = mark(sandbox)
    res = p.cli(*args)
    assert res.exit_code == 6, res.stderr
    assert "locked by alice@build-7:4242 since " in res.stderr and "--force-unlock" in res.stderr, res.stderr
    assert _writes(sandbox, before) == []

    _hold(sandbox, name, "bob@ci:99", now - 7200, now - 60, token=5)  # its run crashed long ago
    res = p.cli(*args)
    assert res.exit_code == 0, res.stderr
    assert "taking over the expired lock held by bob@ci:99" in res.stderr, res.stderr


def _forced(sandbox: EasSandbox, p: Project, name: str, *args: str) -> None:
    now = time.time()
    _hold(sandbox, name, "carol@laptop:1", now - 10, now + 3600)
    res = p.cli(*args, "--force-unlock")
    assert res.exit_code == 0, res.stderr
    assert "breaking the lock held by carol@laptop:1" in res.stderr, res.stderr


@pytest.mark.parametrize("action,status", [("stop", "Stopped"), ("restart", "Running")])
def test_lifecycle_commands_take_the_lock(
    sandbox: EasSandbox, project: Callable[..., Project], action: str, status: str
) -> None:
    name = f"lc_{action}_svc"
    p = project(name)
    assert p.cli("deploy").exit_code == 0
    _refused_then_taken_over(sandbox, p, name, action)
    assert sandbox.get_service(name)["status"] == status
    assert LOCK_LABEL not in sandbox.get_service(name)["labels"]
    if action == "stop":
        _refused_then_taken_over(sandbox, p, name, "start")
        assert sandbox.get_service(name)["status"] == "Running"
    _forced(sandbox, p, name, action)
    assert LOCK_LABEL not in sandbox.get_service(name)["labels"]


def test_update_image_and_rollback_take_the_lock(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("lc_versions_svc")
    assert p.cli("deploy").exit_code == 0
    _refused_then_taken_over(sandbox, p, "lc_versions_svc", "update-image", "2.0")
    record = sandbox.get_service("lc_versions_svc")
    assert record["current_version"] == 2 and LOCK_LABEL not in record["labels"]

    _refused_then_taken_over(sandbox, p, "lc_versions_svc", "rollback", "--allow-other-changes")
    record = sandbox.get_service("lc_versions_svc")
    assert record["current_version"] == 1 and LOCK_LABEL not in record["labels"]

    _forced(sandbox, p, "lc_versions_svc", "update-image", "2.0")
    _forced(sandbox, p, "lc_versions_svc", "rollback", "--allow-other-changes")
    record = sandbox.get_service("lc_versions_svc")
    assert record["current_version"] == 2 and LOCK_LABEL not in record["labels"]


def test_delete_takes_the_lock(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("lc_delete_svc")
    assert p.cli("deploy").exit_code == 0
    _refused_then_taken_over(sandbox, p, "lc_delete_svc", "delete", "--yes")
    q = project("lc_delete_forced_svc")
    assert q.cli("deploy").exit_code == 0
    _forced(sandbox, q, "lc_delete_forced_svc", "delete", "--yes")


def test_a_safety_locked_delete_releases_the_lock_and_says_how_to_lift(
    sandbox: EasSandbox, project: Callable[..., Project]
) -> None:
    p = project("lc_guarded_svc")
    with p.spec.open("a") as fh:
        fh.write("safety_lock: dangerous\n")
    assert p.cli("deploy").exit_code == 0
    res = p.cli("delete", "--yes")
    assert res.exit_code == 4 and "safety_lock: none" in res.stderr, res.stderr
    record = sandbox.get_service("lc_guarded_svc")
    assert record is not None and LOCK_LABEL not in record["labels"]  # the refused delete gave it back


def test_the_lock_costs_three_calls_on_a_changing_deploy(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    """Write it, read it back, delete it: the release checks ownership on the wait's last read
    instead of a DescribeService of its own. An unchanged deploy stays one call (test_locks)."""
    p = project("lc_cost_svc")
    assert p.cli("deploy").exit_code == 0
    p.edit("instances: 1", "instances: 2")
    before = mark(sandbox)
    assert p.cli("deploy").exit_code == 0
    calls = [r.action for r in api_calls(sandbox, before)]
    # the plan's read; the lock written and read back; then the change itself
    assert calls[:5] == ["DescribeService", "UpdateServiceLabel", "DescribeService", "UpdateService",
                         "UpdateServiceLabel"], calls
    # released with one call, right after the wait (whose last call reads events, not the service)
    assert calls[-1] == "DeleteServiceLabel" and calls[-2] != "DescribeService", calls
    assert calls.count("DeleteServiceLabel") == 1 and calls.count("UpdateServiceLabel") == 2
    assert LOCK_LABEL not in sandbox.get_service("lc_cost_svc")["labels"]
