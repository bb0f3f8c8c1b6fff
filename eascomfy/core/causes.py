"""Known reasons a ComfyUI service fails, named in ComfyUI terms, from what EAS shows: log
lines, status reasons and diagnosis texts. Pure: text in, causes out.

- out of memory: the vendor guide's case, ``run.sh: line 54: <pid> Killed  python main.py ...``
  (the kernel killed ComfyUI), or a container ended ``OOMKilled``; CUDA out of memory on the GPU;
- the image could not be pulled (``ImagePullFailed``, ``ImagePullBackOff``, ``manifest unknown``):
  the tag does not exist;
- a custom node failed to import: ComfyUI lists it under "Import times for custom nodes" as
  ``(IMPORT FAILED): /.../custom_nodes/<node>``, and says why in ``Cannot import <path> module for
  custom nodes: No module named 'x'`` or a ``ModuleNotFoundError: No module named 'x'``;
- no stock of the GPU instance type (insufficient resources, no instance could be scheduled).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Iterable

OOM, CUDA_OOM, IMAGE_PULL, CUSTOM_NODE, NO_STOCK = "out_of_memory", "gpu_out_of_memory", "image_pull", "custom_node_import", "no_stock"

_KILLED = re.compile(r"run\.sh: line \d+:.*\bKilled\b")
_IMPORT_FAILED = re.compile(r"\(IMPORT FAILED\):\s*(?P<path>\S+)")
_CANNOT_IMPORT = re.compile(r"Cannot import (?P<path>\S+) module for custom nodes: (?P<why>.+)$")
_NO_MODULE = re.compile(r"No module named '(?P<module>[^']+)'")
_PULL = re.compile(r"ImagePull(?:Failed|BackOff)|ErrImagePull|failed to pull image|manifest unknown", re.I)
_PULL_IMAGE = re.compile(r"pull image (?P<image>[^\s:]+(?::[^\s:]+)?)")
_STOCK = re.compile(r"InsufficientResources|Insufficient (?:resources|nvidia\.com/gpu|gpu)|no instance could be scheduled"
                    r"|out of stock|NoStock|Unschedulable", re.I)
_CUDA_OOM = re.compile(r"CUDA out of memory|torch\.cuda\.OutOfMemoryError|OutOfMemoryError: Allocation", re.I)

# Import names whose pip package is spelled differently.
PIP_NAMES = {
    "cv2": "opencv-python", "PIL": "pillow", "skimage": "scikit-image", "sklearn": "scikit-learn",
    "yaml": "pyyaml", "google.protobuf": "protobuf", "fvcore": "fvcore", "mediapipe": "mediapipe",
    "insightface": "insightface", "onnxruntime": "onnxruntime-gpu", "git": "GitPython", "dill": "dill",
}


@dataclass(frozen=True)
class Cause:
    """A known cause: its code, what happened, what to do."""

    code: str
    summary: str
    advice: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def node_name(path: str) -> str:
    """``/root/ComfyUI/custom_nodes/ComfyUI-Impact-Pack`` -> ``ComfyUI-Impact-Pack``."""
    return path.rstrip("/").rsplit("/", 1)[-1]


def pip_name(module: str) -> str:
    top = module.split(".")[0]
    return PIP_NAMES.get(module) or PIP_NAMES.get(top) or top


def _custom_nodes(lines: list[str]) -> list[Cause]:
    failed = [node_name(m["path"]) for line in lines if (m := _IMPORT_FAILED.search(line))]
    why: dict[str, str] = {}
    for line in lines:
        if m := _CANNOT_IMPORT.search(line):
            missing = _NO_MODULE.search(m["why"])
            why[node_name(m["path"])] = missing["module"] if missing else m["why"].strip()
            if node_name(m["path"]) not in failed:
                failed.append(node_name(m["path"]))
    loose = [m["module"] for line in lines if (m := _NO_MODULE.search(line)) and "Cannot import" not in line]
    causes = []
    for node in dict.fromkeys(failed):
        module = why.get(node) or (loose[0] if len(set(loose)) == 1 else None)
        if module and re.fullmatch(r"[\w.]+", module):
            summary = f"the custom node {node} failed to import: the Python package {module!r} is missing"
            advice = f"add {pip_name(module)} to the spec's pip list (or to the image), then deploy again"
        else:
            summary = f"the custom node {node} failed to import" + (f": {module}" if module else "")
            advice = "see the node's traceback in `eascomfy logs`; fix or remove the node"
        causes.append(Cause(CUSTOM_NODE, summary, advice))
    return causes


def classify(lines: Iterable[str], reasons: Iterable[str] = (), *, instance_type: str = "",
             fallbacks: Iterable[str] = ()) -> list[Cause]:
    """The known causes in ``lines`` (log lines) and ``reasons`` (status reasons and messages,
    diagnosis errors and causes), most specific first, each once."""
    lines, reasons = [str(l) for l in lines], [str(r) for r in reasons]
    everything = lines + reasons
    found: list[Cause] = []
    if any(_KILLED.search(l) for l in lines) or any("OOMKilled" in r for r in everything):
        where = f" ({instance_type})" if instance_type else ""
        found.append(Cause(OOM, f"ComfyUI was killed: out of memory on the instance type{where}",
                           "choose a larger instance type (more memory), or load fewer or smaller models"))
    if any(_CUDA_OOM.search(l) for l in lines):
        found.append(Cause(CUDA_OOM, "the GPU ran out of memory while running a workflow",
                           "choose an instance type with more GPU memory, or lower the resolution or batch size"))
    found += _custom_nodes(lines)
    pulls = [t for t in everything if _PULL.search(t)]
    if pulls:
        image = next((m["image"] for t in pulls if (m := _PULL_IMAGE.search(t))), "")
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        what = f"the image tag {tag} does not exist" if tag else "the image could not be pulled"
        found.append(Cause(IMAGE_PULL, f"{what} ({image})" if image else what,
                           "use an image version the registry has (`eascomfy update-image VERSION`), or check the custom image address"))
    if any(_STOCK.search(t) for t in everything):
        others = [f for f in fallbacks if f != instance_type]
        advice = (f"the spec's fallback types ({', '.join(others)}) were tried too; try another region or zone, or wait"
                  if others else "add fallback_instance_types to the spec, or try another region or zone")
        where = f" {instance_type}" if instance_type else ""
        found.append(Cause(NO_STOCK, f"no stock of the GPU instance type{where}: no instance could be scheduled", advice))
    return found
