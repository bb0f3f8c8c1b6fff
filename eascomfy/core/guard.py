"""Guards for the changes made without the whole spec in mind (``update-image``, ``rollback``):
act on the environment the service was deployed with, and change nothing but the image. Pure.

A deploy records the spec file and the environment on the service (``render.SPEC_LABEL``,
``render.ENV_LABEL``). ``update-image`` without an environment follows that record; with one that
differs, it is refused (it would apply another environment's spec to this service). A service
without a record (deployed before eascomfy kept one) whose spec defines environments is
ambiguous: refused until the environment is named.

An image change must not resize the service or change anything else as a side effect (the spec may
have moved on since the last deploy): a plan that changes more than ``containers[i].image`` is
refused with those changes listed, unless they are explicitly allowed.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import UsageError
from .plan import Change
from .render import ENV_LABEL, SPEC_LABEL

IMAGE_PATH = re.compile(r"^containers\[\d+\]\.image$")


def _named(env: str | None) -> str:
    return f"environment {env}" if env is not None else "no environment (the base spec)"


class EnvironmentMismatch(UsageError):
    """The environment asked for is not the one the service runs."""

    code = "EnvironmentMismatch"


class AmbiguousEnvironment(UsageError):
    """The service keeps no record of its environment and the spec has several."""

    code = "AmbiguousEnvironment"


class BeyondTheImage(UsageError):
    """An image change that would change other fields too; ``changes`` are those fields."""

    code = "BeyondTheImage"

    def __init__(self, what: str, changes: list[Change]) -> None:
        listed = "; ".join(c.line() for c in changes)
        super().__init__(
            f"{what} would change more than the image: {listed}",
            "those changes are not applied as a side effect of an image change; allow them explicitly to apply them too",
        )
        self.changes = changes

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "changes": [c.to_dict() for c in self.changes]}


def deployed_env(labels: dict[str, str]) -> tuple[bool, str | None]:
    """(whether the service records what was deployed, the environment it was deployed with)."""
    recorded = SPEC_LABEL in labels or ENV_LABEL in labels
    return recorded, labels.get(ENV_LABEL)


def choose_env(
    given: str | None, labels: dict[str, str], environments: list[str], service: str, *, need: bool = True
) -> str | None:
    """The environment to act on: the one recorded on the service, unless ``given`` differs
    (refused). Without a record, ``given``; and when none is given but the spec defines
    ``environments`` and the command applies the spec (``need``), refused as ambiguous."""
    recorded, env = deployed_env(labels)
    if recorded:
        if given is not None and given != env:
            raise EnvironmentMismatch(
                f"service {service} was deployed with {_named(env)}, not {given}",
                "act on the environment it runs, or deploy the other environment first",
                param="env",
            )
        return env
    if given is None and environments and need:
        raise AmbiguousEnvironment(
            f"service {service} keeps no record of the environment it was deployed with, and the spec "
            f"defines environments ({', '.join(environments)})",
            "name the environment it runs (a deploy records it on the service)",
            param="env",
        )
    return given


def beyond_image(changes: list[Change]) -> list[Change]:
    """The changes that are not an image."""
    return [c for c in changes if not IMAGE_PATH.match(c.path)]


def image_only(what: str, changes: list[Change], allowed: bool) -> None:
    """Refuse ``changes`` that go beyond the image unless ``allowed``."""
    others = beyond_image(changes)
    if others and not allowed:
        raise BeyondTheImage(what, others)
