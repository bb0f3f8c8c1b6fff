"""init, validate, render, editions, schema, --version through the CLI, as a user runs them."""

from __future__ import annotations

import json

import pytest

from eascomfy import __version__
from tests.conftest import TESTS


def test_init_writes_a_commented_valid_spec(cli, tmp_path) -> None:
    result = cli(
        "init", str(tmp_path), "--name", "comfy_dev", "--region", "cn-hangzhou", "--edition", "api",
        "--oss", "oss://my-bucket/comfyui/", "--instance-type", "ml.gu7i.c16m60.1-gu30",
    )
    assert result.exit_code == 0, result.stderr
    text = (tmp_path / "eascomfy.yaml").read_text()
    assert text.startswith("# eascomfy.yaml")
    assert "oss: oss://my-bucket/comfyui/" in text and "queue:" in text
    rendered = cli("render", "-f", str(tmp_path / "eascomfy.yaml"))
    doc = json.loads(rendered.stdout)
    assert doc["containers"][0]["image"].endswith("comfyui:1.9-api")
    assert doc["metadata"]["type"] == "Async"


def test_init_refuses_to_overwrite_without_force(cli, tmp_path) -> None:
    args = ("init", str(tmp_path), "--name", "comfy_dev", "--region", "cn-hangzhou")
    assert cli(*args).exit_code == 0
    (tmp_path / "eascomfy.yaml").write_text("# mine\n")
    again = cli(*args)
    assert again.exit_code == 2 and "--force" in again.stderr
    assert (tmp_path / "eascomfy.yaml").read_text() == "# mine\n"
    forced = cli(*args, "--force")
    assert forced.exit_code == 0, forced.stderr
    text = (tmp_path / "eascomfy.yaml").read_text()
    assert text.startswith("# eascomfy.yaml") and "name: comfy_dev" in text  # the file was written anew


@pytest.mark.parametrize(
    "extra,fragment",
    [
        (("--name", "Bad-Name"), "--name: 'Bad-Name' is not valid"),
        (("--name", "comfy_ok", "--edition", "apu"), "did you mean 'api'?"),
        (("--name", "comfy_ok", "--oss", "oss://x"), "--oss:"),
        (("--name", "comfy_ok", "--edition", "serverless"), "region: the Serverless Edition is only available"),
    ],
)
def test_init_bad_options_write_nothing(cli, tmp_path, extra, fragment) -> None:
    result = cli("init", str(tmp_path), "--region", "cn-beijing", *extra)
    assert result.exit_code == 2, result.stderr
    assert fragment in result.stderr
    assert not (tmp_path / "eascomfy.yaml").exists()


def test_validate_json_envelope_and_warnings(cli, tmp_path) -> None:
    spec = tmp_path / "eascomfy.yaml"
    spec.write_text(
        "name: comfy_std\nregion: cn-hangzhou\nedition: standard\n"
        "resources:\n  instances: 3\n  instance_type: ecs.gn6i-c24g1.12xlarge\n"
    )
    env = cli("validate", "-f", str(spec), "-o", "json").json()
    assert env["ok"] is True and env["command"] == "validate" and env["version"] == __version__
    assert env["data"]["edition"] == "standard"
    assert any("one instance" in w for w in env["warnings"])
    assert any("2 GPUs" in w for w in env["warnings"])
    text = cli("validate", "-f", str(spec))
    assert "warning: resources.instances" in text.stderr


def test_edition_flag_overrides_spec(cli) -> None:
    spec = TESTS / "golden" / "standard-oss" / "eascomfy.yaml"
    doc = json.loads(cli("render", "-f", str(spec), "--edition", "cluster").stdout)
    assert doc["containers"][0]["image"].endswith(":1.9-cluster")
    bad = cli("render", "-f", str(spec), "--edition", "clustr")
    assert bad.exit_code == 2 and "did you mean 'cluster'?" in bad.stderr


def test_serverless_render_warns_it_is_console_only(cli) -> None:
    result = cli("render", "-f", str(TESTS / "golden" / "serverless" / "eascomfy.yaml"))
    assert result.exit_code == 0
    assert "cannot be created through the EAS API" in result.stderr
    assert json.loads(result.stdout)["deployable_by_api"] is False


def test_editions_table_and_json(cli) -> None:
    data = cli("editions", "-o", "json").json()["data"]
    by_name = {e["name"]: e for e in data}
    assert list(by_name) == ["standard", "api", "cluster", "serverless"]
    assert by_name["api"]["capabilities"]["async_api"] is True
    assert by_name["serverless"]["regions"] == ["cn-shanghai", "cn-hangzhou"]
    assert by_name["cluster"]["image_suffix"] == "-cluster"
    text = cli("editions")
    assert text.exit_code == 0, text.stderr
    # One table row per edition, saying what the JSON says: its tag, WebUI, async API and regions.
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.strip("│").split("│")]
                                           for line in text.stdout.splitlines() if line.startswith("│"))}
    assert list(rows) == list(by_name)
    for name, edition in by_name.items():
        row, caps = rows[name], edition["capabilities"]
        suffix = edition["image_suffix"]
        assert row[1] == ("-" if suffix is None else f"x.y{suffix}")
        assert (row[2], row[4]) == tuple("yes" if caps[k] else "no" for k in ("webui", "async_api"))
        assert row[-1] == (" ".join(edition["regions"]) or "all")


def test_project_edition_added_without_code_change(cli, tmp_path) -> None:
    """A user's own editions/ folder adds an edition: a data file, no code."""
    (tmp_path / "editions").mkdir()
    (tmp_path / "editions" / "lowvram.yaml").write_text(
        "name: lowvram\ntitle: Low-VRAM Edition\ndescription: Standard image with --lowvram.\n"
        "image_suffix: ''\ncapabilities: {webui: true, sync_api: true, async_api: false, custom_models: true,"
        " custom_nodes: true, storage: true, image_updates: true, api_deploy: true}\n"
        "defaults:\n  extra_args: [--lowvram]\nservice:\n  metadata:\n    enable_webservice: true\n"
    )
    spec = tmp_path / "eascomfy.yaml"
    spec.write_text("name: comfy_low\nregion: cn-hangzhou\nedition: lowvram\n")
    doc = json.loads(cli("render", "-f", str(spec)).stdout)
    assert doc["containers"][0]["script"].endswith("--lowvram")
    listed = cli("editions", "-o", "json", cwd=tmp_path).json()["data"]
    assert "lowvram" in [e["name"] for e in listed]


def test_broken_project_edition_is_a_clear_error(cli, tmp_path) -> None:
    (tmp_path / "editions").mkdir()
    (tmp_path / "editions" / "odd.yaml").write_text("name: odd\ntitle: Odd\n")
    spec = tmp_path / "eascomfy.yaml"
    spec.write_text("name: comfy_odd\nregion: cn-hangzhou\nedition: odd\n")
    result = cli("validate", "-f", str(spec))
    assert result.exit_code == 3
    assert "odd.yaml" in result.stderr and "missing required field" in result.stderr


def test_version_and_help(cli) -> None:
    assert cli("--version").stdout.strip() == f"eascomfy {__version__}"
    helptext = cli("--help").stdout
    for word in ("init", "validate", "render", "editions", "schema", "Exit codes"):
        assert word in helptext
    render_help = cli("render", "--help")
    assert render_help.exit_code == 0
    assert "Print the EAS service JSON (the exact CreateService body) for a spec" in render_help.stdout
    for option in ("--file", "--env", "--edition", "--out", "--output"):
        assert option in render_help.stdout


def test_bad_output_format_is_usage_error(cli) -> None:
    result = cli("editions", "-o", "yaml")
    assert result.exit_code == 2
    assert "Invalid value for --output: expected text or json, got 'yaml'" in result.stderr
    assert result.stdout == ""  # nothing printed in some other format
