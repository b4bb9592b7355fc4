"""The Kubernetes target: objects valid for the real API (kubernetes-validate's strict schemas,
the client's models), placement and rollout, NetworkPolicy reachability, the kustomization."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from msgen import api, views
from msgen.errors import BlueprintError
from msgen.model.load import load_blueprint
from msgen.model.versions import KUBERNETES_VERSIONS
from msgen.targets import kubernetes as target
from msgen.targets.traefik import HELM_VALUES
from msgen.verify import kubernetes as verifier
from msgen.verify import netpol
from tests.rendering import edited, expand, render_in_memory, verification

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "blueprints" / "reference.yaml"

MULTI_REGION = """\
version: 1
project: spread
regions:
  oslo: {jurisdiction: "NO"}
  frankfurt: {jurisdiction: DE}
rtt_ms: {oslo/frankfurt: 30}
hosts:
  - {name: osl-1, region: oslo, vcpu: 4, memory: 8Gi, storage: ssd, zone: a}
  - {name: osl-2, region: oslo, vcpu: 4, memory: 8Gi, storage: ssd, zone: b}
  - {name: fra-1, region: frankfurt, vcpu: 4, memory: 8Gi, storage: ssd, zone: a}
gateway: {domain: spread.example.com}
services:
  web:
    image: example/web:1.0.0
    port: 8080
    region: oslo
    replicas: REPLICAS
    route: {path_prefix: /}
    metrics: {path: /metrics}
    calls: [api]
    datastore: web-db
  api:
    image: example/api:1.0.0
    port: 9000
    region: frankfurt
    replicas: 1
    run_as_root: true
    secrets: [TOKEN]
  lonely:
    image: example/lonely:1.0.0
    port: 8000
    region: oslo
datastores:
  web-db: {engine: postgres, version: "16", memory: 1Gi}
kubernetes: {version: "1.28", anti_affinity: required, image_pull_secret: regcred}
"""


def analyse(path: Path):
    return render_in_memory(path)


@pytest.fixture(scope="module")
def reference():
    return analyse(REFERENCE)


def k8s_artifacts(analysis) -> dict:
    return {a.path: a for a in analysis.artifacts if a.path.startswith("kubernetes/")}


def parsed_objects(analysis) -> list[tuple[str, dict]]:
    """Every object of every manifest, parsed from the rendered text (never the cache)."""
    found = []
    for path, artifact in sorted(k8s_artifacts(analysis).items()):
        if target.is_manifest(path):
            found.extend((path, doc) for doc in yaml.safe_load_all(artifact.text) if doc is not None)
    return found


def core_objects(analysis) -> list[tuple[str, dict]]:
    return [(path, doc) for path, doc in parsed_objects(analysis) if not doc["apiVersion"].startswith(verifier.CRD_GROUPS)]


def by_kind(analysis, kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for _, doc in parsed_objects(analysis) if doc["kind"] == kind}


def variant(write_blueprint, replicas: int):
    return analyse(write_blueprint(MULTI_REGION.replace("REPLICAS", str(replicas))))


def ids(analysis, prefix: str = "") -> list[str]:
    return [f.id for f in analysis.findings if f.id.startswith(prefix)]


# --- validity ------------------------------------------------------------------------------


def test_reference_renders_every_kind_without_kubernetes_findings(reference):
    kinds = {doc["kind"] for _, doc in parsed_objects(reference)}
    assert {
        "Namespace",
        "NetworkPolicy",
        "ServiceAccount",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
        "StatefulSet",
        "ConfigMap",
    } <= kinds
    assert {"IngressRoute", "Middleware"} <= kinds
    assert [f for f in reference.findings if f.id.startswith("k8s-") or f.id == "anti-affinity"] == []


@pytest.mark.parametrize("version", [KUBERNETES_VERSIONS[0], "1.26", "1.27", "1.29", "1.30", KUBERNETES_VERSIONS[-1]])
def test_every_core_object_passes_kubernetes_validate_strict(write_blueprint, version):
    """Rendered for each version where a field appears (1.26, 1.27, 1.30) and for the ends of the range."""
    import kubernetes_validate

    rendered = analyse(write_blueprint(REFERENCE.read_text().replace('version: "1.30"', f'version: "{version}"')))
    objects = core_objects(rendered)
    assert len(objects) > 20
    for _path, document in objects:
        # raises ValidationError with the field on any unknown key, wrong type, missing field
        kubernetes_validate.validate(document, version, strict=True)


def test_every_core_object_passes_the_client_models(reference):
    from kubernetes.client import models

    for _path, document in core_objects(reference):
        version = document["apiVersion"].rpartition("/")[2]
        model = getattr(models, version[:1].upper() + version[1:] + document["kind"])
        model.model_validate(document)


def test_rendered_text_parses_back_to_the_objects_the_checks_read(reference):
    """Checks judge the objects a file was formatted from: its text must say exactly that."""
    held = [built for built in reference.artifacts if built.documents]
    assert {built.target for built in held} == {"compose", "traefik", "kubernetes", "observability"}
    for built in held:
        if built.path.endswith(".json"):
            assert [json.loads(built.text)] == list(built.documents), built.path
        else:
            assert [d for d in yaml.safe_load_all(built.text) if d is not None] == list(built.documents), built.path


def test_deep_verification_finds_nothing_in_the_reference(reference):
    assert verification(reference) == []


def test_a_typo_is_reported_with_object_and_field(reference):
    artifacts = dict(reference.files)
    path = "kubernetes/services/payment.yaml"
    text = artifacts[path].text.replace("podAntiAffinity:", "podAntiAfinity:", 1)
    text = text.replace("readOnlyRootFilesystem: true", "readOnlyRootFilesytem: true", 1)
    artifacts[path] = edited(artifacts[path], text)
    found = [f for f in verification(reference, artifacts) if f.id in ("verify-k8s-schema", "verify-k8s-model")]
    messages = "\n".join(f.message for f in found)
    assert (
        "Deployment/payment: spec.template.spec.affinity: Additional properties are not allowed ('podAntiAfinity' was unexpected)"
        in messages
    )
    assert "spec.template.spec.containers[0].securityContext" in messages and "readOnlyRootFilesytem" in messages
    assert "spec.template.spec.affinity.podAntiAfinity: Extra inputs are not permitted (kubernetes client model)" in messages
    assert {f.path for f in found} == {"services.payment"}


# --- workloads -----------------------------------------------------------------------------


def test_deployment_security_probes_and_wiring(reference):
    deployment = by_kind(reference, "Deployment")["payment"]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == "payment"
    # the same non-root id as in compose, whatever USER the image names
    security = {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["securityContext"] == security
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": 8080, "metrics": 9090}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["LEDGER_URL"] == "http://ledger.nordic-pay.svc:8080"
    assert env["DB_HOST"] == "payment-db.nordic-pay.svc"
    assert env["DB_PASSWORD_FILE"] == "/run/secrets/db-password"
    sources = next(v for v in pod["volumes"] if v["name"] == "secrets")["projected"]["sources"]
    assert {s["secret"]["name"] for s in sources} == {"payment-secrets", "payment-db-credentials"}
    assert container["resources"] == {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}


def test_anti_affinity_terms_select_their_own_pods(reference):
    for _, document in parsed_objects(reference):
        # Alertmanager runs one replica (no gossip): nothing to spread
        if document["kind"] != "Deployment" or document["metadata"]["name"] == "alertmanager":
            continue
        labels = document["spec"]["template"]["metadata"]["labels"]
        terms = document["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert terms and all(term["topologyKey"] == "kubernetes.io/hostname" for term in terms)
        assert all(netpol.match_labels(term["labelSelector"], labels) for term in terms)
        assert netpol.match_labels(document["spec"]["selector"], labels)
        # and no other workload's pods
        others = [
            d
            for _, d in parsed_objects(reference)
            if d["kind"] in ("Deployment", "StatefulSet") and d["metadata"]["name"] != document["metadata"]["name"]
        ]
        assert not any(netpol.match_labels(terms[0]["labelSelector"], o["spec"]["template"]["metadata"]["labels"]) for o in others)


def test_pdbs_allow_one_disruption(reference):
    for budget in by_kind(reference, "PodDisruptionBudget").values():
        assert budget["spec"]["maxUnavailable"] == 1


def test_statefulset_runs_as_the_image_user_with_config_and_exporter(reference):
    store = by_kind(reference, "StatefulSet")["ledger-db"]
    pod = store["spec"]["template"]["spec"]
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"] != 0
    names = [c["name"] for c in pod["containers"]]
    assert names == ["postgres", "exporter"]
    engine, exporter = pod["containers"]
    assert engine["args"] == ["-c", "config_file=/etc/postgresql/postgresql.conf"]
    assert engine["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}
    assert any(p["name"] == "metrics" for p in exporter["ports"])
    assert store["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "50Gi"
    config = by_kind(reference, "ConfigMap")["ledger-db"]["data"]
    from msgen.targets.datastores import config_files

    assert config["postgresql.conf"] == config_files(reference.plan, "ledger-db")["postgresql.conf"]
    assert by_kind(reference, "Service")["ledger-db"]["spec"]["clusterIP"] == "None"


def test_required_anti_affinity_with_more_replicas_than_nodes_is_an_error(write_blueprint):
    analysis = variant(write_blueprint, 3)  # web runs in oslo, which has 2 nodes
    errors = [f for f in analysis.findings if f.id == "anti-affinity" and f.severity == "error"]
    assert len(errors) == 1 and errors[0].path == "services.web.replicas"
    assert "2 are available in region oslo" in errors[0].message


def test_replicas_equal_to_nodes_get_the_surge_zero_strategy(write_blueprint):
    analysis = variant(write_blueprint, 2)
    warnings = [f for f in analysis.findings if f.id == "anti-affinity"]
    # api: 1 replica on frankfurt's one node is not a rollout problem (the ha-* findings judge it)
    assert sorted((f.severity, f.path) for f in warnings) == [("warning", "services.lonely.replicas"), ("warning", "services.web.replicas")]
    strategy = by_kind(analysis, "Deployment")["web"]["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    spare = by_kind(analysis, "Deployment")["lonely"]["spec"]["strategy"]["rollingUpdate"]
    assert spare == {"maxSurge": 0, "maxUnavailable": 1}  # 2 replicas, 2 oslo nodes


def test_regions_zones_pull_secret_and_run_as_root(write_blueprint):
    analysis = variant(write_blueprint, 2)
    deployments = by_kind(analysis, "Deployment")
    web = deployments["web"]["spec"]["template"]["spec"]
    term = web["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    assert term["matchExpressions"] == [{"key": "topology.kubernetes.io/region", "operator": "In", "values": ["oslo"]}]
    assert web["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    assert web["imagePullSecrets"] == [{"name": "regcred"}]
    api_pod = deployments["api"]["spec"]["template"]["spec"]
    assert "topologySpreadConstraints" not in api_pod  # one replica: nothing to spread
    own = api_pod["containers"][0]["securityContext"]
    assert own["runAsNonRoot"] is False and own["capabilities"] == {}
    assert "runAsUser" not in api_pod["securityContext"]
    assert own["allowPrivilegeEscalation"] is False and own["readOnlyRootFilesystem"] is True
    assert by_kind(analysis, "Namespace")["spread"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert ids(analysis, "k8s-") == []
    assert verification(analysis) == []
    import kubernetes_validate

    for _, document in core_objects(analysis):
        kubernetes_validate.validate(document, "1.28", strict=True)


def test_unsupported_version_is_a_load_error(write_blueprint):
    path = write_blueprint(MULTI_REGION.replace("REPLICAS", "1").replace('version: "1.28"', 'version: "1.24"'))
    with pytest.raises(BlueprintError, match=r"1\.24"):
        load_blueprint(path, None)


# --- network policies ------------------------------------------------------------------------


def rendered_network(analysis):
    gathered = verifier.Gathered()
    for item in verifier.rendered_objects(analysis.files):
        gathered.add(item)
    pods, roles = verifier.network_pods(analysis.plan, gathered.workloads)
    policies = [doc for _, doc in parsed_objects(analysis) if doc["kind"] == "NetworkPolicy"]
    return (
        netpol.Network(pods, policies),
        {role: next(p for p in pods if roles[p.key] == role) for role in set(roles.values()) if role != "outsider"},
        pods,
        roles,
    )


def test_reachability_computed_from_policies_matches_calls_and_datastores(reference):
    network, pods, everyone, roles = rendered_network(reference)
    blueprint = reference.loaded.blueprint
    services = sorted(blueprint.services)
    for source in services:
        for callee in services:
            port = ("TCP", blueprint.services[callee].port)
            allowed = network.may_connect(pods[f"services:{source}"], pods[f"services:{callee}"], port)
            assert allowed == (callee in blueprint.services[source].calls), (source, callee)
        for store_name in blueprint.datastores:
            port = ("TCP", reference.plan.datastore(store_name).port)
            allowed = network.may_connect(pods[f"services:{source}"], pods[f"datastores:{store_name}"], port)
            assert allowed == (blueprint.services[source].datastore == store_name), (source, store_name)
        routed = blueprint.services[source].route is not None
        assert network.may_connect(pods["gateway"], pods[f"services:{source}"], ("TCP", blueprint.services[source].port)) == routed
        assert network.may_connect(pods[f"services:{source}"], pods["dns"], ("UDP", 53))
    strangers = [p for p in everyone if roles[p.key] == "outsider"]
    assert len(strangers) == 3
    for stranger in strangers:
        for role, pod in pods.items():
            if ":" in role:
                assert not any(network.may_connect(stranger, pod, port) for port in pod.numbers), (stranger.key, role)
    # Prometheus reaches metrics ports only
    payment = pods["services:payment"]
    assert network.may_connect(pods["prometheus"], payment, ("TCP", 9090))
    assert not network.may_connect(pods["prometheus"], payment, ("TCP", 8080))
    ledger_db = pods["datastores:ledger-db"]
    assert network.may_connect(pods["prometheus"], ledger_db, ("TCP", 9187))
    assert not network.may_connect(pods["prometheus"], ledger_db, ("TCP", 5432))


def test_a_policy_opening_an_undeclared_path_is_a_finding(reference):
    artifacts = dict(reference.files)
    path = "kubernetes/datastores/payment-db.yaml"
    text = artifacts[path].text
    # let every pod labelled part-of nordic-pay in: ledger and fraud-check reach payment-db
    text = re.sub(
        r"(  ingress:\n  - from:\n    - podSelector:\n        matchLabels:\n)          app.kubernetes.io/name: payment\n",
        r"\1",
        text,
        count=1,
    )
    assert text != artifacts[path].text
    artifacts[path] = edited(artifacts[path], text)
    found = [f.message for f in verification(reference, artifacts) if f.id == "verify-k8s-network-policy"]
    assert any("ingress to datastores:payment-db: the policies allow services:ledger on 3306/TCP" in m for m in found), found
    assert any("services:fraud-check" in m for m in found)


# --- kustomization ---------------------------------------------------------------------------


def test_kustomization_lists_exactly_the_manifests_written(tmp_path):
    out = tmp_path / "out"
    outcome = api.render(api.RenderRequest(REFERENCE, out))
    assert outcome.wrote
    folder = out / "kubernetes"
    listed = yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"]
    on_disk = sorted(
        str(path.relative_to(folder)) for path in folder.rglob("*.yaml") if path.name != "kustomization.yaml" and path != out / HELM_VALUES
    )
    assert listed == on_disk
    assert "gateway/traefik-values.yaml" not in listed
    for name in listed:  # each is a file of Kubernetes objects
        assert all("apiVersion" in doc and "kind" in doc for doc in yaml.safe_load_all((folder / name).read_text()) if doc)


def test_a_missing_manifest_is_reported(reference):
    artifacts = dict(reference.files)
    del artifacts["kubernetes/services/ledger.yaml"]
    found = [f.message for f in verifier.kustomization_findings(artifacts)]
    assert found == ["kubernetes/kustomization.yaml lists services/ledger.yaml, which msgen does not write"]


def test_plan_section_shows_replicas_nodes_and_node_loss(write_blueprint):
    from msgen.views import plan_sections

    analysis = variant(write_blueprint, 2)
    section = next(s for s in plan_sections(analysis.plan) if s.title.startswith("Kubernetes"))
    rows = {row[0]: dict(zip(section.columns, row, strict=True)) for row in section.rows}
    assert rows["web"]["replicas"] == "2" and rows["web"]["nodes"] == "2 (oslo)"
    assert rows["web"]["survives losing a node"] == "yes"
    assert rows["api"]["survives losing a node"] == "no (1 replica)"
    assert rows["web"]["anti-affinity"] == "required"


# --- findings without verification, verification on request -----------------------------

PATCHED_RUN = """
import sys
from msgen.cli import app
from msgen.targets import kubernetes as target

real_deployment = target.deployment


def broken_deployment(plan, service):
    document = real_deployment(plan, service)
    document["spec"]["revisionHistoryLimt"] = 3  # a bug a target could have: a misspelled field
    return document


target.deployment = broken_deployment
try:
    app(sys.argv[1:], prog_name="msgen")
    code = 0
except SystemExit as exit:
    code = exit.code
sys.stdout.flush()
print("kubernetes client imported:", "kubernetes" in sys.modules, file=sys.stderr)
sys.exit(code)
"""


def run_patched(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PATCHED_RUN, *arguments], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_deep_names_the_object_and_field_a_broken_target_emits():
    deep = run_patched("validate", str(REFERENCE), "--deep")
    assert deep.returncode == 1, deep.stdout + deep.stderr
    assert "verify-k8s-schema" in deep.stdout and "verify-k8s-model" in deep.stdout
    assert "kubernetes/services/payment.yaml: Deployment/payment: spec: Additional properties are not allowed ('revisionHistoryLimt'" in deep.stdout
    assert "Deployment/payment: spec.revisionHistoryLimt: Extra inputs are not permitted (kubernetes client model)" in deep.stdout
    assert "kubernetes client imported: True" in deep.stderr


def test_plain_validate_neither_verifies_nor_imports_the_kubernetes_client():
    plain = run_patched("validate", str(REFERENCE))
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "verify-" not in plain.stdout
    assert "kubernetes client imported: False" in plain.stderr


def test_requests_above_the_default_limit_are_a_plain_finding(write_blueprint):
    """A user can cause this one (requests.cpu 1 with the default limit 500m): plain validate reports it."""
    path = write_blueprint(
        """\
        version: 1
        project: shop
        services:
          web:
            image: example/web:1.0
            port: 8080
            resources: {requests: {cpu: 1, memory: 64Mi}}
        kubernetes: {version: "1.30"}
        """
    )
    found = [f for f in api.analyse(path).findings if f.id == "k8s-resources"]
    assert [(f.severity, f.path, f.line) for f in found] == [("error", "services.web.resources", 7)]
    assert "requests 1 cpu but is limited to 500m" in found[0].message


# --- env values: Kubernetes' $(VAR) expansion -------------------------------------------------


def test_expansion_model_follows_the_documented_rules():
    defined = {"A": "1"}
    assert expand("x$(A)y", defined) == "x1y"
    assert expand("$$(A)", defined) == "$(A)"
    assert expand("$(B)", defined) == "$(B)"
    assert expand("a$b$", defined) == "a$b$"
    assert expand("$(open", defined) == "$(open"


ODD_VALUES = {"PATTERN": "pa$(DB_PORT)word", "DOUBLE": "a$$b", "LONE": "cost$", "OPEN": "$(unclosed", "NESTED": "$$(DB_HOST)"}


def test_env_values_arrive_as_in_compose(write_blueprint):
    env = "{" + ", ".join(f'{key}: "{value}"' for key, value in ODD_VALUES.items()) + "}"
    text = REFERENCE.read_text().replace("    env: {LOG_LEVEL: info}", f"    env: {env}")
    analysis = analyse(write_blueprint(text))
    container = by_kind(analysis, "Deployment")["payment"]["spec"]["template"]["spec"]["containers"][0]
    received: dict[str, str] = {}
    for variable in container["env"]:
        received[variable["name"]] = expand(variable["value"], received)
    compose_env = yaml.safe_load(analysis.files["compose/docker-compose.yml"].text)["services"]["payment"]["environment"]
    for key, value in ODD_VALUES.items():
        assert received[key] == value, key
        assert compose_env[key].replace("$$", "$") == value, key  # compose turns `$$` into `$`
    assert received["DB_PORT"] == "3306"  # a wiring value, unharmed


# --- workloads that survive: probes, shutdown, placement, version gates ----------------------


def reference_at(write_blueprint, version: str, replace: tuple[str, str] = ("", "")):
    text = REFERENCE.read_text().replace('version: "1.30"', f'version: "{version}"')
    return analyse(write_blueprint(text.replace(*replace) if replace[0] else text))


def test_liveness_tolerates_more_than_readiness_and_may_have_its_own_path(write_blueprint):
    plain = by_kind(reference_at(write_blueprint, "1.30"), "Deployment")["payment"]["spec"]["template"]["spec"]["containers"][0]
    assert plain["readinessProbe"]["failureThreshold"] == 3 and plain["livenessProbe"]["failureThreshold"] == 6
    assert plain["livenessProbe"]["httpGet"] == plain["readinessProbe"]["httpGet"]
    own = reference_at(write_blueprint, "1.30", ("health: {path: /health, initial_delay", "health: {path: /health, liveness_path: /alive, initial_delay"))
    container = by_kind(own, "Deployment")["payment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/alive" and container["readinessProbe"]["httpGet"]["path"] == "/health"


def test_shutdown_grace_matches_compose_and_prestop_needs_1_30(write_blueprint):
    recent = reference_at(write_blueprint, "1.30")
    compose_file = yaml.safe_load(recent.files["compose/docker-compose.yml"].text)["services"]
    for name, deployment in by_kind(recent, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        # the same grace as compose's stop_grace_period (whole seconds there: 33s, 19s)
        assert f"{pod['terminationGracePeriodSeconds']}s" == compose_file[name]["stop_grace_period"], name
        assert pod["containers"][0]["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    older = by_kind(reference_at(write_blueprint, "1.29"), "Deployment")["payment"]["spec"]["template"]["spec"]
    assert "lifecycle" not in older["containers"][0] and older["terminationGracePeriodSeconds"] == 33


def test_budgets_spread_and_pod_security_follow_the_version(write_blueprint):
    old, new = reference_at(write_blueprint, "1.25"), reference_at(write_blueprint, "1.27")
    assert "unhealthyPodEvictionPolicy" not in by_kind(old, "PodDisruptionBudget")["payment"]["spec"]
    assert by_kind(new, "PodDisruptionBudget")["payment"]["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    (old_spread,) = by_kind(old, "Deployment")["payment"]["spec"]["template"]["spec"]["topologySpreadConstraints"]
    (new_spread,) = by_kind(new, "Deployment")["payment"]["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert "matchLabelKeys" not in old_spread and new_spread["matchLabelKeys"] == ["pod-template-hash"]
    labels = by_kind(new, "Namespace")["nordic-pay"]["metadata"]["labels"]
    assert {labels[f"pod-security.kubernetes.io/{mode}-version"] for mode in ("enforce", "audit", "warn")} == {"v1.27"}
    rows = {row[0]: row[2] for section in views.kubernetes_section(old.plan) for row in section.rows if section.columns[0] == "field"}
    assert rows["preStop sleep"].startswith("no: ") and rows["unhealthyPodEvictionPolicy: AlwaysAllow"].startswith("no: ")


def test_anti_affinity_is_preferred_by_default_only_where_replicas_exceed_nodes(write_blueprint):
    five = ("    replicas: 3\n    region: oslo", "    replicas: 5\n    region: oslo")  # payment: 5 replicas, 4 nodes
    text = REFERENCE.read_text().replace(*five)
    assert "  anti_affinity: required" in text
    unset = analyse(write_blueprint(text.replace("  anti_affinity: required", "")))
    pods = {name: d["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"] for name, d in by_kind(unset, "Deployment").items()}
    assert list(pods["payment"]) == ["preferredDuringSchedulingIgnoredDuringExecution"]
    assert list(pods["ledger"]) == ["requiredDuringSchedulingIgnoredDuringExecution"]  # 2 replicas fit 4 nodes
    assert [f.message for f in unset.findings if f.id == "anti-affinity" and f.severity != "info"] == []
    # the user's explicit choice is kept, and the error finding says why a replica would stay Pending
    kept = analyse(write_blueprint(text))
    assert kept.plan.kubernetes.services["payment"].anti_affinity == "required"
    (error,) = [f for f in kept.findings if f.id == "anti-affinity" and f.severity == "error"]
    assert "1 would stay Pending" in error.message


# --- kustomize ------------------------------------------------------------------------------


@pytest.mark.realtool
@pytest.mark.parametrize("example", sorted(path.parent.parent.name for path in (ROOT / "examples").glob("*/kubernetes/kustomization.yaml")))
def test_kubectl_kustomize_builds_every_object_of_the_example(example):
    from tests import realtools

    folder = ROOT / "examples" / example / "kubernetes"
    done = subprocess.run(
        [str(realtools.kubectl()), "kustomize", str(folder)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    built = {(doc["kind"], doc["metadata"]["name"]) for doc in yaml.safe_load_all(done.stdout) if doc}
    listed = yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"]
    expected = {
        (doc["kind"], doc["metadata"]["name"])
        for resource in listed
        for doc in yaml.safe_load_all((folder / resource).read_text())
        if doc
    }
    assert built == expected and len(built) > 20


def test_autoscale_renders_an_hpa_the_checks_count_at_its_maximum(write_blueprint):
    autoscaled = ("    retry: {attempts: 2, initial_interval: 100ms}", "    retry: {attempts: 2, initial_interval: 100ms}\n    autoscale: {max_replicas: 4}")
    analysis = reference_at(write_blueprint, "1.30", autoscaled)
    (hpa,) = by_kind(analysis, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "payment"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 4)  # min defaults to replicas
    assert hpa["spec"]["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert "replicas" not in by_kind(analysis, "Deployment")["payment"]["spec"]  # the autoscaler owns the count
    loads = {load.name: load.replicas for load in views.placed_capacity(analysis.plan).kubernetes.loads}
    assert loads["deployment/payment"] == 4
    import kubernetes_validate

    kubernetes_validate.validate(hpa, "1.25", strict=True)
    assert verification(analysis) == []
    # 4 nodes: required anti-affinity still fits 4, not 5
    crowded = reference_at(write_blueprint, "1.30", (autoscaled[0], autoscaled[1].replace("4}", "5}")))
    assert any(f.id == "anti-affinity" and f.severity == "error" and "5 replicas" in f.message for f in crowded.findings)
    with pytest.raises(BlueprintError, match="max_replicas is below"):
        load_blueprint(write_blueprint(REFERENCE.read_text().replace(*(autoscaled[0], autoscaled[1].replace("4}", "2}")))), None)


# --- datastores on Kubernetes ---------------------------------------------------------------

STORES = """\
version: 1
project: stores
regions:
  home: {jurisdiction: DE}
hosts:
  - {name: fast-1, region: home, vcpu: 8, memory: 32Gi, storage: nvme}
  - {name: slow-1, region: home, vcpu: 8, memory: 32Gi, storage: hdd}
services:
  web: {image: example/web:1.0.0, port: 8080, datastore: web-db}
  cart: {image: example/cart:1.0.0, port: 8080, datastore: cart-cache}
  audit: {image: example/audit:1.0.0, port: 8080, datastore: audit-store}
datastores:
  web-db: {engine: postgres, version: "16", memory: PG_MEMORY, host: fast-1PG_EXTRA}
  cart-cache: {engine: redis, version: "7", memory: 256Mi, role: cache, host: fast-1}
  audit-store: {engine: redis, version: "7", memory: 256Mi, role: store, host: slow-1}
observability: {}
kubernetes: {version: "VERSION"KUBERNETES}
compose: {host: fast-1}
"""


def stores_text(pg_memory: str = "1Gi", version: str = "1.30", kubernetes: str = "", pg_extra: str = "") -> str:
    text = STORES.replace("PG_MEMORY", pg_memory).replace("VERSION", version).replace("KUBERNETES", kubernetes)
    return text.replace("PG_EXTRA", pg_extra)


def stores(write_blueprint, **options):
    """The three datastore kinds, rendered for Kubernetes and compose from one blueprint."""
    return analyse(write_blueprint(stores_text(**options)))


def pod_of(analysis, name: str) -> dict:
    return by_kind(analysis, "StatefulSet")[name]["spec"]["template"]["spec"]


def container_of(analysis, name: str, container: str) -> dict:
    return next(c for c in pod_of(analysis, name)["containers"] if c["name"] == container)


def compose_services(analysis) -> dict:
    return yaml.safe_load(analysis.files["compose/docker-compose.yml"].text)["services"]


@pytest.mark.parametrize("version", ["1.25", "1.37"])
def test_datastore_objects_verify_at_the_lowest_and_highest_version(write_blueprint, version):
    analysis = stores(write_blueprint, version=version, kubernetes=", storage_classes: {nvme: fast-local, hdd: slow.disks}")
    assert ids(analysis, "k8s-") == []
    assert verification(analysis) == []
    for name, store in by_kind(analysis, "StatefulSet").items():  # the schemas do not follow names
        pod = store["spec"]["template"]["spec"]
        declared = [v["name"] for v in pod["volumes"]] + [c["metadata"]["name"] for c in store["spec"].get("volumeClaimTemplates", [])]
        assert len(declared) == len(set(declared)), name
        assert {m["name"] for c in pod["containers"] for m in c["volumeMounts"]} == set(declared), name


@pytest.mark.parametrize("memory", ["128Mi", "1001Mi", "2Gi"])
def test_postgres_shm_is_in_memory_and_sized_as_compose_sizes_it(write_blueprint, memory):
    from msgen.units import compose_memory_bytes, quantity

    analysis = stores(write_blueprint, pg_memory=memory)
    volumes = {v["name"]: v for v in pod_of(analysis, "web-db")["volumes"]}
    shm = volumes["shm"]["emptyDir"]
    assert shm["medium"] == "Memory"
    compose_shm = compose_memory_bytes(compose_services(analysis)["web-db"]["shm_size"])
    assert quantity(shm["sizeLimit"]) == compose_shm == analysis.plan.datastore("web-db").shm_bytes
    assert compose_shm == max(64, quantity(memory) // 4 // 1024**2) * 1024**2  # a quarter, whole MiB, at least 64 MiB
    assert {"name": "shm", "mountPath": "/dev/shm"} in container_of(analysis, "web-db", "postgres")["volumeMounts"]
    for redis in ("cart-cache", "audit-store"):  # only PostgreSQL needs it
        assert "shm" not in {v["name"] for v in pod_of(analysis, redis)["volumes"]}
        assert "shm_size" not in compose_services(analysis)[redis]


def exporter_words(entry: dict) -> str:
    """Everything that can name the exporter's target: command, arguments and environment."""
    env = entry.get("environment") or {item["name"]: item["value"] for item in entry.get("env") or []}
    # compose: entrypoint and command; Kubernetes: command and args
    parts = [*(entry.get("entrypoint") or []), *(entry.get("command") or []), *(entry.get("args") or [])]
    return " ".join([*parts, *(f"{key}={value}" for key, value in env.items())])


TARGETS = {
    "payment-db": ("'exporter' '{host}' '3306'", "mysql"),
    "ledger-db": ("DATA_SOURCE_URI={host}:5432/ledger?sslmode=disable", "postgres"),
    "fraud-cache": ("-redis.addr=redis://{host}:6379", "redis"),
}


@pytest.mark.parametrize("store", sorted(TARGETS))
def test_the_exporter_reaches_its_engine_on_loopback_in_the_pod_and_by_name_in_compose(reference, store):
    pattern, _ = TARGETS[store]
    sidecar = exporter_words(container_of(reference, store, "exporter"))
    assert pattern.format(host="127.0.0.1") in sidecar
    assert store not in sidecar  # never the Service, which lists Ready pods only
    standalone = exporter_words(compose_services(reference)[f"{store}-exporter"])
    assert pattern.format(host=store) in standalone and "127.0.0.1" not in standalone


@pytest.mark.parametrize("store", sorted(TARGETS))
def test_the_exporter_mounts_only_its_own_password_and_decides_no_readiness(reference, store):
    pod = pod_of(reference, store)
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    exporter = container_of(reference, store, "exporter")
    mounted = [volumes[mount["name"]] for mount in exporter["volumeMounts"]]
    sources = [{key: value for key, value in volume.items() if key != "name"} for volume in mounted if "emptyDir" not in volume]
    # SQL engines: the exporter's own user's password, never the application's or the superuser's
    item = {"key": "password", "path": "db-password"} if store == "fraud-cache" else {"key": "exporter-password", "path": "exporter-password"}
    assert sources == [{"secret": {"secretName": f"{store}-credentials", "defaultMode": 0o444, "items": [item]}}]
    words = exporter_words(exporter)
    assert ("/run/secrets/exporter-password" in words) is (store != "fraud-cache")
    assert "readinessProbe" not in exporter and "startupProbe" not in exporter
    assert exporter.get("livenessProbe", {"tcpSocket": {"port": "metrics"}})["tcpSocket"] == {"port": "metrics"}
    engine = container_of(reference, store, TARGETS[store][1])
    engine_mounts = {mount["mountPath"]: volumes.get(mount["name"]) for mount in engine["volumeMounts"]}  # data: a claim
    keys = [item["key"] for item in engine_mounts["/run/secrets"]["secret"]["items"]]
    # the engine keeps its own; 20-users.sh creates the exporter's user from exporter-password
    assert keys == (["password"] if store == "fraud-cache" else ["password", "admin-password", "exporter-password"])


def checksums(analysis) -> dict[str, str]:
    return {
        name: store["spec"]["template"]["metadata"]["annotations"]["msgen.dev/config-checksum"]
        for name, store in by_kind(analysis, "StatefulSet").items()
    }


def test_the_config_checksum_is_the_sha256_of_the_config_map_data(reference):
    import hashlib

    for name, checksum in checksums(reference).items():
        data = by_kind(reference, "ConfigMap")[name]["data"]
        canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        assert checksum == hashlib.sha256(canonical.encode()).hexdigest(), name


def test_a_changed_config_changes_the_checksum_and_nothing_else_does(write_blueprint):
    before = checksums(stores(write_blueprint))
    assert before == checksums(stores(write_blueprint))  # deterministic
    tuned = checksums(stores(write_blueprint, pg_extra=", max_connections: 300"))
    assert tuned["web-db"] != before["web-db"]
    assert {name: tuned[name] for name in ("cart-cache", "audit-store")} == {name: before[name] for name in ("cart-cache", "audit-store")}
    # a change to the cluster that leaves every config alone rolls no datastore
    assert checksums(stores(write_blueprint, version="1.37")) == before


def claims(analysis) -> dict[str, list[dict]]:
    return {name: store["spec"].get("volumeClaimTemplates", []) for name, store in by_kind(analysis, "StatefulSet").items()}


def test_claims_take_the_storage_class_mapped_to_their_host_disks(write_blueprint):
    mapped = claims(stores(write_blueprint, kubernetes=", storage_classes: {nvme: fast-local, hdd: slow.disks}"))
    assert mapped["web-db"][0]["spec"]["storageClassName"] == "fast-local"  # host fast-1: nvme
    assert mapped["audit-store"][0]["spec"]["storageClassName"] == "slow.disks"  # host slow-1: hdd


def test_a_disk_class_without_an_entry_gets_the_cluster_default_and_plan_says_so(write_blueprint):
    from msgen.views import plan_sections

    analysis = stores(write_blueprint, kubernetes=", storage_classes: {hdd: slow-disks}")
    assert "storageClassName" not in claims(analysis)["web-db"][0]["spec"]
    assert claims(analysis)["audit-store"][0]["spec"]["storageClassName"] == "slow-disks"
    section = next(s for s in plan_sections(analysis.plan) if s.title == "Kubernetes datastore volumes")
    rows = {row[0]: dict(zip(section.columns, row, strict=True)) for row in section.rows}
    assert rows["web-db"]["StorageClass"] == "(the cluster's default)"
    assert "tuned for nvme (host fast-1)" in rows["web-db"]["why"] and "no nvme entry" in rows["web-db"]["why"]
    assert rows["audit-store"]["StorageClass"] == "slow-disks"
    unmapped = claims(stores(write_blueprint))
    assert all("storageClassName" not in claim["spec"] for found in unmapped.values() for claim in found)


def test_storage_classes_are_keyed_by_disk_class(write_blueprint):
    path = write_blueprint(stores_text(kubernetes=", storage_classes: {spinning: slow}"))
    with pytest.raises(BlueprintError, match=r"kubernetes\.storage_classes"):
        load_blueprint(path, None)


def test_a_cache_keeps_its_data_in_an_empty_dir_and_a_store_in_its_claim(write_blueprint):
    analysis = stores(write_blueprint, kubernetes=", storage_classes: {nvme: fast-local}")
    assert claims(analysis)["cart-cache"] == []
    volumes = {v["name"]: v for v in pod_of(analysis, "cart-cache")["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {}}
    assert {"name": "data", "mountPath": "/data"} in container_of(analysis, "cart-cache", "redis")["volumeMounts"]
    config = by_kind(analysis, "ConfigMap")["cart-cache"]["data"]["redis.conf"]
    assert "appendonly no" in config and 'save ""' in config  # nothing the emptyDir would lose
    store = claims(analysis)["audit-store"]
    assert [claim["metadata"]["name"] for claim in store] == ["data"]
    assert "data" not in {v["name"] for v in pod_of(analysis, "audit-store")["volumes"]}


def test_datastore_pods_get_the_lifecycle_plans_grace_period(reference):
    for name, store in by_kind(reference, "StatefulSet").items():
        assert store["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 60, name  # Kubernetes' default: 30
        assert reference.plan.grace[name].period.ms == 60_000


def test_grace_is_rounded_up_to_whole_seconds(reference):
    from dataclasses import replace

    from msgen.plan.lifecycle import Grace
    from msgen.units import Duration

    grace = dict(reference.plan.grace, **{"ledger-db": Grace(Duration(45_001, "45001ms"), "a test")})
    plan = replace(reference.plan, grace=grace)
    store = target.statefulset(plan, plan.datastore("ledger-db"), "checksum")
    assert store["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 46


# --- backups on Kubernetes ------------------------------------------------------------------


def cron_jobs(analysis) -> dict[str, dict]:
    return by_kind(analysis, "CronJob")


def backup_pod(analysis, name: str) -> dict:
    return cron_jobs(analysis)[f"{name}-backup"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def mounted(pod: dict, container: dict) -> dict[str, dict]:
    """Mount path -> the volume behind it (its subPath and readOnly folded in)."""
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    found = {}
    for mount in container["volumeMounts"]:
        volume = {key: value for key, value in volumes.get(mount["name"], {"claimTemplate": mount["name"]}).items() if key != "name"}
        found[mount["mountPath"]] = {**volume, **{key: mount[key] for key in ("subPath", "readOnly") if key in mount}}
    return found


def script_default(text: str, variable: str) -> str:
    """The default a datastore script gives one of its settings: `${VARIABLE:-default}`."""
    return re.search(r"\$\{" + variable + r":-([^}]*)\}", text).group(1)


@pytest.mark.parametrize(("version", "zoned"), [("1.25", False), ("1.26", False), ("1.27", True), ("1.37", True)])
def test_a_backup_cron_job_runs_the_blueprints_schedule_in_utc_where_the_version_has_time_zones(write_blueprint, version, zoned):
    analysis = stores(write_blueprint, version=version, pg_extra=', backup: {schedule: "15 */6 * * 1-5", retention: 3d}')
    jobs = cron_jobs(analysis)
    assert set(jobs) == {"web-db-backup", "audit-store-backup"}  # cart-cache is a cache: not backed up
    spec = jobs["web-db-backup"]["spec"]
    assert spec["schedule"] == "15 */6 * * 1-5" == analysis.plan.datastore("web-db").backup.schedule.text
    assert jobs["audit-store-backup"]["spec"]["schedule"] == "0 3 * * *"  # the default
    assert spec.get("timeZone") == ("Etc/UTC" if zoned else None)
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] > 0 and spec["successfulJobsHistoryLimit"] > 0 and spec["failedJobsHistoryLimit"] > 0
    job = spec["jobTemplate"]["spec"]
    # a hung run is stopped after the longest gap between two runs (Friday 18:15 to Monday 00:15)
    assert job["activeDeadlineSeconds"] == (2 * 24 + 6) * 3600
    assert job["backoffLimit"] == 2 and job["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure")
    section = next(s for s in views.plan_sections(analysis.plan) if s.title.startswith("Kubernetes fields by version"))
    row = next(row for row in section.rows if row[0].startswith("timeZone"))
    assert row[2].startswith("yes" if zoned else "no: a backup CronJob runs in kube-controller-manager's time zone")
    assert ids(analysis, "k8s-") == [] and verification(analysis) == []


def test_the_backup_pod_runs_the_engines_image_with_its_claim_scripts_and_one_password(write_blueprint):
    analysis = stores(write_blueprint)
    config = by_kind(analysis, "ConfigMap")
    for name, engine_name, keys in (("web-db", "postgres", ["admin-password"]), ("audit-store", "redis", ["password"])):
        pod = backup_pod(analysis, name)
        (container,) = pod["containers"]
        engine = container_of(analysis, name, engine_name)
        assert container["image"] == engine["image"]
        assert container["command"] == ["sh", "/msgen/backup.sh", "now"]
        # the Service's name, as the owner reaches the datastore
        env = {item["name"]: item["value"] for item in container["env"]}
        owner = "web" if name == "web-db" else "audit"
        owner_env = {i["name"]: i["value"] for i in by_kind(analysis, "Deployment")[owner]["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env == {"MSGEN_DB_HOST": f"{name}.stores.svc"} and owner_env["DB_HOST"] == env["MSGEN_DB_HOST"]
        # the engine's uid, locked down like the datastore, no token
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"] == pod_of(analysis, name)["securityContext"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True and container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert container["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "250m", "memory": "256Mi"}}
        found = mounted(pod, container)
        assert found["/tmp"] == {"emptyDir": {}}
        assert found["/backup"] == {"persistentVolumeClaim": {"claimName": f"{name}-backup"}}
        scripts = [{"key": "backup.sh", "path": "backup.sh"}, {"key": "restore.sh", "path": "restore.sh"}]
        assert found["/msgen"] == {"configMap": {"name": name, "items": scripts}, "readOnly": True}
        items = [{"key": key, "path": "admin-password" if key == "admin-password" else "db-password"} for key in keys]
        assert found["/run/secrets"] == {"secret": {"secretName": f"{name}-credentials", "defaultMode": 0o444, "items": items}, "readOnly": True}
        # the script finds its password and its location where they are mounted
        script = config[name]["data"]["backup.sh"]
        password_file = script_default(script, "MSGEN_DB_PASSWORD_FILE")
        assert password_file.rpartition("/")[0] == "/run/secrets" and password_file.rpartition("/")[2] in {i["path"] for i in items}
        assert script_default(script, "MSGEN_BACKUP_DIR") == "/backup"
        assert script_default(script, "MSGEN_DB_PORT") == str(analysis.plan.datastore(name).port)
    assert "cart-cache-backup" not in cron_jobs(analysis) and "backup.sh" not in config["cart-cache"]["data"]


def test_the_backup_claims_take_the_backup_size_and_the_data_claims_storage_class(write_blueprint):
    analysis = stores(write_blueprint, kubernetes=", storage_classes: {nvme: fast-local, hdd: slow.disks}", pg_extra=", backup: {size: 30Gi}")
    claims_by_name = by_kind(analysis, "PersistentVolumeClaim")
    assert set(claims_by_name) == {"web-db-backup", "web-db-archive", "audit-store-backup"}
    for name, storage_class, size in (("web-db", "fast-local", "30Gi"), ("audit-store", "slow.disks", "10Gi")):
        data = claims(analysis)[name][0]["spec"]
        assert data["storageClassName"] == storage_class
        for claim in [claims_by_name[f"{name}-backup"]] + ([claims_by_name["web-db-archive"]] if name == "web-db" else []):
            assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "storageClassName": storage_class, "resources": {"requests": {"storage": size}}}
            assert claim["metadata"]["namespace"] == "stores"
    unmapped = by_kind(stores(write_blueprint), "PersistentVolumeClaim")
    assert all("storageClassName" not in claim["spec"] for claim in unmapped.values())
    assert unmapped["audit-store-backup"]["spec"]["resources"]["requests"]["storage"] == "10Gi"  # default: the datastore's storage


def test_the_archive_claim_holds_the_servers_log_only_with_point_in_time(write_blueprint, reference):
    analysis = stores(write_blueprint)
    engine = container_of(analysis, "web-db", "postgres")
    archive = {"persistentVolumeClaim": {"claimName": "web-db-archive"}}
    assert mounted(pod_of(analysis, "web-db"), engine)["/backup/wal"] == archive
    # the server archives its WAL into the mounted folder
    config = by_kind(analysis, "ConfigMap")["web-db"]["data"]["postgresql.conf"]
    assert "archive_command = 'test ! -f /backup/wal/%f && cp %p /backup/wal/%f'" in config
    pod = backup_pod(analysis, "web-db")
    assert mounted(pod, pod["containers"][0])["/backup/wal"] == archive  # read-write: backup.sh prunes the WAL
    # a ReadWriteOnce claim is mounted on one node: the backup pod runs beside the datastore
    (term,) = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert netpol.match_labels(term["labelSelector"], by_kind(analysis, "StatefulSet")["web-db"]["spec"]["template"]["metadata"]["labels"])
    assert not netpol.match_labels(term["labelSelector"], pod.get("metadata", {}).get("labels", {}))
    # redis has no log; a redis store's backup pod is placed freely
    assert "web-db-archive" not in str(pod_of(analysis, "audit-store")) and "affinity" not in backup_pod(analysis, "audit-store")
    assert not any(path.startswith("/backup") for path in mounted(pod_of(analysis, "audit-store"), container_of(analysis, "audit-store", "redis")))
    # without point in time: no archive claim, nothing at /backup in the engine, no co-location
    off = stores(write_blueprint, pg_extra=", backup: {point_in_time: false}")
    assert "web-db-archive" not in by_kind(off, "PersistentVolumeClaim")
    assert not any(path.startswith("/backup") for path in mounted(pod_of(off, "web-db"), container_of(off, "web-db", "postgres")))
    assert "archive" not in {v["name"] for v in pod_of(off, "web-db")["volumes"]} and "affinity" not in backup_pod(off, "web-db")
    assert "archive_command" not in by_kind(off, "ConfigMap")["web-db"]["data"]["postgresql.conf"]
    # msgen plan names the claims
    def location(analysis, name):
        section = next(s for s in views.plan_sections(analysis.plan) if s.title == "Backups")
        return next(dict(zip(section.columns, row, strict=True)) for row in section.rows if row[0] == name)["location"]

    assert location(analysis, "web-db").endswith("Kubernetes: claims web-db-backup and web-db-archive (WAL archive, beside the datastore)")
    assert location(off, "web-db").endswith("Kubernetes: claim web-db-backup")
    # MySQL writes its binary log there; the backup pod only reads it (the server purges it)
    my_cnf = by_kind(reference, "ConfigMap")["payment-db"]["data"]["my.cnf"]
    log_bin = re.search(r"^log_bin\s*=\s*(\S+)$", my_cnf, re.MULTILINE).group(1)
    assert mounted(pod_of(reference, "payment-db"), container_of(reference, "payment-db", "mysql"))[log_bin.rpartition("/")[0]] == {
        "persistentVolumeClaim": {"claimName": "payment-db-archive"}
    }
    pod = backup_pod(reference, "payment-db")
    assert mounted(pod, pod["containers"][0])["/backup/binlog"] == {"persistentVolumeClaim": {"claimName": "payment-db-archive"}, "readOnly": True}


def test_the_engine_mounts_pg_hba_the_users_script_and_restore(reference):
    postgres = mounted(pod_of(reference, "ledger-db"), container_of(reference, "ledger-db", "postgres"))
    config = by_kind(reference, "ConfigMap")["ledger-db"]["data"]
    hba_file = re.search(r"^hba_file\s*=\s*'([^']+)'", config["postgresql.conf"], re.MULTILINE).group(1)
    assert postgres[hba_file] == {"configMap": {"name": "ledger-db"}, "subPath": "pg_hba.conf", "readOnly": True}
    for store, engine in (("ledger-db", "postgres"), ("payment-db", "mysql"), ("fraud-cache", "redis")):
        found = mounted(pod_of(reference, store), container_of(reference, store, engine))
        scripts = {path.rpartition("/")[2] for path in found if path.startswith("/docker-entrypoint-initdb.d/")}
        expected = {"postgres": {"10-app-user.sh", "20-users.sh"}, "mysql": {"20-users.sh"}, "redis": set()}[engine]
        assert scripts == expected, store
        assert all(found[f"/docker-entrypoint-initdb.d/{name}"]["subPath"] == name for name in scripts)
        # restore.sh where compose mounts it, for a backed-up datastore
        assert ("/msgen/restore.sh" in found) is (store != "fraud-cache"), store
    # the users script reads the exporter's password from a file the engine mounts
    users = by_kind(reference, "ConfigMap")["payment-db"]["data"]["20-users.sh"]
    assert script_default(users, "MSGEN_EXPORTER_PASSWORD_FILE") == "/run/secrets/exporter-password"


def test_without_prometheus_no_exporter_runs_and_the_secret_needs_no_exporter_password(write_blueprint):
    analysis = variant(write_blueprint, 2)  # no observability section
    assert not analysis.plan.datastore("web-db").scraped
    pod = pod_of(analysis, "web-db")
    assert [c["name"] for c in pod["containers"]] == ["postgres"]
    assert "msgen.dev/scrape" not in by_kind(analysis, "StatefulSet")["web-db"]["spec"]["template"]["metadata"]["labels"]
    keys = [item["key"] for item in mounted(pod, pod["containers"][0])["/run/secrets"]["secret"]["items"]]
    assert keys == ["password", "admin-password"]
    policy = by_kind(analysis, "NetworkPolicy")["web-db"]["spec"]
    assert all("metrics" not in str(rule["ports"]) for rule in policy["ingress"])
    hint = analysis.files["kubernetes/kustomization.yaml"].text.splitlines()[3]
    assert "web-db" not in hint and "admin-password" in hint and "exporter-password" not in hint
    assert verification(analysis) == []
    scraped = k8s_artifacts(stores(write_blueprint))["kubernetes/kustomization.yaml"].text
    assert "<datastore>-credentials (key password; SQL engines also admin-password and exporter-password)" in scraped


def test_a_datastore_with_a_host_runs_on_that_node(write_blueprint):
    analysis = stores(write_blueprint)
    for name, host in (("web-db", "fast-1"), ("cart-cache", "fast-1"), ("audit-store", "slow-1")):
        terms = pod_of(analysis, name)["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert terms == [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [host]}]}], name
        assert analysis.plan.kubernetes.datastores[name].nodes == (host,)
    # the tuning is for that host's disks: the plan says where it runs
    assert analysis.plan.datastore("web-db").storage_class == "nvme"
    # a datastore without a host goes where its region allows
    unpinned = variant(write_blueprint, 2)
    (term,) = pod_of(unpinned, "web-db")["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term["matchExpressions"] == [{"key": "topology.kubernetes.io/region", "operator": "In", "values": ["oslo"]}]
    assert unpinned.plan.kubernetes.datastores["web-db"].nodes == ("osl-1", "osl-2")
    # hosts in several regions: the region and the host, both required
    pinned = analyse(write_blueprint(MULTI_REGION.replace("REPLICAS", "2").replace("memory: 1Gi}", "memory: 1Gi, host: osl-2}")))
    (term,) = pod_of(pinned, "web-db")["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term["matchExpressions"] == [
        {"key": "topology.kubernetes.io/region", "operator": "In", "values": ["oslo"]},
        {"key": "kubernetes.io/hostname", "operator": "In", "values": ["osl-2"]},
    ]
    assert verification(pinned) == []


def test_cron_job_names_stay_within_the_apis_52_characters(write_blueprint):
    from msgen.checks.kubernetes import name_findings

    longest = "a" * 37 + "-db"  # a name's most, 40 characters: 47 with -backup
    analysis = analyse(write_blueprint(stores_text().replace("web-db", longest)))
    assert f"{longest}-backup" in cron_jobs(analysis) and ids(analysis, "k8s-name-length") == []
    assert verification(analysis) == []
    # the API refuses a longer CronJob name (its Jobs add 11 characters), though 63 suits other kinds
    job = dict(cron_jobs(analysis)[f"{longest}-backup"], metadata={"name": "b" * 53})
    item = target.RenderedObject("kubernetes/datastores/x.yaml", 0, job, ("datastores", "x"))
    assert [f.message for f in name_findings(item)] == [f"kubernetes/datastores/x.yaml: CronJob/{'b' * 53}: the name has 53 characters; Kubernetes allows 52"]
    service = target.RenderedObject("kubernetes/x.yaml", 0, {"kind": "Service", "metadata": {"name": "b" * 53}}, ("x",))
    assert list(name_findings(service)) == []


def test_pods_pinned_to_a_node_must_fit_that_node(write_blueprint):
    from msgen.checks.capacity import node_allocatable

    # fast-1 (32Gi) holds web-db, its exporter and its backup (beside it: it mounts the WAL
    # archive claim), and cart-cache with its exporter: 29000 + 64 + 256 + 256 + 64 MiB
    crowded = stores(write_blueprint, pg_memory="29000Mi")
    placed = {node.node: node for node in views.placed_capacity(crowded.plan).pinned}
    assert set(placed) == {"fast-1", "slow-1"}
    assert [load.name for load in placed["fast-1"].loads] == ["cronjob/web-db-backup", "statefulset/cart-cache", "statefulset/web-db"]
    assert [load.name for load in placed["slow-1"].loads] == ["statefulset/audit-store"]  # its backup pod goes anywhere
    assert placed["fast-1"].memory_used == (29000 + 64 + 256 + 256 + 64) * 1024**2
    assert placed["fast-1"].memory == node_allocatable(32 * 1024**3, 8)[0] < placed["fast-1"].memory_used
    errors = [f for f in crowded.findings if f.id == "capacity-pod"]
    assert len(errors) == 1 and "node fast-1" in errors[0].message and "cronjob/web-db-backup" in errors[0].message
    # each pod alone fits the largest node, and all of them fit the nodes together
    assert not any(f.id in ("capacity-kubernetes-memory", "capacity-kubernetes-cpu") for f in crowded.findings)
    # the cache on the other host: it fits
    moved = analyse(write_blueprint(stores_text(pg_memory="29000Mi").replace("role: cache, host: fast-1", "role: cache, host: slow-1")))
    assert [f for f in moved.findings if f.id == "capacity-pod"] == []
