"""`msgen validate --format sarif`: SARIF 2.1.0 with the blueprint's file, line and column."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from msgen.cli import app
from msgen.findings import Finding
from msgen.report import findings_sarif

runner = CliRunner()
SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-2.1.0-required.schema.json").read_text(encoding="utf-8"))
OVER_BUDGET = """\
version: 1
project: shop
gateway: {domain: shop.example.com}
services:
  api:
    image: registry.example.com/api:1.0
    port: 8080
    route: {path_prefix: /api, budget: 50ms}
    latency: {p99: 40ms}
    calls: [slow]
  slow:
    image: registry.example.com/slow:1.0
    port: 8080
    replicas: 1
    latency: {p99: 30ms}
    run_as_root: true
suppress:
  - {id: run-as-root, at: services.slow.run_as_root, reason: the vendor image needs it}
"""


def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


@pytest.fixture
def sarif_run(write_blueprint):
    path = write_blueprint(OVER_BUDGET)
    result = runner.invoke(app, ["validate", str(path), "--format", "sarif"])
    return path, result


def test_validate_sarif_matches_the_schema_and_fails_on_errors(sarif_run):
    _, result = sarif_run
    assert result.exit_code == 1
    log = json.loads(result.stdout)
    errors = sorted(validator().iter_errors(log), key=str)
    assert errors == [], [error.message for error in errors]
    assert log["version"] == "2.1.0" and log["runs"][0]["tool"]["driver"]["name"] == "msgen"


def test_sarif_results_carry_file_line_column_and_rule(sarif_run):
    path, result = sarif_run
    run = json.loads(result.stdout)["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    budget = next(r for r in run["results"] if r["ruleId"] == "latency-budget")
    assert budget["level"] == "error" and rules[budget["ruleIndex"]]["id"] == "latency-budget"
    location = budget["locations"][0]
    physical = location["physicalLocation"]
    assert physical["artifactLocation"]["uri"].endswith("blueprint.yaml")
    line = next(n for n, row in enumerate(path.read_text().splitlines(), 1) if "budget: 50ms" in row)
    assert physical["region"]["startLine"] == line and physical["region"]["startColumn"] >= 1
    assert location["logicalLocations"][0]["fullyQualifiedName"] == "services.api.route.budget"
    assert "72 ms" in budget["message"]["text"]  # 40 + 2 + 30


def test_sarif_agrees_with_the_text_and_json_formats(sarif_run):
    path, result = sarif_run
    as_json = json.loads(runner.invoke(app, ["validate", str(path), "--format", "json"]).stdout)
    results = json.loads(result.stdout)["runs"][0]["results"]
    assert [(r["ruleId"], r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in results] == [
        (item["id"], item["line"]) for item in as_json
    ]
    text = runner.invoke(app, ["validate", str(path)]).stdout
    budget = next(item for item in as_json if item["id"] == "latency-budget")
    assert f":{budget['line']}:{budget['column']}: error: latency-budget:" in text


def test_suppressed_findings_are_marked_not_dropped(sarif_run):
    _, result = sarif_run
    results = json.loads(result.stdout)["runs"][0]["results"]
    suppressed = [r for r in results if "suppressions" in r]
    assert [(r["ruleId"], r["suppressions"][0]["kind"], r["suppressions"][0]["justification"]) for r in suppressed] == [
        ("run-as-root", "inSource", "the vendor image needs it")
    ]


def test_levels_and_a_finding_without_a_line():
    findings = [
        Finding("a-rule", "info", "note this", "services.a", file="dir with space/b.yaml", line=0, column=0),
        Finding("b-rule", "warning", "warn", "services.b", hint="do x", file="b.yaml", line=3, column=0),
    ]
    log = findings_sarif(findings)
    assert list(validator().iter_errors(log)) == []
    first, second = log["runs"][0]["results"]
    assert first["level"] == "note" and "region" not in first["locations"][0]["physicalLocation"]
    assert first["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "dir%20with%20space/b.yaml"
    assert second["level"] == "warning" and second["locations"][0]["physicalLocation"]["region"] == {"startLine": 3, "startColumn": 1}
    assert second["message"]["text"] == "warn (hint: do x)"


def test_no_findings_is_an_empty_run():
    log = findings_sarif([])
    assert list(validator().iter_errors(log)) == [] and log["runs"][0]["results"] == []
