"""`eascomfy status`, outside any wait, explains an instance that restarted: the diagnosis of its
last failure (the known cause in ComfyUI terms) and its previous container's last log lines,
read through the unmodified SDK from the EAS emulator (told to restart an instance with known
last words)."""

from __future__ import annotations

from typing import Callable

from eascomfy.sandbox.eas import EasSandbox

from .conftest import Project
from .test_failure_diagnosis import IMPORT_FAILURE, KILLED


def test_status_shows_why_an_instance_restarted(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("restart_svc")
    p.edit("instances: 1", "instances: 2")
    assert p.cli("deploy").exit_code == 0
    healthy = p.cli("-o", "json", "status").json()["data"]
    assert healthy["diagnosis"] is None  # no restart, no diagnosis (and no log read)
    assert not [r for r in sandbox.recorder.all() if r.path.endswith("/logs")]

    which = sandbox.restart_instance("restart_svc", 1, "OOMKilled", 137, ["Loading model: flux1-dev.safetensors", KILLED])
    res = p.cli("status")
    assert res.exit_code == 0, res.stderr
    text = res.stdout
    assert "last failure (an instance restarted):" in text
    assert "cause: ComfyUI was killed: out of memory on the instance type (ml.gu7i.c16m60.1-gu30)" in text
    assert f"last log lines of {which}:" in text and f"| {KILLED}" in text
    assert text.index("| Loading model") < text.index(f"| {KILLED}")  # newest last
    logs = [r for r in sandbox.recorder.all() if r.path.endswith("/logs")]
    assert logs and {r.query["InstanceName"] for r in logs} == {which}  # only the restarted one's logs
    assert {r.query.get("Previous") for r in logs} == {"True"}  # the container that died

    data = p.cli("-o", "json", "status").json()["data"]
    diag = data["diagnosis"]
    assert [c["code"] for c in diag["causes"]] == ["out_of_memory"]
    assert diag["logs"][which][-1] == KILLED
    assert list(diag["logs"]) == [which]


def test_status_names_the_custom_node_that_made_an_instance_restart(sandbox: EasSandbox,
                                                                    project: Callable[..., Project]) -> None:
    p = project("node_restart")
    assert p.cli("deploy").exit_code == 0
    sandbox.restart_instance("node_restart", 0, "Error", 1, IMPORT_FAILURE)
    data = p.cli("-o", "json", "status").json()["data"]
    causes = data["diagnosis"]["causes"]
    assert causes[0]["code"] == "custom_node_import"
    assert "ComfyUI-Impact-Pack" in causes[0]["summary"] and "opencv-python" in causes[0]["advice"]
