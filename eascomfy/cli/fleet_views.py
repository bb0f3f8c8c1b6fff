"""The fleet's summary: one table (service, region, action, result, duration), a count, and one
line per failed service. Plain text, so a CI log shows it as it is."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..redact import redact

if TYPE_CHECKING:
    from ..control.fleet import FleetRun

HEADER = ("SERVICE", "REGION", "ACTION", "RESULT", "DURATION")


def fleet_text(fleet: "FleetRun", notes: "list[str] | None" = None) -> str:
    rows = [HEADER] + [(o.service, o.region, o.action or "-", o.result, f"{o.seconds:.1f}s") for o in fleet.outcomes]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    counts = ", ".join(f"{n} {result}" for result, n in sorted(fleet.counts().items()))
    lines.append(f"{len(fleet.outcomes)} service{'s' if len(fleet.outcomes) != 1 else ''}: {counts}")
    lines += [f"{o.service} ({o.region}): error: {o.error}" for o in fleet.outcomes if o.error is not None]
    lines += notes or []
    return redact("\n".join(lines))  # errors are printed here, not through Out's stderr (which redacts)
