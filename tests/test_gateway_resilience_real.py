"""The rendered gateway's timeouts, replicas, health checks, retries and drain, proven with the real Traefik.

What is proven, each time on evidence the backends record themselves (tests/resilience_backend.py
logs every request, every health check, every connection Traefik closes and every late answer):

- a route's `timeout` is the transport's responseHeaderTimeout: a backend that never answers
  costs the client a 504 after that timeout, and Traefik closes the backend's connection;
- one server per compose replica, each health-checked: the replica whose /health fails is
  taken out of the rotation (it gets no request) while the others serve, and comes back;
- the retry middleware replays a body under `gateway.max_request_body` (the backend sees
  every attempt with the whole body) and never retries a POST; a body over the limit is
  refused with 413 by the route's buffering middleware and never reaches the backend (the
  retry alone would forward it once, unretried);
- the retry's `timeout` (the route's timeout) stops retrying: a hung backend sees one
  attempt and the client gets 504 after one timeout, not after one per attempt;
- on SIGTERM Traefik finishes in-flight requests for the longest route timeout: msgen renders
  both entrypoints' `lifeCycle.graceTimeOut` as the route's 20s, so a request the backend answers
  only after 12s (past Traefik's default 10s drain, which cuts it) still reaches the client as
  200, and Traefik then exits on its own, with 0. This test stops its Traefik, so it runs one of
  its own (its own free ports, the same rewrite) beside the module's shared gateway.

The blueprint is rendered by msgen; the test then rewrites only what loopback needs: the
entrypoint addresses (free 127.0.0.1 ports), the file provider's directory (a temp dir),
each server URL (the compose host name `<project>-<service>-<n>` becomes a loopback backend),
the ACME resolver (its caServer a closed loopback port, its storage in the temp dir), and the
API (`api.insecure` on the loopback `traefik` entrypoint, the test's own window). Everything
else (transports, health checks, middlewares) is Traefik reading msgen's output unchanged.
Every request stays on 127.0.0.1.
"""

from __future__ import annotations

import copy
import http.client
import json
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from realtools import (
    free_port,
    log_tail,
    render_blueprint,
    start,
    start_traefik,
    stop,
    traefik_https,
    traefik_static_on_loopback,
    wait_for_port,
)

from msgen.api import RenderRequest, render

pytestmark = pytest.mark.realtool

PROJECT = "resil"
DOMAIN = "gw.test"
BACKEND = Path(__file__).with_name("resilience_backend.py")
HEADER = f"""\
version: 1
project: {PROJECT}
regions:
  home: {{jurisdiction: DE}}
gateway:
  domain: {DOMAIN}
  acme_email: ops@example.com
"""
BLUEPRINT = f"""{HEADER}\
  max_request_body: 1Ki
  rate_limit: {{average: 1000, burst: 1000, period: 1s}}
services:
  slow:
    image: example/slow:1.0.0
    port: 8080
    route: {{path_prefix: /slow, timeout: 1s}}
  trio:
    image: example/trio:1.0.0
    port: 8080
    replicas: 3
    route: {{path_prefix: /trio}}
    health: {{path: /health, period: 1s, timeout: 500ms}}
  sized:
    image: example/sized:1.0.0
    port: 8080
    route: {{path_prefix: /sized, timeout: 1s}}
    retry: {{attempts: 3, initial_interval: 10ms}}
  stuck:
    image: example/stuck:1.0.0
    port: 8080
    route: {{path_prefix: /stuck, timeout: 1s}}
    retry: {{attempts: 3, initial_interval: 10ms}}
"""
# one loopback backend per name; the trio's replicas each get their own
BACKENDS = {"slow": "hang", "stuck": "hang", "sized": "echo", "trio-1": "echo", "trio-2": "echo", "trio-3": "echo"}
MEASURED: dict[str, object] = {}  # timings and counts, printed at the end for the report


class Gateway:
    """A running Traefik and its backends; everything on 127.0.0.1."""

    def __init__(self, root: Path, backends: dict[str, str] = BACKENDS):
        self.root = root
        self.backends = backends  # backend name -> its resilience_backend.py mode
        self.ports = {name: free_port() for name in ("web", "websecure", "metrics", "traefik")}
        self.backend_ports = {name: free_port() for name in backends}
        self.processes: list[subprocess.Popen] = []
        self.process: subprocess.Popen | None = None
        self.rendered: dict = {}  # msgen's dynamic file as rendered, before the loopback rewrite

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def flag(self, name: str) -> Path:
        return self.root / f"{name}.unhealthy"

    def start_backend(self, name: str) -> None:
        args = [
            sys.executable,
            str(BACKEND),
            name,
            str(self.backend_ports[name]),
            self.backends[name],
            str(self.log(name)),
            str(self.flag(name)),
        ]
        process = start(args, self.root / f"{name}.out")
        self.processes.append(process)
        wait_for_port(self.backend_ports[name], timeout=10, process=process)

    def events(self, name: str, kind: str, request_id: str | None = None) -> list[list[str]]:
        """The backend's log lines of one kind (request, closed, health), split into fields."""
        path = self.log(name)
        rows = [line.split() for line in path.read_text().splitlines()] if path.exists() else []
        return [row for row in rows if row[1] == kind and (request_id is None or row[-2 if kind == "request" else 2] == request_id)]

    def requests(self, name: str) -> int:
        return len(self.events(name, "request"))

    def send(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, str, float, str]:
        """One request on a fresh TLS connection: (status, body, seconds, request id)."""
        request_id = uuid.uuid4().hex
        connection = traefik_https(self.ports, timeout=30)
        try:
            connection.connect()  # the handshake is not part of the measured time
            started = time.monotonic()
            connection.request(method, path, body=body, headers={"Host": DOMAIN, "X-Request-Id": request_id, **(headers or {})})
            response = connection.getresponse()
            text = response.read().decode(errors="replace")
            return response.status, text, time.monotonic() - started, request_id
        finally:
            connection.close()

    def api(self, path: str):
        connection = http.client.HTTPConnection("127.0.0.1", self.ports["traefik"], timeout=10)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            return json.loads(body) if response.status == 200 else None
        finally:
            connection.close()


def wait_for(check: Callable[[], object], what: str, timeout: float = 15.0, interval: float = 0.05):
    """Poll `check` until it returns something true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(interval)


def replica_url(service: str, replica: int) -> str:
    return f"http://{PROJECT}-{service}-{replica}:8080"


def rewrite_for_loopback(out: Path, gateway: Gateway) -> Path:
    """Only what loopback needs: addresses, server URLs, paths, the ACME server, the test's API."""
    traefik_static_on_loopback(out, gateway.root, gateway.ports)
    dynamic_dir = gateway.root / "dynamic"

    dynamic_file = out / f"traefik/dynamic/{PROJECT}.yml"
    gateway.rendered = yaml.safe_load(dynamic_file.read_text())
    dynamic = copy.deepcopy(gateway.rendered)
    for name, service in dynamic["http"]["services"].items():
        loopback = {}
        for server in service["loadBalancer"]["servers"]:
            replica = int(server["url"].rsplit(":", 1)[0].rsplit("-", 1)[1])
            backend = f"{name}-{replica}" if name == "trio" else name
            loopback[server["url"]] = f"http://127.0.0.1:{gateway.backend_ports[backend]}"
        service["loadBalancer"]["servers"] = [{"url": loopback[server["url"]]} for server in service["loadBalancer"]["servers"]]
    dynamic_dir.mkdir()
    (dynamic_dir / dynamic_file.name).write_text(yaml.safe_dump(dynamic))
    return gateway.root / "traefik.yml"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    root = tmp_path_factory.mktemp("resilience")
    out = render_blueprint(root, BLUEPRINT)
    running = Gateway(root)
    config = rewrite_for_loopback(out, running)
    failed = True
    try:
        for name in BACKENDS:
            running.start_backend(name)
        running.process = start_traefik(config, root / "traefik.log", running.ports)
        wait_for(lambda: _loaded(running), "Traefik loading the dynamic file with every server up")
        yield running
        failed = False
    finally:
        if running.process is not None:
            stop(running.process)
        for process in running.processes:
            stop(process)
        print(f"\nmeasured: {json.dumps(MEASURED, sort_keys=True)}")
        if failed:
            shutil.copy(root / "traefik.log", Path("/tmp") / "msgen-resilience-failed.log")


def _loaded(gateway: Gateway) -> bool:
    if gateway.process is not None and gateway.process.poll() is not None:
        raise AssertionError(f"traefik exited with {gateway.process.returncode}")
    routers = gateway.api("/api/http/routers") or []
    enabled = {router["name"] for router in routers if router.get("status") == "enabled"}
    if not {f"{name}@file" for name in ("slow", "trio", "sized", "stuck")} <= enabled:
        return False
    trio = gateway.api("/api/http/services/trio@file") or {}
    return list(trio.get("serverStatus", {}).values()) == ["UP"] * 3


def server_status(gateway: Gateway, service: str) -> dict[str, str]:
    return (gateway.api(f"/api/http/services/{service}@file") or {}).get("serverStatus", {})


def test_the_gateway_loads_without_errors(gateway):
    overview = gateway.api("/api/overview")
    for kind in ("routers", "services", "middlewares"):
        assert overview["http"][kind]["errors"] == 0, (kind, overview)
        assert overview["http"][kind]["warnings"] == 0, (kind, overview)


def test_a_silent_backend_gets_504_after_the_route_timeout(gateway):
    service = gateway.rendered["http"]["services"]["slow"]["loadBalancer"]
    assert service["serversTransport"] == "slow-transport"
    assert gateway.rendered["http"]["serversTransports"]["slow-transport"]["forwardingTimeouts"] == {
        "dialTimeout": "3s",
        "responseHeaderTimeout": "1s",
    }
    assert "slow-retry" not in gateway.rendered["http"]["routers"]["slow"]["middlewares"]

    status, _, elapsed, request_id = gateway.send("GET", "/slow/report")
    closed = wait_for(lambda: gateway.events("slow", "closed", request_id), "the backend seeing Traefik close its connection")
    received = gateway.events("slow", "request", request_id)
    waited = float(closed[0][0]) - float(received[0][0])
    MEASURED["slow"] = {"status": status, "client_seconds": round(elapsed, 3), "backend_open_seconds": round(waited, 3)}
    assert status == 504
    assert 0.95 <= elapsed < 10, elapsed  # the route's 1s, not the 15s default nor Traefik's none
    assert len(received) == 1  # no retry on this route
    assert 0.95 <= waited < 10, waited  # Traefik gave up on the connection after the timeout


def test_an_unhealthy_replica_leaves_the_rotation(gateway):
    service = gateway.rendered["http"]["services"]["trio"]["loadBalancer"]
    assert [server["url"] for server in service["servers"]] == [replica_url("trio", n) for n in (1, 2, 3)]
    assert service["healthCheck"] == {"path": "/health", "interval": "1s", "timeout": "500ms"}
    replicas = ("trio-1", "trio-2", "trio-3")
    url_of = {name: f"http://127.0.0.1:{gateway.backend_ports[name]}" for name in replicas}

    def serve(count: int) -> dict[str, int]:
        before = {name: gateway.requests(name) for name in replicas}
        answers = [gateway.send("GET", "/trio/who") for _ in range(count)]
        assert [status for status, *_ in answers] == [200] * count
        served = {name: gateway.requests(name) - before[name] for name in replicas}
        assert sum(served.values()) == count  # each answer came from exactly one backend request
        assert {text for _, text, *_ in answers} == {f"{name}\n" for name, n in served.items() if n}
        return served

    healthy = serve(30)
    assert all(healthy[name] > 0 for name in replicas), healthy

    gateway.flag("trio-2").touch()
    flipped = time.monotonic()
    wait_for(lambda: server_status(gateway, "trio").get(url_of["trio-2"]) == "DOWN", "Traefik marking trio-2 down", timeout=15)
    down_after = time.monotonic() - flipped
    assert gateway.events("trio-2", "health")[-1][2] == "503"  # it was the health check that saw it
    degraded = serve(60)
    assert degraded["trio-2"] == 0, degraded
    assert degraded["trio-1"] > 0 and degraded["trio-3"] > 0, degraded

    gateway.flag("trio-2").unlink()
    healed = time.monotonic()
    wait_for(lambda: server_status(gateway, "trio").get(url_of["trio-2"]) == "UP", "Traefik taking trio-2 back", timeout=15)
    up_after = time.monotonic() - healed
    recovered = serve(30)
    assert all(recovered[name] > 0 for name in replicas), recovered
    MEASURED["trio"] = {
        "healthy_30": healthy,
        "down_after_seconds": round(down_after, 2),
        "degraded_60": degraded,
        "up_after_seconds": round(up_after, 2),
        "recovered_30": recovered,
    }


RETRY = {"retry": {"attempts": 3, "initialInterval": "10ms", "status": ["502", "504"], "timeout": "1s", "maxRequestBodyBytes": 1024}}


def upload(gateway: Gateway, method: str, size: int) -> tuple[int, list[int], float]:
    """A body of `size` bytes to a backend that answers its first attempt 502: (status, body bytes per attempt, seconds)."""
    status, _, elapsed, request_id = gateway.send(method, "/sized/upload", body=b"x" * size, headers={"X-Fail-First": "1"})
    attempts = [int(row[-1]) for row in gateway.events("sized", "request", request_id)]
    return status, attempts, round(elapsed, 3)


def test_retry_replays_a_body_under_the_limit_and_never_one_over_it(gateway):
    assert gateway.rendered["http"]["routers"]["sized"]["middlewares"][-1] == "sized-retry"
    assert gateway.rendered["http"]["middlewares"]["sized-retry"] == RETRY  # 1Ki = gateway.max_request_body
    small = upload(gateway, "PUT", 512)
    large = upload(gateway, "PUT", 4096)
    post = upload(gateway, "POST", 512)
    MEASURED["sized"] = {"put-512": small, "put-4096": large, "post-512": post}
    # under the limit: the first attempt's 502 is retried, and the replay carries the whole body
    assert small[:2] == (200, [512, 512]), small
    # over the limit: refused before the backend (see the test below)
    assert large[:2] == (413, []), large
    # POST is not idempotent: Traefik does not retry it on a status (msgen sets no retryNonIdempotentMethod)
    assert post[:2] == (502, [512]), post


def test_a_body_over_max_request_body_is_refused_with_413(gateway):
    # the retry alone would forward an oversized body once, unretried: the buffering middleware refuses it
    assert gateway.rendered["http"]["middlewares"]["sized-retry"] == RETRY
    assert gateway.rendered["http"]["middlewares"]["sized-body"] == {"buffering": {"maxRequestBodyBytes": 1024}}
    before = gateway.requests("sized")
    status, text, _, _ = gateway.send("PUT", "/sized/upload", body=b"x" * 4096)
    MEASURED["sized-4096-put-plain"] = {"status": status, "backend_requests": gateway.requests("sized") - before}
    assert status == 413, (status, text)
    assert gateway.requests("sized") == before  # the backend never saw it


def test_retries_stop_at_the_route_timeout(gateway):
    assert gateway.rendered["http"]["routers"]["stuck"]["middlewares"][-1] == "stuck-retry"
    assert gateway.rendered["http"]["middlewares"]["stuck-retry"] == RETRY  # 504 is retriable, the timeout 1s
    transport = gateway.rendered["http"]["serversTransports"]["stuck-transport"]["forwardingTimeouts"]
    assert transport["responseHeaderTimeout"] == "1s"

    status, _, elapsed, request_id = gateway.send("GET", "/stuck/report")
    # the backend seeing its connection closed is the point after which no attempt can still arrive
    closed = wait_for(lambda: gateway.events("stuck", "closed", request_id), "the backend seeing Traefik close its connection")
    attempts = gateway.events("stuck", "request", request_id)
    MEASURED["stuck"] = {"status": status, "client_seconds": round(elapsed, 3), "attempts": len(attempts), "closed": len(closed)}
    assert status == 504
    assert len(attempts) == 1, attempts  # the first try used up the retry's 1s: no second one
    assert 0.95 <= elapsed < 2.9, elapsed  # one timeout; three tries would need at least 3s


DRAIN_BLUEPRINT = f"""{HEADER}\
services:
  long:
    image: example/long:1.0.0
    port: 8080
    replicas: 1
    route: {{path_prefix: /long, timeout: 20s}}
"""
ANSWER_AFTER = 12.0  # seconds: past Traefik's default 10s drain, within the route's 20s
GRACE = 20.0  # the route's timeout, which msgen renders as both entrypoints' graceTimeOut


@pytest.fixture
def lone_gateway(tmp_path):
    """A Traefik of its own (the test stops it) before one `late` backend, apart from the module's gateway."""
    (tmp_path / "blueprint.yaml").write_text(DRAIN_BLUEPRINT)
    outcome = render(RenderRequest(tmp_path / "blueprint.yaml", tmp_path / "out"))
    assert outcome.wrote, [f.message for f in outcome.analysis.findings]
    running = Gateway(tmp_path, {"long": "late"})
    config = rewrite_for_loopback(tmp_path / "out", running)
    try:
        running.start_backend("long")
        running.process = start_traefik(config, tmp_path / "traefik.log", running.ports)
        wait_for(lambda: _long_loaded(running), "Traefik loading the long route with its server up")
        yield running
    finally:
        if running.process is not None:
            stop(running.process)
        for process in running.processes:
            stop(process)


def _long_loaded(gateway: Gateway) -> bool:
    if gateway.process is not None and gateway.process.poll() is not None:
        raise AssertionError(f"traefik exited with {gateway.process.returncode}")
    router = gateway.api("/api/http/routers/long@file") or {}
    service = gateway.api("/api/http/services/long@file") or {}
    return router.get("status") == "enabled" and list(service.get("serverStatus", {}).values()) == ["UP"]


def test_sigterm_lets_an_in_flight_request_finish_for_the_longest_route_timeout(lone_gateway):
    gateway = lone_gateway
    static = yaml.safe_load((gateway.root / "out/traefik/traefik.yml").read_text())  # msgen's file, before the rewrite
    for name in ("web", "websecure"):
        assert static["entryPoints"][name]["transport"] == {"lifeCycle": {"graceTimeOut": "20s"}}, name
    served = yaml.safe_load((gateway.root / "traefik.yml").read_text())  # what Traefik runs
    for name in ("web", "websecure"):
        assert served["entryPoints"][name]["transport"] == static["entryPoints"][name]["transport"], name  # untouched by the rewrite
        assert gateway.api(f"/api/entrypoints/{name}")["transport"]["lifeCycle"] == {"graceTimeOut": "20s"}, name  # as Traefik read it

    started = time.monotonic()

    def client() -> tuple[int | None, str, float]:
        try:
            status, text, _, _ = gateway.send("GET", "/long/report", headers={"X-Answer-After": str(ANSWER_AFTER)})
            return status, text, time.monotonic() - started
        except (OSError, http.client.HTTPException) as error:  # the connection cut: what Traefik's 10s default does
            return None, repr(error), time.monotonic() - started

    pool = ThreadPoolExecutor(max_workers=1)
    try:
        answer = pool.submit(client)
        received = wait_for(lambda: gateway.events("long", "request"), "the backend receiving the request")
        request_id = received[0][-2]
        gateway.process.send_signal(signal.SIGTERM)  # the request is in flight: the backend holds it for 12s
        sigterm_at = time.monotonic() - started
        try:
            code = gateway.process.wait(timeout=GRACE + 10)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"traefik still running {GRACE + 10}s after SIGTERM\n{log_tail(gateway.log('traefik'))}") from None
        exited_at = time.monotonic() - started
        status, text, answered_at = answer.result(timeout=30)
    finally:
        pool.shutdown(wait=True)
    backend = {kind: gateway.events("long", kind, request_id) for kind in ("answered", "closed")}
    measured = {
        "status": status,
        "client_answered_at": round(answered_at, 3),
        "sigterm_at": round(sigterm_at, 3),
        "traefik_exited_at": round(exited_at, 3),
        "traefik_exit_code": code,
        "backend_answered": len(backend["answered"]),
        "backend_saw_close": len(backend["closed"]),
    }
    MEASURED["drain"] = measured
    print(f"\ndrain: {json.dumps(measured, sort_keys=True)}")
    evidence = f"{measured}, client: {text!r}\n{log_tail(gateway.log('traefik'))}"
    assert (status, text) == (200, "long\n"), evidence  # Traefik's default 10s drain cuts this connection
    assert answered_at - sigterm_at > 10, evidence  # the answer came after the default drain would have ended
    assert len(backend["answered"]) == 1 and not backend["closed"], evidence  # the backend wrote its answer, uncut
    assert answered_at - 0.5 < exited_at < sigterm_at + GRACE, evidence  # it exits once the request is done, within the grace
    assert code == 0, evidence
