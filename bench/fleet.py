"""A fleet next to one service: `plan` and an unchanged `deploy` of 100 services over 5 regions
against the EAS emulator with a 50 ms round trip on every request, measured side by side in one
run with the one-service commands, through the CLI (a subprocess each, as a pipeline runs it).

Targets (issue 12): the fleet's wall time within 2x of one service's; 1 API call (DescribeService)
per unchanged service. The round trip is the emulator's ``slow`` fault on every request
(sandbox/server.py: it sleeps before serving, concurrently for concurrent requests, as a network
would), so the time is spent where a real fleet spends it: waiting on EAS.

    python bench/fleet.py [--services 100] [--regions 5] [--rtt 0.05] [--parallel 32] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from eascomfy.sandbox.credentials import SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET
from eascomfy.sandbox.eas import EasSandbox, Timings
from eascomfy.sandbox.regions import EAS_REGIONS, format_endpoints

FAST = Timings(creating=0.05, updating=0.05, ready=0.05)


def spec(name: str, regions: list[str]) -> str:
    oss = "".join(f"    {r}: oss://bench-{r}/{name}/\n" for r in regions)
    return (f"name: {name}\nregions: [{', '.join(regions)}]\nedition: standard\nimage: {{version: \"1.9\"}}\n"
            f"storage:\n  oss:\n{oss}resources: {{instance_type: ml.gu7i.c16m60.1-gu30}}\nlabels: {{bench: fleet}}\n")


def cli(env: dict[str, str], where: Path, *args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "eascomfy", *args], cwd=where, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"eascomfy {' '.join(args)} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--regions", type=int, default=5)
    parser.add_argument("--rtt", type=float, default=0.05, help="seconds added to every request")
    parser.add_argument("--parallel", type=int, default=32, help="the fleet commands' --parallel")
    parser.add_argument("--runs", type=int, default=3, help="runs of each command (median)")
    args = parser.parse_args()
    regions = list(EAS_REGIONS[:args.regions])
    per_spec, specs = len(regions), -(-args.services // len(regions))
    with tempfile.TemporaryDirectory() as tmp, EasSandbox(state_dir=Path(tmp) / "sb", timings=FAST, region=regions[0],
                                                          regions=regions[1:]) as sb:
        fleet, one = Path(tmp) / "fleet", Path(tmp) / "one"
        (fleet / "services").mkdir(parents=True)
        one.mkdir()
        for i in range(specs):
            (fleet / "services" / f"svc{i:03d}.yaml").write_text(spec(f"bench_svc{i:03d}", regions))
        (one / "eascomfy.yaml").write_text(spec("bench_one", regions[:1]).replace(f"regions: [{regions[0]}]",
                                                                                  f"region: {regions[0]}")
                                           .replace(f"  oss:\n    {regions[0]}: ", "  oss: "))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EASCOMFY_", "ALIBABA_CLOUD_"))}
        env.update(EASCOMFY_EAS_ENDPOINTS=format_endpoints(sb.urls), EASCOMFY_EAS_ENDPOINT=sb.url,
                   ALIBABA_CLOUD_ACCESS_KEY_ID=SANDBOX_ACCESS_KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET=SANDBOX_ACCESS_KEY_SECRET,
                   ALIBABA_CLOUD_ECS_METADATA_DISABLED="true", NO_PROXY="127.0.0.1,localhost")
        # create everything without the round trip; then every request pays it
        cli(env, fleet, "deploy", "--all", "--parallel", str(args.parallel), "--timeout", "120")
        cli(env, one, "deploy", "--timeout", "120")
        total = specs * per_spec
        sb.faults.add(kind="slow", delay=args.rtt, times=-1)

        rows = []
        for command in ("plan", "deploy"):
            one_walls, fleet_walls, calls = [], [], []
            for _ in range(args.runs):  # interleaved: both see the same machine load
                one_walls.append(cli(env, one, command))
                before = len(sb.recorder.all())
                fleet_walls.append(cli(env, fleet, command, "--all", "--parallel", str(args.parallel)))
                calls.append([r.action for r in sb.recorder.all()[before:] if r.path.startswith("/api/v2/")])
            o, f = statistics.median(one_walls), statistics.median(fleet_walls)
            per_service = statistics.median(len(c) for c in calls) / total
            kinds = sorted(set(a for c in calls for a in c if a))
            rows.append((command, o, f, f / o, per_service, ", ".join(kinds)))
        os.environ.update({k: v for k, v in env.items() if k.startswith(("EASCOMFY_", "ALIBABA_CLOUD_"))})
        library = [in_process(fleet, one, command, args.parallel, args.runs) for command in ("plan", "deploy")]

    print(f"{total} services ({specs} specs x {per_spec} regions), {args.rtt * 1000:.0f} ms added to every request, "
          f"--parallel {args.parallel}, median of {args.runs} runs")
    print(f"{'CLI process, unchanged':<24} {'one s':>7} {'fleet s':>8} {'fleet/one':>10} {'calls/service':>14}  actions")
    for command, o, f, ratio, per, kinds in rows:
        print(f"{command:<24} {o:>7.2f} {f:>8.2f} {ratio:>9.2f}x {per:>14.2f}  {kinds}")
    print(f"{'in-process (library)':<24} {'one s':>7} {'fleet s':>8} {'fleet/one':>10}")
    for command, o, f in library:
        print(f"{command:<24} {o:>7.3f} {f:>8.3f} {f / o:>9.2f}x")
    print("targets: fleet/one <= 2x (as a pipeline runs it: the CLI process), calls/service = 1")


def in_process(fleet: Path, one: Path, command: str, parallel: int, runs: int) -> tuple[str, float, float]:
    """The same work without the process start: the runner alone (a client per region made anew
    each run, as a CLI run makes them)."""
    from eascomfy.control.fleet import deploy_work, load_fleet, plan_work, run
    from eascomfy.ports import SILENT

    work = plan_work() if command == "plan" else deploy_work(timeout=60)
    specs, single = load_fleet(fleet), load_fleet(one)
    walls: dict[str, list[float]] = {"one": [], "fleet": []}
    for _ in range(runs):
        for label, chosen in (("one", single), ("fleet", specs)):
            started = time.perf_counter()
            outcome = run(chosen, work, SILENT, parallel=parallel)
            walls[label].append(time.perf_counter() - started)
            assert outcome.exit_code() == 0, outcome.to_list()
    return command, statistics.median(walls["one"]), statistics.median(walls["fleet"])

    print(f"{total} services ({specs} specs x {per_spec} regions), {args.rtt * 1000:.0f} ms added to every request, "
          f"--parallel {args.parallel}, median of {args.runs} runs, each a CLI process")
    print(f"{'command (unchanged)':<20} {'one s':>7} {'fleet s':>8} {'fleet/one':>10} {'calls/service':>14}  actions")
    for command, o, f, ratio, per, kinds in rows:
        print(f"{command:<20} {o:>7.2f} {f:>8.2f} {ratio:>9.2f}x {per:>14.2f}  {kinds}")
    print("targets: fleet/one <= 2x, calls/service = 1")


if __name__ == "__main__":
    main()
