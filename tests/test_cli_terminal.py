"""The CLI at a terminal: --quiet and --min-severity, help without type placeholders and with
an example, and shell completion."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from msgen import cli
from msgen.cli import app
from msgen.targets.registry import target_names

runner = CliRunner()
# run_as_root: a warning; image nginx (no tag): an error; a suppress entry that matches nothing: info
WARNS = (
    "version: 1\nproject: shop\nservices:\n  web: {image: 'a:1', port: 80, run_as_root: true}\n"
    "suppress:\n  - {id: image-latest, at: services.other.image, reason: none}\n"
)
FAILS = WARNS.replace("'a:1'", "nginx")
COMMANDS = (["init"], ["validate"], ["render"], ["plan"], ["graph"], ["schema"], ["host", "check"], ["import"])


def run(*arguments):
    return runner.invoke(app, [str(argument) for argument in arguments])


def test_quiet_validate_prints_nothing_on_success(write_blueprint):
    path = write_blueprint(WARNS)
    loud = run("validate", path)
    assert loud.exit_code == 0 and "run-as-root" in loud.stdout
    quiet = run("validate", path, "--quiet")
    assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (0, "", "")
    strict = run("validate", path, "--quiet", "--strict")  # the warning fails now: shown
    assert strict.exit_code == 1 and "warning: run-as-root:" in strict.stdout


def test_quiet_validate_prints_the_failing_findings_and_the_summary(write_blueprint):
    result = run("validate", write_blueprint(FAILS), "-q")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert "error: image-latest:" in result.stdout and "run-as-root" not in result.stdout
    assert "suppress-unused" not in result.stdout
    assert lines[-1] == "1 error(s), 1 warning(s), 1 info"


def test_min_severity_hides_findings_below_it_but_not_the_exit_code(write_blueprint):
    path = write_blueprint(FAILS)
    every = json.loads(run("validate", path, "--format", "json").stdout)
    assert {item["severity"] for item in every} == {"error", "warning", "info"}
    warnings = json.loads(run("validate", path, "--format", "json", "--min-severity", "warning").stdout)
    assert warnings == [item for item in every if item["severity"] != "info"]
    errors = run("validate", path, "--min-severity", "error")
    assert errors.exit_code == 1 and "image-latest" in errors.stdout and "run-as-root" not in errors.stdout
    assert "1 warning(s)" in errors.stdout, "the summary still counts every finding"
    assert run("validate", write_blueprint(WARNS, "w.yaml"), "--min-severity", "error").exit_code == 0


def test_render_quiet_and_min_severity(write_blueprint, tmp_path):
    path = write_blueprint(WARNS)
    loud = run("render", path, "-o", tmp_path / "loud")
    assert loud.exit_code == 0 and "run-as-root" in loud.stderr and " created, " in loud.stdout
    assert "\n1 info finding(s): see `msgen validate`\n" in loud.stderr
    quiet = run("render", path, "-o", tmp_path / "quiet", "--quiet")
    assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (0, "", "")
    assert sorted(p.relative_to(tmp_path / "quiet") for p in (tmp_path / "quiet").rglob("*")) == sorted(
        p.relative_to(tmp_path / "loud") for p in (tmp_path / "loud").rglob("*")
    )
    every = run("render", path, "-o", tmp_path / "loud", "--min-severity", "info")
    assert "suppress-unused" in every.stderr and "see `msgen validate`" not in every.stderr
    errors = run("render", path, "-o", tmp_path / "loud", "--min-severity", "error")
    assert "run-as-root" not in errors.stderr and re.search(r"^1 warning, 1 info finding\(s\)", errors.stderr, re.M)
    failing = run("render", write_blueprint(FAILS, "f.yaml"), "-o", tmp_path / "never", "-q")
    assert failing.exit_code == 1 and "image-latest" in failing.stderr and "run-as-root" not in failing.stderr
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_has_no_type_placeholders_and_an_example(command):
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert re.findall(r"<(?:list\[\w+\]|bool|str)>", result.stdout) == []
    assert "Examples:" in result.stdout and f"msgen {' '.join(command)} " in result.stdout


def test_target_help_lists_the_registry():
    assert target_names() == cli.TARGET_NAMES
    text = runner.invoke(app, ["render", "--help"], env={"COLUMNS": "300"}).stdout
    assert f"(repeatable): {', '.join(target_names())}" in text and "TARGET" in text


def completion(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "msgen"], capture_output=True, text=True, timeout=60, env={**os.environ, **env}
    )


def test_shell_completion_script_and_values():
    script = completion(_MSGEN_COMPLETE="source_bash")
    assert script.returncode == 0 and "_msgen_completion()" in script.stdout and "complete " in script.stdout
    commands = completion(_MSGEN_COMPLETE="complete_bash", COMP_WORDS="msgen val", COMP_CWORD="1")
    assert commands.stdout.split() == ["validate"]
    targets = completion(_MSGEN_COMPLETE="complete_bash", COMP_WORDS="msgen render b.yaml --target k", COMP_CWORD="4")
    assert targets.stdout.split() == ["kubernetes"]


def test_show_completion_prints_the_script_for_a_named_shell():
    shown = subprocess.run([sys.executable, "-m", "msgen", "--show-completion", "bash"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "_msgen_completion()" in shown.stdout and "_MSGEN_COMPLETE=complete_bash" in shown.stdout
