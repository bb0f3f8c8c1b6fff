"""Secret env values: masked in plan (text, JSON, saved), render and logs; read from the
environment with ${env:NAME}; sent to EAS as they are; a changed secret still shows as a change
and makes a saved plan stale (issue 11, item 4)."""

from __future__ import annotations

import json
from typing import Callable

import pytest

from eascomfy.sandbox.eas import EasSandbox

from .conftest import Project

HF = "hf_Lit3ralTokenInTheSpec9"  # a literal value under a name that looks secret
PIN = "Q7z!"  # marked secret: true, shorter than 6 characters
FROM_ENV = "from-the-environment-4Kx9"  # ${env:...}: never in the file
ENV_BLOCK = f"""env:
  TZ: Asia/Shanghai
  HF_TOKEN: {HF}
  TOKENIZERS_PARALLELISM: "false"
  SHOP_PIN: {{value: "{PIN}", secret: true}}
  CIVITAI: "${{env:EASCOMFY_TEST_CIVITAI}}"
"""


@pytest.fixture
def secret_project(project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.setenv("EASCOMFY_TEST_CIVITAI", FROM_ENV)
    p = project("secret_env_svc", version="1.9")
    p.spec.write_text(p.spec.read_text() + ENV_BLOCK)
    return p


def _no_secret(text: str) -> None:
    for value in (HF, PIN, FROM_ENV):
        assert value not in text


def test_render_masks_unless_asked(secret_project: Project) -> None:
    p = secret_project
    res = p.cli("render")
    assert res.exit_code == 0, res.stderr
    env = {e["name"]: e["value"] for e in json.loads(res.stdout)["containers"][0]["env"]}
    assert env == {"TZ": "Asia/Shanghai", "HF_TOKEN": "***", "TOKENIZERS_PARALLELISM": "false",
                   "SHOP_PIN": "***", "CIVITAI": "***"}
    _no_secret(res.stdout + res.stderr + p.cli("render", "-o", "json").stdout)
    assert p.cli("render", "--out", "service.json").exit_code == 0
    _no_secret((p.dir / "service.json").read_text())

    shown = p.cli("render", "--show-secrets")
    env = {e["name"]: e["value"] for e in json.loads(shown.stdout)["containers"][0]["env"]}
    assert (env["HF_TOKEN"], env["SHOP_PIN"], env["CIVITAI"]) == (HF, PIN, FROM_ENV)


def test_plan_and_saved_plan_never_hold_a_secret_but_deploy_sends_it(sandbox: EasSandbox, secret_project: Project) -> None:
    p = secret_project
    text = p.cli("plan")
    as_json = p.cli("plan", "-o", "json")
    saved = p.cli("plan", "--out", "plan.json")
    deployed = p.cli("-v", "deploy", "--plan", "plan.json")
    assert deployed.exit_code == 0, deployed.stderr
    plan_file = (p.dir / "plan.json").read_text()
    for res in (text, as_json, saved, deployed):
        _no_secret(res.stdout + res.stderr)
    _no_secret(plan_file)
    assert json.loads(plan_file)["secret_salt"]
    assert as_json.json()["data"]["labels_set"]["eascomfy/applied-sha"] == "***"  # a fast hash of the secrets

    env = {e["name"]: e["value"] for e in sandbox.get_service("secret_env_svc")["config"]["containers"][0]["env"]}
    assert (env["HF_TOKEN"], env["SHOP_PIN"], env["CIVITAI"]) == (HF, PIN, FROM_ENV)
    assert p.cli("plan", "--detailed-exitcode").exit_code == 0


def test_a_changed_secret_is_a_change_and_makes_a_saved_plan_stale(
    sandbox: EasSandbox, secret_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = secret_project
    assert p.cli("deploy").exit_code == 0
    assert p.cli("plan", "--out", "plan.json").exit_code == 0
    monkeypatch.setenv("EASCOMFY_TEST_CIVITAI", "rotated-value-8Hq2w")
    res = p.cli("plan", "--detailed-exitcode")
    assert res.exit_code == 2, res.stderr
    assert '~ containers[0].env[0].value: "***" -> "***"' in res.stdout  # CIVITAI sorts first
    assert "rotated-value-8Hq2w" not in res.stdout + res.stderr
    stale = p.cli("deploy", "--plan", "plan.json")
    assert stale.exit_code == 1 and "the spec renders differently" in stale.stderr


def test_an_unset_variable_warns_offline_and_stops_render(project: Callable[..., Project], monkeypatch) -> None:
    monkeypatch.delenv("EASCOMFY_TEST_UNSET", raising=False)
    p = project("secret_unset_svc", version="1.9")
    p.spec.write_text(p.spec.read_text() + 'env:\n  CIVITAI: "${env:EASCOMFY_TEST_UNSET}"\n')
    res = p.cli("validate")
    assert res.exit_code == 0 and "env.CIVITAI: ${env:EASCOMFY_TEST_UNSET} is not set here" in res.stderr
    for command in ("render", "plan"):
        res = p.cli(command)
        assert res.exit_code == 3, res.stderr
        assert "env.CIVITAI: the environment variable EASCOMFY_TEST_UNSET is not set" in res.stderr
