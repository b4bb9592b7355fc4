"""Kubernetes decisions, made once: nodes, placement, rollout, probes and cluster wiring.

The blueprint's hosts are the cluster's nodes (node name = host name, labelled with
topology.kubernetes.io/region and /zone). Everything a manifest or a check needs to agree
on (labels, selectors, how many nodes a service may use, the rolling-update numbers) is
computed here; msgen/targets/kubernetes.py only wraps it into objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from msgen.model.blueprint import Blueprint
from msgen.plan.services import DatastorePlan, ServicePlan, env_prefix
from msgen.units import Duration

NAME_LABEL = "app.kubernetes.io/name"
PART_OF_LABEL = "app.kubernetes.io/part-of"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
COMPONENT_LABEL = "app.kubernetes.io/component"
SCRAPE_LABEL = "msgen.dev/scrape"  # the Kubernetes scrape config keeps exactly the pods carrying it
HOSTNAME_KEY = "kubernetes.io/hostname"
ZONE_KEY = "topology.kubernetes.io/zone"
REGION_KEY = "topology.kubernetes.io/region"
NAMESPACE_KEY = "kubernetes.io/metadata.name"  # set by the API server on every namespace
# who may reach a workload: Traefik's Helm chart labels its pods with the first, Prometheus
# (plain, Helm or operator-managed) with the second, CoreDNS/kube-dns with the third
TRAEFIK_POD = {NAME_LABEL: "traefik"}
PROMETHEUS_POD = {NAME_LABEL: "prometheus"}
DNS_NAMESPACE = "kube-system"
DNS_POD = {"k8s-app": "kube-dns"}
# a container that needs this long to answer its first health check is restarted
STARTUP_WINDOW_S = 60
# readiness takes a pod out of the endpoints after 3 failures; liveness restarts it only after
# twice as many, so a dependency's blip never restarts every replica at once
READINESS_FAILURES = 3
LIVENESS_FAILURES = 6
# a terminating pod keeps serving this long while Traefik and kube-proxy drop its endpoint
PRESTOP_SLEEP_S = 5


@dataclass(frozen=True)
class Feature:
    """A field msgen writes only where the cluster's version has it."""

    name: str
    since: str  # the first minor version whose API has it (on by default)
    does: str
    without: str  # what an older cluster does instead


FEATURES = (
    Feature(
        "unhealthyPodEvictionPolicy: AlwaysAllow",
        "1.26",
        "a PodDisruptionBudget lets a drain evict a pod that is not Ready",
        "a drain can wait on a crash-looping pod",
    ),
    Feature(
        "matchLabelKeys: [pod-template-hash]",
        "1.27",
        "the zone spread counts only the pods of the current rollout",
        "a rollout can skew replicas across zones",
    ),
    Feature(
        "preStop sleep",
        "1.30",
        f"a terminating pod keeps serving {PRESTOP_SLEEP_S}s while its endpoint is removed",
        "no preStop (a sleep command needs a shell, which distroless images lack): a pod can get requests after SIGTERM",
    ),
)


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


@dataclass(frozen=True)
class NodePlan:
    name: str
    region: str
    zone: str | None


@dataclass(frozen=True)
class ProbePlan:
    """Probe timings in whole seconds (the API's unit), rounded up from the blueprint's durations."""

    initial_delay_s: int
    period_s: int
    timeout_s: int
    startup_failures: int  # periods the startup probe waits, after the initial delay


@dataclass(frozen=True)
class WorkloadPlan:
    """How one service or datastore is placed and rolled out on the cluster."""

    name: str
    component: str  # service | datastore
    replicas: int  # the fewest it runs (an autoscaler's minimum)
    max_replicas: int  # the most it may run (an autoscaler's maximum, else replicas)
    nodes: tuple[str, ...]  # the nodes it may run on (its region's, when hosts span regions)
    anti_affinity: str  # required | preferred | none (a single-replica datastore)
    region: str | None  # node affinity; set only when the hosts span several regions
    spread_zones: bool
    max_surge: int
    max_unavailable: int
    survives_node_loss: str  # yes | likely (...) | no (...) | unknown (...)
    selector: dict[str, str]  # immutable, so it holds only the stable recommended labels
    pod_labels: dict[str, str]  # the selector plus the scrape label when scraped


@dataclass(frozen=True)
class DataVolumePlan:
    """Where a datastore keeps its data on the cluster."""

    claim: bool  # False: an emptyDir that goes with the pod (a cache keeps nothing)
    storage_class: str | None  # the cluster's StorageClass; None: the cluster's default
    why: str


@dataclass(frozen=True)
class KubernetesPlan:
    namespace: str
    version: str
    gateway_namespace: str
    anti_affinity: str | None  # the blueprint's; None: chosen per workload
    image_pull_secret: str | None
    nodes: tuple[NodePlan, ...]
    zones: tuple[str, ...]
    regions: tuple[str, ...]
    services: dict[str, WorkloadPlan]  # by service name, sorted
    datastores: dict[str, WorkloadPlan]  # by datastore name, sorted
    env: dict[str, tuple[tuple[str, str], ...]]  # service -> its wiring with cluster DNS names
    probes: dict[str, ProbePlan]  # service -> probe timings
    callers: dict[str, tuple[str, ...]]  # service -> the services that call it, sorted
    volumes: dict[str, DataVolumePlan]  # datastore -> its data volume

    def has(self, feature: str) -> bool:
        """Whether the cluster's version has the feature whose name starts with `feature`."""
        wanted = next(item for item in FEATURES if item.name.startswith(feature))
        return version_key(self.version) >= version_key(wanted.since)


def recommended_labels(name: str, project: str, component: str) -> dict[str, str]:
    return {NAME_LABEL: name, PART_OF_LABEL: project, MANAGED_BY_LABEL: "msgen", COMPONENT_LABEL: component}


def _seconds(duration: Duration) -> int:
    """At least 1: a probe's period and timeout cannot be 0."""
    return max(1, duration.whole_seconds)


def plan_probes(service: ServicePlan) -> ProbePlan:
    period = _seconds(service.period)
    return ProbePlan(
        initial_delay_s=service.initial_delay.whole_seconds,
        period_s=period,
        timeout_s=_seconds(service.timeout),
        startup_failures=max(3, math.ceil(STARTUP_WINDOW_S / period)),
    )


def rollout(replicas: int, nodes: int, anti_affinity: str) -> tuple[int, int]:
    """(maxSurge, maxUnavailable): a surge pod needs a free node under required anti-affinity."""
    if anti_affinity == "required" and nodes and replicas >= nodes:
        return 0, 1
    if anti_affinity == "none":
        # one replica with a volume: the old pod must go before the new one can mount it
        return 0, 1
    return 1, 0


def replica_range(service: ServicePlan) -> tuple[int, int]:
    """(fewest, most) replicas: the autoscaler's range, else `replicas` both."""
    autoscale = service.service.autoscale
    if autoscale is None:
        return service.replicas, service.replicas
    return autoscale.min_replicas or service.replicas, autoscale.max_replicas


def default_anti_affinity(replicas: int, nodes: int) -> str:
    """required while the replicas fit the nodes (unknown nodes: assume they do), else preferred:
    required anti-affinity would leave the extra replicas Pending."""
    return "preferred" if nodes and replicas > nodes else "required"


def survival(replicas: int, nodes: int, anti_affinity: str) -> str:
    """Whether losing any one node leaves at least one replica running."""
    if not nodes:
        return "unknown (no hosts declared)"
    if replicas < 2:
        return "no (1 replica)"
    if nodes < 2:
        return "no (1 node)"
    if anti_affinity == "required":
        return "yes"
    return "likely (preferred anti-affinity lets replicas share a node)"


def _workload(name, component, replicas, nodes, mode, region, zones, project, scraped, max_replicas=None) -> WorkloadPlan:
    max_replicas = max_replicas or replicas
    surge, unavailable = rollout(max_replicas, len(nodes), mode)
    labels = recommended_labels(name, project, component)
    pod_labels = dict(labels, **({SCRAPE_LABEL: "true"} if scraped else {}))
    return WorkloadPlan(
        name=name,
        component=component,
        replicas=replicas,
        max_replicas=max_replicas,
        nodes=nodes,
        anti_affinity=mode,
        region=region,
        spread_zones=bool(zones) and replicas > 1,
        max_surge=surge,
        max_unavailable=unavailable,
        survives_node_loss=survival(replicas, len(nodes), mode),
        selector=labels,
        pod_labels=pod_labels,
    )


def _nodes_in(nodes: tuple[NodePlan, ...], region: str | None, multi_region: bool) -> tuple[str, ...]:
    return tuple(node.name for node in nodes if not multi_region or node.region == region)


def cluster_env(service: ServicePlan, services: dict[str, ServicePlan], namespace: str) -> tuple[tuple[str, str], ...]:
    """The wiring contract with namespace-qualified DNS names, so a pod resolves them anywhere."""
    env = dict(service.env)
    if service.datastore is not None:
        env["DB_HOST"] = f"{service.datastore}.{namespace}.svc"
    for callee in service.calls:
        env[f"{env_prefix(callee)}_URL"] = f"http://{callee}.{namespace}.svc:{services[callee].port}"
    return tuple(sorted(env.items()))


def data_volume(store: DatastorePlan, storage_classes: dict[str, str]) -> DataVolumePlan:
    """A claim of the StorageClass mapped to the disk class the engine is tuned for; a cache none."""
    if store.role == "cache":
        return DataVolumePlan(False, None, "a cache keeps nothing (no append-only file, no snapshots): an emptyDir, no claim")
    disk = store.storage_class
    name = storage_classes.get(disk)
    if name is None:
        why = f"tuned for {store.storage_origin}; kubernetes.storage_classes has no {disk} entry: the cluster's default StorageClass"
        return DataVolumePlan(True, None, why)
    return DataVolumePlan(True, name, f"tuned for {store.storage_origin}: kubernetes.storage_classes.{disk}")


def _callers(services: tuple[ServicePlan, ...]) -> dict[str, tuple[str, ...]]:
    callers: dict[str, list[str]] = {service.name: [] for service in services}
    for service in services:  # sorted by name, so each list comes out sorted
        for callee in service.calls:
            callers[callee].append(service.name)
    return {name: tuple(names) for name, names in callers.items()}


def plan_kubernetes(
    blueprint: Blueprint, services: tuple[ServicePlan, ...], datastores: tuple[DatastorePlan, ...]
) -> KubernetesPlan | None:
    """Placement and rollout of every workload; None without a `kubernetes:` section."""
    kubernetes = blueprint.kubernetes
    if kubernetes is None:
        return None
    project = blueprint.project
    namespace = kubernetes.namespace or project
    nodes = tuple(sorted((NodePlan(host.name, host.region, host.zone) for host in blueprint.hosts), key=lambda node: node.name))
    regions = tuple(sorted({node.region for node in nodes}))
    zones = tuple(sorted({node.zone for node in nodes if node.zone}))
    multi = len(regions) > 1
    by_name = {service.name: service for service in services}
    service_plans = {}
    for service in services:
        region = service.region if multi else None
        where = _nodes_in(nodes, service.region, multi)
        scraped = service.metrics_port is not None
        fewest, most = replica_range(service)
        mode = kubernetes.anti_affinity or default_anti_affinity(most, len(where))
        service_plans[service.name] = _workload(service.name, "service", fewest, where, mode, region, zones, project, scraped, most)
    datastore_plans = {}
    for store in datastores:
        region = store.region if multi else None
        where = _nodes_in(nodes, store.region, multi)
        # every datastore runs its exporter sidecar, so every datastore pod is scraped
        datastore_plans[store.name] = _workload(store.name, "datastore", 1, where, "none", region, zones, project, True)
    return KubernetesPlan(
        namespace=namespace,
        version=kubernetes.version,
        gateway_namespace=kubernetes.gateway_namespace,
        anti_affinity=kubernetes.anti_affinity,
        image_pull_secret=kubernetes.image_pull_secret,
        nodes=nodes,
        zones=zones,
        regions=regions,
        services=service_plans,
        datastores=datastore_plans,
        env={service.name: cluster_env(service, by_name, namespace) for service in services},
        probes={service.name: plan_probes(service) for service in services},
        callers=_callers(services),
        volumes={store.name: data_volume(store, kubernetes.storage_classes) for store in datastores},
    )
