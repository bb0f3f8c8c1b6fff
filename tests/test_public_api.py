"""The public Python API: every name in ``eascomfy.__all__`` resolves and is documented, importing
eascomfy stays free, and docs/python-api.md's example runs as written against the sandbox."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

import eascomfy
from eascomfy.sandbox.eas import Timings
from eascomfy.sandbox.stack import SandboxStack
from tests.conftest import TESTS, run_cli

DOC = TESTS.parent / "docs" / "python-api.md"
FAST = Timings(creating=0.05, updating=0.05, ready=0.05, stopping=0.05, starting=0.05, deleting=0.05)


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 1, "docs/python-api.md has one runnable example"
    return blocks[0]


@pytest.mark.parametrize("name", [n for n in eascomfy.__all__ if n != "__version__"])
def test_each_public_name_resolves_and_is_documented(name: str) -> None:
    assert getattr(eascomfy, name) is not None
    assert f"`{name}" in DOC.read_text(encoding="utf-8"), f"{name} is not in docs/python-api.md"


def test_unknown_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        eascomfy.nope  # noqa: B018


def test_import_eascomfy_loads_nothing_else() -> None:
    code = "import sys, eascomfy; print(sorted(m for m in sys.modules if m.startswith('eascomfy')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['eascomfy']"


def test_the_documented_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with SandboxStack(tmp_path / "state", timings=FAST, job_seconds=0.02) as stack:
        stack.oss.create_bucket("comfy-api-doc", region=stack.region)
        for key, value in {**stack.env(), "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
                           "EASCOMFY_STATE_DIR": str(tmp_path / "client-state")}.items():
            monkeypatch.setenv(key, value)
        work = tmp_path / "bot"
        res = run_cli("init", str(work), "--name", "comfy_api_doc", "--region", stack.region, "--edition", "api",
                      "--oss", "oss://comfy-api-doc/comfyui/", "--image-version", "1.9")
        assert res.exit_code == 0, res.stderr
        (work / "model.safetensors").write_bytes(b"stand-in weights\n" * 1000)
        (work / "workflow_api.json").write_text((TESTS / "fixtures" / "seed-workflow.api.json").read_text())
        # the workflow's models and custom node must be on the mount for ComfyUI to accept it
        for key in ("models/checkpoints/LandscapeBING_v10.safetensors", "models/checkpoints/svd_xt.safetensors",
                    "custom_nodes/ComfyUI-VideoHelperSuite/__init__.py"):
            stack.oss.put_object("comfy-api-doc", "comfyui/" + key, b"stand-in")
        monkeypatch.chdir(work)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(_example(), str(DOC), "exec"), {"__name__": "__example__"})
        text = printed.getvalue()
        assert "image: " in text and "1.9-api" in text
        assert "ready: True" in text
        assert "pushed: comfyui/models/checkpoints/model.safetensors" in text
        assert stack.oss.object_bytes("comfy-api-doc", "comfyui/models/checkpoints/model.safetensors") == \
            (work / "model.safetensors").read_bytes()
        assert re.search(r"results: \[\('[^']+', True\)\]", text), text
        assert stack.eas.get_service("comfy_api_doc") is not None
        assert any((work / "outputs").rglob("*.png"))
