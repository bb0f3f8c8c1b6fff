"""Layering and lazy imports, checked rather than hoped for.

- LAYERS: which part of eascomfy may import which (a table, every module of the package checked);
  a broken rule fails with the file, the line and the import named.
- The pure core and the adapters import no CLI or sandbox; offline commands (render, validate,
  --help, ...) never import a cloud SDK: checked in a real subprocess through ``sys.modules``.
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
THIRD_PARTY_IN_CORE = CLOUD_SDKS + ("typer", "rich", "aiohttp", "requests", "urllib3")

# part -> the eascomfy parts it may import. A part is a top-level module or package of eascomfy
# ("core", "errors", "cli", ...); a module may always import its own part. Special cases below.
BASE = {"errors", "retry", "redact", "crc64", "ports"}
LAYERS: dict[str, set[str]] = {
    "errors": set(),
    "redact": set(),
    "retry": set(),
    "crc64": set(),
    "ports": set(),
    "core": {"errors"},
    "adapters": BASE,
    "local": {"errors", "core"},
    "control": BASE | {"core", "adapters", "local"},
    "storage": BASE | {"core", "adapters", "local"},
    "workflows": BASE | {"core", "adapters", "local", "storage"},
    "demo": BASE | {"core", "adapters", "local", "control", "storage", "workflows", "sandbox"},
    "sandbox": {"crc64"},
    "cli": BASE | {"core", "adapters", "local", "control", "storage", "workflows", "demo", "__init__"},
    "__init__": BASE | {"core", "adapters", "local", "control", "storage", "workflows"},
    "__main__": {"cli"},
}
# Narrow exceptions, each with its reason.
ALLOWED = {
    ("cli/sandbox_cmds.py", "sandbox"): "`eascomfy sandbox` serves the emulators",
}


def _part(module: str, root: Path) -> str | None:
    """'eascomfy.core.spec' -> 'core'; '__init__' for a name of the package itself
    ('eascomfy.__version__'); None for a module outside eascomfy."""
    bits = module.split(".")
    if bits[0] != "eascomfy":
        return None
    if len(bits) > 1 and ((root / bits[1]).is_dir() or (root / f"{bits[1]}.py").is_file()):
        return bits[1]
    return "__init__"


def imports_of(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, lazy ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ("eascomfy", *path.relative_to(root).parent.parts)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                prefix = ".".join(package[: len(package) - (node.level - 1)])
                if node.module:
                    found.append((node.lineno, f"{prefix}.{node.module}"))
                else:  # from . import a, b
                    found += [(node.lineno, f"{prefix}.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, node.module or ""))
    return found


def violations(root: Path = PKG) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        part = rel.split("/")[0].removesuffix(".py")
        allowed = LAYERS.get(part)
        if allowed is None:
            bad.append(f"{rel}: part {part!r} has no row in LAYERS")
            continue
        for line, module in imports_of(path, root):
            target = _part(module, root)
            if part in ("core",) and module.split(".")[0] in THIRD_PARTY_IN_CORE:
                bad.append(f"{rel}:{line}: the pure core imports {module}")
            if target is None or target == part or target in allowed:
                continue
            if (rel, target) in ALLOWED:
                continue
            bad.append(f"{rel}:{line}: {part} may not import {module} ({target})")
    return bad


def test_layer_table_holds() -> None:
    assert violations() == []


def test_a_broken_rule_is_named(tmp_path: Path) -> None:
    """The table test fails, naming file, line and import, when a rule is broken."""
    fake = tmp_path / "eascomfy"
    for folder in ("core", "adapters", "cli"):
        (fake / folder).mkdir(parents=True)
    (fake / "core" / "plan.py").write_text("import json\n")
    (fake / "cli" / "options.py").write_text("import typer\n")
    (fake / "core" / "bad.py").write_text("import json\n\nfrom ..cli.options import session\nimport oss2\n")
    (fake / "adapters" / "eas.py").write_text("def f():\n    from ..core.plan import normalize\n")
    found = violations(fake)
    assert found == [
        "adapters/eas.py:2: adapters may not import eascomfy.core.plan (core)",
        "core/bad.py:3: core may not import eascomfy.cli.options (cli)",
        "core/bad.py:4: the pure core imports oss2",
    ]


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
code = 0
try:
    runpy.run_module("eascomfy", run_name="__main__")
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {sdks})
sys.stderr.write("LOADED=" + json.dumps({"loaded": loaded, "code": code}) + "\\n")
"""


@pytest.mark.parametrize("args", OFFLINE, ids=lambda a: " ".join(a[:2]))
def test_offline_commands_do_not_import_cloud_sdks(args: list[str]) -> None:
    code = PROBE.replace("{sdks}", repr(set(CLOUD_SDKS)))
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, timeout=60)
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("LOADED=")]
    assert line, proc.stderr
    result = json.loads(line[0][len("LOADED="):])
    assert result["code"] == 0, proc.stderr  # the command itself worked, not only its imports
    assert result["loaded"] == []
