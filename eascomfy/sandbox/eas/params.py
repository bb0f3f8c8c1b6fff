"""The parts of an OpenAPI call: query parameters (integers, booleans, times, JSON), paging, the
JSON body (``Call``), and the JSON form of a service config on the wire.
"""

from __future__ import annotations

import calendar
import json
import math
import time
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import invalid


def int_param(query: Mapping[str, str], key: str, default: int, minimum: int = 1) -> int:
    raw = query.get(key)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(f"{key} must be an integer") from None
    if value < minimum:
        raise invalid(f"{key} must be >= {minimum}")
    return value


def bool_param(query: Mapping[str, str], key: str) -> bool:
    raw = query.get(key, "false").lower()
    if raw not in ("true", "false"):
        raise invalid(f"{key} must be true or false")
    return raw == "true"


def time_param(query: Mapping[str, str], key: str) -> float | None:
    raw = query.get(key)
    if not raw:
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return float(calendar.timegm(time.strptime(raw, fmt)))
        except ValueError:
            continue
    raise invalid(f"{key} must be 'yyyy-MM-dd HH:mm:ss' (UTC)")


def json_param(query: Mapping[str, str], key: str, kind: type) -> Any:
    raw = query.get(key)
    if not raw:
        return kind()
    try:
        value = json.loads(raw)
    except ValueError:
        raise invalid(f"{key} must be a JSON {kind.__name__}") from None
    if not isinstance(value, kind):
        raise invalid(f"{key} must be a JSON {kind.__name__}")
    return value


def page_of(items: list[Any], number: int, size: int) -> list[Any]:
    return items[(number - 1) * size : number * size]


def numbered_page(q: Mapping[str, str], items: list[Any], key: str, default_size: int) -> dict[str, Any]:
    """The ``PageNum``/``PageSize`` answer DescribeServiceEvent and DescribeServiceLog share:
    ``PageNum``, ``TotalCount``, ``TotalPageNum`` and the page under ``key``."""
    number, size = int_param(q, "PageNum", 1), int_param(q, "PageSize", default_size)
    return {"PageNum": number, "TotalCount": len(items), "TotalPageNum": math.ceil(len(items) / size),
            key: page_of(items, number, size)}


def config_json(config: dict[str, Any]) -> str:
    return json.dumps(config, ensure_ascii=False, sort_keys=True)


@dataclass
class Call:
    """One OpenAPI call after authentication: decoded query, raw body, addressed service."""

    query: dict[str, str]
    body: bytes
    service: str = ""
    instance: str = ""  # .../instances/{InstanceName}/<sub>

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body or b"{}")
        except ValueError:
            raise invalid("The request body is not valid JSON") from None
        if not isinstance(value, dict):
            raise invalid("The request body must be a JSON object")
        return value
