"""`eascomfy check WORKFLOW -f SPEC` loads the spec once and prints its warnings once, though it
uses the spec three times (the edition, the mount's inventory, the service's /object_info)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import WORKFLOW, Sandbox

# Runs the CLI as a user does, with eascomfy.core.spec.load_spec wrapped to count its calls. The
# wrapper is installed before any command module is imported, so every caller gets it.
COUNTING = """
import json, runpy, sys
import eascomfy.core.spec as spec_module

real, calls = spec_module.load_spec, []

def counting(*args, **kwargs):
    calls.append(args)
    return real(*args, **kwargs)

spec_module.load_spec = counting
sys.argv = ["eascomfy"] + json.loads(sys.argv[1])
try:
    runpy.run_module("eascomfy", run_name="__main__")
finally:
    sys.stderr.write(f"LOAD_SPEC_CALLS={len(calls)}\\n")
"""
MULTI_GPU = "ml.gu7i.c32m188.2-gu30"  # a warning: ComfyUI uses one GPU per instance


def test_check_with_a_spec_loads_it_once_and_warns_once(sandbox: Sandbox, tmp_path: Path) -> None:
    spec = tmp_path / "eascomfy.yaml"
    spec.write_text(sandbox.std.spec.read_text().replace("ml.gu7i.c16m60.1-gu30", MULTI_GPU, 1))
    assert MULTI_GPU in spec.read_text()
    proc = subprocess.run([sys.executable, "-c", COUNTING, json.dumps(["check", str(WORKFLOW), "-f", str(spec)])],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "checked format, graph, edition, storage, object_info" in proc.stdout  # every use of the spec ran
    assert proc.stderr.count(f"{MULTI_GPU} has 2 GPUs") == 1, proc.stderr
    assert "LOAD_SPEC_CALLS=1\n" in proc.stderr, proc.stderr
