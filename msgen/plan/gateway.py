"""The gateway plan: Traefik's entrypoints, routers, services and middlewares, computed once.

Three renderings read it and add nothing of their own: the file provider's dynamic YAML
(msgen/targets/traefik.py), the compose labels for `provider: docker` (`compose_labels`),
and the Kubernetes IngressRoute/Middleware objects. Middleware options are kept in
Traefik's own field names so that each rendering only changes the envelope.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from msgen.model.blueprint import Blueprint, CircuitBreaker, RateLimit, SourceCriterion
from msgen.plan.latency import LatencyPlan, RouteLatency, longest_wait_ms
from msgen.plan.objectives import RouteObjective, histogram_buckets, route_objective
from msgen.units import Duration

# entrypoints (names are Traefik's conventions; `traefik` serves ping and never the API)
WEB, WEBSECURE, METRICS, PING = "web", "websecure", "metrics", "traefik"
PORTS = {WEB: 80, WEBSECURE: 443, METRICS: 8082, PING: 8080}
RESOLVER = "letsencrypt"
SECURE_HEADERS = "secure-headers"
DASHBOARD_ROUTER = "gateway_dashboard"  # `_` is never in a service name: no router can clash
DASHBOARD_AUTH = "dashboard-auth"
# paths of the compose gateway (the contract with the compose target)
STATIC_CONFIG = "traefik/traefik.yml"
DYNAMIC_DIR = "traefik/dynamic"
STATIC_MOUNT = "/etc/traefik/traefik.yml"
DYNAMIC_MOUNT = "/etc/traefik/dynamic"
ACME_MOUNT = "/letsencrypt"
ACME_STORAGE = f"{ACME_MOUNT}/acme.json"
DOCKER_SOCKET = "/var/run/docker.sock"
# the dashboard's htpasswd lines: a secret file, never in the output
DASHBOARD_USERS_SECRET = "dashboard-users"
DASHBOARD_USERS_FILE = f"/run/secrets/{DASHBOARD_USERS_SECRET}"
# when the blueprint and the gateway leave a rate limit field out
DEFAULT_RATE = {"average": 100, "burst": 50, "period": Duration(1000, "1s")}
# Traefik's breaker evaluates its expression every checkPeriod over a rolling 10 s window
BREAKER_CHECK_PERIOD = Duration(100, "100ms")
BREAKER_MAX_RECOVERY = Duration(10_000, "10s")
BREAKER_WINDOW = "10s"
BREAKER_STATUS = 503
# Traefik answers 502 for a connection dropped before any response and 504 for a timeout;
# without `status` it retries only failed dials, never a request already written (tested)
RETRY_STATUS = ("502", "504")
# the shortest wait for a service's answer when its chain allows less (a common proxy default);
# a p99 budget is never a timeout: it would cut one request in a hundred by design
ROUTE_TIMEOUT_FLOOR = Duration(15_000, "15s")
# a TCP connect to a healthy backend takes a round trip: a few seconds cover SYN retransmits
DIAL_TIMEOUT = Duration(3000, "3s")


def go_duration(duration: Duration) -> str:
    """A duration as Go's time.ParseDuration reads it (Go has no `d` unit)."""
    ms = duration.ms
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def float_literal(value: float) -> str:
    """A float as a Go float literal (always with a point: oxy rejects `1` where it wants a float)."""
    text = repr(float(value))
    return text if "." in text or "e" in text else f"{text}.0"


@dataclass(frozen=True)
class Middleware:
    """One Traefik middleware: `kind` and `options` are Traefik's field names."""

    name: str
    kind: str  # rateLimit | buffering | circuitBreaker | retry | headers | basicAuth
    options: dict
    shared: bool  # defined once for every router (file provider even in docker mode)
    at: tuple  # the blueprint key path it comes from


@dataclass(frozen=True)
class RateLimitPlan:
    average: int
    burst: int
    period: Duration
    source: SourceCriterion | None
    origins: tuple[tuple[str, str], ...]  # field -> service | gateway | default
    criteria: tuple[str, ...]  # the source criteria set (more than one is a finding)
    at: tuple


@dataclass(frozen=True)
class BreakerPlan:
    expression: str
    from_ratio: bool  # derived from failure_ratio (else the blueprint's own expression)
    open_for: Duration
    recovery: Duration
    min_requests: int | None  # gobreaker's, which Traefik cannot express (README)
    at: tuple


@dataclass(frozen=True)
class TimeoutPlan:
    """How long the gateway waits for a routed service, and where that value comes from."""

    timeout: Duration  # per try (responseHeaderTimeout), and the retry window
    origin: str  # route (the blueprint's) | chain (the service's own timeouts allow this much) | floor
    longest_wait_ms: int | None  # what the service's own timeouts allow; None: unbounded
    at: tuple


@dataclass(frozen=True)
class RoutePlan:
    """A routed service: its router, load-balanced service and middlewares share its name."""

    name: str
    rule: str
    hosts: tuple[str, ...]
    path_prefix: str | None
    urls: tuple[str, ...]  # one a replica: compose names replica n of service s <project>-<s>-<n>
    port: int
    health_path: str
    health_interval: Duration
    health_timeout: Duration
    budget: Duration
    rate_limit: RateLimitPlan
    breaker: BreakerPlan | None
    retry_attempts: int | None  # None: no retry middleware
    retry_interval: Duration | None
    middlewares: tuple[Middleware, ...]  # in chain order, the shared ones included
    timeout: TimeoutPlan
    transport: str  # the name of its servers transport (the timeouts)
    objective: RouteObjective  # availability and the gateway's latency threshold (msgen/plan/objectives.py)

    @property
    def middleware_names(self) -> tuple[str, ...]:
        return tuple(middleware.name for middleware in self.middlewares)


@dataclass(frozen=True)
class GatewayPlan:
    project: str
    domain: str
    provider: str  # file | docker
    acme_email: str | None
    http3: bool
    dashboard: bool
    tls: dict  # the routers' `tls` section
    routes: tuple[RoutePlan, ...]  # sorted by name
    shared_middlewares: tuple[Middleware, ...]
    buckets: tuple[float, ...]  # the request-duration histogram's edges (msgen/plan/objectives.py)
    published_ports: tuple[str, ...]  # compose `ports` of the gateway
    dynamic_file: str  # traefik/dynamic/<project>.yml
    max_request_body: int  # bytes a retried request may carry
    drain: Duration  # how long Traefik finishes in-flight requests on shutdown: the longest route timeout

    def route(self, name: str) -> RoutePlan | None:
        return self._routes_by_name.get(name)

    # compose asks once per service: keep the lookup O(1) for thousands of services
    @cached_property
    def _routes_by_name(self) -> dict[str, RoutePlan]:
        return {route.name: route for route in self.routes}

    @property
    def dashboard_host(self) -> str:
        return f"traefik.{self.domain}"


def plan_gateway(blueprint: Blueprint, latency: LatencyPlan) -> GatewayPlan | None:
    """The gateway of a blueprint that routes something; None when nothing is routed.
    `latency` gives each route's clients' leg, which sets its latency objective."""
    gateway = blueprint.gateway
    routed = sorted(name for name, service in blueprint.services.items() if service.route is not None)
    if gateway is None or not routed:
        return None
    shared = _shared_middlewares(blueprint)
    tls = {"certResolver": RESOLVER} if gateway.acme_email else {}
    legs = {route.service: route for route in latency.routes}
    routes = tuple(_plan_route(blueprint, name, shared[0], tls, legs[name]) for name in routed)
    ports = ["80:80", "443:443"] + (["443:443/udp"] if gateway.http3 else [])
    return GatewayPlan(
        project=blueprint.project,
        domain=gateway.domain,
        provider=gateway.provider,
        acme_email=gateway.acme_email,
        http3=gateway.http3,
        dashboard=gateway.dashboard,
        tls=tls,
        routes=routes,
        shared_middlewares=shared,
        buckets=histogram_buckets(route.objective for route in routes),
        published_ports=tuple(ports),
        dynamic_file=f"{DYNAMIC_DIR}/{blueprint.project}.yml",
        max_request_body=gateway.max_request_body.bytes,
        drain=max((route.timeout.timeout for route in routes), key=lambda duration: duration.ms),
    )


def _shared_middlewares(blueprint: Blueprint) -> tuple[Middleware, ...]:
    headers = Middleware(
        SECURE_HEADERS,
        "headers",
        {
            "stsSeconds": 31_536_000,
            "stsIncludeSubdomains": True,
            "contentTypeNosniff": True,
            "frameDeny": True,
            "referrerPolicy": "no-referrer",
            # an empty value removes the header: don't advertise the backend's software
            "customResponseHeaders": {"Server": "", "X-Powered-By": ""},
        },
        True,
        ("gateway",),
    )
    middlewares = [headers]
    if blueprint.gateway is not None and blueprint.gateway.dashboard:
        auth = {"usersFile": DASHBOARD_USERS_FILE, "removeHeader": True, "realm": "traefik"}
        middlewares.append(Middleware(DASHBOARD_AUTH, "basicAuth", auth, True, ("gateway", "dashboard")))
    return tuple(middlewares)


def _rule(hosts: tuple[str, ...], path_prefix: str | None) -> str:
    parts = [f"Host(`{hosts[0]}`)"]
    if path_prefix is not None:
        parts.append(f"PathPrefix(`{path_prefix}`)")
    return " && ".join(parts)


def _plan_route(blueprint: Blueprint, name: str, headers: Middleware, tls: dict, legs: RouteLatency) -> RoutePlan:
    service = blueprint.services[name]
    route = service.route
    assert route is not None and blueprint.gateway is not None
    hosts = (route.host or blueprint.gateway.domain,)
    at = ("services", name)
    rate = effective_rate_limit(service.rate_limit, blueprint.gateway.rate_limit, at)
    breaker = _breaker(service.circuit_breaker, (*at, "circuit_breaker"))
    retry = service.retry
    attempts = retry.attempts if retry is not None and retry.attempts >= 1 else None
    timeout = route_timeout(blueprint, name)
    middlewares = [headers, Middleware(f"{name}-ratelimit", "rateLimit", _rate_options(rate), False, rate.at)]
    if attempts is not None:
        # the retry sends a body over its own limit once, unretried: refuse it here instead (413)
        limit = {"maxRequestBodyBytes": blueprint.gateway.max_request_body.bytes}
        middlewares.append(Middleware(f"{name}-body", "buffering", limit, False, ("gateway", "max_request_body")))
    if breaker is not None:
        middlewares.append(Middleware(f"{name}-breaker", "circuitBreaker", _breaker_options(breaker), False, breaker.at))
    if attempts is not None:
        options = {
            "attempts": attempts,
            "initialInterval": go_duration(retry.initial_interval),
            "status": list(RETRY_STATUS),
            # the window for every try: a try that timed out is not tried again
            "timeout": go_duration(timeout.timeout),
            "maxRequestBodyBytes": blueprint.gateway.max_request_body.bytes,
        }
        middlewares.append(Middleware(f"{name}-retry", "retry", options, False, (*at, "retry")))
    return RoutePlan(
        name=name,
        rule=_rule(hosts, route.path_prefix),
        hosts=hosts,
        path_prefix=route.path_prefix,
        urls=tuple(f"http://{replica_host(blueprint.project, name, n)}:{service.port}" for n in range(1, service.replicas + 1)),
        port=service.port,
        health_path=service.health.path,
        health_interval=service.health.period,
        health_timeout=service.health.timeout,
        budget=route.budget or blueprint.policy.latency_budget,
        rate_limit=rate,
        breaker=breaker,
        retry_attempts=attempts,
        retry_interval=retry.initial_interval if attempts is not None else None,
        middlewares=tuple(middlewares),
        timeout=timeout,
        transport=f"{name}-transport",
        objective=route_objective(name, route.availability, legs),
    )


def replica_host(project: str, service: str, number: int) -> str:
    """The DNS name of one compose replica: compose names its containers <project>-<service>-<n>,
    n from 1, and Docker's DNS answers each container's name on the networks it joins."""
    return f"{project}-{service}-{number}"


def route_timeout(blueprint: Blueprint, name: str) -> TimeoutPlan:
    """The blueprint's route.timeout, else the longest wait the service's own timeouts allow
    (never below ROUTE_TIMEOUT_FLOOR), else the floor."""
    route = blueprint.services[name].route
    assert route is not None
    longest = longest_wait_ms(blueprint, name)
    if route.timeout is not None:
        return TimeoutPlan(route.timeout, "route", longest, ("services", name, "route", "timeout"))
    at = ("services", name, "route")
    if longest is not None and longest > ROUTE_TIMEOUT_FLOOR.ms:
        return TimeoutPlan(Duration(longest, f"{longest}ms"), "chain", longest, at)
    return TimeoutPlan(ROUTE_TIMEOUT_FLOOR, "floor", longest, at)


def transport_options(route: RoutePlan) -> dict:
    """The servers transport of a route: Traefik's own field names (none of them defaults to a bound)."""
    return {"forwardingTimeouts": {"dialTimeout": go_duration(DIAL_TIMEOUT), "responseHeaderTimeout": go_duration(route.timeout.timeout)}}


def effective_rate_limit(own: RateLimit | None, default: RateLimit, at: tuple) -> RateLimitPlan:
    """The service's rate limit, each unset field taken from the gateway's, then msgen's default."""
    values: dict = {}
    origins = []
    for field in ("average", "burst", "period"):
        for origin, source in (("service", own), ("gateway", default)):
            value = getattr(source, field) if source is not None else None
            if value is not None:
                values[field] = value
                origins.append((field, origin))
                break
        else:
            values[field] = DEFAULT_RATE[field]
            origins.append((field, "default"))
    source = own.source if own is not None and own.source is not None else default.source
    criteria = tuple(key for key in ("ip_depth", "request_header", "request_host") if source and getattr(source, key) is not None)
    where = (*at, "rate_limit") if own is not None else ("gateway", "rate_limit")
    return RateLimitPlan(values["average"], values["burst"], values["period"], source, tuple(origins), criteria, where)


def _rate_options(rate: RateLimitPlan) -> dict:
    options: dict = {"average": rate.average, "burst": rate.burst, "period": go_duration(rate.period)}
    source = rate.source
    if source is None:
        return options
    criterion: dict = {}
    if source.ip_depth is not None:
        criterion["ipStrategy"] = {"depth": source.ip_depth}
    if source.request_header is not None:
        criterion["requestHeaderName"] = source.request_header
    if source.request_host is not None:
        criterion["requestHost"] = source.request_host
    options["sourceCriterion"] = criterion
    return options


def ratio_expression(failure_ratio: float) -> str:
    """gobreaker's failures/requests >= ratio, where a failure is a network error or a 5xx."""
    ratio = float_literal(failure_ratio)
    return f"NetworkErrorRatio() >= {ratio} || ResponseCodeRatio(500, 600, 0, 600) >= {ratio}"


def _breaker(breaker: CircuitBreaker | None, at: tuple) -> BreakerPlan | None:
    if breaker is None:
        return None
    from_ratio = breaker.failure_ratio is not None
    expression = ratio_expression(breaker.failure_ratio) if from_ratio else breaker.expression
    assert expression is not None
    recovery = min(breaker.open_for, BREAKER_MAX_RECOVERY, key=lambda duration: duration.ms)
    where = (*at, "failure_ratio") if from_ratio else (*at, "expression")
    return BreakerPlan(expression, from_ratio, breaker.open_for, recovery, breaker.min_requests, where)


def _breaker_options(breaker: BreakerPlan) -> dict:
    return {
        "expression": breaker.expression,
        "checkPeriod": go_duration(BREAKER_CHECK_PERIOD),
        "fallbackDuration": go_duration(breaker.open_for),
        "recoveryDuration": go_duration(breaker.recovery),
        "responseCode": BREAKER_STATUS,
    }
