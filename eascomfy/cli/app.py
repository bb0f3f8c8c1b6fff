"""The ``eascomfy`` command line: thin typer commands over the library.

Imports stay lazy: this module loads typer and nothing else, so ``--help`` is as fast as a bare
typer program, and offline commands never import a cloud SDK.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .. import __version__
from .options import check_output
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
    SETTINGS.output = check_output(output) or TEXT
    SETTINGS.verbose, SETTINGS.quiet, SETTINGS.color = verbose, quiet, not no_color


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


# -- every command group registers itself; each keeps its imports lazy -------------------------------
def _register() -> None:
    from . import control_cmds, gitops_cmds, ops_cmds, release_cmds, sandbox_cmds, spec_cmds, storage_cmds, workflow_cmds

    for module in (spec_cmds, control_cmds, gitops_cmds, ops_cmds, release_cmds, storage_cmds, workflow_cmds, sandbox_cmds):
        module.register(app)


_register()
