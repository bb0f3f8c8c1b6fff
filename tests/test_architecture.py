"""Layering and lazy imports, checked rather than hoped for.

- The pure core imports no SDK, no HTTP client, no CLI library.
- Offline commands (render, validate, --help, ...) never import a cloud SDK: checked in a real
  subprocess through ``sys.modules``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TESTS

PKG = Path(__file__).resolve().parent.parent / "eascomfy"
CLOUD_SDKS = ("alibabacloud_eas20210701", "alibabacloud_tea_openapi", "alibabacloud_credentials", "oss2", "eas_prediction",
              "httpx", "websocket")
FORBIDDEN_IN_CORE = CLOUD_SDKS + ("typer", "rich", "aiohttp", "httpx", "requests", "urllib3", "eascomfy.cli", "eascomfy.sandbox")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(path.relative_to(PKG.parent).with_suffix("").parts[: -node.level])
                names.add(f"{base}.{node.module}" if node.module else base)
            else:
                names.add(node.module or "")
    return names


@pytest.mark.parametrize("path", sorted((PKG / "core").glob("*.py")), ids=lambda p: p.name)
def test_core_is_pure(path: Path) -> None:
    bad = {n for n in _imports(path) if any(n == f or n.startswith(f + ".") for f in FORBIDDEN_IN_CORE)}
    assert not bad, f"{path.name} imports {bad}"


OFFLINE = [
    ["--help"],
    ["render", "--help"],
    ["render", "-f", str(TESTS / "golden" / "api-full" / "eascomfy.yaml"), "--env", "prod"],
    ["validate", "-f", str(TESTS / "golden" / "standard-oss" / "eascomfy.yaml")],
    ["editions"],
    ["schema"],
    ["--version"],
    ["check", str(TESTS / "fixtures" / "seed-workflow.api.json")],  # no spec or service at hand
    ["check", "--offline", str(TESTS / "fixtures" / "seed-workflow.api.json")],
]

PROBE = """
import runpy, sys, json
sys.argv = ["eascomfy"] + json.loads(sys.argv[1])
try:
    runpy.run_module("eascomfy", run_name="__main__")
except SystemExit:
    pass
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {sdks})
sys.stderr.write("LOADED=" + json.dumps(loaded) + "\\n")
"""


@pytest.mark.parametrize("args", OFFLINE, ids=lambda a: " ".join(a[:2]))
def test_offline_commands_do_not_import_cloud_sdks(args: list[str]) -> None:
    code = PROBE.replace("{sdks}", repr(set(CLOUD_SDKS)))
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, timeout=60)
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("LOADED=")]
    assert line, proc.stderr
    assert json.loads(line[0][len("LOADED="):]) == []
