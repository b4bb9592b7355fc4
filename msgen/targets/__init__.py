"""Targets: one module per technology, each `applies(plan)` and `render(plan) -> artifacts`.

Adding a target: a module here, templates/<name>/, and a line in TARGET_MODULES.
"""

from __future__ import annotations

import importlib
from collections import Counter
from dataclasses import dataclass
from types import ModuleType

import yaml


@dataclass(frozen=True)
class Artifact:
    """One generated file: its path relative to the output folder, its text, its target."""

    path: str
    text: str
    target: str


# the order in which targets render; `base` (the output folder's .gitignore) always applies
TARGET_MODULES: tuple[str, ...] = ("base", "compose", "traefik", "kubernetes", "datastores", "observability")


def target_module(name: str) -> ModuleType:
    return importlib.import_module(f"msgen.targets.{name}")


def target_names() -> tuple[str, ...]:
    return TARGET_MODULES


def applicable_targets(plan) -> list[str]:
    return [name for name in TARGET_MODULES if target_module(name).applies(plan)]


# The document behind each YAML text a target rendered from one (by the text's identity),
# so that checks read what was rendered without parsing it back; a text changed after
# rendering (as tests do) is not found and gets parsed.
_DOCUMENTS: dict[int, tuple[str, object]] = {}
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def remember(text: str, document: object) -> str:
    """Record that `text` is the YAML of `document`; returns the text."""
    _DOCUMENTS[id(text)] = (text, document)
    return text


def parsed(artifact: Artifact) -> object:
    """The document a YAML artifact holds (do not mutate it)."""
    entry = _DOCUMENTS.get(id(artifact.text))
    if entry is not None and entry[0] is artifact.text:
        return entry[1]
    return yaml.load(artifact.text, Loader=_YAML_LOADER)


def render_targets(plan, names: list[str]) -> list[Artifact]:
    """Render the named targets, in registry order, into artifacts sorted by path."""
    _DOCUMENTS.clear()  # one render at a time: keep only this one's documents
    artifacts: list[Artifact] = []
    for name in TARGET_MODULES:
        if name in names:
            artifacts.extend(target_module(name).render(plan))
    paths = [artifact.path for artifact in artifacts]
    duplicates = sorted(path for path, count in Counter(paths).items() if count > 1)
    if duplicates:  # pragma: no cover - a bug in a target, not in the input
        raise RuntimeError(f"two targets render the same file: {', '.join(duplicates)}")
    return sorted(artifacts, key=lambda artifact: artifact.path)
