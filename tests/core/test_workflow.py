"""Workflow reading: API format accepted (bare or wrapped), UI format refused, model folders found."""

from __future__ import annotations

import json

import pytest

from eascomfy.core.workflow import kind_for, load_workflow, model_refs, parse_workflow
from eascomfy.errors import SpecError, UsageError

API = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "LandscapeBING_v10.safetensors"}, "_meta": {"title": "Load"}},
    "18": {"class_type": "ImageOnlyCheckpointLoader", "inputs": {"ckpt_name": "svd_xt.safetensors"}},
    "20": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": "clip_vision_g.safetensors"}},
    "21": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x-UltraSharp.pth"}},
    "3": {"class_type": "KSampler", "inputs": {"sampler_name": "dpmpp_sde_gpu", "model": ["4", 0]}},
}


def test_model_refs_and_kinds() -> None:
    refs = {(r.node, r.filename, r.kind) for r in model_refs(API)}
    assert refs == {
        ("4", "LandscapeBING_v10.safetensors", "checkpoints"),
        ("18", "svd_xt.safetensors", "checkpoints"),
        ("20", "clip_vision_g.safetensors", "clip_vision"),
        ("21", "4x-UltraSharp.pth", "upscale_models"),
    }
    assert kind_for(API, "svd_xt.safetensors") == "checkpoints"
    assert kind_for(API, "nothing.safetensors") is None


def test_wrapped_body_is_unwrapped() -> None:
    assert parse_workflow({"prompt": API}, "x") == API


def test_ui_format_is_refused_with_what_to_do(tmp_path) -> None:
    ui = tmp_path / "ui.json"
    ui.write_text(json.dumps({"last_node_id": 9, "nodes": [{"id": 4, "type": "CheckpointLoaderSimple"}], "links": []}))
    with pytest.raises(SpecError) as err:
        load_workflow(ui)
    assert "UI-format" in str(err.value) and "Export (API)" in str(err.value)


@pytest.mark.parametrize("data", [[], {}, {"1": {"inputs": {}}}, {"1": "x"}])
def test_not_a_workflow(data) -> None:
    with pytest.raises(SpecError):
        parse_workflow(data, "w.json")


def test_missing_and_broken_files(tmp_path) -> None:
    with pytest.raises(UsageError):
        load_workflow(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SpecError):
        load_workflow(bad)
