"""Findings as text or JSON (and, from the architecture checks, SARIF)."""

from __future__ import annotations

import json

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
