"""The images the emulated registry hosts: ``ImageCatalogue`` decides which official images can be
pulled in a region and which images are official (PAI's registry, ``pai-eas/...``) rather than
custom.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OFFICIAL_IMAGE_RE = re.compile(
    r"^eas-registry(?:-vpc)?\.(?P<region>[a-z0-9-]+)\.cr\.aliyuncs\.com/(?P<repo>[^:@]+)(?::(?P<tag>[^@]+))?$"
)
COMFYUI_VERSIONS = ("1.7", "1.8", "1.9", "2.0", "2.1", "2.2")
COMFYUI_EDITIONS = ("", "-api", "-cluster")


@dataclass(frozen=True)
class ImageCatalogue:
    """The official images the emulated registry hosts.

    An image on the official registry (``eas-registry[-vpc].<region>.cr.aliyuncs.com``) in
    ``repository`` can be pulled only if the registry is the sandbox region's and its tag is in
    ``tags``; any other image (other repositories, other registries) counts as a custom image and
    is always pullable.
    """

    repository: str = "pai-eas/comfyui"
    tags: tuple[str, ...] = tuple(v + e for v in COMFYUI_VERSIONS for e in COMFYUI_EDITIONS)

    def images(self, region: str) -> list[str]:
        hosts = (f"eas-registry-vpc.{region}.cr.aliyuncs.com", f"eas-registry.{region}.cr.aliyuncs.com")
        return [f"{host}/{self.repository}:{tag}" for host in hosts for tag in self.tags]

    def is_official(self, image: str) -> bool:
        """An image of PAI's official registry (``eas-registry[-vpc].<region>.cr.aliyuncs.com/pai-eas/...``),
        as the console's official-image deployment picks it; anything else is a custom image."""
        m = OFFICIAL_IMAGE_RE.match(image)
        return m is not None and m["repo"].startswith("pai-eas/")

    def can_pull(self, image: str, region: str) -> bool:
        m = OFFICIAL_IMAGE_RE.match(image)
        if m is None or m["repo"] != self.repository:
            return True
        return m["region"] == region and (m["tag"] or "latest") in self.tags
