"""The two commands that bring their own cloud: ``sandbox`` (the emulators, until interrupted) and
``demo`` (the whole loop against an in-process sandbox, ``eascomfy.demo``). The only CLI module
that may import ``eascomfy.sandbox``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import OutputOpt, session


def sandbox(
    state: Annotated[Optional[Path], typer.Option("--state", help="Directory for the sandbox's state.")] = None,
    port: Annotated[int, typer.Option("--port", help="EAS OpenAPI port of the default region on 127.0.0.1 (0: a free one).")] = 0,
    oss_port: Annotated[int, typer.Option("--oss-port", help="OSS port of the default region on 127.0.0.1 (0: a free one).")] = 0,
    region: Annotated[str, typer.Option("--region", help="The default region (its endpoints are EASCOMFY_EAS_ENDPOINT and EASCOMFY_OSS_ENDPOINT).")] = "cn-hangzhou",
    regions: Annotated[Optional[str], typer.Option("--regions", help="Comma-separated regions to serve, each on its own ports (default: every EAS region).")] = None,
) -> None:
    """Run the sandbox (EAS OpenAPI + OSS emulators, every region on its own ports) until
    interrupted; first prints `export` lines to eval: the default region's endpoints and
    EASCOMFY_EAS_ENDPOINTS / EASCOMFY_OSS_ENDPOINTS (region=url,...) for every region."""
    with session("sandbox", None) as out:
        import signal
        import threading

        from ..sandbox.regions import EAS_REGIONS
        from ..sandbox.stack import SandboxStack

        from ..errors import UsageError
        from ..local.files import folder_problem

        if state is not None and (problem := folder_problem(state)) is not None:
            raise UsageError(problem, "give a folder for the sandbox's state", param="state")
        for flag, value in (("port", port), ("oss_port", oss_port)):
            if not 0 <= value <= 65535:
                raise UsageError(f"{value} is not a TCP port (0-65535; 0 picks a free one)", param=flag)
        served = [r.strip() for r in regions.split(",") if r.strip()] if regions is not None else list(EAS_REGIONS)
        stop_event = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop_event.set())
        with SandboxStack(state, eas_port=port, oss_port=oss_port, region=region, regions=served) as stack:
            sys.stdout.write("".join(f"export {k}={v}\n" for k, v in stack.env().items()))
            sys.stdout.flush()
            out.info(f"EAS sandbox on {stack.eas.url}, OSS on {stack.oss.url} for {region}, and "
                     f"{len(stack.regions) - 1} more regions (state in {stack.state_dir}); Ctrl-C to stop")
            try:
                while not stop_event.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
            out.info("sandbox stopped")


def demo(
    directory: Annotated[Optional[Path], typer.Option("--dir", help="Where to write the demo's eascomfy.yaml.")] = None,
    output: OutputOpt = None,
) -> None:
    """Run the whole loop against an in-process sandbox: init, storage init, models and nodes push,
    plan, deploy, update-image, check, submit, results (outputs pulled from the mount), a synchronous
    run on a Standard-edition service, signed-url, status. Costs nothing; takes a few seconds."""
    with session("demo", output) as out:
        from ..demo import run_demo
        from .views import status_text

        result = run_demo(out, directory)
        for line in status_text(result.live, result.region, result.events).splitlines():
            out.info(f"  {line}")
        out.emit_secret(result.data, "signed_url", result.signed_url)


def register(app: typer.Typer) -> None:
    app.command("sandbox")(sandbox)
    app.command("demo")(demo)
