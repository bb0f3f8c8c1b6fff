"""Values given on the command line obey the spec's own rules: refused before any cloud write and
before the spec file is touched (issue 11, item 13); rewriting the spec keeps it where it is."""

from __future__ import annotations

import os
from pathlib import Path
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


def test_update_image_writes_through_a_symlinked_spec(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    """A spec kept elsewhere and linked into the project stays a link; the file it points to is
    the one rewritten (issue 11, item 20)."""
    p = project("img_link_svc", version="1.8")
    real = p.dir / "specs" / "real.yaml"
    real.parent.mkdir()
    p.spec.rename(real)
    p.spec.symlink_to(Path("specs") / "real.yaml")
    res = p.cli("deploy", "--timeout", "30")  # update-image acts on a deployed service
    assert res.exit_code == 0, res.stderr
    res = p.cli("update-image", "1.9")
    assert res.exit_code == 0, res.stderr
    assert p.spec.is_symlink() and os.readlink(p.spec) == str(Path("specs") / "real.yaml")
    assert 'version: "1.9"' in real.read_text()
    assert [f.name for f in real.parent.iterdir()] == ["real.yaml"]  # no temp file left beside it


def test_deploy_refuses_overrides_that_rename_the_service(sandbox: EasSandbox, project: Callable[..., Project]) -> None:
    """overrides.metadata.name made deploy create another service and then wait on the spec's
    name (issue 11, item 14): refused as an invalid spec, before any call."""
    p = project("ovr_name_svc", version="1.9")
    p.spec.write_text(p.spec.read_text() + "overrides:\n  metadata:\n    name: ovr_other_svc\n")
    before = mark(sandbox)
    res = p.cli("deploy")
    assert res.exit_code == 3, res.stderr
    assert "overrides.metadata.name: the service's identity is the spec's name; change name instead" in res.stderr
    assert api_calls(sandbox, before) == []
