"""The spec's ``network:``: the service's instances in the user's VPC, as the EAS service JSON's
``cloud.networking {vpc_id, vswitch_id, security_group_id}``.

Sources: https://www.alibabacloud.com/help/en/pai/user-guide/configure-network-connectivity
(the three settings, and that internet access comes from a NAT gateway in that VPC: EAS has no
internet egress by default, and the JSON has no internet switch); alipai
``pai/schema/service_schema.py`` and the official Terraform module
``terraform-alicloud-pai-eas-stable-diffusion`` (the key names); a vSwitch list across zones is
comma-separated (aliyun/alibabacloud-aiops-skills ``network-config.md``, docs/unverified.md).
The id formats and "all three together" are checked by the schema.
"""

from __future__ import annotations

from typing import Any

from . import wire


def render(data: dict[str, Any]) -> dict[str, Any]:
    """``{"cloud": {"networking": ...}}`` for the spec's ``network``, or nothing."""
    network = data.get("network")
    if not network:
        return {}
    vswitch = network["vswitch_id"]
    return {"cloud": {wire.NETWORKING_KEY: {
        "vpc_id": network["vpc_id"],
        "vswitch_id": ",".join(vswitch) if isinstance(vswitch, list) else vswitch,
        "security_group_id": network["security_group_id"],
    }}}


def read_back(config: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """``network:`` from a live config (for ``import``), or None, and what could not be read."""
    cloud = config.get("cloud")
    block = cloud.get(wire.NETWORKING_KEY) if isinstance(cloud, dict) else None
    if block is None:
        return None, []
    keys = {"vpc_id", "vswitch_id", "security_group_id"}
    if not isinstance(block, dict) or set(block) != keys or not all(isinstance(block[k], str) for k in keys):
        return None, [f"cloud.{wire.NETWORKING_KEY}: not the three ids eascomfy models; kept in overrides"]
    vswitch = block["vswitch_id"].split(",")
    return {"vpc_id": block["vpc_id"], "vswitch_id": vswitch if len(vswitch) > 1 else vswitch[0],
            "security_group_id": block["security_group_id"]}, []
