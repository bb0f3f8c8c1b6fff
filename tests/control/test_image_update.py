"""update-image's spec: made through the spec's own resolution, so its rules run on the new version."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from eascomfy.core.editions import Rule
from eascomfy.core.image import with_image_version
from eascomfy.core.render import image_uri
from eascomfy.core.spec import load_spec
from eascomfy.errors import SpecError, UsageError
from eascomfy.local.scaffold import init_spec


def _spec(tmp_path: Path):
    path = init_spec(tmp_path, name="img_svc", region="cn-hangzhou", edition="api",
                     oss="oss://bucket/comfyui/", image_version="1.9", force=True)
    return load_spec(path)


def test_the_new_spec_is_resolved_as_if_the_file_said_so(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    updated = with_image_version(spec, "2.2")
    assert updated.user["image"]["version"] == "2.2" and updated.data["image"]["version"] == "2.2"
    assert image_uri(updated).endswith(":2.2-api")
    assert spec.data["image"]["version"] == "1.9" and spec.user["image"]["version"] == "1.9"  # the original is untouched
    assert (updated.file, updated.env, updated.edition) == (spec.file, spec.env, spec.edition)


def test_the_spec_rules_run_on_the_new_version(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    pinned = Rule(field="image.version", present=True, error="this edition is pinned to its image")
    spec.edition = dataclasses.replace(spec.edition, rules=(*spec.edition.rules, pinned))
    with pytest.raises(SpecError, match="pinned to its image") as caught:
        with_image_version(spec, "2.2")
    assert caught.value.path == "image.version"


def test_an_impossible_version_is_refused_before_anything_else(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="expected an official image version"):
        with_image_version(_spec(tmp_path), "2.2-api")
