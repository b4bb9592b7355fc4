"""Which engine and Kubernetes versions the blueprint accepts."""

from __future__ import annotations

import re

KUBERNETES_VERSIONS = tuple(f"1.{minor}" for minor in range(25, 38))

# engine -> the release lines msgen knows how to tune; a patch version pins the image
ENGINE_LINES: dict[str, tuple[str, ...]] = {
    "mysql": ("8.0", "8.4"),
    "mariadb": ("10.11", "11.4"),
    "postgres": ("14", "15", "16", "17"),
    "redis": ("7",),
}


def release_line(engine: str, version: str) -> str | None:
    """The supported line a version belongs to ("8.0.40" -> "8.0"), or None."""
    for line in ENGINE_LINES[engine]:
        if version == line or re.fullmatch(re.escape(line) + r"(\.[0-9]+)+", version):
            return line
    return None


def check_engine_version(engine: str, version: str) -> None:
    if release_line(engine, version) is None:
        known = ", ".join(f'"{line}"' for line in ENGINE_LINES[engine])
        raise ValueError(
            f'{engine} version {version!r} is not supported; use {known} (a patch such as "{ENGINE_LINES[engine][0]}.1" pins the image)'
        )
