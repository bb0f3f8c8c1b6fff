"""Wrong credentials, injected faults and retries: converge or fail cleanly, never a duplicate."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Callable

import pytest

from eascomfy.sandbox.credentials import SANDBOX_ACCESS_KEY_SECRET
from eascomfy.sandbox.eas import EasSandbox

from .conftest import REGION, Project, api_calls, mark

WRONG_SECRET = "not-the-sandbox-secret-123456"


def test_wrong_secret_is_a_clear_authentication_error(
    sandbox: EasSandbox, project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    p = project("auth_svc")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", WRONG_SECRET)
    for args in (["deploy"], ["-v", "plan"], ["-o", "json", "status"]):
        res = p.cli(*args)
        assert res.exit_code == 4, res.stderr
        text = res.stdout + res.stderr
        assert "SignatureDoesNotMatch" in text and "authentication failed" in text
        assert WRONG_SECRET not in text and SANDBOX_ACCESS_KEY_SECRET not in text
        assert "Traceback" not in text
    assert sandbox.get_service("auth_svc") is None


def test_missing_service_is_exit_4_with_a_hint(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    res = project("ghost_svc").cli("status", "--service", "no_such_svc", "--region", "cn-hangzhou")
    assert res.exit_code == 4 and "InvalidService.NotFound" in res.stderr and "does not exist" in res.stderr
    res = project("ghost2_svc").cli("status", "--service", "no_such_svc")
    assert res.exit_code == 2 and "--service needs --region" in res.stderr


FAULTS = [
    pytest.param("throttle", dict(kind="throttle"), id="throttle"),
    pytest.param("5xx", dict(kind="status", status=503, code="ServiceUnavailable"), id="5xx"),
    pytest.param("slow", dict(kind="slow", delay=0.3), id="slow"),
    pytest.param("drop", dict(kind="drop"), id="drop"),
]


@pytest.mark.parametrize("label, fault", FAULTS)
@pytest.mark.parametrize("action", ["CreateService", "DescribeService", "UpdateService"])
def test_each_fault_converges_without_duplicates(
    sandbox: EasSandbox, project: Callable[..., Project], label: str, fault: dict, action: str
) -> None:
    name = f"f_{action[:6].lower()}_{label}"
    p = project(name)
    if action == "UpdateService":
        assert p.cli("deploy").exit_code == 0
        p.edit("instances: 1", "instances: 2")
    before = mark(sandbox)
    sandbox.faults.add(action=action, **fault)
    res = p.cli("deploy")
    assert res.exit_code == 0, res.stderr
    calls = api_calls(sandbox, before)
    assert any(r.fault == fault["kind"] for r in calls), "the fault was not hit"
    record = sandbox.get_service(name)
    assert record is not None and record["status"] == "Running"
    # one service, one version per applied change: no duplicate create, no double update
    assert record["latest_version"] == (2 if action == "UpdateService" else 1)


def test_a_create_that_timed_out_but_happened_is_not_repeated(
    sandbox: EasSandbox, project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    p = project("ambiguous_svc")
    monkeypatch.setenv("EASCOMFY_EAS_READ_TIMEOUT", "0.3")
    sandbox.faults.add(kind="slow", delay=0.8, action="CreateService")
    before = mark(sandbox)
    res = p.cli("-v", "deploy")
    assert res.exit_code == 0, res.stderr
    record = sandbox.get_service("ambiguous_svc")
    assert record is not None and record["latest_version"] == 1 and record["status"] == "Running"
    creates = [r for r in api_calls(sandbox, before) if r.action == "CreateService"]
    assert len(creates) >= 2 and "retrying CreateService" in res.stderr


def test_persistent_faults_fail_cleanly(
    sandbox: EasSandbox, project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    p = project("broken_svc")
    monkeypatch.setenv("EASCOMFY_EAS_MAX_RETRIES", "1")
    sandbox.faults.add(kind="status", status=503, code="ServiceUnavailable", action="DescribeService", times=-1)
    before = mark(sandbox)
    res = p.cli("deploy")
    assert res.exit_code == 4 and "ServiceUnavailable" in res.stderr and "request id" in res.stderr
    assert "Traceback" not in res.stderr
    assert [r.action for r in api_calls(sandbox, before)] == ["DescribeService", "DescribeService"]
    sandbox.faults.clear()

    # a 4xx that is not throttling is never retried
    assert p.cli("deploy", "--no-wait").exit_code == 0
    p.edit("instances: 1", "instances: 2")
    sandbox.faults.add(kind="status", status=400, code="InvalidParameter", action="UpdateService")
    before = mark(sandbox)
    res = p.cli("deploy")
    assert res.exit_code == 4 and "InvalidParameter" in res.stderr
    # the deploy lock is taken (written, read back) and released around the one UpdateService
    assert [r.action for r in api_calls(sandbox, before)] == [
        "DescribeService", "UpdateServiceLabel", "DescribeService", "UpdateService", "DescribeService", "DeleteServiceLabel"
    ]

    # a create that keeps being dropped: re-read before each retry, then a clean failure
    q = project("dropped_svc")
    sandbox.faults.add(kind="drop", action="CreateService", times=-1)
    before = mark(sandbox)
    res = q.cli("deploy")
    assert res.exit_code == 4 and "ConnectionError" in res.stderr
    assert [r.action for r in api_calls(sandbox, before)] == [
        "DescribeService", "CreateService", "DescribeService", "CreateService"
    ]
    assert sandbox.get_service("dropped_svc") is None


@pytest.mark.parametrize("unit", ["ms", "s"])
def test_throttling_waits_the_milliseconds_asked_for(
    sandbox: EasSandbox, project: Callable[..., Project], unit: str
) -> None:
    """x-acs-retry-after is milliseconds, as the SDK reads it (tea-openapi get_throttling_time_left,
    darabonba get_backoff_time): 1000 is one second (not 17 minutes), 1 is one millisecond (the
    client's own backoff then decides). Run in a process of its own: a client that read seconds
    would sleep 1000 s, and the timeout below ends the test instead."""
    p = project(f"thr_{unit}_svc")
    assert p.cli("deploy", "--no-wait").exit_code == 0
    before = sandbox.fidelity.retry_after_unit
    sandbox.fidelity.retry_after_unit = unit
    try:
        sandbox.faults.add(kind="throttle", action="DescribeService")
        proc = subprocess.run([sys.executable, "-m", "eascomfy", "-v", "status"], cwd=p.dir, env=dict(os.environ),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    finally:
        sandbox.fidelity.retry_after_unit = before
    assert proc.returncode == 0, proc.stderr
    found = re.search(r"retrying DescribeService in ([0-9.]+) s", proc.stderr)
    assert found, proc.stderr
    wait = float(found[1])
    if unit == "ms":  # 1000: one second
        assert 1.0 <= wait < 1.5
    else:  # 1: one millisecond, so the backoff's first step (at most 0.25 s)
        assert wait <= 0.25


def test_a_huge_retry_after_is_capped_at_two_minutes(sandbox: EasSandbox) -> None:
    """darabonba caps the wait at MAX_DELAY_TIME (120000 ms); eascomfy too. The waits are recorded
    by the retry policy's own sleep, so nothing sleeps for two minutes here."""
    from eascomfy.adapters.eas import EasClient
    from eascomfy.retry import Retry

    waits: list[float] = []
    client = EasClient(REGION, retry=Retry(attempts=2, sleep=waits.append))
    sandbox.faults.add(kind="throttle", action="DescribeService", retry_after=str(24 * 3600 * 1000), times=2)
    assert client.describe("nobody_svc") is None  # throttled twice, then InvalidService.NotFound
    assert waits == [120.0, 120.0]


def test_a_name_another_account_owns_is_said_to_be_taken(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    """EAS answers Forbidden.PrivilegeCheckFailed for a service name another account owns
    (agentscope-runtime's pai_deployer.py): the name is taken, no RAM permission is missing."""
    p = project("taken_svc")
    sandbox.mark_foreign("taken_svc")
    try:
        before = mark(sandbox)
        for args in (["deploy"], ["status"], ["-o", "json", "status", "--service", "taken_svc", "--region", REGION]):
            res = p.cli(*args)
            assert res.exit_code == 4, res.stderr
            text = res.stdout + res.stderr
            assert "Forbidden.PrivilegeCheckFailed" in text and "owned by another Alibaba Cloud account" in text
            assert "choose another service name" in text and "RAM" not in text
        assert "CreateService" not in [r.action for r in api_calls(sandbox, before)]
    finally:
        sandbox.mark_foreign("taken_svc", False)
