"""The EAS OpenAPI's capacity reads, per region (the endpoint is the region; no ClusterId):

- DescribeMachineSpec: GET ``/api/v2/public/instance_types`` (SDK 7.0.0
  ``alibabacloud_eas20210701/client.py`` ``describe_machine_spec_with_options``); the deprecated
  ``InstanceTypes`` query (comma-joined) filters when given. Answers ``{InstanceMetas, Types}``
  with ``models.DescribeMachineSpecResponseBodyInstanceMetas``'s keys: ``InstanceType``, ``CPU``,
  ``Memory`` (GB), ``GPU`` (absent on CPU types), ``GPUAmount``, ``GPUMemory`` (GB),
  ``IsAvailable``, ``StockStatus`` (``WithStock`` | ``ClosedWithStock`` | ``NoStock``),
  ``SpotDiscount`` / ``NonProtectSpotDiscount`` (absent when the type has no spot), ``Vendor``;
  and ``Types``: ``{CPU, Memory: [int]}`` (``DescribeMachineSpecResponseBodyTypes``). No price:
  the API has none (eas-operations.md section 5).
- DescribeSpotDiscountHistory: GET ``/api/v2/public/spot_discount``
  (``describe_spot_discount_history_with_options``); query ``InstanceType`` (required, SDK
  docstring) and ``IsProtect``; answers ``{SpotDiscounts: [{InstanceType, ZoneId, SpotDiscount
  (a string, e.g. "0.1"), Timestamp (ISO UTC)}]}``
  (``DescribeSpotDiscountHistoryResponseBodySpotDiscounts``).

Which types a region offers, their stock and their discounts are the sandbox's own data; a test
sets them per region and type (``Capacity.set``). What EAS answers for an unknown type in the
spot history (an empty list here) is unverified (docs/unverified.md).
"""

from __future__ import annotations

import time
from typing import Any, Callable

from .errors import EasError
from .params import Call, bool_param

MACHINE_SPEC_PATH = "/api/v2/public/instance_types"
SPOT_HISTORY_PATH = "/api/v2/public/spot_discount"
STOCK_STATUSES = ("WithStock", "ClosedWithStock", "NoStock")
HISTORY_HOURS = 3  # entries per zone in a spot history: one an hour, newest last

# The types the sandbox offers: name -> (CPU, Memory GB, GPU model, GPU count, GPU memory GB,
# vendor). The names are the vendor guide's and the reference's ComfyUI types; the sizes follow the
# names (ml.gu7i.c16m60.1-gu30: 16 cores, 60 GB, one GU30).
CATALOGUE: dict[str, tuple[int, float, str | None, int, float, str]] = {
    "ml.gu7i.c8m30.1-gu30": (8, 30.0, "GU30", 1, 24.0, "ECS"),
    "ml.gu7i.c16m60.1-gu30": (16, 60.0, "GU30", 1, 24.0, "ECS"),
    "ml.gu7i.c32m188.1-gu30": (32, 188.0, "GU30", 1, 24.0, "ECS"),
    "ml.gu7i.c64m376.2-gu30": (64, 376.0, "GU30", 2, 48.0, "ECS"),
    "ecs.gn6i-c4g1.xlarge": (4, 15.0, "T4", 1, 16.0, "ECS"),
    "ecs.gn6i-c16g1.4xlarge": (16, 62.0, "T4", 1, 16.0, "ECS"),
    "ecs.gn7i-c16g1.4xlarge": (16, 60.0, "A10", 1, 24.0, "ECS"),
    "ecs.c7.2xlarge": (8, 16.0, None, 0, 0.0, "ECS"),
}
# The sandbox's spot discounts (1-hour protection, none): made-up data in the documented form.
DEFAULT_SPOT = {"ml.gu7i.c16m60.1-gu30": (0.3, 0.2), "ecs.gn6i-c16g1.4xlarge": (0.25, 0.15)}


class Capacity:
    """One region's instance types: what each is, its stock and its spot discounts."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.metas: dict[str, dict[str, Any]] = {name: self._meta(name, *row) for name, row in CATALOGUE.items()}

    @staticmethod
    def _meta(name: str, cpu: int, memory: float, gpu: str | None, gpus: int, gpu_memory: float,
              vendor: str) -> dict[str, Any]:
        meta: dict[str, Any] = {"InstanceType": name, "CPU": cpu, "Memory": memory, "GPUAmount": gpus,
                                "GPUMemory": gpu_memory, "IsAvailable": True, "StockStatus": "WithStock",
                                "Vendor": vendor}
        if gpu:
            meta["GPU"] = gpu
        if name in DEFAULT_SPOT:
            meta["SpotDiscount"], meta["NonProtectSpotDiscount"] = DEFAULT_SPOT[name]
        return meta

    def set(self, instance_type: str, *, stock: str | None = None, available: bool | None = None,
            spot: float | None = None, offered: bool = True) -> None:
        """A test hook: change one type's stock, availability or spot discount, or stop offering it."""
        if not offered:
            self.metas.pop(instance_type, None)
            return
        meta = self.metas.setdefault(instance_type, self._meta(instance_type, 8, 32.0, None, 0, 0.0, "ECS"))
        if stock is not None:
            assert stock in STOCK_STATUSES, stock
            meta["StockStatus"] = stock
        if available is not None:
            meta["IsAvailable"] = available
        if spot is not None:
            meta["SpotDiscount"] = spot

    def routes(self) -> dict[tuple[str, str], Callable[[Call], dict[str, Any]]]:
        return {("GET", MACHINE_SPEC_PATH): self.machine_spec, ("GET", SPOT_HISTORY_PATH): self.spot_history}

    def machine_spec(self, call: Call) -> dict[str, Any]:
        wanted = [t for t in call.query.get("InstanceTypes", "").split(",") if t]
        metas = [dict(m) for name, m in sorted(self.metas.items()) if not wanted or name in wanted]
        sizes: dict[int, set[int]] = {}
        for m in metas:
            sizes.setdefault(int(m["CPU"]), set()).add(int(m["Memory"]))
        return {"InstanceMetas": metas,
                "Types": [{"CPU": cpu, "Memory": sorted(mem)} for cpu, mem in sorted(sizes.items())]}

    def spot_history(self, call: Call) -> dict[str, Any]:
        name = call.query.get("InstanceType")
        if not name:  # required (SDK docstring); the code EAS answers with is unverified
            raise EasError(400, "MissingParameter", "InstanceType is required")
        meta = self.metas.get(name) or {}
        key = "SpotDiscount" if bool_param(call.query, "IsProtect") else "NonProtectSpotDiscount"
        if key not in meta:
            return {"SpotDiscounts": []}
        now = int(time.time()) // 3600 * 3600
        return {"SpotDiscounts": [
            {"InstanceType": name, "ZoneId": f"{self.region}-{zone}", "SpotDiscount": str(meta[key]),
             "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600 * ago))}
            for zone in ("i", "j") for ago in range(HISTORY_HOURS - 1, -1, -1)
        ]}
