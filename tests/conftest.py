"""Shared fixtures: the starter blueprints, and writing a blueprint from text."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLUEPRINTS = ROOT / "blueprints"
EXAMPLES = ROOT / "examples"


@pytest.fixture
def reference_blueprint() -> Path:
    return BLUEPRINTS / "reference.yaml"


@pytest.fixture
def minimal_blueprint() -> Path:
    return BLUEPRINTS / "minimal.yaml"


@pytest.fixture
def write_blueprint(tmp_path):
    """Write YAML text (dedented) to a file in tmp_path and return its path."""

    def write(text: str, name: str = "blueprint.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="module")
def mariadb_base():
    """A MariaDB data dir initialised once per module (tests/realservers.py); each boot copies it."""
    from realservers import init_mariadb_base, owned_dir

    with owned_dir("mysql") as root:
        yield init_mariadb_base(root)
