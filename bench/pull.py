"""Pull throughput and memory: `eascomfy models pull` next to the download-then-upload a user
would script (`requests` to a local file, then `oss2.resumable_upload` with its defaults).

One server process holds the model-source emulator and the OSS emulator. The source file is
generated, not stored (``ModelSourceSandbox.add_file(size=, seed=)``: deterministic bytes, one
SHA-256 pass at start). Both sides get the same per-connection bandwidth (``--mbps``): the
source's bodies are paced (switch ``bytes_per_second``), and every UploadPart takes its size over
that rate (the OSS emulator's ``slow`` fault). eascomfy runs with ``--streams`` connections per
side (``--workers 2*streams``: half download while half upload), so the slower side's bandwidth
is ``streams * mbps``. Prints, side by side in one run:

- each path's wall time, MB/s and peak RSS (the child's own VmHWM, see bench/upload.py);
- eascomfy's throughput as a ratio of the slower side's bandwidth (target >= 0.9x);
- eascomfy's speed-up over the scripted path (target >= 2x);
- eascomfy's peak RSS (target < 200 MB).

    python bench/pull.py [--size 2G] [--mbps 16] [--streams 4] [--part-size 8]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from upload import run_measured  # noqa: E402  (the peak-RSS wrapper, one home)

BUCKET = "bench-bucket"
REPO, PATH = "bench/models", "checkpoints/generated.safetensors"

SERVER = r"""
import json, sys, time
from eascomfy.sandbox.models import ModelSourceSandbox
from eascomfy.sandbox.oss import OssSandbox
size, rate, state = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
oss = OssSandbox(state_dir=__import__("pathlib").Path(state) / "oss", region="cn-hangzhou").start()
oss.create_bucket(sys.argv[4])
hub = ModelSourceSandbox(__import__("pathlib").Path(state) / "hub").start()
sha = hub.add_file(sys.argv[5], sys.argv[6], size=size, seed=7)
hub.switches.bytes_per_second = rate
if rate:
    oss.faults.add(kind="slow", per_mib=2**20 / rate, times=-1, action="UploadPart")
print(json.dumps({"oss": oss.url, "hub": hub.url, "sha256": sha}), flush=True)
sys.stdin.read()  # until the bench closes it
"""

SCRIPTED = r"""
import json, os, sys, time, requests, oss2
url, path, key = sys.argv[1:4]
start = time.perf_counter()
with requests.get(url, stream=True, timeout=60) as r:  # follows the hub's 302 to the CDN
    r.raise_for_status()
    with open(path, "wb") as fh:
        for chunk in r.iter_content(1024 * 1024):
            fh.write(chunk)
downloaded = time.perf_counter()
auth = oss2.AuthV4(os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"], os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"])
bucket = oss2.Bucket(auth, os.environ["EASCOMFY_OSS_ENDPOINT"], sys.argv[4], region="cn-hangzhou")
oss2.resumable_upload(bucket, key, path, store=oss2.ResumableStore(root=os.path.dirname(path)))
print(json.dumps({"download": downloaded - start, "upload": time.perf_counter() - downloaded}))
"""


def parse_size(text: str) -> int:
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    return int(float(text[:-1]) * units[text[-1]]) if text[-1:] in units else int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="2G", help="bytes of the generated source file (K, M, G suffixes)")
    parser.add_argument("--mbps", type=float, default=16, help="per-connection MB/s of both sides (0: unlimited)")
    parser.add_argument("--streams", type=int, default=4, help="eascomfy's connections per side")
    parser.add_argument("--part-size", type=int, default=8, help="eascomfy's part size in MiB")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    size = parse_size(args.size)
    rate = int(args.mbps * 1e6)
    work = Path(tempfile.mkdtemp(prefix="eascomfy-bench-pull-", dir=args.workdir))
    py = sys.executable
    server = subprocess.Popen([py, "-c", SERVER, str(size), str(rate), str(work / "sandbox"), BUCKET, REPO, PATH],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(server.stdout.readline())  # type: ignore[union-attr]
        from eascomfy.sandbox.credentials import SANDBOX_ACCESS_KEY_ID, SANDBOX_ACCESS_KEY_SECRET

        env = {**os.environ, "EASCOMFY_OSS_ENDPOINT": info["oss"], "EASCOMFY_HF_ENDPOINT": info["hub"],
               "ALIBABA_CLOUD_ACCESS_KEY_ID": SANDBOX_ACCESS_KEY_ID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SANDBOX_ACCESS_KEY_SECRET,
               "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true", "EASCOMFY_STATE_DIR": str(work / "state")}
        env.pop("EASCOMFY_OSS_ENDPOINTS", None)
        spec = work / "eascomfy.yaml"
        spec.write_text(f"name: comfy_bench\nregion: cn-hangzhou\nedition: api\nstorage:\n  oss: oss://{BUCKET}/pull/\n")

        label = f"{size / 2**20:,.0f} MiB at {args.mbps:g} MB/s per connection" if rate else f"{size / 2**20:,.0f} MiB, unthrottled"
        print(f"pull of {label}")
        print(f"{'path':<58} {'seconds':>8} {'MB/s':>8} {'RSS MB':>7} {'CPU ms/MiB':>11}")
        cmd = [py, "-m", "eascomfy", "models", "pull", f"hf://{REPO}/{PATH}", "-f", str(spec), "-o", "json",
               "--part-size", str(args.part_size), "--workers", str(2 * args.streams)]
        t_ours, rss_ours, out, cpu_ours = run_measured(cmd, env)
        result = json.loads(out)["data"]
        assert result["sources"][0]["sha256"] == info["sha256"] and result["files"][0]["size"] == size
        name = f"eascomfy models pull ({args.streams} streams a side, {args.part_size} MiB parts)"
        print(f"{name:<58} {t_ours:>8.2f} {size / 1e6 / t_ours:>8.1f} {rss_ours / 1e6:>7.1f} {1000 * cpu_ours / (size / 2**20):>11.2f}")
        t_transfer = result["files"][0]["seconds"]  # without the interpreter's start and the probe
        print(f"{'  of which the transfer (parts in, verified, completed)':<58} {t_transfer:>8.2f} {size / 1e6 / t_transfer:>8.1f}")

        url = f"{info['hub']}/{REPO}/resolve/main/{PATH}"
        t_script, rss_script, out, cpu_script = run_measured([py, "-c", SCRIPTED, url, str(work / "download.bin"), "scripted/m", BUCKET], env)
        phases = json.loads(out)
        print(f"{'requests to disk, then oss2.resumable_upload (defaults)':<58} {t_script:>8.2f} {size / 1e6 / t_script:>8.1f} "
              f"{rss_script / 1e6:>7.1f} {1000 * cpu_script / (size / 2**20):>11.2f}")
        for phase in ("download", "upload"):  # one connection each: what one stream of that side really gets
            print(f"{'  of which the ' + phase + ' (one connection)':<58} {phases[phase]:>8.2f} {size / 1e6 / phases[phase]:>8.1f}")

        if rate:
            # The slower side's bandwidth: streams x the slower side's one-connection rate, nominal
            # (the throttle's setting) and as measured above (the emulators' own work included).
            nominal = args.streams * rate
            measured = args.streams * size / max(phases.values())
            for what, slower in ((f"nominal {args.streams} x {args.mbps:g} MB/s", nominal),
                                 (f"measured {args.streams} x {measured / args.streams / 1e6:.2f} MB/s", measured)):
                ratio = size / t_ours / slower  # wall time, start-up included
                print(f"  eascomfy / the slower side's bandwidth ({what}): {ratio:.2f}x (target >= 0.9x) "
                      f"{'ok' if ratio >= 0.9 else 'MISSED'}; the transfer alone {size / t_transfer / slower:.2f}x")
        speedup = t_script / t_ours
        print(f"  eascomfy / download-then-upload: {speedup:.2f}x (target >= 2x) {'ok' if speedup >= 2 else 'MISSED'}")
        print(f"  eascomfy peak RSS: {rss_ours / 1e6:.1f} MB (target < 200 MB) {'ok' if rss_ours < 200e6 else 'MISSED'}")
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
