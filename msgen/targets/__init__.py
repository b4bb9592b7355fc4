"""Targets: one module per technology, each `applies(plan)` and `render(plan) -> artifacts`.

An artifact is a file not built yet: rendering a target is cheap, and each file's objects are
built once, when the one pass over the files (msgen/api.py) reaches it, then read by the
checks and formatted by the writer, and dropped. Adding a target: a module here,
templates/<name>/, and an entry in TARGETS.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from msgen.jinja import render_template

# the shared templates: one document after msgen's header, or several, each after `---`
DOCUMENT_TEMPLATE = "common/document.yaml.j2"
DOCUMENTS_TEMPLATE = "common/documents.yaml.j2"


def _nothing() -> tuple:
    return ()


@dataclass(frozen=True, eq=False)
class Artifact:
    """One file to generate: its path relative to the output folder, its target, how to build
    its objects (its YAML documents, or its one JSON value; none for a file of plain text),
    and how to format them into the file's text."""

    path: str
    target: str
    format: Callable[[tuple], str]
    build: Callable[[], tuple] = _nothing
    copied: bytes | None = None  # a file copied as it is (a service's config file): its bytes

    def built(self) -> Built:
        return Built(self, self.build())


@dataclass(frozen=True, eq=False)
class Built:
    """An artifact with its objects built (do not mutate them)."""

    artifact: Artifact
    documents: tuple

    @property
    def path(self) -> str:
        return self.artifact.path

    @property
    def target(self) -> str:
        return self.artifact.target

    @property
    def text(self) -> str:
        """The file's text, formatted from its objects (each time it is read: nothing keeps it)."""
        return self.artifact.format(self.documents)

    @property
    def data(self) -> bytes:
        """The file's bytes: a copied file's as they are, else its text in UTF-8."""
        copied = self.artifact.copied
        return copied if copied is not None else self.text.encode("utf-8")

    def document(self) -> object:
        """The one document of a file that holds one."""
        return self.documents[0] if self.documents else None


def text_file(path: str, target: str, make: Callable[[], str]) -> Artifact:
    """A file of plain text (a config file, a script): no objects, only its text."""
    return Artifact(path, target, lambda _documents: make())


def copied_file(path: str, target: str, data: bytes) -> Artifact:
    """A file copied byte for byte (a service's config file): never parsed or formatted; its
    text, for whoever reads it as text, is its bytes decoded with replacement characters."""
    return Artifact(path, target, lambda _documents: data.decode("utf-8", errors="replace"), copied=data)


def templated(path: str, target: str, template: str, context: dict, name: str, build: Callable[[], object]) -> Artifact:
    """A file that holds one document, written by `template`, which finds the document under
    `name` beside `context`."""
    return Artifact(path, target, lambda documents: render_template(template, **context, **{name: documents[0]}), lambda: (build(),))


def templated_documents(path: str, target: str, template: str, context: dict, build: Callable[[], tuple]) -> Artifact:
    """A file of several YAML documents, written by `template` from `context` with the documents as `documents`."""
    return Artifact(path, target, lambda documents: render_template(template, **context, documents=documents), build)


class Target(Protocol):
    """A target module."""

    NAME: str
    PATHS: tuple[str, ...]

    def applies(self, plan) -> bool: ...

    def render(self, plan) -> list[Artifact]: ...


def render_targets(plan, modules: tuple[Target, ...]) -> list[Artifact]:
    """The files of the given target modules, sorted by path (nothing is built yet)."""
    artifacts = [artifact for module in modules for artifact in module.render(plan)]
    duplicates = sorted(path for path, count in Counter(a.path for a in artifacts).items() if count > 1)
    if duplicates:  # pragma: no cover - a bug in a target, not in the input
        raise RuntimeError(f"two targets render the same file: {', '.join(duplicates)}")
    return sorted(artifacts, key=lambda artifact: artifact.path)


def build_each(artifacts: list[Artifact]) -> Iterator[Built]:
    """Each artifact built, one at a time: its objects exist until the next one is built."""
    for artifact in artifacts:
        yield artifact.built()
