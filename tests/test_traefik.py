"""The gateway plan, its three renderings (file provider, docker labels, Kubernetes CRDs),
and the traefik-* findings. The real Traefik proves the files in test_traefik_real.py."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest
import yaml

from msgen import images
from msgen.checks.traefik_expression import expression_problem
from msgen.errors import BlueprintError
from msgen.model.load import load_blueprint
from msgen.plan import gateway as gw
from msgen.targets import traefik
from msgen.targets.traefik import HELM_VALUES, kubernetes_artifacts
from tests.cluster import cluster_blueprint
from tests.rendering import edited, render_in_memory, verification

BASE = """\
version: 1
project: shop
regions:
  home: {jurisdiction: DE}
gateway:
  domain: shop.example.com
  acme_email: ops@example.com
  http3: true
  provider: PROVIDER
  rate_limit: {average: 40, burst: 20, period: 2s}
services:
  web:
    image: example/web:1.0.0
    port: 8080
    route: {path_prefix: /shop, budget: 120ms}
    rate_limit: {average: 7}
    circuit_breaker: {failure_ratio: 1, min_requests: 5, open_for: 30s}
    retry: {attempts: 3, initial_interval: 1s}
  api:
    image: example/api:1.0.0
    port: 9000
    route: {host: api.example.com}
    health: {path: /ready, period: 5s, timeout: 1s}
    circuit_breaker: {expression: "LatencyAtQuantileMS(99.0) > 250"}
  worker:
    image: example/worker:1.0.0
    port: 7000
EXTRA
"""


def blueprint_text(provider: str = "file", extra: str = "", base: str = BASE) -> str:
    return base.replace("PROVIDER", provider).replace("EXTRA", extra)


@pytest.fixture
def analysed(write_blueprint):
    def run(text: str):
        return render_in_memory(write_blueprint(text))

    return run


def ids(findings) -> list[str]:
    return sorted(f.id for f in findings)


def test_plan_names_routes_and_middlewares(analysed):
    gateway = analysed(blueprint_text()).plan.gateway
    assert [route.name for route in gateway.routes] == ["api", "web"]  # worker has no route
    web = gateway.route("web")
    assert web.rule == "Host(`shop.example.com`) && PathPrefix(`/shop`)"
    assert web.middleware_names == ("secure-headers", "web-ratelimit", "web-body", "web-breaker", "web-retry")
    assert gateway.route("api").rule == "Host(`api.example.com`)"
    assert gateway.route("api").middleware_names == ("secure-headers", "api-ratelimit", "api-breaker")


def test_rate_limit_falls_back_field_by_field(analysed):
    gateway = analysed(blueprint_text()).plan.gateway
    web, api = gateway.route("web").rate_limit, gateway.route("api").rate_limit
    assert (web.average, web.burst, web.period.ms) == (7, 20, 2000)
    assert dict(web.origins) == {"average": "service", "burst": "gateway", "period": "gateway"}
    assert (api.average, api.burst, api.period.ms) == (40, 20, 2000)


def test_breaker_maps_gobreaker_onto_traefik(analysed):
    analysis = analysed(blueprint_text())
    dynamic = yaml.safe_load(next(a.text for a in analysis.artifacts if a.path == "traefik/dynamic/shop.yml"))
    breaker = dynamic["http"]["middlewares"]["web-breaker"]["circuitBreaker"]
    # a ratio of 1 must stay a float literal: oxy rejects `>= 1` against a float metric
    assert breaker == {
        "expression": "NetworkErrorRatio() >= 1.0 || ResponseCodeRatio(500, 600, 0, 600) >= 1.0",
        "checkPeriod": "100ms",
        "fallbackDuration": "30s",
        "recoveryDuration": "10s",
        "responseCode": 503,
    }
    assert expression_problem(breaker["expression"]) is None
    own = dynamic["http"]["middlewares"]["api-breaker"]["circuitBreaker"]
    assert own["expression"] == "LatencyAtQuantileMS(99.0) > 250"
    assert own["fallbackDuration"] == own["recoveryDuration"] == "10s"
    retry = dynamic["http"]["middlewares"]["web-retry"]["retry"]
    assert retry == {"attempts": 3, "initialInterval": "1s", "status": ["502", "504"], "timeout": "15s", "maxRequestBodyBytes": 1024**2}


def test_file_provider_output(analysed):
    analysis = analysed(blueprint_text())
    files = {a.path: a for a in analysis.artifacts if a.target == "traefik"}
    assert sorted(files) == ["traefik/dynamic/shop.yml", "traefik/traefik.yml"]
    static = yaml.safe_load(files["traefik/traefik.yml"].text)
    assert static["entryPoints"]["web"]["http"]["redirections"]["entryPoint"] == {"to": "websecure", "scheme": "https", "permanent": True}
    assert static["entryPoints"]["websecure"]["http3"] == {"advertisedPort": 443}
    assert static["entryPoints"]["metrics"]["address"] == ":8082"
    assert static["ping"] == {"entryPoint": "traefik"}
    assert "api" not in static  # dashboard off
    # msgen's edges below and at 100ms, Traefik's own, and each route's budget (no clients' leg here: the thresholds)
    assert static["metrics"]["prometheus"]["buckets"] == [0.005, 0.01, 0.025, 0.05, 0.1, 0.12, 0.2, 0.3, 1.2, 5.0]
    assert static["metrics"]["prometheus"]["addRoutersLabels"] is True  # the route alerts read the router metrics
    assert static["certificatesResolvers"]["letsencrypt"]["acme"] == {
        "email": "ops@example.com",
        "storage": "/letsencrypt/acme.json",
        "tlsChallenge": {},
    }
    assert static["providers"] == {"file": {"directory": "/etc/traefik/dynamic", "watch": True}}
    dynamic = yaml.safe_load(files["traefik/dynamic/shop.yml"].text)
    service = dynamic["http"]["services"]["api"]["loadBalancer"]
    # one server a compose replica, so that Traefik checks and balances each
    assert service["servers"] == [{"url": "http://shop-api-1:9000"}, {"url": "http://shop-api-2:9000"}]
    assert service["serversTransport"] == "api-transport"
    transport = dynamic["http"]["serversTransports"]["api-transport"]
    assert transport == {"forwardingTimeouts": {"dialTimeout": "3s", "responseHeaderTimeout": "15s"}}
    assert service["healthCheck"] == {"path": "/ready", "interval": "5s", "timeout": "1s"}
    assert dynamic["http"]["routers"]["web"]["tls"] == {"certResolver": "letsencrypt"}
    assert ids(analysis.findings) == ["traefik-breaker-min-requests"]  # BASE sets min_requests on purpose


def test_docker_labels_carry_the_same_router(analysed):
    file_plan = analysed(blueprint_text()).plan
    analysis = analysed(blueprint_text("docker"))
    plan = analysis.plan
    labels = traefik.compose_labels(plan, "web")
    assert traefik.compose_labels(file_plan, "web") == {}
    assert traefik.compose_labels(plan, "worker") == {}
    assert labels["traefik.enable"] == "true"
    assert labels["traefik.docker.network"] == "shop_edge_web"
    assert labels["traefik.http.routers.web.rule"] == "Host(`shop.example.com`) && PathPrefix(`/shop`)"
    assert labels["traefik.http.routers.web.middlewares"] == "secure-headers@file,web-ratelimit,web-body,web-breaker,web-retry"
    assert labels["traefik.http.routers.web.tls.certresolver"] == "letsencrypt"
    assert labels["traefik.http.services.web.loadbalancer.server.port"] == "8080"
    assert labels["traefik.http.middlewares.web-retry.retry.status"] == "502,504"
    # every middleware option of the file provider appears as a label, lower-cased
    file_dynamic = traefik.dynamic_config(file_plan.gateway, with_routes=True)["http"]["middlewares"]
    for name in ("web-ratelimit", "web-body", "web-breaker", "web-retry"):
        for kind, options in file_dynamic[name].items():
            for key, value in options.items():
                shown = ",".join(value) if isinstance(value, list) else str(value)
                assert labels[f"traefik.http.middlewares.{name}.{kind.lower()}.{key.lower()}"] == shown
    static = yaml.safe_load(next(a.text for a in analysis.artifacts if a.path == "traefik/traefik.yml"))
    assert static["providers"]["docker"] == {"endpoint": "unix:///var/run/docker.sock", "exposedByDefault": False, "watch": True}
    dynamic = yaml.safe_load(next(a.text for a in analysis.artifacts if a.path == "traefik/dynamic/shop.yml"))
    assert "routers" not in dynamic["http"] and "secure-headers" in dynamic["http"]["middlewares"]
    # labels cannot define a servers transport: the file keeps it and the label names it there
    assert labels["traefik.http.services.web.loadbalancer.serverstransport"] == "web-transport@file"
    assert "web-transport" in dynamic["http"]["serversTransports"]
    assert ids(analysis.findings) == ["traefik-breaker-min-requests"]  # BASE sets min_requests on purpose


def test_dashboard_is_a_router_behind_basic_auth(analysed):
    analysis = analysed(blueprint_text().replace("  http3: true\n", "  http3: true\n  dashboard: true\n"))
    static = yaml.safe_load(next(a.text for a in analysis.artifacts if a.path == "traefik/traefik.yml"))
    assert static["api"] == {"dashboard": True, "insecure": False}
    dynamic = yaml.safe_load(next(a.text for a in analysis.artifacts if a.path == "traefik/dynamic/shop.yml"))
    router = dynamic["http"]["routers"]["gateway_dashboard"]
    assert router["service"] == "api@internal" and router["rule"] == "Host(`traefik.shop.example.com`)"
    assert dynamic["http"]["middlewares"]["dashboard-auth"]["basicAuth"]["usersFile"] == "/run/secrets/dashboard-users"
    assert ids(analysis.findings) == ["traefik-breaker-min-requests"]  # BASE sets min_requests on purpose


def test_kubernetes_artifacts_mirror_the_plan(analysed):
    extra = 'kubernetes: {namespace: shop-prod, version: "1.30"}'
    plan = analysed(blueprint_text(extra=extra)).plan
    files = {a.path: [doc for doc in yaml.safe_load_all(a.built().text) if doc] for a in kubernetes_artifacts(plan)}
    assert all(a.target == "kubernetes" for a in kubernetes_artifacts(plan))
    # the route's file: its own middlewares first, then the IngressRoute that uses them
    transport, *own, route = files["kubernetes/gateway/route-web.yaml"]
    assert [doc["kind"] for doc in own] == ["Middleware"] * len(own) and own
    assert transport["kind"] == "ServersTransport" and transport["metadata"]["name"] == "web-transport"
    file_transports = traefik.dynamic_config(plan.gateway, with_routes=True)["http"]["serversTransports"]
    assert transport["spec"] == file_transports["web-transport"]
    assert route["kind"] == "IngressRoute" and route["apiVersion"] == "traefik.io/v1alpha1" and route["metadata"]["namespace"] == "shop-prod"
    spec = route["spec"]["routes"][0]
    assert spec["match"] == "Host(`shop.example.com`) && PathPrefix(`/shop`)"
    assert spec["services"] == [{"name": "web", "port": 8080, "serversTransport": "web-transport"}]
    middlewares = {doc["metadata"]["name"]: doc for docs in files.values() for doc in docs if doc.get("kind") == "Middleware"}
    for reference in spec["middlewares"]:
        assert middlewares[reference["name"]]["metadata"]["namespace"] == "shop-prod"
    file_dynamic = traefik.dynamic_config(plan.gateway, with_routes=True)["http"]["middlewares"]
    for name, document in middlewares.items():
        assert document["spec"] == file_dynamic[name]
    (values,) = files["kubernetes/gateway/traefik-values.yaml"]
    assert values["ports"]["websecure"]["http3"] == {"enabled": True, "advertisedPort": 443}
    assert values["ports"]["metrics"]["port"] == 8082 and values["ports"]["metrics"]["expose"] == {"default": False}
    assert values["metrics"]["prometheus"]["buckets"] == "0.005,0.01,0.025,0.05,0.1,0.12,0.2,0.3,1.2,5.0"
    assert values["metrics"]["prometheus"]["addRoutersLabels"] is True
    assert values["providers"]["kubernetesCRD"]["safeNaming"] is False  # the router names the alert rules match
    # stateless: the certificates come from cert-manager's Secrets, never from Traefik's own ACME
    assert "certificatesResolvers" not in values and "persistence" not in values
    assert route["spec"]["tls"] == {"secretName": "shop-example-com-tls"}
    assert values["image"] == {"tag": images.TRAEFIK_VERSION}
    assert values["resources"]["limits"] == {"cpu": "1", "memory": "256Mi"}
    assert values["ingressRoute"]["dashboard"] == {"enabled": False}


def test_breaker_expression_typo_is_a_finding_at_its_line(write_blueprint):
    extra_service = '    circuit_breaker: {expression: "NetworkErorRatio() > 0.5"}\n'
    text = blueprint_text().replace('    circuit_breaker: {expression: "LatencyAtQuantileMS(99.0) > 250"}\n', extra_service)
    path = write_blueprint(text)
    line = text.splitlines().index(extra_service.rstrip("\n")) + 1
    result = subprocess.run([sys.executable, "-m", "msgen", "validate", str(path), "--format", "json"], capture_output=True, text=True)
    assert result.returncode == 1, result.stderr
    found = [f for f in json.loads(result.stdout) if f["id"] == "traefik-breaker-expression"]
    assert len(found) == 1
    assert found[0]["line"] == line and found[0]["path"] == "services.api.circuit_breaker.expression"
    assert "did you mean NetworkErrorRatio" in found[0]["message"]


@pytest.mark.parametrize(
    ("change", "finding_id", "path"),
    [
        ("    rate_limit: {average: 0}\n", "traefik-rate-limit", "services.web.rate_limit.average"),
        ("    rate_limit: {burst: 0}\n", "traefik-rate-limit", "services.web.rate_limit.burst"),
        ("    rate_limit: {source: {ip_depth: 1, request_host: true}}\n", "traefik-source-criterion", "services.web.rate_limit.source"),
    ],
)
def test_rate_limit_findings(analysed, change, finding_id, path):
    analysis = analysed(blueprint_text().replace("    rate_limit: {average: 7}\n", change))
    found = [f for f in analysis.findings if f.id == finding_id]
    assert [(f.path, f.severity) for f in found] == [(path, "error")]
    assert found[0].line > 0


def test_retry_attempts_zero_is_a_warning_and_emits_no_retry(analysed):
    analysis = analysed(blueprint_text().replace("attempts: 3, initial_interval: 1s", "attempts: 0"))
    found = [(f.id, f.path) for f in analysis.findings if f.id != "traefik-breaker-min-requests"]
    assert found == [("traefik-retry-attempts", "services.web.retry.attempts")]
    assert "web-retry" not in analysis.plan.gateway.route("web").middleware_names


def _rechecked(analysis, path: str, edit) -> list[str]:
    artifacts = dict(analysis.files)
    document = yaml.safe_load(artifacts[path].text)
    edit(document)
    artifacts[path] = edited(artifacts[path], yaml.safe_dump(document))
    return [f.id for f in verification(analysis, artifacts) if f.id.startswith("verify-traefik-")]


def test_rendered_output_rules_catch_broken_files(analysed):
    analysis = analysed(blueprint_text())
    dynamic, static = "traefik/dynamic/shop.yml", "traefik/traefik.yml"

    def drop_middleware(doc):
        del doc["http"]["middlewares"]["web-retry"]

    def unknown_entrypoint(doc):
        doc["http"]["routers"]["api"]["entryPoints"] = ["public"]

    def http3_without_tls(doc):
        del doc["entryPoints"]["websecure"]["http"]

    def insecure_api(doc):
        doc["api"] = {"insecure": True}

    def docker_in_file_mode(doc):
        doc["providers"]["docker"] = {"exposedByDefault": False}

    def open_dashboard(doc):
        doc["http"]["routers"]["peek"] = {"rule": "Host(`x`)", "service": "api@internal", "entryPoints": ["websecure"]}

    assert _rechecked(analysis, dynamic, lambda doc: None) == []
    assert _rechecked(analysis, dynamic, drop_middleware) == ["verify-traefik-reference"]
    assert _rechecked(analysis, dynamic, unknown_entrypoint) == ["verify-traefik-reference"]
    assert _rechecked(analysis, static, http3_without_tls) == ["verify-traefik-http3"]
    assert _rechecked(analysis, static, insecure_api) == ["verify-traefik-dashboard-auth"]
    assert _rechecked(analysis, static, docker_in_file_mode) == ["verify-traefik-docker-socket"]
    assert _rechecked(analysis, dynamic, open_dashboard) == ["verify-traefik-dashboard-auth"]


def test_compose_socket_and_udp_rules(analysed):
    analysis = analysed(blueprint_text())
    compose = {"services": {"gateway": {"ports": ["80:80", "443:443"], "volumes": ["/var/run/docker.sock:/var/run/docker.sock:ro"]}}}
    artifacts = dict(analysis.files)
    artifacts["compose/docker-compose.yml"] = edited(artifacts["traefik/traefik.yml"], yaml.safe_dump(compose))
    found = sorted(f.id for f in verification(analysis, artifacts) if f.id.startswith("verify-traefik-"))
    assert found == ["verify-traefik-docker-socket", "verify-traefik-http3"]


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        ("health: {path: /ready, ", 'health: {path: "/ready{{now}}", ', "services.api.health.path"),
        ("health: {path: /ready, ", 'health: {path: "/ready}}", ', "services.api.health.path"),
        ('{expression: "LatencyAtQuantileMS(99.0) > 250"}', '{expression: "{{ .X }} > 250"}', "services.api.circuit_breaker.expression"),
        ("rate_limit: {average: 7}", 'rate_limit: {source: {request_header: "X-{{"}}', "services.web.rate_limit.source.request_header"),
        ("burst: 20, period: 2s}", 'burst: 20, period: 2s, source: {request_header: "}}"}}', "gateway.rate_limit.source.request_header"),
    ],
)
def test_go_template_delimiters_never_reach_the_dynamic_file(write_blueprint, old, new, path):
    """Traefik runs its dynamic configuration files through Go's text/template: `{{` in any
    text msgen writes there makes it drop the whole file (every route), and `{{ env "X" }}`
    would read the gateway's environment. Such text is a load error at its key."""
    text = blueprint_text()
    assert old in text
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(write_blueprint(text.replace(old, new)))
    (issue,) = caught.value.issues
    assert issue.path == path and "Go template" in issue.message
    assert issue.hint == "remove '{{' and '}}' from it"
    line = next(number for number, row in enumerate(text.replace(old, new).splitlines(), 1) if new in row)
    assert issue.line == line


def test_go_durations_and_float_literals():
    from msgen.units import Duration

    assert [gw.go_duration(Duration.parse(t)) for t in ("250ms", "90s", "2m", "15d", "1500ms")] == ["250ms", "90s", "2m", "360h", "1500ms"]
    assert [gw.float_literal(v) for v in (1, 0.6, 1e-7)] == ["1.0", "0.6", "1e-07"]


def test_plan_section_shows_effective_limits(analysed):
    from msgen.views import gateway_section

    plan = analysed(blueprint_text()).plan
    (section,) = gateway_section(plan)
    rows = {row[0]: dict(zip(section.columns, row, strict=True)) for row in section.rows}
    assert rows["web"]["rate limit (origin)"] == "7/2s burst 20 (service, gateway, gateway)"
    assert "min_requests 5 not expressible" in rows["web"]["circuit breaker"]
    assert rows["api"]["retry"] == "-"
    assert gateway_section(replace(plan, gateway=None)) == []


def test_a_min_requests_traefik_cannot_honour_is_a_warning(analysed):
    analysis = analysed(blueprint_text())
    found = [f for f in analysis.findings if f.id == "traefik-breaker-min-requests"]
    assert [(f.severity, f.path) for f in found] == [("warning", "services.web.circuit_breaker.min_requests")]
    assert "min_requests 5 cannot be honoured" in found[0].message and "for 30s" in found[0].message
    without = analysed(blueprint_text().replace("min_requests: 5, ", ""))
    assert "traefik-breaker-min-requests" not in ids(without.findings)


def test_callers_get_the_east_west_client_contract(write_blueprint):
    from msgen.model.load import load_blueprint
    from msgen.plan import build_plan

    plan = build_plan(
        load_blueprint(
            write_blueprint(
                """\
                version: 1
                project: shop
                services:
                  web: {image: 'a:1.0', port: 80, calls: [api, db-api], timeout: 2s}
                  api:
                    image: 'a:1.0'
                    port: 81
                    retry: {attempts: 3, initial_interval: 100ms}
                    circuit_breaker: {failure_ratio: 0.5, min_requests: 20, open_for: 30s}
                  db-api: {image: 'a:1.0', port: 82}
                """
            )
        ).blueprint
    )
    env = dict(plan.service("web").env)
    contract = {key: value for key, value in env.items() if key.startswith(("API_", "DB_API_")) and not key.endswith("_URL")}
    assert contract == {
        "API_TIMEOUT_MS": "2000",
        "API_RETRY_ATTEMPTS": "3",
        "API_RETRY_BACKOFF_MS": "100",
        "API_BREAKER_FAILURE_RATIO": "0.5",
        "API_BREAKER_MIN_REQUESTS": "20",
        "API_BREAKER_OPEN_MS": "30000",
        "DB_API_TIMEOUT_MS": "2000",
    }, "only what the blueprint sets"
    assert not any(key.startswith("WEB_") for key in dict(plan.service("api").env)), "callees learn nothing of their callers"


CHAIN = """\
version: 1
project: chain
gateway: {domain: chain.example.com}
services:
  front:
    image: example/front:1.0.0
    port: 8080
    route: {path_prefix: /%s}
    timeout: %s
    calls: [middle, back]
    latency: {p99: 20ms}
  middle:
    image: example/middle:1.0.0
    port: 8080
    retry: {attempts: 3, initial_interval: 100ms}
  back:
    image: example/back:1.0.0
    port: 8080
    retry: {attempts: 2, initial_interval: 50ms}
"""


def test_route_timeout_is_the_chain_s_longest_wait_with_a_floor(analysed):
    from msgen.plan.gateway import ROUTE_TIMEOUT_FLOOR

    # sequential: 20 + (3 x 4s + 100 + 200) + (2 x 4s + 50) = 20370 ms, above the floor
    route = analysed(CHAIN % ("", "4s")).plan.gateway.route("front")
    assert (route.timeout.timeout.ms, route.timeout.origin, route.timeout.longest_wait_ms) == (20_370, "chain", 20_370)
    gateway = analysed(CHAIN % ("", "4s")).plan.gateway  # no retry on front: no retry middleware
    assert all(m.kind != "retry" for m in gateway.route("front").middlewares)
    # parallel: only the slowest call counts, 20 + 12300 = 12320 ms: the floor wins
    parallel = analysed((CHAIN % ("", "4s")).replace("    latency: {p99: 20ms}", "    latency: {p99: 20ms}\n    parallel_calls: true"))
    front = parallel.plan.gateway.route("front")
    assert (front.timeout.timeout, front.timeout.origin, front.timeout.longest_wait_ms) == (ROUTE_TIMEOUT_FLOOR, "floor", 12_320)
    assert "timeout-route" not in ids(parallel.findings)


def test_route_timeout_without_a_caller_timeout_is_the_floor(analysed):
    text = (CHAIN % ("", "1s")).replace("    timeout: 1s\n", "")
    route = analysed(text).plan.gateway.route("front")
    assert (route.timeout.origin, route.timeout.longest_wait_ms) == ("floor", None)


def test_a_route_timeout_shorter_than_the_chain_s_wait_is_a_warning(analysed):
    text = (CHAIN % ("", "4s")).replace("route: {path_prefix: /}", "route: {path_prefix: /, timeout: 10s}")
    analysis = analysed(text)
    (warning,) = [f for f in analysis.findings if f.id == "timeout-route"]
    assert warning.path == "services.front.route.timeout"
    assert "20370 ms" in warning.message
    dynamic = yaml.safe_load(next(a.text for a in analysis.artifacts if a.path == "traefik/dynamic/chain.yml"))
    assert dynamic["http"]["serversTransports"]["front-transport"]["forwardingTimeouts"]["responseHeaderTimeout"] == "10s"


def test_a_route_timeout_below_the_p99_is_a_warning(analysed):
    text = (CHAIN % ("", "4s")).replace("route: {path_prefix: /}", "route: {path_prefix: /, timeout: 15ms}")
    text = text.replace("    timeout: 4s\n", "")
    analysis = analysed(text)
    (warning,) = [f for f in analysis.findings if f.id == "timeout-route"]
    assert "p99" in warning.message and "15ms" in warning.message


def test_traefik_drains_for_the_longest_route_timeout(analysed):
    text = (CHAIN % ("", "4s")).replace("route: {path_prefix: /}", "route: {path_prefix: /, timeout: 40s}")
    analysis = analysed(text + 'kubernetes: {version: "1.30"}\n')
    static = yaml.safe_load(next(a.text for a in analysis.artifacts if a.path == "traefik/traefik.yml"))
    for entrypoint in ("web", "websecure"):
        assert static["entryPoints"][entrypoint]["transport"] == {"lifeCycle": {"graceTimeOut": "40s"}}
    values = yaml.safe_load(next(a.text for a in analysis.artifacts if a.path == HELM_VALUES))
    assert values["ports"]["websecure"]["transport"] == {"lifeCycle": {"graceTimeOut": "40s"}}
    assert values["deployment"]["terminationGracePeriodSeconds"] == 45


def test_values_pin_the_chart_and_the_traefik_the_tests_run(analysed):
    built = analysed(blueprint_text(extra='kubernetes: {version: "1.30"}')).files[HELM_VALUES]
    header = [line for line in built.text.splitlines() if line.startswith("#")]
    assert f"traefik/traefik {images.TRAEFIK_CHART_VERSION}, running Traefik {images.TRAEFIK_VERSION}" in header[1]
    assert header[3].endswith(
        f"traefik/traefik --version {images.TRAEFIK_CHART_VERSION} --namespace traefik --create-namespace "
        "--values kubernetes/gateway/traefik-values.yaml"
    )
    assert built.document()["image"] == {"tag": images.TRAEFIK_VERSION}


# --- Traefik on Kubernetes: the chart's values, how traffic enters, where certificates come from ----

CLUSTER = cluster_blueprint()
WITHOUT_ACME = cluster_blueprint(acme=False)


def documents(analysis, path: str) -> list[dict]:
    return list(analysis.files[path].documents)


def kinds_in(analysis, kind: str) -> list[dict]:
    from msgen.targets.kubernetes import is_manifest

    return [doc for path, built in analysis.files.items() if is_manifest(path) for doc in built.documents if doc.get("kind") == kind]


def helm(analysis) -> dict:
    return analysis.files[HELM_VALUES].document()


def test_one_certificate_per_distinct_host(analysed):
    analysis = analysed(CLUSTER)
    certificates = kinds_in(analysis, "Certificate")
    # web on the domain, api and admin share api.example.com, the dashboard beside Traefik
    placed = sorted((doc["metadata"]["namespace"], doc["spec"]["dnsNames"][0]) for doc in certificates)
    assert placed == [("shop-prod", "api.example.com"), ("shop-prod", "shop.example.com"), ("traefik", "traefik.shop.example.com")]
    secrets = {doc["spec"]["dnsNames"][0]: doc["spec"]["secretName"] for doc in certificates}
    assert secrets["api.example.com"] == "api-example-com-tls"
    for route in kinds_in(analysis, "IngressRoute"):
        host = route["spec"]["routes"][0]["match"].split("`")[1]
        assert route["spec"]["tls"] == {"secretName": secrets[host]}
    assert helm(analysis)["ingressRoute"]["dashboard"]["tls"] == {"secretName": secrets["traefik.shop.example.com"]}
    (issuer,) = kinds_in(analysis, "ClusterIssuer")
    assert "namespace" not in issuer["metadata"]
    assert {doc["spec"]["issuerRef"]["name"] for doc in certificates} == {issuer["metadata"]["name"]} == {"shop-letsencrypt"}
    acme = issuer["spec"]["acme"]
    assert acme["server"] == "https://acme-v02.api.letsencrypt.org/directory"
    assert acme["email"] == "ops@example.com" and acme["privateKeySecretRef"] == {"name": "shop-letsencrypt-account"}


def test_the_http01_solver_is_served_by_traefik_alone(analysed):
    analysis = analysed(CLUSTER)
    values = helm(analysis)
    (issuer,) = kinds_in(analysis, "ClusterIssuer")
    (solver,) = issuer["spec"]["acme"]["solvers"]
    ingress = solver["http01"]["ingress"]
    # the solver's Ingresses carry a class only this Traefik serves, never the cluster's default class
    assert ingress["ingressClassName"] == values["ingressClass"]["name"] == values["providers"]["kubernetesIngress"]["ingressClass"]
    assert values["ingressClass"] == {"enabled": True, "isDefaultClass": False, "name": "shop-acme"}
    assert values["providers"]["kubernetesIngress"]["namespaces"] == ["shop-prod", "traefik"]
    # the challenge is plain HTTP: on `web`, where the redirect to HTTPS must lose to it
    assert ingress["ingressTemplate"]["metadata"]["annotations"] == {"traefik.ingress.kubernetes.io/router.entrypoints": "web"}
    assert values["ports"]["web"]["http"]["redirections"]["entryPoint"]["priority"] == 1


def test_no_acme_resolver_or_volume_on_kubernetes(analysed):
    for text in (CLUSTER, WITHOUT_ACME):
        analysis = analysed(text)
        values = helm(analysis)
        assert "certificatesResolvers" not in values and "persistence" not in values
        assert values["ports"]["websecure"]["http"]["tls"] == {"enabled": True}
        assert all("certResolver" not in route["spec"]["tls"] for route in kinds_in(analysis, "IngressRoute"))
        # compose keeps Traefik's own ACME: its state is a volume on the one host
        static = analysis.files["traefik/traefik.yml"].document()
        assert ("certificatesResolvers" in static) == (text == CLUSTER)


def test_without_acme_email_the_routes_read_the_users_secrets(analysed):
    analysis = analysed(WITHOUT_ACME)
    values = helm(analysis)
    assert kinds_in(analysis, "Certificate") == [] and kinds_in(analysis, "ClusterIssuer") == []
    assert "kubernetes/gateway/cert-manager.yaml" not in analysis.files and "kubernetes/acme-solver.yaml" not in analysis.files
    assert values["providers"]["kubernetesIngress"] == {"enabled": False}
    # the chart's default would make Traefik the cluster's default IngressClass, serving no Ingress
    assert values["ingressClass"] == {"enabled": False}
    assert "priority" not in values["ports"]["web"]["http"]["redirections"]["entryPoint"]
    secrets = {route["metadata"]["name"]: route["spec"]["tls"]["secretName"] for route in kinds_in(analysis, "IngressRoute")}
    assert secrets == {"admin": "api-example-com-tls", "api": "api-example-com-tls", "web": "shop-example-com-tls"}
    assert "the TLS Secret each IngressRoute names" in analysis.files["kubernetes/kustomization.yaml"].text


def test_cert_manager_objects_and_the_solver_policy_are_in_the_kustomization(analysed):
    analysis = analysed(CLUSTER)
    resources = analysis.files["kubernetes/kustomization.yaml"].document()["resources"]
    assert {"gateway/cert-manager.yaml", "acme-solver.yaml"} <= set(resources)
    assert "gateway/traefik-values.yaml" not in resources
    kinds = [doc["kind"] for doc in documents(analysis, "kubernetes/gateway/cert-manager.yaml")]
    assert kinds == ["ClusterIssuer", "Certificate", "Certificate", "Certificate"]
    assert f"cert-manager {images.CERT_MANAGER_VERSION}" in analysis.files["kubernetes/gateway/cert-manager.yaml"].text
    assert [f.id for f in verification(analysis) if f.id.startswith("k8s-")] == []


def test_only_traefik_reaches_the_http01_solver(analysed):
    """The namespace denies ingress by default: without its own policy no challenge would pass."""
    from msgen.plan import kubernetes as k8s
    from msgen.verify import netpol

    analysis = analysed(CLUSTER)
    policies = [
        {"metadata": {"namespace": "shop-prod"}, "spec": doc["spec"]}
        for doc in kinds_in(analysis, "NetworkPolicy")
        if doc["metadata"]["name"] in ("default-deny-ingress", "acme-http01-solver")
    ]
    solver = netpol.Pod("shop-prod/cm-acme-http-solver", "shop-prod", dict(k8s.ACME_SOLVER_POD))
    traefik = netpol.Pod("traefik/traefik", "traefik", dict(k8s.TRAEFIK_POD))
    strangers = [netpol.Pod("shop-prod/stranger", "shop-prod", {"app": "x"}), netpol.Pod("traefik/stranger", "traefik", {"app": "x"})]
    network = netpol.Network([solver, traefik, *strangers], policies)
    assert network.may_connect(traefik, solver, ("TCP", 8089))
    assert not network.may_connect(traefik, solver, ("TCP", 8080))
    assert not any(network.may_connect(stranger, solver, ("TCP", 8089)) for stranger in strangers)


def test_host_ports_run_traefik_on_every_node(analysed):
    values = helm(analysed(CLUSTER))
    assert values["deployment"]["kind"] == "DaemonSet" and "replicas" not in values["deployment"]
    assert (values["ports"]["web"]["hostPort"], values["ports"]["websecure"]["hostPort"]) == (80, 443)
    assert values["ports"]["websecure"]["http3"] == {"enabled": True, "advertisedPort": 443}  # the chart adds 443/udp
    assert values["service"] == {"spec": {"type": "ClusterIP"}}
    # a node's port holds one pod: the old one goes first
    assert values["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert values["podDisruptionBudget"] == {"enabled": True, "maxUnavailable": 1}
    assert "topologySpreadConstraints" not in values


@pytest.mark.parametrize(("anti_affinity", "when"), [("required", "DoNotSchedule"), ("preferred", "ScheduleAnyway")])
def test_load_balancer_keeps_the_client_address(analysed, anti_affinity, when):
    values = helm(analysed(cluster_blueprint(ingress="load_balancer", anti_affinity=anti_affinity)))
    assert values["deployment"]["kind"] == "Deployment" and values["deployment"]["replicas"] == 2
    assert values["service"] == {"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local"}}
    assert all("hostPort" not in port for port in values["ports"].values())
    assert values["updateStrategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert values["podDisruptionBudget"] == {"enabled": True, "maxUnavailable": 1}
    (spread,) = values["topologySpreadConstraints"]
    assert (spread["topologyKey"], spread["maxSkew"], spread["whenUnsatisfiable"]) == ("kubernetes.io/hostname", 1, when)
    assert spread["labelSelector"] == {"matchLabels": {"app.kubernetes.io/name": "traefik"}}


def test_certificate_names_are_labels_and_never_shared():
    from msgen.plan.kubernetes import certificate_names

    long_host = ".".join(["segment"] * 12) + ".example.com"
    names = certificate_names({"shop.example.com", "a-b.c", "a.b-c", long_host})
    assert names["shop.example.com"] == "shop-example-com"
    assert names["a-b.c"] != names["a.b-c"] and names["a-b.c"].startswith("a-b-c-")
    assert len(names[long_host]) <= 63 and names[long_host].startswith("segment-segment")
    assert all(name[0].isalnum() and name[-1].isalnum() for name in names.values())
    assert certificate_names({long_host}) == {long_host: names[long_host]}  # the same host, the same name


def test_plan_shows_the_chart_the_ingress_and_the_tls_source(analysed):
    from msgen.views import kubernetes_gateway_section

    (section,) = kubernetes_gateway_section(analysed(CLUSTER).plan)
    assert images.TRAEFIK_CHART_VERSION in section.title and images.TRAEFIK_VERSION in section.title
    rows = {row[0]: row for row in section.rows}
    assert rows["ingress"][1].startswith("DaemonSet") and rows["ingress"][2].startswith("host_ports")
    assert "ClusterIssuer shop-letsencrypt" in rows["TLS"][1]
    assert rows["certificate api.example.com"][1] == "Secret shop-prod/api-example-com-tls"
    (without,) = kubernetes_gateway_section(analysed(WITHOUT_ACME).plan)
    assert {row[0]: row for row in without.rows}["TLS"][1].startswith("your TLS Secrets")


def test_a_header_note_stays_one_comment_line():
    from msgen.jinja import render_template
    from msgen.targets import DOCUMENT_TEMPLATE

    text = render_template(DOCUMENT_TEMPLATE, project="shop", notes=("first\nkey: injected",), document={"a": 1})
    assert yaml.safe_load(text) == {"a": 1}
    assert "# first key: injected" in text
