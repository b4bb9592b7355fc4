"""A render's progress on stderr: shown once it has taken PROGRESS_AFTER seconds, and only
when stderr is a terminal. The threshold is set to 0 here: every render counts as slow."""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from msgen import cli
from msgen.cli import app

runner = CliRunner()
REFERENCE = Path(__file__).resolve().parent.parent / "blueprints" / "reference.yaml"


def terminal() -> tuple[Console, io.StringIO]:
    written = io.StringIO()
    return Console(file=written, force_terminal=True, color_system=None, width=100, highlight=False, soft_wrap=True, emoji=False), written


def test_a_slow_render_shows_its_progress_on_a_terminal(monkeypatch, tmp_path):
    console, written = terminal()
    monkeypatch.setattr(cli, "err", console)
    monkeypatch.setattr(cli, "PROGRESS_AFTER", 0.0)
    result = runner.invoke(app, ["render", str(REFERENCE), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    text = written.getvalue()
    assert re.search(r"rendering [\w./-]+ \(\d+ built\)", text), text[:300]
    assert "\x1b[2K" in text, "the status line is erased when the render ends"
    assert "traefik-breaker-min-requests" in text and text.index("rendering ") < text.index("traefik-breaker-min-requests")
    assert " created, " in result.stdout and "rendering" not in result.stdout


def test_a_fast_render_shows_no_progress(monkeypatch, tmp_path):
    console, written = terminal()
    monkeypatch.setattr(cli, "err", console)
    monkeypatch.setattr(cli, "PROGRESS_AFTER", 3600.0)
    assert runner.invoke(app, ["render", str(REFERENCE), "-o", str(tmp_path / "out")]).exit_code == 0
    assert "rendering" not in written.getvalue() and "\x1b[" not in written.getvalue()


def test_no_progress_when_stderr_is_not_a_terminal(monkeypatch, tmp_path):
    monkeypatch.setattr(cli, "PROGRESS_AFTER", 3600.0)
    quick = runner.invoke(app, ["render", str(REFERENCE), "-o", str(tmp_path / "a")])
    monkeypatch.setattr(cli, "PROGRESS_AFTER", 0.0)
    slow = runner.invoke(app, ["render", str(REFERENCE), "-o", str(tmp_path / "b")])
    assert slow.exit_code == quick.exit_code == 0
    # the same words, but for the folder each names
    assert slow.stderr.replace(str(tmp_path / "b"), "OUT") == quick.stderr.replace(str(tmp_path / "a"), "OUT")
    assert "rendering" not in slow.stderr and "\x1b[" not in slow.stderr
