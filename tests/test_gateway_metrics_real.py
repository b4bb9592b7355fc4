"""What the real Traefik counts where: the route alerts read its router metrics, because the
service metrics never see the answers the router's middlewares give themselves.

The blueprint is rendered by msgen; the test rewrites only what loopback needs (entrypoint
addresses, backend URLs, the file provider's folder, the ACME server, the test's API; see
realtools.traefik_static_on_loopback), and removes the health check of the breaker's route
so that its 503s can only come from the breaker. Then:

- a burst beyond `limited`'s rate limit gets 429s: `traefik_router_requests_total` of the
  route's router counts every one, `traefik_service_requests_total` none (it counts only
  the requests that reached the service);
- `fragile`'s backend is down: its 502s are counted by both, then its breaker opens and
  answers 503 itself: counted by the router alone;
- the router names are the ones the rendered rules match, and the router's latency
  histogram carries the edges msgen renders (below 100ms too) and the `code` label the
  rules filter on.

Every request stays on 127.0.0.1.
"""

from __future__ import annotations

import http.client
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from realtools import free_port, render_blueprint, start, start_traefik, stop, traefik_https, traefik_static_on_loopback, wait_for_port

pytestmark = pytest.mark.realtool

DOMAIN = "gw.test"
BACKEND = Path(__file__).with_name("traefik_backend.py")
BLUEPRINT = f"""\
version: 1
project: metered
regions:
  home: {{jurisdiction: DE}}
gateway:
  domain: {DOMAIN}
  acme_email: ops@example.com
observability: {{}}
services:
  limited:
    image: example/limited:1.0.0
    port: 8080
    route: {{path_prefix: /limited}}
    rate_limit: {{average: 2, burst: 2}}
  fragile:
    image: example/fragile:1.0.0
    port: 8080
    route: {{path_prefix: /fragile}}
    circuit_breaker: {{failure_ratio: 0.5, open_for: 10s}}
"""
SAMPLE = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


class Gateway:
    def __init__(self, root: Path):
        self.root = root
        self.ports = {name: free_port() for name in ("web", "websecure", "metrics", "traefik")}
        self.backend_port = free_port()
        self.dead_port = free_port()  # nothing listens there: fragile's backend is down
        self.processes: list = []

    def https(self) -> http.client.HTTPSConnection:
        return traefik_https(self.ports)

    def get(self, connection: http.client.HTTPSConnection, path: str) -> int:
        connection.request("GET", path, headers={"Host": DOMAIN})
        response = connection.getresponse()
        response.read()
        return response.status

    def routers_enabled(self, names: set[str]) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.ports["traefik"], timeout=10)
        try:
            connection.request("GET", "/api/http/routers")
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        routers = json.loads(body) if response.status == 200 else []  # 404 until the API's own router is installed
        return names <= {router["name"] for router in routers if router.get("status") == "enabled"}

    def metrics(self) -> list[tuple[str, dict[str, str], float]]:
        """Traefik's /metrics as (name, labels, value)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.ports["metrics"], timeout=10)
        try:
            connection.request("GET", "/metrics")
            text = connection.getresponse().read().decode()
        finally:
            connection.close()
        samples = []
        for line in text.splitlines():
            match = SAMPLE.match(line)
            if match:
                labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
                samples.append((match["name"], labels, float(match["value"])))
        return samples

    def counted(self, metric: str, label: str, name: str) -> dict[int, int]:
        """code -> requests counted by `metric` for the router or service `name`."""
        counts: Counter[int] = Counter()
        for sample, labels, value in self.metrics():
            if sample == metric and labels.get(label) == name:
                counts[int(labels["code"])] += int(value)
        return dict(counts)


def rewrite_for_loopback(out: Path, gateway: Gateway) -> Path:
    traefik_static_on_loopback(out, gateway.root, gateway.ports)
    dynamic = yaml.safe_load((out / "traefik/dynamic/metered.yml").read_text())
    services = dynamic["http"]["services"]
    services["limited"]["loadBalancer"]["servers"] = [{"url": f"http://127.0.0.1:{gateway.backend_port}"}]
    services["fragile"]["loadBalancer"]["servers"] = [{"url": f"http://127.0.0.1:{gateway.dead_port}"}]
    del services["fragile"]["loadBalancer"]["healthCheck"]  # a 503 can then only be the breaker's
    (gateway.root / "dynamic").mkdir()
    (gateway.root / "dynamic/metered.yml").write_text(yaml.safe_dump(dynamic))
    return gateway.root / "traefik.yml"


def wait_for(check, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    root = tmp_path_factory.mktemp("gateway-metrics")
    out = render_blueprint(root, BLUEPRINT)
    running = Gateway(root)
    config = rewrite_for_loopback(out, running)
    try:
        backend = [sys.executable, str(BACKEND), "limited", str(running.backend_port), "echo", str(root / "limited.connections")]
        running.processes.append(start(backend, root / "backend.log"))
        wait_for_port(running.backend_port, timeout=10, process=running.processes[0])
        running.processes.append(start_traefik(config, root / "traefik.log", running.ports))
        wait_for(lambda: running.routers_enabled({"limited@file", "fragile@file"}), "Traefik enabling both routers")
        yield running
    finally:
        for process in reversed(running.processes):
            stop(process)


def rendered_routers(gateway: Gateway) -> set[str]:
    """The router names the rendered compose rules match."""
    rules = (gateway.root / "out/prometheus/rules/gateway.yml").read_text()
    return set(re.findall(r'router=\\"([^"\\]+)\\"', rules))


def test_the_rendered_rules_match_the_routers_traefik_names(gateway):
    assert rendered_routers(gateway) == {"limited@file", "fragile@file"}
    connection = gateway.https()
    assert gateway.get(connection, "/limited/first") == 200
    connection.close()
    assert wait_for(lambda: "limited@file" in counted_routers(gateway), "the limited router in Traefik's metrics")


def counted_routers(gateway: Gateway) -> set[str]:
    return {labels["router"] for name, labels, _ in gateway.metrics() if name == "traefik_router_requests_total"}


def test_the_router_counts_the_rate_limits_429s_and_the_service_does_not(gateway):
    before_router = gateway.counted("traefik_router_requests_total", "router", "limited@file")
    before_service = gateway.counted("traefik_service_requests_total", "service", "limited@file")
    connection = gateway.https()  # keep-alive: the burst is not slowed by handshakes
    statuses = Counter(gateway.get(connection, f"/limited/{n}") for n in range(20))
    connection.close()
    assert set(statuses) == {200, 429} and statuses[429] >= 10, statuses  # 2/s with a burst of 2

    def router_caught_up():
        counts = gateway.counted("traefik_router_requests_total", "router", "limited@file")
        return counts if sum(counts.values()) - sum(before_router.values()) == 20 else None

    router = wait_for(router_caught_up, "the router counting all 20 requests")
    service = gateway.counted("traefik_service_requests_total", "service", "limited@file")
    print(f"\nburst: client {dict(statuses)}, router {router} (before {before_router}), service {service} (before {before_service})")
    assert router.get(429, 0) - before_router.get(429, 0) == statuses[429]
    assert router[200] - before_router.get(200, 0) == statuses[200]
    assert 429 not in service  # the service metrics never see a 429
    assert service[200] - before_service.get(200, 0) == statuses[200]  # only the requests that reached the backend


def test_the_router_counts_the_breakers_503s_and_the_service_does_not(gateway):
    connection = gateway.https()
    seen: list[int] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and seen.count(503) < 5:
        seen.append(gateway.get(connection, "/fragile"))
        time.sleep(0.02)  # under the gateway's default rate limit (100/s)
    connection.close()
    statuses = Counter(seen)
    assert set(statuses) == {502, 503} and statuses[503] == 5, statuses  # the dead backend, then the open breaker

    def router_caught_up():
        counts = gateway.counted("traefik_router_requests_total", "router", "fragile@file")
        return counts if sum(counts.values()) == len(seen) else None

    router = wait_for(router_caught_up, f"the router counting all {len(seen)} requests")
    service = gateway.counted("traefik_service_requests_total", "service", "fragile@file")
    print(f"\nbreaker: client {dict(statuses)}, router {router}, service {service}")
    assert router == dict(statuses)
    assert service == {502: statuses[502]}  # the 503s never reached the service
    assert "fragile@file" in rendered_routers(gateway)  # the router the rendered rules watch


def test_the_router_histogram_has_the_rendered_edges_and_a_code_label(gateway):
    static = yaml.safe_load((gateway.root / "out/traefik/traefik.yml").read_text())
    edges = static["metrics"]["prometheus"]["buckets"]
    assert edges[:4] == [0.005, 0.01, 0.025, 0.05] and static["metrics"]["prometheus"]["addRoutersLabels"] is True
    buckets = [
        labels
        for name, labels, _ in gateway.metrics()
        if name == "traefik_router_request_duration_seconds_bucket" and labels.get("router") == "limited@file"
    ]
    assert {labels["le"] for labels in buckets} == {f"{edge:g}" for edge in edges} | {"+Inf"}
    assert {labels["code"] for labels in buckets} >= {"200", "429"}  # the latency rule leaves code 429 out
