"""Findings about the compose stack as it will be deployed.

They read the compose services as built, so the monitoring containers merged from the
observability target are held to the same rules. Only what
msgen can render is checked; the user reaches it through `health.command`, `gateway.provider`
and `resources`. Privileged mode, host namespaces, devices and host system paths are never
written, but for the read-only views node-exporter and cadvisor need (their documented
mounts, msgen/targets/observability.py): compose-host-access holds every container to that.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator

from msgen.contract import COMPOSE_FILE
from msgen.findings import Finding, finding
from msgen.plan import gateway as gw
from msgen.plan.networks import prefix_for
from msgen.targets import Built, compose, observability

# host paths that open the host to a container: its kernel interfaces, devices, runtime sockets,
# the container engine's state and its configuration ("/" itself holds them all)
HOST_SYSTEM_PATHS = ("/proc", "/sys", "/dev", "/run", "/var/run", "/var/lib/docker", "/etc", "/boot", "/root")
HOST_NAMESPACE_KEYS = ("pid", "ipc", "network_mode", "uts", "userns_mode", "cgroup")

DISABLED_HEALTH = "NONE"


def check(context) -> Iterable[Finding]:
    if compose.applies(context.plan):
        yield from check_reservations(context.plan)
        yield from check_subnet_pool(context.plan)
        yield from check_shared_volumes(context.plan)


def check_shared_volumes(plan) -> Iterator[Finding]:
    """Compose gives a service's replicas one named volume: every replica writes the same files."""
    for service in plan.services:
        if service.replicas < 2:
            continue
        for volume in plan.mounts[service.name].persistent:
            yield finding(
                "compose-volume-shared",
                "warning",
                ("services", service.name, "volumes", volume.name),
                f"compose runs {service.replicas} replicas of {service.name} on one host, and they all mount the one named "
                f"volume {volume.compose_volume} at {volume.path}: unless the application coordinates its writes (file "
                "locks, one writer), they overwrite each other's files (on Kubernetes each replica has its own claim)",
                "run one replica in compose (an environment overlay can set replicas: 1), make the volume persistent: false "
                "if it holds nothing to keep, or suppress this when the application shares the folder safely",
            )


def check_subnet_pool(plan) -> Iterator[Finding]:
    unplaced = plan.networks.unplaced
    if unplaced:
        needed = sum(2 ** (32 - prefix_for(network.addresses)) for network in plan.networks.networks)
        yield finding(
            "compose-subnet-pool",
            "error",
            ("compose",),
            f"{len(unplaced)} of the stack's {len(plan.networks.networks)} networks find no room in compose.subnet_pool "
            f"{plan.networks.pool} (they need about {needed:,} addresses, the pool holds "
            f"{ipaddress.IPv4Network(plan.networks.pool).num_addresses:,}); the first is {unplaced[0].name}",
            "give compose.subnet_pool a larger block (a /16 holds 8,192 of the smallest subnets)",
        )


class Inspector:
    """Reads the compose file's containers as the file is built."""

    def __init__(self, plan) -> None:
        self.plan = plan
        self.found: list[Finding] = []

    def read(self, built: Built) -> None:
        if built.path != COMPOSE_FILE:
            return
        origins = container_origins(self.plan)
        for name, entry in built.document()["services"].items():
            if name == compose.GATEWAY:
                self.found.extend(check_docker_socket(entry))
            at = origins.get(name, ("observability",))
            self.found.extend(check_healthcheck(self.plan, name, entry, at))
            self.found.extend(check_limits(name, entry, at))
            self.found.extend(check_ports(name, entry, at))
            self.found.extend(check_host_access(name, entry, at))

    def findings(self) -> list[Finding]:
        return self.found


def inspector(context) -> Inspector | None:
    return Inspector(context.plan) if compose.applies(context.plan) else None


def container_origins(plan) -> dict[str, tuple]:
    """The blueprint element each container comes from; msgen's monitoring containers are absent."""
    origins: dict[str, tuple] = {compose.GATEWAY: ("gateway",)}
    origins.update((service.name, ("services", service.name)) for service in plan.services)
    origins.update((store.name, ("datastores", store.name)) for store in plan.datastores)
    origins.update((store.backup.container, ("datastores", store.name, "backup")) for store in plan.datastores if store.backup is not None)
    return origins


def check_docker_socket(gateway: dict) -> Iterator[Finding]:
    if any(str(volume).split(":")[0] == gw.DOCKER_SOCKET for volume in gateway.get("volumes") or []):
        yield finding(
            "compose-docker-socket",
            "warning",
            ("gateway", "provider"),
            "gateway.provider docker mounts the docker socket into Traefik: read-only stops file writes, "
            "not API calls, so whoever takes over the gateway controls the host",
            "prefer provider: file (the default), which needs no socket",
        )


def check_healthcheck(plan, name: str, entry: dict, at: tuple) -> Iterator[Finding]:
    health = entry.get("healthcheck") or {}
    test = health.get("test") or []
    if health and not health.get("disable") and test[:1] != [DISABLED_HEALTH]:
        return
    where = (*at, "health", "command") if at[0] == "services" else at
    yield finding(
        "compose-no-healthcheck",
        "warning",
        where,
        f"container {name} has no healthcheck: compose cannot tell a hung process from a working one, "
        "and `restart: unless-stopped` only acts when it exits",
        'give health.command a check that works in the image, e.g. ["CMD", "/app/healthcheck"]',
    )


def check_limits(name: str, entry: dict, at: tuple) -> Iterator[Finding]:
    limits = ((entry.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    missing = [field for field in ("cpus", "memory") if field not in limits]
    if missing:
        yield finding(
            "compose-no-limits",
            "error",
            at,
            f"container {name} has no {' or '.join(missing)} limit: one runaway process can starve the host",
            "every container msgen writes is sized; report this as a bug in msgen",
        )


def check_ports(name: str, entry: dict, at: tuple) -> Iterator[Finding]:
    if name != compose.GATEWAY and entry.get("ports"):
        yield finding(
            "compose-published-port",
            "error",
            at,
            f"container {name} publishes ports {', '.join(map(str, entry['ports']))}: only the gateway faces the network",
            "route the service through the gateway (route:) instead",
        )


def check_reservations(plan) -> Iterator[Finding]:
    """Docker refuses to create a container whose memory reservation exceeds its limit."""
    for service in plan.services:
        requests, limits = service.requests, service.limits
        if requests.memory.bytes > limits.memory.bytes:
            yield finding(
                "compose-reservation-over-limit",
                "error",
                ("services", service.name, "resources"),
                f"{service.name} requests {requests.memory.text} of memory but is limited to {limits.memory.text}: "
                "Docker refuses to create the container",
                "raise resources.limits.memory or lower resources.requests.memory",
            )
        if requests.cpu.millicores > limits.cpu.millicores:
            yield finding(
                "compose-reservation-over-limit",
                "warning",
                ("services", service.name, "resources"),
                f"{service.name} reserves {requests.cpu.text} CPU but is capped at {limits.cpu.text}: "
                "the host's capacity is counted for CPU it can never use",
                "raise resources.limits.cpu or lower resources.requests.cpu",
            )


def allowed_host_access(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(volumes, devices) of the host that container `name` may have, exactly as msgen writes them."""
    volumes = dict(observability.HOST_AGENT_MOUNTS)
    volumes["alloy"] = (observability.ALLOY_LOGS_MOUNT,)
    volumes[compose.GATEWAY] = (f"{gw.DOCKER_SOCKET}:{gw.DOCKER_SOCKET}:ro",)  # compose-docker-socket warns of it
    return volumes.get(name, ()), observability.HOST_AGENT_DEVICES.get(name, ())


def _bind_source(volume) -> str | None:
    """The host path of a bind mount (short or long syntax); None for a named volume."""
    source = volume.get("source", "") if isinstance(volume, dict) else str(volume).split(":")[0]
    return source if source.startswith("/") else None


def _is_system_path(path: str) -> bool:
    path = path.rstrip("/") or "/"
    return path == "/" or any(path == root or path.startswith(root + "/") for root in HOST_SYSTEM_PATHS)


def check_host_access(name: str, entry: dict, at: tuple) -> Iterator[Finding]:
    volumes, devices = allowed_host_access(name)
    reasons = ["privileged mode"] if entry.get("privileged") else []
    reasons += [f"{key}: host" for key in HOST_NAMESPACE_KEYS if entry.get(key) == "host"]
    reasons += [f"device {device}" for device in entry.get("devices") or [] if device not in devices]
    for volume in entry.get("volumes") or []:
        source = _bind_source(volume)
        if source is not None and _is_system_path(source) and volume not in volumes:
            reasons.append(f"host path {source}")
    if reasons:
        yield finding(
            "compose-host-access",
            "error",
            at,
            f"container {name} gets {', '.join(reasons)}: a way out of the container onto the host",
            "give backup.path a directory outside the host's system paths; any other host access is a bug in msgen to "
            "report (only node-exporter and cadvisor read the host, through the read-only mounts they document)",
        )
