"""Offline commands: ``init``, ``validate``, ``render``, ``editions``, ``schema``. No cloud SDK is
imported (tests/test_architecture.py checks it in a subprocess)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import DEFAULT_SPEC, EditionOpt, EnvOpt, FileOpt, OutputOpt, SpecRef, session


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
        from ..local.scaffold import init_spec

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


def validate(
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    edition: EditionOpt = None,
    output: OutputOpt = None,
) -> None:
    """Check a spec (and an environment overlay) without calling the cloud; a spec with several
    regions is checked for each."""
    with session("validate", output) as out:
        specs = SpecRef(out, file, env, edition).every_region()
        spec, regions = specs[0], [s.region for s in specs]
        summary = f"{spec.file}: valid ({spec.edition.name} edition, service {spec.name} in {', '.join(regions)}"
        summary += f", environment {env})" if env else ")"
        out.emit(
            {"file": spec.file, "valid": True, "name": spec.name, "region": spec.region, "regions": regions,
             "edition": spec.edition.name, "env": env},
            summary,
        )


def render(
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    edition: EditionOpt = None,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Write the JSON to FILE instead of stdout.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out file (never the spec itself).")] = False,
    show_secrets: Annotated[
        bool, typer.Option("--show-secrets", help="Print secret env values instead of *** (text and --out; JSON output stays masked).")
    ] = False,
    output: OutputOpt = None,
    region: Annotated[
        Optional[str], typer.Option("--region", help="Which region of a spec with several (regions:).", metavar="REGION")
    ] = None,
) -> None:
    """Print the EAS service JSON (the exact CreateService body) for a spec; secret env values
    are masked unless --show-secrets."""
    with session("render", output) as out:
        from ..core.render import dumps, labels, render as render_doc
        from ..core.secrets import mask_config

        spec = SpecRef(out, file, env, edition, region).spec
        if out_file is not None:
            from ..local.files import check_output_file

            check_output_file(out_file, force=force, inputs=spec.files, param="out")
        doc = render_doc(spec)
        if not show_secrets:
            doc = mask_config(doc, spec.secrets)
        if not spec.edition.can("api_deploy"):
            out.warn(
                f"the {spec.edition.title} cannot be created through the EAS API; this is what the console's "
                "scenario deployment needs (docs/editions.md)"
            )
        text = dumps(doc)
        if out_file is not None:
            from ..local.files import write_atomic

            write_atomic(out_file, text)
            out.info(f"wrote {out_file}")
            out.emit({"file": str(out_file), "service": doc, "labels": labels(spec)})
        else:
            out.emit({"service": doc, "labels": labels(spec)}, text)


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


def schema(output: OutputOpt = None) -> None:
    """Print the JSON Schema of eascomfy.yaml (for editors and CI)."""
    with session("schema", output) as out:
        import json

        from ..core.validate import load_schema

        doc = load_schema("spec.schema.json")
        out.emit(doc, json.dumps(doc, indent=2))



def register(app: typer.Typer) -> None:
    for func in (init, validate, render, editions, schema):
        app.command()(func)
