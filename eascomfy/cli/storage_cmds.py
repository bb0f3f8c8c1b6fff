"""Storage commands: ``storage init|ls|sync``, ``models push``, ``nodes push``, ``wheels push``,
``outputs pull``. They act on the spec's ``storage.oss`` folder (the service's mounted data
directory); oss2 and the upload engine are imported inside the command bodies.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Iterable, Iterator, Optional

import typer

from .options import DEFAULT_SPEC, EnvOpt, FileOpt, OutputOpt, SpecRef, session

if TYPE_CHECKING:
    from ..core.spec import Spec
    from ..storage.mount import Mount
    from ..storage.upload import PushResult
    from .output import Out

storage_app = typer.Typer(help="The mounted OSS folder: layout, listing, declarative sync.", no_args_is_help=True)
models_app = typer.Typer(help="Models into the right models/<kind>/ folder.", no_args_is_help=True)
nodes_app = typer.Typer(help="Custom node folders into custom_nodes/.", no_args_is_help=True)
wheels_app = typer.Typer(help="Wheels into models/whl/ (installed before ComfyUI starts).", no_args_is_help=True)
outputs_app = typer.Typer(help="What ComfyUI wrote to output/.", no_args_is_help=True)

PartSizeOpt = Annotated[int, typer.Option("--part-size", help="Multipart part size in MiB.", min=1, max=1024)]
WorkersOpt = Annotated[int, typer.Option("--workers", help="Parts uploaded in parallel.", min=1, max=64)]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show what would be uploaded; send nothing.")]


# The library's hints say what to do; the CLI names its own command for it (by error code).
HINTS = {"NoSuchBucket": "create it with `eascomfy storage init --create-bucket`"}


@contextmanager
def _session(command: str, output: str | None) -> "Iterator[Out]":
    """The output session, with the storage commands' hints on cloud errors."""
    with session(command, output) as out:
        try:
            yield out
        except Exception as exc:
            from ..errors import CloudError

            if isinstance(exc, CloudError) and exc.code in HINTS:
                exc.hint = HINTS[exc.code]
            raise


def _open(file: Path, env: str | None, out: "Out", *, check: bool = True) -> "tuple[Spec, Mount]":
    """The command's spec (loaded once) and its mounted folder, opened by the library."""
    from ..storage.mount import Mount

    spec = SpecRef(out, file, env).spec
    return spec, Mount.open(spec, out, check=check)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


def _push(out: "Out", mount: Mount, pairs: list[tuple[Path, str]], part_size: int, workers: int, label: str) -> "list[PushResult]":
    """Upload (file, key) pairs through the one upload engine, with progress."""
    from ..storage.upload import MiB, Uploader
    from .bars import TransferBars

    total = sum(f.stat().st_size for f, _ in pairs)
    with TransferBars(out, total, label) as bars:
        uploader = Uploader(mount.bucket, part_size=part_size * MiB, workers=workers, progress=bars.advance, on_file=bars.file)
        return uploader.push_many(pairs)


def _report(out: "Out", mount: Mount, results: "Iterable[PushResult]", extra: dict[str, Any] | None = None) -> None:
    results = list(results)
    lines = [
        f"{'unchanged' if r.skipped else 'uploaded '} {mount.url(r.key)} ({_human(r.size)}"
        + (f", resumed {r.resumed_parts}/{r.parts} parts" if r.resumed_parts else "")
        + ")"
        for r in results
    ]
    sent = [r for r in results if not r.skipped]
    lines.append(f"{len(sent)} uploaded, {len(results) - len(sent)} unchanged")
    out.emit({"files": [r.to_dict() for r in results], **(extra or {})}, "\n".join(lines))


# -- storage ---------------------------------------------------------------------------------------
@storage_app.command("init")
def storage_init(
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    create_bucket: Annotated[bool, typer.Option("--create-bucket", help="Create the bucket when it does not exist.")] = False,
    output: OutputOpt = None,
) -> None:
    """Create ComfyUI's folders (models/*, custom_nodes/, input/, output/, temp/); idempotent."""
    with _session("storage init", output) as out:
        from ..storage.mount import LAYOUT, check_bucket, init_layout

        _, mount = _open(file, env, out, check=False)
        if check_bucket(mount.bucket, mount.region, create=create_bucket):
            out.info(f"created bucket {mount.bucket.name} in {mount.region}")
        created = init_layout(mount.bucket, mount.prefix)
        out.emit(
            {"bucket": mount.bucket.name, "prefix": mount.prefix, "created": created, "existing": len(LAYOUT) - len(created)},
            f"{mount.url(mount.prefix)}: {len(created)} folders created, {len(LAYOUT) - len(created)} already there",
        )


@storage_app.command("ls")
def storage_ls(
    path: Annotated[str, typer.Argument(help="Folder under the mount, e.g. models/checkpoints.", metavar="PATH")] = "",
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Everything below PATH.")] = False,
    output: OutputOpt = None,
) -> None:
    """List files and folders on the mount, with sizes."""
    with _session("storage ls", output) as out:
        _, mount = _open(file, env, out)
        prefix = mount.key(path.strip("/") + "/" if path.strip("/") else "")
        rows = [
            {"name": key[len(mount.prefix):], "size": size, "folder": folder}
            for key, size, folder, _ in mount.bucket.list(prefix, "" if recursive else "/")
            if key != prefix
        ]

        def table() -> None:
            for r in rows:
                sys.stdout.write(f"{'-' if r['folder'] else _human(r['size']):>12}  {r['name']}\n")

        out.emit(rows, table)


@storage_app.command("sync")
def storage_sync(
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    dry_run: DryRunOpt = False,
    part_size: PartSizeOpt = 16,
    workers: WorkersOpt = 4,
    output: OutputOpt = None,
) -> None:
    """Make models/ on the mount match the spec's `models:` list (prints the plan first)."""
    with _session("storage sync", output) as out:
        from ..errors import EascomfyError
        from ..storage.sync import plan_sync
        from ..storage.upload import CrcCache

        spec, mount = _open(file, env, out)
        cache = CrcCache()
        items = plan_sync(mount.bucket, mount.prefix, spec.data.get("models") or [], spec.project_dir, cache)
        cache.save()
        for item in items:
            out.info(f"  {item.action:<8} {mount.url(item.key)}" + (f"  ({item.reason})" if item.reason else ""))
        uploads = [(Path(i.file), i.key) for i in items if i.action == "upload" and i.file]
        results = [] if dry_run else _push(out, mount, uploads, part_size, workers, "sync")
        bad = [i for i in items if i.action in ("missing", "mismatch")]
        summary = f"{len(uploads)} to upload, {sum(i.action == 'ok' for i in items)} in place, {len(bad)} wrong"
        data = {"plan": [i.to_dict() for i in items], "uploaded": [r.to_dict() for r in results], "dry_run": dry_run}
        out.emit(data, ("plan: " if dry_run else "synced: ") + summary)
        if bad:
            raise EascomfyError(
                "; ".join(f"{i.name}: {i.reason}" for i in bad), "upload the right file or fix models[] in the spec"
            )


# -- models, nodes, wheels -----------------------------------------------------------------------------
@models_app.command("push")
def models_push(
    files: Annotated[list[Path], typer.Argument(help="Model files to upload.", exists=True, dir_okay=False)],
    kind: Annotated[Optional[str], typer.Option("--kind", "-k", help="Folder under models/: checkpoints, loras, vae, ...", metavar="KIND")] = None,
    for_workflow: Annotated[
        Optional[Path], typer.Option("--for", help="Take each file's folder from the API-format workflow that uses it.")
    ] = None,
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    part_size: PartSizeOpt = 16,
    workers: WorkersOpt = 4,
    output: OutputOpt = None,
) -> None:
    """Upload models: parallel multipart, resumable, CRC64-verified; unchanged files skipped."""
    with _session("models push", output) as out:
        from ..core.validate import did_you_mean
        from ..errors import UsageError
        from ..storage.mount import MODEL_KINDS

        if kind is not None and kind not in MODEL_KINDS:
            raise UsageError(
                f"--kind: unknown model folder {kind!r}; expected one of {', '.join(MODEL_KINDS)}", did_you_mean(kind, MODEL_KINDS)
            )
        kinds = {f: kind for f in files}
        if for_workflow is not None:
            from ..core.workflow import kind_for, load_workflow

            workflow = load_workflow(for_workflow)
            for f in files:
                guessed = kind_for(workflow, f.name)
                if guessed is None and kind is None:
                    raise UsageError(f"{f.name} is not used by {for_workflow}", "pass --kind")
                kinds[f] = kind or guessed
        elif kind is None:
            raise UsageError("pass --kind (e.g. --kind checkpoints) or --for WORKFLOW.json")
        _, mount = _open(file, env, out)
        pairs = [(f, mount.key(f"models/{kinds[f]}/{f.name}")) for f in files]
        _report(out, mount, _push(out, mount, pairs, part_size, workers, "models"))


@nodes_app.command("push")
def nodes_push(
    folders: Annotated[list[Path], typer.Argument(help="Custom node folders (e.g. ComfyUI-VideoHelperSuite).", exists=True, file_okay=False)],
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    part_size: PartSizeOpt = 16,
    workers: WorkersOpt = 4,
    output: OutputOpt = None,
) -> None:
    """Upload custom node folders to custom_nodes/ (caches and .git are left out); restart the service to load them."""
    with _session("nodes push", output) as out:
        from ..storage.mount import node_files

        _, mount = _open(file, env, out)
        pairs = [(f, mount.key(f"custom_nodes/{rel}")) for folder in folders for f, rel in node_files(folder)]
        _report(out, mount, _push(out, mount, pairs, part_size, workers, "nodes"), {"folders": [f.name for f in folders]})
        out.info("restart the service (eascomfy restart) so ComfyUI loads new nodes")


@wheels_app.command("push")
def wheels_push(
    wheels: Annotated[list[Path], typer.Argument(help="Wheel files.", exists=True, dir_okay=False)],
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    no_write: Annotated[bool, typer.Option("--no-write", help="Do not add the wheels to the spec's wheels list.")] = False,
    output: OutputOpt = None,
) -> None:
    """Upload wheels to models/whl/ and add them to the spec's wheels list (installed before start)."""
    with _session("wheels push", output) as out:
        from ..errors import UsageError
        from ..local.specfile import add_wheels

        for w in wheels:
            if not w.name.endswith(".whl"):
                raise UsageError(f"{w}: not a wheel (expected a .whl file)")
        spec, mount = _open(file, env, out)
        pairs = [(w, mount.key(f"models/whl/{w.name}")) for w in wheels]
        results = _push(out, mount, pairs, 16, 4, "wheels")
        added = [] if no_write else add_wheels(Path(spec.file), [w.name for w in wheels])
        if added:
            out.info(f"added {', '.join(added)} to wheels in {spec.file}; deploy to install them")
        _report(out, mount, results, {"added_to_spec": added})


# -- outputs -----------------------------------------------------------------------------------------
@outputs_app.command("pull")
def outputs_pull(
    prefix: Annotated[str, typer.Option("--prefix", help="Only names starting with this (e.g. a subfolder).", metavar="PREFIX")] = "",
    dest: Annotated[Path, typer.Option("--dest", help="Local folder.")] = Path("outputs"),
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    output: OutputOpt = None,
) -> None:
    """Download files from output/ on the mount; a name that would escape DEST is refused."""
    with _session("outputs pull", output) as out:
        from ..errors import EascomfyError
        from ..storage.pull import pull

        _, mount = _open(file, env, out)
        pulled, refused = pull(mount.bucket, mount.key("output/") + prefix, dest)
        for name in refused:
            out.warn(f"refused {name!r}: it would be written outside {dest}")
        out.emit(
            {"pulled": pulled, "refused": refused},
            f"{len(pulled)} files into {dest}" + (f", {len(refused)} refused" if refused else ""),
        )
        if refused:
            raise EascomfyError(f"{len(refused)} output names were refused (they would escape {dest})")


def register(app: typer.Typer) -> None:
    app.add_typer(storage_app, name="storage")
    app.add_typer(models_app, name="models")
    app.add_typer(nodes_app, name="nodes")
    app.add_typer(wheels_app, name="wheels")
    app.add_typer(outputs_app, name="outputs")
