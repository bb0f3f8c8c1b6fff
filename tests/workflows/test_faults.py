"""Faults and bad input on the workflow commands, through the CLI against the emulators: a lost
answer never queues a job twice, long names from the server never block the queue, lost jobs are
reported and resubmitted, timeouts bound everything, bad paths are refused before any job is sent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pytest

from .conftest import WORKFLOW, Sandbox


def journal_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def events(path: Path, event: str) -> list[str]:
    return [r["task_id"] for r in journal_lines(path) if r["event"] == event]


@pytest.fixture
def queue(sandbox: Sandbox) -> Iterator[Any]:
    """The API service's queue emulator, emptied after the test (nothing carries over)."""
    queue = sandbox.stack.comfyui.queue(sandbox.api.name)
    yield queue
    sandbox.stack.eas.faults.clear()
    deadline = time.monotonic() + 10
    while len(queue.input) and time.monotonic() < deadline:  # let the workers finish what they hold
        time.sleep(0.02)
    queue.input.truncate(1 << 62)
    queue.sink.truncate(1 << 62)


def settled(queue: Any, count: int, timeout: float = 20) -> Counter[str]:
    """Once the workers have taken everything from the input queue: the task ids on the sink."""
    deadline = time.monotonic() + timeout
    while len(queue.input) or len(queue.sink) < count:
        assert time.monotonic() < deadline, (len(queue.input), len(queue.sink))
        time.sleep(0.02)
    return Counter(m.tags.get("task_id") for m in queue.sink.entries())


# -- item 9: a lost answer never duplicates a job --------------------------------------------------------
def test_a_dropped_answer_never_queues_a_job_twice(sandbox: Sandbox, queue: Any, tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    # The queue takes the job, then the connection is cut before the answer: three times.
    sandbox.stack.eas.faults.add(kind="drop_after", method="POST", path="/api_prompt$", times=3)
    res = sandbox.api.cli("submit", str(WORKFLOW), "--count", "10", "--journal", str(journal), "-o", "json")
    assert res.exit_code == 0, res.stdout + res.stderr
    task_ids = res.json()["data"]["task_ids"]
    assert settled(queue, 10) == {t: 1 for t in task_ids}  # each job queued exactly once
    unknown = res.json()["data"]["unknown"]
    assert len(unknown) == 3 and set(events(journal, "unknown")) == set(unknown)
    assert len(events(journal, "sent")) == 7
    # The task id settles it: their results arrive and --follow ends with one result each.
    follow = sandbox.api.cli("results", "--follow", "--timeout", "30s", "--journal", str(journal), "-o", "json")
    assert follow.exit_code == 0, follow.stdout + follow.stderr
    data = follow.json()["data"]
    assert sorted(r["task_id"] for r in data["written"]) == sorted(task_ids)
    assert data["unknown"] == [] and data["pending"] == [] and data["duplicates_skipped"] == 0


def test_a_connection_refused_before_sending_is_retried(sandbox: Sandbox, queue: Any, tmp_path: Path) -> None:
    """What provably did not arrive (the request never reached the handler: a 503) is sent again."""
    journal = tmp_path / "j.jsonl"
    sandbox.stack.eas.faults.add(kind="status", status=503, code="ServiceUnavailable", method="POST",
                                 path="/api_prompt$", times=2)
    res = sandbox.api.cli("submit", str(WORKFLOW), "--count", "3", "--journal", str(journal), "-o", "json")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert res.json()["data"]["unknown"] == [] and len(events(journal, "sent")) == 3
    assert settled(queue, 3) == {t: 1 for t in res.json()["data"]["task_ids"]}


# -- item 10: long names from the server never block the queue -------------------------------------------
LONG = "n" * 240  # with ComfyUI's "_00001_.png" the file name is past NAME_MAX (255 bytes)


def _fits(path: Path) -> bool:
    return all(len(part.encode()) <= 255 for part in path.parts)


def test_long_task_ids_and_output_names_are_stored_and_the_queue_moves_on(sandbox: Sandbox, queue: Any,
                                                                            tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    # Its other outputs get their own prefixes: two jobs in the same second must not share a file on the mount.
    long = sandbox.api.cli("submit", str(WORKFLOW), "--task-prefix", "t" * 300, "--set", f"9.inputs.filename_prefix={LONG}",
                           "--set", "15.inputs.filename_prefix=long-webp", "--set", "19.inputs.filename_prefix=long-video",
                           "--journal", str(journal), "-o", "json")
    assert long.exit_code == 0, long.stdout + long.stderr
    short = sandbox.api.cli("submit", str(WORKFLOW), "--task-prefix", "after", "--journal", str(journal), "-o", "json")
    assert short.exit_code == 0, short.stdout + short.stderr
    [long_id], [short_id] = long.json()["data"]["task_ids"], short.json()["data"]["task_ids"]
    res = sandbox.api.cli("results", "--follow", "--journal", str(journal), "--download", str(tmp_path / "dl"), "-o", "json")
    assert res.exit_code == 0, res.stdout + res.stderr
    written = {r["task_id"]: r for r in res.json()["data"]["written"]}
    assert set(written) == {long_id, short_id} and len(queue.sink) == 0
    stored = Path(written[long_id]["file"])
    assert _fits(stored) and json.loads(stored.read_text())["task_id"] == long_id  # the full id is kept inside
    files = written[long_id]["files"]
    assert len(files) == 3 and [Path(f["path"]).suffix for f in files if f["filename"].startswith(LONG)] == [".png"]
    for f in files:  # every output, the long-named one too, stored whole under a name that fits
        local = Path(f["path"])
        assert _fits(local) and local.read_bytes() == sandbox.output(sandbox.api, f["filename"])


def test_a_result_that_cannot_be_written_is_dead_lettered_and_committed(sandbox: Sandbox, queue: Any,
                                                                        tmp_path: Path) -> None:
    from eascomfy.workflows.journal import Journal

    journal = tmp_path / "j.jsonl"
    Journal(journal).result_path("blocked").mkdir(parents=True)  # a folder where its result file must go
    data = json.dumps([{"9": {"images": []}}]).encode()
    queue.sink.put(data, {"task_id": "blocked"})
    queue.sink.put(data, {"task_id": "after"})
    res = sandbox.api.cli("results", "--journal", str(journal), "-o", "json")
    assert res.exit_code == 1, res.stdout + res.stderr
    body = res.json()
    assert "1 task(s) put in the dead-letter file" in body["error"]["message"]
    assert [r["task_id"] for r in body["data"]["written"]] == ["after"]
    assert [d["task_id"] for d in body["data"]["dead"]] == ["blocked"]
    [letter] = journal_lines(tmp_path / "j.dead.jsonl")
    assert letter["task_id"] == "blocked" and json.loads(letter["data"]) == [{"9": {"images": []}}]
    assert "cannot write the result" in letter["reason"] and events(journal, "dead") == ["blocked"]
    assert len(queue.sink) == 0  # committed: the next run does not die on it again
    again = sandbox.api.cli("results", "--journal", str(journal), "-o", "json")
    assert again.exit_code == 0 and again.json()["data"]["written"] == []


def test_run_saves_every_output_when_one_name_is_too_long(sandbox: Sandbox, tmp_path: Path) -> None:
    res = sandbox.std.cli("run", str(WORKFLOW), "--set", f"9.inputs.filename_prefix={LONG}", "--out", str(tmp_path / "out"),
                          "-o", "json")
    assert res.exit_code == 0, res.stdout + res.stderr
    files = res.json()["data"]["files"]
    assert sorted(Path(f["path"]).suffix for f in files) == [".mp4", ".png", ".webp"]
    for f in files:
        local = Path(f["path"])
        assert _fits(local) and local.read_bytes() == sandbox.output(sandbox.std, f["filename"])
    assert not list((tmp_path / "out").glob("*.part"))


# -- item 11: lost jobs are reported, bounded and sent again -----------------------------------------------
def _service_env(sandbox: Sandbox) -> dict[str, str]:
    described = sandbox.describe(sandbox.api)
    return {**os.environ, "EASCOMFY_SERVICE_URL": described["endpoint"], "EASCOMFY_SERVICE_TOKEN": described["token"]}


def test_follow_waits_for_what_a_killed_submit_left_unconfirmed_and_resubmits_it(sandbox: Sandbox, queue: Any,
                                                                                 tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    # Five requests hang before the queue takes them; the other fifteen are queued. Then submit is killed.
    sandbox.stack.eas.faults.add(kind="slow", delay=60, method="POST", path="/api_prompt$", times=5)
    submit = subprocess.Popen([sys.executable, "-m", "eascomfy", "submit", str(WORKFLOW), "--count", "20", "--concurrency", "20",
                               "--journal", str(journal)], env=_service_env(sandbox), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, cwd=tmp_path)
    deadline = time.monotonic() + 30
    while len(queue.input) + len(queue.sink) < 15:
        assert submit.poll() is None and time.monotonic() < deadline, submit.stderr.read() if submit.stderr else ""
        time.sleep(0.02)
    submit.kill()
    submit.wait(10)
    sandbox.stack.eas.faults.clear()
    task_ids = events(journal, "submit")
    assert len(task_ids) == 20 and events(journal, "sent") == []  # killed before it knew anything

    # Before: --follow exited 0 at once, "0 pending". Now it reads the fifteen and waits for the five.
    res = sandbox.api.cli("results", "--follow", "--timeout", "3s", "--journal", str(journal), "-o", "json")
    assert res.exit_code == 5, res.stdout + res.stderr
    body = res.json()
    assert "--timeout: 5 task(s) still have no result after 3s" in body["error"]["message"]
    data = body["data"]
    assert len(data["written"]) == 15 and len(data["unconfirmed"]) == 5 and data["timed_out"] is True
    assert set(data["unconfirmed"]) | {r["task_id"] for r in data["written"]} == set(task_ids)
    lost = data["unconfirmed"]

    # Sent again on request, with the same task ids: the batch ends with one result per input.
    res = sandbox.api.cli("results", "--follow", "--resubmit-after", "1s", "--timeout", "60s", "--journal", str(journal),
                          "-o", "json")
    assert res.exit_code == 0, res.stdout + res.stderr
    data = res.json()["data"]
    assert sorted(data["resent"]) == sorted(r["task_id"] for r in data["written"]) == lost
    assert data["unconfirmed"] == [] and data["pending"] == [] and data["dead"] == []
    assert Counter(events(journal, "result")) == {t: 1 for t in task_ids}
    assert len(queue.sink) == 0 and len(queue.input) == 0


def test_a_task_that_never_returns_is_dead_lettered_after_its_tries(sandbox: Sandbox, queue: Any, tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    sandbox.stack.eas.faults.add(kind="drop", method="POST", path="/api_prompt$", times=-1)  # never reaches the queue
    res = sandbox.api.cli("submit", str(WORKFLOW), "--set", "3.inputs.seed=7", "--journal", str(journal), "-o", "json")
    assert res.exit_code == 0, res.stdout + res.stderr
    [task_id] = res.json()["data"]["unknown"]
    res = sandbox.api.cli("results", "--follow", "--resubmit-after", "0.3s", "--max-tries", "2", "--timeout", "30s",
                          "--journal", str(journal), "-o", "json")
    assert res.exit_code == 1, res.stdout + res.stderr
    data = res.json()["data"]
    assert data["resent"] == [task_id] and [d["task_id"] for d in data["dead"]] == [task_id]
    assert data["written"] == [] and data["unknown"] == [] and data["timed_out"] is False
    [letter] = journal_lines(tmp_path / "j.dead.jsonl")
    assert letter["task_id"] == task_id and letter["received"] is False and letter["tries"] == 2
    assert letter["workflow"] == str(WORKFLOW) and letter["overrides"] == ["3.inputs.seed=7"]
    assert "no result after 2 tries" in letter["reason"]
    assert events(journal, "resend") == [task_id] and events(journal, "dead") == [task_id]
    # Settled: a later --follow has nothing to wait for.
    again = sandbox.api.cli("results", "--follow", "--timeout", "5s", "--journal", str(journal), "-o", "json")
    assert again.exit_code == 0 and again.json()["data"]["written"] == []


def test_durations_are_checked_before_any_call(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.stack.eas.recorder.clear()
    for args, message in ((["--timeout", "0"], "--timeout: must be more than 0"),
                          (["--timeout", "-5"], "--timeout: must be more than 0"),
                          (["--resubmit-after", "5x"], "--resubmit-after: '5x' is not a duration"),
                          (["--follow", "--timeout", "10 years"], "--timeout: '10 years' is not a duration")):
        res = sandbox.api.cli("results", *args, "--journal", str(tmp_path / "j.jsonl"))
        assert res.exit_code == 2 and message in res.stderr, (args, res.stderr)
    assert sandbox.stack.eas.recorder.all() == []


# -- item 16: timeouts are checked first and bound the downloads ----------------------------------------
def test_zero_or_negative_run_timeouts_are_refused_before_any_call(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.stack.eas.recorder.clear()
    for value in ("-5", "0", "0s", "soon"):
        res = sandbox.std.cli("run", str(WORKFLOW), "--timeout", value, "--out", str(tmp_path))
        assert res.exit_code == 2 and "--timeout: " in res.stderr and "internal error" not in res.stderr, (value, res.stderr)
    assert sandbox.stack.eas.recorder.all() == []  # not even DescribeService


def test_run_timeout_bounds_an_endless_download(sandbox: Sandbox, tmp_path: Path) -> None:
    std = sandbox.describe(sandbox.std)
    env = {**os.environ, "EASCOMFY_SERVICE_URL": std["endpoint"], "EASCOMFY_SERVICE_TOKEN": std["token"]}
    sandbox.stack.eas.faults.add(kind="endless", method="GET", path=f"/{sandbox.std.name}/view$", times=1)
    out = tmp_path / "out"
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "eascomfy", "run", str(WORKFLOW), "--timeout", "4s", "--out", str(out)],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path)
    try:
        _, stderr = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("run --timeout 4s was still downloading after 30 s")
    assert proc.returncode == 5, stderr
    assert time.monotonic() - started < 15
    assert "--timeout: prompt" in stderr and "outputs were not all downloaded within 4 s" in stderr
    assert not list(out.rglob("*.part"))  # no partial file left behind


# -- items 18, 19: bad input is a clear error before any job is sent ---------------------------------------
def _nothing_sent(sandbox: Sandbox) -> list[str]:
    """What reached the services' endpoints (ComfyUI or the queue), not EAS's API."""
    return [f"{r.method} {r.path}" for r in sandbox.stack.eas.recorder.all() if r.path.startswith("/api/predict/")]


def test_workflows_that_are_folders_or_nested_too_deep_are_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    nested = tmp_path / "nested.json"
    flow = json.loads(WORKFLOW.read_text())
    value: Any = 0
    for _ in range(900):  # valid JSON, but copying it for --set overflowed the stack
        value = [value]
    flow["3"]["inputs"]["extra"] = value
    nested.write_text(json.dumps(flow))
    sandbox.stack.eas.recorder.clear()
    for path, code, message in ((tmp_path, 2, "is a folder, not a workflow file"),
                                (deep, 3, "nested too deeply to be a workflow"),
                                (nested, 3, "nested more than 64 levels deep")):
        for service, command in ((sandbox.std, "check"), (sandbox.std, "run"), (sandbox.api, "submit")):
            res = service.cli(command, str(path), "--set", "3.inputs.seed=1")
            assert res.exit_code == code and message in res.stderr, (command, path.name, res.stderr)
            assert "internal error" not in res.stderr
    assert _nothing_sent(sandbox) == []


def test_run_out_that_is_a_file_is_refused_before_the_job_is_sent(sandbox: Sandbox, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    before = sandbox.prompts_posted(sandbox.std)
    for out in (taken, taken / "sub"):
        res = sandbox.std.cli("run", str(WORKFLOW), "--out", str(out))
        assert res.exit_code == 2 and "--out: " in res.stderr and "is a file" in res.stderr, res.stderr
    assert sandbox.prompts_posted(sandbox.std) == before  # no GPU time spent on outputs that could not be saved
    res = sandbox.api.cli("results", "--download", str(taken), "--journal", str(tmp_path / "j.jsonl"))
    assert res.exit_code == 2 and "--download: " in res.stderr and "is a file" in res.stderr, res.stderr


def test_a_journal_that_is_a_folder_is_refused_before_anything_is_sent(sandbox: Sandbox, queue: Any, tmp_path: Path) -> None:
    sandbox.stack.eas.recorder.clear()
    for command in (["submit", str(WORKFLOW)], ["results"], ["results", "--follow"]):
        res = sandbox.api.cli(*command, "--journal", str(tmp_path))
        assert res.exit_code == 2, (command, res.stderr)
        assert f"--journal: {tmp_path}: is a folder, not a file" in res.stderr and "internal error" not in res.stderr
    assert not [r for r in _nothing_sent(sandbox) if r.startswith("POST")] and len(queue.input) == 0


def test_check_finds_dependency_cycles_and_nothing_is_sent(sandbox: Sandbox, tmp_path: Path) -> None:
    looped = tmp_path / "loop.json"
    flow = json.loads(WORKFLOW.read_text())
    flow["4"]["inputs"]["model_in"] = ["3", 0]  # the sampler's output feeds its own checkpoint loader
    flow["7"]["inputs"]["again"] = ["7", 0]  # a node that waits for itself
    looped.write_text(json.dumps(flow))
    res = sandbox.std.cli("check", "--offline", str(looped), "-o", "json")
    assert res.exit_code == 1, res.stdout + res.stderr
    cycles = sorted(p["message"].split(":")[0] for p in res.json()["data"]["problems"] if p["code"] == "cycle")
    assert cycles == ["dependency cycle 3 -> 4 -> 3", "dependency cycle 7 -> 7"], res.stdout
    before = sandbox.prompts_posted(sandbox.std)
    sandbox.stack.eas.recorder.clear()
    run = sandbox.std.cli("run", str(looped))
    assert run.exit_code == 1 and "nothing was sent" in run.stderr and "dependency cycle" in run.stderr
    submit = sandbox.api.cli("submit", str(looped), "--journal", str(tmp_path / "j.jsonl"))
    assert submit.exit_code == 1 and "the graph is broken; nothing was sent" in submit.stderr
    assert sandbox.prompts_posted(sandbox.std) == before and not [r for r in _nothing_sent(sandbox) if r.startswith("POST")]


# -- item 22: the matrix reaches the prompt the queue delivered, not only the journal ---------------------
def test_submit_matrix_values_are_in_the_prompts_the_queue_delivered(sandbox: Sandbox, queue: Any, tmp_path: Path) -> None:
    emulator = sandbox.stack.comfyui.comfyui(sandbox.api.name)
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text('- {"3.inputs.seed": 424201, "6.inputs.text": "a red rocket"}\n'
                      '- ["3.inputs.seed=424202", "6.inputs.text=a blue boat"]\n')
    res = sandbox.api.cli("submit", str(WORKFLOW), "--matrix", str(matrix), "--set", "3.inputs.steps=7",
                          "--journal", str(tmp_path / "j.jsonl"), "-o", "json")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert set(settled(queue, 2)) == set(res.json()["data"]["task_ids"])
    # What ComfyUI behind the queue ran: the body each worker took from the input queue.
    ran = sorted((p["3"]["inputs"]["seed"], p["6"]["inputs"]["text"], p["3"]["inputs"]["steps"])
                 for p in (entry["prompt"][2] for entry in list(emulator.history.values()))
                 if p["3"]["inputs"]["seed"] in (424201, 424202))
    assert ran == [(424201, "a red rocket", 7), (424202, "a blue boat", 7)]
