"""A fault at every step of deploy, models push, submit and results (issue 11, closing paragraph).

For each command, a clean run is recorded first; every distinct request it made (an EAS API
action, an OSS action, a call to the service's queue) is a step. Then, for each step and each
fault (``drop_after``: the server acted and the answer was lost; ``drop``: the connection was cut
before it acted; a 500), the command runs with that fault on that step's first request, and once
more without faults. Checked each time:

- the faulted run ends with a documented exit code and no internal error or traceback;
- the final state is right after the clean re-run: the service's config is the spec's (``plan``
  shows no change), the object's CRC-64 is the file's and no multipart upload is left, every task
  has exactly one result and the sink and the input queue are empty;
- nothing is duplicated: one service, one object, no task result twice.

Push and submit are also SIGKILLed as subprocesses at a few points, then re-run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from eascomfy.crc64 import crc64
from eascomfy.sandbox.eas import Timings
from eascomfy.sandbox.server import RecordedRequest
from eascomfy.sandbox.stack import SandboxStack
from tests.conftest import TESTS, Result, clean_emulators, run_cli, stack_environment, wait_until

REGION = "cn-hangzhou"
BUCKET = "fault-data"
FAST = Timings(creating=0.05, updating=0.05, ready=0.05, stopping=0.05, starting=0.05, deleting=0.05)
WORKFLOW = TESTS / "fixtures" / "seed-workflow.api.json"
DOCUMENTED = {0, 1, 2, 3, 4, 5, 6, 130}
FAULTS = ("drop_after", "drop", "status")
MOUNTED = ("models/checkpoints/LandscapeBING_v10.safetensors", "models/checkpoints/svd_xt.safetensors",
           "custom_nodes/ComfyUI-VideoHelperSuite/__init__.py")


@dataclass
class Stack:
    stack: SandboxStack
    env: dict[str, str]
    root: Path
    api: Path  # the deployed API-edition service's spec folder

    def __repr__(self) -> str:
        return "Stack(...)"


def _spec(where: Path, name: str, edition: str) -> Path:
    res = run_cli("init", str(where), "--name", name, "--region", REGION, "--edition", edition,
                  "--oss", f"oss://{BUCKET}/{name}/", "--image-version", "1.9")
    assert res.exit_code == 0, res.stderr
    return where


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("faults")
    with SandboxStack(root / "state", timings=FAST, region=REGION, job_seconds=0.02) as stack:
        stack.oss.create_bucket(BUCKET, region=REGION)
        for key in MOUNTED:  # what the seed workflow needs on the API service's mount
            stack.oss.put_object(BUCKET, "fm_api/" + key, b"# stand-in\n")
        with stack_environment(stack, root) as env:
            api = _spec(root / "fm_api", "fm_api", "api")
            res = run_cli("deploy", "--timeout", "30", cwd=api)
            assert res.exit_code == 0, res.stderr
            yield Stack(stack, env, root, api)


@pytest.fixture(autouse=True)
def _clean(world: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    clean_emulators((world.stack.eas, world.stack.oss), world.stack.comfyui,
                    job_seconds=world.stack.job_seconds, services=("fm_api",), queues=("fm_api",))


# -- steps and faults ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    server: str  # "eas" or "oss"
    method: str
    path: str
    action: str | None

    def __str__(self) -> str:
        return f"{self.server}:{self.action or self.method + ' ' + self.path}"


def steps(world: Stack, records: dict[str, list[RecordedRequest]]) -> list[Step]:
    """The distinct requests of a clean run, in order (an action, or a call to the service)."""
    seen: dict[Step, None] = {}
    for server, items in records.items():
        for r in items:
            if r.path.startswith("/_sandbox/"):
                continue
            path = r.path if r.action is None else ""
            seen.setdefault(Step(server, r.method, path, r.action), None)
    return list(seen)


def inject(world: Stack, step: Step, kind: str) -> None:
    server = world.stack.eas if step.server == "eas" else world.stack.oss
    server.faults.add(kind=kind, status=500, code="InternalError", method=step.method, action=step.action,
                      path=("^" + re.escape(step.path) + "$") if step.path else None, times=1)


def record(world: Stack) -> dict[str, list[RecordedRequest]]:
    return {"eas": world.stack.eas.recorder.all(), "oss": world.stack.oss.recorder.all()}


def reset(world: Stack) -> None:
    for server in (world.stack.eas, world.stack.oss):
        server.faults.clear()
        server.recorder.clear()


def sane(res: Result, what: str) -> None:
    shown = f"{what} -> {res.exit_code}\nstdout: {res.stdout[-1500:]}\nstderr: {res.stderr[-1500:]}"
    assert res.exit_code in DOCUMENTED, shown
    assert "internal error" not in res.stdout + res.stderr, shown
    assert "Traceback (most recent call last)" not in res.stdout + res.stderr, shown


def matrix(world: Stack, clean: Callable[[], Any], faulted: Callable[[Step, str], None]) -> list[str]:
    """Record a clean run, then call ``faulted(step, kind)`` for every step and fault."""
    reset(world)
    clean()
    found = steps(world, record(world))
    assert found, "the clean run made no request"
    done = []
    for step in found:
        for kind in FAULTS:
            reset(world)
            faulted(step, kind)
            done.append(f"{step}/{kind}")
    return done


# -- deploy: create and update -----------------------------------------------------------------------------
def _no_changes(where: Path) -> None:
    plan = run_cli("plan", "--detailed-exitcode", "-o", "json", cwd=where)
    assert plan.exit_code == 0, plan.stdout + plan.stderr  # the live config is the spec's


def test_deploy_create_survives_a_fault_at_every_step(world: Stack) -> None:
    counter = iter(range(1000))

    def fresh() -> Path:
        n = next(counter)
        return _spec(world.root / f"fm_new_{n}", f"fm_new_{n}", "standard")

    def faulted(step: Step, kind: str) -> None:
        where = fresh()
        inject(world, step, kind)
        first = run_cli("deploy", "--timeout", "30", cwd=where)
        sane(first, f"deploy (create) with {kind} at {step}")
        world.stack.eas.faults.clear()
        again = run_cli("deploy", "--timeout", "30", cwd=where)
        sane(again, f"deploy again after {kind} at {step}")
        assert again.exit_code == 0, f"{kind} at {step}: " + again.stderr
        _no_changes(where)
        name = where.name
        assert world.stack.eas.get_service(name) is not None

    done = matrix(world, lambda: run_cli("deploy", "--timeout", "30", cwd=fresh()), faulted)
    assert any(d.startswith("eas:CreateService/") for d in done), done


def test_deploy_update_survives_a_fault_at_every_step(world: Stack) -> None:
    where = _spec(world.root / "fm_upd", "fm_upd", "standard")
    assert run_cli("deploy", "--timeout", "30", cwd=where).exit_code == 0
    text = (where / "eascomfy.yaml").read_text()
    counter = iter(range(1000))

    def change() -> None:  # every run has an update to make: a new env value (UpdateService)
        (where / "eascomfy.yaml").write_text(text.replace("# env: {TZ: Asia/Shanghai}", f"env: {{RUN: r{next(counter)}}}"))

    def clean() -> None:
        change()
        assert run_cli("deploy", "--timeout", "30", cwd=where).exit_code == 0

    def faulted(step: Step, kind: str) -> None:
        change()
        inject(world, step, kind)
        sane(run_cli("deploy", "--timeout", "30", cwd=where), f"deploy (update) with {kind} at {step}")
        world.stack.eas.faults.clear()
        again = run_cli("deploy", "--timeout", "30", cwd=where)
        sane(again, f"deploy again after {kind} at {step}")
        assert again.exit_code == 0, f"{kind} at {step}: " + again.stderr
        _no_changes(where)

    done = matrix(world, clean, faulted)
    assert any(d.startswith("eas:UpdateService/") for d in done), done


# -- models push ----------------------------------------------------------------------------------------------
def _push_spec(world: Stack) -> Path:
    spec = world.root / "push.yaml"
    spec.write_text(f"name: fm_push\nregion: {REGION}\nedition: api\nstorage:\n  oss: oss://{BUCKET}/push/\n")
    return spec


def _model(world: Stack, n: int) -> Path:
    path = world.root / f"model_{n}.safetensors"
    path.write_bytes(os.urandom(2 * 1024 * 1024 + 4321))
    return path


def _pushed_right(world: Stack, model: Path) -> None:
    key = f"push/models/checkpoints/{model.name}"
    assert world.stack.oss.object_info(BUCKET, key)["crc64"] == crc64(model.read_bytes())
    assert world.stack.oss.list_keys(BUCKET, key) == [key]  # one object
    assert [u for u in world.stack.oss.multipart_uploads(BUCKET) if u["key"] == key] == []  # none left behind


def _push(spec: Path, model: Path) -> Result:
    return run_cli("models", "push", str(model), "--kind", "checkpoints", "-f", str(spec), "--part-size", "1")


def test_models_push_survives_a_fault_at_every_step(world: Stack) -> None:
    spec = _push_spec(world)
    counter = iter(range(1000))

    def faulted(step: Step, kind: str) -> None:
        model = _model(world, next(counter))
        inject(world, step, kind)
        sane(_push(spec, model), f"models push with {kind} at {step}")
        world.stack.oss.faults.clear()
        again = _push(spec, model)
        sane(again, f"models push again after {kind} at {step}")
        assert again.exit_code == 0, f"{kind} at {step}: " + again.stderr
        _pushed_right(world, model)

    done = matrix(world, lambda: _push(spec, _model(world, next(counter))), faulted)
    assert any("UploadPart" in d for d in done) and any("CompleteMultipartUpload" in d for d in done), done


def _cli(*args: str, cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "eascomfy", *args], env=dict(os.environ), cwd=cwd,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not ready():
        assert proc.poll() is None, f"ended before {what}: " + (proc.stderr.read().decode() if proc.stderr else "")
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


@pytest.mark.parametrize("point", ["InitiateMultipartUpload", "UploadPart", "CompleteMultipartUpload"])
def test_models_push_killed_then_run_again_stores_the_file_once(world: Stack, point: str) -> None:
    spec = _push_spec(world)
    model = _model(world, 900 + ["InitiateMultipartUpload", "UploadPart", "CompleteMultipartUpload"].index(point))
    oss = world.stack.oss
    oss.faults.add(kind="slow", delay=30, action=point, times=1)  # it hangs there; then the CLI is killed
    proc = _cli("models", "push", str(model), "--kind", "checkpoints", "-f", str(spec), "--part-size", "1", cwd=world.root)
    _kill_when(proc, lambda: any(r.action == point for r in oss.recorder.all()), point)
    oss.faults.clear()
    again = _push(spec, model)
    sane(again, f"models push after a SIGKILL at {point}")
    assert again.exit_code == 0, again.stderr
    _pushed_right(world, model)


# -- submit and results --------------------------------------------------------------------------------------
def _events(journal: Path, event: str) -> list[str]:
    return [r["task_id"] for r in map(json.loads, journal.read_text().splitlines()) if r.get("event") == event]


def _settle(world: Stack, journal: Path, *, expect: list[str], written_before: list[str] = ()) -> list[str]:
    """``results --follow`` (sending again what never arrived) until every task has one result;
    returns the tasks it reports as never sent (a refused request: submit said so, exit 1)."""
    res = run_cli("results", "--follow", "--resubmit-after", "2s", "--timeout", "60s", "--journal", str(journal),
                  "-o", "json", cwd=world.api)
    sane(res, "results --follow")
    assert res.exit_code == 0, res.stdout + res.stderr
    data = res.json()["data"]
    written = list(written_before) + [r["task_id"] for r in data["written"]]
    not_sent = data["not_sent"]
    assert Counter(written) == {t: 1 for t in expect if t not in not_sent}, (written, expect)  # each exactly once
    assert set(not_sent) <= set(expect) and not set(not_sent) & set(written)  # reported, never lost silently
    assert data["duplicates_skipped"] == 0 and data["dead"] == [] and data["pending"] == []
    assert Counter(_events(journal, "result")) == Counter(written)
    queue = world.stack.comfyui.queue("fm_api")
    assert len(queue.input) == 0 and len(queue.sink) == 0  # nothing left over, nothing to run twice
    return not_sent


def test_submit_survives_a_fault_at_every_step(world: Stack) -> None:
    counter = iter(range(1000))

    def submit(journal: Path) -> Result:
        return run_cli("submit", str(WORKFLOW), "--count", "3", "--journal", str(journal), "-o", "json", cwd=world.api)

    def faulted(step: Step, kind: str) -> None:
        journal = world.root / f"submit_{next(counter)}.jsonl"
        inject(world, step, kind)
        first = submit(journal)
        sane(first, f"submit with {kind} at {step}")
        world.stack.eas.faults.clear()
        not_sent = _settle(world, journal, expect=_events(journal, "submit"))
        assert not not_sent or first.exit_code == 1, f"{kind} at {step}: tasks not sent, yet submit exited 0"

    reset(world)
    journal = world.root / "record.jsonl"
    assert submit(journal).exit_code == 0
    found = [s for s in steps(world, record(world)) if s.server == "eas"]
    _settle(world, journal, expect=_events(journal, "submit"))
    assert any(s.method == "POST" for s in found), found
    for step in found:
        for kind in FAULTS:
            reset(world)
            faulted(step, kind)


@pytest.mark.parametrize("after", [1, 3])
def test_submit_killed_after_some_jobs_then_results_settles_each_once(world: Stack, after: int) -> None:
    journal = world.root / f"killed_{after}.jsonl"
    eas = world.stack.eas
    eas.faults.add(kind="slow", delay=0.3, method="POST", path="/api_prompt$", times=-1)
    proc = _cli("submit", str(WORKFLOW), "--count", "5", "--concurrency", "1", "--journal", str(journal), cwd=world.api)
    _kill_when(proc, lambda: sum(r.method == "POST" and r.path.endswith("/api_prompt") for r in eas.recorder.all()) >= after,
               f"{after} jobs sent")
    eas.faults.clear()
    submitted = _events(journal, "submit")
    assert submitted, "the journal records the batch before anything is sent"
    _settle(world, journal, expect=submitted)


def test_results_survives_a_fault_at_every_step(world: Stack) -> None:
    counter = iter(range(1000))
    queue = world.stack.comfyui.queue("fm_api")

    def batch() -> tuple[Path, list[str]]:
        journal = world.root / f"results_{next(counter)}.jsonl"
        res = run_cli("submit", str(WORKFLOW), "--count", "2", "--journal", str(journal), "-o", "json", cwd=world.api)
        assert res.exit_code == 0, res.stderr
        ids = res.json()["data"]["task_ids"]
        wait_until(lambda: len(queue.input) == 0 and len(queue.sink) >= len(ids), what="the jobs' results on the sink")
        return journal, ids

    def results(journal: Path) -> Result:
        return run_cli("results", "--idle", "0.3", "--journal", str(journal), "-o", "json", cwd=world.api)

    journal, ids = batch()
    reset(world)
    assert results(journal).exit_code == 0
    found = [s for s in steps(world, record(world)) if s.server == "eas"]
    assert found
    for step in found:
        for kind in FAULTS:
            journal, ids = batch()
            reset(world)
            inject(world, step, kind)
            first = results(journal)
            sane(first, f"results with {kind} at {step}")
            before = [r["task_id"] for r in first.json()["data"]["written"]] if first.stdout.strip() else []
            world.stack.eas.faults.clear()
            _settle(world, journal, expect=ids, written_before=before)


def test_a_lost_answer_to_the_upload_start_leaves_no_upload_behind(world: Stack) -> None:
    """OSS started an upload whose id never reached the client (the answer was cut); the retried
    start made a second one. The object is stored from the second; the first is aborted."""
    spec = _push_spec(world)
    model = _model(world, 950)
    world.stack.oss.faults.add(kind="drop_after", action="InitiateMultipartUpload", times=1)
    res = _push(spec, model)
    assert res.exit_code == 0, res.stderr
    assert [r.action for r in world.stack.oss.recorder.all()].count("InitiateMultipartUpload") == 2
    _pushed_right(world, model)
