"""The two commands that bring their own cloud: ``sandbox`` (the emulators, until interrupted) and
``demo`` (the whole loop against an in-process sandbox, ``eascomfy.demo``). The only CLI module
that may import ``eascomfy.sandbox``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .options import OutputOpt, session


def sandbox(
    state: Annotated[Optional[Path], typer.Option("--state", help="Directory for the sandbox's state.")] = None,
    port: Annotated[int, typer.Option("--port", help="EAS OpenAPI port on 127.0.0.1 (0: a free one).")] = 0,
    oss_port: Annotated[int, typer.Option("--oss-port", help="OSS port on 127.0.0.1 (0: a free one).")] = 0,
) -> None:
    """Run the sandbox (EAS OpenAPI + OSS emulators) until interrupted; first prints `export` lines to eval."""
    with session("sandbox", None) as out:
        import signal
        import threading

        from ..sandbox.stack import SandboxStack

        stop_event = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop_event.set())
        with SandboxStack(state, eas_port=port, oss_port=oss_port) as stack:
            sys.stdout.write("".join(f"export {k}={v}\n" for k, v in stack.env().items()))
            sys.stdout.flush()
            out.info(f"EAS sandbox on {stack.eas.url}, OSS on {stack.oss.url} (state in {stack.state_dir}); Ctrl-C to stop")
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
