"""Operating a live service: ``logs`` (instance logs, following them until Ctrl-C). Each command
parses its options, builds one SpecRef, calls the library (``control.logs``) and prints through
``out`` and ``views``.

Cheap to import: typer, the options and the views only.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .control_cmds import _target
from .options import DEFAULT_SPEC, EnvOpt, FileOpt, OutputOpt, RegionOpt, ServiceOpt, SpecRef, session
from .views import log_text


def logs_cmd(
    file: FileOpt = DEFAULT_SPEC,
    env: EnvOpt = None,
    service: ServiceOpt = None,
    region: RegionOpt = None,
    instance: Annotated[Optional[str], typer.Option("--instance", help="Only this instance (see `eascomfy status`).", metavar="NAME")] = None,
    since: Annotated[Optional[str], typer.Option("--since", help="Lines written in the last DURATION (30s, 10m, 2h, 1d).", metavar="DURATION")] = None,
    follow: Annotated[bool, typer.Option("--follow", help="Keep printing new lines until Ctrl-C.")] = False,
    grep: Annotated[Optional[str], typer.Option("--grep", help="Only lines that contain WORD.", metavar="WORD")] = None,
    previous: Annotated[bool, typer.Option("--previous", help="The log of the container before its last restart.")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", help="Without --since: the last N lines of each instance.", metavar="N")] = 100,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between polls with --follow.", hidden=True)] = 2.0,
    output: OutputOpt = None,
) -> None:
    """Instance logs, newest last; with --follow, new lines as they come until Ctrl-C."""
    with session("logs", output) as out:
        import time

        from ..control.deploy import connect
        from ..control.logs import LogQuery, follow_logs, read_logs
        from ..core.timespan import parse_duration

        start = time.time() - parse_duration(since) if since else None
        name, region_id = _target(SpecRef(out, file, env), service, region)
        query = LogQuery(instance=instance, since=start, grep=grep, previous=previous, lines=lines)
        client = connect(region_id, out)
        if not follow:
            found = read_logs(client, name, query)
            prefix = not instance and len({l.instance for l in found}) > 1
            out.emit({"service": name, "lines": [l.to_dict() for l in found]}, log_text(found, prefix) or None)
            return
        collected: list = []
        speakers: set[str] = set()
        try:
            for batch in follow_logs(client, name, query, interval=interval):
                collected += batch
                speakers |= {l.instance for l in batch}
                if batch:
                    out.emit(None, log_text(batch, not instance and len(speakers) > 1))
        except KeyboardInterrupt:  # Ctrl-C is how following ends
            out.info("stopped following")
        out.emit({"service": name, "lines": [l.to_dict() for l in collected]})


def register(app: typer.Typer) -> None:
    """Attach the operations commands to the app."""
    app.command("logs")(logs_cmd)
