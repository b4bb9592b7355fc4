"""Findings as text or JSON, SARIF and GitLab Code Quality."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import quote

from msgen import __version__
from msgen.errors import BlueprintError, MsgenError
from msgen.findings import Finding
from msgen.loader import STDIN, STDIN_NAME
from msgen.rules import LOAD_ERROR, RULES


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


def load_error_findings(error: MsgenError, blueprint: str) -> list[Finding]:
    """A blueprint that cannot be read, as findings: machine output stays a valid document a CI
    job can upload, with each load error where it is (an unreadable file: at the file)."""
    if isinstance(error, BlueprintError):
        return [
            Finding(LOAD_ERROR, "error", issue.message, issue.path, issue.hint, issue.file, issue.line, issue.column)
            for issue in error.issues
        ]
    return [Finding(LOAD_ERROR, "error", str(error), "", file=STDIN_NAME if blueprint == str(STDIN) else blueprint)]


def default_base_dir(blueprint: str) -> Path:
    """The root of the git checkout holding the blueprint (a `.git` folder or file above it; git
    itself is not run), else the current directory: code-scanning tools resolve paths from there."""
    start = Path.cwd() if blueprint == "-" else Path(blueprint).resolve().parent
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return Path.cwd().resolve()


def relative_path(file: str, base: Path) -> str | None:
    """`file` relative to `base` (POSIX separators), or None when it is outside it or not a file
    (`<stdin>`, or no file at all)."""
    if not file or file.startswith("<"):
        return None
    try:
        return Path(file).resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return None


def fingerprint(item: Finding) -> str:
    """A finding's identity across commits: its rule, key path and message, not its line, so it
    stays the same finding when lines above it move."""
    return hashlib.sha256(f"{item.id}\0{item.path}\0{item.message}".encode()).hexdigest()


SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVELS = {"error": "error", "warning": "warning", "info": "note"}
# the name of the base directory in SARIF's originalUriBaseIds; results' paths are relative to it
SOURCE_ROOT = "SRCROOT"


def sarif_artifact(file: str, base: Path) -> dict:
    relative = relative_path(file, base)
    if relative is not None:
        return {"uri": quote(relative), "uriBaseId": SOURCE_ROOT}
    if file and not file.startswith("<"):
        return {"uri": Path(file).resolve().as_uri()}
    return {"uri": quote(file)}


def sarif_rule(rule: str) -> dict:
    description = RULES.get(rule, rule.replace("-", " "))
    if rule == LOAD_ERROR:
        advice = "Fix the blueprint at the place given: the message names the key, and a hint says what is expected."
    else:
        advice = (
            "Each result's message ends with a hint on how to fix it. To accept a finding, add "
            f"{{id: {rule}, at: <key path>, reason: <why>}} to the blueprint's suppress list. docs/checks.md lists every id."
        )
    return {
        "id": rule,
        "name": rule,
        "shortDescription": {"text": rule.replace("-", " ")},
        "fullDescription": {"text": description},
        "help": {"text": f"{description}. {advice}"},
    }


def findings_sarif(findings: list[Finding], base_dir: Path | None = None) -> dict:
    """Findings as one SARIF 2.1.0 run, so code-scanning UIs show them inline in the blueprint;
    paths are relative to `base_dir` (default: the current directory)."""
    base = (base_dir or Path.cwd()).resolve()
    rule_ids = sorted({item.id for item in findings})
    index = {rule: position for position, rule in enumerate(rule_ids)}
    results = []
    for item in findings:
        physical: dict = {"artifactLocation": sarif_artifact(item.file, base)}
        if item.line >= 1:  # SARIF lines and columns start at 1; 0 means "the whole file"
            physical["region"] = {"startLine": item.line, "startColumn": max(item.column, 1)}
        location: dict = {"physicalLocation": physical}
        if item.path:
            location["logicalLocations"] = [{"fullyQualifiedName": item.path, "kind": "member"}]
        result: dict = {
            "ruleId": item.id,
            "ruleIndex": index[item.id],
            "level": SARIF_LEVELS[item.severity],
            "message": {"text": f"{item.message}" + (f" (hint: {item.hint})" if item.hint else "")},
            "locations": [location],
            "partialFingerprints": {"msgenFindingHash/v1": fingerprint(item)},
        }
        if item.suppressed is not None:
            result["suppressions"] = [{"kind": "inSource", "justification": item.suppressed}]
        results.append(result)
    driver = {"name": "msgen", "version": __version__, "rules": [sarif_rule(rule) for rule in rule_ids]}
    run = {
        "tool": {"driver": driver},
        "originalUriBaseIds": {SOURCE_ROOT: {"uri": base.as_uri().rstrip("/") + "/"}},
        "columnKind": "unicodeCodePoints",
        "results": results,
    }
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


# GitLab's Code Quality severities are info, minor, major, critical and blocker
CODE_QUALITY_SEVERITY = {"error": "major", "warning": "minor", "info": "info"}


def findings_codequality(findings: list[Finding], base_dir: Path | None = None) -> list[dict]:
    """Findings as a GitLab Code Quality report (a merge request shows them beside the diff);
    suppressed findings are left out: the report has no way to mark them accepted."""
    base = (base_dir or Path.cwd()).resolve()
    return [
        {
            "description": f"{item.path}: {item.message}" if item.path else item.message,
            "check_name": item.id,
            "fingerprint": fingerprint(item),
            "severity": CODE_QUALITY_SEVERITY[item.severity],
            "location": {"path": relative_path(item.file, base) or item.file, "lines": {"begin": max(item.line, 1)}},
        }
        for item in findings
        if item.suppressed is None
    ]
