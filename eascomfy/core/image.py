"""Image-version updates (``update-image``): which specs may switch official image versions, what
a version looks like, and the spec on the new version. Pure."""

from __future__ import annotations

import copy
import re

from ..errors import UsageError
from .spec import Spec

IMAGE_VERSION_RE = re.compile(r"^\d+\.\d+(\.\d+)?$")


def check_image_update(spec: Spec, version: str) -> None:
    """Refuse clearly: editions without image updates, custom images, impossible versions."""
    if not spec.edition.can("image_updates"):
        raise UsageError(f"the {spec.edition.title} does not take image updates", "EAS manages its image for you")
    if spec.data.get("image", {}).get("uri"):
        raise UsageError(
            "the spec uses a custom image (image.uri); update-image only switches official image versions",
            "edit image.uri and run `eascomfy deploy`",
        )
    if not IMAGE_VERSION_RE.match(version):
        raise UsageError(
            f"VERSION: expected an official image version like 2.2 or 1.9.1, got {version!r}",
            f"the edition's suffix ({spec.edition.image_suffix or 'none'}) is added for you",
        )


def with_image_version(spec: Spec, version: str) -> Spec:
    """A copy of ``spec`` on image ``version`` (suffix, registry and the rest unchanged)."""
    data = copy.deepcopy(spec.data)
    data.setdefault("image", {})["version"] = version
    return Spec(spec.file, data, spec.edition, spec.env, list(spec.warnings), spec.user, spec.positions)
