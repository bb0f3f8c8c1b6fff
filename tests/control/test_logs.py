"""`eascomfy logs` through the CLI against the EAS emulator with the unmodified SDK: the last
lines newest last, one instance or all, --grep, --since, --previous, -o json, and --follow until
Ctrl-C (a SIGINT sent to this process)."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Callable

from eascomfy.sandbox.eas import EasSandbox

from .conftest import Project


def test_logs_of_all_instances_one_instance_grep_and_json(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("logs_svc")
    p.edit("instances: 1", "instances: 2")
    assert p.cli("deploy").exit_code == 0
    sandbox.add_logs("logs_svc", ["got prompt", "Prompt executed in 3.21 seconds"], instance=1)

    res = p.cli("logs")
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[-1].endswith("] Prompt executed in 3.21 seconds") and lines[-1].startswith("[logs-svc-")
    assert sum("To see the GUI go to" in line for line in lines) == 2  # both instances, prefixed

    data = p.cli("-o", "json", "logs").json()["data"]
    names = sorted({l["instance"] for l in data["lines"]})
    assert len(names) == 2 and data["lines"][-1]["text"] == "Prompt executed in 3.21 seconds"

    res = p.cli("logs", "--instance", data["lines"][-1]["instance"], "--lines", "2")
    assert res.stdout.splitlines() == ["got prompt", "Prompt executed in 3.21 seconds"]  # no prefix, newest last

    res = p.cli("logs", "--grep", "Prompt executed", "--since", "10m")
    assert res.exit_code == 0 and res.stdout.strip().endswith("Prompt executed in 3.21 seconds")
    assert len(res.stdout.splitlines()) == 1

    res = p.cli("logs", "--since", "soon")
    assert res.exit_code == 2 and "--since: not a duration: 'soon'" in res.stderr


def test_previous_shows_the_log_before_a_restart(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("logs_prev")
    assert p.cli("deploy").exit_code == 0
    killed = "/root/run.sh: line 54:    47 Killed                  python main.py --listen --port 8000"
    sandbox.restart_instance("logs_prev", 0, "OOMKilled", 137, ["got prompt", killed])
    res = p.cli("logs", "--previous")
    assert res.exit_code == 0 and res.stdout.splitlines()[-1] == killed
    assert "Killed" not in p.cli("logs").stdout


def test_follow_prints_new_lines_until_ctrl_c(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("logs_follow")
    assert p.cli("deploy").exit_code == 0

    def later() -> None:
        time.sleep(0.6)
        sandbox.add_logs("logs_follow", ["got prompt", "Prompt executed in 1.00 seconds"])
        time.sleep(0.8)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C

    helper = threading.Thread(target=later)
    helper.start()
    started = time.monotonic()
    res = p.cli("logs", "--follow", "--interval", "0.1")
    helper.join()
    assert res.exit_code == 0, res.stderr
    assert time.monotonic() - started < 10
    lines = res.stdout.splitlines()
    assert lines.index("To see the GUI go to: http://0.0.0.0:8000") < lines.index("got prompt")
    assert lines[-1] == "Prompt executed in 1.00 seconds" and lines.count("got prompt") == 1
    assert "stopped following" in res.stderr
