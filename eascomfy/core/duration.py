"""Durations as people write them, parsed in one place: ``30m``, ``10s``, ``2h``, ``1h30m``,
``500ms``, ``1d``, or a bare number of seconds (``1.5``). Zero, negative and absurd values are
refused as usage errors, before anything is sent.
"""

from __future__ import annotations

import math
import re

from ..errors import UsageError

UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
LONGEST = 366 * 86400.0  # a year: anything longer is a typo
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h|d)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
EXAMPLES = "e.g. 30s, 10m, 2h, 1h30m, or seconds (1.5)"


def parse_duration(value: str | float | int, *, param: str) -> float:
    """Seconds, more than zero, from ``value``; a ``UsageError`` about ``param`` otherwise."""
    if isinstance(value, bool):
        raise UsageError(f"{value!r} is not a duration", EXAMPLES, param=param)
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = value.strip().lower()
        negative = text.startswith("-")
        text = text[1:] if negative else text
        if negative and text and (_NUMBER.fullmatch(text) or not _PART.sub("", text)):
            raise UsageError(f"must be more than 0 (got {value!r})", EXAMPLES, param=param)
        if _NUMBER.fullmatch(text):
            seconds = float(text)
        elif text and not _PART.sub("", text):  # only number+unit parts: 1h30m
            seconds = sum(float(n) * UNITS[u] for n, u in _PART.findall(text))
        else:
            raise UsageError(f"{value!r} is not a duration", EXAMPLES, param=param)
    if math.isnan(seconds) or seconds <= 0:
        raise UsageError(f"must be more than 0 (got {value!r})", EXAMPLES, param=param)
    if seconds > LONGEST:
        raise UsageError(f"{value!r} is more than a year", EXAMPLES, param=param)
    return seconds


def format_duration(seconds: float) -> str:
    """``90`` -> ``1m30s``; under a minute with its decimals (``0.5s``)."""
    if seconds < 60:
        return f"{seconds:g}s"
    whole = int(round(seconds))
    parts = [(whole // 86400, "d"), (whole % 86400 // 3600, "h"), (whole % 3600 // 60, "m"), (whole % 60, "s")]
    return "".join(f"{n}{u}" for n, u in parts if n) or "0s"
