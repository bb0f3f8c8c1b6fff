"""``check`` names the pack of a missing node type, and ``check --fix`` pulls the missing models the
spec has a source for, through the CLI against the OSS, model-source and git emulators."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import pytest

from eascomfy.sandbox.git import GitSandbox
from eascomfy.sandbox.models import ModelSourceSandbox
from tests.conftest import run_cli
from tests.storage.conftest import BUCKET, write_spec

CKPT = os.urandom(300_000)
WORKFLOW = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_turbo.safetensors"}},
    "2": {"class_type": "LoraLoader", "inputs": {"lora_name": "nowhere.safetensors", "model": ["1", 0], "clip": ["1", 1],
                                                 "strength_model": 1.0, "strength_clip": 1.0}},
    "3": {"class_type": "VHS_VideoCombine", "inputs": {"images": ["1", 0], "frame_rate": 8}},
}


@pytest.fixture
def hub(tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelSourceSandbox]:
    with ModelSourceSandbox(tmp_path / "hub") as sandbox:
        sandbox.add_file("org/turbo", "sd_turbo.safetensors", CKPT)
        monkeypatch.setenv("EASCOMFY_HF_ENDPOINT", sandbox.url)
        yield sandbox


def setup(tmp_path: Path) -> tuple[Path, Path]:
    spec = write_spec(tmp_path)
    spec.write_text(spec.read_text() + "models:\n  - kind: checkpoints\n    source: hf://org/turbo/sd_turbo.safetensors\n")
    flow = tmp_path / "flow.api.json"
    flow.write_text(json.dumps(WORKFLOW))
    return spec, flow


def test_check_names_the_pack_of_a_missing_node_type_and_how_to_add_it(oss, env, hub, tmp_path) -> None:
    spec, flow = setup(tmp_path)
    res = run_cli("check", str(flow), "-f", str(spec), "-o", "json")
    assert res.exit_code == 1, res.stdout + res.stderr
    problems = {p["node"]: p for p in res.json()["data"]["problems"]}
    assert "ComfyUI-VideoHelperSuite" in problems["3"]["message"]
    assert problems["3"]["hint"] == "eascomfy nodes add https://github.com/Kosinkadink/ComfyUI-VideoHelperSuite, then eascomfy restart"
    assert hub.requests() == []  # check alone pulls nothing


def test_check_fix_pulls_the_missing_model_and_says_what_it_could_not_fix(oss, env, hub, tmp_path) -> None:
    spec, flow = setup(tmp_path)
    res = run_cli("check", "--fix", str(flow), "-f", str(spec), "-o", "json")
    assert res.exit_code == 1, res.stdout + res.stderr  # the lora and the node remain
    data = res.json()["data"]
    assert data["fix"]["pulled"] == [{"name": "sd_turbo.safetensors", "kind": "checkpoints",
                                      "source": "hf://org/turbo/sd_turbo.safetensors"}]
    assert oss.object_bytes(BUCKET, "p/models/checkpoints/sd_turbo.safetensors") == CKPT
    assert [r.action for r in hub.requests("Resolve")] and hub.requests("CdnGet")  # pulled from the source
    assert {p["node"] for p in data["problems"]} == {"2", "3"}  # checked again after the pull
    not_fixed = {p["node"]: p["hint"] for p in data["fix"]["not_fixed"]}
    assert "no source for models/loras/nowhere.safetensors" in not_fixed["2"]
    assert "eascomfy nodes add https://github.com/Kosinkadink/ComfyUI-VideoHelperSuite" in not_fixed["3"]
    text = run_cli("check", "--fix", str(flow), "-f", str(spec))
    assert "not fixed: node 2 (LoraLoader)" in text.stderr and "Traceback" not in text.stderr


def test_after_nodes_add_and_a_fix_the_check_passes(oss, env, hub, tmp_path) -> None:
    spec, flow = setup(tmp_path)
    flow.write_text(json.dumps({k: v for k, v in WORKFLOW.items() if k != "2"}))
    with GitSandbox(tmp_path / "forge") as forge:
        url = forge.add_repo("Kosinkadink/ComfyUI-VideoHelperSuite", {"__init__.py": ""})
        assert run_cli("nodes", "add", url, "-f", str(spec)).exit_code == 0
    res = run_cli("check", "--fix", str(flow), "-f", str(spec), "-o", "json")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert res.json()["data"]["problems"] == []


def test_fix_is_refused_offline_before_any_call(oss, env, hub, tmp_path) -> None:
    spec, flow = setup(tmp_path)
    res = run_cli("check", "--fix", "--offline", str(flow), "-f", str(spec))
    assert res.exit_code == 2 and "--fix pulls models" in res.stderr and "Traceback" not in res.stderr
    assert oss.recorder.all() == [] and hub.requests() == []
