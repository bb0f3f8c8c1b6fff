"""An EAS sandbox per test on a free port, and the environment that points the CLI at it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

from eascomfy.sandbox.credentials import SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET
from eascomfy.sandbox.eas import EasSandbox, Timings
from eascomfy.sandbox.fidelity import Fidelity
from eascomfy.sandbox.server import RecordedRequest
from tests.conftest import Result, run_cli

REGION = "cn-hangzhou"
FAST = Timings(creating=0.1, updating=0.1, ready=0.1, stopping=0.05, starting=0.1, deleting=0.05)


@pytest.fixture
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EasSandbox]:
    """A fresh emulator per test (it starts in milliseconds): no service, request, fault or stuck
    status of one test is seen by the next, whatever the order."""
    with EasSandbox(state_dir=tmp_path_factory.mktemp("eas-sandbox"), timings=FAST, region=REGION) as sb:
        yield sb


@pytest.fixture(autouse=True)
def eas_env(sandbox: EasSandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[EasSandbox]:
    """The CLI's environment; faults cleared before and the fidelity switches reset after each test."""
    monkeypatch.setenv("EASCOMFY_EAS_ENDPOINT", sandbox.url)
    monkeypatch.delenv("EASCOMFY_EAS_ENDPOINTS", raising=False)  # a region map would win over it
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", SANDBOX_ACCESS_KEY_ID)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SANDBOX_ACCESS_KEY_SECRET)
    monkeypatch.setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
    monkeypatch.delenv("EASCOMFY_OUTPUT", raising=False)
    monkeypatch.setenv("EASCOMFY_LOCK_SETTLE", "0.05")  # the deploy lock's read-back delay (1 s by default)
    sandbox.faults.clear()
    yield sandbox
    sandbox.fidelity.update(**Fidelity().to_dict())


@dataclass
class Project:
    """A spec directory for one service, driven through the CLI."""

    dir: Path
    name: str

    @property
    def spec(self) -> Path:
        return self.dir / "eascomfy.yaml"

    def cli(self, *args: str) -> Result:
        return run_cli(*args, cwd=self.dir)

    def edit(self, old: str, new: str) -> None:
        text = self.spec.read_text()
        assert old in text, f"{old!r} not in the spec"
        self.spec.write_text(text.replace(old, new, 1))


@pytest.fixture
def project(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[..., Project]:
    """``project("name", version="1.8", edition="api")`` writes a spec with `eascomfy init`."""

    def make(name: str, version: str = "1.8", edition: str = "api") -> Project:
        where = tmp_path / name
        args = ["init", str(where), "--name", name, "--region", REGION, "--edition", edition, "--image-version", version]
        if edition != "serverless":
            args += ["--oss", "oss://eascomfy-test/comfyui/"]
        res = run_cli(*args)
        assert res.exit_code == 0, res.stderr
        return Project(where, name)

    return make


def api_calls(sandbox: EasSandbox, since: int) -> list[RecordedRequest]:
    """OpenAPI requests the sandbox got after the first ``since`` (endpoint probes excluded)."""
    return [r for r in sandbox.recorder.all()[since:] if r.path.startswith("/api/v2/")]


def mark(sandbox: EasSandbox) -> int:
    return len(sandbox.recorder.all())
