"""The ``eascomfy`` command line: thin typer commands over the library.

Imports stay lazy: this module loads typer and nothing else, so ``--help`` is as fast as a bare
typer program, and offline commands never import a cloud SDK.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import __version__
from .settings import JSON, SETTINGS, TEXT

HELP = """Deploy and run ComfyUI on Alibaba Cloud PAI-EAS from a reviewed file in git.

A spec (eascomfy.yaml) plus edition definitions and templates render into EAS service JSON.

\b
Start here:
  eascomfy init --name comfy_dev --region cn-hangzhou --edition standard --oss oss://bucket/comfyui/
  eascomfy validate
  eascomfy render --out service.json

Exit codes: 0 ok, 1 error, 2 usage, 3 invalid spec, 4 cloud error, 5 timeout, 130 interrupted.
Every command takes --output json (one JSON envelope on stdout; see docs/json-output.md).
"""

app = typer.Typer(
    name="eascomfy",
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# -- shared options ---------------------------------------------------------------------------
OutputOpt = Annotated[
    Optional[str],
    typer.Option("--output", "-o", help="text (default) or json: one JSON envelope on stdout.", metavar="FORMAT"),
]
FileOpt = Annotated[
    Path, typer.Option("--file", "-f", help="The spec file.", show_default=True, metavar="FILE")
]
EnvOpt = Annotated[
    Optional[str],
    typer.Option("--env", "-e", help="Environment overlay: environments.ENV in the spec, or eascomfy.ENV.yaml beside it.", metavar="ENV"),
]
EditionOpt = Annotated[
    Optional[str],
    typer.Option("--edition", help="Override the spec's edition: standard, api, cluster, serverless.", metavar="EDITION"),
]
DEFAULT_SPEC = Path("eascomfy.yaml")


def session(command: str, output: str | None = None):  # type: ignore[no-untyped-def]
    """The per-command output session (imported lazily: --help never pays for it)."""
    from .output import session as _session

    return _session(command, _check_output(output))


def _check_output(value: str | None) -> str | None:
    if value is not None and value not in (TEXT, JSON):
        raise typer.BadParameter(f"expected text or json, got {value!r}", param_hint="--output")
    return value


def _version(value: bool) -> None:
    if value:
        typer.echo(f"eascomfy {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    output: Annotated[
        str, typer.Option("--output", "-o", help="text or json (also per command).", envvar="EASCOMFY_OUTPUT", metavar="FORMAT")
    ] = TEXT,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="More detail on stderr (never secrets).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only results and errors.")] = False,
    no_color: Annotated[bool, typer.Option("--no-color", help="Plain text output.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    SETTINGS.output = _check_output(output) or TEXT
    SETTINGS.verbose, SETTINGS.quiet, SETTINGS.color = verbose, quiet, not no_color


# -- offline commands ---------------------------------------------------------------------------
@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Where to write eascomfy.yaml.")] = Path("."),
    name: Annotated[str, typer.Option("--name", help="EAS service name (lowercase, digits, _).", metavar="NAME")] = "",
    region: Annotated[str, typer.Option("--region", help="Region id, e.g. cn-hangzhou.", metavar="REGION")] = "",
    edition: Annotated[str, typer.Option("--edition", help="standard, api, cluster or serverless.", metavar="EDITION")] = "standard",
    oss: Annotated[Optional[str], typer.Option("--oss", help="OSS directory to mount, oss://bucket/prefix/.", metavar="URI")] = None,
    instance_type: Annotated[Optional[str], typer.Option("--instance-type", help="GPU instance type.", metavar="TYPE")] = None,
    image_version: Annotated[Optional[str], typer.Option("--image-version", help="Official image version, e.g. 1.9.", metavar="VERSION")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing eascomfy.yaml.")] = False,
    output: OutputOpt = None,
) -> None:
    """Write a commented eascomfy.yaml, checked before it is written."""
    with session("init", output) as out:
        from ..project import init_spec

        path = init_spec(
            directory,
            name=name,
            region=region,
            edition=edition,
            oss=oss,
            instance_type=instance_type,
            image_version=image_version,
            force=force,
        )
        out.emit({"file": str(path)}, f"wrote {path}\nnext: eascomfy validate -f {path}")


@app.command()
def validate(
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    edition: EditionOpt = None,
    output: OutputOpt = None,
) -> None:
    """Check a spec (and an environment overlay) without calling the cloud."""
    with session("validate", output) as out:
        from ..core.spec import load_spec

        spec = load_spec(file, env=env, edition=edition)
        for w in spec.warnings:
            out.warn(w)
        summary = f"{spec.file}: valid ({spec.edition.name} edition, service {spec.name} in {spec.region}"
        summary += f", environment {env})" if env else ")"
        out.emit(
            {"file": spec.file, "valid": True, "name": spec.name, "region": spec.region, "edition": spec.edition.name, "env": env},
            summary,
        )


@app.command()
def render(
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    edition: EditionOpt = None,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Write the JSON to FILE instead of stdout.")] = None,
    output: OutputOpt = None,
) -> None:
    """Print the EAS service JSON (the exact CreateService body) for a spec."""
    with session("render", output) as out:
        from ..core.render import dumps, labels, render as render_doc
        from ..core.spec import load_spec

        spec = load_spec(file, env=env, edition=edition)
        for w in spec.warnings:
            out.warn(w)
        doc = render_doc(spec)
        if not spec.edition.can("api_deploy"):
            out.warn(
                f"the {spec.edition.title} cannot be created through the EAS API; this is what the console's "
                "scenario deployment needs (docs/editions.md)"
            )
        text = dumps(doc)
        if out_file is not None:
            from ..project import write_atomic

            write_atomic(out_file, text)
            out.info(f"wrote {out_file}")
            out.emit({"file": str(out_file), "service": doc, "labels": labels(spec)})
        else:
            out.emit({"service": doc, "labels": labels(spec)}, text)


@app.command()
def editions(output: OutputOpt = None) -> None:
    """List the editions and what each supports."""
    with session("editions", output) as out:
        from ..core.editions import all_editions

        eds = all_editions(Path.cwd())
        data = [
            {
                "name": e.name,
                "title": e.title,
                "description": e.description,
                "image_suffix": e.image_suffix,
                "regions": list(e.regions),
                "capabilities": e.capabilities,
            }
            for e in eds
        ]

        def table() -> None:
            from rich.table import Table

            t = Table(title="ComfyUI editions on PAI-EAS")
            cols = [
                ("webui", "WebUI"),
                ("sync_api", "sync API"),
                ("async_api", "async API"),
                ("custom_models", "own models/nodes"),
                ("storage", "storage"),
                ("image_updates", "image updates"),
                ("api_deploy", "deploy by API"),
            ]
            t.add_column("edition", no_wrap=True)
            t.add_column("tag", no_wrap=True)
            for _, title in cols:
                t.add_column(title, justify="center")
            t.add_column("regions", no_wrap=True)
            for e in eds:
                tag = "-" if e.image_suffix is None else f"x.y{e.image_suffix}"
                marks = ["yes" if e.can(key) else "no" for key, _ in cols]
                t.add_row(e.name, tag, *marks, " ".join(e.regions) or "all")
            out.console().print(t)

        out.emit(data, table)


@app.command()
def schema(output: OutputOpt = None) -> None:
    """Print the JSON Schema of eascomfy.yaml (for editors and CI)."""
    with session("schema", output) as out:
        import json

        from ..core.validate import load_schema

        doc = load_schema("spec.schema.json")
        out.emit(doc, json.dumps(doc, indent=2))


def main() -> None:
    """Console-script entry point. With --output json, usage errors also come as an envelope."""
    argv = sys.argv[1:]
    wants_json = SETTINGS.output == JSON or _argv_output(argv) == JSON
    if not wants_json:
        app(prog_name="eascomfy")
        return
    try:
        code = app(prog_name="eascomfy", standalone_mode=False)
    except Exception as exc:  # click's UsageError (vendored or not): duck-typed
        if not hasattr(exc, "format_message"):
            raise
        from .output import Out

        out = Out("usage", mode=JSON)
        out.finish({"type": "usage", "message": exc.format_message()}, getattr(exc, "exit_code", 2))
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)


def _argv_output(argv: list[str]) -> str | None:
    import os

    for i, arg in enumerate(argv):
        if arg in ("-o", "--output") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--output="):
            return arg.split("=", 1)[1]
    return os.environ.get("EASCOMFY_OUTPUT")


# -- cloud commands (plan, deploy, ...; sandbox, demo): registered here, their imports stay lazy --
from .cloud import register as _register_cloud  # noqa: E402

_register_cloud(app)

from .storage_cmds import register as _register_storage  # noqa: E402

_register_storage(app)

from .workflow_cmds import register as _register_workflows  # noqa: E402

_register_workflows(app)
