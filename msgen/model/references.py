"""Cross-field rules that make a blueprint unreadable (load errors, exit 2).

Names must resolve, calls must not form a cycle, and a call that crosses regions needs a
declared round-trip time; otherwise no later stage can give an honest answer.
"""

from __future__ import annotations

import difflib
from graphlib import CycleError, TopologicalSorter

from msgen.errors import BlueprintError, LoadIssue
from msgen.images import IMAGES
from msgen.loader import KeyPath, SourceMap, format_path
from msgen.model.blueprint import Blueprint

# names msgen gives its own containers in the compose stack
RESERVED_NAMES = ("gateway", "prometheus", "grafana", "loki", "alloy", "alertmanager")


def rtt_key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def declared_rtts(blueprint: Blueprint) -> dict[tuple[str, str], float]:
    """Each declared pair under its unordered key; `a/a` is region a's own round trip (load
    guarantees one value per pair)."""
    return {rtt_key(*pair.split("/")): ms for pair, ms in blueprint.rtt_ms.items()}


class _Issues:
    def __init__(self, source: SourceMap):
        self.source = source
        self.found: list[LoadIssue] = []

    def add(self, path: KeyPath, message: str, hint: str = "") -> None:
        self.found.append(self.source.issue(path, message, hint))

    def unknown(self, path: KeyPath, kind: str, name: str, known) -> None:
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        hint = (
            f"did you mean {close[0]!r}?"
            if close
            else (f"known {kind}s: {', '.join(sorted(known))}" if known else f"no {kind}s are declared")
        )
        self.add(path, f"unknown {kind} {name!r}", hint)


def check_references(blueprint: Blueprint, source: SourceMap) -> None:
    """Raise a BlueprintError listing every unresolved reference, cycle or missing RTT."""
    issues = _Issues(source)
    _check_hosts(blueprint, issues)
    _check_services(blueprint, issues)
    _check_workers(blueprint, issues)
    _check_ports(blueprint, issues)
    _check_datastores(blueprint, issues)
    _check_gateway(blueprint, issues)
    _check_rtts(blueprint, issues)
    _check_alertmanager(blueprint, issues)
    _check_image_keys(blueprint, issues)
    _check_mounts(blueprint, issues)
    _check_volume_names(blueprint, issues)
    if not issues.found:
        _check_cycles(blueprint, issues)
    if not issues.found:
        _check_crossings(blueprint, issues)
    if issues.found:
        raise BlueprintError(issues.found)


def _check_hosts(blueprint: Blueprint, issues: _Issues) -> None:
    seen: set[str] = set()
    for index, host in enumerate(blueprint.hosts):
        if host.name in seen:
            issues.add(("hosts", index, "name"), f"host {host.name!r} is declared twice")
        seen.add(host.name)
        if host.region not in blueprint.regions:
            issues.unknown(("hosts", index, "region"), "region", host.region, blueprint.regions)
    compose = blueprint.compose
    if compose is not None and compose.host is not None and compose.host not in seen:
        issues.unknown(("compose", "host"), "host", compose.host, seen)
    elif compose is not None and compose.host is None and len(blueprint.hosts) > 1:
        issues.add(("compose",), "compose.host is required when several hosts are declared", "name the host that runs the stack")


def _check_services(blueprint: Blueprint, issues: _Issues) -> None:
    services = blueprint.services
    for name, service in services.items():
        at = ("services", name)
        if name in RESERVED_NAMES or name in blueprint.datastores:
            issues.add(
                at, f"the name {name!r} is taken ({'a datastore' if name in blueprint.datastores else 'by msgen for its own container'})"
            )
        if service.region is None and len(blueprint.regions) > 1:
            issues.add(at, "region is required when several regions are declared", f"one of: {', '.join(sorted(blueprint.regions))}")
        elif service.region is not None and service.region not in blueprint.regions:
            issues.unknown((*at, "region"), "region", service.region, blueprint.regions)
        for index, callee in enumerate(service.calls):
            if callee == name:
                issues.add((*at, "calls", index), f"{name!r} calls itself")
            elif callee not in services:
                issues.unknown((*at, "calls", index), "service", callee, services)
        if service.datastore is not None and service.datastore not in blueprint.datastores:
            issues.unknown((*at, "datastore"), "datastore", service.datastore, blueprint.datastores)
        if service.route is not None and service.route.host is None and blueprint.gateway is None:
            issues.add((*at, "route"), "a route by path_prefix needs the gateway section (its domain)")
        if service.route is not None and blueprint.gateway is None and service.route.host is not None:
            issues.add((*at, "route"), "a routed service needs the gateway section")
        clients = service.route.clients_region if service.route is not None else None
        if clients is not None and clients not in blueprint.regions:
            issues.unknown((*at, "route", "clients_region"), "region", clients, blueprint.regions)


def _check_workers(blueprint: Blueprint, issues: _Issues) -> None:
    """A worker (a service without a port) serves no HTTP: nothing routes to it or calls it, and
    Prometheus needs a port named to scrape it."""
    services = blueprint.services
    for name, service in services.items():
        at = ("services", name)
        for index, callee in enumerate(service.calls):
            if callee in services and services[callee].port is None:
                issues.add(
                    (*at, "calls", index),
                    f"{name} calls {callee}, a worker (no port): nothing can call it synchronously",
                    f"give {callee} a port, or drop the call (a queue between them is not a call)",
                )
        if service.port is not None:
            continue
        if service.route is not None:
            issues.add((*at, "route"), f"{name} is a worker (no port): the gateway has nothing to route to", f"give {name} a port, or drop its route")
        for key in sorted({"path", "liveness_path"} & service.health.model_fields_set):
            issues.add(
                (*at, "health", key),
                f"{name} is a worker (no port): an HTTP health path is never checked",
                "give health.command a check that works in the image instead",
            )
        if service.metrics is not None and service.metrics.port is None:
            issues.add(
                (*at, "metrics"),
                f"{name} is a worker (no port): its metrics need metrics.port",
                "add metrics.port, the port its metrics are served on",
            )


def _check_ports(blueprint: Blueprint, issues: _Issues) -> None:
    """A further port must not take the number of the service's own port or metrics port."""
    for name, service in blueprint.services.items():
        own = {service.port: "port", service.metrics.port if service.metrics else None: "metrics.port"}
        for index, extra in enumerate(service.ports):
            if extra.port in own:
                issues.add(
                    ("services", name, "ports", index, "port"),
                    f"port {extra.port} ({extra.name}) is already the service's {own[extra.port]}",
                    "give each port its own number",
                )


def _check_gateway(blueprint: Blueprint, issues: _Issues) -> None:
    clients = blueprint.gateway.clients_region if blueprint.gateway else None
    if clients is not None and clients not in blueprint.regions:
        issues.unknown(("gateway", "clients_region"), "region", clients, blueprint.regions)


def _check_alertmanager(blueprint: Blueprint, issues: _Issues) -> None:
    """The route names declared receivers, and there are alerts for Alertmanager to receive."""
    observability = blueprint.observability
    alertmanager = observability.alertmanager if observability is not None else None
    if alertmanager is None:
        return
    at = ("observability", "alertmanager")
    if observability.prometheus is None or not observability.alerts:
        issues.add(at, "alertmanager receives Prometheus' alerts: it needs prometheus and alerts: true")
    route = alertmanager.route
    for key in ("receiver", "critical", "warning"):
        name = getattr(route, key)
        if name is not None and name not in alertmanager.receivers:
            issues.unknown((*at, "route", key), "receiver", name, alertmanager.receivers)


def _check_datastores(blueprint: Blueprint, issues: _Issues) -> None:
    hosts = {host.name for host in blueprint.hosts}
    for name, datastore in blueprint.datastores.items():
        if name in RESERVED_NAMES or name.endswith("-exporter"):
            issues.add(("datastores", name), f"the name {name!r} is taken by msgen for its own containers")
        if datastore.host is not None and datastore.host not in hosts:
            issues.unknown(("datastores", name, "host"), "host", datastore.host, hosts)


def _check_mounts(blueprint: Blueprint, issues: _Issues) -> None:
    """A path in a service's container holds one volume or one file."""
    for name, service in blueprint.services.items():
        mounts = [(("volumes", key), volume.path) for key, volume in service.volumes.items()]
        mounts += [(("files", index), file.path) for index, file in enumerate(service.files)]
        first: dict[str, tuple] = {}
        for where, path in mounts:
            if path in first:
                issues.add(("services", name, *where, "path"), f"{path} is mounted twice", f"{format_path(('services', name, *first[path]))} mounts it already")
            first.setdefault(path, where)


def _check_volume_names(blueprint: Blueprint, issues: _Issues) -> None:
    """A persistent volume's names, compose's named volume <service>-<volume> and the
    Kubernetes claims' <volume>-<service>-<ordinal>, belong to no other volume: two would share
    (or fight over) one disk."""
    compose: dict[str, str] = {}
    claims: dict[str, str] = {}
    for store in blueprint.datastores:
        compose[f"{store}-data"] = compose[f"{store}-backup"] = f"a volume of datastore {store}"
        claims[f"data-{store}"] = f"the data claim of datastore {store}"
    for name in sorted(blueprint.services):
        for key, volume in blueprint.services[name].volumes.items():
            if not volume.persistent:
                continue
            for taken, made, what in ((compose, f"{name}-{key}", "compose volume"), (claims, f"{key}-{name}", "Kubernetes claim prefix")):
                if made in taken:
                    issues.add(("services", name, "volumes", key), f"its {what} {made} is also {taken[made]}", "rename the volume")
                taken.setdefault(made, f"volume {key} of service {name}")


def _check_rtts(blueprint: Blueprint, issues: _Issues) -> None:
    first: dict[tuple[str, str], str] = {}
    for pair in blueprint.rtt_ms:
        for region in dict.fromkeys(pair.split("/")):
            if region not in blueprint.regions:
                issues.unknown(("rtt_ms", pair), "region", region, blueprint.regions)
        # `a/b` and `b/a` are one round trip: two values would leave msgen to pick one
        key = rtt_key(*pair.split("/"))
        if key in first:
            issues.add(
                ("rtt_ms", pair),
                f"{pair} is the same pair of regions as {first[key]}: a round-trip time is declared once per pair",
                f"keep one of {first[key]} and {pair}",
            )
        else:
            first[key] = pair


def _check_cycles(blueprint: Blueprint, issues: _Issues) -> None:
    """Calls must form a directed acyclic graph: the first cycle found is reported at the call that closes it."""
    callees = {name: blueprint.services[name].calls for name in sorted(blueprint.services)}
    try:
        TopologicalSorter(callees).prepare()
    except CycleError as error:
        # graphlib lists each node before the nodes that depend on it: callee before caller
        cycle = list(reversed(error.args[1]))
        caller, callee = cycle[-2], cycle[-1]
        issues.add(
            ("services", caller, "calls", blueprint.services[caller].calls.index(callee)),
            f"call cycle: {' -> '.join(cycle)}",
            "synchronous calls must form a directed acyclic graph",
        )


def service_region(blueprint: Blueprint, name: str) -> str | None:
    region = blueprint.services[name].region
    if region is None and len(blueprint.regions) == 1:
        return next(iter(blueprint.regions))
    return region


def gateway_regions(blueprint: Blueprint) -> tuple[str, ...]:
    """Where the gateway runs: the compose host's region (compose.host, else the first host),
    and with Kubernetes every node's."""
    regions: set[str] = set()
    if blueprint.compose is not None and blueprint.hosts:
        name = blueprint.compose.host or blueprint.hosts[0].name
        regions.update(host.region for host in blueprint.hosts if host.name == name)
    if blueprint.kubernetes is not None:
        regions.update(host.region for host in blueprint.hosts)
    return tuple(sorted(regions))


def datastore_region(blueprint: Blueprint, name: str, owner: str | None) -> str | None:
    """A datastore stands in its host's region, else its owner's."""
    host = blueprint.datastores[name].host
    if host is not None:
        return next((candidate.region for candidate in blueprint.hosts if candidate.name == host), None)
    return service_region(blueprint, owner) if owner else None


def _check_crossings(blueprint: Blueprint, issues: _Issues) -> None:
    """Every leg the latency analysis counts that crosses regions needs a declared round trip:
    calls, a service's queries to its datastore, the gateway's hop and the clients' leg."""
    rtts = declared_rtts(blueprint)

    def need(at: KeyPath, what: str, origin: str | None, target: str | None) -> None:
        if origin and target and origin != target and rtt_key(origin, target) not in rtts:
            issues.add(at, f"{what} crosses {origin}/{target}, whose round-trip time is not declared", f"add `{origin}/{target}: <ms>` under rtt_ms")

    gateway = gateway_regions(blueprint)
    default_clients = blueprint.gateway.clients_region if blueprint.gateway else None
    for name, service in blueprint.services.items():
        origin = service_region(blueprint, name)
        for index, callee in enumerate(service.calls):
            need(("services", name, "calls", index), f"the call {name} -> {callee}", origin, service_region(blueprint, callee))
        if service.datastore is not None:
            where = datastore_region(blueprint, service.datastore, name)
            need(("services", name, "datastore"), f"{name}'s queries to {service.datastore}", origin, where)
        if service.route is None:
            continue
        clients = service.route.clients_region or default_clients
        at = ("services", name, "route", "clients_region") if service.route.clients_region else ("gateway", "clients_region")
        for region in gateway:
            need(("services", name, "route"), f"the gateway's hop to {name}", region, origin)
            need(at, f"the clients' leg to the gateway for {name}", clients, region)


def _check_image_keys(blueprint: Blueprint, issues: _Issues) -> None:
    for key in sorted(blueprint.images.overrides):
        if key not in IMAGES:
            issues.unknown(("images", "overrides", key), "image key", key, IMAGES)
