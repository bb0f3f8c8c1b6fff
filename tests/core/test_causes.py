"""The cause classifier on log text as ComfyUI and EAS write it."""

from __future__ import annotations

from eascomfy.core.causes import CUDA_OOM, CUSTOM_NODE, IMAGE_PULL, NO_STOCK, OOM, classify

COMFY_IMPORT_FAILURE = """\
[START] Security scan
Traceback (most recent call last):
  File "/root/ComfyUI/nodes.py", line 2106, in load_custom_node
    module_spec.loader.exec_module(module)
  File "<frozen importlib._bootstrap_external>", line 940, in exec_module
  File "/root/ComfyUI/custom_nodes/ComfyUI-Impact-Pack/__init__.py", line 23, in <module>
    import cv2
ModuleNotFoundError: No module named 'cv2'

Cannot import /root/ComfyUI/custom_nodes/ComfyUI-Impact-Pack module for custom nodes: No module named 'cv2'

Import times for custom nodes:
   0.0 seconds: /root/ComfyUI/custom_nodes/websocket_image_save.py
   0.1 seconds (IMPORT FAILED): /root/ComfyUI/custom_nodes/ComfyUI-Impact-Pack

Starting server
""".splitlines()

VENDOR_OOM = """\
Total VRAM 22699 MB, total RAM 30111 MB
Loading model: flux1-dev.safetensors
/root/run.sh: line 54:    47 Killed                  python main.py --listen --port 8000 --data-dir /code/data-oss
""".splitlines()


def test_the_vendor_guides_out_of_memory_case() -> None:
    [cause] = classify(VENDOR_OOM, instance_type="ecs.gn7i-c8g1.2xlarge")
    assert cause.code == OOM and "ecs.gn7i-c8g1.2xlarge" in cause.summary and "larger instance type" in cause.advice
    assert [c.code for c in classify([], ["Container worker0 terminated: OOMKilled"])] == [OOM]


def test_a_custom_node_that_fails_to_import_names_the_node_and_the_package() -> None:
    [cause] = classify(COMFY_IMPORT_FAILURE)
    assert cause.code == CUSTOM_NODE
    assert cause.summary == "the custom node ComfyUI-Impact-Pack failed to import: the Python package 'cv2' is missing"
    assert "opencv-python" in cause.advice and "pip" in cause.advice


def test_import_failed_with_only_a_following_module_not_found_error() -> None:
    lines = ["   0.2 seconds (IMPORT FAILED): /root/ComfyUI/custom_nodes/comfyui_controlnet_aux",
             "ModuleNotFoundError: No module named 'mediapipe'"]
    [cause] = classify(lines)
    assert "comfyui_controlnet_aux" in cause.summary and "'mediapipe'" in cause.summary


def test_an_import_failure_without_a_missing_module_still_names_the_node() -> None:
    [cause] = classify(["   0.0 seconds (IMPORT FAILED): /root/ComfyUI/custom_nodes/was-node-suite-comfyui"])
    assert cause.summary == "the custom node was-node-suite-comfyui failed to import" and "logs" in cause.advice


def test_image_pull_names_the_missing_tag() -> None:
    reasons = ["ImagePullFailed", "Failed to pull image eas-registry-vpc.cn-hangzhou.cr.aliyuncs.com/pai-eas/comfyui:9.9-api: "
               "manifest unknown (no such tag in the registry)"]
    [cause] = classify([], reasons)
    assert cause.code == IMAGE_PULL and cause.summary.startswith("the image tag 9.9-api does not exist")
    assert "update-image" in cause.advice


def test_no_gpu_stock_points_at_fallback_types() -> None:
    reasons = ["InsufficientResources", "Waiting for resources: no instance could be scheduled"]
    [cause] = classify([], reasons, instance_type="ml.gu7i.c16m60.1-gu30")
    assert cause.code == NO_STOCK and "ml.gu7i.c16m60.1-gu30" in cause.summary and "fallback_instance_types" in cause.advice
    [cause] = classify([], reasons, instance_type="a", fallbacks=["a", "b"])
    assert "fallback types (b) were tried" in cause.advice


def test_cuda_out_of_memory_and_healthy_logs() -> None:
    assert [c.code for c in classify(["torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"])] == [CUDA_OOM]
    assert classify(["Starting server", "To see the GUI go to: http://0.0.0.0:8000"], ["Running"]) == []
