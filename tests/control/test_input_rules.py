"""Values given on the command line obey the spec's own rules: refused before any cloud write and
before the spec file is touched (issue 11, items 13 and 14)."""

from __future__ import annotations

from typing import Callable

import pytest

from eascomfy.sandbox.eas import EasSandbox

from .conftest import Project, api_calls, mark


@pytest.mark.parametrize(
    "version,fragment",
    [
        ("１.９", "'１.９' is not valid"),  # full-width digits: Python's \d matches them
        ("٣.٣", "'٣.٣' is not valid"),  # Arabic-Indic digits
        ("1" * 5000 + ".1", "expected at most 32 characters, got 5002"),
        ("1.9\n", "is not valid"),  # `$` matches before a trailing newline
    ],
)
def test_update_image_refuses_what_the_spec_would_refuse(
    sandbox: EasSandbox, project: Callable[..., Project], version: str, fragment: str
) -> None:
    p = project("img_rules_svc", version="1.9")
    before_text = p.spec.read_text()
    before = mark(sandbox)
    res = p.cli("update-image", version)
    assert res.exit_code == 2, res.stderr
    assert res.stderr.startswith("error: VERSION: ") and fragment in res.stderr
    assert api_calls(sandbox, before) == []  # nothing sent, not even a read
    assert p.spec.read_text() == before_text  # nothing written
