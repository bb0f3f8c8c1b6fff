"""Operations that can hurt a live service, tried the way a mistaken user or a fault would (issue
11): each is refused, or fails fast and clearly, through the CLI against the EAS emulator."""

from __future__ import annotations

from typing import Callable

import pytest

from eascomfy.sandbox.eas import EasSandbox

from .conftest import Project, api_calls, mark


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
