"""The CI examples cannot rot: every step of examples/ci/github-actions.yml that calls eascomfy
runs, as the runner would run it (bash -eo pipefail), against the sandbox: the pull request's
job (validate, check, plan -> markdown comment + saved plan), then the merge's job (deploy --plan
of that plan). Steps that need GitHub itself (the OIDC token, gh, actions) are left out; the
sandbox's AccessKey stands in for the OIDC credentials. The GitLab pipeline is checked for the
same eascomfy commands and its OIDC wiring."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from eascomfy.sandbox.eas.state import Timings
from eascomfy.sandbox.stack import SandboxStack
from tests.conftest import TESTS

ROOT = TESTS.parent
GITHUB = ROOT / "examples" / "ci" / "github-actions.yml"
GITLAB = ROOT / "examples" / "ci" / "gitlab-ci.yml"
CALLS_EASCOMFY = re.compile(r"(^|[;&|(]\s*|\b(do|then)\s+)eascomfy\s", re.M)
FAST = Timings(creating=0.1, updating=0.1, ready=0.1, stopping=0.05, starting=0.1, deleting=0.05)


def eascomfy_steps(job: dict) -> list[dict]:
    return [s for s in job["steps"] if "run" in s and CALLS_EASCOMFY.search(s["run"])]


def test_github_workflow_shape() -> None:
    doc = yaml.safe_load(GITHUB.read_text())
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` as true
    assert set(on) == {"pull_request", "push"}
    assert doc["env"]["ALIBABA_CLOUD_ROLE_ARN"] and doc["env"]["ALIBABA_CLOUD_OIDC_PROVIDER_ARN"]
    text = GITHUB.read_text()
    assert "ACCESS_KEY" not in text  # OIDC only, never long-lived keys
    for name in ("plan", "deploy"):
        job = doc["jobs"][name]
        assert job["permissions"]["id-token"] == "write"
        for step in job["steps"]:
            if "run" in step:
                assert "${{" not in step["run"], f"{step.get('name')}: expressions belong in env:"
    runs = "\n".join(s["run"] for s in doc["jobs"]["plan"]["steps"] if "run" in s)
    assert "ALIBABA_CLOUD_OIDC_TOKEN_FILE" in runs and "sys.stdout.write" in runs  # no trailing newline
    assert "eascomfy plan --detailed-exitcode --out plan/plan.json -o markdown" in runs
    uploads = [s for s in doc["jobs"]["plan"]["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert uploads and uploads[0]["with"]["path"] == "plan/"
    deploy = "\n".join(s["run"] for s in doc["jobs"]["deploy"]["steps"] if "run" in s)
    assert "eascomfy deploy --plan plan/plan.json" in deploy and "--dir plan" in deploy


def test_gitlab_pipeline_shape() -> None:
    doc = yaml.safe_load(GITLAB.read_text())
    assert doc[".alibaba-oidc"]["id_tokens"]["ALIBABA_CLOUD_OIDC_TOKEN"]["aud"] == "sts.aliyuncs.com"
    setup = "\n".join(doc[".alibaba-oidc"]["before_script"])
    assert "printf '%s'" in setup and "ALIBABA_CLOUD_OIDC_TOKEN_FILE" in setup
    plan = "\n".join(doc["plan"]["script"])
    assert "eascomfy plan --detailed-exitcode --out plan/plan.json -o markdown" in plan
    assert doc["plan"]["artifacts"]["paths"] == ["plan/"]
    assert "eascomfy deploy --plan plan/plan.json" in doc["deploy"]["script"]
    assert "ACCESS_KEY" not in GITLAB.read_text()


def _bin_dir() -> str:
    found = shutil.which("eascomfy", path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip("the eascomfy console script is not installed next to this Python")
    return str(Path(found).parent)


def _run_step(step: dict, cwd: Path, env: dict[str, str], runner: Path) -> subprocess.CompletedProcess[str]:
    script = runner / "step.sh"
    script.write_text(step["run"])
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )


def test_github_steps_run_against_the_sandbox(tmp_path: Path) -> None:
    doc = yaml.safe_load(GITHUB.read_text())
    repo, runner = tmp_path / "repo", tmp_path / "runner"
    runner.mkdir()
    init = subprocess.run(
        [sys.executable, "-m", "eascomfy", "init", str(repo), "--name", "gitops_svc", "--region", "cn-hangzhou",
         "--edition", "standard", "--oss", "oss://gitops-bucket/comfyui/"],
        capture_output=True, text=True,
    )
    assert init.returncode == 0, init.stderr
    (repo / "workflows").mkdir()
    shutil.copy(TESTS / "fixtures" / "seed-workflow.api.json", repo / "workflows" / "seed.json")

    with SandboxStack(tmp_path / "sandbox", timings=FAST) as stack:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "EASCOMFY_"))}
        files = {name: runner / name for name in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_STEP_SUMMARY")}
        env.update({k: str(v) for k, v in files.items()})
        env.update(stack.env(), RUNNER_TEMP=str(runner), ALIBABA_CLOUD_ECS_METADATA_DISABLED="true",
                   PATH=_bin_dir() + os.pathsep + env.get("PATH", ""))
        ran: list[str] = []
        for job in ("plan", "deploy"):
            for step in eascomfy_steps(doc["jobs"][job]):
                res = _run_step(step, repo, env, runner)
                assert res.returncode == 0, f"{job} / {step['name']}:\n{res.stdout}\n{res.stderr}"
                ran.append(step["name"])
            if job == "plan":
                # what the pull request shows: a markdown comment, a saved plan, a step output
                md = (repo / "plan" / "plan.md").read_text()
                assert md.startswith("### eascomfy plan: `gitops_svc`") and "**create**" in md
                assert '"format": "eascomfy-plan/1"' in (repo / "plan" / "plan.json").read_text()
                assert "changes=true" in files["GITHUB_OUTPUT"].read_text()
                assert "eascomfy plan" in files["GITHUB_STEP_SUMMARY"].read_text()
        assert ran == ["Validate the spec", "Check the workflows", "Plan", "Deploy the reviewed plan", "Status"]
        record = stack.eas.get_service("gitops_svc")
        assert record is not None and record["status"] == "Running"

        # the same reviewed plan cannot be applied twice: the service changed since it was made
        res = _run_step({"run": "eascomfy deploy --plan plan/plan.json"}, repo, env, runner)
        assert res.returncode != 0 and "stale" in res.stderr
