"""Shared test helpers: run the CLI in-process and read what it printed; the session's own clean
environment; putting shared emulators back as they were made."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import pytest
from typer.testing import CliRunner

if TYPE_CHECKING:
    from eascomfy.sandbox.comfyui import Attachment
    from eascomfy.sandbox.server import ServerBacked
    from eascomfy.sandbox.stack import SandboxStack

TESTS = Path(__file__).resolve().parent

# What the shell may set that would change what a test sees: eascomfy's own settings (an output
# format, endpoints, a state dir, a token), the Alibaba Cloud credential chain's (keys, a profile, a
# credentials file; the SDK reads them once, at import), proxies (loopback traffic to the emulators
# would go to them) and forced colours or widths in what the CLI prints.
INHERITED_PREFIXES = ("EASCOMFY_", "ALIBABA_CLOUD_", "ALICLOUD_")
INHERITED_NAMES = {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "FTP_PROXY", "WS_PROXY", "WSS_PROXY", "NO_PROXY",
                   "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "FORCE_COLOR", "NO_COLOR", "CLICOLOR_FORCE",
                   "COLUMNS", "LINES"}
ENVIRONMENT_KEY = pytest.StashKey[tuple[dict[str, str], Path]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite the expected files in tests/golden/ from what render prints now, then "
                          "review the diff like code (refused when CI=true)")


def pytest_configure(config: pytest.Config) -> None:
    """Give the session its own environment before any test module (or SDK) is imported: nothing
    from the shell that runs pytest leaks into what the tests see or touch."""
    if config.getoption("--update-golden") and os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise pytest.UsageError("--update-golden rewrites the expected files; it is refused when CI=true")
    # A shell starts a background job (`pytest ... &`, nohup) with SIGINT ignored, and children
    # keep an ignored signal across exec: the Ctrl-C tests' CLI would then never see their SIGINT.
    # A handler (unlike SIG_IGN) is reset to the default at exec, so Python installs its own.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    saved = dict(os.environ)
    root = Path(tempfile.mkdtemp(prefix="eascomfy-tests-"))
    for name in list(os.environ):
        if name.upper().startswith(INHERITED_PREFIXES) or name.upper() in INHERITED_NAMES:
            del os.environ[name]
    for sub in ("home", "cache", "config", "state"):
        (root / sub).mkdir()
    os.environ.update({
        "HOME": str(root / "home"),  # the credential chain's profile files (~/.alibabacloud, ~/.aliyun)
        "XDG_CACHE_HOME": str(root / "cache"),  # eascomfy's default state dir lives under it
        "XDG_CONFIG_HOME": str(root / "config"),
        "EASCOMFY_STATE_DIR": str(root / "state"),  # upload checkpoints, the CRC cache
        "NO_PROXY": "127.0.0.1,localhost",  # belt and braces: the emulators are on loopback
        "no_proxy": "127.0.0.1,localhost",
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",  # never ask a metadata server for keys
    })
    config.stash[ENVIRONMENT_KEY] = (saved, root)


def pytest_unconfigure(config: pytest.Config) -> None:
    saved, root = config.stash.get(ENVIRONMENT_KEY, (None, None))
    if saved is None or root is None:
        return
    os.environ.clear()
    os.environ.update(saved)
    shutil.rmtree(root, ignore_errors=True)


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


@contextlib.contextmanager
def stack_environment(stack: SandboxStack, root: Path) -> Iterator[dict[str, str]]:
    """For a module-scoped fixture: point the CLI at ``stack`` (its endpoints and keys), with its own
    client state under ``root`` and a quick deploy-lock read-back, until the block ends. Yields the
    variables, for an autouse fixture to set again per test (a test's monkeypatch may change them)."""
    env = {**stack.env(), "EASCOMFY_STATE_DIR": str(root / "client-state"), "EASCOMFY_LOCK_SETTLE": "0.05"}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield env


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
