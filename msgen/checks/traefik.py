"""Findings about the Traefik gateway (CHECKS.md, Traefik output).

Two kinds: blueprint values Traefik accepts silently or only disables at run time (rate
limits, source criteria, breaker expressions, retry attempts), and rules over the rendered
traefik.yml, dynamic file and compose file (references, HTTP/3, dashboard, docker socket).
"""

from __future__ import annotations

from collections.abc import Iterator

import yaml

from msgen.checks.traefik_expression import expression_problem
from msgen.findings import Finding, finding
from msgen.plan import gateway as gw
from msgen.targets import parsed

COMPOSE_FILE = "compose/docker-compose.yml"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# middlewares that put a login in front of what they guard
AUTH_KINDS = ("basicAuth", "digestAuth", "forwardAuth")


def check(context) -> Iterator[Finding]:
    yield from check_expressions(context.blueprint)
    gateway = context.plan.gateway
    if gateway is None:
        return
    yield from check_routes(context.blueprint, gateway)
    static = _load(context.artifacts, gw.STATIC_CONFIG)
    dynamic = _load(context.artifacts, gateway.dynamic_file)
    compose = _compose_gateway(context)
    if static is not None and dynamic is not None:
        yield from check_references(context.plan, static, dynamic)
        yield from check_http3(static, dynamic, compose)
        yield from check_dashboard(static, dynamic)
        yield from check_docker_socket(gateway, static, compose)


def _compose_gateway(context) -> dict | None:
    """The compose file reduced to its gateway service (what these checks read), or None
    without a compose file: msgen's own file builds that one entry; an edited file is parsed."""
    from msgen.targets import compose

    artifact = context.artifacts.get(COMPOSE_FILE)
    if artifact is None or artifact.documents is None:
        return _load(context.artifacts, COMPOSE_FILE)
    entry = compose.compose_entry(context.plan, compose.GATEWAY)
    return {"services": {} if entry is None else {compose.GATEWAY: entry}}


def _load(artifacts: dict, path: str) -> dict | None:
    artifact = artifacts.get(path)
    if artifact is None:
        return None
    return parsed(artifact) or {}


def check_expressions(blueprint) -> Iterator[Finding]:
    """A breaker expression Traefik would reject (it would disable the router at run time)."""
    for name, service in sorted(blueprint.services.items()):
        breaker = service.circuit_breaker
        if breaker is None or breaker.expression is None:
            continue
        problem = expression_problem(breaker.expression)
        if problem is not None:
            yield finding(
                "traefik-breaker-expression",
                "error",
                ("services", name, "circuit_breaker", "expression"),
                f"circuit breaker expression of {name}, column {problem.column}: {problem.message}",
                "Traefik knows NetworkErrorRatio(), ResponseCodeRatio(a, b, c, d) and LatencyAtQuantileMS(q), "
                "compared with a number and joined by && or ||; e.g. NetworkErrorRatio() > 0.3",
            )


def check_routes(blueprint, gateway: gw.GatewayPlan) -> Iterator[Finding]:
    for route in gateway.routes:
        rate = route.rate_limit
        if rate.average < 1:
            yield finding(
                "traefik-rate-limit",
                "error",
                (*rate.at, "average"),
                f"rate limit of {route.name}: average {rate.average} switches Traefik's limiter off (0 means no limit)",
                "set average to the requests per period the service may receive (>= 1)",
            )
        if rate.burst < 1:
            yield finding(
                "traefik-rate-limit",
                "error",
                (*rate.at, "burst"),
                f"rate limit of {route.name}: burst {rate.burst} rejects every request (a burst of 0 holds no token)",
                "set burst to at least 1",
            )
        if len(rate.criteria) > 1:
            yield finding(
                "traefik-source-criterion",
                "error",
                (*rate.at, "source"),
                f"rate limit of {route.name} names {len(rate.criteria)} source criteria ({', '.join(rate.criteria)}): "
                "Traefik uses only one and silently ignores the rest",
                "keep exactly one of ip_depth, request_header, request_host",
            )
        service = blueprint.services[route.name]
        if service.retry is not None and service.retry.attempts < 1:
            yield finding(
                "traefik-retry-attempts",
                "warning",
                ("services", route.name, "retry", "attempts"),
                f"retry of {route.name} has attempts {service.retry.attempts}: Traefik needs attempts >= 1, "
                "so msgen emits no retry middleware",
                "remove retry, or set attempts to the number of tries (2 = one retry)",
            )


def _dynamic_names(dynamic: dict, kind: str) -> set[str]:
    return set((dynamic.get("http") or {}).get(kind) or {})


def _exists(reference: str, defined: set[str], extra: set[str]) -> bool:
    name, _, provider = reference.partition("@")
    if provider in ("", "file"):
        return name in defined
    return reference in extra or provider == "internal"


def check_references(plan, static: dict, dynamic: dict) -> Iterator[Finding]:
    """Every router's entrypoints, service and middlewares exist (file and label routers alike)."""
    entrypoints = set(static.get("entryPoints") or {})
    services = _dynamic_names(dynamic, "services")
    middlewares = _dynamic_names(dynamic, "middlewares")
    routers = dict((dynamic.get("http") or {}).get("routers") or {})
    label_names: set[str] = set()
    for route in plan.gateway.routes:
        labels = gw.compose_labels(plan, route.name)
        if labels:
            routers[route.name] = _label_router(labels, route.name)
            label_names |= {f"{route.name}@docker"} | {f"{m.name}@docker" for m in route.middlewares if not m.shared}
    for name, router in sorted(routers.items()):
        at = ("services", name, "route") if plan.gateway.route(name) else ("gateway",)
        for entrypoint in router.get("entryPoints") or []:
            if entrypoint not in entrypoints:
                yield _missing(at, name, "entrypoint", entrypoint)
        service = router.get("service", "")
        if not _exists(service, services, label_names) and f"{service}@docker" not in label_names:
            yield _missing(at, name, "service", service)
        for middleware in router.get("middlewares") or []:
            if not _exists(middleware, middlewares, label_names) and f"{middleware}@docker" not in label_names:
                yield _missing(at, name, "middleware", middleware)


def _label_router(labels: dict[str, str], name: str) -> dict:
    prefix = f"traefik.http.routers.{name}."
    return {
        "entryPoints": labels.get(prefix + "entrypoints", "").split(","),
        "service": labels.get(prefix + "service", ""),
        "middlewares": [m for m in labels.get(prefix + "middlewares", "").split(",") if m],
    }


def _missing(at: tuple, router: str, kind: str, name: str) -> Finding:
    return finding(
        "traefik-reference",
        "error",
        at,
        f"Traefik router {router} refers to {kind} {name!r}, which is not defined: Traefik would disable the router",
        "please report this: msgen defines every object its routers use",
    )


def check_http3(static: dict, dynamic: dict, compose: dict | None) -> Iterator[Finding]:
    """HTTP/3 runs over QUIC: only on a TLS entrypoint, and only when its UDP port is published."""
    for name, entrypoint in sorted((static.get("entryPoints") or {}).items()):
        if "http3" not in (entrypoint or {}):
            continue
        if "tls" not in (entrypoint.get("http") or {}):
            yield finding(
                "traefik-http3",
                "error",
                ("gateway", "http3"),
                f"HTTP/3 is enabled on entrypoint {name}, which has no TLS: QUIC cannot run without it",
                "serve HTTP/3 only on websecure",
            )
        gateway_ports = ((compose or {}).get("services") or {}).get("gateway", {}).get("ports")
        if compose is not None and not any("/udp" in str(port) for port in gateway_ports or []):
            yield finding(
                "traefik-http3",
                "error",
                ("gateway", "http3"),
                "HTTP/3 is enabled but the compose gateway publishes no UDP port: browsers would never reach it",
                "publish 443/udp on the gateway",
            )


def check_dashboard(static: dict, dynamic: dict) -> Iterator[Finding]:
    """The API and dashboard are never reachable without a login in front of them."""
    api = static.get("api")
    if api is not None and (api or {}).get("insecure"):
        yield finding(
            "traefik-dashboard-auth",
            "error",
            ("gateway", "dashboard"),
            "api.insecure serves Traefik's API and dashboard without any authentication",
            "use the dashboard router behind basic auth that msgen generates for dashboard: true",
        )
    kinds = {name: next(iter(spec or {}), "") for name, spec in ((dynamic.get("http") or {}).get("middlewares") or {}).items()}
    for name, router in sorted(((dynamic.get("http") or {}).get("routers") or {}).items()):
        if router.get("service") != "api@internal":
            continue
        if not any(kinds.get(m.split("@")[0]) in AUTH_KINDS for m in router.get("middlewares") or []):
            yield finding(
                "traefik-dashboard-auth",
                "error",
                ("gateway", "dashboard"),
                f"router {name} exposes the dashboard with no authentication middleware",
                "put basic auth (a users file from a secret) in front of api@internal",
            )


def check_docker_socket(gateway: gw.GatewayPlan, static: dict, compose: dict | None) -> Iterator[Finding]:
    """The docker socket is root on the host: only docker mode mounts it, and only read-only."""
    providers = static.get("providers") or {}
    if gateway.provider == "file" and "docker" in providers:
        yield _socket_finding("the file provider mode enables Traefik's docker provider")
    volumes = (((compose or {}).get("services") or {}).get("gateway") or {}).get("volumes") or []
    for volume in volumes:
        source, target, read_only = _volume(volume)
        if gw.DOCKER_SOCKET not in (source, target):
            continue
        if gateway.provider == "file":
            yield _socket_finding("the gateway mounts the docker socket although gateway.provider is file")
        elif not read_only:
            yield _socket_finding("the gateway mounts the docker socket writable")


def _volume(volume) -> tuple[str, str, bool]:
    if isinstance(volume, dict):
        return str(volume.get("source", "")), str(volume.get("target", "")), bool(volume.get("read_only"))
    parts = str(volume).split(":")
    return parts[0], parts[1] if len(parts) > 1 else "", len(parts) > 2 and "ro" in parts[2].split(",")


def _socket_finding(message: str) -> Finding:
    return finding(
        "traefik-docker-socket",
        "error",
        ("gateway", "provider"),
        message + ": whoever controls that socket controls the host",
        "use provider: file (the default), or provider: docker with the socket mounted read-only",
    )
