"""``eascomfy cost`` on a journal that ``submit`` and ``results --follow`` really wrote against the
API-edition sandbox (the queue emulator, the unmodified eas-prediction SDK): the estimate reads
the right lines, and the live service's type and instance count are used when none is given."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from .conftest import WORKFLOW, Sandbox

JOB_SECONDS = 0.3
JOBS = 4


@pytest.fixture
def slow_jobs(sandbox: Sandbox) -> Iterator[None]:
    comfy = sandbox.stack.comfyui.comfyui(sandbox.api.name)
    before = comfy.job_seconds
    comfy.job_seconds = JOB_SECONDS
    yield
    comfy.job_seconds = before


def test_cost_of_a_real_journal(sandbox: Sandbox, tmp_path: Path, slow_jobs: None) -> None:
    journal = tmp_path / "jobs.jsonl"
    res = sandbox.api.cli("submit", str(WORKFLOW), "--count", str(JOBS), "--journal", str(journal))
    assert res.exit_code == 0, res.stderr
    res = sandbox.api.cli("results", "--follow", "--journal", str(journal))
    assert res.exit_code == 0, res.stderr

    res = sandbox.api.cli("cost", "--journal", str(journal), "-o", "json")  # the live type and count
    assert res.exit_code == 0, res.stderr
    live = res.json()["data"]
    assert (live["instance_type"], live["instances"], live["jobs"], live["failed"]) == ("ml.gu7i.c16m60.1-gu30", 2, JOBS, 0)
    assert live["hourly"] is None and live["total_cost"] is None  # no price given: none invented

    res = sandbox.api.cli("cost", "--journal", str(journal), "--instance-type", "ml.gu7i.c16m60.1-gu30",
                          "--price", "12", "--instances", "1", "-o", "json")
    data = res.json()["data"]
    # One estimated worker: every moment one of the two real workers ran a job, that job was sent
    # and not yet collected, so the estimate covers at least the jobs' run time over two workers.
    assert data["busy_seconds"] >= JOBS * JOB_SECONDS / 2
    assert data["latency"]["max"] >= JOB_SECONDS
    assert data["busy_seconds"] <= data["window_seconds"] + 1e-6
    assert data["total_cost"] == round(data["busy_seconds"] / 3600 * 12, 4)
