"""Every check of `msgen validate`. Each finding id is produced by exactly one module here.

A check is a function `(CheckContext) -> Iterable[Finding]`; add it to CHECKS in the order
findings should be computed (cheap blueprint checks first).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from msgen.findings import Finding, finding, locate
from msgen.loader import SourceMap
from msgen.model.blueprint import Blueprint
from msgen.plan import Plan
from msgen.targets import Artifact


@dataclass
class CheckContext:
    blueprint: Blueprint
    plan: Plan
    source: SourceMap
    # the rendered artifacts of every target that applies, by relative path
    artifacts: dict[str, Artifact] = field(default_factory=dict)


Check = Callable[[CheckContext], Iterable[Finding]]


def all_checks() -> list[Check]:
    # imported here so that each checks module may import the plan and targets freely
    from msgen.checks import blueprint as blueprint_checks

    checks: list[Check] = [blueprint_checks.check]
    for module in _optional_modules():
        checks.append(module.check)
    return checks


def _optional_modules() -> list:
    """Check modules of the later targets, in a fixed order."""
    import importlib

    modules = []
    for name in CHECK_MODULES:
        modules.append(importlib.import_module(f"msgen.checks.{name}"))
    return modules


# one line per checks module (besides `blueprint`), in the order they run
CHECK_MODULES: list[str] = ["compose", "datastores", "traefik", "kubernetes", "observability", "architecture"]


def run_checks(context: CheckContext) -> list[Finding]:
    """Run every check, apply the blueprint's `suppress` entries, locate and sort."""
    from msgen.checks import kubernetes

    # slow judges that need no other check's result start first (in a second process on a
    # large platform); their findings are collected last
    pending = [kubernetes.start_models(context)]
    found: list[Finding] = []
    try:
        for check in all_checks():
            found.extend(check(context))
    except BaseException:
        for collect in pending:  # a second process is waited for, whatever it says
            with contextlib.suppress(Exception):
                collect()
        raise
    for collect in pending:
        found.extend(collect())
    return locate(apply_suppressions(found, context.blueprint), context.source)


def apply_suppressions(found: list[Finding], blueprint: Blueprint) -> list[Finding]:
    from dataclasses import replace

    entries = {(entry.id, entry.at): entry for entry in blueprint.suppress}
    used: set[tuple[str, str]] = set()
    result = []
    for item in found:
        entry = entries.get((item.id, item.path))
        if entry is not None:
            used.add((item.id, item.path))
            item = replace(item, suppressed=entry.reason)
        result.append(item)
    for index, entry in enumerate(blueprint.suppress):
        if (entry.id, entry.at) not in used:
            result.append(
                finding(
                    "suppress-unused",
                    "info",
                    ("suppress", index),
                    f"suppress entry {entry.id} at {entry.at} matches no finding",
                    "remove it, or check the id and key path",
                )
            )
    return result
