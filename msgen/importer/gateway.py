"""Traefik in compose files: routers and middlewares from a service's labels (the docker provider)
or from msgen's own file provider, and the gateway container's command-line flags."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from msgen.importer import values
from msgen.importer.compose import labels
from msgen.importer.draft import Draft
from msgen.loader import read_yaml_file


@dataclass
class Router:
    """One Traefik router of a service and the middlewares it (or its service's labels) defines."""

    name: str
    service: str
    source: str  # where its rule was read
    rule: str = ""
    # middleware kind (lower case: ratelimit, retry, circuitbreaker) -> its options, lower-cased keys
    middlewares: dict[str, dict[str, str]] = field(default_factory=dict)
    middleware_source: dict[str, str] = field(default_factory=dict)

    @property
    def host(self) -> str | None:
        return self.rule_parts().get("host")

    def rule_parts(self) -> dict[str, str]:
        return values.rule_parts(self.rule)

    def map_middlewares(self, draft: Draft, at: tuple) -> None:
        limit = self.middlewares.get("ratelimit", {})
        rate_limit = {key: int(limit[key]) for key in ("average", "burst") if str(limit.get(key, "")).isdigit()}
        if limit.get("period") and values.duration(limit["period"]):
            rate_limit["period"] = values.duration(limit["period"])
        if rate_limit:
            draft.set((*at, "rate_limit"), rate_limit, self.middleware_source["ratelimit"])
        retry = self.middlewares.get("retry", {})
        if str(retry.get("attempts", "")).isdigit():
            settings: dict = {"attempts": int(retry["attempts"])}
            if retry.get("initialinterval") and values.duration(retry["initialinterval"]):
                settings["initial_interval"] = values.duration(retry["initialinterval"])
            draft.set((*at, "retry"), settings, self.middleware_source["retry"])
        breaker = self.middlewares.get("circuitbreaker", {})
        if breaker.get("expression") and "{{" not in breaker["expression"]:
            draft.set((*at, "circuit_breaker"), circuit_breaker(breaker), self.middleware_source["circuitbreaker"])
        elif breaker.get("expression"):  # Traefik reads its file provider as a Go template: the blueprint refuses braces
            draft.todo((*at, "route"), f"circuit breaker {breaker['expression']!r} holds '{{{{': rewrite it", at=self.middleware_source["circuitbreaker"])


# the condition msgen writes for `failure_ratio: R`: network errors or 5xx answers at R or more
_FAILURE_RATIO = re.compile(r"NetworkErrorRatio\(\) >= ([0-9.]+) \|\| ResponseCodeRatio\(500, 600, 0, 600\) >= ([0-9.]+)")


def circuit_breaker(options: dict[str, str]) -> dict:
    """A Traefik circuitBreaker middleware as the blueprint's circuit_breaker: msgen's own failure
    ratio read back as `failure_ratio`, any other condition kept as its `expression`."""
    expression = options["expression"].strip()
    ratio = _FAILURE_RATIO.fullmatch(expression)
    settings: dict = (
        {"failure_ratio": float(ratio.group(1))} if ratio and ratio.group(1) == ratio.group(2) else {"expression": expression}
    )
    if options.get("fallbackduration") and values.duration(options["fallbackduration"]):
        settings["open_for"] = values.duration(options["fallbackduration"])
    return settings


def label_routers(service: dict, name: str) -> list[Router]:
    """The routers a service's `traefik.http.*` labels declare (label keys are case-insensitive)."""
    found = {key.lower(): value for key, value in labels(service).items()}
    if found.get("traefik.enable", "true").lower() == "false":
        return []
    routers: dict[str, Router] = {}
    middlewares: dict[str, dict[str, str]] = {}
    sources: dict[str, str] = {}
    for key, value in found.items():
        parts = key.split(".")
        if parts[:3] == ["traefik", "http", "routers"] and len(parts) == 5 and parts[4] == "rule":
            routers[parts[3]] = Router(parts[3], name, f"services.{name}.labels.{key}", value)
        elif parts[:3] == ["traefik", "http", "middlewares"] and len(parts) >= 6:
            middlewares.setdefault(parts[4], {})[".".join(parts[5:])] = value
            sources.setdefault(parts[4], f"services.{name}.labels.traefik.http.middlewares.{parts[3]}")
    for router in routers.values():
        router.middlewares = middlewares
        router.middleware_source = sources
    return [routers[key] for key in sorted(routers)]


def file_routers(folder: Path) -> list[Router]:
    """The routers of Traefik's file provider (msgen's traefik/dynamic/*.yml) with the middlewares they use."""
    routers = []
    for path in sorted(folder.glob("*.yml")) if folder.is_dir() else []:
        data, _ = read_yaml_file(path)
        http = (data or {}).get("http") or {}
        defined = http.get("middlewares") or {}
        for name, router in sorted((http.get("routers") or {}).items()):
            source = f"{folder.name}/{path.name} http.routers.{name}"
            found = Router(name, str(router.get("service", name)), source, str(router.get("rule", "")))
            for middleware in router.get("middlewares") or []:
                for kind, options in (defined.get(middleware) or {}).items():
                    found.middlewares[kind.lower()] = {str(key).lower(): str(value) for key, value in (options or {}).items()}
                    found.middleware_source[kind.lower()] = f"{folder.name}/{path.name} http.middlewares.{middleware}"
            routers.append(found)
    return routers


def gateway_flags(draft: Draft, service: dict, name: str) -> None:
    """What the Traefik container's flags and mounts say: provider, ACME e-mail, HTTP/3, and what is unsafe."""
    at = f"services.{name}"
    for flag in values.words(service.get("command")) or []:
        key, _, value = flag.partition("=")
        key = key.lower()
        if key == "--api.insecure" and value.lower() in ("", "true"):
            draft.todo(("gateway",), "--api.insecure serves the dashboard without authentication: not imported (see gateway.dashboard)", at=f"{at}.command")
        elif key.startswith("--providers.docker") and key.count(".") == 1 and value.lower() in ("", "true"):
            draft.set(("gateway", "provider"), "docker", f"{at}.command {flag}")
        elif key.startswith("--certificatesresolvers.") and key.endswith(".acme.email"):
            draft.set(("gateway", "acme_email"), value, f"{at}.command")
        elif key.endswith(".http3") and value.lower() in ("", "true"):
            draft.set(("gateway", "http3"), True, f"{at}.command {flag}")
    for mount in service.get("volumes") or []:
        source = str(mount.get("source") if isinstance(mount, dict) else str(mount).split(":", 1)[0])
        if source.endswith("docker.sock"):
            note = "the Docker socket is mounted: msgen mounts it read-only only with provider docker (warning compose-docker-socket)"
            draft.todo(("gateway",), note, at=f"{at}.volumes")
        elif source.startswith((".", "/", "~")):
            draft.todo(("gateway",), f"bind mount {source}: msgen writes the gateway's configuration itself", at=f"{at}.volumes")
