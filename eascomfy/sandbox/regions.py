"""Regions, and how a client finds the sandbox's endpoint for each.

On the cloud the endpoint is the region: ``pai-eas.<region>.aliyuncs.com`` for the EAS OpenAPI
(CreateService carries no region) and ``oss-<region>.aliyuncs.com`` for OSS. The sandbox serves
each region on its own loopback port, so a client must map regions to endpoints. The contract:

- ``EASCOMFY_EAS_ENDPOINTS`` and ``EASCOMFY_OSS_ENDPOINTS``: comma-separated ``region=url`` pairs,
  e.g. ``cn-hangzhou=http://127.0.0.1:8001,cn-shanghai=http://127.0.0.1:8003``. A client working in
  region R uses R's URL; when the variable is set and R is not in it, the sandbox does not serve R
  and the client must refuse (never fall back to another region's endpoint: that files a
  cn-shanghai service in cn-hangzhou).
- ``EASCOMFY_EAS_ENDPOINT`` and ``EASCOMFY_OSS_ENDPOINT`` (one URL each, as before): the default
  region's endpoint, for clients that know one region only. The map wins where both are set.

``format_endpoints``/``parse_endpoints`` write and read the map; ``SandboxStack.env()`` and
``eascomfy sandbox`` print both forms.
"""

from __future__ import annotations

from typing import Iterable

# The regions the EAS SDK maps to an endpoint (alibabacloud_eas20210701 7.0.0, client.py
# Client.__init__ ``_endpoint_map``): what ``eascomfy sandbox`` serves unless told otherwise.
EAS_REGIONS: tuple[str, ...] = (
    "cn-beijing", "cn-zhangjiakou", "cn-hangzhou", "cn-shanghai", "cn-shenzhen", "cn-hongkong",
    "ap-southeast-1", "ap-southeast-5", "us-east-1", "us-west-1", "eu-central-1", "ap-south-1",
    "cn-shanghai-finance-1", "cn-north-2-gov-1", "cn-chengdu",
)
DEFAULT_REGION = "cn-hangzhou"
EAS_ENDPOINTS_ENV = "EASCOMFY_EAS_ENDPOINTS"
OSS_ENDPOINTS_ENV = "EASCOMFY_OSS_ENDPOINTS"


def served(default: str, regions: Iterable[str] | None) -> tuple[str, ...]:
    """The default region first, then the others asked for, each once."""
    return tuple(dict.fromkeys([default, *(regions or ())]))


def format_endpoints(urls: dict[str, str]) -> str:
    """``{"cn-hangzhou": "http://127.0.0.1:1"}`` -> ``cn-hangzhou=http://127.0.0.1:1``."""
    return ",".join(f"{region}={url}" for region, url in urls.items())


def parse_endpoints(text: str) -> dict[str, str]:
    """The inverse of ``format_endpoints``; ``ValueError`` on a pair without ``=``."""
    out: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        region, sep, url = pair.partition("=")
        if not sep or not region.strip() or not url.strip():
            raise ValueError(f"expected region=url, got {pair!r}")
        out[region.strip()] = url.strip()
    return out
