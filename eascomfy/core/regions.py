"""EAS regions: the shipped table (``eascomfy/data/eas-regions.json``, with its sources) checked
offline, and the answer of DescribeRegions judged when a cloud command runs. Pure.

``region_check: false`` in the spec skips the table, for a region newer than it; the cloud
commands then ask EAS (``control.regions``), so a typo still cannot reach a write call.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

from .validate import Violation, did_you_mean


@functools.lru_cache(maxsize=None)
def known_regions() -> dict[str, str]:
    """Region id -> name, from the shipped table."""
    text = resources.files("eascomfy").joinpath("data", "eas-regions.json").read_text(encoding="utf-8")
    return dict(json.loads(text)["regions"])


def region_problem(region: str, known: dict[str, str] | list[str] | None = None, *, online: bool = False) -> Violation | None:
    """A problem when ``region`` is not among ``known`` (default: the shipped table)."""
    choices = list(known if known is not None else known_regions())
    if region in choices:
        return None
    if online:
        message = f"EAS does not offer region {region!r} (DescribeRegions lists {', '.join(sorted(choices)) or 'none'})"
        return Violation(("region",), message, did_you_mean(region, choices))
    newer = "a region newer than eascomfy's table? set region_check: false"
    guess = did_you_mean(region, choices)
    hint = f"{guess} {newer}" if guess else f"known: {', '.join(sorted(choices))}; {newer}"
    return Violation(("region",), f"{region!r} is not an EAS region eascomfy knows", hint)
