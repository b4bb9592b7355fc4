"""The layers import one way: read from the source of every module under msgen/ (every
import, also one inside a function), so a new import that breaks a rule fails here."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "msgen"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    relative = Path(*name.split("."))
    return (ROOT / relative).with_suffix(".py").is_file() or (ROOT / relative / "__init__.py").is_file()


def imported(path: Path) -> set[str]:
    """The msgen modules `path` imports, by name (`from a import b` names a.b when b is a module)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.split(".")[0] == "msgen")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "msgen":
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                names.add(candidate if is_module(candidate) else node.module)
    return names


GRAPH = {module_name(path): imported(path) for path in sorted(PACKAGE.rglob("*.py"))}


def under(name: str, *layers: str) -> bool:
    return any(name == f"msgen.{layer}" or name.startswith(f"msgen.{layer}.") for layer in layers)


def test_the_graph_is_read():
    assert "msgen.targets.compose" in GRAPH["msgen.targets.registry"]
    assert "msgen.plan" in GRAPH["msgen.api"]


def test_no_cycle():
    graph = {name: {other for other in imports if other != name} for name, imports in GRAPH.items()}
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:  # pragma: no cover - shown when it fails
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")


FORBIDDEN = [
    # (modules under, may not import)
    (("model",), ("plan", "targets", "checks", "verify", "writer", "views", "api", "cli")),
    (("plan",), ("targets", "checks", "verify", "writer", "views", "api", "cli")),
    (("targets",), ("checks", "verify", "writer", "views", "api", "cli")),
    (("checks",), ("verify", "writer", "views", "api", "cli")),
    (("verify",), ("checks", "writer", "views", "api", "cli")),
    (("writer",), ("targets", "plan", "checks", "verify", "model", "api", "cli")),
    # the importer reads compose files and writes a blueprint: model, loader, merge rules, the credential rule
    (("importer",), ("plan", "checks", "targets", "verify", "writer", "views", "api", "cli")),
    (("api", "views", "graph", "report", "starters", "findings", "loader", "units", "images", "hostcheck", "cron"), ("cli",)),
]


@pytest.mark.parametrize(("layers", "forbidden"), FORBIDDEN, ids=[" ".join(layers) for layers, _ in FORBIDDEN])
def test_layers_import_one_way(layers, forbidden):
    broken = sorted(
        f"{name} imports {other}"
        for name, imports in GRAPH.items()
        if under(name, *layers)
        for other in imports
        if under(other, *forbidden)
    )
    assert broken == []


def test_only_the_cli_imports_the_cli():
    assert [name for name, imports in GRAPH.items() if "msgen.cli" in imports and name != "msgen.__main__"] == []


def test_a_rule_breach_would_be_seen(tmp_path):
    """The reader sees imports inside functions and names submodules imported from a package."""
    module = tmp_path / "probe.py"
    module.write_text("def f():\n    from msgen.targets import compose\n    import msgen.writer\n")
    assert imported(module) == {"msgen.targets.compose", "msgen.writer"}


def test_plain_commands_never_import_the_kubernetes_client(tmp_path):
    """The client's models are for `--deep` only; plain validate and render do not load them."""
    assert importlib.util.find_spec("kubernetes") is not None  # installed: its absence would prove nothing
    code = (
        "import sys\n"
        "from msgen.cli import app\n"
        "try:\n"
        "    app(sys.argv[1:], prog_name='msgen')\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('kubernetes', 'kubernetes_validate', 'jsonschema_rs')))\n"
    )
    for arguments in (["validate", "blueprints/reference.yaml"], ["render", "blueprints/reference.yaml", "-o", str(tmp_path / "out")]):
        result = subprocess.run([sys.executable, "-c", code, *arguments], capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().splitlines()[-1] == "[]"
