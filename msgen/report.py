"""Findings as text or JSON (and, from the architecture checks, SARIF)."""

from __future__ import annotations

import json
from pathlib import PurePath
from urllib.parse import quote

from msgen import __version__
from msgen.findings import Finding


def findings_text(findings: list[Finding]) -> str:
    lines = []
    for item in findings:
        where = f"{item.file}:{item.line}:{item.column}"
        status = f" [suppressed: {item.suppressed}]" if item.suppressed is not None else ""
        lines.append(f"{where}: {item.severity}: {item.id}: {item.path}: {item.message}{status}")
        if item.hint:
            lines.append(f"    hint: {item.hint}")
    return "\n".join(lines)


def findings_json(findings: list[Finding]) -> str:
    return json.dumps([item.to_dict() for item in findings], indent=2)


def summary(findings: list[Finding]) -> str:
    active = [f for f in findings if f.suppressed is None]
    counts = {severity: sum(1 for f in active if f.severity == severity) for severity in ("error", "warning", "info")}
    suppressed = len(findings) - len(active)
    text = f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info"
    return text + (f", {suppressed} suppressed" if suppressed else "")


SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVELS = {"error": "error", "warning": "warning", "info": "note"}


def findings_sarif(findings: list[Finding]) -> dict:
    """Findings as one SARIF 2.1.0 run, so code-scanning UIs show them inline in the blueprint."""
    rule_ids = sorted({item.id for item in findings})
    index = {rule: position for position, rule in enumerate(rule_ids)}
    results = []
    for item in findings:
        physical: dict = {"artifactLocation": {"uri": quote(PurePath(item.file).as_posix())}}
        if item.line >= 1:  # SARIF lines and columns start at 1; 0 means "the whole file"
            physical["region"] = {"startLine": item.line, "startColumn": max(item.column, 1)}
        result: dict = {
            "ruleId": item.id,
            "ruleIndex": index[item.id],
            "level": SARIF_LEVELS[item.severity],
            "message": {"text": f"{item.message}" + (f" (hint: {item.hint})" if item.hint else "")},
            "locations": [{"physicalLocation": physical, "logicalLocations": [{"fullyQualifiedName": item.path, "kind": "member"}]}],
        }
        if item.suppressed is not None:
            result["suppressions"] = [{"kind": "inSource", "justification": item.suppressed}]
        results.append(result)
    driver = {
        "name": "msgen",
        "version": __version__,
        "rules": [{"id": rule, "name": rule, "shortDescription": {"text": rule.replace("-", " ")}} for rule in rule_ids],
    }
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [{"tool": {"driver": driver}, "columnKind": "unicodeCodePoints", "results": results}]}
