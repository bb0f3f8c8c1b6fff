"""The README's examples run as written (issue 11, item 8): every line of its ```bash blocks runs,
in order, in one project folder, with the installed `eascomfy`; the cloud commands against a
sandbox (the environment `eascomfy sandbox` prints), the sandbox block as it stands. Only lines
that need the reader's own files are skipped, each named below with the reason."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from eascomfy.sandbox.eas import Timings
from eascomfy.sandbox.stack import SandboxStack

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

# A README line (its start) -> why the test does not run it. Each must match a line.
SKIP = {
    "python3 -m venv .venv && . .venv/bin/activate && pip install . && eascomfy demo":
        "creates a venv and installs from the network; the demo itself runs in "
        "tests/control/test_secrets_and_tools.py::test_demo_runs_end_to_end",
    "python3 -m venv .venv && . .venv/bin/activate && pip install '.[test]' && python -m pytest":
        "the test suite itself",
    "eascomfy models push svd_xt.safetensors": "needs model weights and an exported workflow of the reader's",
    "eascomfy nodes push ./ComfyUI-VideoHelperSuite": "needs a custom node pack checked out by the reader",
    "eascomfy nodes add https://github.com/": "needs github.com; the same add runs against the emulated git forge in "
        "tests/storage/test_nodes_add.py",
    "eascomfy check --fix workflow_api.json": "needs the reader's exported workflow; --fix runs against the emulators "
        "in tests/storage/test_check_fix.py",
    "eascomfy models pull hf://": "needs the Hugging Face hub; the pull itself runs against the emulated hub in "
        "tests/storage/test_models_pull.py",
    "eascomfy models pull ms://": "needs ModelScope; runs against the emulated API in tests/storage/test_pull_ms_civitai.py",
    "eascomfy models pull civitai://": "needs Civitai; runs against the emulated API in tests/storage/test_pull_ms_civitai.py",
    "eascomfy wheels push insightface": "needs a wheel file of the reader's",
    "eascomfy check workflow_api.json": "needs the reader's exported workflow (and its models on the mount)",
    "eascomfy run workflow_api.json": "needs the reader's exported workflow and a Standard-edition service",
    "eascomfy submit workflow_api.json": "needs the reader's exported workflow",
    "eascomfy results --follow": "collects what `submit` queued, which is skipped",
}
# A README line (its start) -> the exit code it documents, when not 0.
EXIT = {"eascomfy plan --detailed-exitcode": 2}
FAST = Timings(creating=0.1, updating=0.1, ready=0.1, stopping=0.05, starting=0.1, deleting=0.05)


def bash_blocks() -> list[list[str]]:
    blocks = re.findall(r"^```bash\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)
    return [[line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")] for block in blocks]


def _rule(table: dict[str, object], line: str) -> object:
    hits = [value for start, value in table.items() if line.startswith(start)]
    assert len(hits) <= 1, line
    return hits[0] if hits else None


def script(lines: list[str]) -> str:
    """One bash script for a block: each line as written, then a check of its exit code."""
    out = ["trap 'kill $(jobs -p) 2>/dev/null' EXIT"]
    for line in lines:
        if _rule(SKIP, line) is not None:
            out.append(f": skipped: {shlex.quote(line)}")
            continue
        expected = _rule(EXIT, line) or 0
        out.append(line)
        out.append(
            f'rc=$?; if [ "$rc" != {expected} ]; then echo "README line failed (exit $rc, expected {expected}): "'
            f"{shlex.quote(line)} >&2; exit 97; fi"
        )
    return "\n".join(out) + "\n"


def test_every_skip_names_a_readme_line() -> None:
    lines = [line for block in bash_blocks() for line in block]
    for start in [*SKIP, *EXIT]:
        assert any(line.startswith(start) for line in lines), f"not in the README: {start}"


def test_readme_examples_run_as_written(tmp_path: Path) -> None:
    work = tmp_path / "project"
    work.mkdir()
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("EASCOMFY_", "ALIBABA_CLOUD_")) and "PROXY" not in k.upper()}
    base = {
        **keep,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "NO_PROXY": "127.0.0.1,localhost",
        "EASCOMFY_STATE_DIR": str(tmp_path / "state"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
    }
    blocks = bash_blocks()
    assert len(blocks) >= 6
    with SandboxStack(tmp_path / "sandbox", timings=FAST, job_seconds=0.05) as stack:
        for block in blocks:
            # The sandbox block brings its own sandbox and evals its exports; the others run
            # where `eascomfy sandbox` would point them.
            env = base if any("eascomfy sandbox" in line for line in block) else {**base, **stack.env()}
            proc = subprocess.run(["bash", "-c", script(block)], cwd=work, env=env, capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, f"{proc.stderr[-3000:]}\n--- block:\n" + "\n".join(block)
    assert (work / "service.json").is_file() and (work / "eascomfy.schema.json").is_file()
    assert 'version: "2.2"' in (work / "eascomfy.yaml").read_text()  # update-image 2.2 wrote it
    states = [p.read_text() for p in (work / ".sandbox").rglob("*.json")]
    assert any("comfy_prod" in text for text in states)  # the last block deployed into its own sandbox


@pytest.mark.parametrize("line", ["eascomfy validate --env prod"])
def test_the_readme_still_shows(line: str) -> None:
    """The lines issue 11 found broken stay in the README (and so in the run above)."""
    assert any(line in block_line for block in bash_blocks() for block_line in block)
