"""Edits of the spec file write only what the spec's own rules accept (issue 11, item 13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eascomfy.errors import UsageError
from eascomfy.local.specfile import add_wheels


@pytest.mark.parametrize("name", ["bad name;rm.whl", "../evil-1.0-py3-none-any.whl", "ｗｉｄｅ-1.0-py3-none-any.whl"])
def test_add_wheels_refuses_a_name_the_spec_would_refuse(tmp_path: Path, name: str) -> None:
    spec = tmp_path / "eascomfy.yaml"
    spec.write_text("name: comfy_w\n")
    with pytest.raises(UsageError, match="cannot go into the spec's wheels"):
        add_wheels(spec, ["good-1.0-py3-none-any.whl", name])
    assert spec.read_text() == "name: comfy_w\n"
