"""Rendered EAS service JSON of every edition, compared byte for byte with files in tests/golden/.

Regenerate after a deliberate change with ``pytest tests/core --update-golden`` and review the
diff like any other code change. Only that explicit option rewrites them (never an environment
variable left set in a shell, and never under CI=true): otherwise the test compares.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import TESTS, run_cli

GOLDEN = TESTS / "golden"
# (case folder, --env, --edition): each renders to render[.env][.edition].json
CASES = [
    ("standard-minimal", None, None),
    ("standard-minimal", None, "cluster"),
    ("standard-oss", None, None),
    ("standard-oss", None, "api"),
    ("api-full", None, None),
    ("api-full", "prod", None),
    ("api-full", "dev", None),
    ("cluster-nas", None, None),
    ("cluster-resource-group", None, None),
    ("custom-image-overrides", None, None),
    ("serverless", None, None),
    ("sibling-overlay", None, None),
    ("sibling-overlay", "staging", None),
    ("health-network", None, None),
]


def _expected_name(env: str | None, edition: str | None) -> str:
    return "render" + (f".{env}" if env else "") + (f".{edition}" if edition else "") + ".json"


@pytest.mark.parametrize("case,env,edition", CASES, ids=[f"{c}-{e}-{d}" for c, e, d in CASES])
def test_render_matches_golden(case: str, env: str | None, edition: str | None, request: pytest.FixtureRequest) -> None:
    folder = GOLDEN / case
    args = ["render", "-f", str(folder / "eascomfy.yaml")]
    if env:
        args += ["--env", env]
    if edition:
        args += ["--edition", edition]
    result = run_cli(*args)
    assert result.exit_code == 0, result.stderr
    expected = folder / _expected_name(env, edition)
    if request.config.getoption("--update-golden"):
        expected.write_text(result.stdout, encoding="utf-8")
    assert result.stdout == expected.read_text(encoding="utf-8")


def test_every_golden_file_is_a_case() -> None:
    """A stale golden file (no case renders it) fails instead of silently rotting."""
    wanted = {(c, _expected_name(e, d)) for c, e, d in CASES}
    present = {(p.parent.name, p.name) for p in GOLDEN.glob("*/render*.json")}
    assert present == wanted


def test_render_is_deterministic_and_parseable() -> None:
    folder = GOLDEN / "api-full"
    first = run_cli("render", "-f", str(folder / "eascomfy.yaml"), "--env", "prod").stdout
    second = run_cli("render", "-f", str(folder / "eascomfy.yaml"), "--env", "prod").stdout
    assert first == second
    doc = json.loads(first)
    assert list(doc) == sorted(doc)


def test_data_dir_always_equals_mount_path() -> None:
    for case in ("standard-oss", "api-full", "cluster-nas", "cluster-resource-group"):
        doc = json.loads((GOLDEN / case / "render.json").read_text())
        mount = doc["storage"][0]["mount_path"]
        assert f"--data-dir {mount}" in doc["containers"][0]["script"]


def test_render_out_writes_file(tmp_path) -> None:
    target = tmp_path / "service.json"
    result = run_cli("render", "-f", str(GOLDEN / "standard-oss" / "eascomfy.yaml"), "--out", str(target))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert target.read_text() == (GOLDEN / "standard-oss" / "render.json").read_text()
