"""Capacity: do the compose host and the Kubernetes nodes hold what is placed on them (TUNING.md)?

The numbers come from what msgen writes, not from a second model of it: the compose file's
`deploy` entries (every container, replicas included) and the Kubernetes workloads' pod
templates plus the Traefik chart's values. A container added by any target is counted
without this module knowing about it.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from msgen.units import GI, KI, MI

OS_RESERVE_SHARE = 0.10  # TUNING.md: a reserve for the OS, 10% ...
OS_RESERVE_MIN = 512 * MI  # ... and at least 512Mi
EVICTION_RESERVE = 100 * MI  # the kubelet's default hard eviction threshold (memory.available<100Mi)
KUBE_CPU_RESERVE_M = 100  # per node for the kubelet and the container runtime (kube-reserved)
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")

_COMPOSE_MEMORY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([bkmg]?)b?$", re.IGNORECASE)
_COMPOSE_FACTOR = {"": 1, "b": 1, "k": KI, "m": MI, "g": GI}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?$")
_QUANTITY_FACTOR = {
    None: 1, "Ki": KI, "Mi": MI, "Gi": GI, "Ti": 1024**4, "Pi": 1024**5, "Ei": 1024**6,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "m": 0.001,
}  # fmt: skip


@dataclass(frozen=True)
class Load:
    """One container (compose) or pod (Kubernetes) times its replicas."""

    name: str
    replicas: int
    memory: int  # bytes per replica: the limit on compose, the request on Kubernetes
    cpu_reserved_m: int  # per replica: compose reservation / Kubernetes request
    cpu_limit_m: int  # per replica; 0 when uncapped


@dataclass(frozen=True)
class HostCapacity:
    """What a host (or the Kubernetes nodes together) offers, and what is placed on it."""

    scope: str  # compose | kubernetes
    where: str  # the compose host's name, or the nodes' names
    vcpu_m: int
    memory: int
    reserve_memory: int  # for the OS (and on Kubernetes the kubelet's eviction threshold)
    reserve_cpu_m: int
    largest_node_memory: int  # allocatable of the biggest node: no pod larger than it can schedule
    largest_node_cpu_m: int
    loads: tuple[Load, ...]
    unsized: tuple[str, ...]  # containers without a memory limit: counted as 0, reported

    @property
    def usable_memory(self) -> int:
        return self.memory - self.reserve_memory

    @property
    def usable_cpu_m(self) -> int:
        return self.vcpu_m - self.reserve_cpu_m

    @property
    def memory_used(self) -> int:
        return sum(load.memory * load.replicas for load in self.loads)

    @property
    def cpu_reserved_m(self) -> int:
        return sum(load.cpu_reserved_m * load.replicas for load in self.loads)

    @property
    def cpu_limits_m(self) -> int:
        return sum(load.cpu_limit_m * load.replicas for load in self.loads)

    @property
    def memory_headroom(self) -> int:
        return self.usable_memory - self.memory_used


@dataclass(frozen=True)
class CapacityPlan:
    compose: HostCapacity | None  # None without compose or without a declared host
    kubernetes: HostCapacity | None  # None without kubernetes or without hosts
    zones: dict[str, tuple[str, ...]]  # zone -> its hosts, when hosts declare zones


def os_reserve(memory: int) -> int:
    """The memory a host keeps for its OS: 10% of it, at least 512Mi."""
    return max(round(memory * OS_RESERVE_SHARE), OS_RESERVE_MIN)


def compose_memory_bytes(value: object) -> int | None:
    """A compose memory amount (`256m`, `4g`, `1073741824`) in bytes; None if unreadable."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _COMPOSE_MEMORY.match(str(value).strip())
    if not match:
        return None
    return round(float(match.group(1)) * _COMPOSE_FACTOR[match.group(2).lower()])


def compose_cpu_m(value: object) -> int:
    """Compose `cpus` (`0.25`, `2`) in millicores; 0 if absent or unreadable."""
    try:
        return round(float(str(value)) * 1000)
    except ValueError:
        return 0


def quantity(value: object) -> float:
    """A Kubernetes quantity (`250m`, `0.5`, `256Mi`, `1G`) as a number of base units; 0 if unreadable."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = _QUANTITY.match(str(value).strip())
    if not match:
        return 0.0
    return float(match.group(1)) * _QUANTITY_FACTOR[match.group(2)]


def plan_capacity(plan) -> CapacityPlan:
    """Capacity of the compose host and the Kubernetes nodes (reads the rendered documents)."""
    blueprint = plan.blueprint
    zones: dict[str, list[str]] = {}
    for host in blueprint.hosts:
        if host.zone is not None:
            zones.setdefault(host.zone, []).append(host.name)
    return CapacityPlan(
        compose=compose_capacity(plan),
        kubernetes=kubernetes_capacity(plan),
        zones={zone: tuple(sorted(names)) for zone, names in sorted(zones.items())},
    )


def compose_capacity(plan) -> HostCapacity | None:
    host = plan.compose_host
    if host is None:
        return None
    from msgen.targets.compose import compose_entries

    loads, unsized = [], []
    for name, entry in compose_entries(plan):
        deploy = entry.get("deploy") or {}
        resources = deploy.get("resources") or {}
        limits, reservations = resources.get("limits") or {}, resources.get("reservations") or {}
        memory = compose_memory_bytes(limits["memory"]) if "memory" in limits else None
        if memory is None:
            unsized.append(name)
        loads.append(
            Load(
                name,
                int(deploy.get("replicas", 1)),
                memory or 0,
                compose_cpu_m(reservations.get("cpus", 0)),
                compose_cpu_m(limits.get("cpus", 0)),
            )
        )
    reserve = os_reserve(host.memory.bytes)
    return HostCapacity(
        scope="compose",
        where=host.name,
        vcpu_m=host.vcpu * 1000,
        memory=host.memory.bytes,
        reserve_memory=reserve,
        reserve_cpu_m=0,
        largest_node_memory=host.memory.bytes - reserve,
        largest_node_cpu_m=host.vcpu * 1000,
        loads=tuple(loads),
        unsized=tuple(unsized),
    )


def node_allocatable(memory: int, vcpu: int) -> tuple[int, int]:
    """(memory bytes, millicores) a node offers to pods: capacity minus the OS, kubelet and eviction reserves."""
    return memory - os_reserve(memory) - EVICTION_RESERVE, vcpu * 1000 - KUBE_CPU_RESERVE_M


def kubernetes_capacity(plan) -> HostCapacity | None:
    blueprint = plan.blueprint
    if plan.kubernetes is None or not blueprint.hosts:
        return None
    hosts = sorted(blueprint.hosts, key=lambda host: host.name)
    allocatable = [node_allocatable(host.memory.bytes, host.vcpu) for host in hosts]
    memory = sum(host.memory.bytes for host in hosts)
    vcpu_m = sum(host.vcpu * 1000 for host in hosts)
    return HostCapacity(
        scope="kubernetes",
        where=", ".join(host.name for host in hosts),
        vcpu_m=vcpu_m,
        memory=memory,
        reserve_memory=memory - sum(mem for mem, _ in allocatable),
        reserve_cpu_m=vcpu_m - sum(cpu for _, cpu in allocatable),
        largest_node_memory=max(mem for mem, _ in allocatable),
        largest_node_cpu_m=max(cpu for _, cpu in allocatable),
        loads=tuple(sorted(kubernetes_loads(plan, len(hosts)), key=lambda load: load.name)),
        unsized=(),
    )


def kubernetes_loads(plan, nodes: int) -> list[Load]:
    """Every pod template msgen writes for the cluster, with its replicas and summed requests."""
    from msgen.targets import all_documents
    from msgen.targets import kubernetes as target

    # built one at a time and dropped: on a large platform they are not kept (Plan.keeps_built)
    documents = itertools.chain(
        target.workload_documents(plan),
        (document for artifact in _observability_artifacts(plan) if target.is_manifest(artifact) for document in all_documents(artifact)),
    )
    loads = [
        _workload_load(document, nodes) for document in documents if isinstance(document, dict) and document.get("kind") in WORKLOAD_KINDS
    ]
    gateway = _gateway_load(plan)
    return [load for load in loads if load is not None] + ([gateway] if gateway else [])


def _observability_artifacts(plan) -> list:
    """The monitoring objects for the cluster. The gateway's own files are IngressRoutes,
    Middlewares and the chart's values: its pods are counted from those values instead."""
    if plan.observability is None:
        return []
    from msgen.targets import observability

    return list(observability.kubernetes_artifacts(plan))


def _workload_load(document: dict, nodes: int) -> Load | None:
    spec = document.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    replicas = nodes if document.get("kind") == "DaemonSet" else int(spec.get("replicas", 1))
    name = f"{document['kind'].lower()}/{(document.get('metadata') or {}).get('name', '?')}"
    return _pod_load(name, replicas, pod.get("containers") or [])


def _pod_load(name: str, replicas: int, containers: list[dict]) -> Load:
    memory = cpu = cpu_limit = 0.0
    for container in containers:
        resources = container.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        memory += quantity(requests.get("memory", limits.get("memory", 0)))
        cpu += quantity(requests.get("cpu", limits.get("cpu", 0)))
        cpu_limit += quantity(limits.get("cpu", 0))
    return Load(name, replicas, round(memory), round(cpu * 1000), round(cpu_limit * 1000))


def _gateway_load(plan) -> Load | None:
    """Traefik runs from its Helm chart on the same nodes: count the values msgen gives the chart."""
    if plan.gateway is None:
        return None
    from msgen.targets.traefik import helm_values

    values = helm_values(plan)
    replicas = int((values.get("deployment") or {}).get("replicas", 1))
    return _pod_load("deployment/traefik", replicas, [{"resources": values.get("resources") or {}}])


def capacity_table(capacity: CapacityPlan) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """(columns, rows) for `msgen plan`: per host (or the nodes together), what is placed and what is left."""
    from msgen.units import format_millicores, human_bytes

    columns = ("scope", "hosts", "memory placed / usable", "memory headroom", "reserve", "CPU reserved / usable", "CPU limits / vCPUs")
    rows = []
    for host in (capacity.compose, capacity.kubernetes):
        if host is None:
            continue
        placed = "memory limits" if host.scope == "compose" else "memory requests"
        rows.append(
            (
                host.scope,
                host.where,
                f"{human_bytes(host.memory_used)} / {human_bytes(host.usable_memory)} ({placed})",
                human_bytes(host.memory_headroom),
                f"{human_bytes(host.reserve_memory)} memory, {format_millicores(host.reserve_cpu_m)} CPU"
                if host.reserve_cpu_m
                else f"{human_bytes(host.reserve_memory)} memory (OS: 10%, >= 512Mi)",
                f"{format_millicores(host.cpu_reserved_m)} / {format_millicores(host.usable_cpu_m)}",
                f"{format_millicores(host.cpu_limits_m)} / {format_millicores(host.vcpu_m)}",
            )
        )
    return columns, tuple(rows)
