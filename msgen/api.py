"""The operations behind the CLI's commands, as stages: load -> plan -> render -> check -> write.

Typed in, typed out, no printing. Whatever the platform's size there is one way through:
every file is built once, in one pass, where the checks read its objects and the writer (when
writing or comparing) formats, verifies and stages its text; then the findings decide whether
the staged files are committed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

import yaml

from msgen.checks import CheckContext
from msgen.checks.registry import CHECKS, inspectors
from msgen.errors import InternalError, MsgenError
from msgen.findings import Finding, apply_suppressions, fails, finding_order, locate, parse_path
from msgen.model.load import LoadedBlueprint, load_blueprint
from msgen.patches import PatchFailure, Patching
from msgen.plan import Plan, build_plan
from msgen.targets import Built, Target, build_each, render_targets
from msgen.targets.kubernetes import NAME as KUBERNETES
from msgen.targets.kubernetes import is_manifest, to_yaml
from msgen.targets.registry import applicable, owned_paths, target_names
from msgen.verify import VerifyContext
from msgen.verify.registry import verify
from msgen.writer import Changes, Comparison, Staging


@dataclass(frozen=True)
class Planned:
    """A loaded blueprint, its plan, and the targets that apply to it."""

    loaded: LoadedBlueprint
    plan: Plan
    targets: tuple[Target, ...]


@dataclass(frozen=True)
class Analysis:
    """A planned blueprint and the findings over it and everything it renders."""

    planned: Planned
    findings: tuple[Finding, ...]

    @property
    def plan(self) -> Plan:
        return self.planned.plan

    @property
    def loaded(self) -> LoadedBlueprint:
        return self.planned.loaded


class Mode(StrEnum):
    write = "write"  # stage every file, commit when no finding fails
    check = "check"  # compare with the output folder, write nothing
    diff = "diff"  # check, with unified diffs


@dataclass(frozen=True)
class RenderRequest:
    blueprint: Path
    out_dir: Path
    env: str | None = None
    targets: tuple[str, ...] = ()  # none: every target that applies
    mode: Mode = Mode.write
    strict: bool = False
    deep: bool = False
    force: bool = False  # overwrite or prune files a person edited since msgen wrote them
    progress: Callable[[str], None] | None = None  # hears the path of each file as it is built


@dataclass(frozen=True)
class RenderOutcome:
    analysis: Analysis
    targets: tuple[str, ...]  # the targets rendered
    not_rendered: tuple[str, ...] = ()  # targets that apply but were not asked for
    changes: Changes | None = None  # None when failing findings stopped the render
    wrote: bool = False


def plan_blueprint(path: Path, env: str | None = None) -> Planned:
    """Load and plan."""
    loaded = load_blueprint(path, env)
    plan = build_plan(loaded.blueprint, env, loaded.files)
    return Planned(loaded, plan, applicable(plan))


def analyse(path: Path, env: str | None = None, deep: bool = False) -> Analysis:
    """Load, plan, build every file in memory, and find what the user can fix (and with
    `deep`, verify msgen's own output). Without `env`, every environment overlay is judged
    too (`with_overlays`): CI validates the base file, and each overlay ships."""
    planned = plan_blueprint(path, env)
    findings = one_pass(planned, deep)
    if env is None:
        findings = with_overlays(path, planned, findings, deep)
    return Analysis(planned, findings)


def with_overlays(path: Path, planned: Planned, findings: tuple[Finding, ...], deep: bool) -> tuple[Finding, ...]:
    """The base's findings and each overlay's: one the base and overlays share is reported
    once, at the base's place, naming the overlays it also applies to; one an overlay brings
    is reported at the overlay's place, naming it. Identical overlays are judged once."""
    overlays: dict[str, list[str]] = {}
    for name, overlay in sorted(planned.loaded.blueprint.environments.items()):
        overlays.setdefault(json.dumps(overlay, sort_keys=True, default=str), []).append(name)
    shared: dict[tuple, list[str]] = {}
    introduced: dict[tuple, tuple[Finding, list[str]]] = {}
    base = {(item.id, item.path, item.message) for item in findings}
    for names in overlays.values():
        overlay = plan_blueprint(path, names[0])
        for item in one_pass(overlay, deep):
            key = (item.id, item.path, item.message)
            if item.id == "suppress-unused" and parse_path(item.path)[1] < len(planned.loaded.blueprint.suppress):
                continue  # a base entry serves every environment: unused in one of them is no news
            if key in base:
                shared.setdefault(key, []).extend(names)
                continue
            shown = overlay.loaded.source.shown_path(parse_path(item.path))
            introduced.setdefault((item.id, shown, item.message), (replace(item, path=shown), []))[1].extend(names)
    every = len(planned.loaded.blueprint.environments)
    result = [
        replace(item, message=f"{item.message} (also in {_environments(shared[key], every)})") if key in shared else item
        for item in findings
        for key in [(item.id, item.path, item.message)]
    ]
    result += [replace(item, message=f"{_environments(names, every)}: {item.message}") for item, names in introduced.values()]
    return tuple(sorted(result, key=finding_order))


def one_pass(planned: Planned, deep: bool = False, take: Callable[[Built], None] | None = None) -> tuple[Finding, ...]:
    """Build each file once and apply the blueprint's patches: the checks' inspectors read its objects, `--deep` keeps it for
    verification, and `take` (the writer's side of a render) gets it; then every finding,
    with the blueprint's suppressions applied, located and sorted."""
    loaded, plan = planned.loaded, planned.plan
    context = CheckContext(loaded.blueprint, plan, loaded.source)
    readers = inspectors(context)
    verifying = VerifyContext(loaded.blueprint, plan) if deep else None
    try:
        for built in Patching(loaded.blueprint).each(build_each(render_targets(plan, planned.targets))):
            for reader in readers:
                reader.read(built)
            if verifying is not None:
                verifying.read(built)
            if take is not None:
                take(built)
    except PatchFailure as failure:
        raise failure.located(loaded.source) from None
    found = [item for module in CHECKS for item in module.check(context)]
    found.extend(item for reader in readers for item in reader.findings())
    if verifying is not None:
        found.extend(verify(verifying))
    return tuple(locate(apply_suppressions(found, loaded.blueprint), loaded.source))


def _environments(names: list[str], every: int, shown: int = 5) -> str:
    """`environment a, b` for a few, `every environment` for all of several, else the first few and a count."""
    names = sorted(names)
    if len(names) == every > 1:
        return "every environment"
    if len(names) <= shown:
        return f"environment {', '.join(names)}"
    return f"environment {', '.join(names[:shown])} and {len(names) - shown} more"


def check_well_formed(path: str, data: bytes) -> None:
    """A fast event-level parse of every YAML and JSON file: a bug here must never reach a disk."""
    try:
        if path.endswith((".yml", ".yaml")):
            _parse_events(data)
        elif path.endswith(".json"):
            json.loads(data)
    except (yaml.YAMLError, ValueError) as error:
        raise InternalError(f"internal error: rendered {path} is not well formed ({error}); please report it") from None


def _parse_events(data: bytes) -> None:
    """Parse YAML into events and drop them: libyaml's `raw_parse` builds no Python objects;
    the pure-Python parser where PyYAML was built without libyaml."""
    try:
        from yaml._yaml import CParser
    except ImportError:  # pragma: no cover - PyYAML built without libyaml
        for _ in yaml.parse(data, Loader=yaml.SafeLoader):
            pass
        return
    CParser(data).raw_parse()


def blueprint_digest(loaded: LoadedBlueprint) -> str:
    """What the blueprint sets (a field msgen adds with a default leaves it alone) and, when
    it has config files, each file's content: a changed file is a changed input, which --check
    then explains."""
    values = loaded.blueprint.model_dump(mode="json", exclude_defaults=True)
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"))
    if loaded.files:
        contents = {source: hashlib.sha256(data).hexdigest() for source, data in loaded.files.items()}
        canonical += json.dumps(contents, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def select_targets(planned: Planned, requested: tuple[str, ...]) -> tuple[str, ...]:
    applying = [module.NAME for module in planned.targets]
    if not requested:
        return tuple(applying)
    known = target_names()
    for name in requested:
        if name not in known:
            raise MsgenError(f"unknown target {name!r}; known targets: {', '.join(n for n in known if n != 'base')}")
        if name not in applying:
            raise MsgenError(f"target {name!r} does not apply to this blueprint (its section or a service that uses it is missing)")
    return tuple(name for name in known if name in requested or name == "base")


def render(request: RenderRequest) -> RenderOutcome:
    """Validate, then write (or compare) the chosen targets' files; the checks always see every
    applicable target's files, so the findings are those of `validate`."""
    planned = plan_blueprint(request.blueprint, request.env)
    chosen = select_targets(planned, request.targets)
    not_rendered = tuple(module.NAME for module in planned.targets if module.NAME not in chosen)
    sink: Comparison | Staging
    owned = owned_paths()
    if request.mode is Mode.write:
        sink = Staging(request.out_dir, owned, request.force)
    else:
        sink = Comparison(request.out_dir, owned, request.mode is Mode.diff)

    def take(built: Built) -> None:
        if request.progress is not None:
            request.progress(built.path)
        if built.target in chosen:
            data = built.data
            if not built.artifact.copied:
                check_well_formed(built.path, data)
            sink.add(built.path, built.target, data)

    try:
        findings = one_pass(planned, request.deep, take)
    except BaseException:
        sink.discard()
        raise
    analysis = Analysis(planned, findings)
    if fails(findings, request.strict):
        sink.discard()
        return RenderOutcome(analysis, chosen, not_rendered)
    if isinstance(sink, Comparison):
        return RenderOutcome(analysis, chosen, not_rendered, sink.finish(list(chosen)))
    changes = sink.commit(list(chosen), blueprint_digest(planned.loaded))
    return RenderOutcome(analysis, chosen, not_rendered, changes, wrote=True)


@dataclass(frozen=True)
class StreamOutcome:
    analysis: Analysis
    stream: str | None  # None when failing findings stopped the render


def render_kubernetes_stream(blueprint: Path, env: str | None = None, strict: bool = False, deep: bool = False) -> StreamOutcome:
    """Every Kubernetes object the kubernetes target writes (patches applied), as one YAML
    stream in the order of the kustomization's resources: for `kubectl apply -f -` and tools
    that take what `helm template` prints. The kustomization and the gateway's Helm values
    are not objects and are left out; nothing is written."""
    planned = plan_blueprint(blueprint, env)
    select_targets(planned, (KUBERNETES,))
    objects: dict[str, tuple] = {}

    def take(built: Built) -> None:
        if built.target == KUBERNETES and is_manifest(built.path) and built.artifact.copied is None:
            objects[built.path] = built.documents

    findings = one_pass(planned, deep, take)
    analysis = Analysis(planned, findings)
    if fails(findings, strict):
        return StreamOutcome(analysis, None)
    stream = "".join(f"---\n{to_yaml(document)}\n" for path in sorted(objects) for document in objects[path])
    check_well_formed("stream.yaml", stream.encode("utf-8"))
    return StreamOutcome(analysis, stream)
