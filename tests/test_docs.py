"""Docs that are generated or quoted stay true."""

from __future__ import annotations

from pathlib import Path

from eascomfy.core.docs import spec_reference

ROOT = Path(__file__).resolve().parent.parent


def test_spec_reference_is_current() -> None:
    assert (ROOT / "docs" / "spec-reference.md").read_text() == spec_reference(), (
        "regenerate: python -m eascomfy.core.docs > docs/spec-reference.md"
    )


def test_every_unverified_wire_name_is_documented() -> None:
    from eascomfy.core import wire

    doc = (ROOT / "docs" / "unverified.md").read_text()
    names = [n for n in vars(wire) if n.isupper()]
    for name in names:
        assert name in doc, f"wire.{name} is not listed in docs/unverified.md"
