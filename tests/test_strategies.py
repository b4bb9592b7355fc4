"""Generated blueprints of many shapes (strategies.py) go through the command line: `msgen
validate` finds no error in the base or any environment, `msgen render` writes the files of
every target the blueprint asks for, and rendering twice gives the same bytes."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from strategies import GENERATED, blueprints, write_blueprint
from typer.testing import CliRunner

from msgen.cli import app
from msgen.model.versions import ENGINE_LINES

runner = CliRunner()


def errors_of(blueprint_file: Path, env: str | None = None, deep: bool = False) -> tuple[int, list[dict]]:
    """The exit code of `msgen validate` (with `--deep`, msgen's own output verified too) and its error findings."""
    arguments = ["validate", str(blueprint_file), "--format", "json", *(["--env", env] if env else []), *(["--deep"] if deep else [])]
    result = runner.invoke(app, arguments)
    assert result.exit_code in (0, 1), f"exit {result.exit_code}: {result.output}\n{result.exception!r}"
    findings = json.loads(result.stdout)
    return result.exit_code, [finding for finding in findings if finding["severity"] == "error"]


def render(blueprint_file: Path, out: Path) -> dict[str, bytes]:
    result = runner.invoke(app, ["render", str(blueprint_file), "-o", str(out)])
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.output}\n{result.exception!r}"
    return {str(path.relative_to(out)): path.read_bytes() for path in sorted(out.rglob("*")) if path.is_file()}


@GENERATED
@given(blueprints())
def test_generated_blueprints_validate_and_render(blueprint):
    with tempfile.TemporaryDirectory(prefix="msgen-gen-") as work:
        path = write_blueprint(blueprint, Path(work) / "blueprint.yaml")
        for env in (None, *blueprint.get("environments", {})):
            code, errors = errors_of(path, env, deep=True)  # deep: every verification passes too
            assert errors == [] and code == 0, (env, errors)
        files = render(path, Path(work) / "out")
    assert files, "render exited 0 but wrote nothing"
    folders = {name.split("/")[0] for name in files}
    if "kubernetes" in blueprint:
        assert "kubernetes/kustomization.yaml" in files
    else:
        assert "kubernetes" not in folders
    if "compose" in blueprint:
        assert "compose/docker-compose.yml" in files
    for store in blueprint.get("datastores", {}):
        if "compose" in blueprint:
            assert any(name.startswith(f"datastores/{store}/") for name in files), store
        if "kubernetes" in blueprint:
            assert f"kubernetes/datastores/{store}.yaml" in files, store


@GENERATED
@given(blueprints())
def test_render_is_deterministic(blueprint):
    with tempfile.TemporaryDirectory(prefix="msgen-gen-") as work:
        path = write_blueprint(blueprint, Path(work) / "blueprint.yaml")
        first = render(path, Path(work) / "first")
        second = render(path, Path(work) / "second")
    assert sorted(first) == sorted(second)
    differing = [name for name in first if first[name] != second[name]]
    assert differing == [], differing
    digest = hashlib.sha256(b"".join(first[name] for name in sorted(first))).hexdigest()
    assert digest == hashlib.sha256(b"".join(second[name] for name in sorted(second))).hexdigest()


def test_written_blueprint_keeps_versions_as_strings(tmp_path):
    """YAML 1.2 reads an unquoted 8.0 or 1.30 as a number; the helper must quote them."""
    blueprint = {
        "version": 1,
        "project": "shop",
        "regions": {"home": {"jurisdiction": "NO"}},
        "services": {"web": {"image": "example/web:1.0", "port": 8080, "datastore": "db"}},
        "datastores": {"db": {"engine": "mysql", "version": "8.0"}},
        "kubernetes": {"version": "1.30"},
    }
    text = write_blueprint(blueprint, tmp_path / "blueprint.yaml").read_text(encoding="utf-8")
    assert "'8.0'" in text and "'1.30'" in text and "'NO'" in text


def test_prometheus_operator_flavour_validates(tmp_path):
    """Once refused: the Kubernetes schema check looked the operator's kinds up among the built-in
    ones. Those objects are proven against the operator's CRDs (test_vendored.py); `--deep` skips them."""
    init = runner.invoke(app, ["init", str(tmp_path), "--starter", "reference"])
    assert init.exit_code == 0, init.output
    path = tmp_path / "blueprint.yaml"
    text = path.read_text(encoding="utf-8")
    assert "retention: 15d}" in text
    path.write_text(text.replace("retention: 15d}", "retention: 15d, operator: true}"), encoding="utf-8")
    code, errors = errors_of(path)
    assert errors == [] and code == 0, errors
    deep = runner.invoke(app, ["validate", str(path), "--deep"])
    assert deep.exit_code == 0 and "verify-" not in deep.stdout, deep.output


def test_strategy_reaches_every_shape():
    """The same seed that drives the tests above draws every optional section, both sizes of
    region set, and every engine msgen accepts; no command runs here, so this stays cheap."""
    seen: set[str] = set()

    @settings(GENERATED, max_examples=150)
    @given(blueprints())
    def draw(blueprint):
        for section in ("gateway", "observability", "kubernetes", "compose", "environments", "datastores", "rtt_ms"):
            seen.add(f"{section}:{section in blueprint}")
        seen.add("regions:many" if len(blueprint["regions"]) > 1 else "regions:one")
        seen.update(f"engine:{store['engine']}" for store in blueprint.get("datastores", {}).values())
        services = blueprint["services"].values()
        seen.update(key for key in ("route", "calls", "metrics", "personal_data", "retry") if any(key in s for s in services))

    draw()
    expected = {
        f"{section}:{state}"
        for section in ("gateway", "observability", "kubernetes", "compose", "environments", "datastores")
        for state in (True, False)
    }
    expected |= {"rtt_ms:True", "regions:many", "regions:one", "route", "calls", "metrics", "personal_data", "retry"}
    expected |= {f"engine:{engine}" for engine in ENGINE_LINES}
    assert expected - seen == set()
