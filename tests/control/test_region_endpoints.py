"""Several regions through the CLI: on the cloud the endpoint is the region (CreateService carries
none), so eascomfy finds each region's endpoint in EASCOMFY_EAS_ENDPOINTS / EASCOMFY_OSS_ENDPOINTS
(region=url,...; what `eascomfy sandbox` and SandboxStack.env() publish), refuses a region the map
lacks, and never sends one region's work to another region's endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from eascomfy.sandbox.eas import Timings
from eascomfy.sandbox.fidelity import Fidelity
from eascomfy.sandbox.stack import SandboxStack
from tests.conftest import Result, run_cli

SHANGHAI, HANGZHOU = "cn-shanghai", "cn-hangzhou"
FAST = Timings(creating=0.05, updating=0.05, ready=0.05, stopping=0.05, starting=0.05, deleting=0.05)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxStack]:
    with SandboxStack(tmp_path_factory.mktemp("regions"), timings=FAST, job_seconds=0.02, regions=[SHANGHAI]) as stack:
        stack.oss.create_bucket("sh-data", region=SHANGHAI)
        yield stack


@pytest.fixture
def regions(stack: SandboxStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxStack]:
    """The CLI pointed at the two-region stack (both the maps and the default region's URLs)."""
    for key, value in stack.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("EASCOMFY_STATE_DIR", str(tmp_path / "client-state"))
    yield stack
    stack.fidelity.update(**Fidelity().to_dict())


def _requests(stack: SandboxStack) -> int:
    return len(stack.eas.recorder.all()) + len(stack.oss.recorder.all())


def _project(tmp_path: Path, name: str, region: str, bucket: str) -> Path:
    res = run_cli("init", str(tmp_path / name), "--name", name, "--region", region, "--edition", "standard",
                  "--oss", f"oss://{bucket}/comfyui/", "--image-version", "1.9")
    assert res.exit_code == 0, res.stderr
    return tmp_path / name


def _cli(where: Path, *args: str) -> Result:
    return run_cli(*args, cwd=where)


def test_a_deploy_in_another_region_lands_there_and_becomes_ready(regions: SandboxStack, tmp_path: Path) -> None:
    where = _project(tmp_path, "sh_svc", SHANGHAI, "sh-data")
    res = _cli(where, "deploy", "--timeout", "5")
    assert res.exit_code == 0, res.stderr
    record = regions.eas.get_service("sh_svc", region=SHANGHAI)
    assert record is not None and record["status"] == "Running"
    assert regions.eas.get_service("sh_svc") is None  # nothing filed in the default region
    assert {r.site for r in regions.eas.recorder.all() if r.path.startswith("/api/v2/")} == {SHANGHAI}
    status = _cli(where, "-o", "json", "status").json()["data"]
    assert status["region"] == SHANGHAI and status["internet_endpoint"].startswith(regions.eas.urls[SHANGHAI])
    before = len(regions.oss.recorder.all())
    assert _cli(where, "storage", "init").exit_code == 0  # the bucket through its own region's endpoint
    assert "comfyui/models/checkpoints/" in regions.oss.list_keys("sh-data", "comfyui/")
    assert {r.site for r in regions.oss.recorder.all()[before:]} == {SHANGHAI}


def test_a_region_the_endpoint_maps_lack_is_refused_before_any_request(regions: SandboxStack, tmp_path: Path) -> None:
    where = _project(tmp_path, "bj_svc", "cn-beijing", "bj-data")
    before = _requests(regions)
    res = _cli(where, "deploy", "--timeout", "3")
    assert res.exit_code == 2, res.stderr
    assert "no endpoint for region cn-beijing: EASCOMFY_EAS_ENDPOINTS names cn-hangzhou, cn-shanghai" in res.stderr
    res = _cli(where, "storage", "init")
    assert res.exit_code == 2 and "EASCOMFY_OSS_ENDPOINTS names cn-hangzhou, cn-shanghai" in res.stderr
    assert _requests(regions) == before
    assert all(regions.eas.get_service("bj_svc", region=r) is None for r in (HANGZHOU, SHANGHAI))


@pytest.mark.parametrize("location", ["any_endpoint", "bucket_endpoint"])
def test_a_bucket_in_another_region_is_named_with_its_region(
    regions: SandboxStack, tmp_path: Path, location: str
) -> None:
    """Asked through cn-hangzhou's endpoint, a cn-shanghai bucket's GetBucketLocation answers
    oss-cn-shanghai (``any_endpoint``) or 403 AccessDenied, EC 0003-00001403, with
    <Endpoint>oss-cn-shanghai.aliyuncs.com</Endpoint> (``bucket_endpoint``): either way eascomfy
    says where the bucket is, and sends nothing."""
    regions.fidelity.bucket_location = location
    where = _project(tmp_path, "hz_svc", HANGZHOU, "sh-data")
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"x" * 10)
    before = len(regions.oss.recorder.all())
    for args in (["storage", "init"], ["models", "push", str(model), "--kind", "vae"]):
        res = _cli(where, *args)
        assert res.exit_code == 4, res.stderr
        assert "bucket sh-data is in cn-shanghai but the service is in cn-hangzhou" in res.stderr
        assert "RAM" not in res.stderr
    assert [r.method for r in regions.oss.recorder.all()[before:] if r.method not in ("GET", "HEAD")] == []
