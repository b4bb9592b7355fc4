"""Capacity: do the compose host and the Kubernetes nodes hold what is placed on them?

The numbers come from the objects msgen deploys, not from a second model of them: the
compose file's `deploy` entries (every container, replicas included), the Kubernetes
workloads' pod templates, and the Traefik chart's values. A container added by any target is
counted without this module knowing about it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from msgen.contract import COMPOSE_FILE, POD_TEMPLATE_KINDS, RUN_KINDS
from msgen.findings import Finding, finding
from msgen.plan.disk import Volume, compose_volumes
from msgen.plan.kubernetes import HOSTNAME_KEY, NAME_LABEL
from msgen.targets import Built
from msgen.targets import kubernetes as kubernetes_target
from msgen.targets.traefik import HELM_VALUES
from msgen.units import GI, MI, compose_cpu_m, compose_memory_bytes, format_millicores, human_bytes, quantity

OS_RESERVE_SHARE = 0.10  # a reserve for the OS, 10% ...
OS_RESERVE_MIN = 512 * MI  # ... and at least 512Mi
EVICTION_RESERVE = 100 * MI  # the kubelet's default hard eviction threshold (memory.available<100Mi)
DISK_RESERVE_MIN = 10 * GI
KUBE_CPU_RESERVE_M = 100  # per node for the kubelet and the container runtime (kube-reserved)



@dataclass(frozen=True)
class Load:
    """One container (compose) or pod (Kubernetes) times its replicas."""

    name: str
    replicas: int
    memory: int  # bytes per replica: the limit on compose, the request on Kubernetes
    cpu_reserved_m: int  # per replica: compose reservation / Kubernetes request
    cpu_limit_m: int  # per replica; 0 when uncapped


class Placed:
    """What the loads placed somewhere add up to."""

    loads: tuple[Load, ...]

    @property
    def memory_used(self) -> int:
        return sum(load.memory * load.replicas for load in self.loads)

    @property
    def cpu_reserved_m(self) -> int:
        return sum(load.cpu_reserved_m * load.replicas for load in self.loads)


@dataclass(frozen=True)
class HostCapacity(Placed):
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
    disk: int | None = None  # declared disk (the nodes' together); None: not declared
    volumes: tuple[Volume, ...] = ()  # what is placed on it that grows: data, backups, monitoring

    @property
    def disk_used(self) -> int:
        return sum(volume.size for volume in self.volumes)

    @property
    def usable_disk(self) -> int:
        return (self.disk or 0) - disk_reserve(self.disk or 0)

    @property
    def usable_memory(self) -> int:
        return self.memory - self.reserve_memory

    @property
    def usable_cpu_m(self) -> int:
        return self.vcpu_m - self.reserve_cpu_m


    @property
    def cpu_limits_m(self) -> int:
        return sum(load.cpu_limit_m * load.replicas for load in self.loads)

    @property
    def memory_headroom(self) -> int:
        return self.usable_memory - self.memory_used


@dataclass(frozen=True)
class PinnedNode(Placed):
    """One node and the pods that may run nowhere else: a datastore with a declared host, and
    the pods required beside it (its backup's, when it mounts the datastore's log claim)."""

    node: str
    memory: int  # allocatable
    cpu_m: int
    loads: tuple[Load, ...]



@dataclass(frozen=True)
class Capacity:
    compose: HostCapacity | None  # None without compose or without a declared host
    kubernetes: HostCapacity | None  # None without kubernetes or without hosts
    pinned: tuple[PinnedNode, ...] = ()  # Kubernetes nodes that pods are pinned to, by name


def disk_reserve(disk: int) -> int:
    """The disk a host keeps for its OS, images and container logs: 10% of it, at least 10Gi."""
    return max(round(disk * OS_RESERVE_SHARE), DISK_RESERVE_MIN)


def os_reserve(memory: int) -> int:
    """The memory a host keeps for its OS: 10% of it, at least 512Mi."""
    return max(round(memory * OS_RESERVE_SHARE), OS_RESERVE_MIN)


class Inspector:
    """Counts what each compose container and each Kubernetes workload asks for, as its file is built."""

    def __init__(self, plan) -> None:
        self.plan = plan
        self.nodes = len(plan.blueprint.hosts)
        self.compose_loads: list[Load] = []
        self.unsized: list[str] = []
        self.kubernetes_loads: list[Load] = []
        self.claims: list[Volume] = []
        self.pinned: dict[str, list[Load]] = {}
        self.placed: list[tuple[dict, str]] = []  # (pod labels, node) of the pinned pods
        self.followers: list[tuple[dict, Load]] = []  # (the selector of the pods they must run beside, load)

    def read(self, built: Built) -> None:
        if built.path == COMPOSE_FILE:
            for name, entry in built.document()["services"].items():
                self._compose_container(name, entry)
        elif built.path == HELM_VALUES:
            values = built.document()
            deployment = values.get("deployment") or {}
            kind = deployment.get("kind", "Deployment")
            replicas = _replicas(kind, deployment.get("replicas", 1), self.nodes)
            self.kubernetes_loads.append(_pod_load(f"{kind.lower()}/traefik", replicas, [{"resources": values.get("resources") or {}}]))
        elif kubernetes_target.is_manifest(built.path):
            documents = [document for document in built.documents if isinstance(document, dict)]
            # an autoscaler's maximum is what the nodes must hold
            most = {
                (document["spec"]["scaleTargetRef"]["kind"], document["spec"]["scaleTargetRef"]["name"]): document["spec"]["maxReplicas"]
                for document in documents
                if document.get("kind") == "HorizontalPodAutoscaler"
            }
            self.claims.extend(_claims(documents, most))
            for document in documents:
                if document.get("kind") in POD_TEMPLATE_KINDS:
                    scaled = most.get((document["kind"], (document.get("metadata") or {}).get("name")))
                    load = _workload_load(document, self.nodes, scaled)
                    self.kubernetes_loads.append(load)
                    self._place(kubernetes_target.pod_template(document) or {}, load)

    def _place(self, template: dict, load: Load) -> None:
        """Note a pod pinned to one node by name, or required beside such pods."""
        pod = template.get("spec") or {}
        node = pinned_node(pod)
        if node is not None:
            self.pinned.setdefault(node, []).append(load)
            self.placed.append(((template.get("metadata") or {}).get("labels") or {}, node))
            return
        for term in ((pod.get("affinity") or {}).get("podAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or []:
            if term.get("topologyKey") == HOSTNAME_KEY:
                self.followers.append((term.get("labelSelector") or {}, load))

    def _compose_container(self, name: str, entry: dict) -> None:
        deploy = entry.get("deploy") or {}
        resources = deploy.get("resources") or {}
        limits, reservations = resources.get("limits") or {}, resources.get("reservations") or {}
        memory = compose_memory_bytes(limits["memory"]) if "memory" in limits else None
        if memory is None:
            self.unsized.append(name)
        replicas = int(deploy.get("replicas", 1))
        cpu_reserved, cpu_limit = compose_cpu_m(reservations.get("cpus", 0)), compose_cpu_m(limits.get("cpus", 0))
        self.compose_loads.append(Load(name, replicas, memory or 0, cpu_reserved, cpu_limit))

    def capacity(self) -> Capacity:
        return Capacity(compose=self._compose_capacity(), kubernetes=self._kubernetes_capacity(), pinned=self._pinned_nodes())

    def _pinned_nodes(self) -> tuple[PinnedNode, ...]:
        if self.plan.kubernetes is None:
            return ()
        pinned = {node: list(loads) for node, loads in self.pinned.items()}
        # msgen's selectors name the workload: look the pinned pods up by that label, not one by one
        by_name: dict[str | None, list[tuple[dict, str]]] = {}
        for labels, node in self.placed:
            by_name.setdefault(labels.get(NAME_LABEL), []).append((labels, node))
        for selector, load in self.followers:
            wanted = selector.get("matchLabels") or {}
            candidates = by_name.get(wanted.get(NAME_LABEL), []) if wanted else []
            node = next((node for labels, node in candidates if all(labels.get(k) == v for k, v in wanted.items())), None)
            if node is not None:
                pinned[node].append(load)
        hosts = {host.name: host for host in self.plan.blueprint.hosts}
        nodes = []
        for node in sorted(pinned):
            if node in hosts:
                memory, cpu = node_allocatable(hosts[node].memory.bytes, hosts[node].vcpu)
                nodes.append(PinnedNode(node, memory, cpu, tuple(sorted(pinned[node], key=lambda load: load.name))))
        return tuple(nodes)

    def _compose_capacity(self) -> HostCapacity | None:
        host = self.plan.compose_host
        if host is None:
            return None
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
            loads=tuple(self.compose_loads),
            unsized=tuple(self.unsized),
            disk=host.disk.bytes if host.disk else None,
            volumes=compose_volumes(self.plan),
        )

    def _kubernetes_capacity(self) -> HostCapacity | None:
        blueprint = self.plan.blueprint
        if self.plan.kubernetes is None or not blueprint.hosts:
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
            loads=tuple(sorted(self.kubernetes_loads, key=lambda load: load.name)),
            unsized=(),
            # the nodes as one pool, when every node declares its disk
            disk=sum(host.disk.bytes for host in hosts) if all(host.disk for host in hosts) else None,
            volumes=tuple(sorted(self.claims, key=lambda volume: volume.name)),
        )

    def findings(self) -> Iterator[Finding]:
        return capacity_findings(self.plan, self.capacity())


def inspector(context) -> Inspector:
    return Inspector(context.plan)


def check(context) -> Iterator[Finding]:
    return iter(())


def pinned_node(pod: dict) -> str | None:
    """The one node a pod's required node affinity names by hostname, if it names exactly one."""
    required = ((pod.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    terms = required.get("nodeSelectorTerms") or []
    if len(terms) != 1:
        return None
    for expression in terms[0].get("matchExpressions") or []:
        if expression.get("key") == HOSTNAME_KEY and expression.get("operator") == "In" and len(expression.get("values") or []) == 1:
            return expression["values"][0]
    return None


def node_allocatable(memory: int, vcpu: int) -> tuple[int, int]:
    """(memory bytes, millicores) a node offers to pods: capacity minus the OS, kubelet and eviction reserves."""
    return memory - os_reserve(memory) - EVICTION_RESERVE, vcpu * 1000 - KUBE_CPU_RESERVE_M


def _workload_load(document: dict, nodes: int, scaled: int | None = None) -> Load | None:
    """A workload's pods. A CronJob counts as one pod for as long as it exists, although its
    pods live only while a run lasts: with concurrencyPolicy Forbid it runs one at a time, and
    the nodes must hold it whenever it is due (every datastore's backup may be due at once, and
    a pod that finds no room stays Pending: a missed backup)."""
    spec = document.get("spec") or {}
    pod = (kubernetes_target.pod_template(document) or {}).get("spec") or {}
    declared = 1 if document.get("kind") in RUN_KINDS else spec.get("replicas", 1)
    replicas = _replicas(document.get("kind"), scaled or declared, nodes)
    name = f"{document['kind'].lower()}/{(document.get('metadata') or {}).get('name', '?')}"
    return _pod_load(name, replicas, pod.get("containers") or [])


def _claims(documents: list[dict], most: dict[tuple[str, str], int]) -> list[Volume]:
    """The storage the manifests claim: PersistentVolumeClaims, and each StatefulSet replica's
    claim templates (an autoscaled one's at its maximum: each replica keeps its claims)."""
    claims = []
    for document in documents:
        name = (document.get("metadata") or {}).get("name", "?")
        spec = document.get("spec") or {}
        if document.get("kind") == "PersistentVolumeClaim":
            claims.append(Volume(f"claim/{name}", _storage(spec), "its request"))
        elif document.get("kind") == "StatefulSet":
            replicas = int(most.get(("StatefulSet", name)) or spec.get("replicas", 1))
            for template in spec.get("volumeClaimTemplates") or []:
                claim = (template.get("metadata") or {}).get("name", "?")
                size = _storage(template.get("spec") or {})
                claims.append(Volume(f"claim/{claim}-{name}", size * replicas, f"{replicas} replica(s) x {human_bytes(size)}"))
    return claims


def _storage(spec: dict) -> int:
    return round(quantity(((spec.get("resources") or {}).get("requests") or {}).get("storage", 0)))


def _replicas(kind: str | None, declared, nodes: int) -> int:
    """A DaemonSet runs one pod a node; other workloads as many as they declare."""
    return nodes if kind == "DaemonSet" else int(declared)


def _pod_load(name: str, replicas: int, containers: list[dict]) -> Load:
    memory = cpu = cpu_limit = 0.0
    for container in containers:
        resources = container.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        memory += quantity(requests.get("memory", limits.get("memory", 0)))
        cpu += quantity(requests.get("cpu", limits.get("cpu", 0)))
        cpu_limit += quantity(limits.get("cpu", 0))
    return Load(name, replicas, round(memory), round(cpu * 1000), round(cpu_limit * 1000))


def capacity_findings(plan, capacity: Capacity) -> Iterator[Finding]:
    blueprint = plan.blueprint
    if blueprint.compose is not None and capacity.compose is None:
        yield finding(
            "capacity-unknown",
            "info",
            ("compose",),
            "no host is declared for the compose stack, so msgen cannot check that it fits",
            "declare the host under hosts: (and compose.host)",
        )
    if capacity.compose is not None:
        yield from compose_findings(plan, capacity.compose)
    if capacity.kubernetes is not None:
        yield from kubernetes_findings(capacity.kubernetes)
    for node in capacity.pinned:
        yield from pinned_findings(node)


def _compose_at(plan) -> tuple:
    return ("compose", "host") if plan.blueprint.compose.host is not None else ("compose",)


def _largest(loads, key) -> str:
    heaviest = sorted(loads, key=lambda load: (-key(load) * load.replicas, load.name))[:3]
    return ", ".join(
        f"{load.name} {human_bytes(key(load) * load.replicas)}"
        if key(load) > 10_000
        else f"{load.name} {format_millicores(key(load) * load.replicas)}"
        for load in heaviest
    )


def compose_findings(plan, host) -> Iterator[Finding]:
    at = _compose_at(plan)
    if host.memory_used > host.usable_memory:
        yield finding(
            "capacity-memory",
            "error",
            at,
            f"the compose stack's memory limits add up to {human_bytes(host.memory_used)} (replicas included), more than "
            f"{host.where} can give: {human_bytes(host.memory)} minus {human_bytes(host.reserve_memory)} for the OS = "
            f"{human_bytes(host.usable_memory)}; largest: {_largest(host.loads, lambda load: load.memory)}",
            "lower memory limits or replicas, or run the stack on a bigger host",
        )
    if host.cpu_reserved_m > host.vcpu_m:
        yield finding(
            "capacity-cpu",
            "error",
            at,
            f"the compose stack reserves {format_millicores(host.cpu_reserved_m)} CPU (requests x replicas) on {host.where}, "
            f"which has {host.vcpu_m // 1000} vCPUs: Docker cannot guarantee them",
            "lower resources.requests.cpu or replicas, or use a host with more vCPUs",
        )
    if host.cpu_limits_m > host.vcpu_m:
        yield finding(
            "capacity-cpu-overcommit",
            "info",
            at,
            f"CPU limits on {host.where} add up to {format_millicores(host.cpu_limits_m)} of {host.vcpu_m // 1000} vCPUs: "
            "normal overcommit (limits are caps, not reservations), but they cannot all peak at once",
        )
    for name in host.unsized:
        yield finding("capacity-unknown", "info", at, f"compose container {name} has no memory limit; counted as 0")
    yield from disk_findings(host, ("hosts", _host_index(plan, host.where), "disk"))
    region = plan.compose_host.region
    for service in plan.services:
        if service.region is not None and service.region != region:
            yield finding(
                "capacity-compose-region",
                "warning",
                ("services", service.name, "region"),
                f"{service.name} is placed in {service.region}, but the compose stack runs everything on {host.where} in {region}: "
                "with compose its region (latency, residency) is not what runs",
                f"move {service.name} to {region} for compose, or deploy it with kubernetes",
            )


def _host_index(plan, name: str) -> int:
    return next(index for index, host in enumerate(plan.blueprint.hosts) if host.name == name)


def disk_findings(host: HostCapacity, at: tuple) -> Iterator[Finding]:
    """Volumes that outgrow the declared disk stop the datastores and monitoring that write them."""
    if host.disk is None or host.disk_used <= host.usable_disk:
        return
    largest = sorted(host.volumes, key=lambda volume: (-volume.size, volume.name))[:3]
    yield finding(
        "capacity-disk",
        "error",
        at,
        f"the volumes placed on {host.where} add up to {human_bytes(host.disk_used)}, more than its disk can give: "
        f"{human_bytes(host.disk)} minus {human_bytes(disk_reserve(host.disk))} for the OS, images and logs = "
        f"{human_bytes(host.usable_disk)}; largest: " + ", ".join(f"{v.name} {human_bytes(v.size)} ({v.why})" for v in largest),
        "lower datastore storage, backup sizes or monitoring retention, or give the host more disk",
    )


def kubernetes_findings(nodes) -> Iterator[Finding]:
    if nodes.memory_used > nodes.usable_memory:
        yield finding(
            "capacity-kubernetes-memory",
            "error",
            ("hosts",),
            f"pods request {human_bytes(nodes.memory_used)} of memory, more than the nodes' allocatable "
            f"{human_bytes(nodes.usable_memory)} ({human_bytes(nodes.memory)} minus the OS, kubelet and eviction reserves); "
            f"largest: {_largest(nodes.loads, lambda load: load.memory)}; the rest stays Pending",
            "lower memory requests or replicas, or add nodes",
        )
    if nodes.cpu_reserved_m > nodes.usable_cpu_m:
        yield finding(
            "capacity-kubernetes-cpu",
            "error",
            ("hosts",),
            f"pods request {format_millicores(nodes.cpu_reserved_m)} CPU, more than the nodes' allocatable "
            f"{format_millicores(nodes.usable_cpu_m)}; the rest stays Pending",
            "lower CPU requests or replicas, or add nodes",
        )
    yield from disk_findings(nodes, ("hosts",))
    for load in nodes.loads:
        if load.memory > nodes.largest_node_memory or load.cpu_reserved_m > nodes.largest_node_cpu_m:
            yield finding(
                "capacity-pod",
                "error",
                ("hosts",),
                f"one pod of {load.name} requests {human_bytes(load.memory)} and {format_millicores(load.cpu_reserved_m)} CPU; "
                f"the largest node offers {human_bytes(nodes.largest_node_memory)} and {format_millicores(nodes.largest_node_cpu_m)}: "
                "it can never be scheduled",
                "lower its requests or add a bigger node",
            )


def pinned_findings(node: PinnedNode) -> Iterator[Finding]:
    """Pods that may run on one node only (a datastore's host, and its backup beside it) must fit it."""
    if node.memory_used <= node.memory and node.cpu_reserved_m <= node.cpu_m:
        return
    names = ", ".join(load.name for load in node.loads)
    yield finding(
        "capacity-pod",
        "error",
        ("hosts",),
        f"the pods that must run on node {node.node} ({names}) request {human_bytes(node.memory_used)} and "
        f"{format_millicores(node.cpu_reserved_m)} CPU; it offers {human_bytes(node.memory)} and {format_millicores(node.cpu_m)}: "
        "they can never all be scheduled there",
        "lower the datastores' memory or cpu, or declare another host for one of them",
    )
