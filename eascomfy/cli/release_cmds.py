"""``eascomfy release``: canary releases checked by workflows (``control.release``, the checks in
``workflows.canary``). Cheap to import: typer and the shared options; the library is imported
inside the command body.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .options import DEFAULT_SPEC, EnvOpt, FileOpt, OutputOpt, SpecRef, session

DEFAULT_TIMEOUT = 1800.0  # control.wait.DEFAULT_TIMEOUT, spelled here so --help imports nothing
GLOB = "*?["


def expand_checks(values: list[str]) -> list[Path]:
    """The workflow files ``--check`` names: each value a file, or a quoted glob eascomfy expands
    (``--check 'flows/*.json'``); a glob that matches nothing is refused."""
    from ..errors import UsageError

    found: list[Path] = []
    for value in values:
        if any(c in value for c in GLOB):
            import glob

            matches = sorted(glob.glob(value))
            if not matches:
                raise UsageError(f"{value}: matches no file", "give workflow files (API format)", param="check")
            found += [Path(m) for m in matches]
        else:
            found.append(Path(value))
    return found


def release_text(data: dict[str, Any]) -> str:
    lines = [f"group {data['group'] or '(none)'}" + (f" ({data['traffic_mode']})" if data.get("traffic_mode") else "")
             + (f": {data['endpoint']}" if data.get("endpoint") else "")]
    for s in data["services"]:
        share = "-" if s["share"] is None else f"{s['share']:g}%"
        lines.append(f"  {s['role']:<6} {s['name']:<28} {s['status']:<10} {s['traffic_state'] or '?':<10} "
                     f"weight {s['weight'] if s['weight'] is not None else '?':<5} {share:>6}")
    for flow in ((data.get("checks") or {}).get("workflows") or []):
        lines.append(f"  checked {flow['workflow']}: {flow['live_seconds']} s live, {flow['canary_seconds']} s canary "
                     f"({flow['slowdown']}x), {flow['outputs']} outputs")
    if data.get("mirror"):
        lines.append(f"  mirroring {data['mirror']}% of the live requests to the canary")
    lines += [f"  note: {n}" for n in data.get("notes") or []]
    return "\n".join(lines)


def release_cmd(
    canary: Annotated[Optional[int], typer.Option("--canary", help="Deploy the spec as a canary and, once its checks pass, "
                                                  "send it PERCENT (1-100) of the group's traffic.", metavar="PERCENT")] = None,
    check: Annotated[Optional[list[str]], typer.Option("--check", help="A reference workflow (API format) to run on the "
                     "canary and the live service first; repeatable, or a quoted glob: 'flows/*.json'.",
                     metavar="WORKFLOW.json")] = None,
    max_slowdown: Annotated[float, typer.Option("--max-slowdown", help="How much longer a workflow may take on the canary "
                            "than live (1.2: 20% longer).", metavar="RATIO")] = 1.2,
    mirror: Annotated[Optional[int], typer.Option("--mirror", help="Also copy PERCENT of the live service's requests to the "
                      "canary (shadow traffic; the answers are dropped).", metavar="PERCENT")] = None,
    promote: Annotated[bool, typer.Option("--promote", help="The canary's config becomes the live service's; the canary goes.")] = False,
    abort: Annotated[bool, typer.Option("--abort", help="Remove the canary; all traffic back to the live service.")] = False,
    show: Annotated[bool, typer.Option("--status", help="Show the group, the live service, its canary and their weights.")] = False,
    out_dir: Annotated[Path, typer.Option("--out", help="Where the checks' outputs go (<workflow>/live, <workflow>/canary).",
                                          metavar="DIR")] = Path("canary-checks"),
    check_timeout: Annotated[str, typer.Option("--check-timeout", help="How long one workflow may take on one service "
                                               "(600, 90s, 10m).", metavar="DURATION")] = "600",
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the canary (or, on promote, the live "
                                           "service) to be ready.", metavar="S")] = DEFAULT_TIMEOUT,
    force_unlock: Annotated[bool, typer.Option("--force-unlock", help="Break the live service's deploy lock held by "
                                               "another (crashed) run (--canary, --promote, --abort take it).")] = False,
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    output: OutputOpt = None,
) -> None:
    """Release the spec to a slice of traffic, proven by workflows first.

    \b
    --canary N deploys the spec as <name>_canary in the live service's group (overrides:
    metadata.group), runs each --check workflow on both, and only when all succeed, produce
    outputs and stay within --max-slowdown sets the weights (live 100-N, canary N). A failed
    check deletes the canary; the live service is untouched.

    \b
    Examples:
      eascomfy release --canary 10 --check 'flows/*.json' --max-slowdown 1.2
      eascomfy release --status
      eascomfy release --promote      # or: eascomfy release --abort
    """
    with session("release", output) as out:
        from ..errors import UsageError

        modes = [m for m, on in (("--canary", canary is not None), ("--promote", promote), ("--abort", abort),
                                 ("--status", show)) if on]
        if len(modes) != 1:
            raise UsageError("choose one of --canary PERCENT, --promote, --abort, --status"
                             + (f" (got {', '.join(modes)})" if modes else ""))
        if (check or mirror is not None) and canary is None:
            raise UsageError("--check and --mirror go with --canary")
        ref = SpecRef(out, file, env)
        from ..control import release as rel
        from ..core.limits import check_timeout as valid_timeout

        valid_timeout(timeout)
        if canary is not None:
            data = _canary(ref, out, canary, expand_checks(check or []), max_slowdown, mirror, out_dir, check_timeout,
                           timeout, force_unlock)
            out.emit(data, release_text(data))
            return
        from ..control.deploy import connect

        spec = ref.spec
        client = connect(spec.region, out)
        if promote:
            state = rel.promote(spec, client, out, timeout=timeout, force_unlock=force_unlock)
        elif abort:
            state = rel.abort(client, spec.name, out, timeout=timeout, force_unlock=force_unlock)
        else:
            state = rel.status(client, spec.name)
        out.emit(state.to_dict(), release_text(state.to_dict()))


def _canary(ref: SpecRef, out: Any, percent: int, checks: list[Path], max_slowdown: float, mirror: int | None,
            out_dir: Path, check_timeout: str, timeout: float, force_unlock: bool = False) -> dict[str, Any]:
    """Everything refused offline first (the request, the edition, each workflow file), then the release."""
    from ..control import release as rel
    from ..control.deploy import connect
    from ..core.duration import parse_duration
    from ..local.files import folder_problem
    from ..errors import UsageError
    from ..workflows.canary import WorkflowChecker, check_edition
    from ..workflows.matrix import load_with_overrides

    spec = ref.spec
    rel.check_request(spec, percent, mirror=mirror, max_slowdown=max_slowdown)
    checker = None
    if checks:
        check_edition(spec.edition)
        seconds = parse_duration(check_timeout, param="check_timeout")
        if (problem := folder_problem(out_dir)) is not None:
            raise UsageError(problem, "give a folder for the checks' outputs", param="out_dir")
        flows = [(str(path), load_with_overrides(path, [])) for path in checks]
        checker = WorkflowChecker(flows, out, out_dir=out_dir, timeout=seconds, max_slowdown=max_slowdown,
                                  edition=spec.edition)
    warm_up = None
    if spec.data.get("warmup"):  # the canary's config names the request file: it must be there first
        from ..storage.warmup import put_request_file

        def warm_up() -> None:
            put_request_file(spec, out)
    result = rel.start(spec, connect(spec.region, out), out, percent=percent, checker=checker, mirror=mirror,
                       max_slowdown=max_slowdown, timeout=timeout, prepare=warm_up, force_unlock=force_unlock)
    return result.to_dict()


def register(app: typer.Typer) -> None:
    """Attach ``release`` to the app."""
    app.command("release")(release_cmd)
