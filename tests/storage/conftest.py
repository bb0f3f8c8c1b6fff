"""A fresh OSS emulator per test (clean recorder, faults and store) and the environment that points
the CLI at it, for the storage safety tests. ``test_storage_cli.py`` keeps its own module fixtures."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from eascomfy.sandbox.credentials import SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET
from eascomfy.sandbox.oss import OssSandbox

BUCKET = "eascomfy-test"
REGION = "cn-hangzhou"


@pytest.fixture
def oss(tmp_path: Path) -> Iterator[OssSandbox]:
    with OssSandbox(tmp_path / "oss-state", region=REGION) as sandbox:
        sandbox.create_bucket(BUCKET)
        yield sandbox


@pytest.fixture
def env(oss: OssSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "EASCOMFY_OSS_ENDPOINT": oss.url,
        "ALIBABA_CLOUD_ACCESS_KEY_ID": SANDBOX_ACCESS_KEY_ID,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SANDBOX_ACCESS_KEY_SECRET,
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
        "EASCOMFY_STATE_DIR": str(tmp_path / "state"),
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("EASCOMFY_OSS_ENDPOINTS", raising=False)  # a region map would win over it
    monkeypatch.delenv("EASCOMFY_OUTPUT", raising=False)
    return values


def write_spec(tmp_path: Path, prefix: str = "p", bucket: str = BUCKET) -> Path:
    spec = tmp_path / "eascomfy.yaml"
    spec.write_text(f"name: comfy_store\nregion: {REGION}\nedition: api\nstorage:\n  oss: oss://{bucket}/{prefix}/\n")
    return spec
