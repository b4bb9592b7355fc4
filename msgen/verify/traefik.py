"""Verification of the gateway files (`--deep` and the tests): every router's entrypoints,
service and middlewares exist (file and label routers alike), HTTP/3 only where QUIC can
run, the dashboard never without a login, the docker socket only read-only in docker mode.
"""

from __future__ import annotations

from collections.abc import Iterator

from msgen.contract import COMPOSE_FILE
from msgen.findings import Finding, finding
from msgen.plan import gateway as gw
from msgen.targets import traefik

# middlewares that put a login in front of what they guard
AUTH_KINDS = ("basicAuth", "digestAuth", "forwardAuth")


def verify(context) -> Iterator[Finding]:
    gateway = context.plan.gateway
    if gateway is None:
        return
    static = context.document(gw.STATIC_CONFIG) or {}
    dynamic = context.document(gateway.dynamic_file) or {}
    compose_file = context.document(COMPOSE_FILE)
    yield from check_references(context.plan, static, dynamic)
    yield from check_http3(static, dynamic, compose_file)
    yield from check_dashboard(static, dynamic)
    yield from check_docker_socket(gateway, static, compose_file)


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
        labels = traefik.compose_labels(plan, route.name)
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
