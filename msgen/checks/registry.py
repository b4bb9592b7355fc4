"""The check modules, in the order their findings are computed (cheap blueprint checks first)."""

from __future__ import annotations

from msgen.checks import (
    CheckContext,
    CheckModule,
    Inspector,
    architecture,
    blueprint,
    capacity,
    compose,
    datastores,
    kubernetes,
    observability,
    traefik,
)

CHECKS: tuple[CheckModule, ...] = (blueprint, compose, datastores, traefik, kubernetes, observability, architecture, capacity)


def inspectors(context: CheckContext) -> list[Inspector]:
    """The inspectors of every check module that reads built objects for this plan."""
    return [inspector for module in CHECKS if (inspector := module.inspector(context)) is not None]
