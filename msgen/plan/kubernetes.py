"""Kubernetes decisions, made once: nodes, placement, rollout, probes and cluster wiring.

The blueprint's hosts are the cluster's nodes (node name = host name, labelled with
topology.kubernetes.io/region and /zone). Everything a manifest or a check needs to agree
on (labels, selectors, how many nodes a service may use, the rolling-update numbers) is
computed here; msgen/targets/kubernetes.py only wraps it into objects.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import cached_property

from msgen.model.blueprint import Blueprint, Host, Kubernetes
from msgen.plan.backup import BINLOG_DIR, WAL_DIR, BackupPlan
from msgen.plan.gateway import GatewayPlan
from msgen.plan.services import DatastorePlan, ServicePlan, env_prefix
from msgen.units import Duration

NAME_LABEL = "app.kubernetes.io/name"
PART_OF_LABEL = "app.kubernetes.io/part-of"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
COMPONENT_LABEL = "app.kubernetes.io/component"
BACKUP_COMPONENT = "backup"  # the component label of a datastore's backup pods
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
# cert-manager's HTTP-01 solver pods: their label and the port Traefik forwards the challenge to
ACME_SOLVER_POD = {"acme.cert-manager.io/http01-solver": "true"}
ACME_SOLVER_PORT = 8089
# a container that needs this long to answer its first health check is restarted
STARTUP_WINDOW_S = 60
# readiness takes a pod out of the endpoints after 3 failures; liveness restarts it only after
# twice as many, so a dependency's blip never restarts every replica at once
READINESS_FAILURES = 3
LIVENESS_FAILURES = 6
# a terminating pod keeps serving this long while Traefik and kube-proxy drop its endpoint
PRESTOP_SLEEP_S = 5
# A datastore's backup CronJob (msgen/plan/backup.py decides what and when; this, how it runs).
# A run that could not start on time (the controller was down, the previous run still held
# the one slot concurrencyPolicy Forbid allows) still starts this long after its time, and no
# later: without a deadline, a CronJob that has missed more than 100 runs stops scheduling.
BACKUP_STARTING_DEADLINE_S = 3600
# A failed run (the server restarting, a network blip) is retried this often, each time in a
# new pod and as a whole new backup: a few, not Kubernetes' default of 6.
BACKUP_RETRIES = 2
# A run, retries included, is stopped after the longest gap between two scheduled runs (at
# least an hour): a hung dump (a lock wait, a stalled connection) would otherwise hold the one
# slot and silently skip every later backup, while a slow one still gets a whole interval.
BACKUP_MIN_DEADLINE_S = 3600
# finished Jobs (and their pods, with their logs) kept for a look
BACKUP_HISTORY = 3


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
        "nodeTaintsPolicy: Honor",
        "1.26",
        "Traefik's spread over nodes ignores nodes it may not run on (a tainted control plane)",
        "a tainted node counts as an empty one, and a replica can stay Pending",
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
    Feature(
        "timeZone: Etc/UTC",
        "1.27",
        "backup CronJobs run at the blueprint's times in UTC, whatever the controller's time zone",
        "a backup CronJob runs in kube-controller-manager's time zone (UTC on most clusters; check yours), not in UTC as the schedule says",
    ),
)


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))
# how traffic from outside reaches Traefik (kubernetes.ingress)
HOST_PORTS, LOAD_BALANCER = "host_ports", "load_balancer"
# Traefik as a Deployment: one pod can go (a drain, a rollout) while the other serves
GATEWAY_REPLICAS = 2
LETSENCRYPT_SERVER = "https://acme-v02.api.letsencrypt.org/directory"
# a Kubernetes name that is also a label value (the Certificate's name is its app.kubernetes.io/name)
MAX_NAME = 63
TLS_SECRET_SUFFIX = "-tls"


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
    node: str | None  # a datastore's declared host: the one node it runs on (its storage is tuned for it)
    spread_zones: bool
    max_surge: int
    max_unavailable: int
    survives_node_loss: str  # yes | likely (...) | no (...) | unknown (...)
    selector: dict[str, str]  # immutable, so it holds only the stable recommended labels
    pod_labels: dict[str, str]  # the selector plus the scrape label when scraped


@dataclass(frozen=True)
class BackupJobPlan:
    """How a datastore's backups run on the cluster: a CronJob whose pod dumps the server over
    the network into a claim of its own."""

    name: str  # the CronJob, its PersistentVolumeClaim and its pods' name label: <datastore>-backup
    datastore: str
    backup: BackupPlan
    db_host: str  # the datastore's Service, as its owner reaches it
    claim: str  # its own PersistentVolumeClaim, at /backup: the base backups
    # point in time: the claim that holds the binary log or the archived WAL, and the folder
    # both the datastore's pod and the backup pod mount it at. The backup pod mounts it too, so
    # that it sees what the compose backup container sees (the base backups beside the log, as
    # restore.sh expects) and prunes the archived WAL as backup.sh does in compose; a
    # ReadWriteOnce claim is mounted by one node at a time, so the backup pod runs on the
    # datastore's node.
    archive_claim: str | None
    archive_mount: str | None
    starting_deadline_s: int
    active_deadline_s: int
    backoff_limit: int
    history: int
    labels: dict[str, str]

    @property
    def co_located(self) -> bool:
        return self.archive_claim is not None


@dataclass(frozen=True)
class DataVolumePlan:
    """Where a datastore keeps its data on the cluster."""

    claim: bool  # False: an emptyDir that goes with the pod (a cache keeps nothing)
    storage_class: str | None  # the cluster's StorageClass; None: the cluster's default
    why: str


@dataclass(frozen=True)
class CertificatePlan:
    """The TLS certificate of one host, in the namespace of the IngressRoutes that serve it."""

    host: str
    namespace: str
    name: str  # the Certificate's: a DNS label (a host has dots and may be longer than a label)
    secret: str  # the TLS Secret the IngressRoutes read: cert-manager fills it, or the user without acme_email


@dataclass(frozen=True)
class EdgePlan:
    """Traefik on the cluster: how traffic reaches it, how it rolls, where its certificates come from."""

    ingress: str  # host_ports | load_balancer
    anti_affinity: str  # how a Deployment's replicas spread over the nodes: required | preferred
    replicas: int | None  # None: a DaemonSet, one pod a node
    max_surge: int
    max_unavailable: int
    survives_node_loss: str
    issuer: str | None  # cert-manager's ClusterIssuer (with acme_email); None: the user's Secrets
    solver_class: str | None  # the IngressClass of cert-manager's HTTP-01 solver Ingresses, served by Traefik
    certificates: tuple[CertificatePlan, ...]  # one a (namespace, host), sorted

    @property
    def cert_manager(self) -> bool:
        return self.issuer is not None

    def certificate(self, namespace: str, host: str) -> CertificatePlan:
        return self._by_place[(namespace, host)]

    # every route asks once: keep the lookup O(1) for thousands of routes
    @cached_property
    def _by_place(self) -> dict[tuple[str, str], CertificatePlan]:
        return {(certificate.namespace, certificate.host): certificate for certificate in self.certificates}


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
    backups: dict[str, BackupJobPlan]  # datastore -> its backup CronJob (backed-up datastores only)
    edge: EdgePlan | None  # Traefik on the cluster; None when nothing is routed
    # service -> the StorageClass of its replicas' claims; only services with a persistent volume
    # (a StatefulSet, so that each replica has its own claim)
    service_volumes: dict[str, DataVolumePlan] = field(default_factory=dict)

    def is_stateful(self, service: str) -> bool:
        return service in self.service_volumes

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


def _workload(name, component, replicas, nodes, mode, region, zones, project, scraped, max_replicas=None, node=None) -> WorkloadPlan:
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
        node=node,
        spread_zones=bool(zones) and replicas > 1,
        max_surge=surge,
        max_unavailable=unavailable,
        survives_node_loss=survival(replicas, len(nodes), mode),
        selector=labels,
        pod_labels=pod_labels,
    )


def _nodes_in(nodes: tuple[NodePlan, ...], region: str | None, multi_region: bool) -> tuple[str, ...]:
    return tuple(node.name for node in nodes if not multi_region or node.region == region)


def service_host(name: str, namespace: str) -> str:
    """A Service's namespace-qualified DNS name, which a pod resolves anywhere (no cluster domain assumed)."""
    return f"{name}.{namespace}.svc"


def cluster_env(service: ServicePlan, services: dict[str, ServicePlan], namespace: str) -> tuple[tuple[str, str], ...]:
    """The wiring contract with namespace-qualified DNS names, so a pod resolves them anywhere."""
    env = dict(service.env)
    if service.datastore is not None:
        env["DB_HOST"] = service_host(service.datastore, namespace)
    for callee in service.calls:
        env[f"{env_prefix(callee)}_URL"] = f"http://{service_host(callee, namespace)}:{services[callee].port}"
    return tuple(sorted(env.items()))


def archive_claim(datastore: str) -> str:
    """The claim of the binary log / WAL archive: a PersistentVolumeClaim of its own, not one of
    the StatefulSet's volumeClaimTemplates, which cannot change after the StatefulSet exists
    (turning point in time on for a running datastore would need the StatefulSet recreated)."""
    return f"{datastore}-archive"


def archive_mount(store: DatastorePlan) -> str | None:
    """Where the server writes its log for point-in-time recovery (msgen/plan/tuning.py), and so
    where the archive claim is mounted; None without point in time."""
    if store.backup is None or not store.backup.point_in_time:
        return None
    return WAL_DIR if store.engine == "postgres" else BINLOG_DIR


def plan_backup_job(store: DatastorePlan, namespace: str, project: str) -> BackupJobPlan | None:
    backup = store.backup
    if backup is None:
        return None
    mount = archive_mount(store)
    return BackupJobPlan(
        name=backup.container,
        datastore=store.name,
        backup=backup,
        db_host=service_host(store.name, namespace),
        claim=backup.volume,
        archive_claim=archive_claim(store.name) if mount else None,
        archive_mount=mount,
        starting_deadline_s=BACKUP_STARTING_DEADLINE_S,
        active_deadline_s=max(backup.interval_minutes * 60, BACKUP_MIN_DEADLINE_S),
        backoff_limit=BACKUP_RETRIES,
        history=BACKUP_HISTORY,
        labels=recommended_labels(backup.container, project, BACKUP_COMPONENT),
    )


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


def service_volume(nodes: tuple[str, ...], hosts: dict[str, Host], storage_classes: dict[str, str]) -> DataVolumePlan:
    """A service's claims get the StorageClass of its nodes' disk class, when they share one and
    kubernetes.storage_classes maps it; else the cluster's default."""
    disks = sorted({hosts[node].storage for node in nodes})
    if len(disks) != 1:
        why = "its nodes' disks are of several classes" if disks else "no hosts declared"
        return DataVolumePlan(True, None, f"{why}: the cluster's default StorageClass")
    name = storage_classes.get(disks[0])
    if name is None:
        return DataVolumePlan(True, None, f"its nodes' disks are {disks[0]}; kubernetes.storage_classes has no {disks[0]} entry: the cluster's default StorageClass")
    return DataVolumePlan(True, name, f"its nodes' disks are {disks[0]}: kubernetes.storage_classes.{disks[0]}")


def _callers(services: tuple[ServicePlan, ...]) -> dict[str, tuple[str, ...]]:
    callers: dict[str, list[str]] = {service.name: [] for service in services}
    for service in services:  # sorted by name, so each list comes out sorted
        for callee in service.calls:
            callers[callee].append(service.name)
    return {name: tuple(names) for name, names in callers.items()}


def certificate_names(hosts: set[str]) -> dict[str, str]:
    """Host -> the name of its Certificate: the host with dashes for dots, unless that is too long
    or two hosts would share it (`a-b.c`, `a.b-c`); then a shorter prefix and a hash of the host."""
    plain = {host: host.replace(".", "-") for host in hosts}
    taken = Counter(plain.values())
    return {host: name if taken[name] == 1 and len(name) <= MAX_NAME else _hashed(host, name) for host, name in plain.items()}


def _hashed(host: str, name: str) -> str:
    digest = hashlib.sha256(host.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - len(digest) - 1].rstrip('-')}-{digest}"


def plan_certificates(gateway: GatewayPlan, namespace: str, gateway_namespace: str) -> tuple[CertificatePlan, ...]:
    """One certificate a host the routes answer on, beside them; the dashboard's beside Traefik,
    where the chart puts the dashboard's IngressRoute (an IngressRoute reads Secrets of its own namespace)."""
    places = {(namespace, host) for route in gateway.routes for host in route.hosts}
    if gateway.dashboard:
        places.add((gateway_namespace, gateway.dashboard_host))
    names = certificate_names({host for _, host in places})
    return tuple(
        CertificatePlan(host, where, names[host], names[host] + TLS_SECRET_SUFFIX) for where, host in sorted(places)
    )


def plan_edge(kubernetes: Kubernetes, project: str, gateway: GatewayPlan | None, nodes: int, namespace: str) -> EdgePlan | None:
    """Traefik as a DaemonSet on the nodes' ports (each node answers), or a Deployment behind a load balancer."""
    if gateway is None:
        return None
    acme = gateway.acme_email is not None
    anti_affinity = kubernetes.anti_affinity or default_anti_affinity(GATEWAY_REPLICAS, nodes)
    if kubernetes.ingress == HOST_PORTS:
        # a node's port holds one pod: the old pod must go before the new one can bind it
        replicas, surge, unavailable, survives = None, 0, 1, survival(nodes, nodes, "required")
    else:
        replicas, surge, unavailable = GATEWAY_REPLICAS, 1, 0
        survives = survival(GATEWAY_REPLICAS, nodes, anti_affinity)
    return EdgePlan(
        ingress=kubernetes.ingress,
        anti_affinity=anti_affinity,
        replicas=replicas,
        max_surge=surge,
        max_unavailable=unavailable,
        survives_node_loss=survives,
        issuer=f"{project}-letsencrypt" if acme else None,
        solver_class=f"{project}-acme" if acme else None,
        certificates=plan_certificates(gateway, namespace, kubernetes.gateway_namespace),
    )


def plan_kubernetes(
    blueprint: Blueprint,
    services: tuple[ServicePlan, ...],
    datastores: tuple[DatastorePlan, ...],
    gateway: GatewayPlan | None,
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
    stateful: dict[str, DataVolumePlan] = {}
    hosts = {host.name: host for host in blueprint.hosts}
    for service in services:
        region = service.region if multi else None
        where = _nodes_in(nodes, service.region, multi)
        scraped = service.metrics_port is not None
        fewest, most = replica_range(service)
        mode = kubernetes.anti_affinity or default_anti_affinity(most, len(where))
        service_plans[service.name] = _workload(service.name, "service", fewest, where, mode, region, zones, project, scraped, most)
        if any(volume.persistent for volume in service.service.volumes.values()):
            # a StatefulSet replaces one pod at a time, never beside a surge pod
            service_plans[service.name] = replace(service_plans[service.name], max_surge=0, max_unavailable=1)
            stateful[service.name] = service_volume(where, hosts, kubernetes.storage_classes)
    datastore_plans = {}
    for store in datastores:
        region = store.region if multi else None
        # a declared host is the node the datastore runs on: its engine is tuned for that host's disks
        node = store.datastore.host
        where = (node,) if node is not None else _nodes_in(nodes, store.region, multi)
        # its exporter sidecar runs (and its pod is scraped) when Prometheus is on
        datastore_plans[store.name] = _workload(store.name, "datastore", 1, where, "none", region, zones, project, store.scraped, node=node)
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
        backups={store.name: job for store in datastores if (job := plan_backup_job(store, namespace, project)) is not None},
        edge=plan_edge(kubernetes, project, gateway, len(nodes), namespace),
        service_volumes=stateful,
    )
