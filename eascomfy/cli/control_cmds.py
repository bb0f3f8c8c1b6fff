"""The control-plane commands: plan, deploy, update-image, signed-url, status, versions, rollback,
start, stop, restart, delete. Each parses its options, builds one SpecRef, calls the library
(``control``, ``core``) and prints through ``out`` and ``views``.

Cheap to import: typer, the options and the views only; the library, the adapter and the SDKs are
imported inside the command bodies.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from .options import (
    DEFAULT_PARALLEL,
    DEFAULT_SPEC,
    AllOpt,
    EditionOpt,
    EnvOpt,
    FailFastOpt,
    FileOpt,
    LabelOpt,
    OutputOpt,
    ParallelOpt,
    PricesOpt,
    RegionOpt,
    SelectRegionOpt,
    SelectServiceOpt,
    ServiceOpt,
    SpecRef,
    session,
)
from .views import deploy_text, lifecycle_text, plan_text, rollback_text, status_text, storage_plan_text, versions_text

if TYPE_CHECKING:
    from ..adapters.eas import EasClient
    from ..ports import Progress
    from ..control.deploy import DeployResult
    from ..core.plan import Plan
    from ..core.spec import Spec
    from ..storage.lock import StoragePlan
    from ..storage.mount import Mount
    from .output import Out

DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")]
WaitOpt = Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the service is ready.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds to wait for the service to be ready.", metavar="S")]
NoRollbackOpt = Annotated[bool, typer.Option("--no-rollback", help="Leave a failed update in place.")]
AllowOtherOpt = Annotated[
    bool,
    typer.Option("--allow-other-changes", help="Also apply changes beyond the image (instances, resources...); refused otherwise."),
]
PlanOutputOpt = Annotated[
    Optional[str],
    typer.Option("--output", "-o", help="text (default), json (docs/json-output.md) or markdown (a PR comment).", metavar="FORMAT"),
]
ForceUnlockOpt = Annotated[
    bool, typer.Option("--force-unlock", help="Break the service's lock held by another (crashed) run (eascomfy/lock label).")
]
DEFAULT_TIMEOUT = 1800.0  # control.wait.DEFAULT_TIMEOUT, spelled here so --help imports nothing


def _target(ref: SpecRef, service: str | None, region: str | None) -> tuple[str, str]:
    """(service name, region): from --service/--region, or from the spec (--region picks one of a
    multi-region spec's regions)."""
    ref.region = ref.region or region
    if service:
        if not region:
            from ..errors import UsageError

            raise UsageError("--service needs --region", "e.g. --service comfy_dev --region cn-hangzhou")
        return service, region
    return ref.spec.name, region or ref.spec.region


# -- fleets (docs/gitops.md "Fleets") --------------------------------------------------------------
def _run_fleet(out, specs, work, parallel: int, fail_fast: bool, detailed: bool = False, after=None) -> None:  # type: ignore[no-untyped-def]
    """Run ``work`` on the selected services, print the one summary, exit with the worst code."""
    from ..control.fleet import run
    from .fleet_views import fleet_text

    fleet = run(specs, work, out, parallel=parallel, fail_fast=fail_fast)
    notes = after(fleet) if after is not None else []
    out.emit(fleet.to_list(), fleet_text(fleet, notes))
    code = fleet.exit_code(detailed)
    if code:
        raise typer.Exit(code)


def _mounts(specs: "list[Spec]") -> dict[tuple[str, str], bool]:
    """Whether each selected service's deploy touches its bucket, read once and before any call
    (a damaged lockfile is refused here, the fleet untouched)."""
    return {(s.name, s.region): _wants_mount(s) for s in specs}


def _mount_part(out: "Progress", spec: "Spec", plan: "Plan", wants_mount: bool
                ) -> "tuple[tuple[Mount, StoragePlan] | None, bool]":
    """The bucket's part of a plan (None when deploy does not touch it) and whether the service or
    its bucket would change."""
    found = _storage_plan(out, spec) if wants_mount else None
    return found, plan.has_changes or bool(found and found[1].changes)


def _plan_work(mounts: dict[tuple[str, str], bool]) -> Any:
    """One service of a fleet's plan: the service and, as for one service, its mount."""
    from ..control.deploy import plan_service
    from ..control.fleet import CHANGES, OK
    from ..core.planreport import plan_json

    def work(spec: "Spec", client: "EasClient", progress: "Progress") -> tuple[str, str, Any]:
        plan, _ = plan_service(spec, client)
        found, changed = _mount_part(progress, spec, plan, mounts[spec.name, spec.region])
        return plan.action, CHANGES if changed else OK, plan_json(plan, found[1].to_dict() if found else None)

    return work


def _not_with_fleet(**given: object) -> None:
    """Options that are about one service's file or answer, refused with a fleet selector."""
    from ..errors import UsageError

    for param, value in given.items():
        if value:
            raise UsageError("works on one service, not with --all or a fleet selector", param=param)


# -- plan / deploy / update-image ------------------------------------------------------------------
def plan_cmd(
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    edition: EditionOpt = None,
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="Exit 2 when there are changes, 0 when there are none.")
    ] = False,
    plan_file: Annotated[
        Optional[Path], typer.Option("--out", help="Also save the plan to FILE, for `deploy --plan FILE`.", metavar="FILE")
    ] = None,
    prices: PricesOpt = None,
    output: PlanOutputOpt = None,
    all_: AllOpt = False,
    service: SelectServiceOpt = None,
    region: SelectRegionOpt = None,
    label: LabelOpt = None,
    parallel: ParallelOpt = DEFAULT_PARALLEL,
    fail_fast: FailFastOpt = False,
) -> None:
    """Show what deploy would change on the live service (one read call) and on its mount (the
    spec's models and wheels and the lock's custom nodes against one listing of the bucket), and
    what it costs.

    When the change touches instance types or the instance count, the plan also shows each type's
    stock (DescribeMachineSpec), spot discount, hourly price (from --prices) and the monthly
    difference; a type out of stock is a warning that names the spec's fallback types.

    A fleet: `eascomfy plan --all --detailed-exitcode` plans every service of the project (exit 2
    when any would change); `--service/--region/--label k=v` pick some.

    \b
    Examples:
      eascomfy plan --detailed-exitcode --out plan.json
      eascomfy plan --prices prices.yaml -o json
      eascomfy plan --all --region cn-shanghai
    """
    changed = False
    markdown = output == "markdown"  # a pull request comment on stdout (docs/gitops.md)
    with session("plan", None if markdown else output) as out:
        from ..control.cost import Capacity, cost_of_plan, load_prices
        from ..control.deploy import connect, plan_service, save_plan

        if all_ or service or region or label:
            _not_with_fleet(out=plan_file, output=markdown)
            specs = SpecRef(out, file, env, edition).fleet(service, region, label)
            _run_fleet(out, specs, _plan_work(_mounts(specs)), parallel, fail_fast, detailed=detailed_exitcode)
            return
        from ..core.planreport import plan_json, plan_markdown
        from .cost_views import plan_cost_markdown, plan_cost_text

        spec = SpecRef(out, file, env, edition).spec
        if plan_file is not None:  # a folder, the spec, a name that cannot be written: before the call
            from ..local.files import check_output_file

            check_output_file(plan_file, force=True, inputs=spec.files, param="out")
        wants_mount = _wants_mount(spec)  # a damaged lockfile is refused before any call
        price_table = load_prices(prices)  # a bad prices file is refused before any call
        client = connect(spec.region, out)
        plan, live = plan_service(spec, client)
        cost = cost_of_plan(plan, live.config if live else None, client, price_table, Capacity())
        for warning in cost.warnings if cost else []:
            out.warn(warning)
        found, changed = _mount_part(out, spec, plan, wants_mount)
        storage = found[1] if found else None
        if plan_file is not None:
            save_plan(plan, plan_file, storage.saved() if storage else None)
            out.info(f"plan saved to {plan_file}; apply exactly it with `eascomfy deploy --plan {plan_file}`")
        if markdown:
            text = plan_markdown(plan) + plan_cost_markdown(cost)
        else:
            text = "\n".join(t for t in (plan_text(plan), plan_cost_text(cost)) if t)
        if found is not None:
            text += storage_plan_text(found[0], found[1], markdown)
        out.emit(plan_json(plan, storage.to_dict() if storage else None, cost), text)
    if detailed_exitcode and changed:
        from ..errors import EXIT_PLAN_CHANGES

        raise typer.Exit(EXIT_PLAN_CHANGES)


def _wants_mount(spec: "Spec") -> bool:
    """Whether deploy touches the bucket (reads the lockfile: a damaged one is refused here)."""
    from ..storage.lock import involved

    return involved(spec)


def _storage_plan(out: "Out", spec: "Spec") -> "tuple[Mount, StoragePlan]":
    """(mount, the bucket's part of the plan)."""
    from ..storage.lock import plan_storage
    from ..storage.mount import Mount

    mount = Mount.open(spec, out)
    return mount, plan_storage(mount, spec)


def deploy_cmd(
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
    force_unlock: ForceUnlockOpt = False,
    output: OutputOpt = None,
    all_: AllOpt = False,
    service: SelectServiceOpt = None,
    region: SelectRegionOpt = None,
    label: LabelOpt = None,
    parallel: ParallelOpt = DEFAULT_PARALLEL,
    fail_fast: FailFastOpt = False,
) -> None:
    """Sync the mount (models, wheels) first, then create or update the service, wait until it
    answers, roll back a failed update; record what runs in eascomfy.lock beside the spec.

    A fleet: `eascomfy deploy --all --parallel 8` deploys every service of the project (each
    failed update rolled back on its own); `--service/--region/--label k=v` pick some.

    Example: eascomfy deploy --plan plan.json"""
    with session("deploy", output) as out:
        from ..control.deploy import connect
        from ..core.planfile import read_plan

        if all_ or service or region or label:
            _not_with_fleet(plan=plan_file)
            from ..control.fleet import OK

            specs = SpecRef(out, file, env, edition).fleet(service, region, label)
            mounts = _mounts(specs)

            def work(spec: "Spec", client: "EasClient", progress: "Progress") -> tuple[str, str, Any]:
                result, data = _deploy_one(progress, spec, client, None, mounts[spec.name, spec.region],
                                           dry_run=dry_run, wait=wait, timeout=timeout, rollback=not no_rollback,
                                           force_unlock=force_unlock)
                return result.plan.action, OK, data

            _run_fleet(out, specs, work, parallel, fail_fast)
            return

        saved = read_plan(plan_file) if plan_file is not None else None
        spec = SpecRef(out, file, env, edition).spec
        wants_mount = _wants_mount(spec)  # a damaged lockfile is refused before any call
        result, data = _deploy_one(out, spec, connect(spec.region, out), saved, wants_mount, dry_run=dry_run,
                                   wait=wait, timeout=timeout, rollback=not no_rollback, force_unlock=force_unlock)
        out.emit(data, deploy_text(result))


def _deploy_one(out: "Progress", spec: "Spec", client: "EasClient", saved: dict[str, Any] | None, wants_mount: bool,
                *, dry_run: bool, wait: bool, timeout: float, rollback: bool,
                force_unlock: bool) -> "tuple[DeployResult, dict[str, Any]]":
    """One service's deploy, alone or in a fleet: its mount synced first (models, wheels, locked
    nodes; a failed sync leaves the service untouched) and the warm-up file written, then the
    service, then what runs recorded in the lockfile. ``wants_mount``: ``_wants_mount(spec)``,
    read by the caller before any call. (result, its JSON form)."""
    from ..control.deploy import deploy
    from ..core.planfile import check_saved_storage
    from ..storage.warmup import writer

    staged: dict[str, Any] = {}
    warm_up = writer(spec, out)

    def prepare(plan: "Plan") -> None:
        found = _storage_plan(out, spec) if wants_mount else None
        if saved is not None:
            check_saved_storage(saved, found[1].saved() if found else None)
        if found is not None:
            staged.update(mount=found[0], section=_sync(out, spec, *found))
        if warm_up is not None:
            warm_up(plan)

    result = deploy(spec, client, out, dry_run=dry_run, wait=wait, timeout=timeout, rollback=rollback,
                    saved=saved, force_unlock=force_unlock, prepare=prepare)
    data = result.to_dict()
    if not dry_run:
        data["lock"] = _record(out, spec, client, result, staged)
    return result, data


def _sync(out: "Out", spec: "Spec", mount: "Mount", storage: "StoragePlan") -> dict[str, Any]:
    """Sync the mount as planned; the lock section it then makes (image included)."""
    from ..storage.lock import spec_section, sync_and_build
    from .storage_cmds import _push, pull_items
    from .storage_views import sync_lines

    for line in sync_lines(mount, storage.items):
        out.info(line)
    return sync_and_build(mount, spec, storage, spec_section(spec), lambda pairs: _push(out, mount, pairs, "sync"),
                          lambda items: pull_items(out, mount, items), image=True)


def _record(out: "Out", spec: "Spec", client: "EasClient", result: "DeployResult", staged: dict[str, Any]) -> dict[str, Any]:
    """After a deploy: the lockfile written; with a mount, the section kept for this version."""
    from ..core.lockfile import digest
    from ..storage.lock import deployed_section, record_deployed, write_lock

    section = deployed_section(spec, staged.get("section"))
    path = write_lock(spec, section)
    out.info(f"recorded in {path}")
    lock = {"file": str(path), "digest": digest(section), "version": None}
    if "mount" in staged:
        lock["version"] = record_deployed(client, staged["mount"], spec.name, section, result.running_version)
    return lock


def update_image_cmd(
    version: Annotated[str, typer.Argument(help="Official image version, e.g. 2.2 (the edition's suffix is kept).", metavar="VERSION")],
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    edition: EditionOpt = None,
    no_write: Annotated[bool, typer.Option("--no-write", help="Do not rewrite image.version in the spec file.")] = False,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    no_rollback: NoRollbackOpt = False,
    allow_other_changes: AllowOtherOpt = False,
    force: Annotated[
        bool, typer.Option("--force", help="Send a version that eascomfy's table of ComfyUI images does not list (a newer one).")
    ] = False,
    force_unlock: ForceUnlockOpt = False,
    output: OutputOpt = None,
    all_: AllOpt = False,
    service: SelectServiceOpt = None,
    region: SelectRegionOpt = None,
    label: LabelOpt = None,
    parallel: ParallelOpt = DEFAULT_PARALLEL,
    fail_fast: FailFastOpt = False,
    max_unavailable: Annotated[
        Optional[int],
        typer.Option("--max-unavailable", help="Fleet: a rolling update, N services at a time, stopping at the first "
                     "failure (the rest left untouched, reported skipped).", metavar="N"),
    ] = None,
) -> None:
    """Switch the service to another official image version, through the same path as deploy.

    Without --env, the environment the service was deployed with (its labels) is used.
    A rolling fleet update: `eascomfy update-image 2.2 --all --max-unavailable 1`."""
    with session("update-image", output) as out:
        from ..control.deploy import check_update_image, connect, update_image

        if all_ or service or region or label or max_unavailable is not None:
            from ..control.fleet import update_image_work, write_versions

            specs = SpecRef(out, file, env, edition).fleet(service, region, label)
            for one in specs:  # every refusal before anything connects
                check_update_image(one, version, force)
            work = update_image_work(version, edition, allow_other_changes=allow_other_changes, force=force,
                                     dry_run=dry_run, wait=wait, timeout=timeout, rollback=not no_rollback,
                                     force_unlock=force_unlock)
            after = None if no_write or dry_run else (lambda fleet: write_versions(specs, fleet, version))
            if max_unavailable is not None:
                if max_unavailable < 1:
                    from ..errors import UsageError

                    raise UsageError(f"expected at least 1, got {max_unavailable}", param="max_unavailable")
                parallel, fail_fast = max_unavailable, True
            _run_fleet(out, specs, work, parallel, fail_fast, after=after)
            return

        ref = SpecRef(out, file, env, edition)
        spec = ref.spec
        check_update_image(spec, version, force)  # refused here, before anything connects
        change = update_image(spec, version, connect(spec.region, out), out, load=ref.load,
                              allow_other_changes=allow_other_changes, force=force, write=not no_write,
                              dry_run=dry_run, wait=wait, timeout=timeout, rollback=not no_rollback,
                              force_unlock=force_unlock)
        out.emit(change.to_dict(), deploy_text(change.result))


# -- signed-url / status / versions ----------------------------------------------------------------
def signed_url_cmd(
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
        from ..control.deploy import connect
        from ..core.limits import check_expire

        check_expire(expire)
        name, region_id = _target(SpecRef(out, file, env), service, region)
        url = connect(region_id, out).signed_url(name, expire, internal=internal)
        out.emit_secret({"service": name, "region": region_id, "expire": expire, "internal": internal}, "signed_url", url)


def status_cmd(
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    service: ServiceOpt = None,
    region: RegionOpt = None,
    output: OutputOpt = None,
    all_: AllOpt = False,
    label: LabelOpt = None,
    parallel: ParallelOpt = DEFAULT_PARALLEL,
) -> None:
    """State, instances, endpoints, image and the last events of the service.

    A fleet: `eascomfy status --all` (one row per service; --service/--region/--label narrow it)."""
    with session("status", output) as out:
        from ..control.deploy import connect

        if all_ or label:
            from ..control.fleet import status_work

            specs = SpecRef(out, file, env).fleet(service, region, label)
            _run_fleet(out, specs, status_work(), parallel, False)
            return
        from ..control.diagnose import restart_diagnosis
        from ..control.lifecycle import status

        name, region_id = _target(SpecRef(out, file, env), service, region)
        client = connect(region_id, out)
        live, events = status(client, name)
        instances, report = restart_diagnosis(client, live, progress=out)
        data = {**live.to_dict(), "region": region_id, "events": [e.__dict__ for e in events],
                "instances": [i.to_dict() for i in instances], "diagnosis": report.to_dict() if report else None}
        out.emit(data, status_text(live, region_id, events, instances, report))


def versions_cmd(
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    service: ServiceOpt = None,
    region: RegionOpt = None,
    output: OutputOpt = None,
) -> None:
    """The service's versions, newest first (the current one is marked *)."""
    with session("versions", output) as out:
        from ..control.deploy import connect
        from ..control.lifecycle import versions

        name, region_id = _target(SpecRef(out, file, env), service, region)
        found = versions(connect(region_id, out), name)
        out.emit(found.to_dict(), versions_text(found))


# -- changes to a live service ---------------------------------------------------------------------
def rollback_cmd(
    version: Annotated[Optional[int], typer.Argument(help="Version to move to (default: the previous one).")] = None,
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    service: ServiceOpt = None,
    region: RegionOpt = None,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    allow_other_changes: AllowOtherOpt = False,
    force_unlock: ForceUnlockOpt = False,
    output: OutputOpt = None,
) -> None:
    """Move the service to another version: back with a switch, forward by applying its config again
    (refused if that changes more than the image)."""
    with session("rollback", output) as out:
        from ..control.deploy import connect
        from ..control.rollback import rollback

        ref = SpecRef(out, file, env)
        name, region_id = _target(ref, service, region)
        locked = None if service else _locked(ref.spec)  # a damaged lockfile is refused before any call
        target = rollback(connect(region_id, out), name, out, version, spec=None if service else ref.spec,
                          allow_other_changes=allow_other_changes, wait=wait, timeout=timeout,
                          force_unlock=force_unlock)
        lock = None
        if locked:
            from ..storage.lock import version_differences
            from ..storage.mount import Mount

            lock = version_differences(Mount.open(ref.spec, out, check=False), ref.spec, target, locked, out)
        out.emit({"service": name, "version": target, "lock": lock}, rollback_text(name, target, lock))


def _locked(spec: "Spec") -> dict[str, Any]:
    """The spec's lock section when it records files on a mount (else empty: nothing to compare)."""
    from ..core.lockfile import LISTS
    from ..storage.lock import spec_section

    section = spec_section(spec) if (spec.data.get("storage") or {}).get("oss") else {}
    return section if any(section.get(k) for k in LISTS) else {}


def _lifecycle(action: str, file: Path, env: str | None, service: str | None, region: str | None,
               wait: bool, timeout: float, force_unlock: bool, output: str | None) -> None:
    with session(action, output) as out:
        from ..control.deploy import connect
        from ..control.lifecycle import lifecycle

        name, region_id = _target(SpecRef(out, file, env), service, region)
        live = lifecycle(connect(region_id, out), name, action, out, wait=wait, timeout=timeout,  # type: ignore[arg-type]
                         force_unlock=force_unlock)
        state = live.status if live else "requested"
        out.emit({"service": name, "action": action, "status": state}, lifecycle_text(name, action, live))


def start_cmd(file: FileOpt = DEFAULT_SPEC, env: EnvOpt = None, service: ServiceOpt = None, region: RegionOpt = None,
              wait: WaitOpt = True, timeout: TimeoutOpt = DEFAULT_TIMEOUT, force_unlock: ForceUnlockOpt = False,
              output: OutputOpt = None) -> None:
    """Start a stopped service and wait until it answers."""
    _lifecycle("start", file, env, service, region, wait, timeout, force_unlock, output)


def stop_cmd(file: FileOpt = DEFAULT_SPEC, env: EnvOpt = None, service: ServiceOpt = None, region: RegionOpt = None,
             wait: WaitOpt = True, timeout: TimeoutOpt = DEFAULT_TIMEOUT, force_unlock: ForceUnlockOpt = False,
             output: OutputOpt = None) -> None:
    """Stop the service (instances released; config and versions kept)."""
    _lifecycle("stop", file, env, service, region, wait, timeout, force_unlock, output)


def restart_cmd(file: FileOpt = DEFAULT_SPEC, env: EnvOpt = None, service: ServiceOpt = None, region: RegionOpt = None,
                wait: WaitOpt = True, timeout: TimeoutOpt = DEFAULT_TIMEOUT, force_unlock: ForceUnlockOpt = False,
                output: OutputOpt = None) -> None:
    """Restart all instances and wait until the service answers again."""
    _lifecycle("restart", file, env, service, region, wait, timeout, force_unlock, output)


def delete_cmd(
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    service: ServiceOpt = None,
    region: RegionOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    force_unlock: ForceUnlockOpt = False,
    output: OutputOpt = None,
    all_: AllOpt = False,
    label: LabelOpt = None,
    parallel: ParallelOpt = DEFAULT_PARALLEL,
    fail_fast: FailFastOpt = False,
) -> None:
    """Delete the service (asks first unless --yes).

    A fleet: `eascomfy delete --all --label stage=dev --yes` (always needs --yes; a service's
    safety lock still refuses)."""
    with session("delete", output) as out:
        from ..control.deploy import connect
        from ..control.lifecycle import delete
        from ..errors import EascomfyError, UsageError

        if all_ or label:
            from ..control.fleet import delete_work

            specs = SpecRef(out, file, env).fleet(service, region, label)
            if not yes:
                names = ", ".join(f"{s.name} ({s.region})" for s in specs)
                raise UsageError(f"refusing to delete {len(specs)} service(s) without --yes: {names}",
                                 "pass --yes to delete them all")
            _run_fleet(out, specs, delete_work(), parallel, fail_fast)
            return

        name, region_id = _target(SpecRef(out, file, env), service, region)
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError(f"refusing to delete {name} without confirmation", "pass --yes (stdin is not a terminal)")
            if not typer.confirm(f"Delete service {name} in {region_id}?", default=False, err=True):
                raise EascomfyError("aborted: nothing deleted")
        deleted = delete(connect(region_id, out), name, out, force_unlock=force_unlock)
        out.emit({"service": name, "region": region_id, "deleted": deleted},
                 f"{name}: {'deleting' if deleted else 'not found, nothing to delete'}")


def register(app: typer.Typer) -> None:
    """Attach the control-plane commands to the app."""
    app.command("plan")(plan_cmd)
    app.command("deploy")(deploy_cmd)
    app.command("update-image")(update_image_cmd)
    app.command("signed-url")(signed_url_cmd)
    app.command("status")(status_cmd)
    app.command("versions")(versions_cmd)
    app.command("rollback")(rollback_cmd)
    app.command("start")(start_cmd)
    app.command("stop")(stop_cmd)
    app.command("restart")(restart_cmd)
    app.command("delete")(delete_cmd)
