"""`eascomfy run` (synchronous) and `eascomfy check` against the Standard-edition sandbox."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from tests.conftest import run_cli

from .conftest import WORKFLOW, Sandbox, workflow


def test_the_guides_workflow_runs_and_its_three_outputs_arrive_intact(sandbox: Sandbox, tmp_path: Path) -> None:
    res = sandbox.std.cli("run", str(WORKFLOW), "--out", str(tmp_path / "out"), "-o", "json")
    assert res.exit_code == 0, res.stderr
    data = res.json()["data"]
    assert data["status"] == "success" and data["refused"] == []
    files = {f["node"]: f for f in data["files"]}
    assert sorted(files, key=int) == ["9", "15", "19"]
    suffixes = {node: Path(f["path"]).suffix for node, f in files.items()}
    assert suffixes == {"9": ".png", "15": ".webp", "19": ".mp4"}
    for f in files.values():
        local = Path(f["path"])
        assert local.parent == tmp_path / "out"
        assert local.read_bytes() == sandbox.output(sandbox.std, f["filename"]) and f["size"] == local.stat().st_size
    assert not list((tmp_path / "out").glob("*.part"))


def test_progress_is_shown_and_set_changes_inputs(sandbox: Sandbox, tmp_path: Path) -> None:
    emulator = sandbox.stack.comfyui.comfyui(sandbox.std.name)
    res = sandbox.std.cli("run", str(WORKFLOW), "--out", str(tmp_path), "--set", "3.inputs.steps=8",
                          "--set", '9.inputs.filename_prefix="set/check"', "--set", "Empty Latent.inputs.width=512")
    assert res.exit_code == 0, res.stderr
    assert "running node 3 (K Sampler)" in res.stderr and "step 8/8" in res.stderr
    [entry] = [e for e in emulator.history.values() if e["prompt"][2]["9"]["inputs"]["filename_prefix"] == "set/check"]
    prompt = entry["prompt"][2]
    assert (prompt["3"]["inputs"]["steps"], prompt["5"]["inputs"]["width"]) == (8, 512)
    assert [p.name for p in (tmp_path / "set").iterdir()] == [entry["outputs"]["9"]["images"][0]["filename"]]


def test_set_typos_get_did_you_mean_and_nothing_is_sent(sandbox: Sandbox) -> None:
    before = sandbox.prompts_posted(sandbox.std)
    res = sandbox.std.cli("run", str(WORKFLOW), "--set", "3.inputs.sed=1")
    assert res.exit_code == 2 and "has no input 'sed'" in res.stderr and "did you mean 'seed'?" in res.stderr
    res = sandbox.std.cli("run", str(WORKFLOW), "--set", "K Sampler.inputs.seed=1")
    assert res.exit_code == 2 and "2 nodes are titled 'K Sampler'" in res.stderr
    res = sandbox.std.cli("check", str(WORKFLOW), "--set", "30.inputs.seed=1")
    assert res.exit_code == 2 and "no node '30'" in res.stderr and "did you mean" in res.stderr
    res = sandbox.std.cli("submit", str(WORKFLOW), "--set", "3.seed=1")
    assert res.exit_code == 2 and "expected NODE.inputs.FIELD=VALUE" in res.stderr
    assert sandbox.prompts_posted(sandbox.std) == before


def test_missing_model_and_custom_node_are_caught_before_any_job_is_sent(sandbox: Sandbox, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(workflow(**{"18.ckpt_name": "svd_xt_1_1.safetensors"})))
    before = sandbox.prompts_posted(sandbox.bare)
    res = sandbox.bare.cli("check", str(broken), "-o", "json")
    assert res.exit_code == 1, res.stdout + res.stderr
    body = res.json()
    assert "object_info" in body["data"]["checked"] and "storage" in body["data"]["checked"]
    problems = {(p["node"], p["code"]): p for p in body["data"]["problems"]}
    assert set(problems) == {("18", "missing_model"), ("19", "missing_node")}
    model, node = problems[("18", "missing_model")], problems[("19", "missing_node")]
    assert model["title"] == "Checkpoint Loader (Image Only)" and "models/checkpoints/" in model["message"]
    assert "eascomfy models push svd_xt_1_1.safetensors --kind checkpoints" in model["hint"]
    assert node["title"] == "Combine to Video" and "VHS_VideoCombine" in node["message"]
    assert "ComfyUI-VideoHelperSuite" in node["hint"]

    text = sandbox.bare.cli("check", str(broken))
    assert text.exit_code == 1
    assert "node 18 (Checkpoint Loader (Image Only)) input 'ckpt_name': model 'svd_xt_1_1.safetensors'" in text.stdout
    assert "node 19 (Combine to Video): node type VHS_VideoCombine is not installed" in text.stdout

    run = sandbox.bare.cli("run", str(broken))
    assert run.exit_code == 1 and "nothing was sent" in run.stderr and "node 19 (Combine to Video)" in run.stderr
    assert sandbox.prompts_posted(sandbox.bare) == before


def test_check_from_the_mount_for_the_api_edition_and_offline(sandbox: Sandbox, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(workflow(**{"4.ckpt_name": "svd_xt.safetensors", "18.ckpt_name": "nope.ckpt"})))
    res = sandbox.api.cli("check", str(broken), "-o", "json")
    assert res.exit_code == 1
    data = res.json()["data"]
    assert data["edition"] == "api" and data["checked"] == ["format", "graph", "edition", "storage"]
    assert [(p["node"], p["code"]) for p in data["problems"]] == [("18", "missing_model")]
    assert sandbox.api.cli("check", str(WORKFLOW)).exit_code == 0

    bad_link = tmp_path / "links.json"
    flow = workflow(**{"8.samples": ["99", 0]})
    flow["14"]["inputs"]["vae"] = ["18", 7]
    bad_link.write_text(json.dumps(flow))
    offline = run_cli("check", str(bad_link), "-o", "json", cwd=tmp_path)
    assert offline.exit_code == 1 and offline.json()["data"]["checked"] == ["format", "graph"]
    assert [(p["node"], p["input"]) for p in offline.json()["data"]["problems"]] == [("8", "samples")]
    online = sandbox.std.cli("check", str(bad_link), "-o", "json")
    assert {(p["node"], p["input"]) for p in online.json()["data"]["problems"]} == {("8", "samples"), ("14", "vae")}
    assert "has 3 outputs" in online.stdout


def test_ui_format_is_refused_everywhere_without_a_request(sandbox: Sandbox, tmp_path: Path) -> None:
    ui = tmp_path / "ui.json"
    ui.write_text(json.dumps({"last_node_id": 2, "nodes": [{"id": 1, "type": "KSampler"}], "links": []}))
    sandbox.stack.eas.recorder.clear()
    for command in ("check", "run", "submit"):
        service = sandbox.api if command == "submit" else sandbox.std
        res = service.cli(command, str(ui))
        assert res.exit_code == 3, (command, res.stderr)
        assert "UI-format workflow" in res.stderr and "Workflow > Export (API)" in res.stderr
    assert [r for r in sandbox.stack.eas.recorder.all() if r.path.startswith("/api/predict/")] == []


def test_editions_refuse_what_they_cannot_do(sandbox: Sandbox) -> None:
    res = sandbox.api.cli("run", str(WORKFLOW))
    assert res.exit_code == 2 and "asynchronous only" in res.stderr and "eascomfy submit" in res.stderr
    res = sandbox.std.cli("submit", str(WORKFLOW))
    assert res.exit_code == 2 and "eascomfy run" in res.stderr


def test_a_failing_node_gives_a_readable_error(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.stack.comfyui.comfyui(sandbox.std.name).fail("19", "CUDA out of memory. Tried to allocate 2.00 GiB",
                                                         "torch.OutOfMemoryError")
    res = sandbox.std.cli("run", str(WORKFLOW), "--out", str(tmp_path))
    assert res.exit_code == 1
    assert ("node 19 (Combine to Video, VHS_VideoCombine) failed: torch.OutOfMemoryError: "
            "CUDA out of memory. Tried to allocate 2.00 GiB") in res.stderr
    # What the nodes before it wrote is still downloaded.
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".png", ".webp"]


def test_comfyui_refusals_are_shown_per_node(sandbox: Sandbox, tmp_path: Path) -> None:
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps(workflow(**{"4.ckpt_name": "gone.safetensors"})))
    res = sandbox.std.cli("run", str(flow), "--no-check")
    assert res.exit_code == 1
    assert "ComfyUI refused the workflow" in res.stderr and "Prompt outputs failed validation" in res.stderr
    assert "node 4 (Checkpoint Loader (Simple), CheckpointLoaderSimple): Value not in list: ckpt_name" in res.stderr

    partial = tmp_path / "partial.json"  # only the SVD branch is broken: ComfyUI answers 200 + node_errors
    partial.write_text(json.dumps(workflow(**{"18.ckpt_name": "gone.safetensors"})))
    res = sandbox.std.cli("run", str(partial), "--no-check", "--out", str(tmp_path / "p"))
    assert res.exit_code == 1 and "accepted only some of the outputs" in res.stderr and "--allow-partial" in res.stderr
    res = sandbox.std.cli("run", str(partial), "--no-check", "--allow-partial", "--out", str(tmp_path / "p"), "-o", "json")
    assert res.exit_code == 0, res.stdout
    assert [f["node"] for f in res.json()["data"]["files"]] == ["9"] and res.json()["data"]["node_errors"]


def test_output_names_escaping_the_folder_are_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    emulator = sandbox.stack.comfyui.comfyui(sandbox.std.name)
    saver = emulator._savers["SaveImage"]
    emulator._savers["SaveImage"] = lambda run, node, inputs: {
        "images": [{"filename": "../../evil.png", "subfolder": "", "type": "output"},
                   {"filename": "ok.png", "subfolder": "../..", "type": "output"}]}
    try:
        res = sandbox.std.cli("run", str(WORKFLOW), "--out", str(tmp_path / "out"))
    finally:
        emulator._savers["SaveImage"] = saver
    assert res.exit_code == 1 and "refused output name '../../evil.png'" in res.stderr
    assert "refused output name '../../ok.png'" in res.stderr
    assert not (tmp_path / "evil.png").exists() and not (tmp_path.parent / "evil.png").exists()
    assert sorted(p.suffix for p in (tmp_path / "out").iterdir()) == [".mp4", ".webp"]


def test_the_token_never_appears_in_any_output(sandbox: Sandbox, tmp_path: Path) -> None:
    token = sandbox.describe(sandbox.std)["token"]
    outputs = []
    for args in (["-v", "run", str(WORKFLOW), "--out", str(tmp_path)], ["-v", "check", str(WORKFLOW)],
                 ["-v", "-o", "json", "run", str(WORKFLOW), "--out", str(tmp_path)]):
        res = sandbox.std.cli(*args)
        assert res.exit_code == 0, res.stderr
        outputs.append(res.stdout + res.stderr)
    endpoint = sandbox.describe(sandbox.std)["endpoint"]
    wrong = run_cli("-v", "run", str(WORKFLOW), "--service-url", endpoint, "--token", token + "x", cwd=tmp_path)
    assert wrong.exit_code == 4 and "refused the token" in wrong.stderr
    outputs.append(wrong.stdout + wrong.stderr)
    given = run_cli("-v", "check", str(WORKFLOW), "--service-url", endpoint, "--token", token, cwd=tmp_path)
    assert given.exit_code == 0 and "object_info" in given.stdout
    outputs.append(given.stdout + given.stderr)
    assert all(token not in text for text in outputs)


def test_without_the_websocket_run_polls_history(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.stack.eas.faults.add(kind="status", status=502, path=f"/{sandbox.std.name}/ws$", times=-1)
    sandbox.stack.eas.recorder.clear()
    res = sandbox.std.cli("-v", "run", str(WORKFLOW), "--out", str(tmp_path), "-o", "json")
    assert res.exit_code == 0, res.stdout
    assert len(res.json()["data"]["files"]) == 3
    paths = [r.path for r in sandbox.stack.eas.recorder.all()]
    assert paths.count(f"/api/predict/{sandbox.std.name}/ws") == 1
    assert sum(p.startswith(f"/api/predict/{sandbox.std.name}/history/") for p in paths) >= 2  # polled with backoff


def test_run_refuses_an_api_edition_endpoint_given_by_url(sandbox: Sandbox, tmp_path: Path) -> None:
    api = sandbox.describe(sandbox.api)
    res = run_cli("run", str(WORKFLOW), "--service-url", api["endpoint"], "--token", api["token"], cwd=tmp_path)
    assert res.exit_code == 2 and "serves no /object_info" in res.stderr and "eascomfy submit" in res.stderr
    assert len(sandbox.stack.comfyui.queue(sandbox.api.name).input) == 0


def _interrupts(sandbox: Sandbox) -> int:
    return sum(1 for r in sandbox.stack.eas.recorder.all() if r.path == f"/api/predict/{sandbox.std.name}/interrupt")


def test_timeout_interrupts_the_job_on_the_server(sandbox: Sandbox, tmp_path: Path) -> None:
    emulator = sandbox.stack.comfyui.comfyui(sandbox.std.name)
    emulator.job_seconds = 10.0  # far past --timeout on any machine; interrupted, it ends at once
    before = _interrupts(sandbox)
    try:
        res = sandbox.std.cli("run", str(WORKFLOW), "--out", str(tmp_path), "--timeout", "0.5")
    finally:
        emulator.job_seconds = 0.02
    assert res.exit_code == 5 and "did not finish within 0.5 s; interrupted it on the server" in res.stderr
    assert _interrupts(sandbox) == before + 1


def test_ctrl_c_interrupts_the_job_on_the_server_and_exits_130(sandbox: Sandbox, tmp_path: Path) -> None:
    emulator = sandbox.stack.comfyui.comfyui(sandbox.std.name)
    emulator.job_seconds = 10.0  # still running when Ctrl-C comes, however slow the machine
    std = sandbox.describe(sandbox.std)
    env = {**os.environ, "EASCOMFY_SERVICE_URL": std["endpoint"], "EASCOMFY_SERVICE_TOKEN": std["token"]}
    before, posted = _interrupts(sandbox), sandbox.prompts_posted(sandbox.std)
    proc = subprocess.Popen([sys.executable, "-m", "eascomfy", "run", str(WORKFLOW), "--out", str(tmp_path)],
                            env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 20
        while sandbox.prompts_posted(sandbox.std) == posted:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 130
    finally:
        emulator.job_seconds = 0.02
    assert proc.stderr is not None and "interrupted" in proc.stderr.read()
    assert _interrupts(sandbox) == before + 1


class OtherUser:
    """Someone else's prompt, running on the Standard service while ours waits behind it."""

    def __init__(self, sandbox: Sandbox, seconds: float) -> None:
        std = sandbox.describe(sandbox.std)
        self.endpoint, self.emulator = std["endpoint"], sandbox.stack.comfyui.comfyui(sandbox.std.name)
        self.http = httpx.Client(headers={"Authorization": std["token"]}, trust_env=False, timeout=10)
        self.emulator.job_seconds = seconds
        self.prompt_id = self.http.post(self.endpoint + "/prompt",
                                        json={"prompt": workflow(), "client_id": "someone-else"}).json()["prompt_id"]
        self.wait(lambda: self.prompt_id in self.queue()[0])

    def queue(self) -> tuple[list[str], list[str]]:
        body = self.http.get(self.endpoint + "/queue").json()
        return [i[1] for i in body["queue_running"]], [i[1] for i in body["queue_pending"]]

    def wait(self, check: Callable[[], Any], seconds: float = 20) -> Any:
        deadline = time.monotonic() + seconds
        while not (value := check()):
            assert time.monotonic() < deadline, "gave up waiting"
            time.sleep(0.02)
        return value

    def outcome(self) -> str:
        """How the other user's prompt ended, once it did."""
        entry = self.wait(lambda: self.emulator.history.get(self.prompt_id))
        return entry["status"]["status_str"]


@pytest.mark.parametrize("interrupt", ["any", "prompt_id"])
def test_a_timeout_on_a_waiting_prompt_leaves_another_users_running_prompt_alone(
    sandbox: Sandbox, tmp_path: Path, interrupt: str
) -> None:
    """ComfyUI before PR #9607 interrupts whatever runs, whatever /interrupt's body says (``any``);
    after it, only the prompt named (``prompt_id``). Ours never ran: it is taken off the queue
    and /interrupt is not sent, so the other user's prompt finishes under both."""
    sandbox.stack.fidelity.interrupt = interrupt
    before = _interrupts(sandbox)
    try:
        other = OtherUser(sandbox, seconds=2.0)
        res = sandbox.std.cli("run", str(WORKFLOW), "--out", str(tmp_path), "--timeout", "0.5")
        assert res.exit_code == 5, res.stderr
        assert other.outcome() == "success"
        assert "did not finish within 0.5 s; removed it from the server's queue" in res.stderr
        ours = re.search(r"queued as (\S+)", res.stderr)[1]
        assert ours not in other.queue()[1]
    finally:
        sandbox.stack.comfyui.comfyui(sandbox.std.name).job_seconds = 0.02
        sandbox.stack.fidelity.interrupt = "any"
    assert _interrupts(sandbox) == before and ours not in other.emulator.history


@pytest.mark.parametrize("interrupt", ["any", "prompt_id"])
def test_ctrl_c_on_a_waiting_prompt_leaves_another_users_running_prompt_alone(
    sandbox: Sandbox, tmp_path: Path, interrupt: str
) -> None:
    sandbox.stack.fidelity.interrupt = interrupt
    std = sandbox.describe(sandbox.std)
    env = {**os.environ, "EASCOMFY_SERVICE_URL": std["endpoint"], "EASCOMFY_SERVICE_TOKEN": std["token"]}
    before = _interrupts(sandbox)
    try:
        other = OtherUser(sandbox, seconds=6.0)
        proc = subprocess.Popen([sys.executable, "-m", "eascomfy", "run", str(WORKFLOW), "--out", str(tmp_path)],
                                env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        ours = other.wait(lambda: [p for p in other.queue()[1]])[0]  # ours waits behind the other prompt
        time.sleep(0.2)  # the run is following it now
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 130
        assert other.outcome() == "success"
        assert proc.stderr is not None and f"prompt {ours}: removed it from the server's queue" in proc.stderr.read()
        assert ours not in other.queue()[1]
    finally:
        sandbox.stack.comfyui.comfyui(sandbox.std.name).job_seconds = 0.02
        sandbox.stack.fidelity.interrupt = "any"
    assert _interrupts(sandbox) == before and ours not in other.emulator.history
