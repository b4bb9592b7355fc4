"""Files every output folder gets: a .gitignore that keeps secret values out of Git, and a
.gitattributes that marks msgen's files as generated."""

from __future__ import annotations

from msgen.contract import MANIFEST_FILE
from msgen.jinja import render_template
from msgen.targets import Artifact, compose, datastores, kubernetes, observability, text_file, traefik

NAME = "base"
PATHS = (".gitignore", ".gitattributes")  # where this target writes (a folder ends in /)


def applies(plan) -> bool:
    return True


def render(plan) -> list[Artifact]:
    return [
        text_file(".gitignore", NAME, lambda: render_template("base/gitignore.j2", plan=plan)),
        text_file(".gitattributes", NAME, lambda: render_template("base/gitattributes.j2", project=plan.project, patterns=generated_patterns())),
    ]


def generated_patterns() -> list[str]:
    """Git attribute patterns for every path msgen writes: its own files and each target's folders."""
    paths = [*PATHS, MANIFEST_FILE, *(path for module in (compose, traefik, kubernetes, datastores, observability) for path in module.PATHS)]
    return [f"/{path}**" if path.endswith("/") else f"/{path}" for path in paths]
