"""Shared test helpers: run the CLI in-process and read what it printed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

TESTS = Path(__file__).resolve().parent


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Result:
    """Invoke ``eascomfy ARGS`` in-process (through the same entry point a user runs)."""
    import os

    from eascomfy.cli.app import app
    from eascomfy.cli.settings import SETTINGS

    SETTINGS.__init__()  # global options are per run
    runner = CliRunner()
    old = Path.cwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        res = runner.invoke(app, list(args), env=env, catch_exceptions=False)
    finally:
        os.chdir(old)
    return Result(res.exit_code, res.stdout, res.stderr)


@pytest.fixture
def cli():
    return run_cli
