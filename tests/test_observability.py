"""Observability: jobs, alerts, checks, and the files no real program can load here.

Grafana, Loki and Alloy cannot be installed on these machines, and Debian's
promtool rejects kubernetes_sd_configs: those files are checked structurally, the
Kubernetes relabeling by applying Prometheus' relabel rules to sample pods.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from msgen.plan.disk import compose_volumes
from msgen.plan.kubernetes import SCRAPE_LABEL
from msgen.targets import Built
from msgen.targets import observability as target
from msgen.verify import observability as verifier
from tests.rendering import edited, render_in_memory, verification

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "blueprints" / "reference.yaml"


@pytest.fixture(scope="module")
def reference():
    return render_in_memory(REFERENCE)


def files(rendered) -> dict[str, str]:
    return {built.path: built.text for built in rendered.artifacts}


def variant(write_blueprint, change) -> object:
    """The reference blueprint with `change(dict)` applied, rendered in memory."""
    # ruamel reads YAML 1.2, like msgen: `NO` stays Norway, not false
    from io import StringIO

    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(REFERENCE.read_text())
    change(data)
    text = StringIO()
    YAML(typ="safe").dump(data, text)
    return render_in_memory(write_blueprint(text.getvalue()))


def ids(analysis) -> list[str]:
    return [item.id for item in analysis.findings]


def test_reference_jobs_and_alerts(reference):
    observability = reference.plan.observability
    assert [(job.name, job.kind, job.target) for job in observability.jobs] == [
        ("prometheus", "prometheus", "localhost:9090"),
        ("gateway", "gateway", "gateway:8082"),
        ("payment", "service", "payment:9090"),
        ("fraud-cache", "datastore", "fraud-cache-exporter:9121"),
        ("ledger-db", "datastore", "ledger-db-exporter:9187"),
        ("payment-db", "datastore", "payment-db-exporter:9104"),
        ("node", "host", "node-exporter:9100"),
        ("cadvisor", "host", "cadvisor:8080"),
    ]
    alerts = [
        (rule.alert, dict(rule.labels).get("service") or dict(rule.labels).get("datastore") or dict(rule.labels)["host"])
        for g in observability.rule_groups
        for rule in g.rules
    ]
    assert alerts == [
        ("TargetDown", "{{ $labels.job }}"),
        ("RouteErrorBudgetBurnFast", "payment"),
        ("RouteErrorBudgetBurnSlow", "payment"),
        ("RouteLatencyOverBudget", "payment"),
        ("RouteRateLimited", "payment"),
        ("DatastoreDown", "fraud-cache"),
        ("DatastoreConnectionsHigh", "fraud-cache"),
        ("DatastoreDown", "ledger-db"),
        ("DatastoreConnectionsHigh", "ledger-db"),
        ("DatastoreDown", "payment-db"),
        ("DatastoreConnectionsHigh", "payment-db"),
        ("HostCpuStealHigh", "{{ $labels.instance }}"),
        ("HostIowaitHigh", "{{ $labels.instance }}"),
        ("HostDiskFilling", "{{ $labels.instance }}"),
        ("HostDiskFillsWithinADay", "{{ $labels.instance }}"),
        ("ContainerMemoryNearLimit", "{{ $labels.container_label_com_docker_compose_service }}"),
    ]
    for group in observability.rule_groups:
        for rule in group.rules:
            labels = dict(rule.labels)
            assert rule.for_ and labels["severity"] in ("critical", "warning", "info") and rule.summary


def test_rendered_prometheus_config(reference):
    config = yaml.safe_load(files(reference)["prometheus/prometheus.yml"])
    assert config["global"] == {
        "scrape_interval": "15s",
        "scrape_timeout": "10s",
        "evaluation_interval": "15s",
        "external_labels": {"project": "nordic-pay"},
    }
    assert config["rule_files"] == [
        "rules/availability.yml",
        "rules/gateway.yml",
        "rules/datastores.yml",
        "rules/host.yml",
        "rules/resources.yml",
    ]
    payment = next(job for job in config["scrape_configs"] if job["job_name"] == "payment")
    # three replicas in compose: DNS gives every replica's address
    assert payment["dns_sd_configs"] == [{"names": ["payment"], "type": "A", "port": 9090}]
    assert reference.findings and all(
        item.severity == "info" for item in reference.findings if item.id.startswith(("prometheus-", "observability-"))
    )
    # and the rendered Prometheus files pass their verification
    assert [item.id for item in verification(reference) if item.id.startswith("verify-prometheus-")] == []


def test_latency_alert_and_dashboard_follow_the_route_budget(write_blueprint):
    def budget(data):
        data["services"]["payment"]["route"]["budget"] = "150ms"

    analysis = variant(write_blueprint, budget)
    rules = yaml.safe_load(files(analysis)["prometheus/rules/gateway.yml"])["groups"][0]["rules"]
    latency = next(rule for rule in rules if rule["alert"] == "RouteLatencyOverBudget")
    # the clients in oslo reach the gateway in oslo in 2ms: the gateway's share of the 150ms is 148ms
    assert latency["expr"].endswith("> 0.148")
    assert "150ms budget minus the clients' leg of 2 ms" in latency["annotations"]["description"]
    # the gateway's histogram has a bucket ending at the alert's threshold, and one at the budget
    assert {0.148, 0.15} <= set(analysis.plan.gateway.buckets)
    board = json.loads(files(analysis)["grafana/provisioning/dashboards/msgen/payment.json"])
    panel = next(panel for panel in board["panels"] if panel["title"].startswith("Latency"))
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1] == {"color": "red", "value": 0.148}
    assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "line"


def test_scrape_timeout_longer_than_interval_is_an_error(write_blueprint):
    def slow(data):
        data["observability"]["prometheus"]["scrape_timeout"] = "20s"

    analysis = variant(write_blueprint, slow)
    found = [item for item in analysis.findings if item.id == "prometheus-timeout"]
    assert len(found) == 1 and found[0].severity == "error" and found[0].path == "observability.prometheus.scrape_timeout"
    assert found[0].line > 0


def test_short_interval_lowers_the_default_timeout(write_blueprint):
    def fast(data):
        data["observability"]["prometheus"]["scrape_interval"] = "5s"

    analysis = variant(write_blueprint, fast)
    config = yaml.safe_load(files(analysis)["prometheus/prometheus.yml"])
    assert config["global"]["scrape_timeout"] == "5s"
    assert "prometheus-timeout" not in ids(analysis)


def test_alerts_off_writes_no_rules(write_blueprint):
    def quiet(data):
        data["observability"]["alerts"] = False

    rendered = files(variant(write_blueprint, quiet))
    assert not any(path.startswith("prometheus/rules/") for path in rendered)
    assert "rule_files" not in yaml.safe_load(rendered["prometheus/prometheus.yml"])


def test_no_observability_section_renders_nothing(write_blueprint):
    analysis = variant(write_blueprint, lambda data: data.pop("observability"))
    assert "observability" not in [module.NAME for module in analysis.planned.targets]
    assert analysis.files  # other targets still render
    assert not any(a.path.startswith(("prometheus/", "grafana/", "loki/", "kubernetes/observability/")) for a in analysis.artifacts)


def _edited(reference, path: str, text: str) -> dict[str, Built]:
    """The reference's rendered files with `path` edited by hand to `text`."""
    rendered = dict(reference.files)
    rendered[path] = edited(reference.files[path], text)
    return rendered


def test_verification_reads_the_rendered_config(reference):
    text = files(reference)["prometheus/prometheus.yml"]
    config = yaml.safe_load(text)
    jobs = config["scrape_configs"]
    config["scrape_configs"] = [job for job in jobs if job["job_name"] != "ledger-db"] + [dict(jobs[2])]
    found = verification(reference, _edited(reference, "prometheus/prometheus.yml", yaml.safe_dump(config)))
    by_id = {item.id: item for item in found}
    assert by_id["verify-prometheus-job-duplicate"].path == "services.payment.metrics"
    assert by_id["verify-prometheus-unscraped"].path == "datastores.ledger-db"
    assert by_id["verify-prometheus-job-duplicate"].severity == "error" and by_id["verify-prometheus-job-duplicate"].line > 0
    clean = verification(reference, _edited(reference, "prometheus/prometheus.yml", text))
    assert not [item for item in clean if item.id.startswith("verify-prometheus-")]


def test_malformed_rule_expression_is_a_finding(reference):
    path = "prometheus/rules/gateway.yml"
    text = files(reference)[path].replace("> 0.05", "> ", 1)
    found = [item for item in verification(reference, _edited(reference, path, text)) if item.id == "verify-prometheus-rule-expression"]
    assert len(found) == 1 and "RouteRateLimited" in found[0].message and found[0].severity == "error"


@pytest.mark.parametrize(
    "expr, problem",
    [
        ("sum(rate(up[5m])", "unclosed"),
        ("rat(up[5m])", "not a PromQL function"),
        ("up ==", "ends with"),
        ('up =~ "x"', "only valid inside a label matcher"),
        ("up{job='a'}}", "unbalanced"),
        ("rate(5[5m])", "must follow a selector"),
        ("up == * 1", "two operators"),
        ("up @ 5", "unexpected text"),
        ("", "empty"),
    ],
)
def test_promql_structure_rejects(expr, problem):
    assert problem in (verifier.promql_problem(expr) or "")


def test_every_generated_expression_is_well_formed(reference):
    observability = reference.plan.observability
    exprs = [rule.expr for group in observability.rule_groups + observability.kubernetes_rule_groups for rule in group.rules]
    for path, text in files(reference).items():
        if path.endswith(".json") and path.startswith("grafana/"):
            exprs += [t["expr"] for panel in json.loads(text)["panels"] if panel["type"] == "timeseries" for t in panel["targets"]]
    assert len(exprs) > 20
    assert [expr for expr in exprs if verifier.promql_problem(expr) is not None] == []


def test_grafana_provisioning_structure(reference):
    rendered = files(reference)
    datasources = yaml.safe_load(rendered["grafana/provisioning/datasources/datasources.yml"])
    assert datasources["apiVersion"] == 1
    by_uid = {source["uid"]: source for source in datasources["datasources"]}
    assert by_uid["prometheus"]["type"] == "prometheus" and by_uid["prometheus"]["url"] == "http://prometheus:9090"
    assert by_uid["loki"]["type"] == "loki" and by_uid["loki"]["url"] == "http://loki:3100"
    assert [source["isDefault"] for source in datasources["datasources"]] == [True, False]
    providers = yaml.safe_load(rendered["grafana/provisioning/dashboards/dashboards.yml"])["providers"]
    assert len(providers) == 1 and providers[0]["type"] == "file"
    # the provider's path is where the compose mount puts the JSON files
    mounted = providers[0]["options"]["path"].removeprefix(target.GRAFANA_MOUNT)
    boards = sorted(path for path in rendered if path.endswith(".json"))
    folder = f"{target.GRAFANA_DIR}{mounted}"
    assert boards == [
        f"{folder}/{name}.json"
        for name in [
            "datastores/fraud-cache", "datastores/ledger-db", "datastores/payment-db", "overview", "payment",
            "services/fraud-check", "services/ledger", "services/payment",
        ]
    ]  # fmt: skip
    uids = set()
    for path in boards:
        board = json.loads(rendered[path])
        uids.add(board["uid"])
        assert board["schemaVersion"] >= 36 and board["panels"] and len(board["uid"]) <= 40
        ids_ = [panel["id"] for panel in board["panels"]]
        assert len(set(ids_)) == len(ids_)
        assert not _overlapping([panel["gridPos"] for panel in board["panels"]]), path
        for panel in board["panels"]:
            assert panel["type"] in ("timeseries", "logs") and set(panel["gridPos"]) == {"h", "w", "x", "y"}
            for query in panel["targets"]:
                # every query's datasource is a variable whose default is the provisioned datasource of its type
                source = by_uid[_resolved(board, query["datasource"])]
                assert source["type"] == query["datasource"]["type"] == panel["datasource"]["type"] and query["refId"]
    assert len(uids) == len(boards)
    payment = json.loads(rendered[f"{folder}/payment.json"])
    assert [panel["title"] for panel in payment["panels"]] == [
        "Requests by code",
        "5xx ratio (objective 99.9%, 429 left out)",
        "Latency at the gateway (objective 198ms; budget 200ms)",
        "Refused by the rate limit (429)",
        "503 from the circuit breaker",
        "Retries by the gateway",
        "Logs of payment",
    ]
    # what the clients got is the router's count; the retries are the service's own metric
    queries = [q["expr"] for panel in payment["panels"][:-1] for q in panel["targets"]]
    assert all('router="payment@file"' in expr for expr in queries if "traefik_service_retries_total" not in expr)
    assert sum('service="payment@file"' in expr for expr in queries) == 2  # the breaker's 503s less the service's, and the retries


def _resolved(board: dict, datasource: dict) -> str:
    """The datasource uid a panel's `${variable}` stands for by default."""
    name = re.fullmatch(r"\$\{(\w+)\}", datasource["uid"]).group(1)
    variable = next(v for v in board["templating"]["list"] if v["name"] == name)
    assert variable["type"] == "datasource" and variable["query"] == datasource["type"]
    return variable["current"]["value"]


def _overlapping(positions: list[dict]) -> bool:
    cells = [(x, y) for p in positions for x in range(p["x"], p["x"] + p["w"]) for y in range(p["y"], p["y"] + p["h"])]
    return len(cells) != len(set(cells)) or any(p["x"] + p["w"] > 24 for p in positions)


def test_loki_and_alloy_structure(reference):
    rendered = files(reference)
    loki = yaml.safe_load(rendered["loki/loki.yml"])
    assert loki["server"]["http_listen_port"] == 3100 and loki["auth_enabled"] is False
    assert loki["limits_config"]["retention_period"] == "15d" and loki["compactor"]["retention_enabled"] is True
    assert loki["schema_config"]["configs"][0]["schema"] == "v13"
    alloy = rendered["loki/config.alloy"]
    code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', re.sub(r"//[^\n]*", "", alloy))
    assert code.count("{") == code.count("}") and code.count("[") == code.count("]")
    blocks = re.findall(r'^([a-z_.]+) "([a-z]+)" \{', alloy, re.M)
    assert blocks == [
        ("local.file_match", "containers"),
        ("loki.source.file", "containers"),
        ("loki.process", "containers"),
        ("loki.write", "local"),
    ]
    # every component a block forwards to is declared
    for component, label in re.findall(r"([a-z_.]+)\.([a-z]+)\.(?:receiver|targets)", alloy):
        assert (component, label) in blocks
    assert '"/var/lib/docker/containers/*/*-json.log"' in alloy and "docker.sock" not in alloy
    assert 'url = "http://loki:3100/loki/api/v1/push"' in alloy


def _relabel(configs: list[dict], labels: dict[str, str]) -> dict[str, str] | None:
    """Prometheus' relabeling (keep and replace, anchored regexes, `;` separator) on one target."""
    labels = dict(labels)
    for config in configs:
        value = ";".join(labels.get(name, "") for name in config.get("source_labels", []))
        pattern = re.compile(f"^(?:{config.get('regex', '(.*)')})$")
        match = pattern.match(value)
        action = config.get("action", "replace")
        if action == "keep":
            if not match:
                return None
        elif action == "replace":
            if match:
                labels[config["target_label"]] = match.expand(config.get("replacement", "$1").replace("$1", r"\1"))
        else:  # pragma: no cover - msgen writes only these two
            raise AssertionError(action)
    return labels


def _pod(name: str, port_name: str, scrape: str | None, namespace: str = "nordic-pay") -> dict[str, str]:
    labels = {
        "__address__": "10.1.2.3:9090",
        "__metrics_path__": "/metrics",
        "__meta_kubernetes_namespace": namespace,
        "__meta_kubernetes_pod_name": f"{name}-abc",
        "__meta_kubernetes_pod_container_port_name": port_name,
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": name,
    }
    if scrape is not None:
        labels["__meta_kubernetes_pod_label_msgen_dev_scrape"] = scrape
    return labels


PROMETHEUS_FILES = ("kubernetes/observability/prometheus-config.yaml", "kubernetes/observability/monitoring.yaml")


def _kubernetes_documents(analysis, paths: tuple[str, ...] = PROMETHEUS_FILES) -> list[dict]:
    """The objects of the Prometheus files (or of every file under `paths`)."""
    rendered = files(analysis)
    return [doc for path, text in rendered.items() if path.startswith(paths) for doc in yaml.safe_load_all(text) if doc]


def test_kubernetes_config_keeps_exactly_the_labelled_metrics_ports(reference):
    config_maps = {doc["metadata"]["name"]: doc for doc in _kubernetes_documents(reference)}
    assert sorted(config_maps) == ["prometheus-config", "prometheus-rules"]
    config = yaml.safe_load(config_maps["prometheus-config"]["data"]["prometheus.yml"])
    pods = next(job for job in config["scrape_configs"] if job["job_name"] == "pods")
    assert pods["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["nordic-pay"]}}]
    relabel = pods["relabel_configs"]
    kept = _relabel(relabel, _pod("payment", "metrics", "true"))
    assert kept is not None and kept["job"] == "payment" and kept["pod"] == "payment-abc"
    assert _relabel(relabel, _pod("payment", "http", "true")) is None
    assert _relabel(relabel, _pod("ledger", "metrics", None)) is None
    assert _relabel(relabel, _pod("ledger", "metrics", "false")) is None
    # the label name kubernetes_sd derives from the Kubernetes target's scrape label
    assert re.sub(r"[^a-zA-Z0-9_]", "_", SCRAPE_LABEL) == "msgen_dev_scrape"
    # every workload the Kubernetes target marks for scraping becomes a job the alerts know
    marked = [
        name
        for name, w in {**reference.plan.kubernetes.services, **reference.plan.kubernetes.datastores}.items()
        if w.pod_labels.get(SCRAPE_LABEL) == "true"
    ]
    jobs = {job.name for job in reference.plan.observability.jobs}
    assert marked and set(marked) <= jobs
    gateway = next(job for job in config["scrape_configs"] if job["job_name"] == "gateway")
    assert _relabel(gateway["relabel_configs"], _pod("traefik", "metrics", None, "traefik")) is not None
    rules = config_maps["prometheus-rules"]["data"]
    assert sorted(rules) == ["availability.yml", "datastores.yml", "gateway.yml", "host.yml", "resources.yml"]
    assert config["rule_files"] == [
        f"/etc/prometheus/rules/{name}" for name in ["availability.yml", "gateway.yml", "datastores.yml", "host.yml", "resources.yml"]
    ]
    expressions = [rule["expr"] for group in yaml.safe_load(rules["gateway.yml"])["groups"] for rule in group["rules"]]
    # Traefik names an IngressRoute's router <namespace>-<name>-<sha256 of its match, 20 hex digits>@kubernetescrd
    router = 'router="nordic-pay-payment-67b542b7be24087b73ca@kubernetescrd"'
    assert expressions and all(router in expr for expr in expressions)


def test_kubernetes_custom_metrics_path(write_blueprint):
    def path(data):
        data["services"]["payment"]["metrics"]["path"] = "/internal/metrics"

    analysis = variant(write_blueprint, path)
    config_map = next(doc for doc in _kubernetes_documents(analysis) if doc["metadata"]["name"] == "prometheus-config")
    config = yaml.safe_load(config_map["data"]["prometheus.yml"])
    relabel = next(job for job in config["scrape_configs"] if job["job_name"] == "pods")["relabel_configs"]
    assert _relabel(relabel, _pod("payment", "metrics", "true"))["__metrics_path__"] == "/internal/metrics"
    assert _relabel(relabel, _pod("payment-db", "metrics", "true"))["__metrics_path__"] == "/metrics"


def test_kubernetes_objects_pass_the_strict_schema(reference):
    import kubernetes_validate  # a runtime dependency of msgen: always installed

    documents = _kubernetes_documents(reference, ("kubernetes/observability/",))
    assert len(documents) == 11  # two Prometheus ConfigMaps, eight dashboards, Alloy's configuration
    for document in documents:
        kubernetes_validate.validate(document, "1.30", strict=True)


def test_operator_flavour(write_blueprint):
    def operator(data):
        data["observability"]["prometheus"]["operator"] = True

    analysis = variant(write_blueprint, operator)
    documents = _kubernetes_documents(analysis)
    monitors = {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == "PodMonitor"}
    assert sorted(monitors) == ["fraud-cache", "gateway", "ledger-db", "payment", "payment-db"]
    payment = monitors["payment"]["spec"]
    assert payment["selector"]["matchLabels"] == {"app.kubernetes.io/name": "payment", SCRAPE_LABEL: "true"}
    assert payment["podMetricsEndpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}]
    assert monitors["gateway"]["spec"]["namespaceSelector"] == {"matchNames": ["traefik"]}
    rule = next(doc for doc in documents if doc["kind"] == "PrometheusRule")
    assert [group["name"] for group in rule["spec"]["groups"]] == ["availability", "gateway", "datastores", "host", "resources"]
    assert not any(doc["kind"] == "ConfigMap" for doc in documents)


def test_exporters_take_credentials_from_the_secret_file(reference):
    exporters = {exporter.engine: exporter for exporter in reference.plan.observability.exporters}
    for exporter in exporters.values():
        text = " ".join(exporter.command) + " ".join(value for _, value in exporter.environment)
        assert "$" not in text  # compose would interpolate it
        # SQL engines: the exporter's own user; redis has one password
        secret = "/run/secrets/db-password" if exporter.engine == "redis" else "/run/secrets/exporter-password"
        assert secret in text and exporter.password_secret == secret.rsplit("/", 1)[1]
    assert "--config.my-cnf=/tmp/my.cnf" in exporters["mysql"].command[0]
    assert "user=%s" in exporters["mysql"].command[0] and "'exporter'" in exporters["mysql"].command[0]
    assert dict(exporters["postgres"].environment)["DATA_SOURCE_PASS_FILE"] == "/run/secrets/exporter-password"
    assert dict(exporters["postgres"].environment)["DATA_SOURCE_USER"] == "exporter"


def test_rendering_is_deterministic(reference):
    again = render_in_memory(REFERENCE)
    assert files(again) == files(reference)
    assert replace(reference.plan.observability) == again.plan.observability


def test_promql_shapes_are_remembered_only_for_well_formed_expressions():
    """msgen checks one expression per shape (string literals emptied): a malformed string
    changes the shape, so it is still found after a well-formed sibling was remembered."""
    assert verifier.promql_problem('up{job="a"} > 0') is None
    assert verifier.promql_problem('up{job="b"} > 0') is None
    assert "unexpected text" in (verifier.promql_problem('up{job="c} > 0') or "")
    assert "unclosed" in (verifier.promql_problem('sum(up{job="d"} > 0') or "")


def test_a_dollar_in_a_metrics_path_reaches_prometheus_as_written(write_blueprint):
    """Prometheus expands `$1` and `${x}` in a relabel replacement; msgen escapes them so the
    scrape goes to the path the blueprint names."""
    path = write_blueprint(
        """\
        version: 1
        project: shop
        services:
          web: {image: 'a:1.0', port: 80, metrics: {path: '/m$1${x}', port: 9090}}
        observability: {prometheus: {scrape_interval: 15s, retention: 15d}}
        kubernetes: {version: "1.30"}
        """
    )
    rendered = render_in_memory(path)
    config_maps = rendered.files["kubernetes/observability/prometheus-config.yaml"].documents
    config = yaml.safe_load(next(m for m in config_maps if m["metadata"]["name"] == "prometheus-config")["data"]["prometheus.yml"])
    replacements = [rule["replacement"] for job in config["scrape_configs"] for rule in job.get("relabel_configs", []) if "replacement" in rule]
    assert replacements == ["/m$$1$${x}"]


def test_prometheus_retention_size_is_the_disk_capacity_counts(reference):
    """--storage.tsdb.retention.size caps the volume at the estimate the capacity check adds up."""
    command = yaml.safe_load(files(reference)["compose/docker-compose.yml"])["services"]["prometheus"]["command"]
    volume = next(volume for volume in compose_volumes(reference.plan) if volume.name == "prometheus-data")
    # 8 targets (6 and the two host agents) x 2000 series, a sample every 15s for 15d, 2 bytes each
    assert volume.size == 8 * 2000 * (15 * 86_400 // 15) * 2
    assert f"--storage.tsdb.retention.size={volume.size // 1024**2}MB" in command
    assert "--storage.tsdb.retention.time=15d" in command


def _endpoint(service: str, port_name: str, node: str = "node-1") -> dict[str, str]:
    return {
        "__address__": "10.1.2.3:9100",
        "__meta_kubernetes_service_label_app_kubernetes_io_name": service,
        "__meta_kubernetes_endpoint_port_name": port_name,
        "__meta_kubernetes_pod_node_name": node,
    }


def test_kubernetes_scrapes_the_clusters_node_exporter_kube_state_metrics_and_kubelets(reference):
    """No DaemonSet in the restricted namespace: the cluster's own agents, found by their Services."""
    config_maps = {doc["metadata"]["name"]: doc for doc in _kubernetes_documents(reference)}
    config = yaml.safe_load(config_maps["prometheus-config"]["data"]["prometheus.yml"])
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert sorted(jobs) == ["gateway", "kube-state-metrics", "kubelet", "node", "pods", "prometheus"]
    node = jobs["node"]
    assert node["kubernetes_sd_configs"] == [{"role": "endpoints"}]
    kept = _relabel(node["relabel_configs"], _endpoint("prometheus-node-exporter", "metrics", "osl-1"))
    assert kept is not None and kept["instance"] == "osl-1"  # the alerts name the node
    assert _relabel(node["relabel_configs"], _endpoint("prometheus-node-exporter", "https")) is None
    assert _relabel(node["relabel_configs"], _endpoint("kube-state-metrics", "metrics")) is None
    state = jobs["kube-state-metrics"]
    assert state["honor_labels"] is True
    assert _relabel(state["relabel_configs"], _endpoint("kube-state-metrics", "http")) is not None
    assert _relabel(state["relabel_configs"], _endpoint("prometheus-node-exporter", "http")) is None
    kubelet = jobs["kubelet"]
    assert (kubelet["scheme"], kubelet["metrics_path"], kubelet["honor_labels"]) == ("https", "/metrics/cadvisor", True)
    assert kubelet["kubernetes_sd_configs"] == [{"role": "node"}]
    assert kubelet["authorization"] == {"credentials_file": "/var/run/secrets/kubernetes.io/serviceaccount/token"}
    assert _relabel(kubelet["relabel_configs"], {"__meta_kubernetes_node_name": "osl-2"})["instance"] == "osl-2"


def test_kubernetes_memory_alert_reads_kube_state_metrics_limits(reference):
    observability = reference.plan.observability
    compose = {rule.alert: rule for group in observability.rule_groups for rule in group.rules}
    kubernetes = {rule.alert: rule for group in observability.kubernetes_rule_groups for rule in group.rules}
    assert "MemoryNearLimit" not in compose and "process_resident_memory_bytes" not in str(kubernetes)
    memory = kubernetes["ContainerMemoryNearLimit"].expr
    assert 'kube_pod_container_resource_limits{namespace="nordic-pay",resource="memory"} > 0' in memory
    assert 'container_memory_working_set_bytes{namespace="nordic-pay",container!="",container!="POD"}' in memory
    assert "container_spec_memory_limit_bytes" in compose["ContainerMemoryNearLimit"].expr
    # the host rules are the same in both flavours: both name the node_exporter job `node`
    assert [kubernetes[name].expr for name in ("HostCpuStealHigh", "HostIowaitHigh")] == [
        compose[name].expr for name in ("HostCpuStealHigh", "HostIowaitHigh")
    ]


def test_operator_flavour_monitors_the_clusters_agents(write_blueprint):
    def operator(data):
        data["observability"]["prometheus"]["operator"] = True

    documents = _kubernetes_documents(variant(write_blueprint, operator))
    monitors = {doc["metadata"]["name"]: doc["spec"] for doc in documents if doc["kind"] == "ServiceMonitor"}
    assert sorted(monitors) == ["kube-state-metrics", "kubelet-cadvisor", "node-exporter"]
    node = monitors["node-exporter"]
    assert node["namespaceSelector"] == {"any": True}
    assert node["selector"] == {"matchLabels": {"app.kubernetes.io/name": "prometheus-node-exporter"}}
    assert node["endpoints"][0]["port"] == "metrics"
    assert {"action": "replace", "targetLabel": "job", "replacement": "node"} in node["endpoints"][0]["relabelings"]
    kubelet = monitors["kubelet-cadvisor"]
    assert kubelet["namespaceSelector"] == {"matchNames": ["kube-system"]}
    endpoint = kubelet["endpoints"][0]
    assert (endpoint["port"], endpoint["path"], endpoint["scheme"], endpoint["honorLabels"]) == ("https-metrics", "/metrics/cadvisor", "https", True)
    assert monitors["kube-state-metrics"]["endpoints"][0]["honorLabels"] is True
    # the compose agents' jobs are not pods of the app: no PodMonitor for them
    assert not any(doc["kind"] == "PodMonitor" and doc["metadata"]["name"] in ("node", "cadvisor") for doc in documents)


def test_declared_host_disk_gives_an_alert_on_the_compose_host(write_blueprint):
    def disk(data):
        data["hosts"][0]["disk"] = "200Gi"

    observability = variant(write_blueprint, disk).plan.observability
    compose = {rule.alert: rule for group in observability.rule_groups for rule in group.rules}
    declared = compose["HostDiskOverDeclared"]
    assert declared.expr.endswith(f"> {int(200 * 1024**3 * 0.9)}")
    assert dict(declared.labels)["host"] == "osl-1" and declared.at == ("hosts", "osl-1", "disk")
    kubernetes = {rule.alert for group in observability.kubernetes_rule_groups for rule in group.rules}
    assert "HostDiskOverDeclared" not in kubernetes  # host.disk counts the nodes together there
