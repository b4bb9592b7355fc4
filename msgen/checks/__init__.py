"""Findings: what a user can fix in the blueprint. Each finding id comes from one module here.

A check module has `check(context)`, the findings computed from the blueprint and the plan,
and `inspector(context)`, None or an object that reads each file's objects once as the one
pass over the files builds them (`read`) and gives its findings at the end (`findings`):
the rules about what gets deployed judge the objects as they will be deployed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from msgen.findings import Finding
from msgen.loader import SourceMap
from msgen.model.blueprint import Blueprint
from msgen.plan import Plan
from msgen.targets import Built


@dataclass(frozen=True)
class CheckContext:
    blueprint: Blueprint
    plan: Plan
    source: SourceMap


class Inspector(Protocol):
    def read(self, built: Built) -> None: ...

    def findings(self) -> Iterable[Finding]: ...


class CheckModule(Protocol):
    def check(self, context: CheckContext) -> Iterable[Finding]: ...

    def inspector(self, context: CheckContext) -> Inspector | None: ...
