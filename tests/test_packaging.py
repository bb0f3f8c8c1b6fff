"""What a user installs, not the source tree: the wheel carries every data file the code reads
(editions, templates, schemas, the sandbox's data, the demo's workflow), and the CLI built from it
works from a folder that is not the repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import TESTS

ROOT = TESTS.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip install .` would install, built from this checkout (hatchling from the test extra)."""
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [built] = out.glob("eascomfy-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel unpacked as an installer lays it out in site-packages."""
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def data_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts)


def test_the_wheel_carries_every_data_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = [f"eascomfy/_data/editions/{name}" for name in data_files(ROOT / "editions")]
    expected += [f"eascomfy/_data/templates/{name}" for name in data_files(ROOT / "templates")]
    expected += [f"eascomfy/{name}" for name in data_files(ROOT / "eascomfy")]
    missing = [name for name in expected if name not in names]
    assert not missing, f"not in {wheel.name}: {missing}"
    # The kinds of data the code reads are all there (an empty folder would pass the check above).
    for needed in ("eascomfy/_data/editions/standard.yaml", "eascomfy/_data/editions/api.yaml",
                   "eascomfy/_data/templates/service.yaml", "eascomfy/schemas/spec.schema.json",
                   "eascomfy/schemas/edition.schema.json", "eascomfy/sandbox/comfyui/data/object_info.json",
                   "eascomfy/data/seed-workflow.api.json"):
        assert needed in names
    assert not [name for name in names if name.startswith("tests/")]


def run_installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m eascomfy ARGS` with only the unpacked wheel on the path ahead of site-packages."""
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_installed_cli_works_away_from_the_repository(installed: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run_installed(installed, elsewhere, "-c", "import eascomfy; print(eascomfy.__file__)")
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(installed), where.stdout  # not the source tree

    editions = run_installed(installed, elsewhere, "-m", "eascomfy", "editions", "-o", "json")
    assert editions.returncode == 0, editions.stderr
    assert [e["name"] for e in json.loads(editions.stdout)["data"]] == ["standard", "api", "cluster", "serverless"]
    text = run_installed(installed, elsewhere, "-m", "eascomfy", "editions")
    assert text.returncode == 0 and "x.y-cluster" in text.stdout, text.stderr

    # init (the spec schema), render (editions and the service template), schema: all from the wheel.
    made = run_installed(installed, elsewhere, "-m", "eascomfy", "init", "svc", "--name", "comfy_pkg",
                         "--region", "cn-hangzhou", "--edition", "api", "--oss", "oss://bkt/comfyui/")
    assert made.returncode == 0, made.stderr
    rendered = run_installed(installed, elsewhere, "-m", "eascomfy", "render", "-f", "svc/eascomfy.yaml")
    assert rendered.returncode == 0, rendered.stderr
    service = json.loads(rendered.stdout)
    assert service["metadata"]["name"] == "comfy_pkg" and service["containers"][0]["image"].endswith("-api")
    schema = run_installed(installed, elsewhere, "-m", "eascomfy", "schema")
    assert schema.returncode == 0 and json.loads(schema.stdout)["title"] == "eascomfy.yaml", schema.stderr


def test_the_installed_demo_runs_on_the_sandbox_data(installed: Path, tmp_path: Path) -> None:
    """The demo reads the seed workflow and the sandbox's ComfyUI data: both must be in the wheel."""
    demo = run_installed(installed, tmp_path, "-m", "eascomfy", "demo", "--dir", str(tmp_path / "demo"))
    assert demo.returncode == 0, demo.stderr
    outputs = sorted(p.suffix for p in (tmp_path / "demo" / "outputs").rglob("*") if p.is_file())
    assert outputs == [".mp4", ".mp4", ".png", ".png", ".webp", ".webp"]
