"""The image table: the reference of every image msgen chooses, after the blueprint's `images`.

Built once from the blueprint; every target reads its references here, never from
msgen/images.py directly, so a mirror or an override reaches compose, Kubernetes and the
Helm values alike. Without an `images` section each reference is msgen's own pin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from msgen.images import IMAGES
from msgen.model.blueprint import Blueprint, ImageOverride

DOCKER_HUB = "docker.io"
Source = Literal["msgen", "mirrored", "overridden"]


@dataclass(frozen=True)
class ResolvedImage:
    """One image as pulled: `name[:tag][@digest]`; a tag of None on a datastore engine is its version."""

    key: str
    name: str  # everything before the tag: registry (when not Docker Hub) and repository
    tag: str | None
    digest: str | None
    source: Source
    by_version: bool  # the tag is the datastore's version unless an override gives one

    def ref(self, version: str | None = None) -> str:
        tag = version if self.by_version and self.tag is None else self.tag
        if self.by_version and tag is None:
            raise ValueError(f"image {self.key} is pinned by the blueprint's version: pass it")
        return self.name + (f":{tag}" if tag else "") + (f"@{self.digest}" if self.digest else "")


@dataclass(frozen=True)
class ImageTable:
    images: dict[str, ResolvedImage]  # image key -> how it is pulled

    def ref(self, key: str, version: str | None = None) -> str:
        """The reference of an image; datastore engines pass their version."""
        return self.images[key].ref(version)

    def __getitem__(self, key: str) -> ResolvedImage:
        return self.images[key]


def split_registry(name: str) -> tuple[str, str]:
    """(registry, path) by Docker's rule: the first component is a registry when it has a '.'
    or a ':' or is localhost; otherwise the image is on Docker Hub, where a one-part name is an
    official image under library/."""
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return DOCKER_HUB, name if rest else f"library/{name}"


def split_reference(reference: str) -> tuple[str, str | None, str | None]:
    """(name, tag, digest) of a full reference; a ':' after the last '/' starts the tag."""
    name, _, digest = reference.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :], digest or None
    return name, None, digest or None


def mirrored(name: str, registry: str) -> str:
    """The name on a pull-through mirror: the upstream registry replaced by the mirror prefix."""
    return f"{registry}/{split_registry(name)[1]}"


def _resolve(key: str, override: ImageOverride | None, registry: str | None) -> ResolvedImage:
    facts = IMAGES[key]
    by_version = facts.tag is None
    if override is not None and override.image is not None:
        name, tag, digest = split_reference(override.image)
        return ResolvedImage(key, name, tag, digest, "overridden", by_version=by_version and tag is None and digest is None)
    name = mirrored(facts.repository, registry) if registry else facts.repository
    tag, digest = facts.tag, None
    if override is not None:
        digest = override.digest
        # a digest alone drops msgen's tag: the reference then names exactly the digest
        tag = override.tag if override.tag is not None or digest is None else None
        by_version = by_version and override.tag is None and digest is None
    source: Source = "overridden" if override is not None else ("mirrored" if registry else "msgen")
    return ResolvedImage(key, name, tag, digest, source, by_version)


def plan_images(blueprint: Blueprint) -> ImageTable:
    """Every image key's reference after the blueprint's mirror and overrides, sorted by key."""
    chosen = blueprint.images
    return ImageTable({key: _resolve(key, chosen.overrides.get(key), chosen.registry) for key in sorted(IMAGES)})
