"""Storage commands: ``storage init|ls|sync``, ``models push|pull``, ``nodes add|push``, ``wheels push``,
``outputs pull``. They act on the spec's ``storage.oss`` folder (the service's mounted data
directory), opened by the library (``storage.mount.Mount``); what goes to which key is the
library's too. oss2 and the upload engine are imported inside the command bodies.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from .options import DEFAULT_SPEC, EnvOpt, FileOpt, OutputOpt, SpecRef, session

if TYPE_CHECKING:
    from ..storage.mount import Mount
    from ..storage.upload import PushResult
    from .output import Out

PartSizeOpt = Annotated[int, typer.Option("--part-size", help="Multipart part size in MiB.", min=1, max=1024)]
WorkersOpt = Annotated[int, typer.Option("--workers", help="Parts uploaded in parallel.", min=1, max=64)]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show what would be uploaded; send nothing.")]

def _push(out: "Out", mount: "Mount", pairs: list[tuple[Path, str]], label: str,
          part_size: int | None = None, workers: int | None = None) -> "list[PushResult]":
    """Upload (file, key) pairs through the one upload engine, with bars on a terminal;
    ``part_size`` in MiB (the flag's unit), the engine's defaults when not given."""
    from ..storage.upload import DEFAULT_PART_SIZE, DEFAULT_WORKERS, MiB, Uploader
    from .bars import TransferBars

    total = sum(f.stat().st_size for f, _ in pairs)
    with TransferBars(out, total, label) as bars:
        uploader = Uploader(mount.bucket, part_size=part_size * MiB if part_size else DEFAULT_PART_SIZE,
                            workers=workers or DEFAULT_WORKERS, progress=bars.advance, on_file=bars.file, warn=out.warn)
        return uploader.push_many(pairs)


def _report(out: "Out", mount: "Mount", results: "list[PushResult]", extra: dict[str, Any] | None = None) -> None:
    from .storage_views import push_text

    out.emit({"files": [r.to_dict() for r in results], **(extra or {})}, push_text(mount, results))


# -- storage ---------------------------------------------------------------------------------------
def storage_init_cmd(
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    create_bucket: Annotated[bool, typer.Option("--create-bucket", help="Create the bucket when it does not exist.")] = False,
    output: OutputOpt = None,
) -> None:
    """Create ComfyUI's folders (models/*, custom_nodes/, input/, output/, temp/); idempotent."""
    with session("storage init", output) as out:
        from ..storage.mount import LAYOUT, Mount, check_bucket, init_layout
        from .storage_views import layout_text

        mount = Mount.open(SpecRef(out, file, env).spec, out, check=False)
        if check_bucket(mount.bucket, mount.region, create=create_bucket):
            out.info(f"created bucket {mount.bucket.name} in {mount.region}")
        created = init_layout(mount.bucket, mount.prefix)
        existing = len(LAYOUT) - len(created)
        out.emit(
            {"bucket": mount.bucket.name, "prefix": mount.prefix, "created": created, "existing": existing},
            layout_text(mount, created, existing),
        )


def storage_ls_cmd(
    path: Annotated[str, typer.Argument(help="Folder under the mount, e.g. models/checkpoints.", metavar="PATH")] = "",
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Everything below PATH.")] = False,
    output: OutputOpt = None,
) -> None:
    """List files and folders on the mount, with sizes."""
    with session("storage ls", output) as out:
        from ..storage.mount import Mount, list_folder
        from .storage_views import ls_text

        rows = list_folder(Mount.open(SpecRef(out, file, env).spec, out), path, recursive=recursive)
        out.emit(rows, ls_text(rows) or None)


def storage_sync_cmd(
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    dry_run: DryRunOpt = False,
    part_size: PartSizeOpt = 16,
    workers: WorkersOpt = 4,
    output: OutputOpt = None,
) -> None:
    """Make models/ on the mount match the spec's `models:` list (prints the plan first), then
    record what the mount holds in eascomfy.lock beside the spec.

    Example: eascomfy storage sync --dry-run"""
    with session("storage sync", output) as out:
        from ..core.lockfile import digest
        from ..storage.lock import build_section, plan_storage, spec_section, write_lock
        from ..storage.mount import Mount
        from .storage_views import sync_lines, sync_text

        spec = SpecRef(out, file, env).spec
        previous = spec_section(spec)  # a damaged lockfile is refused before any call
        mount = Mount.open(spec, out)
        storage = plan_storage(mount, spec, previous)
        plan = storage.models
        for line in sync_lines(mount, storage.items):
            out.info(line)
        results = [] if dry_run else _push(out, mount, plan.uploads, "sync", part_size, workers)
        pulled, sha256 = ([], {}) if dry_run else pull_items(out, mount, plan.pulls, part_size, workers)
        data: dict[str, Any] = {"plan": [i.to_dict() for i in plan.items], "uploaded": [r.to_dict() for r in results],
                                "dry_run": dry_run}
        if plan.pulls:
            data["pulled"] = [r.to_dict() for r in pulled]
        data["storage"] = storage.to_dict()
        if not dry_run and not storage.wrong:
            section = build_section(mount, spec, previous, [*results, *pulled], sha256)
            data["lock"] = {"file": str(write_lock(spec, section)), "digest": digest(section)}
            out.info(f"recorded in {data['lock']['file']}")
        out.emit(data, sync_text(plan, dry_run))
        storage.check()


def pull_items(out: "Out", mount: "Mount", items: list[Any], part_size: int | None = None,
               workers: int | None = None) -> "tuple[list[PushResult], dict[str, str | None]]":
    """Stream the spec's models that have a source into the mount: (results, key -> the SHA-256
    the source published)."""
    if not items:
        return [], {}
    from ..storage.pull_source import plan_pulls

    pulls = plan_pulls(mount, [i.source for i in items if i.source], names=[i.name for i in items],
                       kinds=[i.kind for i in items])
    return pull_sources(out, mount, pulls, part_size, workers), {p.key: p.source.remote.sha256 for p in pulls}


# -- models, nodes, wheels -----------------------------------------------------------------------------
def models_push_cmd(
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
    with session("models push", output) as out:
        from ..errors import UsageError
        from ..storage.mount import Mount, model_targets

        if kind is None and for_workflow is None:
            raise UsageError("pass --kind (e.g. --kind checkpoints) or --for WORKFLOW.json")
        targets = model_targets(files, kind, for_workflow)
        mount = Mount.open(SpecRef(out, file, env).spec, out)
        _report(out, mount, _push(out, mount, mount.place(targets), "models", part_size, workers))


def nodes_push_cmd(
    folders: Annotated[list[Path], typer.Argument(help="Custom node folders (e.g. ComfyUI-VideoHelperSuite).", exists=True, file_okay=False)],
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    part_size: PartSizeOpt = 16,
    workers: WorkersOpt = 4,
    output: OutputOpt = None,
) -> None:
    """Upload custom node folders to custom_nodes/ (caches and .git are left out) and merge their
    requirements.txt into the spec's pip:; restart the service to load them.

    Example: eascomfy nodes push ./ComfyUI-VideoHelperSuite
    """
    with session("nodes push", output) as out:
        from ..storage.mount import Mount
        from ..storage.nodes import local_packs, plan_requirements, targets, write_requirements

        spec = SpecRef(out, file, env).spec
        packs = local_packs(folders)
        merged = plan_requirements(spec, packs, out)  # a conflict stops here: nothing sent
        pairs = targets(packs, out)
        mount = Mount.open(spec, out)
        results = _push(out, mount, mount.place(pairs), "nodes", part_size, workers)
        added = write_requirements(spec, merged)
        if added or merged.drop:
            out.info(f"pip in {spec.file}: added {', '.join(added) or 'nothing'}"
                     + (f"; dropped {', '.join(merged.drop)}" if merged.drop else "") + "; deploy to install them")
        _report(out, mount, results, {"folders": [p.name for p in packs], "requirements": merged.to_dict()})
        out.info("restart the service (eascomfy restart) so ComfyUI loads new nodes")


def nodes_add_cmd(
    sources: Annotated[Optional[list[str]], typer.Argument(
        help="Git URLs, each with an optional @REV (a tag, a branch or a commit). None: every entry of the spec's nodes:.",
        metavar="GIT_URL[@REV]...")] = None,
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    no_write: Annotated[bool, typer.Option("--no-write", help="Do not record the packs and their requirements in the spec.")] = False,
    part_size: PartSizeOpt = 16,
    workers: WorkersOpt = 4,
    output: OutputOpt = None,
) -> None:
    """Put custom node packs from git into custom_nodes/ at a pinned commit, merge their
    requirements.txt into the spec's pip: (conflicts between packs are refused, by name) and record
    them in the spec's nodes:. Restart the service to load them.

    Example: eascomfy nodes add https://github.com/Kosinkadink/ComfyUI-VideoHelperSuite@v1.7.9
    """
    with session("nodes add", output) as out:
        import tempfile

        from ..errors import UsageError
        from ..storage import nodes
        from ..storage.lock import record_node_packs
        from ..storage.mount import Mount

        spec = SpecRef(out, file, env).spec
        wanted = [nodes.parse_node_source(s) for s in sources] if sources else nodes.spec_sources(spec)
        if not wanted:
            raise UsageError(f"no custom node packs to add: give GIT_URL[@REV] or list them under nodes: in {spec.file}")
        nodes.check_names(wanted)
        with tempfile.TemporaryDirectory(prefix="eascomfy-nodes-") as tmp:
            packs = nodes.fetch(wanted, Path(tmp), out)
            merged = nodes.plan_requirements(spec, packs, out)  # a conflict stops here: nothing sent
            pairs = nodes.targets(packs, out)
            mount = Mount.open(spec, out)
            placed = mount.place(pairs)
            results = _push(out, mount, placed, "nodes", part_size, workers)
            removed = nodes.remove_stale(mount, packs, {key for _, key in placed})
        pinned = nodes.lock(packs)
        added, recorded, lockfile = [], [], None
        if not no_write:
            added = nodes.write_requirements(spec, merged)
            recorded = nodes.record_sources(spec, packs) if sources else []
            lockfile = str(record_node_packs(spec, pinned)) if pinned else None
            if added or merged.drop:
                out.info(f"pip in {spec.file}: added {', '.join(added) or 'nothing'}"
                         + (f"; dropped {', '.join(merged.drop)}" if merged.drop else "") + "; deploy to install them")
        for key in removed:
            out.info(f"removed {key} (not in the pinned commit)")
        _report(out, mount, results, {"packs": [p.to_dict() for p in packs], "lock": pinned,
                                      "requirements": merged.to_dict(), "removed": removed, "recorded": recorded,
                                      "lockfile": lockfile})
        out.info("restart the service (eascomfy restart) so ComfyUI loads new nodes")


def wheels_push_cmd(
    wheels: Annotated[list[Path], typer.Argument(help="Wheel files.", exists=True, dir_okay=False)],
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    no_write: Annotated[bool, typer.Option("--no-write", help="Do not add the wheels to the spec's wheels list (nor to eascomfy.lock).")] = False,
    output: OutputOpt = None,
) -> None:
    """Upload wheels to models/whl/, add them to the spec's wheels list (installed before start) and
    their SHA-256 to eascomfy.lock."""
    with session("wheels push", output) as out:
        from ..local.specfile import add_wheels
        from ..storage.lock import record_wheels, spec_section
        from ..storage.mount import Mount, wheel_targets

        targets = wheel_targets(wheels)
        spec = SpecRef(out, file, env).spec
        spec_section(spec)  # a damaged lockfile is refused before any call
        mount = Mount.open(spec, out)
        results = _push(out, mount, mount.place(targets), "wheels")
        added = [] if no_write else add_wheels(Path(spec.file), [w.name for w in wheels])
        if added:
            out.info(f"added {', '.join(added)} to wheels in {spec.file}; deploy to install them")
        lock = None if no_write else str(record_wheels(spec, results))
        _report(out, mount, results, {"added_to_spec": added, "lock": lock})


def models_pull_cmd(
    sources: Annotated[list[str], typer.Argument(
        help="hf://org/repo/path/file[@revision], ms://owner/name/path[@revision], civitai://VERSION_ID or https://... "
             "(tokens: HF_TOKEN, MODELSCOPE_API_TOKEN, CIVITAI_API_TOKEN).", metavar="SOURCE...")],
    kind: Annotated[Optional[str], typer.Option("--kind", "-k", help="Folder under models/ (default: guessed from the path).", metavar="KIND")] = None,
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    part_size: PartSizeOpt = 16,
    workers: WorkersOpt = 4,
    output: OutputOpt = None,
) -> None:
    """Stream models from Hugging Face, ModelScope, Civitai or a URL straight into models/<kind>/ (no local copy; SHA-256 and CRC64 verified; an interrupted pull resumes).

    Example: eascomfy models pull hf://org/repo/vae/ae.safetensors civitai://128713 ms://owner/name/unet/model.safetensors@v1.0
    """
    with session("models pull", output) as out:
        from ..storage.mount import Mount
        from ..storage.pull_source import plan_pulls

        mount = Mount.open(SpecRef(out, file, env).spec, out)
        pulls = plan_pulls(mount, sources, kind)
        _report(out, mount, pull_sources(out, mount, pulls, part_size, workers), {"sources": [p.to_dict() for p in pulls]})


def pull_sources(out: "Out", mount: "Mount", pulls: list[Any], part_size: int | None = None,
          workers: int | None = None) -> "list[PushResult]":
    """Stream probed sources into the mount through the upload engine, with bars on a terminal."""
    from ..storage.pull_source import run_pulls
    from ..storage.upload import DEFAULT_PART_SIZE, DEFAULT_WORKERS, MiB, Uploader
    from .bars import TransferBars

    with TransferBars(out, sum(p.size for p in pulls), "pull") as bars:
        uploader = Uploader(mount.bucket, part_size=part_size * MiB if part_size else DEFAULT_PART_SIZE,
                            workers=workers or DEFAULT_WORKERS, progress=bars.advance, on_file=bars.file, warn=out.warn)
        return run_pulls(uploader, mount, pulls, out)


# -- outputs -----------------------------------------------------------------------------------------
def outputs_pull_cmd(
    prefix: Annotated[str, typer.Option("--prefix", help="Only names starting with this (e.g. a subfolder).", metavar="PREFIX")] = "",
    dest: Annotated[Path, typer.Option("--dest", help="Local folder.")] = Path("outputs"),
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    output: OutputOpt = None,
) -> None:
    """Download files from output/ on the mount; a name that would escape DEST is refused."""
    with session("outputs pull", output) as out:
        from ..storage.mount import Mount
        from ..storage.pull import pull_outputs
        from .storage_views import pull_text

        pulled = pull_outputs(Mount.open(SpecRef(out, file, env).spec, out), dest, prefix, out)
        out.emit(pulled.to_dict(), pull_text(pulled))
        pulled.check()


GROUPS = (
    ("storage", "The mounted OSS folder: layout, listing, declarative sync.",
     (("init", storage_init_cmd), ("ls", storage_ls_cmd), ("sync", storage_sync_cmd))),
    ("models", "Models into the right models/<kind>/ folder.", (("push", models_push_cmd), ("pull", models_pull_cmd))),
    ("nodes", "Custom node packs into custom_nodes/ (from git, pinned, or local folders).",
     (("add", nodes_add_cmd), ("push", nodes_push_cmd))),
    ("wheels", "Wheels into models/whl/ (installed before ComfyUI starts).", (("push", wheels_push_cmd),)),
    ("outputs", "What ComfyUI wrote to output/.", (("pull", outputs_pull_cmd),)),
)


def register(app: typer.Typer) -> None:
    """Attach the storage command groups to the app."""
    for name, help_text, commands in GROUPS:
        group = typer.Typer(help=help_text, no_args_is_help=True)
        for command, func in commands:
            group.command(command)(func)
        app.add_typer(group, name=name)
