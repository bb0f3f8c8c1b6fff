"""A failed deploy shows why: EAS's diagnosis, the last log lines and the known cause in ComfyUI
terms, through the CLI against the EAS emulator (told to fail a version with given log lines)."""

from __future__ import annotations

from typing import Callable

from eascomfy.sandbox.eas import EasSandbox

from .conftest import Project

KILLED = "/root/run.sh: line 54:    47 Killed                  python main.py --listen --port 8000"
IMPORT_FAILURE = [
    "Traceback (most recent call last):",
    '  File "/root/ComfyUI/nodes.py", line 2106, in load_custom_node',
    "ModuleNotFoundError: No module named 'cv2'",
    "Cannot import /root/ComfyUI/custom_nodes/ComfyUI-Impact-Pack module for custom nodes: No module named 'cv2'",
    "Import times for custom nodes:",
    "   0.1 seconds (IMPORT FAILED): /root/ComfyUI/custom_nodes/ComfyUI-Impact-Pack",
    "Starting server",
    "Killed by the health check: port 8000 did not answer",
]


def test_an_out_of_memory_deploy_prints_the_diagnosis_and_the_last_lines(sandbox: EasSandbox,
                                                                         project: Callable[..., Project]) -> None:
    p = project("oom_svc")
    sandbox.fail_deploy("oom_svc", ["Loading model: flux1-dev.safetensors", KILLED], reason="OOMKilled",
                        message="Container worker0 was killed (OOMKilled)", exit_code=137)
    res = p.cli("deploy")
    assert res.exit_code == 4, res.stderr
    err = res.stderr
    assert "cause: ComfyUI was killed: out of memory on the instance type (ml.gu7i.c16m60.1-gu30)" in err
    assert "choose a larger instance type" in err
    assert "diagnosis: Container worker0 exited unexpectedly." in err
    assert "last log lines of oom-svc-" in err and f"  | {KILLED}" in err
    assert err.index("| Loading model") < err.index(f"| {KILLED}")  # newest last
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: service oom_svc, ServiceFailed: service oom_svc failed") and "larger instance type" in last

    q = project("oom_json")
    sandbox.fail_deploy("oom_json", [KILLED], reason="OOMKilled")
    data = q.cli("-o", "json", "deploy").json()  # JSON: the known cause is in the error's hint
    assert data["exit_code"] == 4 and "out of memory" in data["error"]["hint"]


def test_a_custom_node_that_fails_to_import_is_named_with_its_missing_package(sandbox: EasSandbox,
                                                                             project: Callable[..., Project]) -> None:
    p = project("node_svc")
    assert p.cli("deploy").exit_code == 0
    sandbox.fail_deploy("node_svc", IMPORT_FAILURE, reason="CrashLoopBackOff")
    p.edit("instances: 1", "instances: 2")
    res = p.cli("deploy")
    assert res.exit_code == 4, res.stderr
    assert ("cause: the custom node ComfyUI-Impact-Pack failed to import: the Python package 'cv2' is missing; "
            "add opencv-python to the spec's pip list") in res.stderr
    assert "rolled back to version 1, which is running again" in res.stderr
    assert "| Killed by the health check" in res.stderr


def test_a_missing_image_tag_is_named(project: Callable[..., Project]) -> None:
    p = project("tag_svc")
    assert p.cli("deploy").exit_code == 0
    res = p.cli("update-image", "9.9", "--force")  # past eascomfy's table: the registry refuses it
    assert res.exit_code == 4, res.stderr
    assert "cause: the image tag 9.9-api does not exist" in res.stderr and "diagnosis: Container worker0 failed to pull image." in res.stderr


def test_no_gpu_stock_is_named_when_the_wait_times_out(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("stock_svc")
    assert p.cli("deploy").exit_code == 0
    sandbox.set_stuck("stock_svc")
    try:
        res = p.cli("restart", "--timeout", "1")
    finally:
        sandbox.set_stuck("stock_svc", None)
    assert res.exit_code == 5, res.stderr
    assert "cause: no stock of the GPU instance type ml.gu7i.c16m60.1-gu30" in res.stderr
    assert "fallback_instance_types" in res.stderr
