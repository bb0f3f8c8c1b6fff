"""The bad-input corpus: every broken spec gives one clear line, exit 3, and no traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import TESTS, run_cli

BAD = TESTS / "specs" / "bad"
# file -> (line in the message, or None when the file has none; a fragment the message must hold)
EXPECT = {
    "01-empty.yaml": (None, "is empty"),
    "02-comments-only.yaml": (None, "is empty"),
    "03-not-yaml.yaml": (2, "not valid YAML"),
    "04-list-top.yaml": (1, "expected a mapping at the top level, got a list"),
    "05-scalar-top.yaml": (1, "expected a mapping at the top level"),
    "06-unknown-key.yaml": (4, "unknown field 'resourses'; expected one of: name"),
    "07-unknown-nested.yaml": (5, "resources.instance_typ: unknown field"),
    "08-bad-edition.yaml": (3, "unknown edition 'standart'"),
    "09-bad-name-upper.yaml": (1, "name: 'ComfyBad' is not valid"),
    "10-bad-name-hyphen.yaml": (1, "(no hyphens)"),
    "11-bad-name-short.yaml": (1, "name: 'ab' is not valid"),
    "12-missing-region.yaml": (1, "missing required field 'region'"),
    "13-wrong-type-instances.yaml": (5, "resources.instances: expected an integer, got 'two'"),
    "14-negative-instances.yaml": (5, "expected a value >= 0, got -1"),
    "15-version-float.yaml": (5, 'image.version: expected a string, got 1.1 (quote it to keep it text: "1.10")'),
    "16-bad-oss-uri.yaml": (5, "storage.oss: 's3://bucket/x/' is not valid"),
    "17-oss-no-trailing-slash.yaml": (5, "prefix ends with /"),
    "18-mount-not-absolute.yaml": (6, "storage.mount_path: 'code/data-oss' is not valid: expected an absolute path"),
    "19-serverless-region.yaml": (2, "only available in cn-shanghai, cn-hangzhou, not cn-beijing"),
    "20-serverless-storage.yaml": (4, "cannot mount storage"),
    "21-api-no-storage.yaml": (1, "the API edition needs storage"),
    "22-yaml-bomb.yaml": (1, "YAML bombs"),
    "23-duplicate-key.yaml": (4, "duplicate key 'name' (first set at line 1)"),
    "24-binary.yaml": (None, "is a binary file"),
    "25-oss-and-nas.yaml": (4, "set exactly one of 'oss' or 'nas', not both"),
    "26-bucket-region-mismatch.yaml": (6, "in cn-shanghai but the service is in cn-hangzhou"),
    "27-wheels-without-storage.yaml": (4, "needs storage"),
    "28-wheel-with-path.yaml": (6, "wheels[0]: '../evil.whl' is not valid"),
    "29-autoscaling-max-le-min.yaml": (8, "expected max > min (3), got 2"),
    "30-resource-group-with-type.yaml": (6, "instance types are for public resources"),
    "31-cpu-without-group.yaml": (5, "applies to a dedicated resource group only"),
    "32-env-not-mapping.yaml": (4, "env: expected a mapping, got a list"),
    "33-label-not-string.yaml": (5, "labels.team: expected a string, got 7"),
    "34-multi-document.yaml": (4, "several YAML documents"),
    "35-merge-key.yaml": (2, "merge keys (<<) are not supported"),
    "36-tab-indent.yaml": (2, "tab character"),
    "37-bad-region.yaml": (2, "expected a region id such as cn-hangzhou"),
    "38-overlay-typo.yaml": (7, "environments.prod.resources.instanses: unknown field 'instanses'"),
    "39-image-uri-and-version.yaml": (4, "set image.uri or image.version, not both"),
    "40-bad-registry.yaml": (5, "did you mean 'vpc'?"),
    "41-serverless-wheels.yaml": (4, "cannot install wheels"),
    "42-non-string-key.yaml": (4, "keys must be plain strings"),
    "43-queue-bad-type.yaml": (7, "queue.cpu: expected an integer, got 'lots'"),
    "44-latin1.yaml": (None, "is not UTF-8 text"),
    "45-threshold-nan.yaml": (9, "autoscaling.threshold: .nan is not a finite number"),
    "46-override-inf.yaml": (6, "overrides.metadata.rpc.keepalive: -.inf is not a finite number"),
    "47-env-name-equals.yaml": (6, "env.A=B: 'A=B' is not valid: expected an environment variable name"),
    "48-env-name-nul.yaml": (5, "is not valid: expected an environment variable name"),
    "49-python-tag.yaml": (1, "name: the YAML tag !!python/name:os.system is not supported"),
    "50-python-tag-sequence.yaml": (4, "overrides: the YAML tag !!python/object/apply:os.system is not supported"),
    "51-date-in-overrides.yaml": (5, 'overrides.metadata.since: a date is not a JSON value (quote it to keep it text: "2024-01-01")'),
    "52-override-name.yaml": (5, "overrides.name: the service's identity is the spec's name; change name instead"),
    "53-override-metadata-name.yaml": (7, "overrides.metadata.name: the service's identity is the spec's name; change name"),
    "54-override-instances.yaml": (5, "overrides.metadata.instance: set by the spec's resources.instances; change resources.instances"),
    "55-override-image.yaml": (9, "overrides.containers[0].image: set by the spec's image.version or image.uri"),
    "56-override-deletes-name.yaml": (5, "overrides.metadata: null would delete metadata.name, set by the spec's name"),
    "57-override-instance-types.yaml": (7, "overrides.cloud.computing.instances: set by the spec's resources.instance_type"),
    "58-region-typo.yaml": (2, "region: 'cn-hangzhuo' is not an EAS region eascomfy knows (did you mean 'cn-hangzhou'? a region"),
    "59-region-unknown.yaml": (3, "region: 'cn-nowhere-9' is not an EAS region eascomfy knows (known: ap-northeast-1,"),
    "60-cron-five-fields.yaml": (7, "has 5 fields; EAS takes 6, seconds first: did you mean: add a seconds field ('0 0 8 * * *')?"),
    "61-scale-to-zero-standard.yaml": (5, "min 0 (scale to zero) is refused: the standard edition has no queue"),
    "62-scale-to-zero-no-queue.yaml": (7, "scale to zero needs the queue[avgbacklog] metric"),
    "63-metric-typo.yaml": (7, "autoscaling.metrics[0].name: expected one of qps, cpu, gpu[util], queue[avgbacklog], got 'gpu' (did you mean 'gpu[util]'?)"),
    "64-queue-metric-standard.yaml": (4, "the queue[avgbacklog] metric needs the EAS queue: only the API edition has it"),
    "65-cron-bad-weekday.yaml": (9, "schedules[1].cron: cron '0 0 20 * * 8': day of week '8' is outside 0-6"),
}


def test_corpus_is_complete() -> None:
    assert sorted(p.name for p in BAD.iterdir()) == sorted(EXPECT)
    assert len(EXPECT) >= 30


@pytest.mark.parametrize("name", sorted(EXPECT))
@pytest.mark.parametrize("command", ["validate", "render"])
def test_bad_spec_one_clear_line(name: str, command: str) -> None:
    line, fragment = EXPECT[name]
    path = BAD / name
    result = run_cli(command, "-f", str(path))
    assert result.exit_code == 3, result.stderr
    assert result.stdout == ""
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"error: {path}" + (f":{line}:" if line else ":")), first
    assert fragment in first
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["06-unknown-key.yaml", "22-yaml-bomb.yaml", "24-binary.yaml"])
def test_bad_spec_json_envelope(name: str) -> None:
    result = run_cli("validate", "-f", str(BAD / name), "--output", "json")
    assert result.exit_code == 3
    env = result.json()
    assert env["ok"] is False and env["exit_code"] == 3
    assert env["error"]["type"] == "invalid_spec"
    assert env["error"]["file"] == str(BAD / name)
    assert env["error"]["message"]


def test_bad_spec_in_a_real_process_has_no_traceback() -> None:
    """The console script as a user runs it: one line on stderr, exit 3."""
    proc = subprocess.run(
        [sys.executable, "-m", "eascomfy", "render", "-f", str(BAD / "22-yaml-bomb.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_missing_file_says_how_to_start(tmp_path) -> None:
    result = run_cli("validate", "-f", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 3
    assert "file not found" in result.stderr and "eascomfy init" in result.stderr


def test_unknown_env_is_usage_error_with_hint() -> None:
    result = run_cli("validate", "-f", str(TESTS / "golden" / "api-full" / "eascomfy.yaml"), "--env", "prdo")
    assert result.exit_code == 2
    assert "unknown environment 'prdo' (known: dev, prod)" in result.stderr
    assert "did you mean 'prod'?" in result.stderr


def test_several_problems_each_on_a_line(tmp_path) -> None:
    spec = tmp_path / "eascomfy.yaml"
    spec.write_text("name: Bad\nregion: cn-hangzhou\nedition: standard\nresources:\n  instances: x\n")
    result = run_cli("validate", "-f", str(spec), "-o", "json")
    env = result.json()
    assert env["error"]["line"] == 1
    assert [o["line"] for o in env["error"]["others"]] == [5]
    text = run_cli("validate", "-f", str(spec))
    assert len(text.stderr.strip().splitlines()) == 2
