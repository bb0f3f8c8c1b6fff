"""A create plan shows the whole service, as Terraform shows a create: every field of the body to
be sent, one per line, secrets masked, in text and in -o json (issue 11, item 5)."""

from __future__ import annotations

import json
from typing import Callable

from eascomfy.sandbox.eas import EasSandbox

from .conftest import Project

EXTRA = """env:
  TZ: Asia/Shanghai
  HF_TOKEN: hf_CreatePlanToken12345
labels:
  team: creative
autoscaling: {min: 1, max: 4, metric: qps, threshold: 10}
"""


def test_create_plan_lists_every_field_in_text_and_json(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("create_plan_svc", version="1.9", edition="api")
    p.edit("  # fallback_instance_types: [ecs.gn6i-c16g1.4xlarge]", "  fallback_instance_types: [ecs.gn6i-c16g1.4xlarge]")
    p.spec.write_text(p.spec.read_text() + EXTRA)
    body = json.loads(p.cli("render", "--show-secrets").stdout)

    res = p.cli("plan")
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "create service create_plan_svc in cn-hangzhou"
    expected = [
        f'  + containers[0].image: "{body["containers"][0]["image"]}"',
        f'  + containers[0].script: {json.dumps(body["containers"][0]["script"])}',
        '  + containers[0].env[0]: {"name": "HF_TOKEN", "value": "***"}',
        '  + containers[0].env[1]: {"name": "TZ", "value": "Asia/Shanghai"}',
        '  + cloud.computing.instances[0].type: "ml.gu7i.c16m60.1-gu30"',
        '  + cloud.computing.instances[1].type: "ecs.gn6i-c16g1.4xlarge"',
        '  + metadata.instance: 1',
        '  + storage[0].mount_path: "/code/data-oss"',
        '  + storage[0].oss.path: "oss://eascomfy-test/comfyui/"',
        '  + queue.cpu: 1',
        '  + queue.memory: 4000',
        "  label team=creative",
        "  + autoscaler: 1-4 on qps>10",  # through the AutoScaler API, not the service JSON
    ]
    for line in expected:
        assert line in lines, line
    assert "hf_CreatePlanToken12345" not in res.stdout + res.stderr

    data = p.cli("plan", "-o", "json").json()["data"]
    assert data["action"] == "create"
    changes = {c["path"]: c for c in data["changes"]}
    assert all(c["kind"] == "add" and c["old"] is None for c in changes.values())
    assert changes["containers[0].image"]["new"] == body["containers"][0]["image"]
    assert changes["containers[0].env[0]"]["new"] == {"name": "HF_TOKEN", "value": "***"}
    assert changes["cloud.computing.instances[1].type"]["new"] == "ecs.gn6i-c16g1.4xlarge"
    assert "autoscaler.min" not in changes
    assert data["scalers"] == [{"kind": "autoscaler", "action": "create", "old": None,
                                "new": {"min": 1, "max": 4, "scaleStrategies": [{"metricName": "qps", "threshold": 10}]}}]
    assert data["labels_set"]["team"] == "creative"
    # every leaf of the body is listed: nothing a reviewer cannot see
    assert len([line for line in lines if line.startswith("  + ")]) == len(data["changes"]) + len(data["scalers"])
