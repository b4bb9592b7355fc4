"""The compose networks: the call graph as Docker networks, each with its own small subnet.

A Docker network lets every container on it reach every other, in both directions, so the
only exact way to say "A may reach B and nothing else" is a network for the pair. Each
container therefore joins one network per peer it talks to: a caller and its callee
(`call_<caller>_<callee>`), the gateway and a routed service (`edge_<service>`), a datastore
and its owner (`data_<datastore>`), its exporter (`export_<datastore>`) or its backup
(`backup_<datastore>`), Prometheus and
what it scrapes (`scrape_<name>`); the monitoring containers share `monitoring`. Every one
of these is `internal` (no route out of the host). Only the gateway (published ports, ACME),
Alertmanager (its receivers) and the services that declare `egress` get a network with a route out, one each
(`egress_<name>`), so that two of them never share it. A container that talks to nobody
runs with no network at all.

Docker's default address pools hold about 30 bridge networks per host, so every network
gets an explicit subnet from `compose.subnet_pool`, as small as its containers allow. A
network's place in the pool follows from a hash of its name, so that adding a service moves
no other network (Docker cannot change a network's subnet without recreating it).
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from msgen.model.blueprint import Blueprint

MONITORING = "monitoring"
GATEWAY = "gateway"
# Docker takes a subnet's network address, its broadcast address and the gateway address
RESERVED_ADDRESSES = 3
SMALLEST_PREFIX = 29  # 8 addresses: 5 containers


def call_network(caller: str, callee: str) -> str:
    return f"call_{caller}_{callee}"  # `_` is in no name, so no two pairs share a network name


def edge_network(service: str) -> str:
    return f"edge_{service}"


def data_network(datastore: str) -> str:
    return f"data_{datastore}"


def export_network(datastore: str) -> str:
    return f"export_{datastore}"


def scrape_network(target: str) -> str:
    return f"scrape_{target}"


def backup_network(datastore: str) -> str:
    return f"backup_{datastore}"


def egress_network(container: str) -> str:
    return f"egress_{container}"


@dataclass(frozen=True)
class Network:
    name: str
    members: tuple[str, ...]  # compose service names, sorted
    internal: bool  # no route out of the host
    addresses: int  # the containers on it (replicas counted) plus Docker's reserved addresses
    subnet: str | None  # None: it did not fit the pool (an error finding)


@dataclass(frozen=True)
class NetworkPlan:
    pool: str
    networks: tuple[Network, ...]  # sorted by name
    joined: dict[str, tuple[str, ...]]  # container -> its networks, sorted (empty: no network)

    @property
    def unplaced(self) -> tuple[Network, ...]:
        return tuple(network for network in self.networks if network.subnet is None)


def plan_networks(blueprint: Blueprint, services, datastores, gateway, observability) -> NetworkPlan | None:
    """Which containers share which network, and each network's subnet; None without compose."""
    if blueprint.compose is None:
        return None
    sizes = _container_sizes(services, datastores, gateway, observability)
    members: dict[str, set[str]] = {}
    internal: dict[str, bool] = {}

    def connect(name: str, *containers: str, routed_out: bool = False) -> None:
        members.setdefault(name, set()).update(containers)
        internal[name] = not routed_out

    prometheus = observability is not None and observability.prometheus
    for service in services:
        for callee in service.calls:
            connect(call_network(service.name, callee), service.name, callee)
        if gateway is not None and gateway.route(service.name) is not None:
            connect(edge_network(service.name), GATEWAY, service.name)
        if prometheus and service.metrics_port is not None:
            connect(scrape_network(service.name), "prometheus", service.name)
        if service.service.egress:
            connect(egress_network(service.name), service.name, routed_out=True)
    for store in datastores:
        connect(data_network(store.name), store.name, *([store.owner] if store.owner is not None else []))
        if store.backup is not None:
            connect(backup_network(store.name), store.name, store.backup.container)
    if gateway is not None:
        connect(egress_network(GATEWAY), GATEWAY, routed_out=True)
        if prometheus:
            connect(scrape_network(GATEWAY), "prometheus", GATEWAY)
    if observability is not None:
        for exporter in observability.exporters if prometheus else ():
            connect(export_network(exporter.datastore), exporter.datastore, exporter.name)
            connect(scrape_network(exporter.name), "prometheus", exporter.name)
        for agent in observability.host_agents:
            connect(scrape_network(agent), "prometheus", agent)
        if observability.monitors:
            connect(MONITORING, *observability.monitors)
        if observability.alerting is not None:
            # the receivers (webhooks, SMTP relays, Slack) are outside the host
            connect(egress_network("alertmanager"), "alertmanager", routed_out=True)
    addresses = {name: sum(sizes[member] for member in group) + RESERVED_ADDRESSES for name, group in members.items()}
    subnets = allocate(blueprint.compose.subnet_pool, addresses)
    networks = tuple(
        Network(name, tuple(sorted(members[name])), internal[name], addresses[name], subnets.get(name)) for name in sorted(members)
    )
    joined: dict[str, list[str]] = {container: [] for container in sizes}
    for network in networks:
        for member in network.members:
            joined[member].append(network.name)
    return NetworkPlan(blueprint.compose.subnet_pool, networks, {name: tuple(sorted(nets)) for name, nets in sorted(joined.items())})


def _container_sizes(services, datastores, gateway, observability) -> dict[str, int]:
    """Compose service name -> how many containers it runs."""
    sizes = {service.name: service.replicas for service in services}
    sizes.update((store.name, 1) for store in datastores)
    sizes.update((store.backup.container, 1) for store in datastores if store.backup is not None)
    if gateway is not None:
        sizes[GATEWAY] = 1
    if observability is not None:
        sizes.update((name, 1) for name in (*observability.monitors, *observability.host_agents))
        if observability.prometheus:
            sizes.update((exporter.name, 1) for exporter in observability.exporters)
    return sizes


def prefix_for(addresses: int) -> int:
    """The longest prefix whose subnet holds `addresses`, and never longer than /29."""
    return min(SMALLEST_PREFIX, 32 - max(addresses - 1, 1).bit_length())


def allocate(pool: str, addresses: dict[str, int]) -> dict[str, str]:
    """A subnet for each network that fits the pool, disjoint, aligned to its size.

    Larger networks are placed first; each starts at the block its name's hash points to and
    takes the next free one from there, so a network keeps its subnet when others come and go
    (unless two collide, which the pool's spare room makes rare).
    """
    block = ipaddress.IPv4Network(pool)
    unit = 2 ** (32 - SMALLEST_PREFIX)
    units = max(block.num_addresses // unit, 0)
    used = bytearray(units)
    free = units
    placed: dict[str, str] = {}
    prefixes = {name: prefix_for(count) for name, count in addresses.items()}
    for name in sorted(addresses, key=lambda network: (prefixes[network], network)):
        span = 2 ** (32 - prefixes[name]) // unit  # in /29 units, a power of two
        slots = units // span
        # larger blocks go first and every block is aligned to its size, so whenever `span`
        # units are free, an aligned free block of that size exists: the probe finds it
        if free < span:
            continue
        free -= span
        start = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % slots
        for step in range(slots):
            first = ((start + step) % slots) * span
            if not any(used[first : first + span]):
                used[first : first + span] = b"\x01" * span
                placed[name] = f"{_dotted(int(block.network_address) + first * unit)}/{32 - (span * unit).bit_length() + 1}"
                break
    return placed


def _dotted(address: int) -> str:
    return ".".join(str((address >> shift) & 255) for shift in (24, 16, 8, 0))
