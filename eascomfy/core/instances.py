"""What an instance type name tells about its GPUs.

PAI's ``ml.*`` names carry the GPU count (``ml.gu7i.c16m60.1-gu30``: one GU30). ECS GPU types do
not, so a small table of the common ComfyUI ones stands in (from Alibaba Cloud's instance family
pages; unverified entries are listed in docs/unverified.md). Unknown types return None: no guess.
"""

from __future__ import annotations

import re

_ML = re.compile(r"^ml\.[a-z0-9]+\.c[0-9]+m[0-9]+\.([0-9]+)-[a-z0-9]+\Z", re.ASCII)

_ECS_GPUS = {
    "ecs.gn6i-c4g1.xlarge": 1,
    "ecs.gn6i-c8g1.2xlarge": 1,
    "ecs.gn6i-c16g1.4xlarge": 1,
    "ecs.gn6i-c24g1.6xlarge": 1,
    "ecs.gn6i-c40g1.10xlarge": 1,
    "ecs.gn6i-c24g1.12xlarge": 2,
    "ecs.gn6i-c48g1.24xlarge": 4,
    "ecs.gn7i-c8g1.2xlarge": 1,
    "ecs.gn7i-c16g1.4xlarge": 1,
    "ecs.gn7i-c32g1.8xlarge": 1,
    "ecs.gn7i-c48g1.12xlarge": 1,
    "ecs.gn7i-c56g1.14xlarge": 1,
    "ecs.gn7i-c32g1.16xlarge": 2,
    "ecs.gn7i-c32g1.32xlarge": 4,
    "ecs.gn7i-2x.8xlarge": 2,
    "ecs.gn7i-4x.8xlarge": 4,
}


def gpu_count(instance_type: str) -> int | None:
    m = _ML.match(instance_type)
    if m:
        return int(m.group(1))
    return _ECS_GPUS.get(instance_type)
