"""`eascomfy submit` and `eascomfy results` against the API-edition sandbox: the queue emulator and the
unmodified eas-prediction SDK; exactly-once results across a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import wait_until

from .conftest import BUCKET, WORKFLOW, Sandbox

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from eas_prediction import QueueClient


def journal_lines(path: Path) -> list[dict[str, Any]]:
    """The journal's complete records: a line without its newline may still be being written by
    a running ``results``, and one cut short by a SIGKILL stays behind (the journal starts the next
    record on a fresh line), as eascomfy's own reader has it."""
    records = []
    for line in path.read_text().splitlines(keepends=True):
        if not line.endswith("\n") or not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def results_of(path: Path) -> Counter[str]:
    return Counter(r["task_id"] for r in journal_lines(path) if r["event"] == "result")


@pytest.fixture
def sink(sandbox: Sandbox) -> Iterator[QueueClient]:
    described = sandbox.describe(sandbox.api)
    host = described["endpoint"].split("/api/predict/")[0]
    client = QueueClient(host, f"{sandbox.api.name}/sink")
    client.set_token(described["token"])
    client.init()
    yield client
    client.destroy()
    sandbox.stack.comfyui.queue(sandbox.api.name).sink.truncate(1 << 62)


def test_submit_then_results_downloads_outputs_from_the_mount(sandbox: Sandbox, tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text('- {"3.inputs.seed": 1, "6.inputs.text": "a red rocket"}\n- ["3.inputs.seed=2"]\n')
    res = sandbox.api.cli("submit", str(WORKFLOW), "--matrix", str(matrix), "--journal", str(journal), "-o", "json")
    assert res.exit_code == 0, res.stdout + res.stderr
    task_ids = res.json()["data"]["task_ids"]
    assert len(task_ids) == 2 and all(t.startswith("seed-workflow.api-") for t in task_ids)
    lines = journal_lines(journal)
    assert lines[0]["event"] == "submit_started" and lines[-1] == {**lines[-1], "event": "submit_done", "run": lines[0]["run"]}
    events = [(r["event"], r["task_id"]) for r in lines[1:-1]]
    assert events == [("submit", t) for t in task_ids] + [("sent", t) for t in task_ids]
    assert lines[1]["overrides"] == ["3.inputs.seed=1", '6.inputs.text="a red rocket"']

    res = sandbox.api.cli("results", "--follow", "--journal", str(journal), "--download", str(tmp_path / "dl"), "-o", "json")
    assert res.exit_code == 0, res.stdout + res.stderr
    data = res.json()["data"]
    assert sorted(r["task_id"] for r in data["written"]) == sorted(task_ids) and data["pending"] == []
    for written in data["written"]:
        files = {Path(f["path"]).suffix: Path(f["path"]) for f in written["files"]}
        assert set(files) == {".png", ".webp", ".mp4"}
        for suffix, local in files.items():
            assert local.parent == tmp_path / "dl" / written["task_id"]
            assert local.read_bytes() == sandbox.output(sandbox.api, local.name)
        stored = json.loads(Path(written["file"]).read_text())
        assert stored["ok"] is True and stored["tags"]["task_id"] == written["task_id"]
    # Everything is in: a second run finds nothing and exits at once.
    again = sandbox.api.cli("results", "--follow", "--journal", str(journal), "-o", "json")
    assert again.exit_code == 0 and again.json()["data"]["written"] == []


def test_200_jobs_each_result_written_exactly_once_across_a_sigkill(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.stack.comfyui.comfyui(sandbox.api.name).job_seconds = 0.01
    journal = tmp_path / "j.jsonl"
    res = sandbox.api.cli("submit", str(WORKFLOW), "--count", "200", "--journal", str(journal), "-o", "json")
    assert res.exit_code == 0, res.stderr
    task_ids = set(res.json()["data"]["task_ids"])
    assert len(task_ids) == 200
    described = sandbox.describe(sandbox.api)
    env = {**os.environ, "EASCOMFY_SERVICE_URL": described["endpoint"], "EASCOMFY_SERVICE_TOKEN": described["token"]}
    command = [sys.executable, "-m", "eascomfy", "results", "--follow", "--journal", str(journal)]
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    deadline = time.monotonic() + 30
    while sum(results_of(journal).values()) < 60:
        assert first.poll() is None and time.monotonic() < deadline, first.stderr.read() if first.stderr else ""
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert 0 < sum(results_of(journal).values()) < 200
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    counts = results_of(journal)
    assert set(counts) == task_ids and set(counts.values()) == {1}
    assert len(list((tmp_path / "j.results").glob("*.json"))) == 200
    queue = sandbox.stack.comfyui.queue(sandbox.api.name)
    assert len(queue.sink) == 0 and len(queue.input) == 0
    assert described["token"] not in second.stderr


def test_a_result_stored_but_not_committed_is_committed_and_skipped_next_time(sandbox: Sandbox, tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    assert sandbox.api.cli("submit", str(WORKFLOW), "--journal", str(journal)).exit_code == 0
    sandbox.stack.eas.faults.add(kind="status", status=500, method="PUT", path="/sink$", times=-1)
    res = sandbox.api.cli("results", "--follow", "--journal", str(journal))
    assert res.exit_code == 4 and "commit sink entry" in res.stderr
    sandbox.stack.eas.faults.clear()
    assert sum(results_of(journal).values()) == 1
    res = sandbox.api.cli("results", "--journal", str(journal), "-o", "json")
    assert res.exit_code == 0, res.stdout
    assert res.json()["data"]["duplicates_skipped"] == 1 and res.json()["data"]["written"] == []
    assert sum(results_of(journal).values()) == 1
    assert len(sandbox.stack.comfyui.queue(sandbox.api.name).sink) == 0


def test_failed_jobs_are_reported_with_comfyuis_error(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.stack.comfyui.comfyui(sandbox.api.name).fail("VHS_VideoCombine", "CUDA out of memory", "torch.OutOfMemoryError")
    journal = tmp_path / "j.jsonl"
    assert sandbox.api.cli("submit", str(WORKFLOW), "--journal", str(journal), "--task-prefix", "oom").exit_code == 0
    assert sandbox.api.cli("submit", str(WORKFLOW), "--journal", str(journal), "--task-prefix", "nomodel",
                           "--set", "4.inputs.ckpt_name=gone.safetensors").exit_code == 0
    res = sandbox.api.cli("results", "--follow", "--journal", str(journal), "-o", "json")
    assert res.exit_code == 1
    errors = {r["task_id"].split("-")[0]: r["error"] for r in res.json()["data"]["written"]}
    assert errors["oom"] == "node 19 (VHS_VideoCombine) failed: torch.OutOfMemoryError: CUDA out of memory"
    assert errors["nomodel"].startswith("Prompt outputs failed validation; node 4 (CheckpointLoaderSimple): Value not in list")
    token = sandbox.describe(sandbox.api)["token"]
    sandbox.stack.comfyui.comfyui(sandbox.api.name).clear_failures()
    for args in (["-v", "results", "--journal", str(journal)], ["-v", "submit", str(WORKFLOW), "--journal", str(journal)],
                 ["-v", "results", "--follow", "--journal", str(journal)]):
        verbose = sandbox.api.cli(*args)
        assert verbose.exit_code == 0, verbose.stderr
        assert token not in verbose.stdout + verbose.stderr


def test_result_names_escaping_the_download_folder_are_refused(sandbox: Sandbox, sink: QueueClient, tmp_path: Path) -> None:
    sandbox.stack.oss.put_object(BUCKET, "comfyui/output/fine.png", b"png")
    data = [{"9": {"images": [{"filename": "../../evil.png", "subfolder": "", "type": "output"},
                              {"filename": "fine.png", "subfolder": "", "type": "output"}]}}]
    sink.put(json.dumps(data).encode(), tags={"task_id": "hostile"})
    res = sandbox.api.cli("results", "--journal", str(tmp_path / "j.jsonl"), "--download", str(tmp_path / "dl"), "-o", "json")
    assert res.exit_code == 1 and res.json()["data"]["refused"] == ["../../evil.png"]
    assert (tmp_path / "dl" / "hostile" / "fine.png").read_bytes() == b"png"
    assert not (tmp_path / "evil.png").exists() and not (tmp_path / "dl" / "evil.png").exists()
    assert len(sandbox.stack.comfyui.queue(sandbox.api.name).sink) == 0  # recorded and committed


def test_follow_started_before_submit_waits_for_the_whole_run(sandbox: Sandbox, tmp_path: Path) -> None:
    """A follower reading the journal between a chunk's `submit` lines and their `sent` lines must not
    take "every sent task has a result" for the end while the submit is still running."""
    from eascomfy.workflows.journal import Journal

    journal = tmp_path / "j.jsonl"
    Journal(journal).append([
        {"event": "submit_started", "run": "r1", "pid": os.getpid()},
        {"event": "submit", "task_id": "not-yet-sent"},
    ])
    described = sandbox.describe(sandbox.api)
    env = {**os.environ, "EASCOMFY_SERVICE_URL": described["endpoint"], "EASCOMFY_SERVICE_TOKEN": described["token"]}
    follower = subprocess.Popen([sys.executable, "-m", "eascomfy", "results", "--follow", "--journal", str(journal)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    time.sleep(1.5)
    assert follower.poll() is None, "the follower gave up while a submit run was open"
    res = sandbox.api.cli("submit", str(WORKFLOW), "--count", "3", "--journal", str(journal), "-o", "json")
    assert res.exit_code == 0, res.stderr
    Journal(journal).append([{"event": "send_failed", "task_id": "not-yet-sent"}, {"event": "submit_done", "run": "r1"}])
    assert follower.wait(60) == 0, follower.stderr.read() if follower.stderr else ""
    assert set(results_of(journal)) == set(res.json()["data"]["task_ids"])


def test_results_idle_bounds_how_long_a_drain_waits(sandbox: Sandbox, tmp_path: Path) -> None:
    emulator = sandbox.stack.comfyui.comfyui(sandbox.api.name)
    queue = sandbox.stack.comfyui.queue(sandbox.api.name)
    journal = tmp_path / "j.jsonl"
    assert sandbox.api.cli("submit", str(WORKFLOW), "--journal", str(journal)).exit_code == 0
    wait_until(lambda: len(queue.sink) == 1, what="the first job's result in the sink")
    emulator.job_seconds = 3.0  # the second job runs well past a quick drain, even on a slow machine
    assert sandbox.api.cli("submit", str(WORKFLOW), "--journal", str(journal)).exit_code == 0
    quick = sandbox.api.cli("results", "--idle", "0.3", "--journal", str(journal), "-o", "json")
    assert quick.exit_code == 0, quick.stdout
    data = quick.json()["data"]
    assert (len(data["written"]), len(data["pending"])) == (1, 1), data
    patient = sandbox.api.cli("results", "--idle", "6", "--journal", str(journal), "-o", "json")
    assert len(patient.json()["data"]["written"]) == 1 and patient.json()["data"]["pending"] == []
