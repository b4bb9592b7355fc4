"""Generated-file conventions: one header wording on every file that can hold a comment, and a
.gitattributes that marks exactly msgen's files as generated (read back by git itself)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from msgen import api
from msgen.jinja import GENERATED

ROOT = Path(__file__).resolve().parent.parent
COMMENTED = {".yml": "#", ".yaml": "#", ".conf": "#", ".cnf": "#", ".sh": "#", ".alloy": "//", ".gitignore": "#", ".gitattributes": "#"}


@pytest.mark.parametrize("example", ["minimal", "reference", "job-queue"])
def test_every_file_that_can_hold_a_comment_opens_with_the_one_header(example):
    folder = ROOT / "examples" / example
    project = next(line.split(":", 1)[1].strip() for line in (folder / "blueprint.yaml").read_text().splitlines() if line.startswith("project:"))
    expected = GENERATED.format(project=project)
    checked = 0
    for path in sorted(folder.rglob("*")):
        comment = COMMENTED.get(path.suffix or path.name)
        if comment is None or path.name == "blueprint.yaml" or "files" in path.relative_to(folder).parts:
            continue  # the blueprint and the copied config files are the user's
        lines = path.read_text(encoding="utf-8").splitlines()
        first = lines[1] if lines[0].startswith("#!") else lines[0]
        assert first == f"{comment} {expected}", path
        checked += 1
    assert checked > 10


def test_git_sees_msgens_files_as_generated_and_the_blueprint_as_not(tmp_path):
    git = shutil.which("git")
    assert git is not None, "git is needed (it is part of every checkout)"
    repo = tmp_path / "platform"
    repo.mkdir()
    subprocess.run([git, "init", "-q", str(repo)], check=True)
    blueprint = repo / "blueprint.yaml"
    shutil.copy(ROOT / "blueprints" / "minimal.yaml", blueprint)
    (repo / "README.md").write_text("ours\n")
    assert api.render(api.RenderRequest(blueprint, repo)).wrote
    paths = ["compose/docker-compose.yml", "kubernetes/kustomization.yaml", ".msgen-manifest.json", ".gitignore", "blueprint.yaml", "README.md"]
    done = subprocess.run([git, "check-attr", "linguist-generated", "--", *paths], cwd=repo, capture_output=True, text=True, check=True)
    seen = dict(line.split(": linguist-generated: ") for line in done.stdout.splitlines())
    assert seen == {**{path: "true" for path in paths[:4]}, "blueprint.yaml": "unspecified", "README.md": "unspecified"}
