"""Every command and exit code of the CLI (CliRunner), and `python -m msgen` as a process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from msgen import __version__, cli
from msgen.cli import app
from msgen.loader import load_yaml
from msgen.starters import schema_text
from msgen.views import cell_text

runner = CliRunner()

ROOT_AS = "version: 1\nproject: shop\nservices:\n  web: {image: 'a:1', port: 80, run_as_root: true}\n"


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"msgen {__version__}"


def test_no_arguments_shows_help():
    result = runner.invoke(app, [])
    assert result.exit_code == 2 and "init" in result.output and "render" in result.output


def test_python_dash_m():
    result = subprocess.run([sys.executable, "-m", "msgen", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"msgen {__version__}"


@pytest.mark.parametrize("starter", ["minimal", "reference"])
def test_init_writes_a_starter_that_validates(tmp_path, starter):
    result = runner.invoke(app, ["init", str(tmp_path / "p"), "--starter", starter])
    assert result.exit_code == 0, result.output
    blueprint = tmp_path / "p" / "blueprint.yaml"
    assert blueprint.read_text().splitlines()[0] == "# yaml-language-server: $schema=msgen.schema.json"
    assert json.loads((tmp_path / "p" / "msgen.schema.json").read_text())["title"] == "msgen blueprint v1"
    assert runner.invoke(app, ["validate", str(blueprint)]).exit_code == 0


def test_init_refuses_to_overwrite_without_force(tmp_path):
    assert runner.invoke(app, ["init", str(tmp_path)]).exit_code == 0
    (tmp_path / "blueprint.yaml").write_text("mine\n")
    refused = runner.invoke(app, ["init", str(tmp_path), "--starter", "reference"])
    assert refused.exit_code == 2 and "use --force" in refused.output and "Traceback" not in refused.output
    assert (tmp_path / "blueprint.yaml").read_text() == "mine\n"
    forced = runner.invoke(app, ["init", str(tmp_path), "--starter", "reference", "--force"])
    assert forced.exit_code == 0 and "project: nordic-pay" in (tmp_path / "blueprint.yaml").read_text()


def test_init_rejects_an_unknown_starter(tmp_path):
    assert runner.invoke(app, ["init", str(tmp_path), "--starter", "huge"]).exit_code == 2


def test_starter_blueprints_satisfy_the_json_schema(reference_blueprint, minimal_blueprint):
    schema = json.loads(schema_text())
    for path in (reference_blueprint, minimal_blueprint):
        data, _ = load_yaml(path.read_text(), str(path))  # YAML 1.2, as msgen reads it (NO stays a string)
        jsonschema.validate(data, schema)


def test_validate_text_and_json(tmp_path, reference_blueprint):
    ok = runner.invoke(app, ["validate", str(reference_blueprint)])
    assert ok.exit_code == 0 and "0 error(s)" in ok.stdout
    as_json = runner.invoke(app, ["validate", str(reference_blueprint), "--format", "json"])
    assert as_json.exit_code == 0 and isinstance(json.loads(as_json.stdout), list)


def test_validate_exit_codes_and_strict(write_blueprint):
    path = write_blueprint(ROOT_AS)
    warned = runner.invoke(app, ["validate", str(path)])
    assert warned.exit_code == 0 and "warning: run-as-root: services.web.run_as_root" in warned.stdout
    assert runner.invoke(app, ["validate", str(path), "--strict"]).exit_code == 1
    findings = json.loads(runner.invoke(app, ["validate", str(path), "--format", "json"]).stdout)
    found = next(item for item in findings if item["id"] == "run-as-root")
    assert found == {
        "id": "run-as-root",
        "severity": "warning",
        "message": found["message"],
        "file": str(path),
        "line": 4,
        "column": 33,
        "path": "services.web.run_as_root",
        "hint": found["hint"],
    }
    failing = write_blueprint(ROOT_AS.replace("'a:1'", "nginx"), "latest.yaml")
    assert runner.invoke(app, ["validate", str(failing)]).exit_code == 1
    broken = write_blueprint("version: 1\n", "broken.yaml")
    assert runner.invoke(app, ["validate", str(broken)]).exit_code == 2


def test_suppress_silences_one_finding_with_its_reason(write_blueprint):
    path = write_blueprint(ROOT_AS + "suppress:\n  - {id: run-as-root, at: services.web.run_as_root, reason: the vendor image needs it}\n")
    result = runner.invoke(app, ["validate", str(path), "--strict"])
    assert result.exit_code == 0
    assert "[suppressed: the vendor image needs it]" in result.stdout and "1 suppressed" in result.stdout
    unused = write_blueprint(ROOT_AS + "suppress:\n  - {id: image-latest, at: services.web.image, reason: x}\n", "b.yaml")
    assert "suppress-unused" in runner.invoke(app, ["validate", str(unused)]).stdout


def test_validate_with_env(reference_blueprint):
    assert runner.invoke(app, ["validate", str(reference_blueprint), "--env", "staging"]).exit_code == 0
    unknown = runner.invoke(app, ["validate", str(reference_blueprint), "--env", "prod"])
    assert unknown.exit_code == 2 and "unknown environment 'prod'" in unknown.stderr


def test_render_writes_and_reports(tmp_path, reference_blueprint):
    out_dir = tmp_path / "out"
    first = runner.invoke(app, ["render", str(reference_blueprint), "-o", str(out_dir)])
    assert first.exit_code == 0 and " created, " in first.stdout
    assert "/secrets/\n" in (out_dir / ".gitignore").read_text()
    again = runner.invoke(app, ["render", str(reference_blueprint), "-o", str(out_dir)])
    assert again.exit_code == 0 and "0 created, 0 updated" in again.stdout


def test_render_with_failing_findings_writes_nothing(tmp_path, write_blueprint):
    path = write_blueprint(ROOT_AS.replace("'a:1'", "nginx"))
    result = runner.invoke(app, ["render", str(path), "-o", str(tmp_path / "out" / "deeper")])
    assert result.exit_code == 1 and "nothing written" in result.stderr and "image-latest" in result.stderr
    assert not (tmp_path / "out").exists()
    strict = runner.invoke(app, ["render", str(write_blueprint(ROOT_AS, "w.yaml")), "-o", str(tmp_path / "out"), "--strict"])
    assert strict.exit_code == 1 and not (tmp_path / "out").exists()
    # an output folder that exists keeps exactly what it held, a foreign file included:
    # the blueprint's errors are reported (exit 1), not the foreign file (exit 2)
    out = tmp_path / "kept"
    out.mkdir()
    (out / "compose").write_text("not msgen's\n")
    again = runner.invoke(app, ["render", str(path), "-o", str(out)])
    assert again.exit_code == 1 and "image-latest" in again.stderr
    assert [p.name for p in out.rglob("*")] == ["compose"] and (out / "compose").read_text() == "not msgen's\n"


def test_render_refuses_a_foreign_file_and_leaves_the_folder(tmp_path, reference_blueprint):
    out = tmp_path / "out"
    out.mkdir()
    (out / "compose").mkdir()
    (out / "compose" / "docker-compose.yml").write_text("mine\n")
    result = runner.invoke(app, ["render", str(reference_blueprint), "-o", str(out)])
    assert result.exit_code == 2 and "was not written by msgen" in result.stderr and "Traceback" not in result.output
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["compose", "compose/docker-compose.yml"]


def test_render_target_errors(tmp_path, reference_blueprint):
    unknown = runner.invoke(app, ["render", str(reference_blueprint), "-o", str(tmp_path), "--target", "helm"])
    assert unknown.exit_code == 2 and "unknown target 'helm'" in unknown.stderr
    base_only = runner.invoke(app, ["render", str(reference_blueprint), "-o", str(tmp_path / "o"), "--target", "base"])
    assert base_only.exit_code == 0


def test_plan_text_and_json(reference_blueprint):
    text = runner.invoke(app, ["plan", str(reference_blueprint)])
    assert text.exit_code == 0 and "Services" in text.stdout
    sections = json.loads(runner.invoke(app, ["plan", str(reference_blueprint), "--format", "json"]).stdout)
    services = next(section for section in sections if section["title"] == "Services")
    assert len(services["rows"]) == 3
    staging = json.loads(runner.invoke(app, ["plan", str(reference_blueprint), "--env", "staging", "--format", "json"]).stdout)
    assert staging != sections
    assert runner.invoke(app, ["plan", "/nonexistent.yaml"]).exit_code == 2


def test_plan_prints_large_tables_as_plain_columns(reference_blueprint, monkeypatch):
    """From cli.PLAIN_TABLE_FROM rows on (rich takes ~10 ms a row), a table is plain aligned
    text: every value whole, each column starting at the same place on every line."""
    sections = json.loads(runner.invoke(app, ["plan", str(reference_blueprint), "--format", "json"]).stdout)
    services = next(section for section in sections if section["title"] == "Services")
    monkeypatch.setattr(cli, "PLAIN_TABLE_FROM", len(services["rows"]))
    printed = runner.invoke(app, ["plan", str(reference_blueprint)])
    assert printed.exit_code == 0
    lines = printed.stdout.splitlines()
    start = lines.index("Services")
    header, rule, *rows = lines[start + 1 : start + 3 + len(services["rows"])]
    assert set(rule) <= {"-", " "}
    starts = [index for index, char in enumerate(rule) if char == "-" and (index == 0 or rule[index - 1] == " ")]
    columns = list(services["rows"][0])
    assert len(starts) == len(columns)
    for line, cells in zip([header, *rows], [columns, *([cell_text(cell) for cell in row.values()] for row in services["rows"])], strict=True):
        assert [line[begin:].split("  ")[0].strip() for begin in starts] == cells
    assert "│" in printed.stdout, "smaller tables are still rich tables"


def test_schema_to_stdout_and_file(tmp_path):
    printed = runner.invoke(app, ["schema"])
    assert printed.exit_code == 0 and printed.stdout == schema_text()
    written = runner.invoke(app, ["schema", "-o", str(tmp_path / "s.json")])
    assert written.exit_code == 0 and (tmp_path / "s.json").read_text() == schema_text()
    failed = runner.invoke(app, ["schema", "-o", str(tmp_path / "missing" / "s.json")])
    assert failed.exit_code == 2 and "Traceback" not in failed.output


def test_an_expected_error_prints_no_traceback_in_a_real_process(tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text("version: 1\nproject: shop\nservices: {web: {image: 'a:1', port: 80, colour: red}}\n")
    result = subprocess.run([sys.executable, "-m", "msgen", "validate", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {path}:3:42: services.web.colour: unknown key 'colour' (hint: known: annotations, args, autoscale, calls, ")
    assert len(result.stderr.splitlines()) == 1
    assert result.stdout == ""


def test_an_unexpected_error_is_one_line_with_its_own_exit_code(tmp_path):
    """A bug in msgen is neither findings (1) nor bad input (2): exit 3, one line, no traceback."""
    code = (
        "import sys\n"
        "import msgen.plan as plan\n"
        "from msgen import cli\n"
        "def broken(*arguments, **keywords):\n"
        "    raise ZeroDivisionError('division by zero')\n"
        "plan.plan_latency = broken\n"
        "sys.argv = ['msgen', 'validate', sys.argv[1]]\n"
        "cli.main()\n"
    )
    blueprint = str(Path(__file__).resolve().parent.parent / "blueprints" / "minimal.yaml")
    result = subprocess.run([sys.executable, "-c", code, blueprint], capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip().splitlines() == [
        "internal error: ZeroDivisionError: division by zero; please report it with the blueprint (MSGEN_DEBUG=1 shows the traceback)"
    ]
    assert "Traceback" not in result.stderr and result.stdout == ""


OVERLAYS = """\
version: 1
project: shop
gateway: {domain: shop.example.com}
services:
  web: {image: 'a:1.0', port: 80, replicas: 2, route: {path_prefix: /}}
  api: {image: 'a:1.0', port: 81, replicas: 1, route: {path_prefix: /api}}
environments:
  staging:
    services:
      web: {replicas: 1}
  dev:
    services:
      web: {replicas: 1}
  prod:
    services:
      web: {image: 'a:latest'}
"""


def test_validate_judges_every_overlay(write_blueprint):
    """CI validates the base file, and every overlay ships: an overlay's own finding is reported
    at the overlay's place, naming it; identical overlays once; shared findings once, at the base."""
    result = runner.invoke(app, ["validate", str(write_blueprint(OVERLAYS)), "--format", "json"])
    assert result.exit_code == 1, result.output
    found = {(item["id"], item["path"]): item for item in json.loads(result.stdout)}
    latest = found[("image-latest", "environments.prod.services.web.image")]
    assert latest["line"] == 16 and latest["message"].startswith("environment prod: ")
    lonely = found[("ha-replicas", "environments.dev.services.web.replicas")]
    assert lonely["message"].startswith("environment dev, staging: ") and lonely["line"] == 13
    assert ("ha-replicas", "environments.staging.services.web.replicas") not in found, "identical overlays are judged once"
    shared = found[("ha-replicas", "services.api.replicas")]
    assert shared["line"] == 6 and shared["message"].endswith("(also in every environment)")
    only_base = runner.invoke(app, ["validate", str(write_blueprint(OVERLAYS)), "--env", "staging", "--format", "json"])
    assert {item["id"] for item in json.loads(only_base.stdout)} == {"ha-replicas"}, "with --env, that environment alone"


SUPPRESSED_OVERLAYS = """\
version: 1
project: shop
services:
  web: {image: 'a:latest', port: 80}
  api: {image: 'a:1.0', port: 81}
suppress:
  - {id: image-latest, at: services.web.image, reason: base says so}
environments:
  staging:
    services:
      web: {image: 'b:latest'}
      api: {image: 'b:latest'}
    suppress:
      - {id: image-latest, at: services.api.image, reason: staging only}
  prod:
    services:
      api: {image: 'c:latest'}
"""


def test_suppress_entries_of_the_base_serve_every_overlay_an_overlays_its_own(write_blueprint):
    result = runner.invoke(app, ["validate", str(write_blueprint(SUPPRESSED_OVERLAYS)), "--format", "json"])
    found = {(item["path"], item.get("suppressed")) for item in json.loads(result.stdout) if item["id"] == "image-latest"}
    assert found == {
        ("services.web.image", "base says so"),  # the base's entry, in the base and both overlays
        ("environments.staging.services.web.image", "base says so"),
        ("environments.staging.services.api.image", "staging only"),
        ("environments.prod.services.api.image", None),  # staging's entry does not reach prod
    }
    assert result.exit_code == 1
    assert "suppress-unused" not in result.stdout
