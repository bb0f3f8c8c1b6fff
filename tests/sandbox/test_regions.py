"""The multi-region contract: every region at its own EAS and OSS endpoint, published in
EASCOMFY_EAS_ENDPOINTS / EASCOMFY_OSS_ENDPOINTS (region=url,...) next to the default region's
EASCOMFY_EAS_ENDPOINT / EASCOMFY_OSS_ENDPOINT, by SandboxStack.env() and `eascomfy sandbox`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import oss2
import pytest
import requests
from alibabacloud_eas20210701 import models as eas_models
from alibabacloud_eas20210701.client import Client
from alibabacloud_tea_openapi.models import Config
from Tea.exceptions import TeaException

from eascomfy.sandbox.credentials import SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET
from eascomfy.sandbox.eas import Timings
from eascomfy.sandbox.regions import EAS_REGIONS, format_endpoints, parse_endpoints
from eascomfy.sandbox.stack import SandboxStack
from tests.sandbox.test_comfyui_sandbox import WORKFLOW, wait_until

FAST = Timings(creating=0.05, updating=0.05, ready=0.05, stopping=0.05, starting=0.05, deleting=0.05)
SHANGHAI = "cn-shanghai"


def sdk(endpoint_url: str, region: str) -> Client:
    return Client(Config(access_key_id=SANDBOX_ACCESS_KEY_ID, access_key_secret=SANDBOX_ACCESS_KEY_SECRET,
                         endpoint=urlsplit(endpoint_url).netloc, protocol="http", region_id=region))


def test_endpoint_maps_round_trip() -> None:
    urls = {"cn-hangzhou": "http://127.0.0.1:1", "cn-shanghai": "http://127.0.0.1:2"}
    assert format_endpoints(urls) == "cn-hangzhou=http://127.0.0.1:1,cn-shanghai=http://127.0.0.1:2"
    assert parse_endpoints(format_endpoints(urls) + ",") == urls
    with pytest.raises(ValueError):
        parse_endpoints("cn-hangzhou")
    assert "cn-hangzhou" in EAS_REGIONS and "cn-shanghai" in EAS_REGIONS


def test_a_service_in_another_region_runs_comfyui_on_that_regions_bucket(tmp_path: Path) -> None:
    with SandboxStack(tmp_path, timings=FAST, job_seconds=0.02, regions=[SHANGHAI]) as stack:
        env = stack.env()
        eas_urls, oss_urls = parse_endpoints(env["EASCOMFY_EAS_ENDPOINTS"]), parse_endpoints(env["EASCOMFY_OSS_ENDPOINTS"])
        assert list(eas_urls) == list(oss_urls) == ["cn-hangzhou", SHANGHAI]
        assert eas_urls["cn-hangzhou"] == env["EASCOMFY_EAS_ENDPOINT"] and oss_urls["cn-hangzhou"] == env["EASCOMFY_OSS_ENDPOINT"]

        auth = oss2.Auth(SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET)
        bucket = oss2.Bucket(auth, oss_urls[SHANGHAI], "sh-models")
        bucket.create_bucket()
        for key in ("models/checkpoints/LandscapeBING_v10.safetensors", "models/checkpoints/svd_xt.safetensors",
                    "custom_nodes/ComfyUI-VideoHelperSuite/__init__.py"):
            bucket.put_object(f"comfyui/{key}", b"stand-in")
        client = sdk(eas_urls[SHANGHAI], SHANGHAI)
        config = {"metadata": {"name": "sh_comfy", "instance": 1},
                  "containers": [{"image": f"eas-registry-vpc.{SHANGHAI}.cr.aliyuncs.com/pai-eas/comfyui:1.9"}],
                  "storage": [{"mount_path": "/code/data-oss", "oss": {"path": "oss://sh-models/comfyui/"}}]}
        client.create_service(eas_models.CreateServiceRequest(body=json.dumps(config)))
        with pytest.raises(TeaException):  # not in the default region
            sdk(eas_urls["cn-hangzhou"], "cn-hangzhou").describe_service("cn-hangzhou", "sh_comfy")
        svc = client.describe_service(SHANGHAI, "sh_comfy").body
        http = requests.Session()
        http.trust_env = False
        http.headers["Authorization"] = svc.access_token
        wait_until(lambda: http.get(svc.internet_endpoint + "/").status_code == 200)
        prompt_id = http.post(svc.internet_endpoint + "/prompt", json={"prompt": WORKFLOW}).json()["prompt_id"]
        entry = wait_until(lambda: http.get(f"{svc.internet_endpoint}/history/{prompt_id}").json().get(prompt_id))
        image = entry["outputs"]["9"]["images"][0]["filename"]
        assert bucket.get_object(f"comfyui/output/{image}").read().startswith(b"\x89PNG")
        assert stack.comfyui is not None and stack.comfyui.comfyui("sh_comfy", region=SHANGHAI).history


def test_the_sandbox_command_prints_every_regions_endpoints(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "eascomfy", "sandbox", "--state", str(tmp_path), "--regions", f"{SHANGHAI},us-east-1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        exports = dict(proc.stdout.readline().strip().removeprefix("export ").split("=", 1) for _ in range(6))
        eas_urls = parse_endpoints(exports["EASCOMFY_EAS_ENDPOINTS"])
        assert list(eas_urls) == ["cn-hangzhou", SHANGHAI, "us-east-1"]
        assert list(parse_endpoints(exports["EASCOMFY_OSS_ENDPOINTS"])) == list(eas_urls)
        assert len(set(eas_urls.values())) == 3 and eas_urls["cn-hangzhou"] == exports["EASCOMFY_EAS_ENDPOINT"]
        client = sdk(eas_urls["us-east-1"], "us-east-1")
        body = {"metadata": {"name": "far_svc", "instance": 1}, "containers": [{"image": "registry.example.com/x:1"}]}
        assert client.create_service(eas_models.CreateServiceRequest(body=json.dumps(body))).body.region == "us-east-1"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    assert (tmp_path / "eas" / "us-east-1" / "state.json").is_file()
