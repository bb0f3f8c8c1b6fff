"""API calls and wall time of deploy, unchanged redeploy and update-image against the in-process
EAS sandbox, next to the minimum calls each needs; and how soon readiness is noticed.

Targets: an unchanged redeploy = 1 read call; readiness noticed within 1 s of the sandbox turning
ready (its ``ready_at`` moment to ``deploy`` returning).

    python bench/deploy.py [--runs 3] [--creating 1.0] [--ready 1.0]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from eascomfy.adapters.eas import EasClient, static_credential
from eascomfy.control.deploy import deploy
from eascomfy.core.image import with_image_version
from eascomfy.core.spec import load_spec
from eascomfy.local.scaffold import init_spec
from eascomfy.sandbox.credentials import SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET
from eascomfy.sandbox.eas import EasSandbox, Timings

# The fewest OpenAPI calls each operation can make (reads + writes).
MINIMUM = {
    "deploy (create)": "3 (Describe, Create, Describe until Running)",
    "redeploy unchanged": "1 (Describe)",
    "update-image": "4 (Describe, Update, UpdateLabel, Describe until Running)",
}


class Quiet:
    def info(self, message: str) -> None: ...
    def warn(self, message: str) -> None: ...
    def debug(self, message: str) -> None: ...


def run_once(creating: float, ready: float, index: int) -> dict[str, tuple[int, float, Counter[str], float | None]]:
    timings = Timings(creating=creating, updating=creating, ready=ready)
    results: dict[str, tuple[int, float, Counter[str], float | None]] = {}
    with tempfile.TemporaryDirectory() as tmp, EasSandbox(state_dir=Path(tmp) / "sb", timings=timings) as sb:
        name = f"bench_svc_{index}"
        path = init_spec(Path(tmp) / "p", name=name, region=sb.region, edition="api",
                         oss="oss://bench/comfyui/", image_version="1.9")
        client = EasClient(sb.region, endpoint=sb.url,
                           credential=static_credential(SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET))
        spec = load_spec(path)
        steps = [("deploy (create)", spec), ("redeploy unchanged", spec), ("update-image", with_image_version(spec, "2.2"))]
        for label, target in steps:
            before = len(sb.recorder.all())
            started = time.perf_counter()
            deploy(target, client, Quiet(), timeout=60)
            returned, wall = time.time(), time.perf_counter() - started
            calls = [r for r in sb.recorder.all()[before:] if r.path.startswith("/api/v2/")]
            record = sb.store.snapshot(name)
            latency = returned - record.ready_at if label != "redeploy unchanged" and record and record.ready_at else None
            results[label] = (len(calls), wall, Counter(str(r.action) for r in calls), latency)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--creating", type=float, default=1.0, help="sandbox seconds in Creating/Updating")
    parser.add_argument("--ready", type=float, default=1.0, help="sandbox seconds from Running to ready")
    args = parser.parse_args()
    runs = [run_once(args.creating, args.ready, i) for i in range(args.runs)]
    print(f"sandbox timings: creating/updating {args.creating} s, ready {args.ready} s after Running; {args.runs} runs (median)")
    print(f"{'operation':<20} {'calls':>5}  {'minimum':<58} {'wall s':>7} {'ready noticed after s':>22}")
    for label in MINIMUM:
        calls = statistics.median(r[label][0] for r in runs)
        wall = statistics.median(r[label][1] for r in runs)
        lat = [r[label][3] for r in runs if r[label][3] is not None]
        latency = f"{statistics.median(lat):.3f}" if lat else "-"
        print(f"{label:<20} {calls:>5g}  {MINIMUM[label]:<58} {wall:>7.3f} {latency:>22}")
        mix = runs[-1][label][2]
        print(f"{'':<20} {'':>5}  calls: " + ", ".join(f"{a} x{n}" for a, n in sorted(mix.items())))
    unchanged = max(r["redeploy unchanged"][0] for r in runs)
    worst = max((r[k][3] or 0) for r in runs for k in ("deploy (create)", "update-image"))
    print(f"targets: unchanged redeploy = 1 call: {'OK' if unchanged == 1 else 'MISSED'} ({unchanged}); "
          f"readiness noticed within 1 s: {'OK' if worst <= 1.0 else 'MISSED'} (worst {worst:.3f} s)")


if __name__ == "__main__":
    main()
