"""The committed examples are what msgen renders today (`make examples` regenerates them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from msgen.cli import app
from msgen.model.load import load_blueprint
from msgen.writer import MANIFEST

ROOT = Path(__file__).resolve().parent.parent
STARTERS = sorted(path.stem for path in (ROOT / "blueprints").glob("*.yaml"))
WRITTEN = ["job-queue"]  # examples written in examples/<name>/ (scripts/make_examples.py)
EXAMPLES = STARTERS + WRITTEN
STALE = "examples are stale: run `make examples` and commit the result"


def test_every_starter_has_an_example():
    assert STARTERS == ["minimal", "reference"]
    assert sorted(path.name for path in (ROOT / "examples").iterdir() if path.is_dir()) == sorted(EXAMPLES)


def sources(folder: Path) -> set[str]:
    """The example's own files: its blueprint and the config files it names."""
    return {"blueprint.yaml", *load_blueprint(folder / "blueprint.yaml").files}


@pytest.mark.parametrize("starter", EXAMPLES)
def test_example_is_up_to_date(starter):
    folder = ROOT / "examples" / starter
    blueprint = folder / "blueprint.yaml"
    if starter in STARTERS:
        assert blueprint.read_bytes() == (ROOT / "blueprints" / f"{starter}.yaml").read_bytes(), STALE
    # a fresh render in memory compared with the committed files; --check writes nothing
    result = CliRunner().invoke(app, ["render", str(blueprint), "-o", str(folder), "--check"])
    assert result.exit_code == 0, f"{STALE}\n{result.output}"


@pytest.mark.parametrize("starter", EXAMPLES)
def test_example_holds_only_owned_files(starter):
    folder = ROOT / "examples" / starter
    owned = set(json.loads((folder / MANIFEST).read_text())["files"])
    present = {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}
    assert present == owned | {MANIFEST} | sources(folder), STALE


@pytest.mark.parametrize("starter", EXAMPLES)
def test_every_example_file_parses_fully(starter):
    folder = ROOT / "examples" / starter
    for path in sorted(folder.rglob("*")):
        if path.suffix in (".yml", ".yaml"):
            documents = list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader))
            assert documents, path
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
