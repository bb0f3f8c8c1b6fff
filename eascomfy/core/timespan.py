"""Durations people type (``--since 10m``): ``90``, ``30s``, ``10m``, ``2h``, ``1d``, ``1h30m``."""

from __future__ import annotations

import re

from ..errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
LONGEST = 10 * 365 * 86400  # further back than any log is kept; a huge number overflows time_t


def parse_duration(text: str, param: str = "since") -> float:
    """Seconds in ``text``; a UsageError naming ``param`` when it is not a duration."""
    raw = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", raw):
        seconds = float(raw)
    else:
        parts = _PART.findall(raw)
        if not raw or "".join(n + u for n, u in parts) != raw:
            raise UsageError(f"not a duration: {text!r}", "write it like 30s, 10m, 2h, 1d or 1h30m", param=param)
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds > LONGEST:  # before any clock could count it (and before time_t overflows)
        raise UsageError(f"{text!r} is more than {LONGEST // (365 * 86400)} years", "write it like 30s, 10m, 2h, 1d or 1h30m",
                         param=param)
    return seconds
