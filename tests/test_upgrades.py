"""Upgrades: a blueprint that needs a newer msgen says so first, and `render --check` says when
the drift may come from a new msgen version (the manifest names the version that wrote it)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from msgen import __version__
from msgen.cli import app
from msgen.writer import MANIFEST

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = (ROOT / "blueprints" / "minimal.yaml").read_text(encoding="utf-8")
runner = CliRunner()


def with_minimum(version: str, extra: str = "") -> str:
    return MINIMAL.replace("version: 1\n", f'version: 1\nmin_msgen_version: "{version}"\n{extra}', 1)


def test_a_blueprint_for_a_newer_msgen_is_refused_before_its_unknown_fields(write_blueprint):
    path = write_blueprint(with_minimum("99.1", "field_of_the_future: {on: true}\n"))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert f"{path}:3:1: min_msgen_version: this blueprint needs msgen 99.1 or newer; this is msgen {__version__}" in result.output
    assert "upgrade msgen" in result.output and "field_of_the_future" not in result.output


def test_a_blueprint_this_msgen_satisfies_loads(write_blueprint):
    major, minor, _ = __version__.split(".")
    for version in (f"{major}.{minor}", __version__, "0"):
        assert runner.invoke(app, ["validate", str(write_blueprint(with_minimum(version)))]).exit_code == 0, version


def test_a_malformed_minimum_is_a_load_error_at_its_place(write_blueprint):
    result = runner.invoke(app, ["validate", str(write_blueprint(with_minimum("v1.2")))])
    assert result.exit_code == 2 and ":3:1: min_msgen_version:" in result.output


def test_check_after_an_upgrade_points_at_the_changelog(write_blueprint, tmp_path):
    path = write_blueprint(MINIMAL)
    out = tmp_path / "out"
    assert runner.invoke(app, ["render", str(path), "-o", str(out)]).exit_code == 0
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["msgen_version"] == __version__
    path.write_text(MINIMAL.replace("memory: 1Gi", "memory: 2Gi"), encoding="utf-8")
    same_version = runner.invoke(app, ["render", str(path), "-o", str(out), "--check"])
    assert same_version.exit_code == 1 and "note: msgen" not in same_version.output
    (out / MANIFEST).write_text(json.dumps({**manifest, "msgen_version": "0.0.1"}), encoding="utf-8")
    upgraded = runner.invoke(app, ["render", str(path), "-o", str(out), "--check"])
    assert upgraded.exit_code == 1
    assert f"note: msgen 0.0.1 wrote this folder and this is msgen {__version__}" in upgraded.output
    assert "CHANGELOG.md" in upgraded.output
    # a folder that is up to date needs no note, whoever wrote it
    path.write_text(MINIMAL, encoding="utf-8")
    assert "note: msgen" not in runner.invoke(app, ["render", str(path), "-o", str(out), "--check"]).output
