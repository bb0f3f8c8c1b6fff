"""The test session makes its own environment: what the shell that runs pytest has set (a proxy, an
output format, eascomfy's or the credential chain's settings, a golden-update switch) changes
neither what the tests see nor where they write."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import TESTS

ROOT = TESTS.parent
# One test per way the shell could leak in, each talking to its emulators over loopback.
SELECTION = [
    "tests/control/test_lifecycle.py::test_drift_made_in_the_console_is_reported",  # the EAS SDK; text output
    "tests/storage/test_storage_cli.py::test_push_multipart_is_byte_exact_and_repush_uploads_nothing",  # oss2
    "tests/workflows/test_run.py::test_progress_is_shown_and_set_changes_inputs",  # httpx and ComfyUI's websocket
    "tests/cli/test_offline_commands.py::test_validate_json_envelope_and_warnings",  # text and json output
    "tests/core/test_render_golden.py",  # compares with tests/golden/, never rewrites it
    "tests/control/test_secrets_and_tools.py::test_demo_runs_end_to_end",  # upload checkpoints in the state dir
]
CLOSED_PORT = "http://127.0.0.1:9"  # discard: nothing listens, a request sent to this proxy fails


def run_pytest(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "--color=no", "-p", "no:cacheprovider", "-p", "no:randomly", *args],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)


def test_a_polluted_shell_does_not_leak_into_the_tests(tmp_path: Path) -> None:
    home, cache, state = (tmp_path / name for name in ("home", "cache", "state"))
    for folder in (home, cache, state):
        folder.mkdir()
    profile = home / ".alibabacloud" / "credentials.ini"  # a real user's profile, with other keys
    profile.parent.mkdir()
    profile.write_text("[default]\ntype = access_key\naccess_key_id = LTAIoutsider\naccess_key_secret = outsider\n")
    env = {name: value for name, value in os.environ.items() if name.upper() != "NO_PROXY"}
    env.update({name: CLOSED_PORT for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")})
    env.update({
        "EASCOMFY_OUTPUT": "json",
        "EASCOMFY_UPDATE_GOLDEN": "1",
        "EASCOMFY_STATE_DIR": str(state),
        "XDG_CACHE_HOME": str(cache),
        "HOME": str(home),
        "ALIBABA_CLOUD_PROFILE": "outsider",
        "ALIBABA_CLOUD_CREDENTIALS_FILE": str(tmp_path / "no-such-credentials.ini"),
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIoutsider",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "outsider",
        "FORCE_COLOR": "1",
    })
    golden = {path: path.stat().st_mtime_ns for path in (TESTS / "golden").rglob("render*.json")}

    proc = run_pytest(SELECTION, env)

    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    summary = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed in .*", summary), summary
    assert int(summary.split()[0]) >= len(SELECTION)
    assert {path: path.stat().st_mtime_ns for path in golden} == golden, "a golden file was rewritten"
    assert not any(cache.iterdir()) and not any(state.iterdir()), "a test wrote into the user's cache"
    assert sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) == [
        ".alibabacloud", ".alibabacloud/credentials.ini"]


def test_update_golden_is_an_explicit_option_refused_under_ci(tmp_path: Path) -> None:
    golden = {path: path.stat().st_mtime_ns for path in (TESTS / "golden").rglob("render*.json")}
    proc = run_pytest(["--update-golden", "tests/core/test_render_golden.py"], {**os.environ, "CI": "true"})
    assert proc.returncode == 4, proc.stdout + proc.stderr  # pytest's usage error: nothing ran
    assert "--update-golden rewrites the expected files; it is refused when CI=true" in proc.stderr
    assert {path: path.stat().st_mtime_ns for path in golden} == golden
