"""What the cost section costs a fleet's plan: API calls and wall time of planning N services in
one region with and without the cost lookup, side by side in one run, against the in-process EAS
sandbox. Unchanged services must cost no extra call; changed ones one DescribeMachineSpec for the
whole fleet (control.cost.Capacity), not one per service.

    python bench/plan_cost.py [--services 20] [--runs 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from eascomfy.adapters.eas import EasClient, static_credential
from eascomfy.control.cost import Capacity, cost_of_plan
from eascomfy.control.deploy import deploy, plan_service
from eascomfy.core.cost import Prices
from eascomfy.core.spec import load_spec
from eascomfy.local.scaffold import init_spec
from eascomfy.sandbox.credentials import SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET
from eascomfy.sandbox.eas import EasSandbox, Timings

PRICES = Prices({"ml.gu7i.c16m60.1-gu30": 13.5}, "CNY", "bench")


class Quiet:
    def info(self, message: str) -> None: ...
    def warn(self, message: str) -> None: ...
    def debug(self, message: str) -> None: ...


def plan_fleet(specs: list[Any], client: EasClient, sb: EasSandbox, with_cost: bool) -> tuple[int, int, float]:
    """(OpenAPI calls, DescribeMachineSpec calls, seconds) to plan every spec once."""
    before = len(sb.recorder.all())
    capacity = Capacity()  # one per command
    started = time.perf_counter()
    for spec in specs:
        plan, live = plan_service(spec, client)
        if with_cost:
            cost_of_plan(plan, live.config if live else None, client, PRICES, capacity)
    wall = time.perf_counter() - started
    calls = [r for r in sb.recorder.all()[before:] if r.path.startswith("/api/v2/")]
    return len(calls), sum(1 for r in calls if r.path.endswith("/instance_types")), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5, help="alternating runs of each; the fastest is shown")
    args = parser.parse_args()
    fast = Timings(creating=0.01, updating=0.01, ready=0.01, stopping=0.01, starting=0.01, deleting=0.01)
    with tempfile.TemporaryDirectory() as tmp, EasSandbox(state_dir=Path(tmp) / "sb", timings=fast) as sb:
        client = EasClient(sb.region, endpoint=sb.url,
                           credential=static_credential(SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET))
        paths = [init_spec(Path(tmp) / f"p{i}", name=f"fleet_{i}", region=sb.region, edition="api",
                           oss="oss://bench/comfyui/", image_version="1.9") for i in range(args.services)]
        for path in paths:
            deploy(load_spec(path), client, Quiet(), timeout=60)
        unchanged = [load_spec(p) for p in paths]
        for path in paths:
            path.write_text(path.read_text().replace("  instances: 1\n", "  instances: 2\n", 1))
        changed = [load_spec(p) for p in paths]
        capacity = Capacity()
        plan, live = plan_service(changed[0], client)
        cost_of_plan(plan, live.config if live else None, client, PRICES, capacity)  # fills the cache
        rounds = 2000
        started = time.perf_counter()
        for _ in range(rounds):
            cost_of_plan(plan, live.config if live else None, client, PRICES, capacity)
        per = (time.perf_counter() - started) / rounds
        one = plan_fleet(changed[:1], client, sb, False)[2]
        print(f"the cost section of one changed plan, DescribeMachineSpec cached: {per * 1e6:.1f} us "
              f"({per / one:.4f} of planning one service)")
        print(f"planning {args.services} services in {sb.region}: calls (DescribeMachineSpec), seconds")
        for label, specs in (("unchanged", unchanged), ("instance count changed", changed)):
            runs = []
            for i in range(args.runs):  # alternating which goes first
                if i % 2:
                    costed_run = plan_fleet(specs, client, sb, True)
                    runs.append((plan_fleet(specs, client, sb, False), costed_run))
                else:
                    runs.append((plan_fleet(specs, client, sb, False), plan_fleet(specs, client, sb, True)))
            plain = min((r[0] for r in runs), key=lambda r: r[2])  # the fastest of each: least noise
            costed = min((r[1] for r in runs), key=lambda r: r[2])
            print(f"  {label:<24} without cost: {plain[0]:>4} calls, {plain[2]:.3f} s | with cost: {costed[0]:>4} calls "
                  f"({costed[1]} DescribeMachineSpec), {costed[2]:.3f} s | ratio calls {costed[0] / plain[0]:.3f}, "
                  f"time {costed[2] / plain[2]:.2f}")


if __name__ == "__main__":
    main()
