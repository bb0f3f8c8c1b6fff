"""``warmup:`` through the CLI against the whole sandbox: deploy writes the warm-up request file
to the OSS mount, the service JSON names it (``warm_up_data_path``), and the EAS emulator keeps
the new instances out of traffic until each warm-up request ran in the service's ComfyUI (as the
EAS doc has it: the service counts as started only after its warm-up requests were sent)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from eascomfy.sandbox.eas.warmup import KEY
from tests.conftest import TESTS, run_cli, wait_until

from .conftest import BUCKET, REGION, Sandbox, Service

TINY = TESTS / "fixtures" / "warmup-tiny.api.json"  # a 64x64, 1-step render


def _service(sandbox: Sandbox, tmp_path: Path, name: str, count: int) -> Service:
    service = Service(name, tmp_path / name, "comfyui/")
    res = run_cli("init", str(service.dir), "--name", name, "--region", REGION, "--edition", "standard",
                  "--oss", f"oss://{BUCKET}/comfyui/", "--image-version", "1.9")
    assert res.exit_code == 0, res.stderr
    (service.dir / "flows").mkdir()
    shutil.copy(TINY, service.dir / "flows" / "tiny.json")
    text = service.spec.read_text()
    service.spec.write_text(text.replace("environments:", f"warmup:\n  workflow: flows/tiny.json\n  count: {count}\n"
                                         "environments:", 1))
    return service


def _config(sandbox: Sandbox, name: str) -> dict:
    config = sandbox.stack.eas.get_service(name)["config"]
    return json.loads(config) if isinstance(config, str) else config


def test_new_instances_take_traffic_only_after_the_warmup_ran(sandbox: Sandbox, tmp_path: Path) -> None:
    service = _service(sandbox, tmp_path, "comfy_warm", count=2)
    comfy = sandbox.stack.comfyui.comfyui  # made on first use; slow jobs so the warm-up can be seen
    res = service.cli("deploy", "--no-wait")
    assert res.exit_code == 0, res.stderr
    comfy(service.name).job_seconds = 0.6

    # the request file is on the mount, under the name the config gives
    path = _config(sandbox, service.name)[KEY]
    assert path.startswith(f"oss://{BUCKET}/comfyui/.eascomfy/warmup/") and path.endswith(".txt")
    lines = sandbox.stack.oss.object_bytes(BUCKET, path.removeprefix(f"oss://{BUCKET}/")).decode().splitlines()
    assert [json.loads(line) for line in lines] == [{"prompt": json.loads(TINY.read_text())}] * 2

    # Running, but warming up: not ready, and no client request reached ComfyUI
    def running() -> dict:
        data = service.cli("-o", "json", "status").json()["data"]
        return data if data["status"] == "Running" else {}

    data = wait_until(running, what="Running")
    assert data["instances"] and not any(i["ready"] for i in data["instances"])
    assert len(comfy(service.name).history) < 2
    assert sandbox.prompts_posted(service) == 0

    # ready once both warm-up requests ran to their end
    def ready() -> dict:
        data = service.cli("-o", "json", "status").json()["data"]
        return data if data["instances"] and all(i["ready"] for i in data["instances"]) else {}

    data = wait_until(ready, what="ready after the warm-up")
    history = comfy(service.name).history
    assert len(history) == 2 and all(h["status"]["status_str"] == "success" for h in history.values())
    reasons = [e.get("reason") or e.get("Reason") for e in data["events"]]
    assert "WarmUpCompleted" in reasons, data["events"]
    assert reasons.index("WarmUpCompleted") > reasons.index("RUNNING")
    assert sandbox.prompts_posted(service) == 0  # the warm-up came from the engine, not the client


@pytest.mark.parametrize("failure", ["fail", "proceed"])
def test_a_warmup_that_fails_is_shown_with_its_reason(sandbox: Sandbox, tmp_path: Path, failure: str) -> None:
    """Whether a refused warm-up request fails the service is undocumented (Fidelity.warmup_failure):
    either the deploy fails with the reason, or it succeeds and ``status`` shows the warning."""
    service = _service(sandbox, tmp_path, f"comfy_warm_{failure}", count=1)
    flow = service.dir / "flows" / "tiny.json"
    flow.write_text(flow.read_text().replace("LandscapeBING_v10.safetensors", "not-on-the-mount.safetensors"))
    sandbox.stack.fidelity.warmup_failure = failure
    try:
        res = service.cli("deploy", "--timeout", "30")
    finally:
        sandbox.stack.fidelity.warmup_failure = "fail"
    if failure == "fail":
        assert res.exit_code == 4, res.stderr
        assert "WarmUpFailed: warm-up request 1 of oss://" in res.stderr and "not-on-the-mount" in res.stderr
    else:
        assert res.exit_code == 0, res.stderr
        text = service.cli("status").stdout
        assert "Warning WarmUpFailed: warm-up request 1 of oss://" in text and "not-on-the-mount" in text


@pytest.mark.parametrize("repeat,runs", [("once", 2), ("five_times", 10)])
def test_the_warmup_is_done_whether_eas_repeats_the_file_or_not(sandbox: Sandbox, tmp_path: Path, repeat: str,
                                                                runs: int) -> None:
    service = _service(sandbox, tmp_path, f"comfy_warm_{repeat}", count=2)
    sandbox.stack.fidelity.warmup_repeat = repeat
    try:
        res = service.cli("deploy", "--timeout", "30")
    finally:
        sandbox.stack.fidelity.warmup_repeat = "once"
    assert res.exit_code == 0, res.stderr
    assert len(sandbox.stack.comfyui.comfyui(service.name).history) == runs


def test_an_unchanged_warmup_file_is_not_sent_again(sandbox: Sandbox, tmp_path: Path) -> None:
    service = _service(sandbox, tmp_path, "comfy_warm_same", count=1)
    assert service.cli("deploy", "--timeout", "30").exit_code == 0
    puts = [r for r in sandbox.stack.oss.requests() if r.method == "PUT" and ".eascomfy/warmup/" in r.path]
    assert len(puts) == 1
    service.spec.write_text(service.spec.read_text().replace("  instances: 1\n", "  instances: 2\n", 1))
    assert service.cli("deploy", "--timeout", "30").exit_code == 0
    again = [r for r in sandbox.stack.oss.requests() if r.method == "PUT" and ".eascomfy/warmup/" in r.path]
    assert again == puts  # same bytes, same key: not uploaded twice
