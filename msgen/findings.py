"""Findings: a blueprint that loads but breaks a rule a user can fix."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from msgen.loader import KeyPath, SourceMap, format_path

Severity = Literal["error", "warning", "info"]
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
# the ids of `msgen host check` (msgen/hostcheck.py), judged on the machine: validate never
# produces them, so a suppress entry for one is not "unused" there
HOST_CHECK_PREFIX = "host-"


@dataclass(frozen=True)
class Finding:
    id: str
    severity: Severity
    message: str
    path: str
    hint: str = ""
    file: str = ""
    line: int = 0
    column: int = 0
    suppressed: str | None = None  # the suppress entry's reason, when silenced

    def to_dict(self) -> dict:
        data = {
            "id": self.id,
            "severity": self.severity,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "hint": self.hint,
        }
        if self.suppressed is not None:
            data["suppressed"] = self.suppressed
        return data


def finding(id: str, severity: Severity, at: KeyPath, message: str, hint: str = "") -> Finding:
    """A finding about the blueprint element at key path `at` (located later)."""
    return Finding(id=id, severity=severity, message=message, path=format_path(at), hint=hint, file="", line=0, column=0)


def locate(findings: list[Finding], source: SourceMap) -> list[Finding]:
    """Fill in file, line and column from the source map, and sort for stable output."""
    located = []
    for item in findings:
        path = parse_path(item.path)
        line, column = source.locate(path)
        located.append(replace(item, file=source.file, line=line, column=column))
    return sorted(located, key=finding_order)


def finding_order(item: Finding) -> tuple:
    """The order findings are reported in: severity, then where they are in the file."""
    return (SEVERITY_ORDER[item.severity], item.line, item.column, item.id, item.path, item.message)


def parse_path(text: str) -> KeyPath:
    parts: list[str | int] = []
    for chunk in text.split("."):
        if not chunk:
            continue
        name, _, rest = chunk.partition("[")
        if name:
            parts.append(name)
        for index in filter(None, rest.replace("]", "").split("[")) if rest else []:
            parts.append(int(index))
    return tuple(parts)


def fails(findings: list[Finding], strict: bool = False) -> bool:
    """Whether these findings make `validate` exit 1."""
    failing = {"error", "warning"} if strict else {"error"}
    return any(f.severity in failing and f.suppressed is None for f in findings)


def apply_suppressions(found: list[Finding], blueprint) -> list[Finding]:
    """Mark the findings a `suppress` entry silences; an entry that matches none is itself a finding."""
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
        if (entry.id, entry.at) not in used and not entry.id.startswith(HOST_CHECK_PREFIX):
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
