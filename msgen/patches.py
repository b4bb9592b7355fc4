"""The patch stage: the blueprint's own changes to the objects msgen built, before any check.

`kubernetes.patches` apply RFC 6902 JSON Patches or RFC 7386 merge patches to the rendered
objects of a kind and name; `compose.overrides` merge attributes over a container of the
compose file by compose's rules for override files (msgen/composemerge.py). The checks and
the writer read the patched objects, so a patch that publishes a port or drops a limit gets
the same findings as if msgen had written it. A patch that targets nothing, or cannot apply,
is a load error at its place in the blueprint.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator

from msgen.composemerge import MergeError, merge_service
from msgen.contract import COMPOSE_FILE
from msgen.errors import BlueprintError
from msgen.jsonpatch import PatchError, json_patch, merge_patch
from msgen.loader import KeyPath, SourceMap
from msgen.model.blueprint import Blueprint, KubernetesPatch
from msgen.targets import Built
from msgen.targets.compose import escape
from msgen.targets.kubernetes import is_manifest

PATCHES = ("kubernetes", "patches")
OVERRIDES = ("compose", "overrides")


class PatchFailure(Exception):
    """Patches that target nothing or cannot apply, by their key paths in the blueprint."""

    def __init__(self, issues: list[tuple[KeyPath, str, str]]):
        self.issues = issues
        super().__init__("; ".join(message for _, message, _ in issues))

    def located(self, source: SourceMap) -> BlueprintError:
        """The load error a person reads: each issue at its file, line and column."""
        return BlueprintError([source.issue(path, message, hint) for path, message, hint in self.issues])


class Patching:
    """Applies the blueprint's patches to each file as it is built, and remembers which
    patches found their objects, so one that found none is reported at the end."""

    def __init__(self, blueprint: Blueprint):
        self.patches: tuple[KubernetesPatch, ...] = tuple(blueprint.kubernetes.patches) if blueprint.kubernetes else ()
        self.overrides: dict[str, dict] = dict(blueprint.compose.overrides) if blueprint.compose else {}
        self.matched: set[int] = set()
        self.objects: set[str] = set()  # `Kind/name` of every manifest object seen, for did-you-mean
        self.saw_manifests = False

    def each(self, files: Iterable[Built]) -> Iterator[Built]:
        """The files, each patched; then raise for a patch that matched nothing."""
        for built in files:
            yield self.patched(built)
        self.finish()

    def patched(self, built: Built) -> Built:
        if built.path == COMPOSE_FILE and self.overrides:
            return Built(built.artifact, (self._compose(built.document()),))
        if self.patches and is_manifest(built.path):
            self.saw_manifests = True
            return Built(built.artifact, tuple(self._object(document, built.path) for document in built.documents))
        return built

    def finish(self) -> None:
        """Every Kubernetes patch must have found an object (when the manifests were built)."""
        if not self.saw_manifests:
            return
        issues = [self._unmatched(index, patch) for index, patch in enumerate(self.patches) if index not in self.matched]
        if issues:
            raise PatchFailure(issues)

    # --- Kubernetes ------------------------------------------------------------------------

    def _object(self, document: dict, path: str) -> dict:
        metadata = document.get("metadata") or {}
        kind, name, namespace = document.get("kind"), metadata.get("name"), metadata.get("namespace")
        self.objects.add(f"{kind}/{name}")
        for index, patch in enumerate(self.patches):
            target = patch.target
            if (target.kind, target.name) != (kind, name) or target.namespace not in (None, namespace):
                continue
            self.matched.add(index)
            document = self._apply(index, patch, document, f"{path}: {kind}/{name}")
        return document

    def _apply(self, index: int, patch: KubernetesPatch, document: dict, where: str) -> dict:
        if patch.merge_patch is not None:
            return merge_patch(document, patch.merge_patch)
        try:
            return json_patch(document, [operation.as_operation() for operation in patch.json_patch])
        except PatchError as error:
            at = (*PATCHES, index, "json_patch", error.index)
            raise PatchFailure([(at, f"cannot apply to {where}: {error}", "")]) from None

    def _unmatched(self, index: int, patch: KubernetesPatch) -> tuple[KeyPath, str, str]:
        target = patch.target
        wanted = f"{target.kind}/{target.name}"
        close = difflib.get_close_matches(wanted, sorted(self.objects), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else "msgen render writes every object; kubernetes/ lists them"
        scope = f" in namespace {target.namespace}" if target.namespace else ""
        return ((*PATCHES, index, "target"), f"no rendered object is {wanted}{scope}", hint)

    # --- compose ---------------------------------------------------------------------------

    def _compose(self, document: dict) -> dict:
        services = dict(document["services"])
        for name, override in self.overrides.items():
            at: KeyPath = (*OVERRIDES, name)
            if name not in services:
                close = difflib.get_close_matches(name, sorted(services), n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}?" if close else f"the file's containers: {', '.join(sorted(services))}"
                raise PatchFailure([(at, f"the compose file has no container {name!r}", hint)])
            try:
                services[name] = merge_service(services[name], escape(override))
            except MergeError as error:
                raise PatchFailure([((*at, *error.path), str(error), "")]) from None
        return {**document, "services": services}
