"""The sdist and the wheel, built by hatchling itself (the build backend pyproject.toml names).

The sdist must hold the project and nothing that happens to lie beside it (rendered examples,
demo output, virtualenvs, caches); the wheel must carry the templates, the starter blueprints
and the licence, since `msgen init` and `msgen render` read them from the installed package.
"""

from __future__ import annotations

import email.parser
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import msgen
from tests import realtools

ROOT = Path(__file__).resolve().parents[1]
SDIST_TOP_LEVEL = {"msgen", "templates", "blueprints", "docs", "README.md", "CHANGELOG.md", "LICENSE", "pyproject.toml", "PKG-INFO", ".gitignore"}
NEVER_SHIPPED = ("demo-out", "examples", ".venv", "tests", "benchmarks", "scripts", ".ci", ".git")


def hatchling_build(target: str, project: Path, out: Path) -> Path:
    """Build one target of `project` into `out` with hatchling's own command; the built file."""
    realtools.python_module("hatchling", "pip install -e '.[test]'")
    result = subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", target, "-d", str(out)],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.iterdir()
    return built


@pytest.fixture(scope="module")
def sdist(tmp_path_factory) -> Path:
    return hatchling_build("sdist", ROOT, tmp_path_factory.mktemp("sdist"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return hatchling_build("wheel", ROOT, tmp_path_factory.mktemp("wheel"))


def sdist_members(sdist: Path) -> list[str]:
    """Member paths without the `msgen-VERSION/` folder every sdist member sits in."""
    with tarfile.open(sdist) as archive:
        names = [member.name for member in archive.getmembers() if member.isfile()]
    top = f"msgen-{msgen.__version__}/"
    assert all(name.startswith(top) for name in names), names
    return sorted(name.removeprefix(top) for name in names)


def project_files(folder: str) -> set[str]:
    """The files of one project folder as they lie on disk, without Python's caches."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def metadata(text: str) -> email.message.Message:
    return email.parser.Parser().parsestr(text)


def test_sdist_holds_only_the_project(sdist):
    members = sdist_members(sdist)
    assert "LICENSE" in members
    assert {member.split("/")[0] for member in members} <= SDIST_TOP_LEVEL
    assert not [member for member in members if member.split("/")[0] in NEVER_SHIPPED]
    assert not [member for member in members if "__pycache__" in member or member.endswith(".pyc")]


def test_sdist_holds_every_source_file(sdist):
    members = set(sdist_members(sdist))
    for folder in ("msgen", "templates", "blueprints", "docs"):
        missing = project_files(folder) - members
        assert not missing, f"{folder}/ files missing from the sdist: {sorted(missing)[:10]}"


def test_sdist_metadata_carries_the_licence(sdist):
    with tarfile.open(sdist) as archive:
        pkg_info = archive.extractfile(f"msgen-{msgen.__version__}/PKG-INFO").read().decode()
    assert metadata(pkg_info)["License-Expression"] == "Apache-2.0"


def wheel_members(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return sorted(archive.namelist())


def test_wheel_carries_templates_blueprints_and_licence(wheel):
    members = set(wheel_members(wheel))
    templates = {"msgen/" + name for name in project_files("templates")}
    blueprints = {"msgen/" + name for name in project_files("blueprints")}
    assert templates and templates <= members
    assert {"msgen/blueprints/minimal.yaml", "msgen/blueprints/reference.yaml"} <= blueprints <= members
    dist_info = f"msgen-{msgen.__version__}.dist-info"
    assert f"{dist_info}/licenses/LICENSE" in members
    assert not [member for member in members if "__pycache__" in member or member.split("/")[0] in NEVER_SHIPPED]


def test_wheel_metadata_names_the_licence_the_authors_and_the_urls(wheel):
    with zipfile.ZipFile(wheel) as archive:
        fields = metadata(archive.read(f"msgen-{msgen.__version__}.dist-info/METADATA").decode())
        licence = archive.read(f"msgen-{msgen.__version__}.dist-info/licenses/LICENSE").decode()
    assert fields["License-Expression"] == "Apache-2.0"
    assert fields.get_all("License-File") == ["LICENSE"]
    assert fields["Author"] == "The msgen authors"
    # PyPI refuses an upload that has both a licence expression and a licence classifier
    assert not [value for value in fields.get_all("Classifier") if value.startswith("License ::")]
    assert {url.split(",")[0] for url in fields.get_all("Project-URL")} == {"Homepage", "Documentation", "Changelog", "Issues"}
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    assert licence == (ROOT / "LICENSE").read_text()


def test_the_sdist_builds_the_same_wheel(sdist, wheel, tmp_path):
    """A packager builds the wheel from the sdist: it must hold everything that build reads."""
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    rebuilt = hatchling_build("wheel", tmp_path / "unpacked" / f"msgen-{msgen.__version__}", tmp_path / "out")
    assert wheel_members(rebuilt) == wheel_members(wheel)
