"""The observability plan: scrape jobs, alert rules, exporters, dashboards, computed once.

Two renderings read it: the compose flavour (prometheus.yml with DNS/static targets, rule
files, Grafana and Loki provisioning, the containers of the monitoring stack) and the
Kubernetes flavour (kubernetes_sd_configs in a ConfigMap, or PodMonitor/PrometheusRule
objects for the Prometheus operator). PromQL expressions are built here, never in templates.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from msgen import images
from msgen.contract import EXPORTER_PASSWORD_FILE, EXPORTER_PASSWORD_SECRET, EXPORTER_USER, PASSWORD_FILE, PASSWORD_SECRET
from msgen.model.blueprint import Blueprint
from msgen.plan.gateway import METRICS as GATEWAY_METRICS_ENTRYPOINT
from msgen.plan.gateway import PORTS as GATEWAY_PORTS
from msgen.plan.gateway import GatewayPlan
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
ERROR_RATIO = 0.05
CONNECTIONS_RATIO = 0.8
MEMORY_RATIO = 0.9
LATENCY_QUANTILE = 0.99
# CPU steal above this share of the CPU time (percent) is the error finding host-steal of
# `msgen host check` (msgen/hostcheck.py); a steal alert rule is to read the same constant.
# A KVM instance with its vCPUs to itself shows next to none: 2% is already a hypervisor
# that gives them to other guests, and a datastore that stalls while its vCPU is away.
CPU_STEAL_THRESHOLD = 2.0
# the smallest windows and `for` durations; each is raised to a multiple of the scrape interval
MIN_RATE_WINDOW = Duration(300_000, "5m")
FOR_DOWN = Duration(120_000, "2m")
FOR_DATASTORE_DOWN = Duration(60_000, "1m")
FOR_ERRORS = Duration(300_000, "5m")
FOR_LATENCY = Duration(600_000, "10m")
FOR_CONNECTIONS = Duration(300_000, "5m")
FOR_MEMORY = Duration(600_000, "10m")
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
    "exporter": (Cpu(100, "100m"), Memory(64 * 1024**2, "64Mi"), "an exporter holds one connection and one scrape's metrics"),
}


def prom_duration(ms: int) -> str:
    """A duration in Prometheus' syntax, in the largest unit that states it exactly."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def at_least(floor: Duration, interval: Duration, intervals: int) -> str:
    """The larger of `floor` and `intervals` scrape intervals: a rate needs several samples."""
    return prom_duration(max(floor.ms, interval.ms * intervals))


@dataclass(frozen=True)
class ScrapeJob:
    """One scrape job; `host:port` is the compose target, `app` the Kubernetes pod name label."""

    name: str
    kind: str  # prometheus | gateway | service | datastore
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
    """The dashboard of one routed service: gateway metrics matched by Traefik's service label."""

    service: str
    uid: str
    title: str
    matcher: str  # compose: service="payment@file"
    kubernetes_matcher: str
    budget_seconds: float
    budget_text: str


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
        return tuple(name for name, on in wanted if on)


def plan_observability(
    blueprint: Blueprint, services: tuple[ServicePlan, ...], datastores: tuple[DatastorePlan, ...], gateway: GatewayPlan | None
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
    groups = rule_groups(blueprint, services, datastores, gateway, interval, window, flavours) if alerts else ((), ())
    compose_rules, kubernetes_rules = groups[0], (groups[1] if len(groups) > 1 else ())
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
        sizes=container_sizes(section.grafana, section.loki, prometheus is not None, datastores),
        rate_window=window,
        unscraped=tuple(service.name for service in services if service.metrics_port is None),
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
    return tuple(jobs)


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
            )
        )
    return tuple(dashboards)


def _rule(
    alert: str, expr: str, for_: str, severity: str, subject: tuple[str, str], summary: str, description: str, at: tuple
) -> AlertRule:
    labels = (("severity", severity), subject)
    return AlertRule(alert, expr, for_, tuple(sorted(labels)), summary, description, at)


def rule_groups(
    blueprint, services, datastores, gateway, interval: Duration, window: str, flavours: tuple[str, ...]
) -> tuple[tuple[RuleGroup, ...], ...]:
    """Alert rule groups for each flavour (compose, kubernetes). The flavours differ only in
    how Traefik names a routed service: the other groups are the same objects in both."""
    every = prom_duration(interval.ms)
    availability = RuleGroup("availability", every, (_target_down(interval),))
    datastore_group = RuleGroup("datastores", every, _datastore_rules(datastores, interval, window))
    resources = RuleGroup("resources", every, _memory_rules(blueprint, services, gateway, interval))
    flavoured = []
    for flavour in flavours:
        gateway_group = RuleGroup("gateway", every, _route_rules(blueprint, gateway, window, interval, flavour))
        flavoured.append(tuple(group for group in (availability, gateway_group, datastore_group, resources) if group.rules))
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


def _route_rules(blueprint, gateway, window: str, interval: Duration, flavour: str) -> tuple[AlertRule, ...]:
    if gateway is None:
        return ()
    rules = []
    for route in gateway.routes:
        if flavour == "kubernetes":
            matcher = f'service="{kubernetes_traefik_service(_namespace(blueprint), route.name, route.port)}"'
        else:
            matcher = f'service="{traefik_service(route.name, gateway.provider)}"'
        at = ("services", route.name, "route")
        requests = f"sum(rate(traefik_service_requests_total{{{matcher}}}[{window}]))"
        errors = f'sum(rate(traefik_service_requests_total{{{matcher},code=~"5.."}}[{window}]))'
        rules.append(
            _rule(
                "ServiceErrorRatioHigh",
                f"{errors} / {requests} > {ERROR_RATIO}",
                at_least(FOR_ERRORS, interval, 4),
                "critical",
                ("service", route.name),
                f"{route.name}: more than {ERROR_RATIO:.0%} of requests through the gateway fail with 5xx",
                f"{{{{ $value | humanizePercentage }}}} of {route.name}'s requests answered 5xx over the last {window}.",
                at,
            )
        )
        buckets = f"sum by (le) (rate(traefik_service_request_duration_seconds_bucket{{{matcher}}}[{window}]))"
        rules.append(
            _rule(
                "ServiceLatencyOverBudget",
                f"histogram_quantile({LATENCY_QUANTILE}, {buckets}) > {route.budget.seconds!r}",
                at_least(FOR_LATENCY, interval, 4),
                "warning",
                ("service", route.name),
                f"{route.name}: p99 latency at the gateway is above its {route.budget.text} budget",
                f"p99 of {route.name} is {{{{ $value | humanizeDuration }}}} over the last {window}; the budget is {route.budget.text} "
                "(a gateway histogram bucket ends exactly at the budget).",
                at,
            )
        )
    return tuple(rules)


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


def _memory_rules(blueprint, services, gateway, interval: Duration) -> tuple[AlertRule, ...]:
    """Process memory against the container limit, for the jobs whose processes export it.

    Compose has no cAdvisor: `process_resident_memory_bytes`, exported by Prometheus' client
    libraries (Go, Java, Python), Traefik and Prometheus, is the metric that exists.
    """
    limits = [("prometheus", DEFAULT_SIZES["prometheus"][1], ("observability", "prometheus"))]
    if gateway is not None and blueprint.gateway is not None:
        limits.append(("gateway", blueprint.gateway.resources.memory, ("gateway", "resources", "memory")))
    for service in services:
        if service.metrics_port is not None:
            limits.append((service.name, service.limits.memory, ("services", service.name, "resources")))
    rules = []
    for job, limit, at in limits:
        threshold = int(limit.bytes * MEMORY_RATIO)
        rules.append(
            _rule(
                "MemoryNearLimit",
                f'process_resident_memory_bytes{{job="{job}"}} > {threshold}',
                at_least(FOR_MEMORY, interval, 4),
                "warning",
                ("service", job),
                f"{job} uses more than {MEMORY_RATIO:.0%} of its {limit.text} memory limit",
                f"{{{{ $labels.instance }}}} of {job} has {{{{ $value | humanize1024 }}}}B resident; the container is killed at {limit.text}.",
                at,
            )
        )
    return tuple(rules)


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
    return tuple(sizes)


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
    """Request rate, 5xx ratio and latency of one routed service, from the gateway's metrics."""
    matcher = dashboard.kubernetes_matcher if kubernetes else dashboard.matcher
    requests = f"sum(rate(traefik_service_requests_total{{{matcher}}}[{window}]))"
    errors = f'sum(rate(traefik_service_requests_total{{{matcher},code=~"5.."}}[{window}]))'
    buckets = f"sum by (le) (rate(traefik_service_request_duration_seconds_bucket{{{matcher}}}[{window}]))"
    return (
        Panel("Request rate", (("requests/s", requests),), "reqps", None),
        Panel("5xx ratio", (("5xx", f"{errors} / {requests}"),), "percentunit", ERROR_RATIO),
        Panel(
            f"Latency (budget {dashboard.budget_text})",
            (("p50", f"histogram_quantile(0.5, {buckets})"), ("p99", f"histogram_quantile({LATENCY_QUANTILE}, {buckets})")),
            "s",
            dashboard.budget_seconds,
        ),
    )


def overview_panels(plan: ObservabilityPlan, datastores: tuple[DatastorePlan, ...], kubernetes: bool = False) -> tuple[Panel, ...]:
    """The stack at a glance: every job's up, each datastore engine's up, each route's rate."""
    panels = [Panel("Targets up", (("{{job}}", "min by (job) (up)"),), "none", None)]
    if datastores:
        exprs = tuple((store.name, f'{UP_METRICS[store.engine]}{{job="{store.name}"}}') for store in datastores)
        panels.append(Panel("Datastores up", exprs, "none", None))
    if plan.dashboards:
        exprs = tuple(
            (d.service, f"sum(rate(traefik_service_requests_total{{{d.kubernetes_matcher if kubernetes else d.matcher}}}[{plan.rate_window}]))")
            for d in plan.dashboards
        )
        panels.append(Panel("Requests per routed service", exprs, "reqps", None))
    return tuple(panels)
