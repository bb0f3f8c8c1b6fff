"""The EAS wire details that are not verified against a real account, each in one place.

Every name here comes from eascomfy's research notes (docs/unverified.md lists each with its
evidence). When one is checked against a real account, correct it here, in one edit, and the
golden files in tests/golden/ show exactly what changed.
"""

from __future__ import annotations

# Official ComfyUI image registry. The VPC form is documented (EAS pulls over the VPC); the public
# form is UNVERIFIED (no official URI seen with it).
REGISTRY_HOSTS = {
    "vpc": "eas-registry-vpc.{region}.cr.aliyuncs.com",
    "public": "eas-registry.{region}.cr.aliyuncs.com",
}
IMAGE_REPOSITORY = "pai-eas/comfyui"

# The API edition's queue sub-service: the top-level `queue` key and its cpu/memory names are
# UNVERIFIED (the doc section with the key table could not be read); spec.queue.extra passes
# further keys through verbatim.
QUEUE_KEY = "queue"
QUEUE_FIELDS = {"cpu": "cpu", "memory": "memory"}

# Autoscaling embedded in the service JSON (camelCase): medium confidence, secondary source.
# eascomfy applies `autoscaling:` through the AutoScaler API instead (documented); this key is only
# read: a service configured this way elsewhere (import, the instance count it owns) and refused
# in overrides.
AUTOSCALER_KEY = "autoscaler"

# The OSS mount's read-only flag is camelCase in observed configs (medium confidence).
OSS_READ_ONLY_KEY = "readOnly"
NFS_KEY = "nfs"

# Extra Python packages installed by EAS before start (alipai's container spec; medium).
PIP_REQUIREMENTS = ("prepare", "pythonRequirements")

# Health checks on containers[0] (Kubernetes-style probes): key names from Alibaba's agent playbooks
# (aiops-skills health-check.md, config-schema.md) and a public third-party config; medium confidence.
HEALTH_KEYS = {"startup": "startup_check", "liveness": "liveness_check", "readiness": "readiness_check"}

# The VPC settings: cloud.networking {vpc_id, vswitch_id, security_group_id}, seen in real configs,
# alipai and the official Terraform module (high confidence); a comma-separated vswitch_id list is
# from one secondary source (medium).
NETWORKING_KEY = "networking"

# Warm-up: the top-level warm_up_data_path (an oss:// file) is documented
# (https://www.alibabacloud.com/help/en/pai/user-guide/warm-up-model-services); that a custom
# image's warm-up line is POSTed to the container's /prompt as it is is UNVERIFIED.
WARMUP_KEY = "warm_up_data_path"
