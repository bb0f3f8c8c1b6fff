"""Every command, every option, generated bad values (issue 11, closing paragraph).

The commands and their options are discovered from the typer app, so a new command or option is
fuzzed without touching this file. For each command hypothesis picks one of its value-taking
parameters and a bad value of that parameter's kind (empty, whitespace, NUL, full-width digits,
huge numbers, NaN/inf/negative/zero durations, paths that are folders, FIFOs, missing, too long
or loops, undecodable text, YAML bombs and Python tags for the spec, deeply nested, huge or
wrong-type workflow JSON), fills the other required arguments with good values, and runs the CLI
in-process against one sandbox stack (EAS, OSS, ComfyUI, the queue) with a deployed Standard and
API-edition service. Whatever happens:

- the exit code is a documented one (docs/exit-codes.md);
- nothing says "internal error", no traceback, and a JSON envelope's error type is never "internal";
- a usage or spec error (2, 3) wrote nothing to the cloud: no create/update/delete reached EAS, no
  object reached OSS, no job reached a service endpoint;
- the run ends (a FIFO or a valid huge wait would otherwise block: a watchdog says which).

Bounded: a few examples per command (``EASCOMFY_FUZZ_EXAMPLES`` raises it), no deadline.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eascomfy.sandbox.eas import Timings
from eascomfy.sandbox.stack import SandboxStack
from tests.conftest import TESTS, Result, clean_emulators, run_cli, stack_environment

REGION = "cn-hangzhou"
BUCKET = "fuzz-data"
FAST = Timings(creating=0.05, updating=0.05, ready=0.05, stopping=0.05, starting=0.05, deleting=0.05)
WORKFLOW = TESTS / "fixtures" / "seed-workflow.api.json"
DOCUMENTED = {0, 1, 2, 3, 4, 5, 6, 130}
EXAMPLES = int(os.environ.get("EASCOMFY_FUZZ_EXAMPLES", "3"))
WATCHDOG = int(os.environ.get("EASCOMFY_FUZZ_WATCHDOG", "15"))  # seconds one run may take before it counts as hung
WRITES = ("POST", "PUT", "DELETE", "PATCH")


class Hung(BaseException):
    """Raised by the watchdog's SIGALRM in the main thread: not an Exception, so the CLI's
    session does not turn it into an internal error; it reaches the test."""


# -- the commands, from the app ---------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    name: str  # the library name (click's)
    flag: str | None  # "--timeout"; None for an argument
    kind: str  # text, int, float, duration, path
    required: bool
    multiple: bool


def _commands() -> dict[str, list[Param]]:
    import typer.main

    from eascomfy.cli.app import app

    found: dict[str, list[Param]] = {}

    def walk(command: Any, path: tuple[str, ...]) -> None:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, path + (name,))
            return
        params = []
        for p in command.params:
            if getattr(p, "is_flag", False) or p.name in ("help",):
                continue
            tname = p.type.name
            if tname in ("path", "file", "directory"):
                kind = "path"
            elif tname.startswith("integer"):
                kind = "int"
            elif tname.startswith("float"):
                kind = "float"
            elif p.name in ("timeout", "since", "resubmit_after"):
                kind = "duration"
            else:
                kind = "text"
            flag = max(p.opts, key=len) if p.param_type_name == "option" else None
            params.append(Param(p.name, flag, kind, bool(p.required), bool(getattr(p, "multiple", False) or p.nargs == -1)))
        found[" ".join(path)] = params

    walk(typer.main.get_command(app), ())
    return found


COMMANDS = _commands()


# -- the sandbox and the files the values point at ------------------------------------------------------
class World:
    stack: SandboxStack
    env: dict[str, str]
    std: Path  # a Standard-edition service's spec folder
    api: Path  # an API-edition service's spec folder
    junk: Path
    specs: dict[Path, str]  # spec file -> its text, put back before each run
    fifo: Path

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    def __repr__(self) -> str:  # hypothesis prints the arguments of a failing example
        return "World(...)"


def _deploy(root: Path, name: str, edition: str) -> Path:
    where = root / name
    res = run_cli("init", str(where), "--name", name, "--region", REGION, "--edition", edition,
                  "--oss", f"oss://{BUCKET}/{name}/", "--image-version", "1.9")
    assert res.exit_code == 0, res.stderr
    res = run_cli("deploy", "--timeout", "30", cwd=where)
    assert res.exit_code == 0, res.stderr
    return where


def _junk(root: Path) -> Path:
    junk = root / "junk"
    junk.mkdir()
    (junk / "dir").mkdir()
    os.mkfifo(junk / "fifo")
    (junk / "loop").symlink_to(junk / "loop")
    (junk / "garbage.bin").write_bytes(bytes(range(256)) * 8)
    (junk / "empty").write_bytes(b"")
    # specs no loader should choke on
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    (junk / "bomb.yaml").write_text(laughs + "name: *i\n")
    (junk / "pytag.yaml").write_text("name: !!python/name:os.system\nregion: cn-hangzhou\n")
    (junk / "pyobj.yaml").write_text("!!python/object/apply:os.system ['true']\n")
    (junk / "deep.yaml").write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    (junk / "list.yaml").write_text("- 1\n- 2\n")
    (junk / "scalar.yaml").write_text("42\n")
    (junk / "nul.yaml").write_bytes(b"name: comfy\x00x\nregion: cn-hangzhou\n")
    (junk / "latin1.yaml").write_bytes(b"name: caf\xe9\nregion: cn-hangzhou\n")
    (junk / "hugeint.yaml").write_text("name: comfy\nregion: cn-hangzhou\nedition: standard\nresources:\n  instances: "
                                       + "9" * 5000 + "\n")
    (junk / "dupkey.yaml").write_text("name: a\nname: b\nregion: cn-hangzhou\n")
    # workflows that are not workflows
    (junk / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (junk / "list.json").write_text("[1, 2, 3]")
    (junk / "string.json").write_text('"a workflow"')
    (junk / "null.json").write_text("null")
    (junk / "nodes-wrong.json").write_text(json.dumps({"3": [], "4": {"class_type": 7, "inputs": "x"}}))
    (junk / "nan.json").write_text('{"3": {"class_type": "KSampler", "inputs": {"seed": NaN, "cfg": Infinity}}}')
    (junk / "bigint.json").write_text('{"3": {"class_type": "KSampler", "inputs": {"seed": ' + "9" * 5000 + "}}}")
    (junk / "ui.json").write_text(json.dumps({"nodes": [], "links": [], "version": 0.4}))
    (junk / "huge.json").write_text(json.dumps({str(i): {"class_type": "Note", "inputs": {"text": "x" * 50}}
                                                for i in range(20000)}))
    (junk / "m.yaml").write_text("- {}\n- [1]\n- ['no equals sign']\n- {'3.inputs.seed': .nan}\n")
    (junk / "model.safetensors").write_bytes(b"tiny model")
    (junk / "pack").mkdir()
    (junk / "pack" / "__init__.py").write_text("# a node\n")
    (junk / "good-1.0-py3-none-any.whl").write_bytes(b"PK\x05\x06" + bytes(18))
    return junk


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("fuzz")
    with SandboxStack(root / "state", timings=FAST, region=REGION, job_seconds=0.02) as stack:
        stack.oss.create_bucket(BUCKET, region=REGION)
        with stack_environment(stack, root) as env:
            std, api = _deploy(root, "fz_std", "standard"), _deploy(root, "fz_api", "api")
            junk = _junk(root)
            specs = {d / "eascomfy.yaml": (d / "eascomfy.yaml").read_text() for d in (std, api)}
            yield World(stack=stack, env=env, std=std, api=api, junk=junk, specs=specs, fifo=junk / "fifo")


@pytest.fixture(autouse=True)
def _clean(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    clean_emulators((world.stack.eas, world.stack.oss))


# -- bad values, by kind ----------------------------------------------------------------------------------
# (No NUL: an argv string cannot hold one; NUL bytes are in the files below.)
TEXT = st.sampled_from(["", " ", "\t\n", "１.９", "٣", "-", "--", "-x", "x" * 5000, "\udcff\udcfe",
                        "caf\u00e9\u200b", "../..", "/", "oss://b/../x/", "a=b=c", "${env:NOPE}", "{{x}}",
                        "'; rm -rf /", "\x1b[31mred", "🙂" * 100])
INT = st.one_of(st.sampled_from(["", " ", "１２", "1.5", "nan", "inf", "0x10", "1e3", "9" * 400, "-" + "9" * 30]),
                st.integers(min_value=-(2**70), max_value=2**70).map(str))
FLOAT = st.one_of(st.sampled_from(["", " ", "nan", "NaN", "inf", "-inf", "1e400", "-1e400", "１", "0", "-0", "-1",
                                   "1e-300", "9" * 400, "0x1p3"]),
                  st.floats(allow_nan=False, allow_infinity=True, max_value=-1e-9).map(repr))
DURATION = st.sampled_from(["", " ", "0", "0s", "-5", "-1s", "nan", "NaNs", "inf", "1e400", "1e400s", "９s", "5x",
                            "10 years", "9" * 400 + "d", "9" * 60, "1e-9s", "s", "1.5.5m"])


def path_values(world: World, param: Param, command: str) -> st.SearchStrategy[str]:
    junk = world.junk
    common = [str(junk / "dir"), str(world.fifo), str(junk / "missing" / "x"), str(junk / ("n" * 300)),
              str(junk / "loop"), "", str(junk / "garbage.bin"), str(junk / "empty"), "\udcff"]
    if param.name == "file":
        common += [str(junk / n) for n in ("bomb.yaml", "pytag.yaml", "pyobj.yaml", "deep.yaml", "list.yaml",
                                           "scalar.yaml", "nul.yaml", "latin1.yaml", "hugeint.yaml", "dupkey.yaml")]
    if param.name == "workflow":
        common += [str(junk / n) for n in ("deep.json", "list.json", "string.json", "null.json", "nodes-wrong.json",
                                           "nan.json", "bigint.json", "ui.json", "huge.json")]
    if param.name == "matrix":
        common += [str(junk / "m.yaml"), str(junk / "bomb.yaml"), str(junk / "deep.json"), str(junk / "nan.json")]
    if param.name in ("out", "plan", "dest", "journal", "download"):
        common += [str(_spec_dir(world, command) / "eascomfy.yaml")]  # the spec itself
    if command in ("demo", "sandbox"):  # a folder they may use is a valid value: a whole demo, a server
        common = [v for v in common if v not in (str(junk / "dir"), str(junk / "missing" / "x"))]
    return st.sampled_from(common)


def values_for(world: World, param: Param, command: str) -> st.SearchStrategy[str]:
    if param.kind == "path":
        return path_values(world, param, command)
    return {"text": TEXT, "int": INT, "float": FLOAT, "duration": DURATION}[param.kind]


# -- good values for what is not fuzzed --------------------------------------------------------------------
def _spec_dir(world: World, command: str) -> Path:
    return world.api if command in ("submit", "results") else world.std


def good_args(world: World, command: str, skip: str) -> list[str]:
    """The required arguments the command needs besides the fuzzed one, with good values."""
    junk = world.junk
    good = {
        "update-image": {"version": ["1.9"]},
        "import": {"service": ["--service", "fz_std"], "region": ["--region", REGION]},
        "check": {"workflow": [str(WORKFLOW)], "offline": ["--offline"]},
        "run": {"workflow": [str(WORKFLOW)]},
        "submit": {"workflow": [str(WORKFLOW)]},
        "models push": {"files": [str(junk / "model.safetensors")], "kind": ["--kind", "checkpoints"]},
        "nodes push": {"folders": [str(junk / "pack")]},
        "wheels push": {"wheels": [str(junk / "good-1.0-py3-none-any.whl")], "no_write": ["--no-write"]},
        "storage ls": {"path": ["models"]},
        "results": {"idle": ["--idle", "0.2"]},
    }.get(command, {})
    return [v for name, values in good.items() if name != skip for v in values]


def cloud_writes(world: World) -> list[str]:
    """What changed something: a write to EAS's API or a service endpoint, or to OSS."""
    return [f"{server} {r.method} {r.path} {r.action}" for server, recorder in
            (("eas", world.stack.eas.recorder), ("oss", world.stack.oss.recorder))
            for r in recorder.all() if r.method in WRITES]


def invoke(world: World, args: list[str], cwd: Path, command: str) -> Result | None:
    """Run the CLI in-process under a watchdog; None when it was still running when the watchdog
    fired (only a valid ``sandbox`` may do that: it serves until interrupted)."""
    from eascomfy import redact

    for spec, text in world.specs.items():
        spec.write_text(text)
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    secrets = set(redact._secrets)  # a fuzzed --token is registered for the process: not for later tests

    def fire(*_: Any) -> None:
        raise Hung()

    previous = signal.signal(signal.SIGALRM, fire)
    signal.alarm(WATCHDOG if command != "sandbox" else 3)
    try:
        return run_cli(*args, cwd=cwd)
    except Hung:
        if command == "sandbox":
            return None
        pytest.fail(f"`eascomfy {' '.join(args)!r}` still running after {WATCHDOG} s")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        with redact._lock:
            redact._secrets.intersection_update(secrets)


def check(world: World, command: str, args: list[str], res: Result | None) -> None:
    if res is None:
        return
    shown = f"eascomfy {args!r} -> {res.exit_code}\nstdout: {res.stdout[-2000:]}\nstderr: {res.stderr[-2000:]}"
    assert res.exit_code in DOCUMENTED, shown
    assert "internal error" not in res.stderr and "internal error" not in res.stdout, shown
    assert "Traceback (most recent call last)" not in res.stderr + res.stdout, shown
    if "-o" in args and res.stdout.lstrip().startswith("{"):
        try:
            envelope = json.loads(res.stdout)
        except ValueError:
            envelope = None
        if isinstance(envelope, dict):
            assert (envelope.get("error") or {}).get("type") != "internal", shown
    if res.exit_code in (2, 3):
        assert cloud_writes(world) == [], shown


@pytest.mark.parametrize("command", sorted(c for c, ps in COMMANDS.items() if ps))
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_bad_values_never_end_in_an_internal_error(world: World, command: str, data: st.DataObject) -> None:
    params = COMMANDS[command]
    param = data.draw(st.sampled_from(params), label="param")
    value = data.draw(values_for(world, param, command), label="value")
    as_json = param.name != "output" and command != "sandbox" and data.draw(st.booleans(), label="json")
    args = command.split() + good_args(world, command, param.name)
    args += [param.flag, value] if param.flag else [value]
    if as_json:
        args += ["-o", "json"]
    world.stack.eas.recorder.clear()
    world.stack.oss.recorder.clear()
    check(world, command, args, invoke(world, args, _spec_dir(world, command), command))


# -- the inputs that ended in an internal error (or hung) before, each with its documented answer ----------
N = "n" * 300  # a file name past NAME_MAX


def regression(command: str, args: list[str], code: int, says: str) -> Any:
    return pytest.param(command, args, code, says, id=f"{command}:{says[:30]}")


REGRESSIONS = [
    # a spec holding an integer past Python's 4300-digit conversion limit
    regression("validate", ["-f", "{junk}/hugeint.yaml"], 3, "is not a value a spec can hold"),
    regression("deploy", ["-f", "{junk}/hugeint.yaml"], 3, "is not a value a spec can hold"),
    # a FIFO where a file is read: opening it blocked for ever
    regression("plan", ["-f", "{junk}/fifo"], 3, "is a FIFO, expected a YAML file"),
    regression("submit", ["{junk}/fifo"], 2, "is a FIFO, not a workflow file"),
    regression("submit", ["{workflow}", "--matrix", "{junk}/fifo"], 2, "is a FIFO, not a matrix file"),
    regression("deploy", ["--plan", "{junk}/fifo"], 2, "is a FIFO, not a plan file"),
    regression("models push", ["{junk}/model.safetensors", "--for", "{junk}/fifo"], 2, "is a FIFO, not a workflow file"),
    # output paths that are folders, too long, symlink loops, files where a folder goes
    regression("plan", ["--out", "{junk}/dir"], 2, "is a directory; give a file name"),
    regression("plan", ["--out", "{spec}"], 2, "is the spec being rendered"),
    regression("render", ["--out", "{junk}/" + N], 2, "File name too long"),
    regression("render", ["--out", "{junk}/loop"], 2, "Too many levels of symbolic links"),
    regression("import", ["--service", "fz_std", "--region", REGION, "--out", "{junk}/loop"], 2, "Too many levels"),
    regression("import", ["--service", "fz_std", "--region", REGION, "--out", "{junk}/" + N], 2, "File name too long"),
    regression("outputs pull", ["--dest", "{junk}/garbage.bin"], 2, "is a file, not a folder"),
    regression("run", ["{workflow}", "--out", "{junk}/" + N], 2, "File name too long"),
    regression("results", ["--download", "{junk}/" + N], 2, "File name too long"),
    regression("submit", ["{workflow}", "--journal", "{junk}/" + N], 2, "File name too long"),
    regression("demo", ["--dir", "{junk}/loop"], 2, "Too many levels of symbolic links"),
    # names no edition file can have
    regression("validate", ["--edition", "x" * 300], 2, "--edition: unknown edition"),
    # NaN, inf and centuries where a duration goes
    regression("results", ["--idle", "nan"], 2, "--idle: must be more than 0"),
    regression("results", ["--idle", "inf"], 2, "--idle: inf is more than a year"),
    regression("logs", ["--since", "9" * 60], 2, "is more than 10 years"),
    # arguments that are not UTF-8 (how Python shows argv bytes that are not)
    regression("storage ls", ["\udcff"], 2, "not valid UTF-8"),
    regression("outputs pull", ["--prefix", "\udcff"], 2, "not valid UTF-8"),
    # a --token with no letter or digit masked every space after it
    regression("run", ["{workflow}", "--service-url", "http://127.0.0.1:9/api/predict/x", "--token", " "], 4,
               "cannot connect (ConnectError) (is the service running"),
    # the sandbox's own folder and ports
    regression("sandbox", ["--state", "{junk}/garbage.bin"], 2, "is a file, not a folder"),
    regression("sandbox", ["--port", "-1"], 2, "is not a TCP port"),
]


@pytest.mark.parametrize("command, args, code, says", REGRESSIONS)
def test_inputs_that_were_internal_errors(world: World, command: str, args: list[str], code: int, says: str) -> None:
    where = _spec_dir(world, command)
    fill = {"junk": str(world.junk), "workflow": str(WORKFLOW), "spec": str(where / "eascomfy.yaml")}
    argv = command.split() + [a.format(**fill) for a in args]
    world.stack.eas.recorder.clear()
    world.stack.oss.recorder.clear()
    res = invoke(world, argv, where, command)
    assert res is not None
    check(world, command, argv, res)
    assert res.exit_code == code and says in res.stderr, (argv, res.exit_code, res.stderr)
