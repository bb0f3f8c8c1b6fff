"""Upload throughput and memory: `eascomfy models push` next to `oss2.resumable_upload` (defaults).

Both run against the same OSS sandbox, started in its own process (`eascomfy sandbox`), one after
the other in one run, on the same file, three times: on bare loopback; with a per-request delay
injected by the sandbox (`--latency-ms`, a network's round trip); and with a per-connection
bandwidth (`--stream-mbps`, each request taking its size over that rate, as one TCP stream over a
WAN does). Both sign with OSS Signature V4 (the sandbox refuses V1, as new buckets do). Prints:
- the CRC-64/XZ implementation in use and the speed of each one present (anycrc, crcmod's C
  extension, pure Python);
- throughput of each client and the ratio (target: eascomfy >= 2x oss2's defaults), with the CPU
  time the client and the emulator spent per MiB (target: eascomfy's client <= 1.5 ms/MiB); on 2
  cores the emulator's own MD5, socket reads and disk writes bound what any client can reach on
  loopback;
- peak RSS of the eascomfy process pushing a larger file (target: < 200 MB for 4 GiB), read from
  the child's own VmHWM (``ru_maxrss`` would include the bench's memory: Linux carries a parent's
  RSS into a child's ``ru_maxrss`` at exec);
- re-push of 1,000 unchanged small files: wall time (target: < 1.5 s) and upload requests (0).

    python bench/upload.py [--size-gib 2] [--rss-size-gib 4] [--small-files 1000] [--latency-ms 50] [--stream-mbps 50]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BUCKET = "bench-bucket"
GiB = 1024**3


def write_random(path: Path, size: int) -> None:
    chunk = os.urandom(64 * 1024 * 1024)
    with open(path, "wb") as fh:
        left = size
        while left > 0:
            n = min(left, len(chunk))
            fh.write(chunk[:n])
            left -= n


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def set_network(endpoint: str, latency_ms: int = 0, stream_mbps: float = 0) -> None:
    """Make the sandbox answer every request as if over a network (or clear that)."""
    clear = urllib.request.Request(endpoint + "/_sandbox/faults", method="DELETE")
    urllib.request.urlopen(clear, timeout=10).read()
    if latency_ms or stream_mbps:
        per_mib = 2**20 / (stream_mbps * 1e6) if stream_mbps else 0.0
        body = json.dumps({"kind": "slow", "delay": latency_ms / 1000, "per_mib": per_mib, "times": -1}).encode()
        add = urllib.request.Request(endpoint + "/_sandbox/faults", data=body, method="POST")
        urllib.request.urlopen(add, timeout=10).read()


# Children run through this wrapper, which writes the process's own peak RSS (VmHWM) to a file at
# exit. ru_maxrss from wait4 would not do: Linux carries the parent's RSS into a child's
# ru_maxrss at exec (the bench itself holds a 64 MiB buffer), which inflated earlier numbers.
PEAK_WRAPPER = r"""
import atexit, runpy, sys
out, mode, target = sys.argv[1:4]
def report():
    with open("/proc/self/status") as status, open(out, "w") as fh:
        fh.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
atexit.register(report)
if mode == "-m":
    sys.argv = [target, *sys.argv[4:]]
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    sys.argv = ["-c", *sys.argv[4:]]
    exec(compile(target, "<bench>", "exec"), {"__name__": "__main__"})
"""


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str, float]:
    """(wall seconds, peak RSS in bytes, stdout, CPU seconds) of one Python child
    (``[python, "-m" or "-c", target, args...]``)."""
    with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f, \
            tempfile.NamedTemporaryFile(suffix=".hwm") as hwm:  # no pipe to fill up
        start = time.perf_counter()
        proc = subprocess.Popen([cmd[0], "-c", PEAK_WRAPPER, hwm.name, *cmd[1:]], env=env, stdout=out_f, stderr=err_f)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        out_f.seek(0)
        err_f.seek(0)
        out, err = out_f.read().decode(), err_f.read().decode()
        peak_kib = int(Path(hwm.name).read_text() or 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd[:4])}... failed ({code}): {err[-800:]}")
    return elapsed, peak_kib * 1024, out, usage.ru_utime + usage.ru_stime


def crc_speeds(size: int = 64 * 2**20) -> dict[str, float]:
    """MB/s of each CRC-64/XZ implementation present, on ``size`` random bytes."""
    from eascomfy import crc64

    data = os.urandom(size)
    found: dict[str, object] = {"python (1 MiB)": crc64._crc64_python}
    anycrc = crc64._load_anycrc()
    if anycrc is not None:
        found["anycrc"] = anycrc[0]
    crcmod = crc64._load_crcmod()
    if crcmod is not None:
        found["crcmod"] = crcmod
    speeds = {}
    for name, fun in found.items():
        sample = data[: 2**20] if name.startswith("python") else data
        start = time.perf_counter()
        fun(sample)  # type: ignore[operator]
        speeds[name] = len(sample) / 1e6 / (time.perf_counter() - start)
    return speeds


OSS2_BASELINE = """
import os, sys, oss2
auth = oss2.AuthV4(os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"], os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"])
bucket = oss2.Bucket(auth, os.environ["EASCOMFY_OSS_ENDPOINT"], sys.argv[2], region="cn-hangzhou")
oss2.resumable_upload(bucket, sys.argv[3], sys.argv[1], store=oss2.ResumableStore(root=sys.argv[4]))
"""


def requests_since(endpoint: str, actions: set[str]) -> int:
    with urllib.request.urlopen(endpoint + "/_sandbox/requests", timeout=10) as resp:
        return sum(1 for r in json.load(resp) if r["action"] in actions)


def clear_requests(endpoint: str) -> None:
    urllib.request.urlopen(urllib.request.Request(endpoint + "/_sandbox/requests", method="DELETE"), timeout=10).read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gib", type=float, default=2.0, help="file for the throughput comparison")
    parser.add_argument("--rss-size-gib", type=float, default=4.0, help="file for the peak-RSS measurement")
    parser.add_argument("--small-files", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=50, help="per-request delay of the second comparison (0: skip it)")
    parser.add_argument("--stream-mbps", type=float, default=50, help="per-connection MB/s of the third comparison (0: skip it)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to put the test files (needs ~3x the sizes)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="eascomfy-bench-", dir=args.workdir))
    py = sys.executable
    sandbox = subprocess.Popen(
        [py, "-m", "eascomfy", "sandbox", "--state", str(work / "sandbox"), "--regions", "cn-hangzhou"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        exports = dict(sandbox.stdout.readline().strip().removeprefix("export ").split("=", 1) for _ in range(4))  # type: ignore[union-attr]
        env = {**os.environ, **exports, "EASCOMFY_STATE_DIR": str(work / "state")}
        oss_url = exports["EASCOMFY_OSS_ENDPOINT"]
        import oss2

        auth = oss2.AuthV4(exports["ALIBABA_CLOUD_ACCESS_KEY_ID"], exports["ALIBABA_CLOUD_ACCESS_KEY_SECRET"])
        oss2.Bucket(auth, oss_url, BUCKET, region="cn-hangzhou").create_bucket()  # V4: the sandbox refuses V1
        def spec_for(prefix: str) -> Path:
            path = work / f"eascomfy-{prefix}.yaml"
            path.write_text(f"name: comfy_bench\nregion: cn-hangzhou\nedition: api\nstorage:\n  oss: oss://{BUCKET}/{prefix}/\n")
            return path

        def push_cmd(prefix: str) -> list[str]:
            return [py, "-m", "eascomfy", "models", "push", "-k", "checkpoints", "-f", str(spec_for(prefix)), "-o", "json"]

        from eascomfy import crc64

        speeds = crc_speeds()
        print(f"CRC-64/XZ in use: {crc64.IMPLEMENTATION}; " + ", ".join(f"{k} {v:,.0f} MB/s" for k, v in speeds.items()))
        big = work / "model.safetensors"
        size = int(args.size_gib * GiB)
        write_random(big, size)
        mib = size / 2**20
        print(f"{'upload of ' + f'{args.size_gib:g} GiB':<40} {'seconds':>8} {'MB/s':>8} {'RSS MB':>7} {'client ms/MiB':>14} {'sandbox ms/MiB':>15}")
        scenarios = [("on bare loopback", 0, 0.0)]
        if args.latency_ms:
            scenarios.append((f"with {args.latency_ms} ms per request", args.latency_ms, 0.0))
        if args.stream_mbps:
            scenarios.append((f"at {args.stream_mbps:g} MB/s per connection", 0, args.stream_mbps))
        for where, latency, mbps in scenarios:
            set_network(oss_url, latency, mbps)
            tag = f"{latency}-{mbps:g}"
            times, client_ms = {}, {}
            for name, cmd in (
                ("oss2.resumable_upload (defaults)", [py, "-c", OSS2_BASELINE, str(big), BUCKET, f"baseline-{tag}/m", str(work / f"oss2-{tag}")]),
                ("eascomfy models push", [*push_cmd(f"run-{tag}"), str(big)]),
            ):
                server_before = cpu_seconds(sandbox.pid)
                wall, rss, _, cpu = run_measured(cmd, {**env, "EASCOMFY_STATE_DIR": str(work / f"state-{tag}")})
                server = cpu_seconds(sandbox.pid) - server_before
                times[name] = wall
                client_ms[name] = 1000 * cpu / mib
                label = name + (f" +{latency} ms" if latency else "") + (f" @{mbps:g} MB/s" if mbps else "")
                print(f"{label:<40} {wall:>8.2f} {size / 1e6 / wall:>8.1f} {rss / 1e6:>7.1f} {1000 * cpu / mib:>14.2f} {1000 * server / mib:>15.2f}")
            ratio = times["oss2.resumable_upload (defaults)"] / times["eascomfy models push"]
            print(f"  throughput ratio eascomfy/oss2 {where}: {ratio:.2f}x (target >= 2x) {'ok' if ratio >= 2 else 'MISSED'}")
            if not latency and not mbps:
                per_mib = client_ms["eascomfy models push"]
                print(f"  eascomfy client CPU: {per_mib:.2f} ms/MiB (target <= 1.5) {'ok' if per_mib <= 1.5 else 'MISSED'}")
        set_network(oss_url)
        big.unlink()

        if args.rss_size_gib > 0:
            huge = work / "huge.safetensors"
            write_random(huge, int(args.rss_size_gib * GiB))
            t_huge, rss_huge, _, _ = run_measured([*push_cmd("rss"), str(huge)], env)
            huge.unlink()
            print(
                f"peak RSS pushing {args.rss_size_gib:g} GiB: {rss_huge / 1e6:.1f} MB in {t_huge:.1f} s "
                f"(target < 200 MB) {'ok' if rss_huge < 200e6 else 'MISSED'}"
            )

        small = work / "small"
        small.mkdir()
        for i in range(args.small_files):
            (small / f"emb_{i:04d}.safetensors").write_bytes(os.urandom(1024))
        files = sorted(str(p) for p in small.iterdir())
        push = push_cmd("small")
        run_measured([*push, *files], env)  # the first push uploads them
        clear_requests(oss_url)
        t_small, _, _, _ = run_measured([*push, *files], env)
        uploads = requests_since(oss_url, {"PutObject", "UploadPart", "InitiateMultipartUpload", "CompleteMultipartUpload"})
        total = requests_since(oss_url, {"PutObject", "UploadPart", "HeadObject", "ListObjectsV2", "GetBucketLocation", "InitiateMultipartUpload", "CompleteMultipartUpload"})
        print(
            f"re-push of {args.small_files} unchanged files: {t_small:.2f} s, {uploads} upload requests, "
            f"{total} requests in all (target < 1.5 s, 0 uploads) {'ok' if t_small < 1.5 and uploads == 0 else 'MISSED'}"
        )
    finally:
        sandbox.terminate()
        sandbox.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
