"""No secret in any output; the sandbox command; the demo; the pure planner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eascomfy.core.plan import EAS_ADDED_FIELDS, config_sha, diff, make_plan, normalize
from eascomfy.sandbox.credentials import SANDBOX_ACCESS_KEY_SECRET
from eascomfy.sandbox.eas import EasSandbox
from tests.conftest import run_cli

from .conftest import Project


def test_no_secret_in_any_log_or_verbose_output(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("secret_svc")
    outputs = []
    for args in (["-v", "deploy"], ["-v", "status"], ["-v", "plan"], ["-o", "json", "status"], ["-v", "versions"]):
        res = p.cli(*args)
        assert res.exit_code == 0, res.stderr
        outputs.append(res.stdout + res.stderr)
    url_run = p.cli("-v", "signed-url", "--expire", "600")
    assert url_run.exit_code == 0
    url = url_run.stdout.strip()
    outputs.append(url_run.stderr)
    p.edit("instances: 1", "instances: 2")
    failed = p.cli("-v", "update-image", "9.8", "--allow-other-changes", "--force")  # a failing path with retries and rollback
    assert failed.exit_code == 4
    outputs.append(failed.stdout + failed.stderr)
    token = sandbox.get_service("secret_svc")["access_token"]
    signature = url.split("signature=")[1]
    everything = "\n".join(outputs)
    assert "debug: DescribeService secret_svc ok" in everything  # verbose output is there...
    for secret in (SANDBOX_ACCESS_KEY_SECRET, token, url, signature):  # ...without secrets
        assert secret not in everything


def test_sandbox_command_prints_eval_able_exports(tmp_path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "eascomfy", "sandbox", "--state", str(tmp_path), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines = [proc.stdout.readline().strip() for _ in range(4)]
        exports = dict(line.removeprefix("export ").split("=", 1) for line in lines)
        assert all(line.startswith("export ") for line in lines)
        assert set(exports) == {
            "EASCOMFY_EAS_ENDPOINT", "EASCOMFY_OSS_ENDPOINT", "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
        }
        assert exports["EASCOMFY_EAS_ENDPOINT"].startswith("http://127.0.0.1:")
        # An unsigned request is refused: it must raise (a success here would be a hole).
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(exports["EASCOMFY_EAS_ENDPOINT"] + "/api/v2/services", timeout=5)
        assert refused.value.code == 400
        assert json.loads(refused.value.read())["Code"] == "MissingAuthorization"
        import oss2

        auth = oss2.AuthV4(exports["ALIBABA_CLOUD_ACCESS_KEY_ID"], exports["ALIBABA_CLOUD_ACCESS_KEY_SECRET"])
        bucket = oss2.Bucket(auth, exports["EASCOMFY_OSS_ENDPOINT"], "from-the-shell", region="cn-hangzhou")
        bucket.create_bucket()
        bucket.put_object("k", b"v")
        assert bucket.get_object("k").read() == b"v"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def test_demo_runs_end_to_end(tmp_path) -> None:
    res = run_cli("demo", "--dir", str(tmp_path))
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip().startswith("http://127.0.0.1:") and "/webview/comfy_demo/" in res.stdout
    for step in ("init", "storage init", "models push", "CRC64 verified", "nodes push", "plan", "deploy", "update-image 2.2",
                 "check", "0 problems", "submit", "results", "run on a Standard-edition service", "signed-url", "status"):
        assert step in res.stderr
    outputs = sorted(p.suffix for p in (tmp_path / "outputs").rglob("*") if p.is_file())
    assert outputs == [".mp4", ".mp4", ".png", ".png", ".webp", ".webp"]  # submit + results, and run
    assert 'version: "2.2"' in (tmp_path / "eascomfy.yaml").read_text()


# -- the pure planner ------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=12,
)


@given(json_values)
def test_diff_of_a_value_with_itself_is_empty(value) -> None:
    assert diff(value, value) == []


def test_normalize_drops_what_eas_adds_and_sorts_keys() -> None:
    live = {"name": "x", "metadata": {"instance": 1, **{p[1]: "eas" for p in EAS_ADDED_FIELDS}}, "containers": [{"b": 1, "a": 2}]}
    assert normalize(live) == {"containers": [{"a": 2, "b": 1}], "metadata": {"instance": 1}, "name": "x"}
    assert list(normalize(live)) == ["containers", "metadata", "name"]
    assert config_sha(live) == config_sha({"name": "x", "containers": [{"a": 2, "b": 1}], "metadata": {"instance": 1}})


def test_diff_kinds_and_paths() -> None:
    changes = diff({"a": {"b": 2}, "l": [1, 2], "n": 1}, {"a": {"b": 1, "c": 0}, "l": [1], "old": True})
    assert [(c.path, c.kind) for c in changes] == [
        ("a.b", "change"), ("a.c", "remove"), ("l", "change"), ("n", "add"), ("old", "remove")
    ]
    assert diff({"x": 1}, {"x": True})[0].kind == "change"  # 1 == True in Python, not in JSON


def test_make_plan_actions() -> None:
    desired = {"metadata": {"instance": 1, "name": "s"}}
    create = make_plan("s", "r", desired, {"k": "v"}, None)
    assert create.action == "create" and create.labels_set["eascomfy/applied-sha"] == config_sha(desired)
    labels = dict(create.labels_set)
    assert make_plan("s", "r", desired, {"k": "v"}, desired, labels).action == "noop"
    assert make_plan("s", "r", desired, {"k": "w"}, desired, labels).action == "labels"
    stale = {**labels, "eascomfy/old": "1"}
    assert make_plan("s", "r", desired, {"k": "v"}, desired, stale).labels_remove == ["eascomfy/old"]
    drifted = make_plan("s", "r", desired, {"k": "v"}, {"metadata": {"instance": 2, "name": "s"}}, labels)
    assert drifted.action == "update" and drifted.drift


def test_rewrite_image_version_adds_the_key_keeping_layout(tmp_path) -> None:
    from eascomfy.local.specfile import rewrite_image_version

    base = "name: x   # the name\nlist:\n    - a   # item\n"
    spec = tmp_path / "eascomfy.yaml"
    spec.write_text(base)
    assert rewrite_image_version(spec, "2.2") and spec.read_text() == base + 'image:\n  version: "2.2"\n'
    spec.write_text(base + "image:\n    registry: vpc  # r\n")
    assert rewrite_image_version(spec, "2.1")
    assert spec.read_text() == base + 'image:\n    version: "2.1"\n    registry: vpc  # r\n'
    assert not rewrite_image_version(spec, "2.1")
