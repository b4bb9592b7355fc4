"""The blueprint's JSON Schema as an editor uses it: every field described, every default valid
under its own schema, an identity, and the starters and examples valid under it as YAML 1.2
(msgen's reading) and as YAML 1.1 (what many editors and tools still read)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import yaml

from msgen.loader import load_yaml
from msgen.starters import SCHEMA_ID, schema_text

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads(schema_text())
BLUEPRINTS = sorted([*(ROOT / "blueprints").glob("*.yaml"), *(ROOT / "examples").glob("*/blueprint.yaml")])


def properties() -> Iterator[tuple[str, dict]]:
    """Every property of the top level and of each model, as `Model.field`."""
    yield from ((f"Blueprint.{name}", node) for name, node in SCHEMA["properties"].items())
    for model, definition in SCHEMA["$defs"].items():
        yield from ((f"{model}.{name}", node) for name, node in (definition.get("properties") or {}).items())


def test_the_schema_has_an_identity_and_a_dialect():
    assert SCHEMA["$id"] == SCHEMA_ID and SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_every_field_has_a_description():
    undescribed = [name for name, node in properties() if not node.get("description")]
    assert undescribed == []
    assert len(list(properties())) > 150


def test_every_default_is_valid_under_its_own_schema():
    checked = 0
    for name, node in properties():
        if "default" not in node:
            continue
        own = {key: value for key, value in node.items() if key != "default"}
        errors = list(jsonschema.Draft202012Validator({**own, "$defs": SCHEMA["$defs"]}).iter_errors(node["default"]))
        assert errors == [], f"{name}: default {node['default']!r}: {errors[0].message}"
        checked += 1
    assert checked > 100


def test_quantities_and_schedules_default_to_what_a_blueprint_writes():
    backup = SCHEMA["$defs"]["Backup"]["properties"]
    assert backup["retention"]["default"] == "7d" and backup["schedule"]["default"] == "0 3 * * *"
    assert SCHEMA["$defs"]["Datastore"]["properties"]["cpu"]["default"] == 1


@pytest.mark.parametrize("path", BLUEPRINTS, ids=[str(path.relative_to(ROOT)) for path in BLUEPRINTS])
def test_starters_and_examples_are_valid_as_yaml_1_2_and_as_yaml_1_1(path):
    text = path.read_text(encoding="utf-8")
    as_msgen_reads_it, _ = load_yaml(text, str(path))
    jsonschema.validate(as_msgen_reads_it, SCHEMA)
    # a YAML 1.1 reader turns unquoted NO, on, yes into booleans and 1:30 into a number: the
    # starters quote such values so that every tool reads the same blueprint
    as_yaml_1_1_reads_it = yaml.safe_load(text)
    jsonschema.validate(as_yaml_1_1_reads_it, SCHEMA)
    assert as_yaml_1_1_reads_it == as_msgen_reads_it


def test_a_cron_schedule_matches_the_schema_pattern():
    """The pattern is a JSON Schema regex: a doubled backslash there would reject every schedule."""
    schedule = SCHEMA["$defs"]["Backup"]["properties"]["schedule"]
    validator = jsonschema.Draft202012Validator({**schedule, "$defs": SCHEMA["$defs"]})
    assert validator.is_valid("30 2 * * 1-5") and validator.is_valid("@daily") and not validator.is_valid("30 2 *")
