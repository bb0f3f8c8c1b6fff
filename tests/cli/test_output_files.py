"""Commands that write files never destroy one by accident, and a wrong kind of path is a clear
usage error, not an internal error (issue 11, items 15 and 19)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli


def _project(tmp_path: Path) -> Path:
    res = run_cli("init", str(tmp_path), "--name", "comfy_files", "--region", "cn-hangzhou")
    assert res.exit_code == 0, res.stderr
    return tmp_path / "eascomfy.yaml"


def test_render_out_refuses_to_overwrite_the_spec_even_with_force(tmp_path: Path) -> None:
    spec = _project(tmp_path)
    before = spec.read_text()
    for extra in ((), ("--force",)):
        res = run_cli("render", "--out", "eascomfy.yaml", *extra, cwd=tmp_path)
        assert res.exit_code == 2, res.stderr
        assert "--out: eascomfy.yaml is the spec being rendered; not overwritten" in res.stderr
        assert spec.read_text() == before


def test_render_out_refuses_an_environment_overlay_file(tmp_path: Path) -> None:
    spec = _project(tmp_path)
    overlay = tmp_path / "eascomfy.staging.yaml"
    overlay.write_text("resources: {instances: 2}\n")
    res = run_cli("render", "-f", str(spec), "--env", "staging", "--out", str(overlay), "--force")
    assert res.exit_code == 2 and "is the spec being rendered" in res.stderr
    assert overlay.read_text() == "resources: {instances: 2}\n"


def test_render_out_replaces_an_existing_file_only_with_force(tmp_path: Path) -> None:
    _project(tmp_path)
    out = tmp_path / "service.json"
    out.write_text("mine\n")
    res = run_cli("render", "--out", str(out), cwd=tmp_path)
    assert res.exit_code == 2, res.stderr
    assert f"--out: {out} exists; not overwritten (pass --force to replace it)" in res.stderr
    assert out.read_text() == "mine\n"
    res = run_cli("render", "--out", str(out), "--force", cwd=tmp_path)
    assert res.exit_code == 0, res.stderr
    assert json.loads(out.read_text())["name"] == "comfy_files"


def test_render_out_to_a_directory_is_a_usage_error(tmp_path: Path) -> None:
    _project(tmp_path)
    (tmp_path / "out").mkdir()
    res = run_cli("render", "--out", "out", cwd=tmp_path)
    assert res.exit_code == 2, res.stderr
    assert res.stderr.strip() == "error: --out: out is a directory; give a file name"
    assert list((tmp_path / "out").iterdir()) == []


def test_init_into_a_file_is_a_usage_error(tmp_path: Path) -> None:
    file = tmp_path / "afile"
    file.write_text("x\n")
    for target in (file, file / "sub"):
        res = run_cli("init", str(target), "--name", "comfy_files", "--region", "cn-hangzhou")
        assert res.exit_code == 2, res.stderr
        assert f"{file} is a file, not a directory" in res.stderr and "internal error" not in res.stderr
    assert file.read_text() == "x\n"


def test_init_refuses_a_directory_named_like_the_spec(tmp_path: Path) -> None:
    (tmp_path / "eascomfy.yaml").mkdir()
    res = run_cli("init", str(tmp_path), "--name", "comfy_files", "--region", "cn-hangzhou", "--force")
    assert res.exit_code == 2, res.stderr
    assert "eascomfy.yaml is a directory" in res.stderr


def test_demo_into_a_file_is_a_usage_error(tmp_path: Path) -> None:
    file = tmp_path / "afile"
    file.write_text("x\n")
    res = run_cli("demo", "--dir", str(file))
    assert res.exit_code == 2, res.stderr
    assert f"{file} is a file, not a directory" in res.stderr and "internal error" not in res.stderr
    assert file.read_text() == "x\n"
