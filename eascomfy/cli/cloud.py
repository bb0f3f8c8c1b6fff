"""The commands that talk to EAS (plan, deploy, update-image, signed-url, status, delete, start,
stop, restart, rollback, versions) and the two that bring their own EAS (sandbox, demo).

Cheap to import: typer and the output module only; the library, the adapter and the SDKs are
imported inside the command bodies.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ..errors import EXIT_PLAN_CHANGES, EascomfyError, UsageError
from .app import DEFAULT_SPEC, EditionOpt, EnvOpt, FileOpt, OutputOpt, session

if TYPE_CHECKING:
    from .output import Out
    from ..adapters.eas import EasClient, Event, LiveService
    from ..core.spec import Spec
    from ..deploy import DeployResult

ServiceOpt = Annotated[
    Optional[str], typer.Option("--service", help="Act on this live service instead of the spec's (needs --region).", metavar="NAME")
]
RegionOpt = Annotated[
    Optional[str], typer.Option("--region", help="Region of the service, e.g. cn-hangzhou.", metavar="REGION")
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")]
WaitOpt = Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the service is ready.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds to wait for the service to be ready.", metavar="S")]
NoRollbackOpt = Annotated[bool, typer.Option("--no-rollback", help="Leave a failed update in place.")]
DEFAULT_TIMEOUT = 1800.0


def _spec(file: Path, env: str | None, edition: str | None, out: Out) -> "Spec":
    from ..core.spec import load_spec

    spec = load_spec(file, env=env, edition=edition)
    for warning in spec.warnings:
        out.warn(warning)
    return spec


def _target(file: Path, env: str | None, service: str | None, region: str | None, out: Out) -> tuple[str, str]:
    """(service name, region): from --service/--region, or from the spec."""
    if service:
        if not region:
            raise UsageError("--service needs --region", "e.g. --service comfy_dev --region cn-hangzhou")
        return service, region
    spec = _spec(file, env, None, out)
    return spec.name, region or spec.region


def _read_plan(path: Path) -> dict[str, Any]:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--plan {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise UsageError(f"--plan {path}: not a plan file (not JSON)", "write one with `eascomfy plan --out FILE`") from None
    if not isinstance(data, dict):
        raise UsageError(f"--plan {path}: not a plan file", "write one with `eascomfy plan --out FILE`")
    return data


def _client(region: str, out: Out) -> "EasClient":
    from ..deploy import connect

    return connect(region, out)


def _deploy_text(result: "DeployResult") -> str:
    plan = result.plan
    if not result.applied:
        return "dry run: nothing changed" if plan.has_changes else f"{plan.service}: no changes"
    if result.ready:
        return f"{plan.service}: {plan.action} done, ready in {result.seconds:.1f} s"
    return f"{plan.service}: {plan.action} sent (not waiting)" if plan.action != "labels" else f"{plan.service}: labels updated"


def _events_lines(events: "list[Event]") -> list[str]:
    return [f"  {e.line()}" for e in events]


def _status_text(live: "LiveService", region: str, events: "list[Event]") -> str:
    lines = [
        f"service {live.name} ({region}): {live.status}, {live.running}/{live.total} instances running",
        f"image: {live.image}",
        f"version: {live.current_version} (latest {live.latest_version})",
        f"internet endpoint: {live.internet_endpoint}",
        f"intranet endpoint: {live.intranet_endpoint}",
    ]
    if live.reason or live.message:
        lines.append(f"reason: {live.reason}: {live.message}")
    if events:
        lines += ["last events:", *_events_lines(events)]
    return "\n".join(lines)


# -- plan / deploy / update-image ------------------------------------------------------------------
def plan(
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    edition: EditionOpt = None,
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="Exit 2 when there are changes, 0 when there are none.")
    ] = False,
    plan_file: Annotated[
        Optional[Path], typer.Option("--out", help="Also save the plan to FILE, for `deploy --plan FILE`.", metavar="FILE")
    ] = None,
    output: OutputOpt = None,
) -> None:
    """Show what deploy would change on the live service (one read call)."""
    changed = False
    with session("plan", output) as out:
        from ..deploy import plan_service

        spec = _spec(file, env, edition, out)
        result, _ = plan_service(spec, _client(spec.region, out))
        changed = result.has_changes
        if plan_file is not None:
            import json

            from ..core.plan import saved_plan
            from ..project import write_atomic

            write_atomic(plan_file, json.dumps(saved_plan(result), indent=2, sort_keys=True) + "\n")
            out.info(f"plan saved to {plan_file}; apply exactly it with `eascomfy deploy --plan {plan_file}`")
        out.emit(result.to_dict(), "\n".join(result.lines()))
    if detailed_exitcode and changed:
        raise typer.Exit(EXIT_PLAN_CHANGES)


def deploy(
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    edition: EditionOpt = None,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    no_rollback: NoRollbackOpt = False,
    plan_file: Annotated[
        Optional[Path],
        typer.Option("--plan", help="Apply only if this saved plan (plan --out) still holds; refuse a stale one.", metavar="FILE"),
    ] = None,
    output: OutputOpt = None,
) -> None:
    """Create or update the service, wait until it answers, roll back a failed update."""
    with session("deploy", output) as out:
        from .. import deploy as ops

        saved = _read_plan(plan_file) if plan_file is not None else None
        spec = _spec(file, env, edition, out)
        client = _client(spec.region, out)
        result = ops.deploy(
            spec, client, out, dry_run=dry_run, wait=wait, timeout=timeout, rollback=not no_rollback, saved=saved
        )
        out.emit(result.to_dict(), _deploy_text(result))


def update_image(
    version: Annotated[str, typer.Argument(help="Official image version, e.g. 2.2 (the edition's suffix is kept).", metavar="VERSION")],
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    edition: EditionOpt = None,
    no_write: Annotated[bool, typer.Option("--no-write", help="Do not rewrite image.version in the spec file.")] = False,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    no_rollback: NoRollbackOpt = False,
    output: OutputOpt = None,
) -> None:
    """Switch the service to another official image version, through the same path as deploy."""
    with session("update-image", output) as out:
        from .. import deploy as ops

        spec = _spec(file, env, edition, out)
        ops.check_image_update(spec, version)
        client = _client(spec.region, out)
        result = ops.deploy(
            ops.with_image_version(spec, version),
            client,
            out,
            dry_run=dry_run,
            wait=wait,
            timeout=timeout,
            rollback=not no_rollback,
        )
        written = None
        if not (dry_run or no_write):
            from ..specfile import write_image_version

            written = write_image_version(spec, version)
            if written:
                out.info(f"wrote image.version {version} to {written}")
        data = {**result.to_dict(), "version": version, "file_written": bool(written),
                "file": str(written) if written else None}
        out.emit(data, _deploy_text(result))


# -- signed-url / status / versions ----------------------------------------------------------------
def signed_url(
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    service: ServiceOpt = None,
    region: RegionOpt = None,
    expire: Annotated[int, typer.Option("--expire", help="Validity in seconds, 1..43200 (12 hours).")] = 3600,
    internal: Annotated[bool, typer.Option("--internal", help="A VPC link instead of an internet one.")] = False,
    output: OutputOpt = None,
) -> None:
    """Print a logon-free WebUI link (to stdout only; it is never logged)."""
    with session("signed-url", output) as out:
        from ..deploy import check_expire

        check_expire(expire)
        name, region_id = _target(file, env, service, region, out)
        url = _client(region_id, out).signed_url(name, expire, internal=internal)
        out.emit_secret({"service": name, "region": region_id, "expire": expire, "internal": internal}, "signed_url", url)


def status(
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    service: ServiceOpt = None,
    region: RegionOpt = None,
    output: OutputOpt = None,
) -> None:
    """State, instances, endpoints, image and the last events of the service."""
    with session("status", output) as out:
        from ..deploy import status as get_status

        name, region_id = _target(file, env, service, region, out)
        live, events = get_status(_client(region_id, out), name)
        data = {**live.to_dict(), "region": region_id, "events": [e.__dict__ for e in events]}
        out.emit(data, _status_text(live, region_id, events))


def versions(
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    service: ServiceOpt = None,
    region: RegionOpt = None,
    output: OutputOpt = None,
) -> None:
    """The service's versions, newest first (the current one is marked *)."""
    with session("versions", output) as out:
        name, region_id = _target(file, env, service, region, out)
        client = _client(region_id, out)
        live = client.require(name)
        found = client.versions(name)
        data = [
            {"version": v.version, "build_time": v.build_time, "image": v.image, "runnable": v.runnable,
             "current": v.version == live.current_version, "message": v.message}
            for v in found
        ]
        lines = [
            f"{'*' if v.version == live.current_version else ' '} {v.version:>3}  {v.build_time}  {v.image}"
            + ("" if v.runnable else "  (not runnable)")
            for v in found
        ]
        out.emit(data, "\n".join(lines) or "no versions")


# -- changes to a live service ---------------------------------------------------------------------
def rollback(
    version: Annotated[Optional[int], typer.Argument(help="Version to switch to (default: the previous one).")] = None,
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    service: ServiceOpt = None,
    region: RegionOpt = None,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    output: OutputOpt = None,
) -> None:
    """Switch the service back to an earlier version."""
    with session("rollback", output) as out:
        from ..deploy import rollback as do_rollback

        name, region_id = _target(file, env, service, region, out)
        target = do_rollback(_client(region_id, out), name, out, version, wait=wait, timeout=timeout)
        out.emit({"service": name, "version": target}, f"{name}: now on version {target}")


def _lifecycle(action: str, file: Path, env: str | None, service: str | None, region: str | None,
               wait: bool, timeout: float, output: str | None) -> None:
    with session(action, output) as out:
        from ..deploy import lifecycle

        name, region_id = _target(file, env, service, region, out)
        live = lifecycle(_client(region_id, out), name, action, out, wait=wait, timeout=timeout)  # type: ignore[arg-type]
        state = live.status if live else "requested"
        out.emit({"service": name, "action": action, "status": state}, f"{name}: {action} {'done' if live else 'requested'} ({state})")


def start(file: FileOpt = DEFAULT_SPEC, env: EnvOpt = None, service: ServiceOpt = None, region: RegionOpt = None,
          wait: WaitOpt = True, timeout: TimeoutOpt = DEFAULT_TIMEOUT, output: OutputOpt = None) -> None:
    """Start a stopped service and wait until it answers."""
    _lifecycle("start", file, env, service, region, wait, timeout, output)


def stop(file: FileOpt = DEFAULT_SPEC, env: EnvOpt = None, service: ServiceOpt = None, region: RegionOpt = None,
         wait: WaitOpt = True, timeout: TimeoutOpt = DEFAULT_TIMEOUT, output: OutputOpt = None) -> None:
    """Stop the service (instances released; config and versions kept)."""
    _lifecycle("stop", file, env, service, region, wait, timeout, output)


def restart(file: FileOpt = DEFAULT_SPEC, env: EnvOpt = None, service: ServiceOpt = None, region: RegionOpt = None,
            wait: WaitOpt = True, timeout: TimeoutOpt = DEFAULT_TIMEOUT, output: OutputOpt = None) -> None:
    """Restart all instances and wait until the service answers again."""
    _lifecycle("restart", file, env, service, region, wait, timeout, output)


def delete(
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    service: ServiceOpt = None,
    region: RegionOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    output: OutputOpt = None,
) -> None:
    """Delete the service (asks first unless --yes)."""
    with session("delete", output) as out:
        from ..deploy import delete as do_delete

        name, region_id = _target(file, env, service, region, out)
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError(f"refusing to delete {name} without confirmation", "pass --yes (stdin is not a terminal)")
            if not typer.confirm(f"Delete service {name} in {region_id}?", default=False, err=True):
                raise EascomfyError("aborted: nothing deleted")
        deleted = do_delete(_client(region_id, out), name, out)
        out.emit({"service": name, "region": region_id, "deleted": deleted},
                 f"{name}: {'deleting' if deleted else 'not found, nothing to delete'}")


# -- sandbox and demo ------------------------------------------------------------------------------
def sandbox(
    state: Annotated[Optional[Path], typer.Option("--state", help="Directory for the sandbox's state.")] = None,
    port: Annotated[int, typer.Option("--port", help="EAS OpenAPI port on 127.0.0.1 (0: a free one).")] = 0,
    oss_port: Annotated[int, typer.Option("--oss-port", help="OSS port on 127.0.0.1 (0: a free one).")] = 0,
) -> None:
    """Run the sandbox (EAS OpenAPI + OSS emulators) until interrupted; first prints `export` lines to eval."""
    with session("sandbox", None) as out:
        import signal
        import threading

        from ..sandbox.stack import SandboxStack

        stop_event = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop_event.set())
        with SandboxStack(state, eas_port=port, oss_port=oss_port) as stack:
            sys.stdout.write("".join(f"export {k}={v}\n" for k, v in stack.env().items()))
            sys.stdout.flush()
            out.info(f"EAS sandbox on {stack.eas.url}, OSS on {stack.oss.url} (state in {stack.state_dir}); Ctrl-C to stop")
            try:
                while not stop_event.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
            out.info("sandbox stopped")


def demo(
    directory: Annotated[Optional[Path], typer.Option("--dir", help="Where to write the demo's eascomfy.yaml.")] = None,
    output: OutputOpt = None,
) -> None:
    """Run the whole loop against an in-process sandbox: init, storage init, models and nodes push,
    plan, deploy, update-image, check, submit, results (outputs pulled from the mount), a synchronous
    run on a Standard-edition service, signed-url, status. Costs nothing; takes a few seconds."""
    with session("demo", output) as out:
        import contextlib
        import json
        import tempfile
        from importlib import resources

        from .. import deploy as ops
        from .. import jobs
        from ..adapters.credentials import AccessKey, credential_client
        from ..adapters.eas import EasClient
        from ..adapters.oss import OssClient, OssLocation
        from ..core.spec import load_spec
        from ..core.workflow import parse_workflow
        from ..project import init_spec
        from ..sandbox.credentials import SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET
        from ..sandbox.eas import Timings
        from ..sandbox.stack import SandboxStack
        from ..specfile import rewrite_image_version
        from ..storage import CrcCache, MiB, Uploader, check_bucket, init_layout, node_files

        steps = 13
        fast = Timings(creating=0.3, updating=0.3, ready=0.2, stopping=0.1, starting=0.2, deleting=0.1)
        poll = ops.Poll(first=0.1, probe=0.1)
        with contextlib.ExitStack() as stack:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="eascomfy-demo-")))
            work = directory or scratch / "project"
            sandbox = stack.enter_context(SandboxStack(scratch / "sandbox", timings=fast, job_seconds=0.1))
            out.info(f"[0/{steps}] sandbox: EAS on {sandbox.eas.url}, OSS on {sandbox.oss.url} (nothing reaches the real cloud)")
            region = sandbox.region
            key = AccessKey(SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET)
            client = EasClient(region, endpoint=sandbox.eas.url, credential=credential_client(key), log=out.debug)
            path = init_spec(work, name="comfy_demo", region=region, edition="api",
                             oss="oss://eascomfy-demo/comfyui/", image_version="1.9", force=True)
            out.info(f"[1/{steps}] init: wrote {path} (API edition, image 1.9)")
            spec = load_spec(path)
            loc = OssLocation.parse(spec.data["storage"]["oss"])
            bucket = OssClient(loc.bucket, region, key=key, endpoint=sandbox.oss.url)
            check_bucket(bucket, region, create=True)
            created = init_layout(bucket, loc.prefix)
            out.info(f"[2/{steps}] storage init: bucket {loc.bucket} created, {len(created)} ComfyUI folders")
            # Stand-ins for the guide's models and custom node (the sandbox only checks they are there).
            models = work / "models"
            models.mkdir(parents=True, exist_ok=True)
            (models / "LandscapeBING_v10.safetensors").write_bytes(b"stand-in model\n" * 64)
            (models / "svd_xt.safetensors").write_bytes(bytes(range(256)) * (3 * 4096))  # 3 MiB: three 1 MiB parts
            vhs = work / "custom_nodes" / "ComfyUI-VideoHelperSuite"
            vhs.mkdir(parents=True, exist_ok=True)
            (vhs / "__init__.py").write_text("# stand-in for ComfyUI-VideoHelperSuite (VHS_VideoCombine)\n")
            uploader = Uploader(bucket, part_size=1 * MiB, workers=3, cache=CrcCache(scratch / "crc-cache.json"))
            pushed = uploader.push_many([(f, loc.key(f"models/checkpoints/{f.name}")) for f in sorted(models.iterdir())])
            listed = ", ".join(f"oss://{loc.bucket}/{r.key} ({r.parts} part{'s' if r.parts != 1 else ''})" for r in pushed)
            out.info(f"[3/{steps}] models push: {listed}, CRC64 verified")
            nodes = uploader.push_many([(f, loc.key(f"custom_nodes/{rel}")) for f, rel in node_files(vhs)])
            out.info(f"[4/{steps}] nodes push: {vhs.name} ({len(nodes)} file) to custom_nodes/")
            out.info(f"[5/{steps}] plan:")
            first_plan, _ = ops.plan_service(spec, client)
            for line in first_plan.lines():
                out.info(f"  {line}")
            out.info(f"[6/{steps}] deploy:")
            created_result = ops.deploy(spec, client, out, timeout=30, poll=poll)
            out.info(f"[7/{steps}] update-image 2.2:")
            ops.check_image_update(spec, "2.2")
            updated = ops.deploy(ops.with_image_version(spec, "2.2"), client, out, timeout=30, poll=poll)
            rewrite_image_version(path, "2.2")
            out.info(f"  wrote image.version 2.2 to {path}")

            text = resources.files("eascomfy").joinpath("data", "seed-workflow.api.json").read_text(encoding="utf-8")
            workflow_file = work / "seed-workflow.api.json"
            workflow_file.write_text(text, encoding="utf-8")
            flow = parse_workflow(json.loads(text), str(workflow_file))
            problems = jobs.check_workflow(flow, mount=jobs.inventory(bucket, loc.prefix))
            out.info(f"[8/{steps}] check {workflow_file.name}: {len(flow)} nodes, models and custom nodes on the mount: "
                     f"{len(jobs.errors_only(problems))} problems")
            for problem in problems:
                out.info(f"  {problem.line()}")
            live = client.require(spec.name)
            target = jobs.Target(live.internet_endpoint, live.access_token, spec.name, spec.edition, spec)
            journal = jobs.Journal(work / "jobs.jsonl")
            with target.client(out) as service:
                sent = jobs.submit(service, [(flow, [])], journal, out, prefix="txt2img")
            out.info(f"[9/{steps}] submit: task {sent.task_ids[0]} queued (POST /api_prompt), journal {journal.path}")
            outputs = work / "outputs"
            got = jobs.results(target, journal, out, follow=True, storage=jobs.Storage(bucket, loc.prefix), download=outputs)
            journal.close()
            pulled = [f["path"] for r in got.written for f in r["files"]]
            out.info(f"[10/{steps}] results: {len(got.written)} result from the sink, outputs pulled: "
                     + ", ".join(Path(p).name for p in pulled))

            std_path = init_spec(work / "standard", name="comfy_demo_std", region=region, edition="standard",
                                 oss=spec.data["storage"]["oss"], image_version="2.2", force=True)
            std_spec = load_spec(std_path)
            out.info(f"[11/{steps}] run on a Standard-edition service (same mount):")
            ops.deploy(std_spec, client, out, timeout=30, poll=poll)
            std_live = client.require(std_spec.name)
            with jobs.Target(std_live.internet_endpoint, std_live.access_token, std_spec.name).client(out) as service:
                ran = jobs.run(service, flow, out, out_dir=outputs / "run", timeout=60)
            out.info(f"  prompt {ran.prompt_id}: {ran.status} in {ran.seconds:.1f} s, "
                     + ", ".join(Path(f["path"]).name for f in ran.files))
            out.info(f"[12/{steps}] signed-url (printed on stdout at the end)")
            url = client.signed_url(spec.name, 3600)
            out.info(f"[13/{steps}] status:")
            live, events = ops.status(client, spec.name)
            for line in _status_text(live, region, events).splitlines():
                out.info(f"  {line}")
            data: dict[str, Any] = {
                "file": str(path),
                "service": spec.name,
                "deploy_seconds": round(created_result.seconds, 3),
                "update_seconds": round(updated.seconds, 3),
                "submitted": sent.task_ids,
                "results": [{"task_id": r["task_id"], "ok": r["ok"], "files": [f["path"] for f in r["files"]]}
                            for r in got.written],
                "run": ran.to_dict(),
                "status": live.to_dict(),
            }
            out.emit_secret(data, "signed_url", url)


def register(app: typer.Typer) -> None:
    """Attach the cloud commands to the app."""
    for func, name in (
        (plan, "plan"),
        (deploy, "deploy"),
        (update_image, "update-image"),
        (signed_url, "signed-url"),
        (status, "status"),
        (versions, "versions"),
        (rollback, "rollback"),
        (start, "start"),
        (stop, "stop"),
        (restart, "restart"),
        (delete, "delete"),
        (sandbox, "sandbox"),
        (demo, "demo"),
    ):
        app.command(name)(func)
