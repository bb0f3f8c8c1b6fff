"""One SandboxStack for the workflow tests: the EAS, OSS, ComfyUI and queue emulators, with a
Standard-edition service whose mount has the guide's models and custom node, one with an empty
mount (``bare``), and an API-edition service; each deployed through the CLI from its own spec."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from eascomfy.sandbox.eas import Timings
from eascomfy.sandbox.stack import SandboxStack
from tests.conftest import TESTS, Result, clean_emulators, run_cli, stack_environment

REGION = "cn-hangzhou"
BUCKET = "comfy-data"
FAST = Timings(creating=0.05, updating=0.05, ready=0.05, stopping=0.05, starting=0.05, deleting=0.05)
WORKFLOW = TESTS / "fixtures" / "seed-workflow.api.json"
MODELS = ("models/checkpoints/LandscapeBING_v10.safetensors", "models/checkpoints/svd_xt.safetensors")
VHS_PACK = "custom_nodes/ComfyUI-VideoHelperSuite/__init__.py"


@dataclass
class Service:
    name: str
    dir: Path
    prefix: str  # the mount's prefix in BUCKET

    @property
    def spec(self) -> Path:
        return self.dir / "eascomfy.yaml"

    def cli(self, *args: str) -> Result:
        return run_cli(*args, cwd=self.dir)


@dataclass
class Sandbox:
    stack: SandboxStack
    std: Service
    bare: Service
    api: Service
    env: dict[str, str]

    def describe(self, service: Service) -> dict[str, Any]:
        record = self.stack.eas.get_service(service.name)
        assert record is not None
        return {"endpoint": self.stack.eas.internet_endpoint(service.name), "token": record["access_token"]}

    def prompts_posted(self, service: Service) -> int:
        return sum(1 for r in self.stack.eas.recorder.all()
                   if r.method == "POST" and r.path == f"/api/predict/{service.name}/prompt")

    def output(self, service: Service, name: str) -> bytes:
        return self.stack.oss.object_bytes(BUCKET, f"{service.prefix}output/{name}")


def _deploy(root: Path, name: str, edition: str, prefix: str, env: dict[str, str]) -> Service:
    service = Service(name, root / name, prefix)
    res = run_cli("init", str(service.dir), "--name", name, "--region", REGION, "--edition", edition,
                  "--oss", f"oss://{BUCKET}/{prefix}", "--image-version", "1.9")
    assert res.exit_code == 0, res.stderr
    if edition == "api":  # two workers behind the queue
        service.spec.write_text(service.spec.read_text().replace("  instances: 1\n", "  instances: 2\n", 1))
    res = service.cli("deploy", "--timeout", "30")
    assert res.exit_code == 0, res.stderr
    return service


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    root = tmp_path_factory.mktemp("workflows")
    with SandboxStack(root / "state", timings=FAST, region=REGION, job_seconds=0.02) as stack:
        stack.oss.create_bucket(BUCKET, region=REGION)
        for prefix in ("comfyui/", "bare/"):
            for key in MODELS:
                stack.oss.put_object(BUCKET, prefix + key, b"not really a model")
        stack.oss.put_object(BUCKET, "comfyui/" + VHS_PACK, b"# VHS stand-in\n")
        # The environment points at this stack only while the services are deployed here, and then
        # per test (``_clean``): set for the whole session it would leak into other folders' tests
        # (the endpoint maps win over their single-endpoint variables).
        with stack_environment(stack, root) as env:
            services = Sandbox(stack, std=_deploy(root, "comfy_std", "standard", "comfyui/", env),
                               bare=_deploy(root, "comfy_bare", "standard", "bare/", env),
                               api=_deploy(root, "comfy_api", "api", "comfyui/", env), env=env)
        yield services


@pytest.fixture(autouse=True)
def _clean(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from the stack as the session made it, whatever ran before and in what order:
    no faults, failures or recorded requests, jobs at the stack's speed, the API queues empty."""
    for key, value in sandbox.env.items():
        monkeypatch.setenv(key, value)
    for key in ("EASCOMFY_OUTPUT", "EASCOMFY_SERVICE_URL", "EASCOMFY_SERVICE_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    stack = sandbox.stack
    clean_emulators((stack.eas, stack.oss), stack.comfyui, job_seconds=stack.job_seconds,
                    services=(sandbox.std.name, sandbox.bare.name, sandbox.api.name), queues=(sandbox.api.name,))


def workflow(**changes: Any) -> dict[str, Any]:
    flow = json.loads(WORKFLOW.read_text())
    for path, value in changes.items():
        node, name = path.split(".")
        flow[node]["inputs"][name] = value
    return flow
