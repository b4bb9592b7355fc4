"""observability.alertmanager: load errors, the rendered alertmanager.yml, Prometheus' alerting
block, the compose container and the Kubernetes objects (validated with the client models
and kubernetes-validate, reached by Prometheus through the NetworkPolicies)."""

from __future__ import annotations

import re

import pytest
import yaml

from msgen.errors import BlueprintError
from msgen.model.load import load_blueprint
from msgen.plan import alerting as alerting_plan
from msgen.verify import kubernetes as verifier
from msgen.verify import netpol
from tests.alerting_variant import ALERTMANAGER, reference_with_alertmanager_text, write_reference_with_alertmanager
from tests.rendering import render_in_memory, verification

BASE = """\
version: 1
project: shop
services:
  web: {image: "ghcr.io/example/web:1.0.0", port: 8080, health: {path: /health}}
observability:
  alertmanager:
ALERTMANAGER
"""


def load_error(write_blueprint, section: str) -> str:
    text = BASE.replace("ALERTMANAGER", section)
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(write_blueprint(text))
    return str(caught.value)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    return render_in_memory(write_reference_with_alertmanager(tmp_path_factory.mktemp("alerting")))


def document(rendered, path: str):
    return yaml.safe_load(rendered.files[path].text)


# --- load errors ------------------------------------------------------------------------------


def test_a_receiver_without_a_kind_is_an_error_at_its_line(write_blueprint):
    message = load_error(write_blueprint, "    receivers:\n      oncall: {}\n    route: {receiver: oncall}")
    assert ":8:7: observability.alertmanager.receivers.oncall: " in message
    assert "a receiver needs at least one of webhook, email, slack" in message


def test_an_unknown_receiver_kind_names_the_known_ones(write_blueprint):
    message = load_error(write_blueprint, "    receivers:\n      oncall: {pagerduty: {key: x}}\n    route: {receiver: oncall}")
    assert ":8:16: observability.alertmanager.receivers.oncall.pagerduty: unknown key 'pagerduty'" in message
    assert "email, slack, webhook" in message


def test_a_login_without_its_password_secret_is_an_error(write_blueprint):
    section = (
        "    receivers:\n      mail:\n        email: {to: a@example.com, from: b@example.com, smarthost: 'smtp.example.com:587', "
        "username: alerts}\n    route: {receiver: mail}"
    )
    message = load_error(write_blueprint, section)
    assert ":9:9: observability.alertmanager.receivers.mail.email: " in message
    assert "username and password_secret go together" in message


@pytest.mark.parametrize(
    ("field", "value", "column"),
    [("url", "ftp://hooks.example.com/x", 19), ("url", "'https://hooks.example.com/a b'", 19), ("credentials_secret", "Not_A_Name", 53)],
)
def test_a_bad_webhook_field_is_an_error_at_its_column(write_blueprint, field, value, column):
    webhook = {"url": "https://hooks.example.com/x", "credentials_secret": "token"} | {field: value}
    section = f"    receivers:\n      hook:\n        webhook: {{url: {webhook['url']}, credentials_secret: {webhook['credentials_secret']}}}"
    message = load_error(write_blueprint, section + "\n    route: {receiver: hook}")
    assert f":9:{column}: observability.alertmanager.receivers.hook.webhook.{field}: " in message


def test_a_route_to_an_undeclared_receiver_is_an_error_with_a_hint(write_blueprint):
    section = "    receivers:\n      oncall: {webhook: {url: 'https://hooks.example.com/a'}}\n    route: {receiver: oncall, critical: oncal1}"
    message = load_error(write_blueprint, section)
    assert ":9:31: observability.alertmanager.route.critical: unknown receiver 'oncal1'" in message
    assert "did you mean 'oncall'?" in message


def test_an_unknown_severity_in_the_route_is_an_error(write_blueprint):
    section = "    receivers:\n      oncall: {webhook: {url: 'https://hooks.example.com/a'}}\n    route: {receiver: oncall, info: oncall}"
    message = load_error(write_blueprint, section)
    assert "observability.alertmanager.route.info: unknown key 'info'" in message


def test_alertmanager_without_alerts_is_an_error(write_blueprint):
    text = BASE.replace("ALERTMANAGER", "    receivers:\n      a: {webhook: {url: 'https://h.example.com/'}}\n    route: {receiver: a}")
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(write_blueprint(text.replace("observability:\n", "observability:\n  alerts: false\n")))
    assert "observability.alertmanager: alertmanager receives Prometheus' alerts" in str(caught.value)


def test_a_service_may_not_be_called_alertmanager(write_blueprint):
    text = "version: 1\nproject: shop\nservices:\n  alertmanager: {image: 'ghcr.io/example/a:1', port: 8080, health: {path: /h}}\n"
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(write_blueprint(text))
    assert "the name 'alertmanager' is taken" in str(caught.value)


# --- alertmanager.yml -------------------------------------------------------------------------


def test_the_route_sends_each_severity_to_its_receiver_grouped_by_service_or_datastore(rendered):
    route = document(rendered, "alertmanager/alertmanager.yml")["route"]
    assert route["receiver"] == "ops-mail"
    assert route["group_by"] == ["service", "datastore"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == ("30s", "5m", "4h")
    assert route["routes"] == [
        {"matchers": ['severity="critical"'], "receiver": "oncall"},
        {"matchers": ['severity="warning"'], "receiver": "chat"},
    ]


def test_a_severity_that_goes_to_the_default_receiver_gets_no_route(write_blueprint):
    text = reference_with_alertmanager_text().replace("critical: oncall, warning: chat", "warning: ops-mail")
    route = yaml.safe_load(render_in_memory(write_blueprint(text)).files["alertmanager/alertmanager.yml"].text)["route"]
    assert route["receiver"] == "ops-mail" and "routes" not in route


def test_receivers_read_every_credential_from_a_file(rendered):
    text = rendered.files["alertmanager/alertmanager.yml"].text
    assert text.startswith("# Generated by msgen")
    assert "# Alertmanager 0.25 configuration (prom/alertmanager:v0.25.0)" in text
    receivers = {receiver["name"]: receiver for receiver in yaml.safe_load(text)["receivers"]}
    assert receivers["oncall"]["webhook_configs"] == [
        {
            "url": "https://oncall.example.no/hooks/alerts",
            "send_resolved": True,
            "http_config": {"authorization": {"type": "Bearer", "credentials_file": "/run/secrets/oncall-token"}},
        }
    ]
    assert receivers["ops-mail"]["email_configs"] == [
        {
            "to": "ops@pay.example.no",
            "from": "alerts@pay.example.no",
            "smarthost": "smtp.example.no:587",
            "require_tls": True,
            "auth_username": "alerts",
            "auth_password_file": "/run/secrets/smtp-password",
            "send_resolved": True,
        }
    ]
    assert receivers["chat"]["slack_configs"] == [
        {"channel": "#payments-alerts", "api_url_file": "/run/secrets/slack-webhook-url", "send_resolved": True}
    ]


def rule_alerts(plan) -> list[dict[str, str]]:
    """The label sets the rendered rules give their alerts, for every job or subject: TargetDown
    once per scrape job (the series' `job`), the others with `job` where their series carry it."""
    observability = plan.observability
    alerts = []
    for group in observability.rule_groups:
        for rule in group.rules:
            labels = {"alertname": rule.alert, **dict(rule.labels)}
            if rule.alert == "TargetDown":
                alerts += [{**labels, "service": job.name, "job": job.name} for job in observability.jobs]
            elif 'job="' in rule.expr and all("job" in by for by in re.findall(r"by \(([^)]*)\)", rule.expr)):
                # the series' job survives unless an aggregation drops it
                alerts.append({**labels, "job": rule.expr.split('job="')[1].split('"')[0]})
            else:
                alerts.append(labels)
    return alerts


def inhibited(config: dict, source: dict[str, str], target: dict[str, str]) -> bool:
    """Alertmanager 0.25's rule, on the equality matchers msgen writes: the source matches,
    the target matches, and every `equal` label has the same value (absent counts as empty)."""

    def matches(matchers: list[str], labels: dict[str, str]) -> bool:
        for matcher in matchers:
            negated = "!=" in matcher
            name, value = matcher.split("!=" if negated else "=")
            if (labels.get(name, "") == value.strip('"')) == negated:
                return False
        return True

    return any(
        matches(rule["source_matchers"], source)
        and matches(rule["target_matchers"], target)
        and all(source.get(label, "") == target.get(label, "") for label in rule["equal"])
        for rule in config["inhibit_rules"]
    )


def test_inhibitions_hold_back_exactly_the_same_jobs_alerts(rendered):
    """Over every alert the reference's rules can raise: TargetDown of a job holds back that
    job's and service's other alerts and no one else's; DatastoreDown its datastore's."""
    config = document(rendered, "alertmanager/alertmanager.yml")
    alerts = rule_alerts(rendered.plan)
    for source in alerts:
        if source["alertname"] not in ("TargetDown", "DatastoreDown"):
            continue
        held = {(a["alertname"], a.get("service") or a.get("datastore") or a.get("job")) for a in alerts if inhibited(config, source, a)}
        subject = source.get("service") if source["alertname"] == "TargetDown" else source["datastore"]
        assert {name for name, _ in held} <= {a["alertname"] for a in alerts} - {source["alertname"]}
        assert {owner for _, owner in held} <= {subject}, (source, held)
        if source["alertname"] == "TargetDown" and subject == "payment":
            route_alerts = ("RouteErrorBudgetBurnFast", "RouteErrorBudgetBurnSlow", "RouteLatencyOverBudget", "RouteRateLimited")
            assert held == {(name, "payment") for name in route_alerts}
        if source["alertname"] == "TargetDown" and subject == "ledger-db":
            assert held == {("DatastoreDown", "ledger-db"), ("DatastoreConnectionsHigh", "ledger-db")}
        if source["alertname"] == "DatastoreDown":
            assert held == {("DatastoreConnectionsHigh", subject)}


def test_the_inhibitions_equal_labels_are_labels_the_rules_set():
    """A misspelt `equal` label would match every alert that lacks it on both sides."""
    assert {label for rule in alerting_plan.INHIBITIONS for label in rule.equal} == {"service", "job", "datastore"}


# --- Prometheus ---------------------------------------------------------------------------------


def test_prometheus_sends_to_alertmanager_in_both_flavours(rendered):
    compose = document(rendered, "prometheus/prometheus.yml")
    assert compose["alerting"] == {"alertmanagers": [{"static_configs": [{"targets": ["alertmanager:9093"]}]}]}
    config_maps = list(yaml.safe_load_all(rendered.files["kubernetes/observability/prometheus-config.yaml"].text))
    prometheus = yaml.safe_load(next(m for m in config_maps if m and m["metadata"]["name"] == "prometheus-config")["data"]["prometheus.yml"])
    assert prometheus["alerting"] == {"alertmanagers": [{"static_configs": [{"targets": ["alertmanager.nordic-pay.svc:9093"]}]}]}


def test_without_alertmanager_prometheus_has_no_alerting_block(reference_blueprint):
    plain = render_in_memory(reference_blueprint)
    assert "alerting" not in yaml.safe_load(plain.files["prometheus/prometheus.yml"].text)
    assert not any(path.startswith("alertmanager/") or path.endswith("alertmanager.yaml") for path in plain.files)


# --- compose ------------------------------------------------------------------------------------


def test_the_compose_container_is_hardened_sized_and_reads_its_secrets(rendered):
    compose = document(rendered, "compose/docker-compose.yml")
    entry = compose["services"]["alertmanager"]
    assert entry["image"] == "prom/alertmanager:v0.25.0"
    assert entry["user"] == "65534" and entry["read_only"] is True
    assert entry["cap_drop"] == ["ALL"] and entry["security_opt"] == ["no-new-privileges:true"]
    assert entry["command"] == ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager", "--cluster.listen-address="]
    assert entry["volumes"] == ["../alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro", "alertmanager-data:/alertmanager"]
    assert entry["healthcheck"]["test"] == ["CMD", "wget", "-q", "-O", "/dev/null", "http://localhost:9093/-/healthy"]
    assert entry["deploy"]["resources"]["limits"] == {"cpus": "0.1", "memory": "128m"}
    assert entry["secrets"] == [
        {"source": "alertmanager-oncall-token", "target": "oncall-token"},
        {"source": "alertmanager-slack-webhook-url", "target": "slack-webhook-url"},
        {"source": "alertmanager-smtp-password", "target": "smtp-password"},
    ]
    assert {name: compose["secrets"][name]["file"] for name in compose["secrets"] if name.startswith("alertmanager-")} == {
        "alertmanager-oncall-token": "../secrets/alertmanager/oncall-token",
        "alertmanager-slack-webhook-url": "../secrets/alertmanager/slack-webhook-url",
        "alertmanager-smtp-password": "../secrets/alertmanager/smtp-password",
    }
    assert "alertmanager-data" in compose["volumes"]
    # Prometheus reaches it on `monitoring`; only it has a way out, to the receivers
    assert entry["networks"] == ["egress_alertmanager", "monitoring"]
    assert compose["networks"]["egress_alertmanager"].get("internal") is not True
    assert "alertmanager" not in (compose["services"]["prometheus"].get("networks") or []) and "monitoring" in compose["services"]["prometheus"]["networks"]


def test_capacity_and_the_plan_count_alertmanager(rendered):
    size = rendered.plan.observability.size("alertmanager")
    assert (size.cpu.text, size.memory.text) == ("100m", "128Mi")
    assert rendered.plan.grace["alertmanager"].period.text == "30s"


# --- Kubernetes ---------------------------------------------------------------------------------


def kubernetes_objects(rendered) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(rendered.files["kubernetes/observability/alertmanager.yaml"].text) if doc]


def test_kubernetes_objects_pass_the_client_models_and_kubernetes_validate(rendered):
    import kubernetes_validate
    from kubernetes.client import models

    documents = kubernetes_objects(rendered)
    assert [doc["kind"] for doc in documents] == ["ConfigMap", "Deployment", "Service", "NetworkPolicy"]
    for doc in documents:
        version = doc["apiVersion"].rpartition("/")[2]
        getattr(models, version[:1].upper() + version[1:] + doc["kind"]).model_validate(doc)
        kubernetes_validate.validate(doc, "1.30", strict=True)
    assert "observability/alertmanager.yaml" in rendered.files["kubernetes/kustomization.yaml"].text
    assert "alertmanager-secrets (keys oncall-token, slack-webhook-url, smtp-password)" in rendered.files["kubernetes/kustomization.yaml"].text


def test_kubernetes_deployment_is_restricted_and_mounts_config_and_secrets(rendered):
    config, deployment, service, _ = kubernetes_objects(rendered)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}, "runAsUser": 65534, "runAsGroup": 65534}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod["automountServiceAccountToken"] is False
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["config"] == {"name": "config", "configMap": {"name": "alertmanager-config"}}
    assert volumes["data"] == {"name": "data", "emptyDir": {}}
    assert volumes["secrets"]["secret"]["secretName"] == "alertmanager-secrets"
    assert [item["key"] for item in volumes["secrets"]["secret"]["items"]] == ["oncall-token", "slack-webhook-url", "smtp-password"]
    assert {mount["mountPath"] for mount in container["volumeMounts"]} == {"/etc/alertmanager", "/alertmanager", "/run/secrets"}
    # the ConfigMap holds the same file as compose: credentials stay in the Secret
    assert config["data"]["alertmanager.yml"] == rendered.files["alertmanager/alertmanager.yml"].text
    assert service["spec"]["ports"] == [{"name": "web", "port": 9093, "targetPort": "web", "protocol": "TCP"}]
    assert netpol.match_labels({"matchLabels": service["spec"]["selector"]}, deployment["spec"]["template"]["metadata"]["labels"])


def test_the_operator_flavour_renders_the_same_alertmanager(write_blueprint, rendered):
    """No Alertmanager CRD is vendored: the operator flavour gets the same plain objects (its
    Prometheus CR points at the Service's `web` port)."""
    text = reference_with_alertmanager_text().replace("prometheus: {scrape_interval: 15s, retention: 15d}", "prometheus: {operator: true}")
    operator = render_in_memory(write_blueprint(text))
    assert "kubernetes/observability/monitoring.yaml" in operator.files
    assert operator.files["kubernetes/observability/alertmanager.yaml"].text == rendered.files["kubernetes/observability/alertmanager.yaml"].text


def test_only_prometheus_reaches_alertmanager(rendered):
    gathered = verifier.Gathered()
    for item in verifier.rendered_objects(rendered.files):
        gathered.add(item)
    pods, roles = verifier.network_pods(rendered.plan, gathered.workloads)
    policies = [
        doc
        for path, built in rendered.files.items()
        if path.startswith("kubernetes/") and path.endswith(".yaml")
        for doc in yaml.safe_load_all(built.text)
        if doc and doc.get("kind") == "NetworkPolicy"
    ]
    network = netpol.Network(pods, policies)
    alertmanager = next(pod for pod in pods if pod.labels.get("app.kubernetes.io/name") == "alertmanager")
    prometheus = next(pod for pod in pods if roles[pod.key] == "prometheus")
    assert network.may_connect(prometheus, alertmanager, ("TCP", 9093))
    assert not network.may_connect(prometheus, alertmanager, ("TCP", 9094))
    others = [pod for pod in pods if pod.key not in (prometheus.key, alertmanager.key)]
    assert others and not any(network.may_connect(pod, alertmanager, ("TCP", 9093)) for pod in others)


def test_deep_verification_finds_nothing(rendered):
    assert [finding.id for finding in verification(rendered)] == []


def test_the_variant_is_the_reference_plus_alertmanager(reference_blueprint):
    assert reference_with_alertmanager_text() == reference_blueprint.read_text().replace("  alerts: true\n", "  alerts: true\n" + ALERTMANAGER)


def test_capacity_counts_alertmanager_on_both_targets(rendered, reference_blueprint):
    """The capacity check reads the rendered files: the variant places exactly Alertmanager's
    128Mi and 100m more than the reference, in compose (limits) and Kubernetes (requests)."""
    from msgen.checks.capacity import Inspector

    def placement(analysis):
        inspector = Inspector(analysis.plan)
        for built in analysis.artifacts:
            inspector.read(built)
        return inspector.capacity()

    with_am, without = placement(rendered), placement(render_in_memory(reference_blueprint))
    mebibyte = 1024**2
    assert with_am.compose.memory_used - without.compose.memory_used == 128 * mebibyte
    assert with_am.compose.cpu_limits_m - without.compose.cpu_limits_m == 100
    assert "alertmanager" in {load.name for load in with_am.compose.loads}
    assert with_am.kubernetes.memory_used - without.kubernetes.memory_used == 128 * mebibyte
    assert with_am.kubernetes.cpu_reserved_m - without.kubernetes.cpu_reserved_m == 100
