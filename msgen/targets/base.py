"""Files every output folder gets: a .gitignore that keeps secret values out of Git."""

from __future__ import annotations

from msgen.jinja import render_template
from msgen.targets import Artifact, text_file

NAME = "base"
PATHS = (".gitignore",)  # where this target writes (a folder ends in /)


def applies(plan) -> bool:
    return True


def render(plan) -> list[Artifact]:
    return [text_file(".gitignore", NAME, lambda: render_template("base/gitignore.j2", plan=plan))]
