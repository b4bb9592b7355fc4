"""Extension keys: `x-` keys are the author's, accepted and ignored wherever msgen's own keys
are, so that YAML anchors can live beside them; inside user maps (env) such a key is data."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from msgen.errors import BlueprintError
from msgen.loader import load_yaml
from msgen.model.load import load_blueprint
from msgen.starters import schema_text
from tests.rendering import render_in_memory

ROOT = Path(__file__).resolve().parent.parent
EXTENDED = """\
version: 1
project: shop
x-team: {owner: platform, pager: "+47 000"}
x-sizes:
  small: &small
    requests: {cpu: 100m, memory: 128Mi}
    limits: {cpu: 500m, memory: 256Mi}
services:
  web:
    x-ticket: OPS-1
    image: registry.example.com/web:1.0
    port: 80
    resources: *small
    health: {path: /healthz, x-why: the framework's default}
  api:
    image: registry.example.com/api:1.0
    port: 81
    resources: *small
"""
PLAIN = """\
version: 1
project: shop
services:
  web:
    image: registry.example.com/web:1.0
    port: 80
    resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {cpu: 500m, memory: 256Mi}}
    health: {path: /healthz}
  api:
    image: registry.example.com/api:1.0
    port: 81
    resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {cpu: 500m, memory: 256Mi}}
"""


def test_extension_keys_and_their_anchors_change_nothing(write_blueprint, tmp_path):
    extended = load_blueprint(write_blueprint(EXTENDED)).blueprint
    plain_path = tmp_path / "plain" / "blueprint.yaml"
    plain_path.parent.mkdir()
    plain_path.write_text(PLAIN, encoding="utf-8")
    assert extended == load_blueprint(plain_path).blueprint
    assert extended.services["api"].resources.limits.memory.text == "256Mi"  # the anchor reached it


def test_extension_keys_render_the_same_bytes(write_blueprint, tmp_path):
    plain_path = tmp_path / "plain" / "blueprint.yaml"
    plain_path.parent.mkdir()
    plain_path.write_text(PLAIN, encoding="utf-8")
    extended, plain = render_in_memory(write_blueprint(EXTENDED)), render_in_memory(plain_path)
    assert {path: built.text for path, built in extended.files.items()} == {path: built.text for path, built in plain.files.items()}


def test_an_extension_key_in_an_overlay_is_ignored_too(write_blueprint):
    text = EXTENDED + "environments:\n  staging:\n    x-note: smaller\n    services:\n      web: {replicas: 1, x-why: cost}\n"
    assert load_blueprint(write_blueprint(text), "staging").blueprint.services["web"].replicas == 1


def test_inside_env_an_x_key_is_data(write_blueprint):
    text = EXTENDED.replace("    port: 80\n", "    port: 80\n    env: {x-trace: 'on'}\n")
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(write_blueprint(text))
    issue = caught.value.first
    assert issue.path == "services.web.env.x-trace" and "not a valid variable name" in issue.message


def test_a_key_without_the_prefix_is_still_unknown(write_blueprint):
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(write_blueprint(EXTENDED.replace("x-ticket", "ticket")))
    issue = caught.value.first
    assert "unknown key 'ticket'" in issue.message and (issue.line, issue.column) == (10, 5)


def test_the_json_schema_allows_extension_keys_and_nothing_else():
    schema = json.loads(schema_text())
    data, _ = load_yaml(EXTENDED, "blueprint.yaml")
    jsonschema.validate(data, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(load_yaml(EXTENDED.replace("x-ticket", "ticket"), "blueprint.yaml")[0], schema)
    # a user map (env) is not one of msgen's mappings: no pattern makes its x- keys special
    assert "patternProperties" not in schema["$defs"]["Service"]["properties"]["env"]
