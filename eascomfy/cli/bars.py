"""Transfer progress bars on a terminal (rich, imported only when bars are drawn).

Not to be confused with ``ports.Progress`` (messages about work under way): these bars count
bytes, fed by the upload engine's ``progress``/``on_file`` callbacks.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..ports import Progress
    from .output import Out


class TransferBars:
    """Progress bars on a terminal: the current file and the total, with throughput and ETA.
    Silent in pipelines, with --output json and with --quiet."""

    def __init__(self, out: "Out | Progress", total: int, label: str) -> None:
        from .output import Out

        # Only the CLI's own output draws bars: a fleet's services report through a plain Progress.
        self.enabled = isinstance(out, Out) and sys.stderr.isatty() and not out.json and not out.quiet
        self.total, self.label = total, label
        self._bar: Any = None
        self._total_task: Any = None
        self._file_task: Any = None

    def __enter__(self) -> "TransferBars":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress as Bar, TextColumn, TimeRemainingColumn, TransferSpeedColumn

            self._bar = Bar(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                console=Console(stderr=True), transient=True,
            )
            self._bar.start()
            self._total_task = self._bar.add_task(f"{self.label} (total)", total=self.total)
        return self

    def file(self, path: Path, size: int) -> None:
        if self._bar is not None:
            if self._file_task is not None:
                self._bar.remove_task(self._file_task)
            self._file_task = self._bar.add_task(path.name, total=size)

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._total_task, n)
            if self._file_task is not None:
                self._bar.advance(self._file_task, n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
