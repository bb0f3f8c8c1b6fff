"""The official ComfyUI image versions eascomfy knows, shipped as data
(``eascomfy/data/comfyui-images.json``, each version with its source). Pure.

``update-image`` checks a version here before anything is sent: a tag the registry does not have
is otherwise only found out after a rollout, as ImagePullFailed. The online truth would be
AIWorkspace ``ListImages``; the EAS SDK (alibabacloud_eas20210701) has no call that lists official
images, so the shipped table is the check, and a version newer than it can be forced.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

from ..errors import UsageError


class UnknownImageVersion(UsageError):
    code = "UnknownImageVersion"


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


@functools.lru_cache(maxsize=1)
def known_versions() -> tuple[str, ...]:
    """The versions in the shipped table, oldest first."""
    text = resources.files("eascomfy").joinpath("data", "comfyui-images.json").read_text(encoding="utf-8")
    return tuple(sorted((v["version"] for v in json.loads(text)["versions"]), key=_key))


def check_known_version(version: str, force: bool = False) -> None:
    """Refuse a version the table does not list, naming those it does, unless ``force``."""
    known = known_versions()
    if version in known or force:
        return
    raise UnknownImageVersion(
        f"{version} is not a known ComfyUI image version (known: {', '.join(known)})",
        "a version newer than eascomfy's table can be forced; a tag the registry lacks fails after the rollout",
        param="version",
    )
