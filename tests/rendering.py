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


def expand(value: str, defined: dict[str, str]) -> str:
    """What a container receives for an EnvVar value, by the rules the API documents: `$(NAME)`
    is replaced by an earlier variable's value (left as it is when none is defined), `$$`
    becomes `$`, and any other `$` stays."""
    out, index = [], 0
    while index < len(value):
        char = value[index]
        if char != "$" or index + 1 == len(value):
            out.append(char)
            index += 1
            continue
        following = value[index + 1]
        if following == "$":
            out.append("$")
            index += 2
        elif following == "(":
            close = value.find(")", index + 2)
            if close == -1:
                out.append("$(")
                index += 2
            else:
                name = value[index + 2 : close]
                out.append(defined.get(name, f"$({name})"))
                index = close + 1
        else:
            out.append("$" + following)
            index += 2
    return "".join(out)
