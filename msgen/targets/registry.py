"""The targets, in the order they render; `base` (the output folder's .gitignore) always applies."""

from __future__ import annotations

from msgen.targets import Target, base, compose, datastores, kubernetes, observability, traefik

TARGETS: tuple[Target, ...] = (base, compose, traefik, kubernetes, datastores, observability)


def target_names() -> tuple[str, ...]:
    return tuple(module.NAME for module in TARGETS)


def owned_paths() -> dict[str, tuple[str, ...]]:
    """Target name -> where it writes: the writer refuses a manifest entry anywhere else."""
    return {module.NAME: module.PATHS for module in TARGETS}


def applicable(plan) -> tuple[Target, ...]:
    return tuple(module for module in TARGETS if module.applies(plan))
