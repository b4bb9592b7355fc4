"""The observability files proven by Debian's Prometheus 2.42 and exporters.

- promtool accepts the compose prometheus.yml (with its rule files) and every rule file,
  and `promtool test rules` passes the rule unit tests in tests/observability/;
- a real Prometheus, with the rendered config whose targets the test points at local
  endpoints it starts, reports up == 1 for every job the reference blueprint implies, and
  0 for one the test then stops;
- end to end for Redis: redis-server with a password, Debian's redis exporter started by
  the very start script msgen renders for the compose exporter container, scraped with the
  rendered job: redis_up == 1.
"""

from __future__ import annotations

import http.server
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import realtools
import yaml

from msgen.contract import COMPOSE_FILE, EXPORTER_USER
from msgen.plan import disk
from msgen.plan import observability as obs
from tests.rendering import render_in_memory

ROOT = Path(__file__).resolve().parent.parent
RULES_TEST = ROOT / "tests" / "observability" / "reference-rules.test.yml"
pytestmark = pytest.mark.realtool


def promtool() -> Path:
    return realtools.debian_tool("promtool", "prometheus")


@pytest.fixture(scope="module")
def reference():
    return render_in_memory(ROOT / "blueprints" / "reference.yaml")


@pytest.fixture(scope="module")
def rendered(reference, tmp_path_factory) -> Path:
    """The reference blueprint's prometheus/ folder written to disk."""
    out = tmp_path_factory.mktemp("observability")
    for built in reference.artifacts:
        if built.path.startswith("prometheus/"):
            path = out / built.path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(built.text, encoding="utf-8")
    return out / "prometheus"


def run(args: list, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(arg) for arg in args], capture_output=True, text=True, timeout=timeout)


def test_promtool_accepts_config_and_rules(rendered):
    config = run([promtool(), "check", "config", rendered / "prometheus.yml"])
    assert config.returncode == 0, config.stdout + config.stderr
    assert "5 rule files found" in config.stdout
    rule_files = sorted((rendered / "rules").glob("*.yml"))
    assert [path.name for path in rule_files] == ["availability.yml", "datastores.yml", "gateway.yml", "host.yml", "resources.yml"]
    rules = run([promtool(), "check", "rules", *rule_files])
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert rules.stdout.count("SUCCESS") == len(rule_files)


def test_promtool_rule_unit_tests(rendered):
    shutil.copy(RULES_TEST, rendered / RULES_TEST.name)
    result = run([promtool(), "test", "rules", rendered / RULES_TEST.name])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("rule_file", "changes", "alert"),
    [
        # a wrong threshold: 50% instead of 14.4 x 0.1%
        ("gateway.yml", (("> 0.0144", "> 0.5"),), "RouteErrorBudgetBurnFast"),
        # the same rules on Traefik's service metrics, which the breaker's 503s never reach
        ("gateway.yml", (("traefik_router_", "traefik_service_"), ('router=\\"', 'service=\\"')), "RouteErrorBudgetBurnFast"),
        ("host.yml", (("> 2", "> 4"),), "HostCpuStealHigh"),  # 3% steal would no longer fire
        ("host.yml", (("> 10", "> 13"),), "HostIowaitHigh"),
        ("host.yml", (("< 0.1", "< 0.01"),), "HostDiskFilling"),
        ("resources.yml", (("> 0.9", "> 0.99"),), "ContainerMemoryNearLimit"),
    ],
)
def test_promtool_rejects_a_broken_rule(rendered, tmp_path, rule_file, changes, alert):
    """The unit tests would notice a wrong rule: the same run fails against a changed one."""
    broken = tmp_path / "prometheus"
    shutil.copytree(rendered, broken)
    rules = broken / "rules" / rule_file
    text = rules.read_text()
    for old, new in changes:
        assert old in text
        text = text.replace(old, new)
    rules.write_text(text, encoding="utf-8")
    shutil.copy(RULES_TEST, broken / RULES_TEST.name)
    result = run([promtool(), "test", "rules", broken / RULES_TEST.name])
    assert result.returncode != 0
    assert f"alertname: {alert}, time:" in result.stdout + result.stderr


KUBERNETES_RULES_TEST = ROOT / "tests" / "observability" / "kubernetes-rules.test.yml"


def kubernetes_documents(reference) -> dict[str, dict]:
    built = next(b for b in reference.artifacts if b.path == "kubernetes/observability/prometheus-config.yaml")
    return {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(built.text) if doc}


def test_promtool_unit_tests_of_the_kubernetes_memory_rule(reference, tmp_path):
    """The prometheus-rules ConfigMap's rule files, as a Prometheus in the cluster reads them."""
    rules = kubernetes_documents(reference)["prometheus-rules"]["data"]
    (tmp_path / "rules").mkdir()
    for name, text in rules.items():
        (tmp_path / "rules" / name).write_text(text, encoding="utf-8")
    shutil.copy(KUBERNETES_RULES_TEST, tmp_path / KUBERNETES_RULES_TEST.name)
    result = run([promtool(), "test", "rules", tmp_path / KUBERNETES_RULES_TEST.name])
    assert result.returncode == 0, result.stdout + result.stderr
    # and the same run notices a limit read from the wrong metric
    resources = tmp_path / "rules" / "resources.yml"
    resources.write_text(resources.read_text().replace('resource=\\"memory\\"', 'resource=\\"cpu\\"'), encoding="utf-8")
    assert 'resource=\\"cpu\\"' in resources.read_text()
    broken = run([promtool(), "test", "rules", tmp_path / KUBERNETES_RULES_TEST.name])
    assert broken.returncode != 0 and "ContainerMemoryNearLimit" in broken.stdout + broken.stderr


def test_promtool_accepts_the_kubernetes_host_jobs(reference, tmp_path):
    """This promtool has no kubernetes_sd: the node, kube-state-metrics and kubelet jobs are
    checked with static targets in its place, and the service account token at a local path;
    everything else (scheme, authorization, TLS, relabelling) as rendered."""
    config = yaml.safe_load(kubernetes_documents(reference)["prometheus-config"]["data"]["prometheus.yml"])
    token = tmp_path / "token"
    token.write_text("test-token\n", encoding="utf-8")
    jobs = [job for job in config["scrape_configs"] if job["job_name"] in ("node", "kube-state-metrics", "kubelet")]
    assert len(jobs) == 3
    for job in jobs:
        assert job.pop("kubernetes_sd_configs")
        job["static_configs"] = [{"targets": ["127.0.0.1:9"]}]
        if "authorization" in job:
            job["authorization"]["credentials_file"] = str(token)
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump({"global": config["global"], "scrape_configs": jobs}), encoding="utf-8")
    result = run([promtool(), "check", "config", path])
    assert result.returncode == 0, result.stdout + result.stderr
    jobs[2]["tls_config"]["insecure_skip_verifyy"] = True  # a typo the check must catch
    path.write_text(yaml.safe_dump({"global": config["global"], "scrape_configs": jobs}), encoding="utf-8")
    assert run([promtool(), "check", "config", path]).returncode != 0


def test_promtool_declared_disk_alert(write_blueprint, tmp_path):
    """With host.disk 200Gi on the compose host, 190 GiB used on / fires HostDiskOverDeclared
    (above 90%, 180 GiB) after 10m; 100 GiB used stays quiet."""
    text = (ROOT / "blueprints" / "reference.yaml").read_text(encoding="utf-8")
    first_host = "{name: osl-1, region: oslo, vcpu: 8, memory: 16Gi, storage: nvme, zone: a}"
    assert first_host in text
    blueprint = write_blueprint(text.replace(first_host, first_host[:-1] + ", disk: 200Gi}"))
    rendered = render_in_memory(blueprint)
    (tmp_path / "rules").mkdir()
    host_rules = next(built for built in rendered.artifacts if built.path == "prometheus/rules/host.yml")
    (tmp_path / "rules" / "host.yml").write_text(host_rules.text, encoding="utf-8")
    gib = 1024**3
    labels = 'job="node",instance="node-exporter:9100",device="/dev/vda1",fstype="ext4",mountpoint="/"'

    def case(used_gib: int, expected: list) -> dict:
        return {
            "interval": "1m",
            "input_series": [
                {"series": f"node_filesystem_size_bytes{{{labels}}}", "values": f"{250 * gib}x20"},
                {"series": f"node_filesystem_avail_bytes{{{labels}}}", "values": f"{(250 - used_gib) * gib}x20"},
            ],
            "alert_rule_test": [{"eval_time": "15m", "alertname": "HostDiskOverDeclared", "exp_alerts": expected}],
        }

    firing = {
        "exp_labels": {
            "alertname": "HostDiskOverDeclared",
            "host": "osl-1",
            "severity": "warning",
            **dict(item.split("=") for item in labels.replace('"', "").split(",")),
        },
        "exp_annotations": {
            "summary": "osl-1 uses more than 90% of its declared 200Gi of disk",
            "description": "190GiB are in use on /; the capacity plan counted the volumes against host.disk 200Gi.",
        },
    }
    tests = {"rule_files": ["rules/host.yml"], "evaluation_interval": "15s", "tests": [case(190, [firing]), case(100, [])]}
    (tmp_path / "disk.test.yml").write_text(yaml.safe_dump(tests), encoding="utf-8")
    result = run([promtool(), "test", "rules", tmp_path / "disk.test.yml"])
    assert result.returncode == 0, result.stdout + result.stderr


class _Metrics(http.server.BaseHTTPRequestHandler):
    body = b"# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 1.2e+07\n"

    def do_GET(self):
        if self.path != self.server.metrics_path:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        """Keep the test output free of one line per scrape."""


class FakeEndpoint:
    """A metrics endpoint on a free loopback port, serving only the job's metrics path."""

    def __init__(self, metrics_path: str):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
        self.server.metrics_path = metrics_path
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def query(port: int, expr: str) -> dict[str, float]:
    """job -> value of an instant vector query."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as response:
        data = json.load(response)
    return {item["metric"].get("job", ""): float(item["value"][1]) for item in data["data"]["result"]}


def wait_for(port: int, expr: str, want: dict[str, float], timeout: float = 40.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    seen: dict[str, float] = {}
    while time.monotonic() < deadline:
        try:
            seen = query(port, expr)
        except OSError:
            seen = {}
        if all(seen.get(job) == value for job, value in want.items()):
            return seen
        time.sleep(0.5)
    raise AssertionError(f"{expr}: wanted {want}, Prometheus reports {seen}")


def exporter_script(reference, redis_port: int, exporter_port: int, secret: Path) -> str:
    """The compose exporter's rendered start script, pointed at local paths and ports."""
    exporter = next(e for e in reference.plan.observability.exporters if e.datastore == "fraud-cache")
    assert exporter.entrypoint == ("/bin/sh", "-c")
    script = exporter.command[0]
    replacements = {
        "/run/secrets/db-password": str(secret),
        "/redis_exporter": str(realtools.debian_tool("prometheus-redis-exporter", "prometheus-redis-exporter")),
        "redis://fraud-cache:6379": f"redis://127.0.0.1:{redis_port}",
        "-web.listen-address=:9121": f"-web.listen-address=127.0.0.1:{exporter_port}",
    }
    for old, new in replacements.items():
        assert old in script, f"the rendered script no longer contains {old}: {script}"
        script = script.replace(old, new)
    return script


def mariadb_with_exporter_user(work: Path, password: str) -> tuple[subprocess.Popen, int]:
    """A MariaDB 10.11 on a free loopback port with the exporter's login as the rendered
    initdb/20-users.sh creates it (whose exact grants test_exporter_users_real proves)."""
    mariadbd = realtools.debian_tool("mariadbd", "mariadb-server")
    install = realtools.debian_tool("mariadb-install-db", "mariadb-server")
    client = realtools.debian_tool("mariadb", "mariadb-client")
    data = work / "data"
    data.mkdir()
    shutil.chown(data, "mysql", "mysql")
    install_args = ["runuser", "-u", "mysql", "--", str(install), "--no-defaults", f"--datadir={data}"]
    install_args += ["--auth-root-authentication-method=normal", "--skip-test-db", "--innodb-log-file-size=1M"]
    subprocess.run(install_args, check=True, capture_output=True, timeout=120)
    socket, port = work / "mysqld.sock", realtools.free_port()
    args = [str(mariadbd), "--no-defaults", "--user=mysql", f"--datadir={data}", f"--socket={socket}", f"--pid-file={work / 'pid'}"]
    args += [f"--log-error={work / 'mariadb.err'}", f"--port={port}", "--bind-address=127.0.0.1", "--innodb-buffer-pool-size=64M"]
    process = realtools.start(args, work / "mariadb.log")
    # a listening port is not a server that answers; the setup below needs one that does
    probe = realtools.command_probe([str(client), "--no-defaults", "-uroot", f"--socket={socket}", "-N", "-B", "-e", "SELECT 1"], "1")
    realtools.wait_until_ready(probe, process, "mariadbd", work / "mariadb.err", timeout=60)
    setup = f"CREATE USER '{EXPORTER_USER}'@'%' IDENTIFIED BY '{password}' WITH MAX_USER_CONNECTIONS 3;"
    setup += f" GRANT PROCESS, REPLICATION CLIENT, SELECT ON *.* TO '{EXPORTER_USER}'@'%';"
    subprocess.run([str(client), "--no-defaults", "-uroot", f"--socket={socket}", "-e", setup], check=True, capture_output=True, timeout=30)
    return process, port


def mysqld_exporter_script(reference, mariadb_port: int, exporter_port: int, secret: Path, work: Path) -> str:
    """The compose exporter's rendered start script for MySQL/MariaDB, pointed at local paths and ports."""
    exporter = next(e for e in reference.plan.observability.exporters if e.datastore == "payment-db")
    script = exporter.command[0]
    replacements = {
        "/run/secrets/exporter-password": str(secret),
        "/bin/mysqld_exporter": str(realtools.debian_tool("prometheus-mysqld-exporter", "prometheus-mysqld-exporter")),
        "/tmp/my.cnf": str(work / "exporter-my.cnf"),
        "'payment-db'": "'127.0.0.1'",
        "'3306'": f"'{mariadb_port}'",
        "--web.listen-address=:9104": f"--web.listen-address=127.0.0.1:{exporter_port}",
    }
    for old, new in replacements.items():
        assert old in script, f"the rendered script no longer contains {old}: {script}"
        script = script.replace(old, new)
    return script


def compose_service(reference, name: str) -> dict:
    compose = next(built for built in reference.artifacts if built.path == COMPOSE_FILE)
    return compose.document()["services"][name]


def http_probe(port: int, path: str, expect: str) -> Callable[[], tuple[bool, str]]:
    """A probe that succeeds when GET `path` answers 200 with `expect` in the body."""

    def probe() -> tuple[bool, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
                body = response.read().decode(errors="replace")
        except OSError as error:
            return False, str(error)
        return expect in body, body[-300:]

    return probe


def start_node_exporter(reference, port: int, work: Path) -> subprocess.Popen:
    """Debian's node_exporter with the compose container's arguments: only the host's root
    (/ here, not the container's /host) and the listen address on loopback differ."""
    command = compose_service(reference, "node-exporter")["command"]
    replacements = {"--path.rootfs=/host": "--path.rootfs=/", "--web.listen-address=:9100": f"--web.listen-address=127.0.0.1:{port}"}
    assert set(replacements) <= set(command), command
    args = [str(realtools.debian_tool("prometheus-node-exporter", "prometheus-node-exporter"))]
    args += [replacements.get(arg, arg) for arg in command]
    process = realtools.start(args, work / "node-exporter.log")
    probe = http_probe(port, "/metrics", 'node_cpu_seconds_total{cpu="0",mode="steal"}')
    realtools.wait_until_ready(probe, process, "node_exporter", work / "node-exporter.log", timeout=30)
    return process


@pytest.fixture(scope="module")
def stack(reference, rendered, tmp_path_factory):
    """Prometheus with the rendered config, every job's target pointed at a local endpoint."""
    prometheus_bin = realtools.debian_tool("prometheus", "prometheus")
    redis_bin = realtools.debian_tool("redis-server", "redis-server")
    work = tmp_path_factory.mktemp("stack")
    processes: list[subprocess.Popen] = []
    fakes: dict[str, FakeEndpoint] = {}
    mariadb_dir: Path | None = None
    try:
        secret = work / "fraud-cache-password"
        secret.write_text("s3cret-for-test\n", encoding="utf-8")
        secret.chmod(0o600)
        redis_port, exporter_port, prometheus_port = realtools.free_port(), realtools.free_port(), realtools.free_port()
        node_port = realtools.free_port()
        redis_args = [redis_bin, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        redis_args += ["--requirepass", "s3cret-for-test", "--dir", str(work)]
        processes.append(realtools.start([str(arg) for arg in redis_args], work / "redis.log"))
        redis_cli = realtools.debian_tool("redis-cli", "redis-tools")
        ping = [str(redis_cli), "-h", "127.0.0.1", "-p", str(redis_port), "--no-auth-warning", "-a", "s3cret-for-test", "PING"]
        realtools.wait_until_ready(realtools.command_probe(ping, "PONG"), processes[-1], "redis-server", work / "redis.log", timeout=60)
        script = exporter_script(reference, redis_port, exporter_port, secret)
        processes.append(realtools.start(["/bin/sh", "-c", script], work / "exporter.log"))
        realtools.wait_for_port(exporter_port, process=processes[-1])

        # MariaDB and Debian's mysqld-exporter 0.14, started by the rendered script (my.cnf assembly)
        # pytest's tmp_path is private to root: MariaDB's own user needs a folder it can reach
        mariadb_dir = Path(tempfile.mkdtemp(prefix="msgen-obs-"))
        mariadb_dir.chmod(0o755)
        shutil.chown(mariadb_dir, "mysql", "mysql")
        mariadb, mariadb_port = mariadb_with_exporter_user(mariadb_dir, "pw-for-test")
        processes.append(mariadb)
        mysql_secret = work / "payment-db-exporter-password"
        mysql_secret.write_text("pw-for-test\n", encoding="utf-8")
        mysql_exporter_port = realtools.free_port()
        script = mysqld_exporter_script(reference, mariadb_port, mysql_exporter_port, mysql_secret, work)
        processes.append(realtools.start(["/bin/sh", "-c", script], work / "mysqld-exporter.log"))
        realtools.wait_for_port(mysql_exporter_port, process=processes[-1])

        config = yaml.safe_load((rendered / "prometheus.yml").read_text())
        # the test copy only: scrape every second so that results appear within seconds
        config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
        for job in config["scrape_configs"]:
            name = job["job_name"]
            if name == "prometheus":
                port = prometheus_port
            elif name == "fraud-cache":
                port = exporter_port
            elif name == "payment-db":
                port = mysql_exporter_port
            elif name == "node":
                processes.append(start_node_exporter(reference, node_port, work))
                port = node_port
            else:
                fakes[name] = FakeEndpoint(job.get("metrics_path", "/metrics"))
                port = fakes[name].port
            job.pop("dns_sd_configs", None)
            job["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
        test_config = rendered / "prometheus-test.yml"  # beside the rendered one: rule_files resolve the same
        test_config.write_text(yaml.safe_dump(config), encoding="utf-8")
        args = [
            str(prometheus_bin),
            f"--config.file={test_config}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ]
        # the compose container's retention flags as rendered: this Prometheus accepts them
        retention = [arg for arg in compose_service(reference, "prometheus")["command"] if arg.startswith("--storage.tsdb.retention.")]
        assert [arg.split("=")[0] for arg in retention] == ["--storage.tsdb.retention.time", "--storage.tsdb.retention.size"]
        args += retention
        processes.append(realtools.start(args, work / "prometheus.log"))
        ready = http_probe(prometheus_port, "/-/ready", "Ready")
        realtools.wait_until_ready(ready, processes[-1], "prometheus", work / "prometheus.log", timeout=60)
        jobs = [job["job_name"] for job in config["scrape_configs"]]
        yield {"port": prometheus_port, "fakes": fakes, "jobs": jobs, "log": work, "node_port": node_port}
    finally:
        for fake in fakes.values():
            fake.stop()
        for process in reversed(processes):
            realtools.stop(process)
        if mariadb_dir is not None:
            shutil.rmtree(mariadb_dir, ignore_errors=True)


def test_every_job_is_up_then_a_stopped_target_is_down(reference, stack):
    jobs = stack["jobs"]
    assert sorted(jobs) == sorted(job.name for job in reference.plan.observability.jobs)
    assert set(jobs) == {"prometheus", "gateway", "payment", "fraud-cache", "ledger-db", "payment-db", "node", "cadvisor"}
    wait_for(stack["port"], "up", {job: 1.0 for job in jobs})
    stack["fakes"]["payment"].stop()
    seen = wait_for(stack["port"], "up", {"payment": 0.0, "gateway": 1.0}, timeout=20)
    assert {job: value for job, value in seen.items() if job != "payment"} == {job: 1.0 for job in jobs if job != "payment"}


def test_mariadb_is_up_through_the_rendered_exporter(stack):
    """mysqld-exporter read the my.cnf the rendered script assembled from the secret file."""
    seen = wait_for(stack["port"], "mysql_up", {"payment-db": 1.0})
    assert seen == {"payment-db": 1.0}
    limit = wait_for(stack["port"], "mysql_global_variables_max_connections", {"payment-db": 151.0})
    assert limit["payment-db"] == 151.0  # the metric the connections alert divides by


def test_redis_is_up_through_the_rendered_exporter(stack):
    """The engine's own up metric, from Debian's exporter started with msgen's settings."""
    seen = wait_for(stack["port"], "redis_up", {"fraud-cache": 1.0})
    assert seen == {"fraud-cache": 1.0}
    clients = wait_for(stack["port"], "redis_config_maxclients", {"fraud-cache": 10000.0})
    assert clients["fraud-cache"] == 10000.0  # the metric the connections alert divides by


def test_prometheus_loaded_the_rendered_rules(stack):
    url = f"http://127.0.0.1:{stack['port']}/api/v1/rules"
    deadline = time.monotonic() + 20
    names: list[str] = []
    while time.monotonic() < deadline and not names:
        with urllib.request.urlopen(url, timeout=5) as response:
            groups = json.load(response)["data"]["groups"]
        names = sorted(rule["name"] for group in groups for rule in group["rules"])
        time.sleep(0.2)
    assert names == sorted(
        ["TargetDown", "RouteErrorBudgetBurnFast", "RouteErrorBudgetBurnSlow", "RouteLatencyOverBudget", "RouteRateLimited"]
        + ["DatastoreDown", "DatastoreConnectionsHigh"] * 3
        + ["HostCpuStealHigh", "HostIowaitHigh", "HostDiskFilling", "HostDiskFillsWithinADay", "ContainerMemoryNearLimit"]
    )


def test_node_exporter_feeds_the_steal_and_iowait_rules(reference, stack):
    """The rendered node job scrapes a real node_exporter, and the alert rules' own
    expressions, without their thresholds, evaluate to a percentage for that host."""
    wait_for(stack["port"], "up", {"node": 1.0})
    window = reference.plan.observability.rate_window
    rules = {rule.alert: rule.expr for group in reference.plan.observability.rule_groups for rule in group.rules}
    for alert, mode, threshold in (("HostCpuStealHigh", "steal", "2"), ("HostIowaitHigh", "iowait", "10")):
        share = obs.cpu_share_expr(mode, window)
        assert rules[alert] == f"{share} > {threshold}"
        series = wait_for_series(stack["port"], share)
        assert [item["metric"] for item in series] == [{"instance": f"127.0.0.1:{stack['node_port']}"}]
        value = float(series[0]["value"][1])
        assert 0.0 <= value <= 100.0, (mode, value)


def wait_for_series(port: int, expr: str, timeout: float = 30.0) -> list[dict]:
    """The instant vector of `expr` once it has a result (a rate needs two scrapes)."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url, timeout=5) as response:
            data = json.load(response)
        assert data["status"] == "success", data
        if data["data"]["result"]:
            return data["data"]["result"]
        time.sleep(0.5)
    raise AssertionError(f"{expr}: no result within {timeout}s")


def alloy_check(reference, port: int) -> subprocess.CompletedProcess:
    """The Alloy container's healthcheck, as rendered, run by bash against 127.0.0.1:`port`."""
    test = compose_service(reference, "alloy")["healthcheck"]["test"]
    assert test[:3] == ["CMD", "bash", "-c"] and "/dev/tcp/127.0.0.1/12345" in test[3]
    script = test[3].replace("/dev/tcp/127.0.0.1/12345", f"/dev/tcp/127.0.0.1/{port}")
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=10)


def test_alloy_healthcheck_passes_only_on_a_ready_answer(reference, stack):
    """The image has bash but neither wget nor curl: the check speaks HTTP itself. A real
    Prometheus' /-/ready (200) passes; a 404 and a closed port fail."""
    assert alloy_check(reference, stack["port"]).returncode == 0
    not_found = FakeEndpoint("/metrics")
    try:
        assert alloy_check(reference, not_found.port).returncode != 0
    finally:
        not_found.stop()
    assert alloy_check(reference, realtools.free_port()).returncode != 0


def test_prometheus_runs_with_the_rendered_retention(reference, stack):
    """Its flags page shows the retention time and size it took from the rendered flags: the
    size is the capacity estimate in whole MiB (Prometheus' MB are powers of two)."""
    url = f"http://127.0.0.1:{stack['port']}/api/v1/status/flags"
    with urllib.request.urlopen(url, timeout=5) as response:
        flags = json.load(response)["data"]
    assert flags["storage.tsdb.retention.time"] == "15d"
    units = {"KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}
    shown = flags["storage.tsdb.retention.size"]  # e.g. 2GiB588MiB
    parts = re.findall(r"([0-9]+)([KMGT]iB)", shown)
    assert "".join(number + unit for number, unit in parts) == shown
    taken = sum(int(number) * units[unit] for number, unit in parts)
    assert taken == disk.prometheus_bytes(reference.plan.observability) // 1024**2 * 1024**2
