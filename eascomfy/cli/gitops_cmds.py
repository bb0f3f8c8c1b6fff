"""The GitOps commands: ``import`` (adopt a live service into an eascomfy.yaml).

Cheap to import: typer and the options only; the library and the SDKs load inside the body.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import DEFAULT_SPEC, OutputOpt, session


def import_cmd(
    service: Annotated[str, typer.Option("--service", help="The live service to adopt.", metavar="NAME")],
    region: Annotated[str, typer.Option("--region", help="Its region, e.g. cn-hangzhou.", metavar="REGION")],
    out_file: Annotated[
        Optional[Path], typer.Option("--out", help="Where to write the spec (default eascomfy.yaml).", metavar="FILE")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the file if it exists.")] = False,
    no_adopt: Annotated[
        bool, typer.Option("--no-adopt", help="Only write the file; do not set eascomfy's labels on the service.")
    ] = False,
    output: OutputOpt = None,
) -> None:
    """Write an eascomfy.yaml from a live service (console, eascmd, Terraform); plan then shows no change."""
    with session("import", output) as out:
        from ..control.deploy import connect
        from ..control.importer import import_service

        result = import_service(connect(region, out), service, out_file or DEFAULT_SPEC, out,
                                force=force, adopt=not no_adopt)
        text = [f"{result.file}: imported {result.service} ({result.edition} edition)"]
        if result.overrides:
            text.append(f"  kept in overrides: {', '.join(result.overrides)}")
        if result.residual:
            text.append(f"  ! plan will still show {len(result.residual)} change(s); see the warnings")
        elif result.adopted:
            text.append("  adopted: eascomfy's labels set; `eascomfy plan` shows no change")
        out.emit(result.to_dict(), "\n".join(text))


def register(app: typer.Typer) -> None:
    """Attach the GitOps commands to the app."""
    app.command("import")(import_cmd)
