"""Health checks and networking through the CLI against the EAS emulator: the probes (the
edition's ComfyUI defaults, changed field by field) and ``cloud.networking`` reach CreateService,
``plan`` shows a network change, ``import`` reads both back; bad probes and ids are refused
offline, with one clear line and no call made."""

from __future__ import annotations

import json
import re
import string
from typing import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eascomfy.sandbox.eas import EasSandbox
from tests.conftest import run_cli

from .conftest import Project, api_calls, mark

NETWORK = """network:
  vpc_id: vpc-bp1a2b3c4d5e6f7g8h9i0
  vswitch_id: vsw-bp1aaaaaaaaaaaaaaaaaa
  security_group_id: sg-bp1a2b3c4d5e6f7g8h9i0
"""


def add(p: Project, block: str) -> None:
    """Put a top-level block into the spec (before the environments the scaffold writes)."""
    p.edit("environments:", block + "environments:")


def config_of(sandbox: EasSandbox, name: str) -> dict:
    config = sandbox.get_service(name)["config"]
    return json.loads(config) if isinstance(config, str) else config


def test_probes_and_network_reach_create_service_and_come_back_with_import(
        sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("probe_svc", edition="api")
    add(p, NETWORK + "health:\n  startup:\n    failure_threshold: 120\n  liveness: null\n")
    res = p.cli("deploy")
    assert res.exit_code == 0, res.stderr
    config = config_of(sandbox, "probe_svc")
    container = config["containers"][0]
    # the API edition's default startup probe, its failure_threshold changed, every timing field sent
    assert container["startup_check"] == {"http_get": {"path": "/system_stats", "port": 8000}, "failure_threshold": 120,
                                          "initial_delay_seconds": 0, "period_seconds": 10, "success_threshold": 1,
                                          "timeout_seconds": 5}
    assert container["readiness_check"]["http_get"]["path"] == "/system_stats"
    assert "liveness_check" not in container  # null drops the edition's probe
    assert config["cloud"]["networking"] == {"vpc_id": "vpc-bp1a2b3c4d5e6f7g8h9i0",
                                             "vswitch_id": "vsw-bp1aaaaaaaaaaaaaaaaaa",
                                             "security_group_id": "sg-bp1a2b3c4d5e6f7g8h9i0"}
    assert config["cloud"]["computing"]["instances"]  # networking merges beside computing

    # plan shows a network change (two vSwitches: sent comma-separated)
    p.edit("vswitch_id: vsw-bp1aaaaaaaaaaaaaaaaaa", "vswitch_id: [vsw-bp1aaaaaaaaaaaaaaaaaa, vsw-bp1bbbbbbbbbbbbbbbbbb]")
    plan = p.cli("-o", "json", "plan").json()["data"]
    changed = {c["path"]: c for c in plan["changes"]}
    assert changed["cloud.networking.vswitch_id"]["new"] == "vsw-bp1aaaaaaaaaaaaaaaaaa,vsw-bp1bbbbbbbbbbbbbbbbbb"
    assert "cloud.networking.vswitch_id" in p.cli("plan").stdout

    # import reads both back: the written spec plans no change
    out = p.dir.parent / "imported"
    out.mkdir()
    res = run_cli("import", "--service", "probe_svc", "--region", "cn-hangzhou", "--out", str(out / "eascomfy.yaml"), "--no-adopt")
    assert res.exit_code == 0, res.stderr
    text = (out / "eascomfy.yaml").read_text()
    assert "network:\n  vpc_id: vpc-bp1a2b3c4d5e6f7g8h9i0" in text and "liveness: null" in text
    assert "overrides" not in text  # all of it modelled
    again = run_cli("-o", "json", "plan", "-f", str(out / "eascomfy.yaml")).json()["data"]
    assert again["has_changes"] is False, again["changes"]


def test_a_probe_given_its_own_method_replaces_the_editions(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("method_svc", edition="standard")
    add(p, "health:\n  readiness:\n    exec: {command: [sh, -c, 'test -f /tmp/ok']}\n")
    assert p.cli("deploy").exit_code == 0
    readiness = config_of(sandbox, "method_svc")["containers"][0]["readiness_check"]
    assert readiness["exec"] == {"command": ["sh", "-c", "test -f /tmp/ok"]} and "http_get" not in readiness
    assert readiness["timeout_seconds"] == 5  # the edition's timing stays under the user's method


BAD_PROBES = [
    ("health:\n  startup:\n    htp_get: {path: /, port: 8000}\n", "health.startup.htp_get", "did you mean 'http_get'?"),
    ("health:\n  startup:\n    tcp_socket: {port: 8000}\n    exec: {command: ['true']}\n", "health.startup",
     "exactly one of http_get, tcp_socket, exec; got tcp_socket and exec"),
    ("health:\n  readiness:\n    http_get: {path: /, port: 8080}\n", "health.readiness.http_get.port",
     "port 8080 is the EAS engine's own port"),
    ("health:\n  liveness:\n    success_threshold: 2\n", "health.liveness.success_threshold", "must be 1 for a liveness probe"),
    ("health:\n  readiness:\n    http_get: {path: system_stats, port: 8000}\n", "health.readiness.http_get.path",
     "expected an absolute URL path"),
    ("health:\n  startup:\n    period_seconds: 0\n", "health.startup.period_seconds", "expected a value >= 1"),
    ("network:\n  vpc_id: vpc-bp1a2b3c4d5e6f7g8h9i0\n", "network", "missing required field 'vswitch_id'"),
    ("network:\n  vpc_id: vsw-bp1a2b3c4d5e6f7g8h9i0\n  vswitch_id: vsw-bp1aaaaaaaaaaaaaaaaaa\n  security_group_id: sg-bp1a2b3c4d5e6f7g8h9i0\n",
     "network.vpc_id", "expected a VPC id: vpc-"),
    ("network:\n  vpc: vpc-bp1a2b3c4d5e6f7g8h9i0\n", "network.vpc", "did you mean 'vpc_id'?"),
]


def test_bad_probes_and_network_are_refused_offline(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("bad_probe", edition="standard")
    base = p.spec.read_text()
    for block, path, fragment in BAD_PROBES:
        p.spec.write_text(base.replace("environments:", block + "environments:", 1))
        before = mark(sandbox)
        res = p.cli("deploy")
        assert res.exit_code == 3, (block, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert all(line.startswith("error: ") for line in lines) and "Traceback" not in res.stderr, res.stderr
        line = next((l for l in lines if f"{path}:" in l and fragment in l), None)
        assert line is not None, (block, lines)
        assert re.search(r"eascomfy\.yaml:\d+", line), line  # file and line
        assert api_calls(sandbox, before) == []


ID_CHARS = string.ascii_letters + string.digits + "-_."


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["vpc_id", "vswitch_id", "security_group_id"]),
       value=st.text(alphabet=ID_CHARS, min_size=0, max_size=40))
def test_any_malformed_id_is_refused_with_no_call(sandbox: EasSandbox, tmp_path_factory, field: str, value: str) -> None:
    prefix = {"vpc_id": "vpc", "vswitch_id": "vsw", "security_group_id": "sg"}[field]
    good = re.fullmatch(rf"{prefix}-[a-z0-9]{{8,32}}", value) is not None
    ids = {"vpc_id": "vpc-bp1a2b3c4d5e6f7g8h9i0", "vswitch_id": "vsw-bp1aaaaaaaaaaaaaaaaaa",
           "security_group_id": "sg-bp1a2b3c4d5e6f7g8h9i0", field: value}
    folder = tmp_path_factory.mktemp("ids")
    spec = folder / "eascomfy.yaml"
    spec.write_text("name: id_svc\nregion: cn-hangzhou\nedition: standard\nimage: {version: '1.8'}\n"
                    "network:\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in ids.items()))
    before = mark(sandbox)
    res = run_cli("-o", "json", "render", "-f", str(spec))
    if good:
        assert res.exit_code == 0, res.stderr
        assert res.json()["data"]["service"]["cloud"]["networking"][field] == value
    else:
        assert res.exit_code == 3, res.stdout
        assert res.json()["error"]["path"] == f"network.{field}"
    assert api_calls(sandbox, before) == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["startup", "liveness", "readiness"]),
       probe=st.fixed_dictionaries({}, optional={
           "http_get": st.fixed_dictionaries({"path": st.sampled_from(["/", "/system_stats", "x", ""]),
                                              "port": st.integers(-1, 70000)}),
           "tcp_socket": st.fixed_dictionaries({"port": st.integers(-1, 70000)}),
           "exec": st.fixed_dictionaries({"command": st.lists(st.sampled_from(["true", "", "sh"]), max_size=2)}),
           "period_seconds": st.integers(-2, 4000),
           "success_threshold": st.integers(0, 3),
       }))
def test_any_probe_is_rendered_or_refused_by_the_same_rules(tmp_path_factory, kind: str, probe: dict) -> None:
    """Whatever probe is written, render either refuses it (exit 3, the field named) or sends a
    probe with exactly one method, a valid port and every timing field."""
    folder = tmp_path_factory.mktemp("probe")
    spec = folder / "eascomfy.yaml"
    spec.write_text("name: probe_any\nregion: cn-hangzhou\nedition: standard\nimage: {version: '1.8'}\n"
                    f"health:\n  {kind}: {json.dumps(probe)}\n")
    res = run_cli("-o", "json", "render", "-f", str(spec))
    if res.exit_code == 3:
        assert res.json()["error"]["path"].startswith(f"health.{kind}")
        return
    assert res.exit_code == 0, res.stdout
    sent = res.json()["data"]["service"]["containers"][0][f"{kind}_check"]
    methods = [m for m in ("http_get", "tcp_socket", "exec") if m in sent]
    assert len(methods) == 1
    port = sent[methods[0]].get("port")
    assert port is None or (1 <= port <= 65535 and port not in (8080, 9090))
    assert {"initial_delay_seconds", "period_seconds", "timeout_seconds", "success_threshold", "failure_threshold"} <= set(sent)
    assert sent["period_seconds"] >= 1 and (kind == "readiness" or sent["success_threshold"] == 1)


def test_bad_warmup_is_refused_offline(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("bad_warm", edition="standard")
    (p.dir / "flows").mkdir()
    (p.dir / "flows" / "ui.json").write_text(json.dumps({"nodes": [], "links": []}))
    base = p.spec.read_text()
    no_storage = re.sub(r"storage:\n(  .*\n)+", "", base)
    cases = [
        (base, "warmup:\n  workflow: flows/missing.json\n", "warmup.workflow", "file not found"),
        (base, "warmup:\n  workflow: flows/ui.json\n", "warmup.workflow", "UI-format workflow"),
        (base, "warmup:\n  workflow: flows/ui.json\n  count: 0\n", "warmup.count", "expected a value >= 1"),
        (base, "warmup:\n  workfow: flows/ui.json\n", "warmup.workfow", "did you mean 'workflow'?"),
        (no_storage, "warmup:\n  workflow: flows/ui.json\n", "warmup", "EAS reads the warm-up request file from OSS"),
    ]
    for spec, block, path, fragment in cases:
        p.spec.write_text(spec.replace("environments:", block + "environments:", 1))
        before = mark(sandbox)
        res = p.cli("deploy")
        assert res.exit_code == 3, (block, res.stderr)
        assert "Traceback" not in res.stderr
        assert any(f"{path}:" in line and fragment in line for line in res.stderr.splitlines()), (block, res.stderr)
        assert api_calls(sandbox, before) == []


def test_the_serverless_edition_refuses_health_warmup_and_network(sandbox: EasSandbox, tmp_path) -> None:
    """The console creates a Serverless service: none of the three would reach it."""
    blocks = {"health": "health:\n  liveness: null\n", "warmup": "warmup:\n  workflow: flows/tiny.json\n",
              "network": NETWORK}
    for key, block in blocks.items():
        spec = tmp_path / f"{key}.yaml"
        spec.write_text("name: sl_svc\nregion: cn-hangzhou\nedition: serverless\n" + block)
        before = mark(sandbox)
        res = run_cli("deploy", "-f", str(spec))
        assert res.exit_code == 3, res.stderr
        assert f"{spec.name}:4: {key}: the Serverless edition" in res.stderr
        assert api_calls(sandbox, before) == []


def test_the_scaffolds_examples_validate_when_uncommented(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    p = project("scaffold_hn", edition="standard")
    for key in ("health", "network"):
        line = next(l for l in p.spec.read_text().splitlines() if l.startswith(f"# {key}: "))
        p.edit(line, line[2:])
    data = p.cli("-o", "json", "render").json()["data"]["service"]
    assert data["containers"][0]["startup_check"]["failure_threshold"] == 120
    assert data["cloud"]["networking"]["vpc_id"] == "vpc-xxxxxxxx"
