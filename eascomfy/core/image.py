"""Image-version updates (``update-image``): which specs may switch official image versions, what
a version looks like, and the spec on the new version. Pure.

The new spec is resolved and checked the way ``load_spec`` resolves the files (schema, edition
defaults, the edition's and the shared rules), so a version is refused by the same rules whether
it comes from the file or from ``update-image``.
"""

from __future__ import annotations

from ..errors import UsageError
from .merge import deep_merge
from .spec import Spec, resolve
from .validate import Validator, field_problem, load_schema, raise_first
from .yamlio import Positions

_VERSION = ("image", "version")


def version_problem(version: str) -> str | None:
    """What is wrong with ``version`` by the schema's own rule for ``image.version`` (ASCII digits
    only, at most 32 characters), or None."""
    return field_problem(version, "image", "version")


def check_image_update(spec: Spec, version: str) -> None:
    """Refuse clearly: editions without image updates, custom images, impossible versions."""
    if not spec.edition.can("image_updates"):
        raise UsageError(f"the {spec.edition.title} does not take image updates", "EAS manages its image for you")
    if spec.data.get("image", {}).get("uri"):
        raise UsageError(
            "the spec uses a custom image (image.uri); update-image only switches official image versions",
            "edit image.uri and run `eascomfy deploy`",
        )
    problem = version_problem(version)
    if problem is not None:
        raise UsageError(
            f"expected an official image version like 2.2 or 1.9.1: {problem}",
            f"the edition's suffix ({spec.edition.image_suffix or 'none'}) is added for you",
            param="version",
        )


def with_image_version(spec: Spec, version: str) -> Spec:
    """``spec`` on image ``version`` (suffix, registry and the rest unchanged), as if its files
    said so: what the user set is validated again and the spec's rules run on the result."""
    check_image_update(spec, version)
    schema = load_schema("spec.schema.json")
    user = deep_merge(spec.user, {"image": {"version": version}})
    # Where image.version is written stays known (errors point there); its old source text goes.
    positions = Positions(dict(spec.positions.lines), {p: t for p, t in spec.positions.plain.items() if p != _VERSION})
    raise_first(Validator(schema, positions.plain).problems(user), positions, spec.file)
    return resolve(spec.file, user, positions, spec.edition, spec.env)
