"""Instance logs: the last lines of each instance (newest last), and following them.

DescribeServiceLog answers plain lines, oldest first on each page, with ``TotalCount`` for the
query (docs/unverified.md): the newest lines are on the last page. There is no streaming call,
so ``follow`` asks again every ``interval`` seconds with the same ``StartTime`` and yields the
lines past the count it has seen. Each instance is read on its own (the lines carry no instance
name); with several instances each line is prefixed with its instance's name.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator

from ..adapters.eas import EasClient
from ..adapters.eas_ops import LOG_PAGE, EasOps
from ..redact import redact

DEFAULT_LINES = 100


@dataclass(frozen=True)
class LogLine:
    instance: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LogQuery:
    """What to read: one instance or all, since when (epoch seconds), a word, the previous container."""

    instance: str | None = None
    since: float | None = None
    grep: str | None = None
    previous: bool = False
    lines: int = DEFAULT_LINES  # without ``since``: the last this many lines per instance


def _targets(ops: EasOps, name: str, query: LogQuery) -> list[str]:
    if query.instance:
        return [query.instance]
    return [i.name for i in ops.instances(name, last_reasons=False)]


def _read(ops: EasOps, name: str, instance: str, query: LogQuery, start: int) -> tuple[list[str], int]:
    """The lines of ``instance`` from index ``start`` (or, with ``start < 0``, the last
    ``-start``) and the total the server counts."""
    kwargs = dict(instance=instance, since=query.since, keyword=query.grep, previous=query.previous)
    first = ops.logs(name, page=1, **kwargs)  # type: ignore[arg-type]
    total = first.total
    begin = max(0, total + start) if start < 0 else start
    if begin >= total:
        return [], total
    lines: list[str] = []
    page = begin // LOG_PAGE + 1
    while page <= max(first.pages, 1):
        got = first if page == 1 else ops.logs(name, page=page, **kwargs)  # type: ignore[arg-type]
        offset = (page - 1) * LOG_PAGE
        lines += got.lines[max(0, begin - offset):]
        page += 1
    return [line for line in lines if not query.grep or query.grep in line], total


def read_logs(client: EasClient, name: str, query: LogQuery) -> list[LogLine]:
    """The lines of each instance (all of them since ``query.since``, else the last
    ``query.lines``), instance by instance, newest last."""
    ops = EasOps(client)
    out: list[LogLine] = []
    for instance in _targets(ops, name, query):
        lines, _ = _read(ops, name, instance, query, 0 if query.since is not None else -query.lines)
        out += [LogLine(instance, redact(line)) for line in lines]
    return out


def follow_logs(
    client: EasClient,
    name: str,
    query: LogQuery,
    *,
    interval: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[list[LogLine]]:
    """Batches of lines: first what ``read_logs`` gives, then each poll's new lines (also of
    instances that appear later, from their first line), until the caller stops (Ctrl-C in the
    CLI). A count that shrinks (the server dropped old lines) is taken as the new start."""
    ops = EasOps(client)
    seen: dict[str, int] = {}
    first = True
    while True:
        batch: list[LogLine] = []
        for instance in _targets(ops, name, query):
            if instance in seen:
                start = seen[instance]
            else:
                start = -query.lines if first and query.since is None else 0
            lines, total = _read(ops, name, instance, query, start)
            seen[instance] = total
            batch += [LogLine(instance, redact(line)) for line in lines]
        first = False
        yield batch
        sleep(interval)
