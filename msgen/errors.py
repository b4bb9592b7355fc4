"""Errors msgen expects: each carries what a person needs to fix the input."""

from __future__ import annotations

from dataclasses import dataclass


class MsgenError(Exception):
    """Base of every error the CLI reports as a message (exit 2), never as a traceback."""

    exit_code = 2


@dataclass(frozen=True)
class LoadIssue:
    """One reason a blueprint cannot be read: where it is and what is wrong."""

    file: str
    line: int
    column: int
    path: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        text = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


class BlueprintError(MsgenError):
    """The blueprint cannot be read as a blueprint (exit 2). Holds one or more issues."""

    def __init__(self, issues: list[LoadIssue]):
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))

    @property
    def first(self) -> LoadIssue:
        return self.issues[0]


class OutputError(MsgenError):
    """The output folder cannot be written as asked (a foreign file in the way, no access)."""


class InternalError(MsgenError):
    """msgen's own output broke a rule it guarantees: a bug in msgen, not in the input (exit 3)."""

    exit_code = 3
