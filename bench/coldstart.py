"""Cold start of `eascomfy --help` and `eascomfy render` against a bare typer hello-world.

Measured side by side in one run, interleaved, median of N runs each; prints the ratios.
Targets: --help <= 1.1x, render <= 1.6x the hello-world's --help.

    python bench/coldstart.py [--runs 25]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HELLO = '''
import typer

app = typer.Typer()


@app.command()
def hello(name: str = "world") -> None:
    """Say hello."""
    typer.echo(f"hello {name}")


app()
'''

SPEC = """\
name: comfy_bench
region: cn-hangzhou
edition: api
image: {version: "1.9"}
storage: {oss: "oss://bench-bucket/comfyui/"}
resources: {fallback_instance_types: [ecs.gn6i-c16g1.4xlarge]}
wheels: [a-1.0-py3-none-any.whl]
environments:
  prod: {resources: {instances: 2}}
"""


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.decode()[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=25)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        hello = Path(tmp) / "hello.py"
        hello.write_text(HELLO)
        spec = Path(tmp) / "eascomfy.yaml"
        spec.write_text(SPEC)
        py = sys.executable
        commands = {
            "typer hello --help": [py, str(hello), "--help"],
            "eascomfy --help": [py, "-m", "eascomfy", "--help"],
            "eascomfy render": [py, "-m", "eascomfy", "render", "-f", str(spec), "--env", "prod"],
        }
        for cmd in commands.values():  # warm the page cache and .pyc files
            timed(cmd)
        samples: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(args.runs):
            for name, cmd in commands.items():
                samples[name].append(timed(cmd))
    base = statistics.median(samples["typer hello --help"])
    print(f"{'command':<22} {'median ms':>10} {'ratio':>7} {'target':>7}")
    targets = {"typer hello --help": None, "eascomfy --help": 1.1, "eascomfy render": 1.6}
    ok = True
    for name, values in samples.items():
        med = statistics.median(values)
        ratio = med / base
        target = targets[name]
        mark = "" if target is None else ("ok" if ratio <= target else "MISSED")
        ok = ok and mark != "MISSED"
        print(f"{name:<22} {med * 1000:>10.1f} {ratio:>7.2f} {'' if target is None else f'<= {target}':>7} {mark}")
    print(f"runs: {args.runs} each, interleaved; python {sys.version.split()[0]}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
