"""Limits on what eascomfy asks of EAS (and of itself), checked before any request. Pure."""

from __future__ import annotations

import math

from ..errors import UsageError

MAX_SIGNED_URL_SECONDS = 43200  # EAS caps signed links at 12 hours


def check_expire(expire: int) -> None:
    """A signed link's validity in seconds: 1 to 12 hours."""
    if not 1 <= expire <= MAX_SIGNED_URL_SECONDS:
        raise UsageError(
            f"expected 1..{MAX_SIGNED_URL_SECONDS} seconds, got {expire}",
            "EAS signed links last at most 12 hours",
            param="expire",
        )


def check_timeout(timeout: float) -> None:
    """How long to wait for a service, in seconds: a finite number above 0. Checked before any
    call: a zero or negative wait would send the change, give up at once and roll it back."""
    if not (math.isfinite(timeout) and timeout > 0):
        raise UsageError(
            f"expected a number of seconds above 0, got {timeout:g}",
            "give how long to wait for the service, e.g. 1800",
            param="timeout",
        )
