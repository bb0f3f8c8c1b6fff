"""Shared test helpers: run the CLI in-process and read what it printed; put shared emulators back
as they were made."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

import pytest
from typer.testing import CliRunner

if TYPE_CHECKING:
    from eascomfy.sandbox.comfyui import Attachment
    from eascomfy.sandbox.server import ServerBacked

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


def wait_until(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``check`` until it is truthy; the bound is generous (a loaded CI machine is slow), the
    poll is quick (a fast machine is not kept waiting)."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"{what} not met within {timeout} s"
        time.sleep(0.02)
    return result


def clean_emulators(servers: Iterable[ServerBacked], attachment: Attachment | None = None, *,
                    job_seconds: float = 0.2, services: Iterable[str] = (), queues: Iterable[str] = ()) -> None:
    """Put shared emulators back as their fixture made them, before a test: no faults, ComfyUI
    failures or recorded requests; every ComfyUI of ``services`` at ``job_seconds``; the queues of
    the API-edition ``queues`` empty. Jobs an earlier test left in an input queue are dropped, the
    one a worker holds is let finish, then the sink is emptied, so no result of an earlier test
    lands in this one's sink."""
    servers = list(servers)
    for server in servers:
        server.faults.clear()
    if attachment is not None:
        attachment.job_seconds = job_seconds
        for name in services:
            attachment.comfyui(name).clear_failures()
        for name in queues:
            queue = attachment.queue(name)
            queue.input.remove([m.index for m in queue.input.claim("clean-emulators", 0, 1 << 30)])
            wait_until(lambda queue=queue: len(queue.input) == 0, what=f"{name}'s workers finishing their jobs")
            queue.sink.truncate(1 << 62)
    for server in servers:
        server.recorder.clear()
