"""The operations behind the CLI's commands: typed in, typed out, no printing."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import yaml

from msgen.checks import CheckContext, run_checks
from msgen.errors import MsgenError
from msgen.findings import Finding, fails
from msgen.fork import in_child
from msgen.model.load import LoadedBlueprint, load_blueprint
from msgen.plan import Plan, build_plan
from msgen.targets import Artifact, applicable_targets, render_targets, target_names
from msgen.writer import Changes, Staging, compare, stage


def _parse_events(text: str | bytes) -> None:
    """Parse YAML into events and drop them: libyaml's `raw_parse` builds no Python objects
    (4x faster than iterating `yaml.parse`); the pure-Python parser where libyaml is missing."""
    try:
        from yaml._yaml import CParser
    except ImportError:  # pragma: no cover - PyYAML built without libyaml
        for _ in yaml.parse(text, Loader=yaml.SafeLoader):
            pass
        return
    CParser(text).raw_parse()


@dataclass
class Analysis:
    """A loaded blueprint, its plan, everything it renders, and the findings over all of it."""

    loaded: LoadedBlueprint
    plan: Plan
    artifacts: list[Artifact]
    findings: list[Finding]
    targets: list[str]


@dataclass
class RenderOutcome:
    analysis: Analysis
    out_dir: Path
    targets: list[str]
    changes: Changes | None = None
    not_rendered: list[str] = field(default_factory=list)  # targets that apply but were not asked for
    wrote: bool = False


def prepare(path: Path, env: str | None = None) -> Analysis:
    """Load, plan and render every applicable target in memory; no checks yet."""
    return rendered(planned(path, env))


def planned(path: Path, env: str | None = None) -> Analysis:
    """Load and plan; nothing rendered yet (`artifacts` is empty)."""
    loaded = load_blueprint(path, env)
    plan = build_plan(loaded.blueprint, env)
    return Analysis(loaded, plan, [], [], applicable_targets(plan))


def rendered(analysis: Analysis) -> Analysis:
    """`analysis` with every applicable target rendered in memory."""
    analysis.artifacts = render_targets(analysis.plan, analysis.targets)
    return analysis


def judge(analysis: Analysis) -> list[Finding]:
    """Every check over the blueprint, its plan and everything it renders."""
    context = CheckContext(analysis.loaded.blueprint, analysis.plan, analysis.loaded.source, {a.path: a for a in analysis.artifacts})
    return run_checks(context)


def analyse(path: Path, env: str | None = None) -> Analysis:
    """Load, plan, render every applicable target in memory, and run every check."""
    analysis = prepare(path, env)
    analysis.findings = judge(analysis)
    return analysis


def check_well_formed(artifact: Artifact, text: str | bytes) -> None:
    """A fast event-level parse of every YAML and JSON artifact: a bug here must never reach a disk."""
    try:
        if artifact.path.endswith((".yml", ".yaml")):
            _parse_events(text)
        elif artifact.path.endswith(".json"):
            json.loads(text)
    except (yaml.YAMLError, ValueError) as error:
        raise MsgenError(f"internal error: rendered {artifact.path} is not well formed ({error}); please report it") from None


def blueprint_digest(loaded: LoadedBlueprint) -> str:
    canonical = json.dumps(loaded.blueprint.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def select_targets(analysis: Analysis, requested: list[str] | None) -> list[str]:
    if not requested:
        return list(analysis.targets)
    known = target_names()
    for name in requested:
        if name not in known:
            raise MsgenError(f"unknown target {name!r}; known targets: {', '.join(n for n in known if n != 'base')}")
        if name not in analysis.targets:
            raise MsgenError(f"target {name!r} does not apply to this blueprint (its section or a service that uses it is missing)")
    return [name for name in known if name in requested or name == "base"]


T = TypeVar("T")

# From this many services and datastores together on (~1000 files), `render` runs the checks
# in a second process (msgen/fork.py) from right after planning: it renders in memory what
# the checks read, while this one renders the chosen targets, building each file's objects
# only as it formats the file, and stages (or with --check compares) the files; nothing is
# renamed into place unless the checks pass. At 1000 services the checks (~0.5 s, and the
# client models in a third process) overlap with building and staging (~1.4 s on two cores).
CHECK_WHILE_STAGING_FROM = 400


def render(
    path: Path,
    out_dir: Path,
    env: str | None = None,
    targets: list[str] | None = None,
    check: bool = False,
    diff: bool = False,
    strict: bool = False,
) -> RenderOutcome:
    """Validate, then write (or with `check`, compare) the chosen targets' files.

    `outcome.analysis.artifacts` holds every applicable target's files when the checks ran
    in this process, the chosen targets' files when they ran apart."""
    analysis = planned(path, env)
    chosen = select_targets(analysis, targets)
    outcome = RenderOutcome(analysis, out_dir, chosen)
    outcome.not_rendered = [name for name in analysis.targets if name not in chosen]

    def chosen_artifacts() -> list[Artifact]:
        if not analysis.artifacts:  # the checks run apart: this process renders only what it writes
            analysis.artifacts = render_targets(analysis.plan, chosen)
        return [a for a in analysis.artifacts if a.target in chosen]

    # each text is parsed as it is formatted, before anything reaches the disk
    # (`validate` formats no text, so it skips this)
    if check:
        outcome.changes = _checked(analysis, strict, lambda: compare(out_dir, chosen_artifacts(), chosen, diff, check_well_formed))
        return outcome

    def stage_files() -> tuple[Staging, Path | None]:
        artifacts = chosen_artifacts()
        made = _make_output_folder(out_dir)
        return _stage_or_unmake(out_dir, made, artifacts), made

    def undo(result: tuple[Staging, Path | None]) -> None:
        staging, made = result
        staging.discard()
        _unmake(out_dir, made)

    staged = _checked(analysis, strict, stage_files, undo)
    if staged is not None:
        outcome.changes = staged[0].commit(chosen, blueprint_digest(analysis.loaded))
        outcome.wrote = True
    return outcome


def _checked(analysis: Analysis, strict: bool, work: Callable[[], T], undo: Callable[[T], None] | None = None) -> T | None:
    """Run every check (into analysis.findings), and `work` unless they fail; None when they fail.

    For a small platform everything is rendered and checked first. From
    CHECK_WHILE_STAGING_FROM services and datastores on the checks run in a second process
    that renders what they read, while this one does `work` with nothing kept (the writer
    reads each file's objects once); when they fail, `undo` takes back what `work` did, and
    an error of `work` counts only if the checks pass, as if they had run first."""
    plan = analysis.plan
    if len(plan.services) + len(plan.datastores) < CHECK_WHILE_STAGING_FROM:
        analysis.findings = judge(rendered(analysis))
        return None if fails(analysis.findings, strict) else work()
    findings = in_child(lambda: judge(rendered(analysis)))
    plan.build_per_use()
    try:
        result = work()
    except MsgenError:
        analysis.findings = findings()
        if fails(analysis.findings, strict):
            return None
        raise
    except BaseException:
        with contextlib.suppress(Exception):  # waited for, whatever it says
            findings()
        raise
    analysis.findings = findings()
    if fails(analysis.findings, strict):
        if undo is not None:
            undo(result)
        return None
    return result


def _make_output_folder(out_dir: Path) -> Path | None:
    """Create the output folder and its missing parents; the outermost one made, if any."""
    if out_dir.exists() and not out_dir.is_dir():
        raise MsgenError(f"{out_dir}: exists and is not a folder")
    outermost = None
    folder = out_dir.absolute()
    while not folder.exists():
        outermost, folder = folder, folder.parent
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise MsgenError(f"cannot create {out_dir}: {error.strerror}") from None
    return outermost


def _stage_or_unmake(out_dir: Path, made: Path | None, artifacts: list[Artifact]) -> Staging:
    try:
        return stage(out_dir, artifacts, verify=check_well_formed)
    except BaseException:
        _unmake(out_dir, made)
        raise


def _unmake(out_dir: Path, made: Path | None) -> None:
    """Remove the output folder and the parents render made for it, those that are empty."""
    if made is None:
        return
    folder = out_dir.absolute()
    while True:
        with contextlib.suppress(OSError):  # rmdir never removes a folder that holds anything
            folder.rmdir()
        if folder == made or folder == folder.parent:
            return
        folder = folder.parent
