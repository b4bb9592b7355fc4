"""Machine output for CI: a blueprint that does not load still gives a whole SARIF, JSON or
Code Quality document; SARIF rules carry their descriptions, paths are relative to a base
directory, and a finding keeps its fingerprint when lines move."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_sarif import OVER_BUDGET, validator
from typer.testing import CliRunner

from msgen.cli import app
from msgen.rules import RULES

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
UNKNOWN_KEY = "version: 1\nproject: shop\nservices: {web: {image: 'a:1', port: 80, colour: red}}\n"
CODE_QUALITY_KEYS = {"description", "check_name", "fingerprint", "severity", "location"}


def run(*arguments: str):
    return runner.invoke(app, [str(argument) for argument in arguments])


def test_a_load_error_is_a_valid_sarif_document_with_exit_2(write_blueprint, tmp_path):
    path = write_blueprint(UNKNOWN_KEY)
    result = run("validate", path, "--format", "sarif", "--base-dir", tmp_path)
    assert result.exit_code == 2
    log = json.loads(result.stdout)
    assert sorted(validator().iter_errors(log), key=str) == []
    run_ = log["runs"][0]
    (found,) = run_["results"]
    assert (found["ruleId"], found["level"]) == ("load-error", "error")
    assert found["message"]["text"].startswith("unknown key 'colour' (hint: known: annotations, ")
    location = found["locations"][0]
    assert location["physicalLocation"] == {
        "artifactLocation": {"uri": "blueprint.yaml", "uriBaseId": "SRCROOT"},
        "region": {"startLine": 3, "startColumn": 42},
    }
    assert location["logicalLocations"][0]["fullyQualifiedName"] == "services.web.colour"
    assert run_["originalUriBaseIds"] == {"SRCROOT": {"uri": tmp_path.resolve().as_uri() + "/"}}
    (rule,) = run_["tool"]["driver"]["rules"]
    assert rule["fullDescription"]["text"] == RULES["load-error"] and rule["help"]["text"].startswith(RULES["load-error"])
    assert "error: " in result.stderr and ":3:42: services.web.colour: unknown key 'colour'" in result.stderr


def test_every_load_error_is_a_result(write_blueprint):
    path = write_blueprint("version: 1\nproject: shop\nservices:\n  a: {image: 'a:1', port: 80, colour: red}\n  b: {image: 'b:1', port: nine}\n")
    result = run("validate", path, "--format", "json")
    assert result.exit_code == 2
    found = json.loads(result.stdout)
    assert [(item["id"], item["path"], item["line"]) for item in found] == [
        ("load-error", "services.a.colour", 4),
        ("load-error", "services.b.port", 5),
    ]


def test_an_unreadable_file_is_a_result_at_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("validate", "missing.yaml", "--format", "sarif")
    assert result.exit_code == 2
    log = json.loads(result.stdout)
    assert list(validator().iter_errors(log)) == []
    (found,) = log["runs"][0]["results"]
    assert found["ruleId"] == "load-error" and "cannot read" in found["message"]["text"]
    assert found["locations"][0]["physicalLocation"]["artifactLocation"] == {"uri": "missing.yaml", "uriBaseId": "SRCROOT"}


def test_host_check_prints_load_errors_as_findings_too(write_blueprint):
    result = run("host", "check", write_blueprint(UNKNOWN_KEY), "--host", "db", "--format", "codequality")
    assert result.exit_code == 2
    (found,) = json.loads(result.stdout)
    assert found["check_name"] == "load-error" and found["severity"] == "major" and found["location"]["lines"] == {"begin": 3}


def test_the_base_directory_defaults_to_the_git_checkout(tmp_path, monkeypatch):
    checkout = tmp_path / "repo"
    (checkout / ".git").mkdir(parents=True)
    (checkout / "deploy").mkdir()
    path = checkout / "deploy" / "blueprint.yaml"
    path.write_text(OVER_BUDGET, encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # outside the checkout: the checkout still decides
    log = json.loads(run("validate", path, "--format", "sarif").stdout)
    assert log["runs"][0]["originalUriBaseIds"]["SRCROOT"]["uri"] == checkout.resolve().as_uri() + "/"
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in log["runs"][0]["results"]}
    assert uris == {"deploy/blueprint.yaml"}
    (checkout / ".git").rmdir()  # no checkout: the current directory
    log = json.loads(run("validate", path, "--format", "sarif").stdout)
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in log["runs"][0]["results"]}
    assert uris == {"repo/deploy/blueprint.yaml"}
    elsewhere = json.loads(run("validate", path, "--format", "sarif", "--base-dir", tmp_path / "other").stdout)
    artifact = elsewhere["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert artifact == {"uri": path.resolve().as_uri()}, "outside the base directory: an absolute URI"


def test_a_finding_keeps_its_fingerprint_when_lines_move(write_blueprint):
    before = json.loads(run("validate", write_blueprint(OVER_BUDGET), "--format", "sarif").stdout)["runs"][0]["results"]
    moved = write_blueprint("# a comment\n# another\n" + OVER_BUDGET, "moved.yaml")
    after = json.loads(run("validate", moved, "--format", "sarif").stdout)["runs"][0]["results"]
    assert len(before) == len(after) == 2
    for old, new in zip(before, after, strict=True):
        assert new["partialFingerprints"] == old["partialFingerprints"]
        assert new["locations"][0]["physicalLocation"]["region"]["startLine"] == old["locations"][0]["physicalLocation"]["region"]["startLine"] + 2
    prints = [r["partialFingerprints"]["msgenFindingHash/v1"] for r in before]
    assert len(set(prints)) == len(prints) and all(re.fullmatch("[0-9a-f]{64}", p) for p in prints)


def test_codequality_shape(write_blueprint, tmp_path):
    path = write_blueprint(OVER_BUDGET)
    result = run("validate", path, "--format", "codequality", "--base-dir", tmp_path)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    as_json = json.loads(run("validate", path, "--format", "json").stdout)
    active = [item for item in as_json if "suppressed" not in item]
    assert len(report) == len(active) and len(active) < len(as_json), "the suppressed run-as-root is left out"
    for issue, item in zip(report, active, strict=True):
        assert set(issue) == CODE_QUALITY_KEYS
        assert issue["check_name"] == item["id"] and issue["description"] == f"{item['path']}: {item['message']}"
        assert issue["severity"] == {"error": "major", "warning": "minor", "info": "info"}[item["severity"]]
        assert issue["location"] == {"path": "blueprint.yaml", "lines": {"begin": item["line"]}}
    assert len({issue["fingerprint"] for issue in report}) == len(report)


def _finding_ids(folder: Path) -> set[str]:
    ids: set[str] = set()
    for path in folder.rglob("*.py"):
        ids.update(re.findall(r'finding\(\s*"([a-z0-9-]+)"', path.read_text(encoding="utf-8")))
    return ids


def test_every_finding_id_has_a_description_and_the_docs_list_the_same_ids():
    produced = _finding_ids(ROOT / "msgen" / "checks") | {"suppress-unused"}
    produced |= {f"verify-{name}" for name in _finding_ids(ROOT / "msgen" / "verify")}
    host = set(re.findall(r'"(host-[a-z]+)"', (ROOT / "msgen" / "hostcheck.py").read_text(encoding="utf-8")))
    assert sorted(produced - set(RULES)) == [] and {"host-steal", "host-measured"} <= host <= set(RULES)
    documented = set(re.findall(r"^\| `([a-z0-9-]+)`", (ROOT / "docs" / "checks.md").read_text(encoding="utf-8"), re.M))
    assert sorted(set(RULES) - {"load-error"} - documented - {"capacity-kubernetes-cpu"}) == []
    assert all(len(text) > 10 for text in RULES.values())


@pytest.mark.parametrize("format", ["json", "sarif", "codequality"])
def test_machine_output_of_a_clean_blueprint_is_a_document(minimal_blueprint, format):
    result = run("validate", minimal_blueprint, "--format", format)
    assert result.exit_code == 0
    assert isinstance(json.loads(result.stdout), list if format != "sarif" else dict)


def test_an_error_without_a_place_is_a_result_at_the_blueprint(tmp_path):
    from msgen.errors import MsgenError
    from msgen.report import findings_sarif, load_error_findings

    (found,) = load_error_findings(MsgenError("environment overlay cannot be merged"), str(tmp_path / "b.yaml"))
    assert (found.id, found.severity, found.line, found.path) == ("load-error", "error", 0, "")
    log = findings_sarif([found], tmp_path)
    assert list(validator().iter_errors(log)) == []
    location = log["runs"][0]["results"][0]["locations"][0]
    assert location == {"physicalLocation": {"artifactLocation": {"uri": "b.yaml", "uriBaseId": "SRCROOT"}}}


def test_a_load_error_from_stdin_names_stdin(tmp_path):
    result = runner.invoke(app, ["validate", "-", "--format", "sarif", "--base-dir", str(tmp_path)], input=UNKNOWN_KEY)
    assert result.exit_code == 2
    log = json.loads(result.stdout)
    assert list(validator().iter_errors(log)) == []
    physical = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert physical == {"artifactLocation": {"uri": "%3Cstdin%3E"}, "region": {"startLine": 3, "startColumn": 42}}
