"""Limits EAS sets on what eascomfy asks of it, checked before any request. Pure."""

from __future__ import annotations

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
