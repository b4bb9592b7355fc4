"""msgen's Kubernetes output against the pinned upstream schemas (vendored.py): every traefik.io,
cert-manager.io and monitoring.coreos.com object against the CRD that serves it (Traefik chart
41.3.0, cert-manager v1.21.1, prometheus-operator v0.93.0), and the Traefik chart values against
the chart's values.schema.json after Helm's merge over its values.yaml. The output comes from the
committed examples, from both starters rendered fresh, and from generated blueprints."""

from __future__ import annotations

import tempfile
from pathlib import Path

import jsonschema
import pytest
import vendored
import yaml
from conftest import EXAMPLES
from hypothesis import given, settings
from strategies import GENERATED, blueprints, write_blueprint
from typer.testing import CliRunner
from vendored import crd_problems, helm_merge, traefik_values_problems

from msgen import images
from msgen.cli import app
from msgen.model.versions import KUBERNETES_VERSIONS
from msgen.targets.kubernetes import is_manifest
from msgen.targets.traefik import HELM_VALUES
from tests.cluster import cluster_blueprint
from tests.rendering import Rendered, render_in_memory

runner = CliRunner()
VALUES_FILE = Path("kubernetes") / "gateway" / "traefik-values.yaml"


@pytest.fixture(autouse=True)
def _vendor_present():
    vendored.vendor_dir()


def crd_objects(out: Path) -> list[tuple[str, dict]]:
    """(file, object) for every object in out/kubernetes/ whose group a vendored CRD covers."""
    found = []
    for path in sorted((out / "kubernetes").rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if vendored.is_crd_kind(document):
                found.append((str(path.relative_to(out)), document))
    return found


def all_crd_problems(out: Path) -> list[str]:
    return [f"{file}: {problem}" for file, document in crd_objects(out) for problem in crd_problems(document)]


def values_problems(out: Path) -> list[str]:
    """The chart's problems with the rendered values (Helm refuses to install on any)."""
    return traefik_values_problems(yaml.safe_load((out / VALUES_FILE).read_text(encoding="utf-8")))


def routed(blueprint: dict) -> bool:
    return any("route" in service for service in blueprint["services"].values())


def render(blueprint_file: Path, out: Path) -> Path:
    result = runner.invoke(app, ["render", str(blueprint_file), "-o", str(out)])
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.output}\n{result.exception!r}"
    return out


def starter(tmp_path: Path, name: str) -> Path:
    result = runner.invoke(app, ["init", str(tmp_path), "--starter", name])
    assert result.exit_code == 0, result.output
    return tmp_path / "blueprint.yaml"


def with_kubernetes(blueprint_file: Path) -> Path:
    """The minimal starter has no kubernetes section; one node takes its replicas only when spread is preferred."""
    text = blueprint_file.read_text(encoding="utf-8")
    assert "\nkubernetes:" not in text
    blueprint_file.write_text(text + '\nkubernetes: {version: "1.30", anti_affinity: preferred}\n', encoding="utf-8")
    return blueprint_file


KUBERNETES_EXAMPLES = sorted(path.parent.parent.name for path in EXAMPLES.glob("*/kubernetes/kustomization.yaml"))


def test_some_committed_example_has_kubernetes_output():
    assert KUBERNETES_EXAMPLES, f"no examples/*/kubernetes/ under {EXAMPLES}"


# --- committed examples and fresh starters ---------------------------------------------------------


@pytest.mark.parametrize("example", KUBERNETES_EXAMPLES)
def test_committed_example_crd_objects(example):
    out = EXAMPLES / example
    assert crd_objects(out), "the example has no traefik.io, cert-manager.io or monitoring.coreos.com object"
    assert all_crd_problems(out) == []


@pytest.mark.parametrize("example", KUBERNETES_EXAMPLES)
def test_committed_example_traefik_values(example):
    assert values_problems(EXAMPLES / example) == []


def rendered_starter(tmp_path: Path, name: str) -> Path:
    """A starter written by `msgen init` (the minimal one given a cluster) and rendered: the output folder."""
    blueprint = starter(tmp_path / "project", name)
    if name == "minimal":
        with_kubernetes(blueprint)
    return render(blueprint, tmp_path / "out")


@pytest.mark.parametrize("name", ["minimal", "reference"])
def test_fresh_starter_crd_objects(tmp_path, name):
    out = rendered_starter(tmp_path, name)
    assert crd_objects(out)
    assert all_crd_problems(out) == []


@pytest.mark.parametrize("name", ["minimal", "reference"])
def test_fresh_starter_traefik_values(tmp_path, name):
    assert values_problems(rendered_starter(tmp_path, name)) == []


def test_prometheus_operator_objects(tmp_path):
    """PodMonitors, the host ServiceMonitors and the PrometheusRule against the prometheus-operator v0.93.0 CRDs."""
    blueprint = starter(tmp_path / "project", "reference")
    text = blueprint.read_text(encoding="utf-8")
    assert "retention: 15d}" in text
    text = text.replace("retention: 15d}", "retention: 15d, operator: true}")
    blueprint.write_text(text, encoding="utf-8")
    out = render(blueprint, tmp_path / "out")
    kinds = {document["kind"] for _, document in crd_objects(out)}
    assert {"PodMonitor", "PrometheusRule", "ServiceMonitor"} <= kinds
    assert all_crd_problems(out) == []


# --- generated blueprints --------------------------------------------------------------------------

kubernetes_blueprints = blueprints().filter(lambda blueprint: "kubernetes" in blueprint)

def test_generated_crd_objects():
    kinds: set[str] = set()

    @GENERATED
    @given(kubernetes_blueprints)
    def check(blueprint):
        with tempfile.TemporaryDirectory(prefix="msgen-vendored-") as work:
            out = render(write_blueprint(blueprint, Path(work) / "blueprint.yaml"), Path(work) / "out")
            assert all_crd_problems(out) == []
            kinds.update(document["kind"] for _, document in crd_objects(out))
            # the gateway is deployed when some service is routed
            assert (out / VALUES_FILE).is_file() == routed(blueprint)

    check()
    # the examples reached the gateway's objects (the operator's are certain only in
    # test_prometheus_operator_objects: a quarter of these examples or fewer ask for them)
    assert {"IngressRoute", "Middleware"} <= kinds, kinds


def test_generated_traefik_values():
    seen: set[str] = set()

    @settings(GENERATED, max_examples=10)
    @given(blueprints().filter(lambda blueprint: "kubernetes" in blueprint and routed(blueprint)))
    def check(blueprint):
        with tempfile.TemporaryDirectory(prefix="msgen-vendored-") as work:
            out = render(write_blueprint(blueprint, Path(work) / "blueprint.yaml"), Path(work) / "out")
            seen.update(values_problems(out))

    check()
    assert seen == set()


# --- the helpers can fail ------------------------------------------------------------------------------

INGRESS_ROUTE = {
    "apiVersion": "traefik.io/v1alpha1",
    "kind": "IngressRoute",
    "metadata": {"name": "web", "namespace": "shop"},
    "spec": {
        "entryPoints": ["websecure"],
        "routes": [{"kind": "Rule", "match": "PathPrefix(`/`)", "services": [{"name": "web", "port": 8080}]}],
    },
}
MIDDLEWARE = {
    "apiVersion": "traefik.io/v1alpha1",
    "kind": "Middleware",
    "metadata": {"name": "limit", "namespace": "shop"},
    "spec": {"rateLimit": {"average": 100, "burst": 50, "period": "1s"}},
}


def edited(document: dict, path: tuple, value) -> dict:
    copy = yaml.safe_load(yaml.safe_dump(document))
    node = copy
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return copy


def test_valid_objects_have_no_problems():
    assert crd_problems(INGRESS_ROUTE) == []
    assert crd_problems(MIDDLEWARE) == []


def test_ingress_route_with_a_misspelled_field():
    document = yaml.safe_load(yaml.safe_dump(INGRESS_ROUTE))
    document["spec"]["entryPionts"] = document["spec"].pop("entryPoints")
    problems = crd_problems(document)
    assert len(problems) == 1 and "entryPionts" in problems[0], problems


def test_misspelled_field_deep_in_a_route():
    problems = crd_problems(edited(INGRESS_ROUTE, ("spec", "routes", 0, "services", 0, "prot"), 8080))
    assert len(problems) == 1 and "prot" in problems[0] and "spec.routes.0.services.0" in problems[0], problems


def test_middleware_with_a_wrong_type():
    problems = crd_problems(edited(MIDDLEWARE, ("spec", "rateLimit", "burst"), "fifty"))
    assert len(problems) == 1 and "spec.rateLimit.burst" in problems[0], problems


def test_int_or_string_fields_take_both_and_nothing_else():
    assert crd_problems(edited(MIDDLEWARE, ("spec", "rateLimit", "period"), 10)) == []
    assert crd_problems(edited(INGRESS_ROUTE, ("spec", "routes", 0, "services", 0, "port"), "http")) == []
    assert crd_problems(edited(MIDDLEWARE, ("spec", "rateLimit", "period"), ["1s"])) != []


def test_preserved_unknown_fields_stay_open():
    plugin = {**MIDDLEWARE, "spec": {"plugin": {"anything": {"nested": {"deep": [1, "two"]}}}}}
    assert crd_problems(plugin) == []


def test_enum_and_required_fields():
    assert crd_problems(edited(INGRESS_ROUTE, ("spec", "routes", 0, "kind"), "Rules")) != []
    route = edited(INGRESS_ROUTE, ("spec", "routes", 0, "kind"), "Rule")
    del route["spec"]["routes"][0]["match"]
    assert any("match" in problem for problem in crd_problems(route))


def test_metadata_is_checked_loosely():
    assert crd_problems(edited(MIDDLEWARE, ("metadata", "labels"), {"app.kubernetes.io/name": "limit"})) == []
    assert crd_problems(edited(MIDDLEWARE, ("metadata", "labels"), {"replicas": 2})) != []
    assert crd_problems(edited(MIDDLEWARE, ("metadata",), {"namespace": "shop"})) != []


def test_nullable_becomes_a_null_type():
    validator = jsonschema.Draft7Validator(
        vendored._translate({"type": "object", "properties": {"a": {"type": "string", "nullable": True}}})
    )
    assert validator.is_valid({"a": None}) and validator.is_valid({"a": "x"})
    assert not validator.is_valid({"a": 1}) and not validator.is_valid({"b": "x"})


def test_a_kind_no_vendored_crd_serves_fails():
    with pytest.raises(pytest.fail.Exception, match="no vendored CRD serves"):
        crd_problems({**INGRESS_ROUTE, "apiVersion": "traefik.io/v1beta9"})
    with pytest.raises(pytest.fail.Exception, match="no vendored CRD serves"):
        crd_problems({**INGRESS_ROUTE, "kind": "IngressRouteHTTP"})


@pytest.mark.parametrize(
    ("group", "kinds"),
    [
        ("traefik.io/v1alpha1", {"IngressRoute", "IngressRouteTCP", "IngressRouteUDP", "Middleware", "MiddlewareTCP",
                                 "ServersTransport", "ServersTransportTCP", "TLSOption", "TLSStore", "TraefikService"}),
        ("cert-manager.io/v1", {"Certificate", "Issuer", "ClusterIssuer"}),
        ("monitoring.coreos.com/v1", {"ServiceMonitor", "PodMonitor", "PrometheusRule"}),
    ],
)  # fmt: skip
def test_every_vendored_crd_becomes_a_valid_json_schema(group, kinds):
    assert {kind for version, kind in vendored._served_schemas() if version == group} == kinds
    for kind in kinds:
        # building the validator checks the translated schema against the draft 7 metaschema
        problems = crd_problems({"apiVersion": group, "kind": kind, "metadata": {"name": "x"}})
        assert all(problem.startswith(f"{kind}/x: ") for problem in problems), problems


def test_chart_defaults_pass_their_own_schema():
    assert traefik_values_problems({}) == []


def test_values_with_an_unknown_top_level_key():
    problems = traefik_values_problems({"deployment": {"replicas": 2}, "notAChartKey": True})
    assert len(problems) == 1 and "notAChartKey" in problems[0], problems


def test_values_with_a_wrong_type():
    problems = traefik_values_problems({"deployment": {"replicas": "two"}})
    assert len(problems) == 1 and problems[0].startswith("deployment.replicas"), problems


def test_values_merge_like_helm():
    defaults = {"a": {"b": 1, "c": {"d": 2}}, "e": [1, 2], "f": "x"}
    user = {"a": {"c": {"g": 3}}, "e": [9], "f": None, "h": {"i": None, "j": 1}}
    assert helm_merge(defaults, user) == {"a": {"b": 1, "c": {"d": 2, "g": 3}}, "e": [9], "h": {"j": 1}}
    assert defaults == {"a": {"b": 1, "c": {"d": 2}}, "e": [1, 2], "f": "x"}


def test_a_users_null_deletes_a_chart_default():
    # the chart's default for `ports` is a map; deleting it and the schema still holds
    assert traefik_values_problems({"ports": {"metrics": None}}) == []
    assert traefik_values_problems({"deployment": None}) == []


def test_missing_vendor_folder_fails_in_ci_and_skips_elsewhere(monkeypatch, tmp_path):
    monkeypatch.setattr(vendored, "VENDOR", tmp_path / "missing")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="pinned upstream schemas"):
        vendored.vendor_dir()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="pinned upstream schemas"):
        vendored.vendor_dir()


# --- the gateway on Kubernetes: every ingress mode, TLS source, dashboard and Kubernetes version ------


def rendered_crd_objects(rendered: Rendered) -> list[dict]:
    return [doc for path, built in rendered.files.items() if is_manifest(path) for doc in built.documents if vendored.is_crd_kind(doc)]


@pytest.mark.parametrize("version", [KUBERNETES_VERSIONS[0], KUBERNETES_VERSIONS[-1]])
@pytest.mark.parametrize("dashboard", [False, True])
@pytest.mark.parametrize("acme", [False, True])
@pytest.mark.parametrize("ingress", ["host_ports", "load_balancer"])
def test_gateway_values_and_objects_pass_the_pinned_schemas(write_blueprint, ingress, acme, dashboard, version):
    rendered = render_in_memory(write_blueprint(cluster_blueprint(ingress, acme, dashboard, version)))
    values = rendered.files[HELM_VALUES].document()
    assert traefik_values_problems(values) == []
    objects = rendered_crd_objects(rendered)
    kinds = {document["kind"] for document in objects}
    assert {"IngressRoute", "Middleware", "ServersTransport"} <= kinds
    assert ({"ClusterIssuer", "Certificate"} <= kinds) == acme and ("ClusterIssuer" in kinds) == acme
    assert [problem for document in objects for problem in crd_problems(document)] == []


def test_a_wrong_key_in_the_values_is_caught(write_blueprint):
    values = render_in_memory(write_blueprint(cluster_blueprint())).files[HELM_VALUES].document()
    assert traefik_values_problems(values) == []
    wrong = yaml.safe_load(yaml.safe_dump(values))
    wrong["ports"]["web"]["hostport"] = wrong["ports"]["web"].pop("hostPort")
    wrong["podDisruptionBudget"]["maxUnavaliable"] = 1
    problems = traefik_values_problems(wrong)
    assert len(problems) == 2, problems
    assert any("hostport" in problem and problem.startswith("ports.web") for problem in problems), problems
    assert any("maxUnavaliable" in problem and problem.startswith("podDisruptionBudget") for problem in problems), problems


@pytest.mark.parametrize("name", ["minimal", "reference"])
def test_fresh_starter_cert_manager_objects(tmp_path, name):
    """Both starters set acme_email: their ClusterIssuer and Certificates against cert-manager's CRDs."""
    out = rendered_starter(tmp_path, name)
    issued = [document for _, document in crd_objects(out) if document["apiVersion"].startswith("cert-manager.io/")]
    assert sorted({document["kind"] for document in issued}) == ["Certificate", "ClusterIssuer"]
    assert [problem for document in issued for problem in crd_problems(document)] == []


@pytest.mark.parametrize("example", KUBERNETES_EXAMPLES)
def test_example_blueprint_rendered_now_passes_the_pinned_schemas(tmp_path, example):
    """The committed output is checked above; this renders the example's blueprint with msgen as it is now."""
    out = render(EXAMPLES / example / "blueprint.yaml", tmp_path / "out")
    kinds = {document["kind"] for _, document in crd_objects(out)}
    assert {"IngressRoute", "ClusterIssuer", "Certificate"} <= kinds
    assert all_crd_problems(out) == []
    assert values_problems(out) == []


CERTIFICATE = {
    "apiVersion": "cert-manager.io/v1",
    "kind": "Certificate",
    "metadata": {"name": "shop-example-com", "namespace": "shop"},
    "spec": {
        "secretName": "shop-example-com-tls",
        "dnsNames": ["shop.example.com"],
        "issuerRef": {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "shop-letsencrypt"},
    },
}


def test_cert_manager_objects_with_a_mistake_are_caught():
    assert crd_problems(CERTIFICATE) == []
    problems = crd_problems(edited(CERTIFICATE, ("spec", "dnsName"), ["shop.example.com"]))
    assert len(problems) == 1 and "dnsName" in problems[0], problems
    missing = yaml.safe_load(yaml.safe_dump(CERTIFICATE))
    del missing["spec"]["secretName"]
    assert any("secretName" in problem for problem in crd_problems(missing))


def test_values_name_the_vendored_chart_and_run_a_newer_traefik(tmp_path):
    chart = yaml.safe_load((vendored.vendor_dir() / vendored.TRAEFIK_CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["version"] == images.TRAEFIK_CHART_VERSION
    out = render(starter(tmp_path / "project", "reference"), tmp_path / "out")
    assert f"traefik/traefik {images.TRAEFIK_CHART_VERSION}" in (out / VALUES_FILE).read_text(encoding="utf-8").splitlines()[1]
    # newer than the chart's own Traefik, which Helm only warns about (README: one Traefik everywhere)
    assert _version(images.TRAEFIK_VERSION) > _version(chart["appVersion"])


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.removeprefix("v").split("."))
