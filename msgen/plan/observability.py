"""The observability plan: scrape jobs, alert rules, exporters, dashboards, computed once.

Two renderings read it: the compose flavour (prometheus.yml with DNS/static targets, rule
files, Grafana and Loki provisioning, the containers of the monitoring stack) and the
Kubernetes flavour (kubernetes_sd_configs in a ConfigMap, or PodMonitor/PrometheusRule
objects for the Prometheus operator). PromQL expressions are built here, never in templates.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property

from msgen import images
from msgen.contract import EXPORTER_PASSWORD_FILE, EXPORTER_PASSWORD_SECRET, EXPORTER_USER, PASSWORD_FILE, PASSWORD_SECRET
from msgen.model.blueprint import Blueprint
from msgen.plan.alerting import SIZE as ALERTMANAGER_SIZE
from msgen.plan.alerting import AlertingPlan, plan_alerting
from msgen.plan.gateway import BREAKER_STATUS, GatewayPlan, RoutePlan
from msgen.plan.gateway import METRICS as GATEWAY_METRICS_ENTRYPOINT
from msgen.plan.gateway import PORTS as GATEWAY_PORTS
from msgen.plan.images import ImageTable
from msgen.plan.objectives import BURN_RATES, BurnRate, RouteObjective
from msgen.plan.services import DatastorePlan, ServicePlan
from msgen.units import Cpu, Duration, Memory

PROMETHEUS_PORT = 9090
GRAFANA_PORT = 3000
LOKI_PORT = 3100
GATEWAY_METRICS_PORT = GATEWAY_PORTS[GATEWAY_METRICS_ENTRYPOINT]
# each exporter's default listen port (their own documented defaults)
EXPORTER_IMAGES = {"mysql": "mysqld-exporter", "mariadb": "mysqld-exporter", "postgres": "postgres-exporter", "redis": "redis-exporter"}
# the exporter's gauge that is 1 when it reached the engine
UP_METRICS = {"mysql": "mysql_up", "mariadb": "mysql_up", "postgres": "pg_up", "redis": "redis_up"}
# Prometheus' default scrape_timeout, lowered to the interval when the interval is shorter
DEFAULT_SCRAPE_TIMEOUT = Duration(10_000, "10s")
# alert thresholds msgen chooses (README: Observability)
THROTTLED_RATIO = 0.05  # the share of a route's requests answered 429 that is worth knowing about
CONNECTIONS_RATIO = 0.8
MEMORY_RATIO = 0.9
LATENCY_QUANTILE = 0.99
# CPU steal above this share of the CPU time (percent) is the error finding host-steal of
# `msgen host check` (msgen/hostcheck.py) and the alert HostCpuStealHigh alike.
# A KVM instance with its vCPUs to itself shows next to none: 2% is already a hypervisor
# that gives them to other guests, and a datastore that stalls while its vCPU is away.
CPU_STEAL_THRESHOLD = 2.0
# I/O wait above this share of the CPU time (percent) is the warning host-iowait of `msgen host
# check` and the alert HostIowaitHigh. iowait is idle time with I/O outstanding, not a cost in
# itself, and the kernel documents it as unreliable (Documentation/filesystems/proc.rst): a
# warning, not an error. On a quiet host it is near 0; 10% of every vCPU's time idle on I/O is
# storage that keeps work waiting.
IOWAIT_THRESHOLD = 10.0
# a filesystem with less than this share of its size free is filling up; the ratio of the
# declared host.disk the compose host's filesystem may use before the capacity plan no longer holds
DISK_FREE_RATIO = 0.1
DISK_USED_RATIO = 0.9
# a filesystem whose free space, extrapolated over this look-back, runs out within the horizon
DISK_TREND_WINDOW = Duration(6 * 3_600_000, "6h")
DISK_HORIZON = Duration(86_400_000, "24h")
# the smallest windows and `for` durations; each is raised to a multiple of the scrape interval
MIN_RATE_WINDOW = Duration(300_000, "5m")
FOR_DOWN = Duration(120_000, "2m")
FOR_DATASTORE_DOWN = Duration(60_000, "1m")
FOR_BURN = Duration(120_000, "2m")  # the short window already ends the alert soon after the burning stops
FOR_THROTTLED = Duration(900_000, "15m")
FOR_LATENCY = Duration(600_000, "10m")
FOR_CONNECTIONS = Duration(300_000, "5m")
FOR_MEMORY = Duration(600_000, "10m")
FOR_HOST_CPU = Duration(600_000, "10m")
FOR_DISK = Duration(600_000, "10m")
FOR_DISK_TREND = Duration(3_600_000, "1h")
# containers the blueprint does not size: msgen's documented defaults (docs/tuning.md)
DEFAULT_SIZES = {
    "prometheus": (
        Cpu(1000, "1"),
        Memory(1024**3, "1Gi"),
        "holds every series in memory for 2h blocks; enough for a few hundred thousand series",
    ),
    "grafana": (Cpu(250, "250m"), Memory(256 * 1024**2, "256Mi"), "Grafana's documented minimum is 255 MiB"),
    "loki": (Cpu(500, "500m"), Memory(512 * 1024**2, "512Mi"), "single-binary Loki with filesystem storage for one host's logs"),
    "alloy": (Cpu(250, "250m"), Memory(256 * 1024**2, "256Mi"), "tails the container log files of one host"),
    "alertmanager": ALERTMANAGER_SIZE,
    "exporter": (Cpu(100, "100m"), Memory(64 * 1024**2, "64Mi"), "an exporter holds one connection and one scrape's metrics"),
    "node-exporter": (Cpu(100, "100m"), Memory(64 * 1024**2, "64Mi"), "reads /proc and /sys files once a scrape"),
    "cadvisor": (
        Cpu(250, "250m"),
        Memory(256 * 1024**2, "256Mi"),
        "keeps a few minutes of every container's cgroup statistics in memory",
    ),
}


def prom_duration(ms: int) -> str:
    """A duration in Prometheus' syntax, in the largest unit that states it exactly."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def percent(share: float) -> str:
    """A share as a short percentage: 0.0144 -> `1.44%`, 0.001 -> `0.1%`."""
    return f"{round(share * 100, 6):g}%"


def at_least(floor: Duration, interval: Duration, intervals: int) -> str:
    """The larger of `floor` and `intervals` scrape intervals: a rate needs several samples."""
    return prom_duration(max(floor.ms, interval.ms * intervals))


@dataclass(frozen=True)
class ScrapeJob:
    """One scrape job; `host:port` is the compose target, `app` the Kubernetes pod name label."""

    name: str
    kind: str  # prometheus | gateway | service | datastore | host (node-exporter, cadvisor)
    host: str
    port: int
    metrics_path: str
    dns_sd: bool  # compose: resolve every replica's address by DNS (services with replicas)
    subject: str  # the service or datastore it watches
    at: tuple  # the blueprint key path it comes from

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class AlertRule:
    alert: str
    expr: str
    for_: str
    labels: tuple[tuple[str, str], ...]
    summary: str
    description: str
    at: tuple

    def to_dict(self) -> dict:
        return {
            "alert": self.alert,
            "expr": self.expr,
            "for": self.for_,
            "labels": dict(self.labels),
            "annotations": {"summary": self.summary, "description": self.description},
        }


@dataclass(frozen=True)
class RuleGroup:
    name: str  # also the rule file's name: prometheus/rules/<name>.yml
    interval: str
    rules: tuple[AlertRule, ...]

    def to_dict(self) -> dict:
        return {"name": self.name, "interval": self.interval, "rules": [rule.to_dict() for rule in self.rules]}


@dataclass(frozen=True)
class ExporterPlan:
    """A datastore's exporter: how it starts and how it gets its credentials (README)."""

    name: str  # compose service name: <datastore>-exporter
    datastore: str
    engine: str
    image_key: str  # the entry of msgen/images.py
    port: int
    environment: tuple[tuple[str, str], ...]
    command: tuple[str, ...]  # the container's command (entrypoint overridden where a shell is needed)
    entrypoint: tuple[str, ...] | None
    # the secret it reads under /run/secrets: its own user's password (SQL engines), redis's one password
    password_secret: str


@dataclass(frozen=True)
class ContainerSize:
    name: str
    cpu: Cpu
    memory: Memory
    why: str


@dataclass(frozen=True)
class RouteDashboard:
    """The dashboard of one routed service: the gateway's router metrics (what clients got,
    the middlewares' answers included) and its service metrics (retries)."""

    service: str
    uid: str
    title: str
    matcher: str  # compose: service="payment@file"
    kubernetes_matcher: str
    budget_seconds: float
    budget_text: str
    router_matcher: str  # compose: router="payment@file"
    kubernetes_router_matcher: str
    objective: RouteObjective
    breaker: bool  # the route has a circuit breaker
    retry: bool  # the route has a retry middleware


@dataclass(frozen=True)
class ObservabilityPlan:
    project: str
    prometheus: bool
    scrape_interval: Duration
    scrape_timeout: Duration
    evaluation_interval: str
    retention: Duration
    operator: bool
    grafana: bool
    loki: bool
    alerts: bool
    jobs: tuple[ScrapeJob, ...]
    rule_groups: tuple[RuleGroup, ...]  # compose flavour
    kubernetes_rule_groups: tuple[RuleGroup, ...]
    exporters: tuple[ExporterPlan, ...]
    dashboards: tuple[RouteDashboard, ...]
    sizes: tuple[ContainerSize, ...]
    rate_window: str
    unscraped: tuple[str, ...]  # services without `metrics` (only the gateway sees them, if routed)
    images: ImageTable  # the plan's image table (the monitoring containers' references)
    alerting: AlertingPlan | None = None  # Alertmanager, when the blueprint has one

    def size(self, name: str) -> ContainerSize:
        return self._sizes_by_name[name]

    # one lookup per exporter: keep it O(1) for thousands of datastores
    @cached_property
    def _sizes_by_name(self) -> dict[str, ContainerSize]:
        return {size.name: size for size in self.sizes}

    @property
    def monitors(self) -> tuple[str, ...]:
        """The monitoring containers compose runs (the exporters aside)."""
        wanted = (("prometheus", self.prometheus), ("grafana", self.grafana), ("loki", self.loki), ("alloy", self.loki))
        wanted += (("alertmanager", self.alerting is not None),)
        return tuple(name for name, on in wanted if on)

    @property
    def host_agents(self) -> tuple[str, ...]:
        """The compose containers that read the host (its CPU, disks and containers): stateless,
        and each reached by Prometheus alone, like an exporter."""
        return HOST_AGENTS if self.prometheus else ()


def plan_observability(
    blueprint: Blueprint,
    services: tuple[ServicePlan, ...],
    datastores: tuple[DatastorePlan, ...],
    gateway: GatewayPlan | None,
    table: ImageTable,
) -> ObservabilityPlan | None:
    """Everything the observability target renders; None without an `observability` section."""
    section = blueprint.observability
    if section is None:
        return None
    prometheus = section.prometheus
    interval = prometheus.scrape_interval if prometheus else Duration(15_000, "15s")
    timeout = (prometheus.scrape_timeout if prometheus else None) or min(DEFAULT_SCRAPE_TIMEOUT, interval)
    jobs = scrape_jobs(services, datastores, gateway) if prometheus else ()
    window = at_least(MIN_RATE_WINDOW, interval, 4)
    alerts = section.alerts and prometheus is not None
    flavours = ("compose", "kubernetes") if blueprint.kubernetes else ("compose",)
    groups = rule_groups(blueprint, datastores, gateway, interval, window, flavours) if alerts else ((), ())
    compose_rules, kubernetes_rules = groups[0], (groups[1] if len(groups) > 1 else ())
    alerting = plan_alerting(blueprint)
    return ObservabilityPlan(
        project=blueprint.project,
        prometheus=prometheus is not None,
        scrape_interval=interval,
        scrape_timeout=timeout,
        evaluation_interval=prom_duration(interval.ms),
        retention=prometheus.retention if prometheus else Duration(15 * 86_400_000, "15d"),
        operator=bool(prometheus and prometheus.operator),
        grafana=section.grafana,
        loki=section.loki,
        alerts=alerts,
        jobs=jobs,
        rule_groups=compose_rules,
        kubernetes_rule_groups=kubernetes_rules,
        # compose runs each exporter in its own container: it reaches the engine by its service name
        exporters=tuple(plan_exporter(store, store.name) for store in datastores) if prometheus else (),
        dashboards=route_dashboards(blueprint, gateway),
        sizes=container_sizes(section.grafana, section.loki, prometheus is not None, datastores) + alerting_sizes(alerting),
        rate_window=window,
        unscraped=tuple(service.name for service in services if service.metrics_port is None),
        images=table,
        alerting=alerting,
    )


def scrape_jobs(services, datastores, gateway) -> tuple[ScrapeJob, ...]:
    """Prometheus itself, the gateway, each service with metrics, each datastore via its exporter."""
    jobs = [
        ScrapeJob(
            "prometheus", "prometheus", "localhost", PROMETHEUS_PORT, "/metrics", False, "prometheus", ("observability", "prometheus")
        )
    ]
    if gateway is not None:
        jobs.append(ScrapeJob("gateway", "gateway", "gateway", GATEWAY_METRICS_PORT, "/metrics", False, "gateway", ("gateway",)))
    for service in services:
        if service.metrics_port is not None:
            at = ("services", service.name, "metrics")
            jobs.append(
                ScrapeJob(
                    service.name, "service", service.name, service.metrics_port, service.metrics_path or "/metrics", True, service.name, at
                )
            )
    for store in datastores:
        exporter = f"{store.name}-exporter"
        jobs.append(
            ScrapeJob(
                store.name, "datastore", exporter, images.port(EXPORTER_IMAGES[store.engine]), "/metrics", False, store.name, ("datastores", store.name)
            )
        )
    return tuple(jobs) + host_jobs()


def traefik_router(name: str, provider: str) -> str:
    """Traefik's `router` metric label for a route of the file or docker provider."""
    return f"{name}@{provider}"


def traefik_normalize(name: str) -> str:
    """Traefik's provider.Normalize: every run of characters other than letters and digits becomes one `-`."""
    return "-".join(part for part in re.split(r"[^0-9A-Za-z]+", name) if part)


def kubernetes_traefik_router(namespace: str, name: str, rule: str) -> str:
    """The router Traefik's Kubernetes CRD provider builds from an IngressRoute's route:
    <namespace>-<name>-<the first 10 bytes of sha256(match), in hex>@kubernetescrd (its
    makeServiceKey), normalized; the names Traefik uses unless `safeNaming` is on."""
    digest = hashlib.sha256(rule.encode("utf-8")).hexdigest()[:20]
    return f"{traefik_normalize(f'{namespace}-{name}-{digest}')}@kubernetescrd"


def traefik_service(name: str, provider: str) -> str:
    """Traefik's `service` metric label for a routed service (the provider suffix is Traefik's)."""
    return f"{name}@{provider}"


def kubernetes_traefik_service(namespace: str, name: str, port: int) -> str:
    """An IngressRoute's service as Traefik names it: <namespace>-<service>-<port>@kubernetescrd."""
    return f"{namespace}-{name}-{port}@kubernetescrd"


def _namespace(blueprint: Blueprint) -> str:
    kubernetes = blueprint.kubernetes
    return (kubernetes.namespace if kubernetes is not None else None) or blueprint.project


def route_dashboards(blueprint: Blueprint, gateway: GatewayPlan | None) -> tuple[RouteDashboard, ...]:
    if gateway is None:
        return ()
    dashboards = []
    for route in gateway.routes:
        dashboards.append(
            RouteDashboard(
                service=route.name,
                uid=f"{blueprint.project}-{route.name}"[:40],
                title=f"{blueprint.project} / {route.name}",
                matcher=f'service="{traefik_service(route.name, gateway.provider)}"',
                kubernetes_matcher=f'service="{kubernetes_traefik_service(_namespace(blueprint), route.name, route.port)}"',
                budget_seconds=route.budget.seconds,
                budget_text=route.budget.text,
                router_matcher=_router_matcher(blueprint, gateway, route, "compose"),
                kubernetes_router_matcher=_router_matcher(blueprint, gateway, route, "kubernetes"),
                objective=route.objective,
                breaker=route.breaker is not None,
                retry=route.retry_attempts is not None,
            )
        )
    return tuple(dashboards)


def _rule(
    alert: str, expr: str, for_: str, severity: str, subject: tuple[str, str], summary: str, description: str, at: tuple
) -> AlertRule:
    labels = (("severity", severity), subject)
    return AlertRule(alert, expr, for_, tuple(sorted(labels)), summary, description, at)


def rule_groups(
    blueprint, datastores, gateway, interval: Duration, window: str, flavours: tuple[str, ...]
) -> tuple[tuple[RuleGroup, ...], ...]:
    """Alert rule groups for each flavour (compose, kubernetes). The flavours differ in how
    Traefik names a routed service, where a container's memory limit is read (cAdvisor, or
    kube-state-metrics) and in the compose host's declared disk; the rest is the same in both."""
    every = prom_duration(interval.ms)
    availability = RuleGroup("availability", every, (_target_down(interval),))
    datastore_group = RuleGroup("datastores", every, _datastore_rules(datastores, interval, window))
    flavoured = []
    for flavour in flavours:
        gateway_group = RuleGroup("gateway", every, _route_rules(blueprint, gateway, window, interval, flavour))
        host = RuleGroup("host", every, host_rules(blueprint, interval, window, flavour))
        resources = RuleGroup("resources", every, (container_memory_rule(blueprint, interval, flavour),))
        groups = (availability, gateway_group, datastore_group, host, resources)
        flavoured.append(tuple(group for group in groups if group.rules))
    return tuple(flavoured)


def _target_down(interval: Duration) -> AlertRule:
    return _rule(
        "TargetDown",
        "up == 0",
        at_least(FOR_DOWN, interval, 3),
        "critical",
        ("service", "{{ $labels.job }}"),
        "{{ $labels.job }} is down: Prometheus cannot scrape {{ $labels.instance }}",
        "The scrape of job {{ $labels.job }} at {{ $labels.instance }} has failed for a while: the process is down or unreachable.",
        ("observability", "alerts"),
    )


def _router_matcher(blueprint, gateway: GatewayPlan, route: RoutePlan, flavour: str) -> str:
    """The `router` label of a route's requests as Traefik names it in this flavour."""
    if flavour == "kubernetes":
        return f'router="{kubernetes_traefik_router(_namespace(blueprint), route.name, route.rule)}"'
    return f'router="{traefik_router(route.name, gateway.provider)}"'


# a route's requests at the gateway, counted by its router: after the middlewares, so the rate
# limit's 429s and the open breaker's 503s are there (the service metrics never see them)
ROUTER_REQUESTS = "traefik_router_requests_total"
ROUTER_BUCKETS = "traefik_router_request_duration_seconds_bucket"
FAILED = 'code=~"5.."'
THROTTLED = 'code="429"'
UNAVAILABLE = f'code="{BREAKER_STATUS}"'  # what an open breaker answers
COUNTED = 'code!="429"'  # a throttled request is neither a success nor a failure of the route


def _rate(matcher: str, window: str, codes: str = "") -> str:
    selector = f"{matcher},{codes}" if codes else matcher
    return f"sum(rate({ROUTER_REQUESTS}{{{selector}}}[{window}]))"


def error_ratio(matcher: str, window: str) -> str:
    """5xx over the requests that count (429 left out), at the gateway."""
    return f"{_rate(matcher, window, FAILED)} / {_rate(matcher, window, COUNTED)}"


def route_quantile(matcher: str, window: str, quantile: float = LATENCY_QUANTILE) -> str:
    """The route's latency quantile at the gateway, throttled requests left out (answered at once, they would hide slow ones)."""
    return f"histogram_quantile({quantile}, sum by (le) (rate({ROUTER_BUCKETS}{{{matcher},{COUNTED}}}[{window}])))"


def _route_rules(blueprint, gateway, window: str, interval: Duration, flavour: str) -> tuple[AlertRule, ...]:
    if gateway is None:
        return ()
    rules = []
    for route in gateway.routes:
        matcher = _router_matcher(blueprint, gateway, route, flavour)
        rules.extend(_burn_rule(route, matcher, burn, interval) for burn in BURN_RATES)
        if route.objective.latency_ms is not None:
            rules.append(_latency_rule(route, matcher, window, interval, route.objective.latency_seconds in gateway.buckets))
        rules.append(_throttled_rule(route, matcher, window, interval))
    return tuple(rules)


def _burn_rule(route: RoutePlan, matcher: str, burn: BurnRate, interval: Duration) -> AlertRule:
    objective = route.objective
    long_window = at_least(burn.long_window, interval, 4)
    short_window = at_least(burn.short_window, interval, 4)
    threshold = objective.burn_threshold(burn)
    expr = f"{error_ratio(matcher, long_window)} > {threshold!r} and {error_ratio(matcher, short_window)} > {threshold!r}"
    return _rule(
        f"RouteErrorBudgetBurn{burn.name}",
        expr,
        at_least(FOR_BURN, interval, 4),
        burn.severity,
        ("service", route.name),
        f"{route.name} burns its error budget {burn.factor:g} times too fast ({objective.availability:g}% availability objective)",
        f"{{{{ $value | humanizePercentage }}}} of {route.name}'s requests failed at the gateway over the last {long_window} "
        f"(and over {short_window} still more than {percent(threshold)}): {burn.factor:g} times the {percent(objective.error_budget)} "
        "its objective allows. Failed is a 5xx the gateway answered: the service's own, 502 and 504 from the gateway, "
        "503 from the circuit breaker; 429 from the rate limit is not counted (RouteRateLimited).",
        ("services", route.name, "route", "availability"),
    )


def _latency_rule(route: RoutePlan, matcher: str, window: str, interval: Duration, on_edge: bool) -> AlertRule:
    objective = route.objective
    edge = "a histogram bucket ends there" if on_edge else "no histogram bucket ends there: the p99 is interpolated (warning traefik-bucket-cap)"
    return _rule(
        "RouteLatencyOverBudget",
        f"{route_quantile(matcher, window)} > {objective.latency_seconds!r}",
        at_least(FOR_LATENCY, interval, 4),
        "warning",
        ("service", route.name),
        f"{route.name}: p99 latency at the gateway is above {objective.latency_text}",
        f"p99 of {route.name} at the gateway is {{{{ $value | humanizeDuration }}}} over the last {window}; the objective is "
        f"{objective.latency_text}: {objective.latency_reason()} ({edge}). 429s are left out.",
        ("services", route.name, "route"),
    )


def _throttled_rule(route: RoutePlan, matcher: str, window: str, interval: Duration) -> AlertRule:
    return _rule(
        "RouteRateLimited",
        f"{_rate(matcher, window, THROTTLED)} / {_rate(matcher, window)} > {THROTTLED_RATIO}",
        at_least(FOR_THROTTLED, interval, 4),
        "info",
        ("service", route.name),
        f"{route.name}: more than {THROTTLED_RATIO:.0%} of requests are refused by the rate limit (429)",
        f"{{{{ $value | humanizePercentage }}}} of {route.name}'s requests were answered 429 over the last {window}: "
        "clients throttled by design, which the availability objective does not count. Raise the rate limit if they are legitimate.",
        route.rate_limit.at,
    )


def _connections_expr(store: DatastorePlan) -> str:
    job = f'job="{store.name}"'
    if store.engine == "postgres":
        return (
            f"sum by (job, instance) (pg_stat_activity_count{{{job}}}) / on (job, instance) "
            f"max by (job, instance) (pg_settings_max_connections{{{job}}}) > {CONNECTIONS_RATIO}"
        )
    if store.engine == "redis":
        return f"redis_connected_clients{{{job}}} / redis_config_maxclients{{{job}}} > {CONNECTIONS_RATIO}"
    return f"mysql_global_status_threads_connected{{{job}}} / mysql_global_variables_max_connections{{{job}}} > {CONNECTIONS_RATIO}"


def _datastore_rules(datastores, interval: Duration, window: str) -> tuple[AlertRule, ...]:
    rules = []
    for store in datastores:
        owner = f" (used by {store.owner})" if store.owner else ""
        at = ("datastores", store.name)
        rules.append(
            _rule(
                "DatastoreDown",
                f'{UP_METRICS[store.engine]}{{job="{store.name}"}} == 0',
                at_least(FOR_DATASTORE_DOWN, interval, 3),
                "critical",
                ("datastore", store.name),
                f"{store.name}{owner} is down: its exporter cannot reach {store.engine}",
                f"{store.name}-exporter reports {UP_METRICS[store.engine]} 0 for {store.name}.",
                at,
            )
        )
        rules.append(
            _rule(
                "DatastoreConnectionsHigh",
                _connections_expr(store),
                at_least(FOR_CONNECTIONS, interval, 4),
                "warning",
                ("datastore", store.name),
                f"{store.name}{owner} uses more than {CONNECTIONS_RATIO:.0%} of its connections",
                f"{store.name} has {{{{ $value | humanizePercentage }}}} of its connection limit in use (max_connections {store.max_connections}).",
                (*at, "max_connections"),
            )
        )
    return tuple(rules)


# --- host and container metrics ---------------------------------------------------------------
# compose runs node_exporter and cAdvisor beside the stack; on Kubernetes the cluster's own
# node_exporter and the kubelet's cAdvisor are scraped (README: host metrics)
HOST_AGENTS = ("node-exporter", "cadvisor")
NODE_JOB = "node"
CADVISOR_JOB = "cadvisor"
# filesystems that hold data: node_exporter already leaves out the kernel's pseudo filesystems
DATA_FILESYSTEMS = f'job="{NODE_JOB}",fstype!~"tmpfs|ramfs"'
COMPOSE_SERVICE_LABEL = "container_label_com_docker_compose_service"  # cAdvisor's name for a docker label


def host_jobs() -> tuple[ScrapeJob, ...]:
    """node_exporter and cAdvisor, as the compose stack runs them (static targets by name)."""
    at = ("observability", "prometheus")
    return (
        ScrapeJob(NODE_JOB, "host", "node-exporter", images.port("node-exporter"), "/metrics", False, NODE_JOB, at),
        ScrapeJob(CADVISOR_JOB, "host", "cadvisor", images.port("cadvisor"), "/metrics", False, CADVISOR_JOB, at),
    )


def cpu_share_expr(mode: str, window: str) -> str:
    """Percent of the CPU time in `mode` over `window`, per host: the mode's seconds over all
    modes' seconds summed over every CPU, as `msgen host check` reads /proc/stat."""
    cpu = f'node_cpu_seconds_total{{job="{NODE_JOB}"'
    return f'100 * sum by (instance) (rate({cpu},mode="{mode}"}}[{window}])) / sum by (instance) (rate({cpu}}}[{window}]))'


def host_rules(blueprint, interval: Duration, window: str, flavour: str) -> tuple[AlertRule, ...]:
    """CPU steal, I/O wait and filling disks of every host node_exporter runs on."""
    at = ("hosts",)
    host = ("host", "{{ $labels.instance }}")
    steal = _rule(
        "HostCpuStealHigh",
        f"{cpu_share_expr('steal', window)} > {CPU_STEAL_THRESHOLD:g}",
        at_least(FOR_HOST_CPU, interval, 4),
        "critical",
        host,
        f"{{{{ $labels.instance }}}}: CPU steal above {CPU_STEAL_THRESHOLD:g}%: the hypervisor gives this host's vCPUs to other guests",
        f"{{{{ $value | humanize }}}}% of the CPU time over the last {window} was stolen; processes stall while their vCPU is away. "
        "Move the instance to another hypervisor or a dedicated-CPU instance type.",
        at,
    )
    iowait = _rule(
        "HostIowaitHigh",
        f"{cpu_share_expr('iowait', window)} > {IOWAIT_THRESHOLD:g}",
        at_least(FOR_HOST_CPU, interval, 4),
        "warning",
        host,
        f"{{{{ $labels.instance }}}}: I/O wait above {IOWAIT_THRESHOLD:g}%: the disks keep work waiting",
        f"{{{{ $value | humanize }}}}% of the CPU time over the last {window} was idle with I/O outstanding.",
        at,
    )
    return (steal, iowait, *_disk_rules(blueprint, interval, flavour))


def _disk_rules(blueprint, interval: Duration, flavour: str) -> tuple[AlertRule, ...]:
    at = ("hosts",)
    host = ("host", "{{ $labels.instance }}")
    avail, size = f"node_filesystem_avail_bytes{{{DATA_FILESYSTEMS}}}", f"node_filesystem_size_bytes{{{DATA_FILESYSTEMS}}}"
    trend, horizon = prom_duration(DISK_TREND_WINDOW.ms), prom_duration(DISK_HORIZON.ms)
    rules = [
        _rule(
            "HostDiskFilling",
            f"{avail} / {size} < {DISK_FREE_RATIO}",
            at_least(FOR_DISK, interval, 4),
            "critical",
            host,
            f"{{{{ $labels.instance }}}}: {{{{ $labels.mountpoint }}}} has less than {DISK_FREE_RATIO:.0%} of its space free",
            "{{ $value | humanizePercentage }} of {{ $labels.mountpoint }} is free; a datastore stops writing when it is full.",
            at,
        ),
        _rule(
            "HostDiskFillsWithinADay",
            f"predict_linear({avail}[{trend}], {DISK_HORIZON.ms // 1000}) < 0",
            at_least(FOR_DISK_TREND, interval, 4),
            "warning",
            host,
            f"{{{{ $labels.instance }}}}: {{{{ $labels.mountpoint }}}} fills within {horizon} at the rate of the last {trend}",
            f"At the pace of the last {trend}, {{{{ $labels.mountpoint }}}} runs out of space within {horizon}: "
            "{{ $value | humanize1024 }}B left by then.",
            at,
        ),
    ]
    declared = _compose_host(blueprint) if flavour == "compose" else None
    if declared is not None and declared.disk is not None:
        limit = int(declared.disk.bytes * DISK_USED_RATIO)
        root = f'{DATA_FILESYSTEMS},mountpoint="/"'
        rules.append(
            _rule(
                "HostDiskOverDeclared",
                f"node_filesystem_size_bytes{{{root}}} - node_filesystem_avail_bytes{{{root}}} > {limit}",
                at_least(FOR_DISK, interval, 4),
                "warning",
                ("host", declared.name),
                f"{declared.name} uses more than {DISK_USED_RATIO:.0%} of its declared {declared.disk.text} of disk",
                f"{{{{ $value | humanize1024 }}}}B are in use on /; the capacity plan counted the volumes against host.disk "
                f"{declared.disk.text}.",
                ("hosts", declared.name, "disk"),
            )
        )
    return tuple(rules)


def _compose_host(blueprint: Blueprint):
    """The host the compose stack runs on (compose.host, or the first host)."""
    if blueprint.compose is None or not blueprint.hosts:
        return None
    name = blueprint.compose.host or blueprint.hosts[0].name
    return next(host for host in blueprint.hosts if host.name == name)


def container_memory_rule(blueprint, interval: Duration, flavour: str) -> AlertRule:
    """Every container's working set against its own memory limit: cAdvisor's limit on compose,
    kube-state-metrics' on Kubernetes (the kubelet's cAdvisor reports the working set)."""
    if flavour == "kubernetes":
        by = "by (namespace, pod, container)"
        namespace = f'namespace="{_namespace(blueprint)}"'
        used = f'max {by} (container_memory_working_set_bytes{{{namespace},container!="",container!="POD"}})'
        limit = f'max {by} (kube_pod_container_resource_limits{{{namespace},resource="memory"}} > 0)'
        subject, who = ("service", "{{ $labels.container }}"), "{{ $labels.pod }}/{{ $labels.container }}"
    else:
        by = f"by (name, {COMPOSE_SERVICE_LABEL})"
        used = f'max {by} (container_memory_working_set_bytes{{job="{CADVISOR_JOB}",name!=""}})'
        limit = f'max {by} (container_spec_memory_limit_bytes{{job="{CADVISOR_JOB}",name!=""}} > 0)'
        subject, who = ("service", f"{{{{ $labels.{COMPOSE_SERVICE_LABEL} }}}}"), "container {{ $labels.name }}"
    return _rule(
        "ContainerMemoryNearLimit",
        f"{used} / {limit} > {MEMORY_RATIO}",
        at_least(FOR_MEMORY, interval, 4),
        "warning",
        subject,
        f"{who} uses more than {MEMORY_RATIO:.0%} of its memory limit",
        f"{who} has {{{{ $value | humanizePercentage }}}} of its memory limit in its working set; the kernel kills it at the limit.",
        ("observability", "alerts"),
    )


def container_sizes(grafana: bool, loki: bool, prometheus: bool, datastores) -> tuple[ContainerSize, ...]:
    sizes = []
    wanted = [("prometheus", prometheus), ("grafana", grafana), ("loki", loki), ("alloy", loki)]
    for name, enabled in wanted:
        if enabled:
            cpu, memory, why = DEFAULT_SIZES[name]
            sizes.append(ContainerSize(name, cpu, memory, why))
    if prometheus:
        cpu, memory, why = DEFAULT_SIZES["exporter"]
        sizes.extend(ContainerSize(f"{store.name}-exporter", cpu, memory, why) for store in datastores)
        sizes.extend(ContainerSize(name, *DEFAULT_SIZES[name]) for name in HOST_AGENTS)
    return tuple(sizes)


def alerting_sizes(alerting: AlertingPlan | None) -> tuple[ContainerSize, ...]:
    """Alertmanager's size, when it runs."""
    if alerting is None:
        return ()
    cpu, memory, why = DEFAULT_SIZES["alertmanager"]
    return (ContainerSize("alertmanager", cpu, memory, why),)


# how each exporter gets its credentials without msgen writing a secret (README: exporters)
EXPORTER_MY_CNF = "/tmp/my.cnf"
MYSQLD_EXPORTER_BINARY = "/bin/mysqld_exporter"
REDIS_EXPORTER_BINARY = "/redis_exporter"


def exporter_login(store: DatastorePlan) -> tuple[str, str, str]:
    """(user, password file, secret name): SQL engines give the exporter a user of its own."""
    if store.is_sql:
        return EXPORTER_USER, EXPORTER_PASSWORD_FILE, EXPORTER_PASSWORD_SECRET
    return "", PASSWORD_FILE, PASSWORD_SECRET


def _mysql_script(store: DatastorePlan, host: str) -> str:
    """Assemble a [client] file from the password secret, then run the exporter on it.

    mysqld_exporter 0.15+ no longer reads DATA_SOURCE_NAME; `--config.my-cnf` is what both
    the pinned image and Debian's 0.14 accept. The script has no `$`, so compose needs no escaping.
    """
    return (
        "umask 077 && "
        f"printf '[client]\\nuser=%s\\nhost=%s\\nport=%s\\npassword=' '{EXPORTER_USER}' '{host}' '{store.port}' > {EXPORTER_MY_CNF} && "
        f"cat {EXPORTER_PASSWORD_FILE} >> {EXPORTER_MY_CNF} && "
        f"exec {MYSQLD_EXPORTER_BINARY} --config.my-cnf={EXPORTER_MY_CNF} --web.listen-address=:{images.port(EXPORTER_IMAGES[store.engine])}"
    )


def _redis_script(store: DatastorePlan, host: str) -> str:
    """redis_exporter takes the password from REDIS_PASSWORD (its -redis.password-file is a JSON map of URIs).

    `read` keeps the script free of `$`, which compose would otherwise interpolate; `;`, not
    `&&`, because `read` fails on a last line without a newline (yet still sets the variable).
    """
    return (
        f"IFS= read -r REDIS_PASSWORD < {PASSWORD_FILE}; export REDIS_PASSWORD; "
        f"exec {REDIS_EXPORTER_BINARY} -redis.addr=redis://{host}:{store.port} -web.listen-address=:{images.port(EXPORTER_IMAGES['redis'])}"
    )


def plan_exporter(store: DatastorePlan, host: str) -> ExporterPlan:
    """How the exporter of `store` starts, reaching the engine at `host` (a name or an address)."""
    name = f"{store.name}-exporter"
    common = dict(name=name, datastore=store.name, engine=store.engine, image_key=EXPORTER_IMAGES[store.engine])
    common.update(password_secret=exporter_login(store)[2])
    common.update(port=images.port(EXPORTER_IMAGES[store.engine]))
    if store.engine == "postgres":
        # postgres_exporter reads the password file itself (DATA_SOURCE_PASS_FILE), in 0.11 and 0.15+ alike
        environment = (
            ("DATA_SOURCE_PASS_FILE", EXPORTER_PASSWORD_FILE),
            ("DATA_SOURCE_URI", f"{host}:{store.port}/{store.db_name}?sslmode=disable"),
            ("DATA_SOURCE_USER", EXPORTER_USER),
        )
        return ExporterPlan(
            **common, environment=environment, command=(f"--web.listen-address=:{images.port(EXPORTER_IMAGES['postgres'])}",), entrypoint=None
        )
    script = _redis_script(store, host) if store.engine == "redis" else _mysql_script(store, host)
    return ExporterPlan(**common, environment=(), command=(script,), entrypoint=("/bin/sh", "-c"))


@dataclass(frozen=True)
class Panel:
    title: str
    exprs: tuple[tuple[str, str], ...]  # (legend, PromQL)
    unit: str  # Grafana unit id
    threshold: float | None  # drawn as a red line (the latency budget)


def route_panels(dashboard: RouteDashboard, window: str, kubernetes: bool = False) -> tuple[Panel, ...]:
    """What the clients of one routed service got, from its router at the gateway: requests by
    code, the 5xx ratio against the availability objective, p50/p99 against the latency
    objective, 429s, and (where the route has them) the breaker's 503s and the retries."""
    router = dashboard.kubernetes_router_matcher if kubernetes else dashboard.router_matcher
    service = dashboard.kubernetes_matcher if kubernetes else dashboard.matcher
    objective = dashboard.objective
    panels = [
        Panel("Requests by code", (("{{code}}", f"sum by (code) (rate({ROUTER_REQUESTS}{{{router}}}[{window}]))"),), "reqps", None),
        Panel(
            f"5xx ratio (objective {objective.availability:g}%, 429 left out)",
            (("5xx", error_ratio(router, window)),),
            "percentunit",
            objective.error_budget,
        ),
        Panel(
            f"Latency at the gateway (objective {objective.latency_text}; budget {dashboard.budget_text})",
            (("p50", route_quantile(router, window, 0.5)), ("p99", route_quantile(router, window))),
            "s",
            objective.latency_seconds,
        ),
        Panel("Refused by the rate limit (429)", (("429/s", _rate(router, window, THROTTLED)),), "reqps", None),
    ]
    if dashboard.breaker:
        # a 503 the router counted and the service did not: the open breaker answered it
        service_503 = f"sum(rate(traefik_service_requests_total{{{service},{UNAVAILABLE}}}[{window}]))"
        breaker = f"{_rate(router, window, UNAVAILABLE)} - ({service_503} or vector(0))"
        panels.append(Panel("503 from the circuit breaker", (("503/s", breaker),), "reqps", None))
    if dashboard.retry:
        retries = f"sum(rate(traefik_service_retries_total{{{service}}}[{window}]))"
        panels.append(Panel("Retries by the gateway", (("retries/s", retries),), "reqps", None))
    return tuple(panels)


def overview_panels(plan: ObservabilityPlan, datastores: tuple[DatastorePlan, ...], kubernetes: bool = False) -> tuple[Panel, ...]:
    """The stack at a glance: every job's up, each datastore engine's up, each route's rate."""
    panels = [Panel("Targets up", (("{{job}}", "min by (job) (up)"),), "none", None)]
    if datastores:
        exprs = tuple((store.name, f'{UP_METRICS[store.engine]}{{job="{store.name}"}}') for store in datastores)
        panels.append(Panel("Datastores up", exprs, "none", None))
    if plan.dashboards:
        exprs = tuple(
            (d.service, _rate(d.kubernetes_router_matcher if kubernetes else d.router_matcher, plan.rate_window)) for d in plan.dashboards
        )
        panels.append(Panel("Requests per routed service", exprs, "reqps", None))
    return tuple(panels)
