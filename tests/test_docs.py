"""The documentation explains the repository in its own words and stays current.

- docs/blueprint.md is generated from the models' field descriptions and must be what
  `python scripts/blueprint_reference.py` writes now;
- every field of every blueprint model says what it means;
- no file cites a design document that lives outside the repository.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from msgen.model import blueprint as models

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "blueprint_reference.py"

# Design documents that are not part of this repository; the names are assembled here so
# that this file does not cite them itself.
OUTSIDE_DOCUMENTS = tuple(f"{name}.md" for name in ("ARCHITECTURE", "BLUEPRINT", "TUNING", "CHECKS", "REAL_TOOLS", "STYLE"))
OUTSIDE_FOLDER = "/".join(("..", "shared", "design"))
SCANNED = ("msgen", "templates", "tests", "scripts", "docs", "benchmarks", "README.md", "Makefile", "pyproject.toml")
SKIPPED_PARTS = {"__pycache__", "out"}


def _reference_script():
    spec = importlib.util.spec_from_file_location("blueprint_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _blueprint_models() -> list[type[BaseModel]]:
    return [
        cls
        for _, cls in inspect.getmembers(models, inspect.isclass)
        if issubclass(cls, BaseModel) and cls.__module__ == models.__name__ and cls.model_fields
    ]


def test_blueprint_reference_is_current():
    script = _reference_script()
    written = (ROOT / "docs" / "blueprint.md").read_text(encoding="utf-8")
    assert written == script.render(), "docs/blueprint.md is stale: run python scripts/blueprint_reference.py"


def test_the_reference_follows_a_changed_description(monkeypatch):
    script = _reference_script()
    before = script.render()
    field = models.Service.model_fields["port"]
    monkeypatch.setattr(field, "description", "A changed description of the port.")
    after = script.render()
    assert after != before and "A changed description of the port." in after


def test_check_exits_1_when_the_file_is_stale(tmp_path, monkeypatch, capsys):
    script = _reference_script()
    monkeypatch.setattr(script, "OUTPUT", tmp_path / "blueprint.md")
    monkeypatch.setattr(script, "ROOT", tmp_path)
    assert script.main(["--check"]) == 1  # missing
    assert script.main([]) == 0
    assert script.main(["--check"]) == 0
    (tmp_path / "blueprint.md").write_text(script.render() + "edited by hand\n", encoding="utf-8")
    assert script.main(["--check"]) == 1
    assert "stale" in capsys.readouterr().err


def test_the_reference_is_deterministic():
    script = _reference_script()
    assert script.render() == script.render()


def test_every_model_the_blueprint_uses_has_a_section():
    script = _reference_script()
    assert set(script.reachable_models()) <= set(script.HEADINGS)


@pytest.mark.parametrize("model", _blueprint_models(), ids=lambda model: model.__name__)
def test_every_field_has_a_description(model):
    missing = [name for name, field in model.model_fields.items() if not (field.description or "").strip()]
    assert not missing, f"{model.__name__}: fields without a description: {', '.join(missing)}"


def test_the_reference_embeds_the_complete_example():
    text = (ROOT / "docs" / "blueprint.md").read_text(encoding="utf-8")
    assert (ROOT / "blueprints" / "reference.yaml").read_text(encoding="utf-8").rstrip("\n") in text


def _scanned_files() -> list[Path]:
    files: list[Path] = []
    for name in SCANNED:
        path = ROOT / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(
                item for item in sorted(path.rglob("*")) if item.is_file() and not SKIPPED_PARTS & set(item.relative_to(path).parts)
            )
    return files


def test_no_file_cites_a_design_document_outside_the_repository():
    pattern = re.compile("|".join(re.escape(name) for name in (*OUTSIDE_DOCUMENTS, OUTSIDE_FOLDER)))
    citing = []
    for path in _scanned_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # not text
        for number, line in enumerate(text.splitlines(), start=1):
            if pattern.search(line):
                citing.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    assert not citing, "files cite design documents outside the repository:\n" + "\n".join(citing)


def _finding_ids(folder: Path) -> set[str]:
    """Every finding id a module under `folder` can produce (the first argument of `finding(...)`)."""
    ids: set[str] = set()
    for path in folder.rglob("*.py"):
        ids.update(re.findall(r'finding\(\s*"([a-z0-9-]+)"', path.read_text(encoding="utf-8")))
    return ids


def test_docs_checks_lists_every_finding_and_verification_id():
    text = (ROOT / "docs" / "checks.md").read_text(encoding="utf-8")
    findings = _finding_ids(ROOT / "msgen" / "checks") | {"suppress-unused"}
    verifications = {f"verify-{name}" for name in _finding_ids(ROOT / "msgen" / "verify")}
    assert len(findings) > 30 and len(verifications) > 15
    missing = sorted(name for name in findings | verifications if f"`{name}`" not in text)
    assert missing == []


def _yaml_blocks(text: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", text, flags=re.S)


def test_the_readmes_ci_snippets_are_the_tested_ones():
    """The pre-commit configuration is the one tests/test_ci_integrations.py runs, and the GitHub
    steps are those of the workflow its schema and shell tests read."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = readme[readme.index("## CI integration") : readme.index("## Workflow")]
    pre_commit, github = _yaml_blocks(ci)
    hooks = yaml.safe_load(pre_commit)["repos"][0]["hooks"]
    assert hooks == [
        {"id": "msgen-validate", "args": ["platform/blueprint.yaml"]},
        {"id": "msgen-render-check", "args": ["platform/blueprint.yaml", "-o", "deploy"]},
    ]
    tested = (ROOT / "tests" / "test_ci_integrations.py").read_text(encoding="utf-8")
    for hook in hooks:
        assert f'{{"id": "{hook["id"]}", "args": {json.dumps(hook["args"])}}}' in tested
    assert github in (ROOT / "docs" / "ci" / "github-workflow.yml").read_text(encoding="utf-8")
