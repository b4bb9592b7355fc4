"""`msgen plan` at a terminal of 100 columns, with --wide, and as JSON with typed values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from msgen import cli
from msgen.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "blueprints" / "reference.yaml"
JOB_QUEUE = ROOT / "examples" / "job-queue" / "blueprint.yaml"


@pytest.fixture
def terminal_of_100(monkeypatch):
    """stdout as a terminal 100 columns wide (the CLI asks its console for both)."""
    monkeypatch.setattr(cli, "out", Console(width=100, force_terminal=True, color_system=None, highlight=False, soft_wrap=True, emoji=False))


def plan(*arguments) -> list[str]:
    result = runner.invoke(app, ["plan", *map(str, arguments)])
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


@pytest.mark.parametrize("blueprint", [REFERENCE, JOB_QUEUE], ids=["reference", "job-queue"])
def test_no_line_is_wider_than_the_terminal(terminal_of_100, blueprint):
    lines = plan(blueprint)
    assert max(len(line) for line in lines) <= 100
    assert "(not shown: calls; --wide shows every column)" in lines
    assert not any("…" in line for line in lines), "rich folds a long value onto more lines; it cuts none"


def test_wide_keeps_every_column_whatever_the_terminal(terminal_of_100):
    lines = plan(REFERENCE, "--wide")
    assert max(len(line) for line in lines) > 100
    assert not any("not shown" in line for line in lines)
    header = next(line for line in lines if "┃ service" in line)
    assert "┃ calls" in header
    assert any("registry.example.no/payment:v1.4.2" in line for line in lines), "each value whole, on one line"


def test_long_tables_fit_the_terminal_too(terminal_of_100, monkeypatch):
    monkeypatch.setattr(cli, "PLAIN_TABLE_FROM", 1)  # every table printed as plain columns
    lines = plan(REFERENCE)
    assert max(len(line) for line in lines) <= 100
    assert "│" not in "\n".join(lines)
    assert any(line.startswith("(not shown: ") for line in lines)


def test_piped_output_is_not_fitted():
    """No terminal: no width to respect, every column and value whole (as before)."""
    lines = plan(REFERENCE)
    assert max(len(line) for line in lines) > 100 and not any("not shown" in line for line in lines)


def test_json_sections_have_columns_and_typed_values():
    sections = json.loads(runner.invoke(app, ["plan", str(JOB_QUEUE), "--format", "json"]).stdout)
    assert all(list(section) == ["title", "columns", "rows"] for section in sections)
    assert all(list(row) == section["columns"] for section in sections for row in section["rows"])
    services = next(section for section in sections if section["title"] == "Services")
    ports = {row["service"]: row["port"] for row in services["rows"]}
    assert all(isinstance(port, int) or port is None for port in ports.values()) and None in ports.values()
    assert all(isinstance(row["replicas"], int) for row in services["rows"])
    text = runner.invoke(app, ["plan", str(JOB_QUEUE)]).stdout
    worker = next(name for name, port in ports.items() if port is None)
    assert any(line.startswith(f"│ {worker} ") and "│ -    │" in line for line in text.splitlines()), "no port: shown as -"
