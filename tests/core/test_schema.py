"""The shipped JSON Schema is real JSON Schema, and eascomfy's validator agrees with jsonschema."""

from __future__ import annotations

import jsonschema
import pytest

from eascomfy.core.validate import Validator, load_schema
from eascomfy.core.yamlio import load_yaml, read_text
from eascomfy.errors import SpecError
from tests.conftest import TESTS

SCHEMA = load_schema("spec.schema.json")


def test_schemas_are_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.Draft202012Validator.check_schema(load_schema("edition.schema.json"))


def _documents():
    for path in sorted((TESTS / "specs" / "bad").glob("*.yaml")) + sorted((TESTS / "golden").glob("*/eascomfy.yaml")):
        try:
            data, positions = load_yaml(read_text(path), str(path))
        except SpecError:
            continue  # not a YAML mapping at all: nothing for a schema to judge
        yield path, data, positions


@pytest.mark.parametrize("path,data,positions", list(_documents()), ids=lambda v: getattr(v, "name", ""))
def test_validator_agrees_with_jsonschema(path, data, positions) -> None:
    ours = Validator(SCHEMA, positions.plain).problems(data)
    theirs = list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(data))
    assert bool(ours) == bool(theirs), (ours, [e.message for e in theirs])


def test_schema_command_prints_the_shipped_schema(cli) -> None:
    result = cli("schema", "-o", "json")
    assert result.exit_code == 0
    assert result.json()["data"] == SCHEMA
