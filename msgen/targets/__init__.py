"""Targets: one module per technology, each `applies(plan)` and `render(plan) -> artifacts`.

Adding a target: a module here, templates/<name>/, and a line in TARGET_MODULES.
"""

from __future__ import annotations

import importlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TypeVar

import yaml

from msgen.jinja import render_template

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
T = TypeVar("T")


# A file's objects: built already (a tuple), or the function that builds them for each use
# (on a large platform, see Plan.keeps_built; `deferred` chooses).
Documents = tuple | Callable[[], tuple]


def deferred(plan, make: Callable[[], T]) -> T | Callable[[], T]:
    """`make()` now, kept, while the plan keeps what is built from it; on a large platform
    `make` itself, called by each use, whose result is dropped after it (Plan.keeps_built)."""
    return make() if plan.keeps_built else make


def realized(value: T | Callable[[], T]) -> T:
    """A value `deferred` returned, built if it was deferred."""
    return value() if callable(value) else value


@dataclass(frozen=True, eq=False)
class Artifact:
    """One generated file: its path relative to the output folder, its text, its target.

    A file built from objects has them in `documents` (its YAML documents, or the one JSON
    value; or the function that builds them, see `deferred`) and `content` is then the
    function that formats them: checks read the objects, only writing needs the text, which
    is formatted each time `text` is read and never kept. So `validate` formats nothing, and
    `render` holds one file's text at a time (a 5000-service platform writes ~170 MB).
    """

    path: str
    content: str | Callable[[], str]
    target: str
    documents: Documents | None = None

    @property
    def text(self) -> str:
        return self.content if isinstance(self.content, str) else self.content()

    def objects(self) -> tuple | None:
        """The file's objects (built now if they are deferred), or None for a file of text."""
        return realized(self.documents)

    def edited(self, text: str) -> Artifact:
        """The same file with other text (as a hand edit would leave it): its objects are parsed from the text."""
        return Artifact(self.path, text, self.target)


def templated(path: str, target: str, template: str, context: dict, **document: object) -> Artifact:
    """A file that holds one document, written by `template`, which finds the document under
    the one keyword name given here (`config=...`, built or deferred) beside `context`."""
    ((name, value),) = document.items()

    def text() -> str:
        return render_template(template, **context, **{name: realized(value)})

    return Artifact(path, text, target, one_document(value))


def one_document(value: object) -> Documents:
    """The Documents of a file that holds one document, built or deferred."""
    return (lambda: (value(),)) if callable(value) else (value,)


def templated_documents(path: str, target: str, template: str, context: dict, documents: Documents) -> Artifact:
    """A file of several YAML documents (built or deferred), written by `template` from
    `context` with the documents as `documents`."""
    return Artifact(path, lambda: render_template(template, **context, documents=realized(documents)), target, documents)


# the shared templates: one document after msgen's header, or several, each after `---`
DOCUMENT_TEMPLATE = "common/document.yaml.j2"
DOCUMENTS_TEMPLATE = "common/documents.yaml.j2"


# the order in which targets render; `base` (the output folder's .gitignore) always applies
TARGET_MODULES: tuple[str, ...] = ("base", "compose", "traefik", "kubernetes", "datastores", "observability")


def target_module(name: str) -> ModuleType:
    return importlib.import_module(f"msgen.targets.{name}")


def target_names() -> tuple[str, ...]:
    return TARGET_MODULES


def applicable_targets(plan) -> list[str]:
    return [name for name in TARGET_MODULES if target_module(name).applies(plan)]


def all_documents(artifact: Artifact) -> list:
    """Every object a YAML or JSON artifact holds, in order (do not mutate them)."""
    objects = artifact.objects()
    if objects is not None:
        return list(objects)
    if artifact.path.endswith(".json"):
        return [json.loads(artifact.text)]
    return [document for document in yaml.load_all(artifact.text, Loader=_YAML_LOADER) if document is not None]


def parsed(artifact: Artifact) -> object:
    """The one document a YAML or JSON artifact holds (do not mutate it)."""
    documents = all_documents(artifact)
    return documents[0] if documents else None


def render_targets(plan, names: list[str]) -> list[Artifact]:
    """Render the named targets, in registry order, into artifacts sorted by path."""
    artifacts: list[Artifact] = []
    for name in TARGET_MODULES:
        if name in names:
            artifacts.extend(target_module(name).render(plan))
    paths = [artifact.path for artifact in artifacts]
    duplicates = sorted(path for path, count in Counter(paths).items() if count > 1)
    if duplicates:  # pragma: no cover - a bug in a target, not in the input
        raise RuntimeError(f"two targets render the same file: {', '.join(duplicates)}")
    return sorted(artifacts, key=lambda artifact: artifact.path)
