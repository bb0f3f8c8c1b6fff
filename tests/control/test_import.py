"""`eascomfy import`: a service made in the console becomes an eascomfy.yaml, and plan shows no
change right after (issue 12). The console is the SDK, called directly with a hand-written config."""

from __future__ import annotations

import json
from pathlib import Path

from alibabacloud_eas20210701 import models
from alibabacloud_eas20210701.client import Client
from alibabacloud_tea_openapi.models import Config

from eascomfy.core.spec import load_spec
from eascomfy.sandbox.credentials import SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET
from eascomfy.sandbox.eas import EasSandbox
from tests.conftest import run_cli

from .conftest import REGION, api_calls, mark

HOST = f"eas-registry-vpc.{REGION}.cr.aliyuncs.com/pai-eas/comfyui"


def console(sandbox: EasSandbox) -> Client:
    return Client(Config(access_key_id=SANDBOX_ACCESS_KEY_ID, access_key_secret=SANDBOX_ACCESS_KEY_SECRET,
                         endpoint=sandbox.endpoint, protocol="http", region_id=REGION))


def console_create(sandbox: EasSandbox, config: dict, labels: dict[str, str] | None = None) -> None:
    request = models.CreateServiceRequest(body=json.dumps(config), labels=labels or {})
    console(sandbox).create_service(request)


def api_console_config(name: str) -> dict:
    """An API-edition service as the console writes it: keys eascomfy does not model included,
    env not sorted, a health check on the container, an extra metadata key."""
    return {
        "metadata": {
            "name": name,
            "instance": 2,
            "type": "Async",
            "rpc": {"keepalive": 600000, "max_queue_size": 128},
            "workspace_id": "123456",
            "enable_grpc": False,
        },
        "cloud": {"computing": {"instances": [{"type": "ml.gu7i.c16m60.1-gu30"}, {"type": "ecs.gn6i-c16g1.4xlarge"}]}},
        "containers": [
            {
                "image": f"{HOST}:1.9-api",
                "port": 8000,
                "script": "python main.py --listen --port 8000 --data-dir /code/data-oss --lowvram",
                "env": [{"name": "TZ", "value": "Asia/Shanghai"}, {"name": "HF_ENDPOINT", "value": "https://hf-mirror.com"}],
            }
        ],
        "storage": [{"mount_path": "/code/data-oss", "oss": {"path": "oss://console-bucket/comfy/", "readOnly": False}}],
        "queue": {"cpu": 2, "memory": 8000, "max_delivery": 3},
        "autoscaler": {"min": 1, "max": 4, "scaleStrategies": [{"metricName": "qps", "threshold": 5}]},
        "features": {"eas.aliyun.com/extra-ephemeral-storage": "100Gi"},
    }


def test_import_a_console_service_then_plan_shows_no_change(sandbox: EasSandbox, tmp_path: Path) -> None:
    console_create(sandbox, api_console_config("console_api"), {"team": "creative"})
    before = mark(sandbox)
    res = run_cli("import", "--service", "console_api", "--region", REGION, cwd=tmp_path)
    assert res.exit_code == 0, res.stderr
    assert "imported console_api (api edition)" in res.stdout
    # one read, then only label writes: the config (and its version) is untouched
    calls = [(r.action, r.method) for r in api_calls(sandbox, before)]
    assert calls[0] == ("DescribeService", "GET")
    assert {a for a, m in calls if m != "GET"} == {"UpdateServiceLabel"}
    assert sandbox.get_service("console_api")["current_version"] == 1

    spec = load_spec(tmp_path / "eascomfy.yaml")
    data = spec.user
    assert data["edition"] == "api" and data["image"] == {"version": "1.9"}
    assert data["storage"] == {"oss": "oss://console-bucket/comfy/", "mount_path": "/code/data-oss"}
    assert data["resources"] == {"instance_type": "ml.gu7i.c16m60.1-gu30",
                                 "fallback_instance_types": ["ecs.gn6i-c16g1.4xlarge"], "instances": 2}
    assert data["queue"] == {"cpu": 2, "memory": 8000, "extra": {"max_delivery": 3}}
    # embedded in the service JSON: kept as it is (eascomfy's autoscaling uses the AutoScaler API)
    assert "autoscaling" not in data and data["overrides"]["autoscaler"]["max"] == 4
    assert data["env"] == {"TZ": "Asia/Shanghai", "HF_ENDPOINT": "https://hf-mirror.com"}
    assert data["extra_args"] == ["--lowvram"] and data["labels"] == {"team": "creative"}
    assert data["workspace_id"] == "123456"
    # what eascomfy does not model is kept verbatim
    assert data["overrides"]["features"] == {"eas.aliyun.com/extra-ephemeral-storage": "100Gi"}
    assert data["overrides"]["metadata"]["rpc"] == {"keepalive": 600000, "max_queue_size": 128}
    assert data["overrides"]["metadata"]["enable_grpc"] is False
    text = (tmp_path / "eascomfy.yaml").read_text()
    assert text.startswith("# eascomfy.yaml: imported") and "the live order differs" in text

    res = run_cli("plan", "--detailed-exitcode", cwd=tmp_path)
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "no changes" in res.stdout
    labels = sandbox.get_service("console_api")["labels"]
    assert labels["eascomfy/managed-by"] == "eascomfy" and labels["team"] == "creative"

    # the first deploy after an import changes nothing either
    res = run_cli("deploy", cwd=tmp_path)
    assert res.exit_code == 0 and "no changes" in res.stdout


def test_import_a_standard_service_with_a_custom_image_and_nas(sandbox: EasSandbox, tmp_path: Path) -> None:
    config = {
        "metadata": {"name": "console_std", "instance": 1, "enable_webservice": True, "rpc": {"keepalive": 3600000}},
        "cloud": {"computing": {"instances": [{"type": "ml.gu7i.c16m60.1-gu30"}]}},
        "containers": [{"image": "registry.example.com/team/comfyui:custom", "port": 8000,
                        "script": "python main.py --listen --port 8000 --data-dir /mnt/data",
                        "env": [{"name": "API_TOKEN", "value": "s3cr3t"}]}],
        "storage": [{"mount_path": "/mnt/data", "nfs": {"server": "0c9a.cn-hangzhou.nas.aliyuncs.com", "path": "/comfy", "readOnly": True}}],
        "name": "console_std",
    }
    console_create(sandbox, config)
    out = tmp_path / "svc" / "std.yaml"
    res = run_cli("import", "--service", "console_std", "--region", REGION, "--out", str(out), "--no-adopt")
    assert res.exit_code == 0, res.stderr
    assert "env.API_TOKEN looks like a secret" in res.stderr
    spec = load_spec(out)
    assert spec.user["edition"] == "standard" and spec.user["image"] == {"uri": "registry.example.com/team/comfyui:custom"}
    assert spec.user["storage"] == {"nas": {"server": "0c9a.cn-hangzhou.nas.aliyuncs.com", "path": "/comfy"},
                                    "mount_path": "/mnt/data", "read_only": True}
    assert "overrides" not in spec.user
    # not adopted: the only change a plan shows is eascomfy's own labels
    plan = run_cli("-o", "json", "plan", "-f", str(out)).json()["data"]
    assert plan["action"] == "labels" and plan["changes"] == []
    # the file is not overwritten without --force
    res = run_cli("import", "--service", "console_std", "--region", REGION, "--out", str(out))
    assert res.exit_code == 2 and "--out:" in res.stderr and "exists" in res.stderr
    assert run_cli("import", "--service", "console_std", "--region", REGION, "--out", str(out), "--force").exit_code == 0
    assert run_cli("plan", "--detailed-exitcode", "-f", str(out)).exit_code == 0


def test_import_of_a_missing_service_is_a_cloud_error(tmp_path: Path) -> None:
    res = run_cli("import", "--service", "no_such_svc", "--region", REGION, cwd=tmp_path)
    assert res.exit_code == 4 and "does not exist" in res.stderr
    assert not (tmp_path / "eascomfy.yaml").exists()


def test_a_takeover_never_removes_console_keys_unless_the_spec_says_so(sandbox: EasSandbox, project) -> None:
    p = project("takeover_svc", edition="standard")
    assert p.cli("render", "--out", "service.json").exit_code == 0
    config = json.loads((p.dir / "service.json").read_text())
    config["features"] = {"eas.aliyun.com/extra-ephemeral-storage": "100Gi"}
    config["metadata"]["instance"] = 2
    console_create(sandbox, config)
    res = p.cli("plan")
    assert "- features:" in res.stdout and "will take it over" in res.stdout
    version = sandbox.get_service("takeover_svc")["current_version"]
    res = p.cli("deploy")
    assert res.exit_code == 2 and "would remove keys set outside eascomfy: features" in res.stderr
    assert sandbox.get_service("takeover_svc")["current_version"] == version  # nothing written
    # the spec says so: an explicit null in overrides
    p.spec.write_text(p.spec.read_text() + "overrides:\n  features: null\n")
    res = p.cli("deploy")
    assert res.exit_code == 0, res.stderr
    assert "features" not in sandbox.get_service("takeover_svc")["config"]


def test_import_keeps_the_live_safety_lock(sandbox: EasSandbox, tmp_path: Path) -> None:
    """DescribeService's SafetyLock (SDK ``models.Service.safety_lock``) goes into the spec: plan
    right after stays "no change", and the next deploy keeps the lock instead of ignoring it."""
    console_create(sandbox, api_console_config("guarded_import"))
    console(sandbox).update_service_safety_lock(REGION, "guarded_import",
                                                models.UpdateServiceSafetyLockRequest(lock="dangerous"))
    res = run_cli("import", "--service", "guarded_import", "--region", REGION, cwd=tmp_path)
    assert res.exit_code == 0, res.stderr
    assert load_spec(tmp_path / "eascomfy.yaml").user["safety_lock"] == "dangerous"
    assert "# EAS's safety lock" in (tmp_path / "eascomfy.yaml").read_text()
    before = mark(sandbox)
    res = run_cli("-o", "json", "plan", "--detailed-exitcode", cwd=tmp_path)
    assert res.exit_code == 0, res.stdout + res.stderr
    assert res.json()["data"]["safety_lock"] is None and res.json()["data"]["action"] == "noop"
    assert [r.action for r in api_calls(sandbox, before)] == ["DescribeService"]
    # lifting it is a one-line spec change that plan shows
    spec = tmp_path / "eascomfy.yaml"
    spec.write_text(spec.read_text().replace("safety_lock: dangerous", "safety_lock: none"))
    res = run_cli("-o", "json", "plan", cwd=tmp_path)
    assert res.json()["data"]["safety_lock"] == {"old": "dangerous", "new": "none"}, res.stdout


def test_import_leaves_out_a_lock_of_none(sandbox: EasSandbox, tmp_path: Path) -> None:
    """``none`` is not written: an absent key leaves the live lock alone, so a lock raised later
    in the console is not lowered by the next deploy."""
    console_create(sandbox, api_console_config("open_import"))
    console(sandbox).update_service_safety_lock(REGION, "open_import", models.UpdateServiceSafetyLockRequest(lock="none"))
    res = run_cli("import", "--service", "open_import", "--region", REGION, cwd=tmp_path)
    assert res.exit_code == 0, res.stderr
    assert "safety_lock" not in load_spec(tmp_path / "eascomfy.yaml").user
    assert run_cli("plan", "--detailed-exitcode", cwd=tmp_path).exit_code == 0
