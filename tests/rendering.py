"""Rendering in memory for tests: every file of a blueprint built and kept, with its findings,
and verification over files a test may have edited."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from msgen import api
from msgen.findings import Finding, locate
from msgen.targets import Artifact, Built
from msgen.verify import VerifyContext
from msgen.verify.registry import verify


@dataclass(frozen=True)
class Rendered:
    planned: api.Planned
    findings: tuple[Finding, ...]
    files: dict[str, Built]

    @property
    def plan(self):
        return self.planned.plan

    @property
    def loaded(self):
        return self.planned.loaded

    @property
    def artifacts(self) -> list[Built]:
        return [self.files[path] for path in sorted(self.files)]


def render_in_memory(path: Path, env: str | None = None, deep: bool = False) -> Rendered:
    """Findings as `msgen validate` reports them, and every file built (and kept)."""
    planned = api.plan_blueprint(path, env)
    files: dict[str, Built] = {}
    findings = api.one_pass(planned, deep, take=lambda built: files.__setitem__(built.path, built))
    return Rendered(planned, findings, files)


def edited(built: Built, text: str) -> Built:
    """The same file as a hand edit would leave it: its objects parsed from `text`."""
    if built.path.endswith(".json"):
        documents: tuple = (json.loads(text),)
    elif built.path.endswith((".yml", ".yaml")):
        documents = tuple(document for document in yaml.safe_load_all(text) if document is not None)
    else:
        documents = ()
    return Built(Artifact(built.path, built.target, lambda _documents: text), documents)


def verification(rendered: Rendered, files: dict[str, Built] | None = None) -> list[Finding]:
    """What `--deep` reports over `files` (by default the rendered ones), located."""
    context = VerifyContext(rendered.loaded.blueprint, rendered.plan, dict(files if files is not None else rendered.files))
    return locate(verify(context), rendered.loaded.source)
