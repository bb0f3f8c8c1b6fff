"""`eascomfy status` shows the instances (name, state, restarts, start time, last reason), in
text and in JSON, through the unmodified SDK against the EAS emulator."""

from __future__ import annotations

import re
from typing import Callable

from eascomfy.sandbox.eas import EasSandbox

from .conftest import Project


def test_status_lists_instances_with_restarts_and_last_reason(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("inst_svc")
    p.edit("instances: 1", "instances: 2")
    assert p.cli("deploy").exit_code == 0
    restarted = sandbox.restart_instance("inst_svc", 1, "OOMKilled", 137, ["run.sh: line 54:  9 Killed  python main.py"])

    data = p.cli("-o", "json", "status").json()["data"]
    rows = {i["name"]: i for i in data["instances"]}
    assert len(rows) == 2 and all(i["status"] == "Running" and i["ready"] for i in rows.values())
    assert rows[restarted]["restarts"] == 1 and rows[restarted]["last_reason"] == "OOMKilled"
    other = next(n for n in rows if n != restarted)
    assert rows[other]["restarts"] == 0 and rows[other]["last_reason"] == ""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rows[other]["started"])

    text = p.cli("status").stdout
    assert "instances:" in text
    line = next(l for l in text.splitlines() if restarted in l)
    assert "Running  restarts 1  started 20" in line and line.endswith("last: OOMKilled")


def test_status_of_a_stopped_service_has_no_instances(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("inst_stop")
    assert p.cli("deploy").exit_code == 0
    assert p.cli("stop").exit_code == 0
    data = p.cli("-o", "json", "status").json()["data"]
    assert data["status"] == "Stopped" and data["instances"] == []
    assert "instances:" not in p.cli("status").stdout
