"""The dashboards of services and datastores, their logs panels, and the Kubernetes files for
the cluster's Grafana (dashboard ConfigMaps) and Alloy (pod logs of the app namespace).

Grafana and Alloy cannot be installed here: the JSON model and the Alloy configuration are
checked structurally, the logs selectors against the labels each Alloy configuration attaches,
the ConfigMaps with the kubernetes client's models. PromQL and the exporters' metric names are
proven by the real promtool and exporters in tests/test_dashboards_real.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from msgen.plan import dashboards as plan_dashboards
from msgen.targets import observability as target
from tests.rendering import edited, render_in_memory, verification

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "blueprints" / "reference.yaml"
BOARDS = "grafana/provisioning/dashboards/msgen"


@pytest.fixture(scope="module")
def reference():
    return render_in_memory(REFERENCE)


def files(rendered) -> dict[str, str]:
    return {built.path: built.text for built in rendered.artifacts}


def board(rendered, path: str) -> dict:
    return json.loads(files(rendered)[f"{BOARDS}/{path}"])


def titles(board_: dict) -> list[str]:
    return [panel["title"] for panel in board_["panels"]]


def exprs(board_: dict, kind: str = "timeseries") -> list[str]:
    return [query["expr"] for panel in board_["panels"] if panel["type"] == kind for query in panel["targets"]]


def test_each_engine_shows_its_own_cache_and_connections(reference):
    assert titles(board(reference, "datastores/payment-db.json")) == [
        "mysql up", "Connections (alert at 80%)", "Buffer pool hit ratio", "Queries", "Slow queries", "Logs of payment-db",
    ]  # fmt: skip
    assert titles(board(reference, "datastores/ledger-db.json")) == [
        "postgres up", "Connections (alert at 80%)", "Cache hit ratio", "Transactions", "Deadlocks", "Logs of ledger-db",
    ]  # fmt: skip
    assert titles(board(reference, "datastores/fraud-cache.json")) == [
        "redis up", "Connections (alert at 80%)", "Keyspace hit ratio", "Memory", "Evicted keys", "Logs of fraud-cache",
    ]  # fmt: skip
    # every metric of a datastore's board is its own job's
    for name in ("payment-db", "ledger-db", "fraud-cache"):
        for expr in exprs(board(reference, f"datastores/{name}.json")):
            selectors = re.findall(r"\{([^}]*)\}", expr)
            assert selectors and all(selector == f'job="{name}"' for selector in selectors), expr


def test_a_service_with_metrics_shows_its_replicas_against_its_limits(reference):
    payment = board(reference, "services/payment.json")
    assert titles(payment) == [
        "Up", "Scrape duration (timeout 10s)", "Resident memory (limit 256Mi, alert at 90%)", "CPU (limit 500m)",
        "Samples per scrape", "Logs of payment",
    ]  # fmt: skip
    lines = {panel["title"]: panel["fieldConfig"]["defaults"]["thresholds"]["steps"][-1] for panel in payment["panels"][:4]}
    assert lines["Scrape duration (timeout 10s)"] == {"color": "red", "value": 10.0}
    assert lines["Resident memory (limit 256Mi, alert at 90%)"] == {"color": "red", "value": 256 * 1024**2}
    assert lines["CPU (limit 500m)"] == {"color": "red", "value": 0.5}
    assert all('job="payment", instance=~"$instance"' in expr for expr in exprs(payment))
    instance = next(v for v in payment["templating"]["list"] if v["name"] == "instance")
    assert instance["query"]["query"] == 'label_values(up{job="payment"}, instance)' and instance["includeAll"]


def test_a_service_without_metrics_has_its_logs_only(reference):
    ledger = board(reference, "services/ledger.json")
    assert [(panel["type"], panel["title"]) for panel in ledger["panels"]] == [("logs", "Logs of ledger")]
    assert exprs(ledger, "logs") == ['{project="nordic-pay", service="ledger"}']


def test_the_route_dashboard_keeps_its_panels_and_gets_the_logs(reference):
    payment = board(reference, "payment.json")
    assert titles(payment)[-1] == "Logs of payment" and payment["panels"][-1]["type"] == "logs"
    assert exprs(payment, "logs") == ['{project="nordic-pay", service="payment"}']
    assert [variable["name"] for variable in payment["templating"]["list"]] == ["datasource", "loki"]


def _labels(alloy: str, block: str) -> set[str]:
    """The label names a `values = {...}` map inside `block { ... }` sets."""
    body = re.search(block + r"\s*\{\s*values\s*=\s*\{([^}]*)\}", alloy)
    return set(re.findall(r"^\s*(\w+)\s*=", body.group(1), re.M)) if body else set()


def _alloy_components(alloy: str) -> list[tuple[str, str]]:
    code = re.sub(r"//[^\n]*", "", re.sub(r'"(?:[^"\\]|\\.)*"', '""', alloy))
    assert code.count("{") == code.count("}") and code.count("[") == code.count("]") and code.count("(") == code.count(")")
    blocks = re.findall(r'^\s*([a-z_.]+) "([a-z0-9_]+)" \{', alloy, re.M)
    # every component a block reads from or forwards to is declared
    for component, label in re.findall(r"([a-z_.]+)\.([a-z0-9_]+)\.(?:receiver|targets|output)\b", code):
        assert (component, label) in blocks, (component, label)
    return blocks


def _kubernetes_alloy(rendered) -> str:
    config_map = yaml.safe_load(files(rendered)["kubernetes/observability/alloy.yaml"])
    assert config_map["metadata"]["namespace"] == "monitoring" and config_map["metadata"]["name"] == "nordic-pay-alloy"
    return config_map["data"][target.ALLOY_CONFIG_KEY]


def test_logs_selectors_use_the_labels_both_collectors_attach(reference):
    selectors = [expr for path, text in files(reference).items() if path.startswith(BOARDS) for expr in exprs(json.loads(text), "logs")]
    assert len(selectors) == 8  # overview, the route, three services, three datastores
    wanted = {name for selector in selectors for name in re.findall(r'(\w+)="', selector.split("}")[0])}
    assert wanted == {plan_dashboards.LOG_PROJECT_LABEL, plan_dashboards.LOG_SERVICE_LABEL}
    compose = files(reference)["loki/config.alloy"]
    assert wanted <= _labels(compose, "stage.labels") | _labels(compose, "stage.static_labels")
    kubernetes = _kubernetes_alloy(reference)
    relabelled = set(re.findall(r'target_label\s*=\s*"(\w+)"', kubernetes))
    assert wanted <= relabelled | _labels(kubernetes, "stage.static_labels")
    assert 'project = "nordic-pay"' in kubernetes
    # the service label is the pod's app.kubernetes.io/name, which every msgen workload carries as its name
    assert 'source_labels = ["__meta_kubernetes_pod_label_app_kubernetes_io_name"]\n    target_label  = "service"' in kubernetes


def test_kubernetes_alloy_reads_the_app_namespace_through_the_api(reference):
    alloy = _kubernetes_alloy(reference)
    assert _alloy_components(alloy) == [
        ("discovery.kubernetes", "msgen_nordic_pay"),
        ("discovery.relabel", "msgen_nordic_pay"),
        ("loki.source.kubernetes", "msgen_nordic_pay"),
        ("loki.process", "msgen_nordic_pay"),
        ("loki.write", "msgen_nordic_pay"),
    ]
    assert re.search(r'namespaces \{\s*names = \["nordic-pay"\]\s*\}', alloy)
    assert 'url = coalesce(sys.env("LOKI_PUSH_URL"), "http://loki-gateway.monitoring.svc/loki/api/v1/push")' in alloy
    assert "__path__" not in alloy and "/var/log" not in alloy  # no node files: the API only


def _dashboard_config_maps(rendered) -> dict[str, dict]:
    found = {}
    for path, text in files(rendered).items():
        if path.startswith("kubernetes/observability/dashboards/"):
            (document,) = [doc for doc in yaml.safe_load_all(text) if doc]
            found[path] = document
    return found


def test_kubernetes_dashboards_are_config_maps_for_the_grafana_sidecar(reference):
    from kubernetes.client import models

    config_maps = _dashboard_config_maps(reference)
    compose = {path for path in files(reference) if path.startswith(BOARDS)}
    # the same dashboards as compose, one file each
    assert {path.removeprefix("kubernetes/observability/dashboards/").removesuffix(".yaml") for path in config_maps} == {
        path.removeprefix(f"{BOARDS}/").removesuffix(".json") for path in compose
    }
    keys = []
    for path, config_map in config_maps.items():
        models.V1ConfigMap.model_validate(config_map)
        metadata = config_map["metadata"]
        assert metadata["namespace"] == "monitoring" and metadata["labels"]["grafana_dashboard"] == "1"
        assert metadata["annotations"] == {"grafana_folder": "nordic-pay"}
        ((key, text),) = config_map["data"].items()
        dashboard = json.loads(text)
        assert key == f"{dashboard['uid']}.json", path
        compose_text = files(reference)[f"{BOARDS}/{path.removeprefix('kubernetes/observability/dashboards/').removesuffix('.yaml')}.json"]
        if "payment@file" not in compose_text:
            assert text == compose_text, path  # only the routes' Traefik names differ
        keys.append(key)
    assert len(set(keys)) == len(keys)  # the sidecar writes every key into one folder
    route = json.loads(next(iter(config_maps["kubernetes/observability/dashboards/payment.yaml"]["data"].values())))
    # Traefik's names on Kubernetes: the IngressRoute's router, and the Service behind it for the retries
    router, service = 'router="nordic-pay-payment-67b542b7be24087b73ca@kubernetescrd"', 'service="nordic-pay-payment-8080@kubernetescrd"'
    assert all(router in expr or service in expr for expr in exprs(route))
    assert not any("@file" in expr for expr in exprs(route))
    overview = json.loads(next(iter(config_maps["kubernetes/observability/dashboards/overview.yaml"]["data"].values())))
    assert any(router in expr for expr in exprs(overview))
    assert not any("@file" in expr for expr in exprs(overview))


def _variant(write_blueprint, text: str):
    return render_in_memory(write_blueprint(text))


def test_monitoring_namespace_and_switches(write_blueprint):
    rendered = _variant(
        write_blueprint,
        """\
        version: 1
        project: shop
        services:
          web: {image: 'a:1.0', port: 80, route: {path_prefix: /}}
          worker: {image: 'b:1.0', port: 80}
        datastores:
          cache: {engine: redis, version: "7", memory: 256Mi}
        gateway: {domain: shop.example.com}
        observability: {prometheus: {}, grafana: true, loki: false}
        kubernetes: {version: "1.30", monitoring_namespace: observe}
        """,
    )
    paths = sorted(path for path in files(rendered) if path.startswith("kubernetes/observability/"))
    # without Loki: no Alloy, and a service without metrics has nothing to show but logs
    assert paths == [
        "kubernetes/observability/dashboards/datastores/cache.yaml",
        "kubernetes/observability/dashboards/overview.yaml",
        "kubernetes/observability/dashboards/web.yaml",
        "kubernetes/observability/prometheus-config.yaml",
    ]
    for config_map in _dashboard_config_maps(rendered).values():
        assert config_map["metadata"]["namespace"] == "observe"
        dashboard = json.loads(next(iter(config_map["data"].values())))
        assert all(panel["type"] == "timeseries" for panel in dashboard["panels"])
        assert [variable["name"] for variable in dashboard["templating"]["list"]] == ["datasource"]


def test_grafana_off_writes_no_dashboards_but_loki_still_ships_logs(write_blueprint):
    rendered = _variant(
        write_blueprint,
        """\
        version: 1
        project: shop
        services:
          web: {image: 'a:1.0', port: 80}
        observability: {grafana: false, loki: true}
        kubernetes: {version: "1.30"}
        """,
    )
    paths = sorted(path for path in files(rendered) if path.startswith(("kubernetes/observability/", "grafana/")))
    assert paths == ["kubernetes/observability/alloy.yaml", "kubernetes/observability/prometheus-config.yaml"]


def test_board_uids_stay_short_and_distinct():
    long = "a" * 60
    uids = {plan_dashboards.board_uid("p" * 30, kind, name) for kind in ("service", "datastore") for name in (long, long + "b", "x")}
    assert len(uids) == 6 and all(len(uid) <= plan_dashboards.UID_LENGTH for uid in uids)
    assert plan_dashboards.board_uid("shop", "service", "web") == "shop_service_web"
    assert target.dashboard_config_map_name("shop_service_web") == "grafana-dashboard-shop.service.web"


def test_verification_reads_the_rendered_dashboards(reference):
    """--deep: a malformed panel query, or a datasource variable the dashboard lacks, is a finding."""
    path = f"{BOARDS}/datastores/ledger-db.json"
    text = files(reference)[path]
    assert [item for item in verification(reference) if item.id == "verify-grafana-panel"] == []
    for broken, problem in (
        (text.replace("sum(rate(pg_stat_database_deadlocks", "sum(rat(pg_stat_database_deadlocks"), "'rat' is not a PromQL function"),
        (text.replace('"name": "loki"', '"name": "logs"'), "${loki} is not a variable"),
    ):
        assert broken != text
        rendered = dict(reference.files)
        rendered[path] = edited(reference.files[path], broken)
        (item,) = [item for item in verification(reference, rendered) if item.id == "verify-grafana-panel"]
        assert problem in item.message and path in item.message and item.severity == "error"
