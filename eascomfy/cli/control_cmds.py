"""The control-plane commands: plan, deploy, update-image, signed-url, status, versions, rollback,
start, stop, restart, delete.

Cheap to import: typer and the output module only; the library, the adapter and the SDKs are
imported inside the command bodies.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ..errors import EXIT_PLAN_CHANGES, EascomfyError, UsageError
from .views import deploy_text, status_text
from .options import DEFAULT_SPEC, EditionOpt, EnvOpt, FileOpt, OutputOpt, RegionOpt, ServiceOpt, SpecRef, session

if TYPE_CHECKING:
    from .output import Out
    from ..adapters.eas import EasClient, Event, LiveService
    from ..core.spec import Spec
    from ..control.deploy import DeployResult

DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")]
WaitOpt = Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the service is ready.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds to wait for the service to be ready.", metavar="S")]
NoRollbackOpt = Annotated[bool, typer.Option("--no-rollback", help="Leave a failed update in place.")]
DEFAULT_TIMEOUT = 1800.0


def _target(file: Path, env: str | None, service: str | None, region: str | None, out: Out) -> tuple[str, str]:
    """(service name, region): from --service/--region, or from the spec."""
    if service:
        if not region:
            raise UsageError("--service needs --region", "e.g. --service comfy_dev --region cn-hangzhou")
        return service, region
    spec = SpecRef(out, file, env, None).spec
    return spec.name, region or spec.region


def _client(region: str, out: Out) -> "EasClient":
    from ..control.deploy import connect

    return connect(region, out)


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
        from ..control.deploy import plan_service

        spec = SpecRef(out, file, env, edition).spec
        result, _ = plan_service(spec, _client(spec.region, out))
        changed = result.has_changes
        if plan_file is not None:
            from ..core.planfile import dumps
            from ..local.files import write_atomic

            write_atomic(plan_file, dumps(result))
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
        from ..control import deploy as ops
        from ..core.planfile import read_plan

        saved = read_plan(plan_file) if plan_file is not None else None
        spec = SpecRef(out, file, env, edition).spec
        client = _client(spec.region, out)
        result = ops.deploy(
            spec, client, out, dry_run=dry_run, wait=wait, timeout=timeout, rollback=not no_rollback, saved=saved
        )
        out.emit(result.to_dict(), deploy_text(result))


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
        from ..control import deploy as ops
        from ..core.image import check_image_update, with_image_version

        spec = SpecRef(out, file, env, edition).spec
        check_image_update(spec, version)
        client = _client(spec.region, out)
        result = ops.deploy(
            with_image_version(spec, version),
            client,
            out,
            dry_run=dry_run,
            wait=wait,
            timeout=timeout,
            rollback=not no_rollback,
        )
        written = None
        if not (dry_run or no_write):
            from ..local.specfile import write_image_version

            written = write_image_version(spec, version)
            if written:
                out.info(f"wrote image.version {version} to {written}")
        data = {**result.to_dict(), "version": version, "file_written": bool(written),
                "file": str(written) if written else None}
        out.emit(data, deploy_text(result))


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
        from ..core.limits import check_expire

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
        from ..control.lifecycle import status as get_status

        name, region_id = _target(file, env, service, region, out)
        live, events = get_status(_client(region_id, out), name)
        data = {**live.to_dict(), "region": region_id, "events": [e.__dict__ for e in events]}
        out.emit(data, status_text(live, region_id, events))


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
        from ..control.deploy import rollback as do_rollback

        name, region_id = _target(file, env, service, region, out)
        target = do_rollback(_client(region_id, out), name, out, version, wait=wait, timeout=timeout)
        out.emit({"service": name, "version": target}, f"{name}: now on version {target}")


def _lifecycle(action: str, file: Path, env: str | None, service: str | None, region: str | None,
               wait: bool, timeout: float, output: str | None) -> None:
    with session(action, output) as out:
        from ..control.lifecycle import lifecycle

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
        from ..control.lifecycle import delete as do_delete

        name, region_id = _target(file, env, service, region, out)
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError(f"refusing to delete {name} without confirmation", "pass --yes (stdin is not a terminal)")
            if not typer.confirm(f"Delete service {name} in {region_id}?", default=False, err=True):
                raise EascomfyError("aborted: nothing deleted")
        deleted = do_delete(_client(region_id, out), name, out)
        out.emit({"service": name, "region": region_id, "deleted": deleted},
                 f"{name}: {'deleting' if deleted else 'not found, nothing to delete'}")


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
            ):
        app.command(name)(func)
