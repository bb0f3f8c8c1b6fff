"""Workflow commands: ``check``, ``run`` (synchronous), ``submit`` and ``results`` (the API edition's
queue). Cheap to import: typer and the shared options; the library, the adapters and the SDKs are
imported inside the command bodies.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from .options import DEFAULT_SPEC, EnvOpt, FileOpt, OutputOpt, RegionOpt, ServiceOpt, SpecRef, session


if TYPE_CHECKING:
    from ..core.workflow import Problem, Workflow
    from ..workflows.queue import Storage
    from ..workflows.target import Target
    from .output import Out

WorkflowArg = Annotated[Path, typer.Argument(help="An API-format workflow (Workflow > Export (API)).", metavar="WORKFLOW.json")]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Change an input: NODE.inputs.FIELD=VALUE (VALUE as JSON: 42, true, \"text\"; else text). Repeatable.",
                 metavar="NODE.inputs.FIELD=VALUE"),
]
ServiceUrlOpt = Annotated[
    Optional[str],
    typer.Option("--service-url", help="The service endpoint (…/api/predict/<service>) instead of DescribeService.",
                 envvar="EASCOMFY_SERVICE_URL", show_envvar=True, metavar="URL"),
]
TokenOpt = Annotated[
    Optional[str],
    typer.Option("--token", help="The service token (with --service-url); never printed.", envvar="EASCOMFY_SERVICE_TOKEN",
                 show_envvar=True, show_default=False, metavar="TOKEN"),
]
JournalOpt = Annotated[
    Optional[Path],
    typer.Option("--journal", help="The job journal (default: <state dir>/jobs/<service>.jsonl).", metavar="FILE"),
]


def _spec_given(file: Path) -> bool:
    return file != DEFAULT_SPEC or file.exists()


def _target(out: "Out", file: Path, env: str | None, service: str | None, region: str | None,
            url: str | None, token: str | None, command: str) -> "Target":
    from ..workflows.target import resolve_target
    spec = SpecRef(out, file, env).spec if not url and not service else None
    return resolve_target(out, spec=spec, service=service, region=region, url=url, token=token, command=command)


def _load(workflow: Path, sets: list[str] | None) -> "Workflow":
    from ..core.workflow import Override, apply_overrides, load_workflow

    return apply_overrides(load_workflow(workflow), [Override.parse(s) for s in sets or []])


def _storage(file: Path, env: str | None, out: "Out") -> "Storage":
    from ..workflows.queue import Storage
    from .storage_cmds import Mount

    mount = Mount(file, env, out)
    return Storage(mount.client, mount.loc.prefix)


def _confirm(question: str) -> bool:
    """Ask on a terminal; off a terminal the answer is yes."""
    if not sys.stdin.isatty():
        return True
    try:
        return typer.confirm(question, default=True, err=True)
    except (KeyboardInterrupt, EOFError, typer.Abort):
        return True


# -- check -------------------------------------------------------------------------------------------------
class Online:
    """What the online checks could reach: the edition, the mount's inventory, ``/object_info``;
    what they could not reach becomes a note (the offline checks still run)."""

    def __init__(self) -> None:
        self.checked, self.notes = ["format", "graph"], []
        self.problems: list[Problem] = []
        self.edition: Any = None
        self.target: Target | None = None
        self.info: dict[str, Any] | None = None
        self.mount: Any = None

    def from_spec(self, file: Path, env: str | None, out: "Out") -> None:
        from ..core.workflow import Problem
        from ..errors import CloudError, EascomfyError
        from ..workflows.check import inventory
        from ..workflows.target import require_edition
        spec = SpecRef(out, file, env).spec
        self.edition = spec.edition
        try:
            require_edition(spec.edition, "check")
        except EascomfyError as exc:  # Serverless: no API calls at all
            self.problems.append(Problem(None, None, exc.message, exc.hint, code="edition"))
            return
        self.checked.append("edition")
        if (spec.data.get("storage") or {}).get("oss"):
            try:
                store = _storage(file, env, out)
                self.mount = inventory(store.bucket, store.prefix)
                self.checked.append("storage")
            except CloudError as exc:
                self.notes.append(f"storage not checked: {exc}")
        else:
            self.notes.append("storage not checked: the spec has no storage.oss")
        if spec.edition.can("async_api"):
            self.notes.append(f"the {spec.edition.title} serves no /object_info: node types were checked against "
                              "custom_nodes/ on the mount; run it with `eascomfy submit`")
            return
        try:
            self.target = _target(out, file, env, None, None, None, None, "check")
        except CloudError as exc:
            self.notes.append(f"service not checked: {exc}")

    def object_info(self, out: "Out") -> None:
        from ..errors import CloudError

        if self.target is None:
            return
        try:
            with self.target.client(out) as client:
                self.info = client.object_info()
        except CloudError as exc:
            self.notes.append(f"service not checked: {exc}")
            return
        if self.info is None:
            self.notes.append("the service serves no /object_info (API edition?): node types not checked there")
        else:
            self.checked.append("object_info")


def check(
    workflow: WorkflowArg,
    sets: SetOpt = None,
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    service: ServiceOpt = None,
    region: RegionOpt = None,
    service_url: ServiceUrlOpt = None,
    token: TokenOpt = None,
    offline: Annotated[bool, typer.Option("--offline", help="Only the offline checks (format, graph).")] = False,
    output: OutputOpt = None,
) -> None:
    """Check a workflow before a GPU is spent: format and graph; with the spec, its models and custom
    nodes on the mount, node types on the service, and what the edition can run. Lists every problem."""
    with session("check", output) as out:
        from ..errors import EascomfyError
        from ..workflows.check import check_workflow, errors_only

        flow = _load(workflow, sets)
        found = Online()
        if offline:
            found.notes.append("offline checks only (--offline)")
        elif service_url or service:
            found.target = _target(out, file, env, service, region, service_url, token, "check")
            found.edition = found.target.edition
        elif _spec_given(file):
            found.from_spec(file, env, out)
        else:
            found.notes.append("offline checks only (no spec or service at hand)")
        found.object_info(out)
        problems = found.problems + check_workflow(flow, info=found.info, mount=found.mount)
        checked, notes, edition = found.checked, found.notes, found.edition
        errors = errors_only(problems)
        unverified = [p for p in problems if p.severity != "error"]
        for note in notes:
            out.info(note)
        data = {"workflow": str(workflow), "nodes": len(flow), "checked": checked, "edition": edition.name if edition else None,
                "problems": [p.to_dict() for p in errors], "unverified": [p.to_dict() for p in unverified], "notes": notes}
        lines = [f"problem: {p.line()}" for p in errors] + [f"unverified: {p.line()}" for p in unverified]
        summary = (f"{workflow}: {len(errors)} problem{'s' if len(errors) != 1 else ''}" if errors
                   else f"{workflow}: ok ({len(flow)} nodes; checked {', '.join(checked)})")
        out.emit(data, "\n".join(lines + [summary]))
        if errors:
            raise EascomfyError(f"{len(errors)} problem{'s' if len(errors) != 1 else ''} in {workflow}; nothing was sent",
                                "fix each one above")


# -- run ---------------------------------------------------------------------------------------------------
def run(
    workflow: WorkflowArg,
    sets: SetOpt = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Where the outputs go.", metavar="DIR")] = Path("outputs"),
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the job; then it is interrupted.", metavar="S")] = 600.0,
    allow_partial: Annotated[bool, typer.Option("--allow-partial", help="Run the outputs that passed validation when others failed.")] = False,
    no_check: Annotated[bool, typer.Option("--no-check", help="Skip the /object_info check before sending.")] = False,
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    service: ServiceOpt = None,
    region: RegionOpt = None,
    service_url: ServiceUrlOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = None,
) -> None:
    """Run a workflow synchronously (Standard/Cluster editions): send it, follow its progress,
    download every output into DIR. Ctrl-C offers to interrupt the job on the server."""
    with session("run", output) as out:
        from ..errors import EascomfyError
        from ..workflows.run import run as run_job

        flow = _load(workflow, sets)
        target = _target(out, file, env, service, region, service_url, token, "run")
        with target.client(out) as client:
            report = run_job(client, flow, out, out_dir=out_dir, timeout=timeout, allow_partial=allow_partial,
                             check=not no_check, confirm=_confirm)
        lines = [f"  {f['path']} ({f['size']} bytes)" for f in report.files]
        out.emit({**report.to_dict(), "service": target.service},
                 "\n".join([f"prompt {report.prompt_id}: {report.status} in {report.seconds:.1f} s, "
                            f"{len(report.files)} file{'s' if len(report.files) != 1 else ''} in {out_dir}", *lines]))
        if report.refused:
            raise EascomfyError(f"{len(report.refused)} output name(s) refused: they would be written outside {out_dir}")


# -- submit ------------------------------------------------------------------------------------------------
def submit(
    workflow: WorkflowArg,
    sets: SetOpt = None,
    count: Annotated[int, typer.Option("--count", help="Send the workflow N times.", min=1, metavar="N")] = 1,
    matrix: Annotated[Optional[Path], typer.Option("--matrix", help="JSON/YAML list of overrides, one job each.", metavar="FILE")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Requests in flight.", min=1, max=256)] = 16,
    prefix: Annotated[Optional[str], typer.Option("--task-prefix", help="Task ids start with this (default: the file's name).", metavar="PREFIX")] = None,
    journal_file: JournalOpt = None,
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    service: ServiceOpt = None,
    region: RegionOpt = None,
    service_url: ServiceUrlOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = None,
) -> None:
    """Queue jobs on an API-edition service (POST /api_prompt?task_id=…), each task id journaled first."""
    with session("submit", output) as out:
        from ..core.workflow import graph_problems, load_workflow
        from ..errors import UsageError
        from ..workflows.check import JobError, errors_only
        from ..workflows.journal import Journal
        from ..workflows.matrix import load_jobs, read_matrix
        from ..workflows.queue import submit as submit_jobs, task_prefix

        if matrix is not None and count != 1:
            raise UsageError("pass --count or --matrix, not both")
        jobs = load_jobs(load_workflow(workflow), sets or [], count, read_matrix(matrix) if matrix else None)
        problems = errors_only(graph_problems(jobs[0][0]))
        if problems:
            raise JobError(f"{workflow}: the graph is broken; nothing was sent", [p.line() for p in problems])
        target = _target(out, file, env, service, region, service_url, token, "submit")
        journal = Journal.for_service(target.service, journal_file)
        try:
            with target.client(out, connections=concurrency) as client:
                report = submit_jobs(client, jobs, journal, out, prefix=task_prefix(prefix or workflow.stem),
                                     source=str(workflow), concurrency=concurrency)
        finally:
            journal.close()
        data = {**report.to_dict(), "service": target.service}
        text = (f"{len(report.task_ids) - len(report.failed)} job(s) queued on {target.service} in {report.seconds:.2f} s"
                + (f", {len(report.failed)} failed" if report.failed else "") + f"; journal {report.journal}\n"
                f"next: eascomfy results --follow" + (f" --journal {journal_file}" if journal_file else ""))
        out.emit(data, text)
        if report.failed:
            from ..errors import EascomfyError

            raise EascomfyError(f"{len(report.failed)} job(s) were not accepted (see the journal)")


# -- results -----------------------------------------------------------------------------------------------
def results(
    follow: Annotated[bool, typer.Option("--follow", help="Keep reading until every submitted task has a result.")] = False,
    task_id: Annotated[Optional[str], typer.Option("--task-id", help="Only this task.", metavar="ID")] = None,
    download: Annotated[Optional[Path], typer.Option("--download", help="Also fetch each result's outputs from the mount into DIR/<task id>/.", metavar="DIR")] = None,
    idle: Annotated[
        float, typer.Option("--idle", help="Without --follow: stop after this long with no new result.", min=0.1, metavar="S")
    ] = 1.0,
    journal_file: JournalOpt = None,
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    service: ServiceOpt = None,
    region: RegionOpt = None,
    service_url: ServiceUrlOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = None,
) -> None:
    """Read results from the API edition's sink queue: each written durably (and its outputs
    downloaded) before it is committed, so a crash loses nothing and a restart resumes."""
    with session("results", output) as out:
        from ..errors import EascomfyError
        from ..workflows.journal import Journal
        from ..workflows.queue import results as collect

        target = _target(out, file, env, service, region, service_url, token, "results")
        storage = _storage(file, env, out) if download is not None and _spec_given(file) else None
        journal = Journal.for_service(target.service, journal_file)
        try:
            report = collect(target, journal, out, follow=follow, task_id=task_id, storage=storage, download=download,
                             drain_idle=idle)
        finally:
            journal.close()
        written = report.written
        lines = [f"{r['task_id']}: {'ok' if r['ok'] else 'FAILED: ' + str(r['error'])}" for r in written]
        summary = (f"{len(written)} result(s) written ({len(report.failed)} failed), {report.duplicates} duplicate(s) skipped, "
                   f"{len(report.pending)} pending; results in {journal.results_dir}")
        out.emit({**report.to_dict(), "service": target.service, "results_dir": str(journal.results_dir)},
                 "\n".join(lines + [summary]))
        if report.failed or report.refused:
            raise EascomfyError(f"{len(report.failed)} job(s) failed" + (f", {len(report.refused)} output name(s) refused"
                                                                         if report.refused else ""))


def register(app: typer.Typer) -> None:
    for func, name in ((check, "check"), (run, "run"), (submit, "submit"), (results, "results")):
        app.command(name)(func)
