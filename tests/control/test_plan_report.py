"""`plan -o markdown` (a pull request comment) and `plan -o json` (eascomfy-plan-json/1), with
secret-looking values masked, through the CLI against the sandbox (issue 12)."""

from __future__ import annotations

import json
from typing import Callable

from eascomfy.core.planreport import PLAN_JSON_FORMAT

from .conftest import Project


def test_markdown_and_json_plans_mask_secrets(project: Callable[..., Project]) -> None:
    p = project("report_svc")
    p.edit("# env: {TZ: Asia/Shanghai}", "env: {TZ: Asia/Shanghai, API_TOKEN: hunter2-secret}")

    res = p.cli("plan", "-o", "markdown")
    assert res.exit_code == 0, res.stderr
    md = res.stdout
    assert md.startswith("### eascomfy plan: `report_svc` in `cn-hangzhou`")
    assert "**create** a new service" in md and "```json" in md
    assert "hunter2-secret" not in md and '"value": "***"' in md
    assert f"<!-- {PLAN_JSON_FORMAT} service=report_svc" in md

    data = p.cli("plan", "-o", "json").json()["data"]
    assert data["format"] == PLAN_JSON_FORMAT and data["action"] == "create" and data["has_changes"] is True
    # a plain sha256 of a config holding a secret is a guessable hash of it: masked too
    assert data["desired_sha"] == "***" and data["live_sha"] is None
    p.edit("env: {TZ: Asia/Shanghai, API_TOKEN: hunter2-secret}", "env: {TZ: Asia/Shanghai}")
    assert len(p.cli("plan", "-o", "json").json()["data"]["desired_sha"]) == 64  # no secret: shown
    p.edit("env: {TZ: Asia/Shanghai}", "env: {TZ: Asia/Shanghai, API_TOKEN: hunter2-secret}")

    assert p.cli("deploy").exit_code == 0
    p.edit("API_TOKEN: hunter2-secret", "API_TOKEN: hunter3-secret")
    p.edit("instances: 1", "instances: 2")
    res = p.cli("plan", "-o", "markdown", "--detailed-exitcode", "--out", "plan.json")
    assert res.exit_code == 2, res.stderr
    md = res.stdout
    assert "**update**: 0 to add, 2 to change, 0 to remove" in md
    assert "| ~ | `metadata.instance` | `1` | `2` |" in md
    assert "```diff\n" in md and "- metadata.instance: 1\n+ metadata.instance: 2" in md
    assert "hunter" not in md and "`containers[0].env[0].value` | `\"***\"` | `\"***\"` |" in md
    assert "plan saved to plan.json" in res.stderr  # progress on stderr: stdout is the comment alone

    data = p.cli("-o", "json", "plan").json()["data"]
    assert data["summary"] == {"add": 0, "change": 2, "remove": 0, "labels_set": 1, "labels_remove": 0}
    assert "hunter" not in json.dumps(data)
    # the saved plan (an artifact in CI) applies
    assert p.cli("deploy", "--plan", "plan.json").exit_code == 0
    res = p.cli("plan", "-o", "markdown", "--detailed-exitcode")
    assert res.exit_code == 0 and "**no changes**" in res.stdout


def test_an_unknown_output_format_is_a_usage_error(project: Callable[..., Project]) -> None:
    p = project("report_bad")
    res = p.cli("plan", "-o", "yaml")
    assert res.exit_code == 2 and "--output" in res.stderr
