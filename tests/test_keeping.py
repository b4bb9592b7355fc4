"""A large platform keeps nothing it builds (msgen/plan/__init__.py, Plan.keeps_built): each
use builds a file's objects and drops them. The files and findings must be the same bytes
and the same findings as when everything is kept."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from msgen import api
from msgen import plan as plan_module
from msgen.targets import compose
from msgen.targets import kubernetes as k8s_target

BLUEPRINTS = Path(__file__).resolve().parent.parent / "blueprints"

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from generate import write_blueprint  # noqa: E402


def analysed(path: Path, keep: bool, monkeypatch) -> api.Analysis:
    monkeypatch.setattr(plan_module, "KEEP_BUILT_UP_TO", 10**9 if keep else 0)
    analysis = api.analyse(path)
    assert analysis.plan.keeps_built is keep
    return analysis


def files(analysis: api.Analysis) -> dict[str, str]:
    return {artifact.path: artifact.text for artifact in analysis.artifacts}


def findings(analysis: api.Analysis) -> list[tuple]:
    return [(f.id, f.severity, f.path, f.line, f.column, f.message) for f in analysis.findings]


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """The benchmark's blueprint at 40 services: compose, Kubernetes, gateway, observability."""
    return write_blueprint(40, tmp_path_factory.mktemp("generated"))


@pytest.mark.parametrize("name", ["reference", "minimal", "generated"])
def test_same_files_and_findings_whether_objects_are_kept_or_not(name, generated, monkeypatch):
    path = generated if name == "generated" else BLUEPRINTS / f"{name}.yaml"
    kept = analysed(path, True, monkeypatch)
    streamed = analysed(path, False, monkeypatch)
    assert files(streamed) == files(kept)
    assert findings(streamed) == findings(kept)
    assert findings(kept), "a blueprint with findings makes this comparison worth something"


def test_a_platform_that_keeps_nothing_builds_each_file_for_each_use(monkeypatch):
    analysis = analysed(BLUEPRINTS / "reference.yaml", False, monkeypatch)
    assert analysis.plan._built == {}, "nothing built is kept with the plan"
    by_path = {artifact.path: artifact for artifact in analysis.artifacts}
    for path in ("kubernetes/services/payment.yaml", compose.COMPOSE_FILE, "kubernetes/gateway/route-payment.yaml"):
        artifact = by_path[path]
        assert callable(artifact.documents), path
        first, second = artifact.objects(), artifact.objects()
        assert first == second and first[0] is not second[0], f"{path}: built again for each use"


def test_a_platform_that_keeps_its_objects_builds_them_once(monkeypatch):
    analysis = analysed(BLUEPRINTS / "reference.yaml", True, monkeypatch)
    artifact = next(a for a in analysis.artifacts if a.path == "kubernetes/services/payment.yaml")
    assert artifact.objects() is artifact.objects()
    assert k8s_target.manifests(analysis.plan) is k8s_target.manifests(analysis.plan)


def test_the_size_decides(monkeypatch):
    monkeypatch.setattr(plan_module, "KEEP_BUILT_UP_TO", 6)
    plan = api.prepare(BLUEPRINTS / "reference.yaml").plan
    assert len(plan.services) + len(plan.datastores) >= 6
    assert not plan.keeps_built
    monkeypatch.setattr(plan_module, "KEEP_BUILT_UP_TO", len(plan.services) + len(plan.datastores) + 1)
    assert api.prepare(BLUEPRINTS / "reference.yaml").plan.keeps_built


def test_compose_entries_one_at_a_time_are_the_document(monkeypatch):
    """The compose file is formatted entry by entry when nothing is kept: the same bytes as the
    whole document formatted at once."""
    from msgen import yamlout

    analysis = analysed(BLUEPRINTS / "reference.yaml", False, monkeypatch)
    document = compose.compose_document(analysis.plan)
    assert list(compose.compose_entries(analysis.plan)) == list(document["services"].items())
    for name in (compose.GATEWAY, "payment", "payment-db"):
        assert compose.compose_entry(analysis.plan, name) == document["services"][name], name
    assert compose.compose_entry(analysis.plan, "no-such-service") is None
    text = compose.compose_text(analysis.plan)
    assert text.endswith(yamlout.dump(document, flow_lists=True) + "\n")


def tree(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("targets", [[], ["--target", "kubernetes"]], ids=["every target", "one target"])
def test_render_with_the_checks_apart_writes_the_same_files(tmp_path, monkeypatch, targets):
    """From api.CHECK_WHILE_STAGING_FROM on, the checks render in their own process and the
    writer builds each file's objects only as it formats it (its plan keeps nothing)."""
    outcomes = {}
    for apart in (False, True):
        monkeypatch.setattr(api, "CHECK_WHILE_STAGING_FROM", 0 if apart else 10**9)
        chosen = [name for name in targets if name != "--target"] or None
        outcomes[apart] = api.render(BLUEPRINTS / "reference.yaml", tmp_path / str(apart), targets=chosen)
        assert outcomes[apart].wrote
    assert tree(tmp_path / "True") == tree(tmp_path / "False")
    assert findings(outcomes[True].analysis) == findings(outcomes[False].analysis)
    assert outcomes[True].analysis.plan.keeps_built is False and outcomes[True].analysis.plan._built == {}
    if targets:
        assert {artifact.target for artifact in outcomes[True].analysis.artifacts} <= {"base", "kubernetes"}
