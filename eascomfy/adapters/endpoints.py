"""Which endpoint serves a region, when the environment says (a sandbox, a proxy, a private link).

On the cloud the endpoint is the region: ``pai-eas.<region>.aliyuncs.com`` for EAS (CreateService
carries no region, so a create sent to cn-hangzhou's endpoint makes a cn-hangzhou service) and
``oss-<region>.aliyuncs.com`` for OSS. So a client never uses one region's endpoint for another:

- ``EASCOMFY_EAS_ENDPOINTS`` / ``EASCOMFY_OSS_ENDPOINTS``: ``region=url`` pairs joined by commas,
  e.g. ``cn-hangzhou=http://127.0.0.1:8001,cn-shanghai=http://127.0.0.1:8003`` (what ``eascomfy
  sandbox`` prints). Working in region R, R's URL is used; a region the map lacks is refused;
- ``EASCOMFY_EAS_ENDPOINT`` / ``EASCOMFY_OSS_ENDPOINT``: one URL, used for whatever region (as
  before the maps; the map wins when both are set);
- neither: None, and the caller uses the region's public endpoint.
"""

from __future__ import annotations

import os

from ..errors import UsageError

EAS_ENDPOINTS_ENV, EAS_ENDPOINT_ENV = "EASCOMFY_EAS_ENDPOINTS", "EASCOMFY_EAS_ENDPOINT"
OSS_ENDPOINTS_ENV, OSS_ENDPOINT_ENV = "EASCOMFY_OSS_ENDPOINTS", "EASCOMFY_OSS_ENDPOINT"


def parse_endpoints(text: str, variable: str) -> dict[str, str]:
    """``cn-hangzhou=http://127.0.0.1:1,cn-shanghai=...`` -> {region: url}; a pair without a
    region or a URL is refused, naming ``variable``."""
    urls: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        region, sep, url = pair.partition("=")
        if not sep or not region.strip() or not url.strip():
            raise UsageError(f"{variable}: expected region=url pairs joined by commas, got {pair!r}",
                             "e.g. cn-hangzhou=http://127.0.0.1:8001,cn-shanghai=http://127.0.0.1:8003")
        urls[region.strip()] = url.strip()
    return urls


def endpoint_from_env(region: str, map_variable: str, single_variable: str) -> str | None:
    """The URL the environment gives for ``region`` (see the module docstring), or None."""
    raw = os.environ.get(map_variable, "").strip()
    if raw:
        urls = parse_endpoints(raw, map_variable)
        if region not in urls:
            served = ", ".join(urls) or "none"
            raise UsageError(
                f"no endpoint for region {region}: {map_variable} names {served}",
                f"add {region}=<url> to {map_variable} (a sandbox serves the regions it was started with), "
                "or unset it to use the cloud's own endpoints",
            )
        return urls[region]
    return os.environ.get(single_variable, "").strip() or None
