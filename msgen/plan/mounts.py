"""A service's own volumes and config files, as every target mounts them.

The names each target gives them are decided here once: the compose named volume of a
persistent volume, the key of each config file in the service's ConfigMap, the folder its copy
is written to, and the checksum that rolls the pods when a file changes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from msgen.model.blueprint import Blueprint
from msgen.units import Memory

# where the compose target writes a service's config files, relative to the output folder and
# to compose/ (where the compose file is, and what its relative paths start from)
COMPOSE_FILES_DIR = "files"
# what a ConfigMap key may not hold (a base name may: '@', '+')
_NOT_KEY = re.compile(r"[^-._a-zA-Z0-9]")


@dataclass(frozen=True)
class VolumePlan:
    name: str  # the blueprint's: the pod volume and the claim template's name
    path: str
    size: Memory
    persistent: bool
    compose_volume: str | None  # the named volume of a persistent one: <service>-<name>


@dataclass(frozen=True)
class FilePlan:
    source: str  # relative to the blueprint's folder
    path: str  # in the container
    key: str  # its key in the service's ConfigMap: its position and base name, unique and readable
    data: bytes

    @property
    def text(self) -> str | None:
        """The content as text when it is UTF-8 (a ConfigMap's `data`), else None (`binaryData`)."""
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError:
            return None


@dataclass(frozen=True)
class MountsPlan:
    """What a service mounts beyond msgen's own /tmp and secrets."""

    service: str
    volumes: tuple[VolumePlan, ...]  # by name
    files: tuple[FilePlan, ...]  # in the blueprint's order

    @property
    def persistent(self) -> tuple[VolumePlan, ...]:
        return tuple(volume for volume in self.volumes if volume.persistent)

    @property
    def config_map(self) -> str:
        return f"{self.service}-files"

    def compose_copy(self, file: FilePlan) -> str:
        """The copy of a file, relative to compose/."""
        return f"{COMPOSE_FILES_DIR}/{self.service}/{file.source}"

    @property
    def checksum(self) -> str:
        """The sha256 over every file's key and content: a pod mounts its files by subPath, which
        never sees a changed ConfigMap, so a change to this rolls the pods instead."""
        digest = hashlib.sha256()
        for file in self.files:
            digest.update(f"{file.key}\0{len(file.data)}\0".encode())
            digest.update(file.data)
        return digest.hexdigest()


def plan_mounts(blueprint: Blueprint, contents: dict[str, bytes]) -> dict[str, MountsPlan]:
    """Service name -> its volumes and files; `contents` holds each file's bytes by source (read at load)."""
    return {name: _service_mounts(name, blueprint, contents) for name in sorted(blueprint.services)}


def _service_mounts(name: str, blueprint: Blueprint, contents: dict[str, bytes]) -> MountsPlan:
    service = blueprint.services[name]
    volumes = tuple(
        VolumePlan(key, volume.path, volume.size, volume.persistent, f"{name}-{key}" if volume.persistent else None)
        for key, volume in sorted(service.volumes.items())
    )
    files = tuple(
        FilePlan(file.source, file.path, _key(index, file.source), contents[file.source])
        for index, file in enumerate(service.files)
    )
    return MountsPlan(name, volumes, files)


def _key(index: int, source: str) -> str:
    return f"{index}-{_NOT_KEY.sub('-', source.rsplit('/', 1)[-1])}"
