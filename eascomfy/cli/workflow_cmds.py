"""Workflow commands: ``check``, ``run`` (synchronous), ``submit`` and ``results`` (the API edition's
queue). Cheap to import: typer and the shared options; the library, the adapters and the SDKs are
imported inside the command bodies.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from .options import DEFAULT_SPEC, EnvOpt, FileOpt, OutputOpt, RegionOpt, ServiceOpt, SpecRef, session

if TYPE_CHECKING:
    from ..core.workflow import InputRef
    from ..workflows.check import CheckReport
    from .output import Out
    from ..workflows.queue import ResultsReport
    from ..workflows.target import Target

WorkflowArg = Annotated[Path, typer.Argument(help="An API-format workflow (Workflow > Export (API)).", metavar="WORKFLOW.json")]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Change an input: NODE.inputs.FIELD=VALUE (VALUE as JSON: 42, true, \"text\"; else text; "
                 "@FILE uploads a local file, @@ a literal @). Repeatable.",
                 metavar="NODE.inputs.FIELD=VALUE"),
]
InputOpt = Annotated[
    Optional[list[str]],
    typer.Option("--input", help="Upload a local file for a node input, e.g. 10.image=photo.png (named by its content: "
                 "never uploaded twice). Repeatable.", metavar="NODE.INPUT=FILE"),
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


def _target(ref: SpecRef, service: str | None, region: str | None, url: str | None, token: str | None,
            command: str) -> "Target":
    """The service the options name; the spec is loaded only when neither a URL nor a service is given."""
    from ..workflows.target import resolve_target

    spec = ref.spec if not url and not service else None
    return resolve_target(ref.out, spec=spec, service=service, region=region, url=url, token=token, command=command)


def _file_refs(sets: list[str] | None, inputs: list[str] | None) -> tuple[list[str], list["InputRef"]]:
    """``--set`` values without the ``@FILE`` ones, and every file reference (``--set @FILE``, ``--input``)."""
    from ..core.workflow import InputRef, split_file_sets

    plain, refs = split_file_sets(sets or [])
    return plain, refs + [InputRef.parse(text) for text in inputs or []]


def _confirm(question: str) -> bool:
    """Ask on a terminal; off a terminal the answer is yes."""
    if not sys.stdin.isatty():
        return True
    try:
        return typer.confirm(question, default=True, err=True)
    except (KeyboardInterrupt, EOFError, typer.Abort):
        return True


def _check_text(report: "CheckReport") -> str:
    errors = report.errors
    lines = [f"problem: {p.line()}" for p in errors] + [f"unverified: {p.line()}" for p in report.unverified]
    summary = (f"{report.workflow}: {len(errors)} problem{'s' if len(errors) != 1 else ''}" if errors
               else f"{report.workflow}: ok ({report.nodes} nodes; checked {', '.join(report.checked)})")
    return "\n".join(lines + [summary])


# -- check -------------------------------------------------------------------------------------------------
def check_cmd(
    workflow: WorkflowArg,
    sets: SetOpt = None,
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    service: ServiceOpt = None,
    region: RegionOpt = None,
    service_url: ServiceUrlOpt = None,
    token: TokenOpt = None,
    offline: Annotated[bool, typer.Option("--offline", help="Only the offline checks (format, graph).")] = False,
    fix: Annotated[bool, typer.Option("--fix", help="Pull the missing models the spec's models: has a source for, then check again.")] = False,
    output: OutputOpt = None,
) -> None:
    """Check a workflow before a GPU is spent: format and graph; with the spec, its models and custom
    nodes on the mount, node types on the service, and what the edition can run. Lists every problem.

    Example: eascomfy check --fix workflow.api.json
    """
    with session("check", output) as out:
        from ..errors import EascomfyError, UsageError
        from ..workflows.check import OnlineCheck
        from ..workflows.matrix import load_with_overrides

        ref = SpecRef(out, file, env)
        if fix and (offline or service_url or service):
            raise UsageError("--fix pulls models into the spec's mount: use it with the spec, without --offline, "
                             "--service or --service-url")
        flow = load_with_overrides(workflow, sets or [])
        found = OnlineCheck(out)
        if offline:
            found.notes.append("offline checks only (--offline)")
        elif service_url or service:
            found.given(_target(ref, service, region, service_url, token, "check"))
        elif ref.given or fix:
            found.from_spec(ref.spec)
        else:
            found.notes.append("offline checks only (no spec or service at hand)")
        report = found.check(flow, str(workflow))
        fixed = None
        if fix and report.errors:
            report, fixed = _fix_models(out, ref, flow, report)
        for note in report.notes:
            out.info(note)
        data = report.to_dict()
        if fixed is not None:
            data["fix"] = fixed
        out.emit(data, _check_text(report))
        if report.errors:
            count = len(report.errors)
            raise EascomfyError(f"{count} problem{'s' if count != 1 else ''} in {workflow}; nothing was sent",
                                "fix each one above")


def _fix_models(out: "Out", ref: SpecRef, flow: dict, report: "CheckReport") -> "tuple[CheckReport, dict]":
    """``check --fix``: pull what the spec has a source for (as ``storage sync`` would), say what
    could not be fixed, and check again when something was pulled."""
    from ..storage.mount import Mount
    from ..storage.pull_source import plan_pulls
    from ..workflows.check import OnlineCheck, plan_model_fixes
    from .storage_cmds import pull_sources

    mount = Mount.open(ref.spec, out)
    fixes = plan_model_fixes(flow, report.errors, ref.spec, mount)
    for p in fixes.unfixable:
        out.warn(f"not fixed: {p.line()}")
    if not fixes.pulls:
        return report, fixes.to_dict()
    pulls = plan_pulls(mount, [i.source for i in fixes.pulls], names=[i.name for i in fixes.pulls],
                       kinds=[i.kind for i in fixes.pulls])
    for i in fixes.pulls:
        out.info(f"pulling {i.source} into models/{i.kind}/{i.name}")
    pull_sources(out, mount, pulls)
    again = OnlineCheck(out)
    again.from_spec(ref.spec)
    return again.check(flow, report.workflow), fixes.to_dict()


# -- run ---------------------------------------------------------------------------------------------------
def run_cmd(
    workflow: WorkflowArg,
    sets: SetOpt = None,
    inputs: InputOpt = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Where the outputs go.", metavar="DIR")] = Path("outputs"),
    timeout: Annotated[str, typer.Option("--timeout", help="How long the job and its downloads may take (600, 90s, 10m); then it is interrupted.",
                                         metavar="DURATION")] = "600",
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
    download every output into DIR. Ctrl-C offers to interrupt the job on the server.

    Example: eascomfy run img2img.json --input 10.image=photo.png --set 3.inputs.seed=42"""
    with session("run", output) as out:
        from ..core.duration import parse_duration
        from ..errors import EascomfyError
        from ..workflows.inputs import prepare
        from ..workflows.matrix import load_with_overrides
        from ..workflows.run import run

        seconds = parse_duration(timeout, param="timeout")
        plain, refs = _file_refs(sets, inputs)
        flow = load_with_overrides(workflow, plain)
        files = prepare(flow, refs)  # missing files, folders, unknown nodes or inputs: before any call
        target = _target(SpecRef(out, file, env), service, region, service_url, token, "run")
        with target.client(out) as client:
            report = run(client, flow, out, out_dir=out_dir, timeout=seconds, allow_partial=allow_partial,
                         check=not no_check, confirm=_confirm, inputs=files)
        lines = [f"  {f['path']} ({f['size']} bytes)" for f in report.files]
        out.emit({**report.to_dict(), "service": target.service},
                 "\n".join([f"prompt {report.prompt_id}: {report.status} in {report.seconds:.1f} s, "
                            f"{len(report.files)} file{'s' if len(report.files) != 1 else ''} in {out_dir}", *lines]))
        if report.refused or report.unwritable:
            raise EascomfyError(", ".join(
                ([f"{len(report.refused)} output name(s) refused: they would be written outside {out_dir}"] if report.refused else [])
                + ([f"{len(report.unwritable)} output(s) could not be written in {out_dir}"] if report.unwritable else [])))


# -- submit ------------------------------------------------------------------------------------------------
def submit_cmd(
    workflow: WorkflowArg,
    sets: SetOpt = None,
    inputs: InputOpt = None,
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
    """Queue jobs on an API-edition service (POST /api_prompt?task_id=…), each task id journaled first.

    Input files go to input/ on the service's mount (the spec's storage.oss), e.g.
    eascomfy submit img2img.json --input 10.image=photo.png --count 4"""
    with session("submit", output) as out:
        from ..core.workflow import load_workflow
        from ..errors import EascomfyError, UsageError
        from ..workflows.check import refuse_broken_graph
        from ..workflows.inputs import prepare
        from ..workflows.journal import Journal
        from ..workflows.matrix import load_jobs, read_matrix
        from ..workflows.queue import submit, task_prefix

        if matrix is not None and count != 1:
            raise UsageError("pass --count or --matrix, not both")
        plain, refs = _file_refs(sets, inputs)
        flow = load_workflow(workflow)
        files = prepare(load_jobs(flow, plain, 1, None)[0][0], refs)  # before any call
        jobs = load_jobs(flow, plain, count, read_matrix(matrix) if matrix else None)
        refuse_broken_graph(jobs[0][0], str(workflow))
        ref = SpecRef(out, file, env)
        sent = []
        if files:
            from ..storage.mount import Mount
            from ..workflows.inputs import bind, names_of, send_to_mount

            if not (ref.spec.data.get("storage") or {}).get("oss"):
                raise UsageError(f"{ref.spec.file}: storage.oss is not set; input files go to input/ on the service's "
                                 "mount", "give the spec of the service, with its storage", param="inputs")
        target = _target(ref, service, region, service_url, token, "submit")
        if files:
            sent = send_to_mount(Mount.open(ref.spec, out), files, out)
            jobs = [(bind(job, files, names_of(sent)), texts) for job, texts in jobs]
        journal = Journal.for_service(target.service, journal_file)
        try:
            with target.client(out, connections=concurrency) as client:
                report = submit(client, jobs, journal, out, prefix=task_prefix(prefix or workflow.stem),
                                source=str(workflow), concurrency=concurrency)
        finally:
            journal.close()
        data = {**report.to_dict(), "service": target.service, "inputs": [i.to_dict() for i in sent]}
        text = (f"{len(report.task_ids) - len(report.failed)} job(s) queued on {target.service} in {report.seconds:.2f} s"
                + (f", {len(report.failed)} failed" if report.failed else "")
                + (f", {len(report.unknown)} answer(s) lost (maybe queued: results settles them)" if report.unknown else "")
                + f"; journal {report.journal}\n"
                f"next: eascomfy results --follow" + (f" --journal {journal_file}" if journal_file else ""))
        out.emit(data, text)
        if report.failed:
            raise EascomfyError(f"{len(report.failed)} job(s) were not accepted (see the journal)")


# -- results -----------------------------------------------------------------------------------------------
def results_cmd(
    follow: Annotated[bool, typer.Option("--follow", help="Keep reading until every task that may be on the queue has a result.")] = False,
    task_id: Annotated[Optional[str], typer.Option("--task-id", help="Only this task.", metavar="ID")] = None,
    download: Annotated[Optional[Path], typer.Option("--download", help="Also fetch each result's outputs from the mount into DIR/<task id>/.", metavar="DIR")] = None,
    idle: Annotated[
        float, typer.Option("--idle", help="Without --follow: stop after this long with no new result.", min=0.1, metavar="S")
    ] = 1.0,
    timeout: Annotated[
        Optional[str], typer.Option("--timeout", help="Stop after this long (30s, 10m, 2h) even if tasks are outstanding: exit 5.",
                                    metavar="DURATION")
    ] = None,
    resubmit_after: Annotated[
        Optional[str], typer.Option("--resubmit-after", help="Send again (same task id) tasks with no result this long after their last try.",
                                    metavar="DURATION")
    ] = None,
    max_tries: Annotated[
        int, typer.Option("--max-tries", help="With --resubmit-after: tries per task, then it goes to the dead-letter file.",
                          min=1, metavar="N")
    ] = 3,
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
    downloaded) before it is committed, so a crash loses nothing and a restart resumes. Tasks
    still outstanding (pending, answer lost, unconfirmed, overdue) are listed."""
    with session("results", output) as out:
        from ..core.duration import parse_duration
        from ..storage.mount import Mount
        from ..workflows.journal import Journal
        from ..workflows.queue import results

        seconds = parse_duration(timeout, param="timeout") if timeout is not None else None
        again = parse_duration(resubmit_after, param="resubmit_after") if resubmit_after is not None else None
        idle = parse_duration(idle, param="idle")  # NaN and inf pass typer's min=
        ref = SpecRef(out, file, env)
        target = _target(ref, service, region, service_url, token, "results")
        mount = Mount.open(ref.spec, out) if download is not None and ref.given else None
        journal = Journal.for_service(target.service, journal_file)
        try:
            report = results(target, journal, out, follow=follow, task_id=task_id, mount=mount, download=download,
                             drain_idle=idle, timeout=seconds, resubmit_after=again, max_tries=max_tries)
        finally:
            journal.close()
        out.emit({**report.to_dict(), "service": target.service, "results_dir": str(journal.results_dir)},
                 _results_text(report, str(journal.results_dir)))
        error = report.error()
        if error is not None:
            raise error


def _results_text(report: "ResultsReport", results_dir: str) -> str:
    written = report.written
    lines = [f"{r['task_id']}: {'ok' if r['ok'] else 'FAILED: ' + str(r['error'])}" for r in written]
    lines += [f"{d['task_id']}: DEAD-LETTERED: {d['reason']}" for d in report.dead]
    extra = [(len(report.unknown), "answer(s) lost"), (len(report.unconfirmed), "unconfirmed"),
             (len(report.overdue), "overdue"), (len(report.resent), "sent again"), (len(report.not_sent), "not sent")]
    summary = (f"{len(written)} result(s) written ({len(report.failed)} failed), {report.duplicates} duplicate(s) skipped, "
               f"{len(report.pending)} pending" + "".join(f", {n} {what}" for n, what in extra if n)
               + f"; results in {results_dir}"
               + (f"; {len(report.dead)} in the dead-letter file {report.dead_letters}" if report.dead else ""))
    return "\n".join(lines + [summary])


def register(app: typer.Typer) -> None:
    app.command("check")(check_cmd)
    app.command("run")(run_cmd)
    app.command("submit")(submit_cmd)
    app.command("results")(results_cmd)
