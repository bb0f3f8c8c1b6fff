"""ComfyUI workflows as data: read an API-format workflow, refuse the UI format, and find the model
files it references and the folder each belongs in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SpecError, UsageError

# Loader input name -> folder under models/ (ComfyUI's folder_paths names; `styles` as the PAI
# guide says for the style model loader). Class-specific names win over the plain input name.
MODEL_INPUTS = {
    "ckpt_name": "checkpoints",
    "lora_name": "loras",
    "vae_name": "vae",
    "control_net_name": "controlnet",
    "unet_name": "diffusion_models",
    "style_model_name": "styles",
    "clip_name": "text_encoders",
    "clip_name1": "text_encoders",
    "clip_name2": "text_encoders",
    "clip_name3": "text_encoders",
    "ipadapter_file": "ipadapter",
}
CLASS_INPUTS = {
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
}
MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft", ".onnx")


@dataclass(frozen=True)
class ModelRef:
    node: str
    class_type: str
    title: str
    input: str
    filename: str
    kind: str


def load_workflow(path: Path) -> dict[str, dict[str, Any]]:
    """An API-format workflow (node id -> node); the UI format is refused with what to do."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: file not found") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: not valid JSON ({exc})") from None
    return parse_workflow(data, str(path))


def parse_workflow(data: Any, source: str) -> dict[str, dict[str, Any]]:
    if isinstance(data, dict) and "nodes" in data and "links" in data:
        raise SpecError(
            f"{source}: this is a UI-format workflow (it has nodes and links), which /prompt cannot run",
            hint="in the ComfyUI WebUI use Workflow > Export (API) and pass that file",
        )
    if isinstance(data, dict) and isinstance(data.get("prompt"), dict):
        data = data["prompt"]  # an already wrapped synchronous body
    if not isinstance(data, dict) or not data:
        raise SpecError(f"{source}: expected an API-format workflow (a mapping of node ids to nodes)")
    for node_id, node in data.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            raise SpecError(f"{source}: node {node_id!r} has no class_type; expected an API-format workflow")
        if not isinstance(node.get("inputs", {}), dict):
            raise SpecError(f"{source}: node {node_id!r}: inputs must be a mapping")
    return data


def title(node: dict[str, Any]) -> str:
    return str((node.get("_meta") or {}).get("title") or node.get("class_type"))


def model_refs(workflow: dict[str, dict[str, Any]]) -> list[ModelRef]:
    """Every model file a workflow's loaders name, with the models/ folder it must be in."""
    refs = []
    for node_id, node in workflow.items():
        cls = node["class_type"]
        for name, value in (node.get("inputs") or {}).items():
            if not isinstance(value, str):
                continue
            kind = CLASS_INPUTS.get((cls, name)) or MODEL_INPUTS.get(name)
            if kind is None and value.lower().endswith(MODEL_SUFFIXES) and name.endswith("_name"):
                kind = name[: -len("_name")] + "s"
            if kind:
                refs.append(ModelRef(str(node_id), cls, title(node), name, value, kind))
    return refs


def kind_for(workflow: dict[str, dict[str, Any]], filename: str) -> str | None:
    """The models/ folder a workflow expects ``filename`` in, or None if it does not name it."""
    kinds = {r.kind for r in model_refs(workflow) if Path(r.filename).name == filename}
    if len(kinds) > 1:
        raise UsageError(f"{filename} is used as {' and '.join(sorted(kinds))} in the workflow", "pass --kind")
    return kinds.pop() if kinds else None
