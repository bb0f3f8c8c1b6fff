"""Submit throughput and result latency against the sandbox, side by side in one run.

    python bench/submit.py [--count 1000] [--baseline-count 1000] [--rtt 0.01] [--latency-jobs 100]

The sandbox (EAS + OSS + queue + ComfyUI emulators) runs in a child process (``--serve``), so the
clients are measured on their own core. Two API-edition services: ``bench_submit`` (its workers
never finish a job, so the server spends its CPU on the puts being measured) and ``bench_results``
(jobs of 50 ms, two workers).

1. Throughput: ``eascomfy submit --count N`` (a subprocess; its own timer, and wall time with
   start-up) next to the guide's sequential loop::

       for i in range(N): session.post(f'{url}/api_prompt?task_id=txt2img_{i}', json=payload)

   on loopback, then with a simulated network round trip of ``--rtt`` seconds per request (the
   sandbox's ``slow`` fault on /api_prompt): the loopback numbers are bounded by the sandbox
   server itself (one Python event loop), the RTT numbers show what concurrency buys against a
   real region. Target: >= 5x the guide's throughput.
2. Latency: ``eascomfy results --follow`` runs while ``--latency-jobs`` jobs are submitted; the
   delay is from the sandbox putting a job's result on the sink (recorded in the child) to the
   journal's ``result`` line (written after the result file, fsync'd). Target: median <= 200 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "eascomfy" / "data" / "seed-workflow.api.json"
BUCKET, PREFIX = "bench-data", "comfyui/"
SERVICES = {"bench_submit": 1e6, "bench_results": 0.05}  # service -> job seconds


# -- the child: the sandbox ------------------------------------------------------------------------------
def serve(state: Path) -> None:
    from eascomfy.adapters.eas import EasClient, probe, static_credential
    from eascomfy.sandbox.credentials import SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET
    from eascomfy.sandbox.eas import Timings
    from eascomfy.sandbox.stack import SandboxStack

    fast = Timings(creating=0.05, updating=0.05, ready=0.05, stopping=0.05, starting=0.05, deleting=0.05)
    with SandboxStack(state / "sandbox", timings=fast, job_seconds=0.05) as stack:
        stack.oss.create_bucket(BUCKET, region=stack.region)
        for key in ("models/checkpoints/LandscapeBING_v10.safetensors", "models/checkpoints/svd_xt.safetensors",
                    "custom_nodes/ComfyUI-VideoHelperSuite/__init__.py"):
            stack.oss.put_object(BUCKET, PREFIX + key, b"stand-in")
        client = EasClient(stack.region, endpoint=stack.eas.url,
                           credential=static_credential(SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET))
        services = {}
        for name, seconds in SERVICES.items():
            client.create({
                "metadata": {"name": name, "instance": 2, "type": "Async"},
                "containers": [{"image": f"eas-registry-vpc.{stack.region}.cr.aliyuncs.com/pai-eas/comfyui:2.2-api", "port": 8000}],
                "storage": [{"mount_path": "/code/data-oss", "oss": {"path": f"oss://{BUCKET}/{PREFIX}"}}],
            }, {})
            live = client.require(name)
            while probe(live.internet_endpoint, live.access_token) != 200:
                time.sleep(0.05)
            assert stack.comfyui is not None
            stack.comfyui.comfyui(name).job_seconds = seconds
            services[name] = {"url": live.internet_endpoint, "token": live.access_token}
        finished = open(state / "finished.jsonl", "a", encoding="utf-8")
        sink = stack.comfyui.queue("bench_results").sink
        put = sink.put

        def recording_put(data: bytes, tags: Any = None, **kwargs: Any) -> Any:
            message = put(data, tags, **kwargs)
            finished.write(json.dumps({"task_id": (tags or {}).get("task_id"), "time": time.time()}) + "\n")
            finished.flush()
            return message

        sink.put = recording_put  # type: ignore[method-assign]
        print(json.dumps({"eas": stack.eas.url, "services": services, "env": stack.env()}), flush=True)
        sys.stdin.read()  # until the parent closes our stdin


# -- the parent: the clients ------------------------------------------------------------------------------
def guide_loop(url: str, token: str, count: int) -> float:
    """The guide's client: a requests Session posting one job after the other. Jobs per second."""
    import requests

    payload = json.loads(WORKFLOW.read_text())
    session = requests.Session()
    session.trust_env = False
    session.headers["Authorization"] = token
    started = time.perf_counter()
    for i in range(count):
        response = session.post(f"{url}/api_prompt?task_id=txt2img_{i}", json=payload)
        assert response.status_code == 200, response.text
    return count / (time.perf_counter() - started)


def eascomfy(*args: str, env: dict[str, str]) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "eascomfy", "-o", "json", *args], env=env, capture_output=True,
                          text=True, timeout=600)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"eascomfy {args[0]} failed ({proc.returncode}): {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)["data"], wall


def set_rtt(eas: str, rtt: float) -> None:
    method = "POST" if rtt else "DELETE"
    body = json.dumps({"kind": "slow", "delay": rtt, "times": -1, "path": "/api_prompt$"}).encode() if rtt else None
    request = urllib.request.Request(f"{eas}/_sandbox/faults", data=body, method=method,
                                     headers={"Content-Type": "application/json"})
    urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10).read()


def throughput(label: str, eas: str, svc: dict[str, str], env: dict[str, str], work: Path, count: int,
               baseline_count: int, rtt: float) -> dict[str, Any]:
    set_rtt(eas, rtt)
    try:
        guide = guide_loop(svc["url"], svc["token"], baseline_count)
        data, wall = eascomfy("submit", str(WORKFLOW), "--count", str(count), "--journal", str(work / f"{label}.jsonl"),
                              env={**env, "EASCOMFY_SERVICE_URL": svc["url"], "EASCOMFY_SERVICE_TOKEN": svc["token"]})
    finally:
        set_rtt(eas, 0)
    ours, ours_wall = data["sent"] / data["seconds"], data["sent"] / wall
    return {"label": label, "guide": guide, "ours": ours, "ours_wall": ours_wall, "ratio": ours / guide,
            "ratio_wall": ours_wall / guide, "sent": data["sent"]}


def latency(svc: dict[str, str], env: dict[str, str], work: Path, jobs: int, state: Path) -> dict[str, float]:
    journal = work / "latency.jsonl"
    env = {**env, "EASCOMFY_SERVICE_URL": svc["url"], "EASCOMFY_SERVICE_TOKEN": svc["token"]}
    # Started on an empty journal, --follow waits; once the jobs are journaled it stops when all are in.
    follower = subprocess.Popen([sys.executable, "-m", "eascomfy", "results", "--follow", "--journal", str(journal)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # let it start watching
    eascomfy("submit", str(WORKFLOW), "--count", str(jobs), "--journal", str(journal), env=env)
    if follower.wait(300) != 0:
        raise SystemExit(f"results --follow failed: {follower.stderr.read() if follower.stderr else ''}")
    finished = {}
    for line in (state / "finished.jsonl").read_text().splitlines():
        record = json.loads(line)
        finished[record["task_id"]] = record["time"]
    written = [json.loads(line) for line in journal.read_text().splitlines()]
    delays = [1000 * (r["time"] - finished[r["task_id"]]) for r in written if r.get("event") == "result"]
    delays.sort()
    if not delays:
        raise SystemExit(f"results --follow wrote no result ({len(written)} journal lines); its stderr: "
                         f"{follower.stderr.read()[-2000:] if follower.stderr else ''}")
    return {"count": len(delays), "median": statistics.median(delays), "p90": delays[int(0.9 * (len(delays) - 1))],
            "max": delays[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--baseline-count", type=int, default=1000, help="jobs of the guide's loop on loopback")
    parser.add_argument("--rtt", type=float, default=0.01, help="simulated round trip per request, seconds (0: skip)")
    parser.add_argument("--latency-jobs", type=int, default=100)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    with tempfile.TemporaryDirectory(prefix="eascomfy-bench-") as tmp:
        work = Path(tmp)
        child = subprocess.Popen([sys.executable, __file__, "--serve", str(work)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None
            info = json.loads(child.stdout.readline())
            env = {**os.environ, **info["env"], "EASCOMFY_STATE_DIR": str(work / "client")}
            env.pop("EASCOMFY_OUTPUT", None)
            svc = info["services"]["bench_submit"]
            rows = [throughput("loopback", info["eas"], svc, env, work, args.count, args.baseline_count, 0.0)]
            if args.rtt:
                guide_jobs = max(50, min(args.baseline_count, int(3 / args.rtt)))
                rows.append(throughput(f"rtt {args.rtt * 1000:g} ms", info["eas"], svc, env, work, args.count, guide_jobs,
                                       args.rtt))
            lat = latency(info["services"]["bench_results"], env, work, args.latency_jobs, work)
        finally:
            if child.stdin:
                child.stdin.close()
            child.wait(30)
    print(f"submit {args.count} jobs (eascomfy submit, 16 in flight) vs the guide's sequential requests loop")
    print(f"{'network':<14}{'guide jobs/s':>14}{'eascomfy jobs/s':>17}{'ratio':>8}{'incl. start-up':>16}")
    for r in rows:
        print(f"{r['label']:<14}{r['guide']:>14.0f}{r['ours']:>17.0f}{r['ratio']:>7.1f}x{r['ratio_wall']:>15.1f}x")
    best = max(r["ratio"] for r in rows)
    print(f"target >= 5x: {'met' if best >= 5 else 'NOT met'} (best {best:.1f}x)")
    print(f"results --follow: {lat['count']} results, sink -> written: median {lat['median']:.0f} ms, "
          f"p90 {lat['p90']:.0f} ms, max {lat['max']:.0f} ms; target median <= 200 ms: "
          f"{'met' if lat['median'] <= 200 else 'NOT met'}")


if __name__ == "__main__":
    main()
