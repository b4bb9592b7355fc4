"""Verification: proof that msgen's own output is valid for its consumers (schemas and the
client's models, references, selectors, NetworkPolicy reachability, PromQL, server
variables). It runs in the test suite and, for users who ask, with `--deep`. A problem found
here is a bug in msgen, not in the blueprint: it is reported as a finding whose id starts
with `verify-` and whose hint says to report it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from msgen.findings import Finding
from msgen.model.blueprint import Blueprint
from msgen.plan import Plan
from msgen.targets import Built

REPORT_HINT = "a bug in msgen's output, not in the blueprint: please report it with the blueprint"


@dataclass
class VerifyContext:
    """The blueprint, its plan, and every file built in this run (kept: `--deep` reads across files)."""

    blueprint: Blueprint
    plan: Plan
    files: dict[str, Built] = field(default_factory=dict)

    def read(self, built: Built) -> None:
        self.files[built.path] = built

    def document(self, path: str) -> object:
        built = self.files.get(path)
        return None if built is None else built.document()


def as_verification(found: Iterable[Finding]) -> Iterator[Finding]:
    """Findings of a verification module under ids of their own, with the hint to report them."""
    for item in found:
        yield replace(item, id=f"verify-{item.id}", severity="error", hint=REPORT_HINT)
