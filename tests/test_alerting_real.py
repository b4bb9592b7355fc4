"""Alertmanager's configuration proven by Debian's Alertmanager 0.25 and Prometheus 2.42.

- amtool accepts the reference blueprint's alertmanager.yml (with the secret files present)
  and routes each severity to the receiver the blueprint names;
- end to end: a real Prometheus with the rendered config and rules (pointed at loopback)
  sees a stopped target, fires TargetDown and sends it to a real Alertmanager with the
  rendered configuration, which POSTs it to a loopback webhook with the Bearer token from
  the secret file; the same job's error-ratio alert reaches Alertmanager and is held back
  by the TargetDown inhibition; DatastoreDown holds back its datastore's other alerts.

Only the test copies change: every `for` becomes 0s, Prometheus scrapes and evaluates every
second, Alertmanager's group_wait and group_interval become 1s, the targets and the
Alertmanager address point at loopback, and /run/secrets/ at a folder of the test.
"""

from __future__ import annotations

import copy
import http.server
import json
import re
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import realtools
import yaml

from tests.alerting_variant import write_reference_with_alertmanager
from tests.rendering import render_in_memory

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "blueprints" / "reference.yaml"
TOKEN = "t0ken-for-test"
# the route alert that pages first when the router counts 5xx
ERROR_ALERT = "RouteErrorBudgetBurnFast"
pytestmark = pytest.mark.realtool

BLUEPRINT = """\
version: 1
project: alerting
regions:
  home: {jurisdiction: DE}
gateway:
  domain: shop.example.com
services:
  payment:
    image: ghcr.io/example/payment:1.0.0
    port: 8080
    route: {path_prefix: /pay}
    health: {path: /health}
    metrics: {path: /metrics, port: 9100}
observability:
  prometheus: {scrape_interval: 15s}
  alertmanager:
    receivers:
      oncall:
        webhook: {url: "http://127.0.0.1:HOOK/oncall", credentials_secret: hook-token}
      chat:
        webhook: {url: "http://127.0.0.1:HOOK/chat"}
    route: {receiver: chat, critical: oncall}
"""


def amtool() -> Path:
    return realtools.debian_tool("amtool", "prometheus-alertmanager")


def run(args: list, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(arg) for arg in args], capture_output=True, text=True, timeout=timeout)


def with_secrets(config_text: str, folder: Path) -> str:
    """The configuration with /run/secrets/ replaced by a folder of the test (the test copy)."""
    return config_text.replace("/run/secrets/", f"{folder}/")


@pytest.fixture(scope="module")
def reference_config(tmp_path_factory) -> Path:
    """The reference blueprint's alertmanager.yml (with tests/alerting_variant.py's receivers), its secret files present."""
    work = tmp_path_factory.mktemp("reference-alertmanager")
    rendered = render_in_memory(write_reference_with_alertmanager(work))
    secrets = work / "secrets"
    secrets.mkdir()
    for name in rendered.plan.observability.alerting.secrets:
        (secrets / name).write_text("https://hooks.example.no/secret\n" if "url" in name else "s3cret\n", encoding="utf-8")
    config = work / "alertmanager.yml"
    config.write_text(with_secrets(rendered.files["alertmanager/alertmanager.yml"].text, secrets), encoding="utf-8")
    return config


def test_amtool_accepts_the_reference_config(reference_config):
    result = run([amtool(), "check-config", reference_config])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert " - 3 inhibit rules" in result.stdout and " - 3 receivers" in result.stdout


def test_amtool_rejects_a_route_to_an_undeclared_receiver(reference_config, tmp_path):
    """The check above can fail: the same file with its route pointing nowhere does."""
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(reference_config.read_text().replace("receiver: oncall", "receiver: nobody"), encoding="utf-8")
    result = run([amtool(), "check-config", broken])
    assert result.returncode != 0
    assert 'undefined receiver "nobody"' in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=TargetDown", "severity=critical", "service=payment"], "oncall"),
        (["alertname=DatastoreConnectionsHigh", "severity=warning", "datastore=ledger-db"], "chat"),
        (["alertname=Custom", "service=payment"], "ops-mail"),
    ],
)
def test_amtool_routes_each_severity_to_its_receiver(reference_config, labels, receiver):
    result = run([amtool(), "config", "routes", "test", f"--config.file={reference_config}", *labels])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


# --- end to end ----------------------------------------------------------------------------


class Webhook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.arrived:
            self.server.posts.append({"path": self.path, "authorization": self.headers.get("Authorization"), "body": body})
            self.server.arrived.notify_all()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        """Keep the test output quiet."""


class Gateway(http.server.BaseHTTPRequestHandler):
    """Traefik's request counters for one router: flat until `failing`, then 5xx climbing."""

    def do_GET(self):
        server = self.server
        with server.lock:
            if server.failing:
                server.errors += 10
                server.requests += 10
            lines = [
                "# TYPE traefik_router_requests_total counter",
                f'traefik_router_requests_total{{router="{server.router}",code="200"}} {server.requests}',
                f'traefik_router_requests_total{{router="{server.router}",code="500"}} {server.errors}',
            ]
        body = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        """Keep the test output quiet."""


def serve(handler, **attributes) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    for key, value in attributes.items():
        setattr(server, key, value)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def shut(server: http.server.ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


def http_ok(url: str):
    def probe() -> tuple[bool, str]:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200, str(response.status)
        except OSError as error:
            return False, str(error)

    return probe


def am_alerts(port: int) -> list[dict]:
    """Every alert Alertmanager holds, inhibited ones included."""
    query = urllib.parse.urlencode({"active": "true", "silenced": "true", "inhibited": "true"})
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/alerts?{query}", timeout=5) as response:
        return json.load(response)


def wait_for_alert(port: int, process, log: Path, timeout: float = 40.0, **labels: str) -> dict:
    """The alert whose labels include `labels`, once Alertmanager holds it."""
    found: list[dict] = []

    def probe() -> tuple[bool, str]:
        alerts = am_alerts(port)
        found[:] = [alert for alert in alerts if all(alert["labels"].get(k) == v for k, v in labels.items())]
        return bool(found), f"{len(alerts)} alerts, none with {labels}"

    realtools.wait_until_ready(probe, process, f"alertmanager holding {labels}", log, timeout=timeout, interval=0.2)
    return found[0]


def rules_test_copy(rule_text: str) -> dict:
    """The rendered rule file with every `for` at 0s (the test copy only)."""
    document = yaml.safe_load(rule_text)
    for group in document["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            rule["for"] = "0s"
    return document


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    prometheus_bin = realtools.debian_tool("prometheus", "prometheus")
    alertmanager_bin = realtools.debian_tool("prometheus-alertmanager", "prometheus-alertmanager")
    work = tmp_path_factory.mktemp("alerting")
    hook = serve(Webhook, posts=[], arrived=threading.Condition())
    blueprint = work / "blueprint.yaml"
    blueprint.write_text(BLUEPRINT.replace("HOOK", str(hook.server_address[1])), encoding="utf-8")
    rendered = render_in_memory(blueprint)
    gateway_rules = yaml.safe_load(rendered.files["prometheus/rules/gateway.yml"].text)["groups"][0]["rules"]
    expr = next(rule["expr"] for rule in gateway_rules if rule["alert"] == ERROR_ALERT)
    router = re.search(r'traefik_router_requests_total\{router="([^"]+)"', expr).group(1)
    gateway = serve(Gateway, lock=threading.Lock(), failing=False, requests=100, errors=0, router=router)
    processes: list[subprocess.Popen] = []
    try:
        secrets = work / "secrets"
        secrets.mkdir()
        (secrets / "hook-token").write_text(TOKEN + "\n", encoding="utf-8")
        am_config = yaml.safe_load(with_secrets(rendered.files["alertmanager/alertmanager.yml"].text, secrets))
        am_config["route"].update(group_wait="1s", group_interval="1s")  # the test copy only
        (work / "alertmanager.yml").write_text(yaml.safe_dump(am_config), encoding="utf-8")
        am_port, prometheus_port = realtools.free_port(), realtools.free_port()
        am_args = [
            str(alertmanager_bin),
            f"--config.file={work / 'alertmanager.yml'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
            f"--storage.path={work / 'am-data'}",
        ]
        processes.append(realtools.start(am_args, work / "alertmanager.log"))
        realtools.wait_until_ready(http_ok(f"http://127.0.0.1:{am_port}/-/ready"), processes[-1], "alertmanager", work / "alertmanager.log")

        prometheus_dir = work / "prometheus"
        (prometheus_dir / "rules").mkdir(parents=True)
        for path, built in rendered.files.items():
            if path.startswith("prometheus/rules/"):
                (work / path).write_text(yaml.safe_dump(rules_test_copy(built.text)), encoding="utf-8")
        config = yaml.safe_load(rendered.files["prometheus/prometheus.yml"].text)
        rendered_alerting = copy.deepcopy(config["alerting"])
        config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
        config["alerting"]["alertmanagers"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{am_port}"]}]
        dead = realtools.free_port()  # nothing listens there: payment is down from the first scrape
        ports = {"prometheus": prometheus_port, "gateway": gateway.server_address[1], "payment": dead}
        # the host agents' jobs are left out: this machine's host is not the subject here
        config["scrape_configs"] = [job for job in config["scrape_configs"] if job["job_name"] in ports]
        for job in config["scrape_configs"]:
            job.pop("dns_sd_configs", None)
            job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[job['job_name']]}"]}]
        (prometheus_dir / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        prometheus_args = [
            str(prometheus_bin),
            f"--config.file={prometheus_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ]
        processes.append(realtools.start(prometheus_args, work / "prometheus.log"))
        realtools.wait_until_ready(
            http_ok(f"http://127.0.0.1:{prometheus_port}/-/ready"), processes[-1], "prometheus", work / "prometheus.log"
        )
        yield {
            "rendered_alerting": rendered_alerting,
            "am_port": am_port,
            "alertmanager": processes[0],
            "log": work / "alertmanager.log",
            "hook": hook,
            "gateway": gateway,
        }
    finally:
        for process in reversed(processes):
            realtools.stop(process)
        shut(gateway)
        shut(hook)


def wait_for_post(hook, predicate, timeout: float = 40.0) -> dict:
    deadline = time.monotonic() + timeout
    with hook.arrived:
        while True:
            match = next((post for post in hook.posts if predicate(post)), None)
            if match is not None:
                return match
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching notification within {timeout}s; got {[post['body'] for post in hook.posts]}")
            hook.arrived.wait(left)


def fires(name: str, service: str):
    def predicate(post: dict) -> bool:
        return any(a["labels"].get("alertname") == name and a["labels"].get("service") == service for a in post["body"]["alerts"])

    return predicate


def test_prometheus_points_at_the_one_alertmanager(stack):
    assert stack["rendered_alerting"] == {"alertmanagers": [{"static_configs": [{"targets": ["alertmanager:9093"]}]}]}


def test_a_down_target_reaches_the_critical_receiver_with_its_token(stack):
    post = wait_for_post(stack["hook"], fires("TargetDown", "payment"))
    body = post["body"]
    assert post["path"] == "/oncall"
    assert body["receiver"] == "oncall"
    assert post["authorization"] == f"Bearer {TOKEN}"
    assert body["groupLabels"] == {"service": "payment"}
    alert = next(a for a in body["alerts"] if a["labels"]["alertname"] == "TargetDown")
    assert alert["status"] == "firing"
    assert {key: alert["labels"][key] for key in ("severity", "service", "job", "project")} == {
        "severity": "critical",
        "service": "payment",
        "job": "payment",
        "project": "alerting",
    }


def test_the_same_services_error_alert_is_inhibited_by_target_down(stack):
    port, process, log = stack["am_port"], stack["alertmanager"], stack["log"]
    down = wait_for_alert(port, process, log, alertname="TargetDown", service="payment")
    with stack["gateway"].lock:
        stack["gateway"].failing = True  # now the gateway counts payment's requests failing
    errors = wait_for_alert(port, process, log, alertname=ERROR_ALERT, service="payment")
    assert errors["status"]["state"] == "suppressed"
    assert errors["status"]["inhibitedBy"] == [down["fingerprint"]]
    assert down["status"]["state"] == "active"
    # and no notification so far carried it
    wait_for_post(stack["hook"], fires("TargetDown", "payment"))
    with stack["hook"].arrived:
        sent = {a["labels"]["alertname"] for post in stack["hook"].posts for a in post["body"]["alerts"]}
    assert "TargetDown" in sent and ERROR_ALERT not in sent


def post_alerts(port: int, alerts: list[dict]) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def test_datastore_down_inhibits_only_its_own_datastores_alerts(stack):
    """Alerts with the labels the datastore rules give them (plus the exporter job's `job`),
    posted as Prometheus would: DatastoreDown holds back ledger-db's connections alert only."""
    port, process, log = stack["am_port"], stack["alertmanager"], stack["log"]
    reference = render_in_memory(REFERENCE).plan.observability  # its datastore rules (the rules do not depend on alerting)
    labels = {
        (rule.alert, dict(rule.labels)["datastore"]): dict(rule.labels)
        for group in reference.rule_groups
        for rule in group.rules
        if "datastore" in dict(rule.labels)
    }

    def alert(name: str, store: str) -> dict:
        return {"labels": {"alertname": name, "job": store, **labels[(name, store)]}}

    post_alerts(
        port,
        [
            alert("DatastoreDown", "ledger-db"),
            alert("DatastoreConnectionsHigh", "ledger-db"),
            alert("DatastoreConnectionsHigh", "payment-db"),
        ],
    )
    down = wait_for_alert(port, process, log, alertname="DatastoreDown", datastore="ledger-db")
    held = wait_for_alert(port, process, log, alertname="DatastoreConnectionsHigh", datastore="ledger-db")
    other = wait_for_alert(port, process, log, alertname="DatastoreConnectionsHigh", datastore="payment-db")
    assert held["status"]["state"] == "suppressed" and held["status"]["inhibitedBy"] == [down["fingerprint"]]
    assert other["status"]["state"] == "active" and other["status"]["inhibitedBy"] == []
    post = wait_for_post(stack["hook"], fires_datastore("DatastoreConnectionsHigh", "payment-db"))
    assert post["body"]["receiver"] == "chat" and post["path"] == "/chat"
    assert post["body"]["groupLabels"] == {"datastore": "payment-db"}


def fires_datastore(name: str, store: str):
    def predicate(post: dict) -> bool:
        return any(a["labels"].get("alertname") == name and a["labels"].get("datastore") == store for a in post["body"]["alerts"])

    return predicate
