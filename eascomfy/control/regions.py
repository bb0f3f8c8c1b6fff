"""The online check of a spec's region: with ``region_check: false`` (a region newer than
eascomfy's table, ``core.regions``), ask EAS's DescribeRegions before the first read of the
service, so a region EAS does not offer is refused as an invalid spec before any write. A region
in the table needs no call.
"""

from __future__ import annotations

from ..adapters.eas import EasClient
from ..core.regions import known_regions, region_problem
from ..core.spec import Spec
from ..core.validate import raise_first


def check_region(spec: Spec, client: EasClient) -> None:
    """``SpecError`` (at the spec's region line) unless the table or EAS knows ``spec.region``."""
    if spec.region in known_regions():
        return
    problem = region_problem(spec.region, client.regions(), online=True)
    if problem is not None:
        raise_first([problem], spec.positions, spec.file)
