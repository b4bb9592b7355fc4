"""The dashboards beside the gateway's route dashboards: one per service (its scrape and its
process, and its logs), one per datastore (its exporter's metrics, and its logs).

Every PromQL and LogQL expression is built here. The logs selectors use the labels both
log collectors attach: `project` and `service` (compose: the compose service name; Kubernetes:
the pod's `app.kubernetes.io/name`, which is the service's or datastore's name).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from msgen.plan.observability import (
    CONNECTIONS_RATIO,
    MEMORY_RATIO,
    UP_METRICS,
    ObservabilityPlan,
    Panel,
    RouteDashboard,
    prom_duration,
)
from msgen.plan.services import DatastorePlan, ServicePlan

# the log stream labels the Alloy configurations attach (templates/observability/*.alloy.j2)
LOG_PROJECT_LABEL = "project"
LOG_SERVICE_LABEL = "service"
# Grafana keeps a dashboard uid to 40 characters
UID_LENGTH = 40


@dataclass(frozen=True)
class LogsPanel:
    title: str
    selector: str  # a LogQL stream selector


@dataclass(frozen=True)
class Variable:
    """A dashboard variable over a label's values (Grafana's `label_values(selector, label)`)."""

    name: str
    selector: str
    label: str


@dataclass(frozen=True)
class Board:
    """One dashboard: `kind` is service or datastore; `path` is its file under the dashboards folder."""

    kind: str
    name: str
    uid: str
    title: str
    path: str


def board_uid(project: str, kind: str, name: str) -> str:
    """A uid no other board of the project has: `_` never occurs in a name, and a uid longer
    than Grafana allows keeps a digest of the whole in place of its end."""
    text = f"{project}_{kind}_{name}"
    if len(text) <= UID_LENGTH:
        return text
    return f"{text[: UID_LENGTH - 9]}_{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def log_selector(project: str, subject: str) -> str:
    return f'{{{LOG_PROJECT_LABEL}="{project}", {LOG_SERVICE_LABEL}="{subject}"}}'


def service_has_board(service: ServicePlan, loki: bool) -> bool:
    """A service with metrics has its process to show; one without, only its logs, which a
    routed service already shows on its route dashboard."""
    return service.metrics_port is not None or (loki and service.route is None)


def boards(observability: ObservabilityPlan, services: tuple[ServicePlan, ...], datastores: tuple[DatastorePlan, ...]) -> tuple[Board, ...]:
    """The service and datastore dashboards (with Prometheus: every panel but the logs needs it)."""
    if not observability.prometheus:
        return ()
    project = observability.project
    found = [
        Board("service", service.name, board_uid(project, "service", service.name), f"{project} / service {service.name}", f"services/{service.name}.json")
        for service in services
        if service_has_board(service, observability.loki)
    ]
    found += [
        Board("datastore", store.name, board_uid(project, "datastore", store.name), f"{project} / datastore {store.name}", f"datastores/{store.name}.json")
        for store in datastores
    ]
    return tuple(found)


def _job(name: str, instance: bool = False) -> str:
    return f'job="{name}", instance=~"$instance"' if instance else f'job="{name}"'


def service_variables(service: ServicePlan) -> tuple[Variable, ...]:
    """Replicas are instances of the job: pick one or all."""
    if service.metrics_port is None:
        return ()
    return (Variable("instance", f'up{{job="{service.name}"}}', "instance"),)


def service_panels(observability: ObservabilityPlan, service: ServicePlan) -> tuple[Panel, ...]:
    """Whether Prometheus reaches each replica, how long a scrape takes (against the timeout
    after which it fails), and the process' memory and CPU against the container's limits
    (`process_*`: what the client libraries export, as for the MemoryNearLimit alert)."""
    if service.metrics_port is None:
        return ()
    selector = _job(service.name, instance=True)
    window = observability.rate_window
    limits = service.limits
    return (
        Panel("Up", (("{{instance}}", f"up{{{selector}}}"),), "none", None),
        Panel(
            f"Scrape duration (timeout {prom_duration(observability.scrape_timeout.ms)})",
            (("{{instance}}", f"scrape_duration_seconds{{{selector}}}"),),
            "s",
            observability.scrape_timeout.ms / 1000,
        ),
        Panel(
            f"Resident memory (limit {limits.memory.text}, alert at {MEMORY_RATIO:.0%})",
            (("{{instance}}", f"process_resident_memory_bytes{{{selector}}}"),),
            "bytes",
            float(limits.memory.bytes),
        ),
        Panel(
            f"CPU (limit {limits.cpu.text})",
            (("{{instance}}", f"rate(process_cpu_seconds_total{{{selector}}}[{window}])"),),
            "none",
            limits.cpu.millicores / 1000,
        ),
        Panel("Samples per scrape", (("{{instance}}", f"scrape_samples_scraped{{{selector}}}"),), "none", None),
    )


def _connections(used: tuple[str, str], limit: tuple[str, str]) -> Panel:
    """Connections in use beside the engine's limit: (legend, PromQL) each."""
    return Panel("Connections", (used, limit), "none", None)


def _ratio(hits: str, misses: str) -> str:
    return f"{hits} / ({hits} + {misses})"


def _mysql_panels(store: DatastorePlan, window: str) -> tuple[Panel, ...]:
    job = _job(store.name)
    reads = f"rate(mysql_global_status_innodb_buffer_pool_reads{{{job}}}[{window}])"
    requests = f"rate(mysql_global_status_innodb_buffer_pool_read_requests{{{job}}}[{window}])"
    return (
        _connections(("in use", f"mysql_global_status_threads_connected{{{job}}}"), ("max_connections", f"mysql_global_variables_max_connections{{{job}}}")),
        # a read request the buffer pool could not serve is a read from disk
        Panel("Buffer pool hit ratio", (("hits", f"1 - {reads} / {requests}"),), "percentunit", None),
        Panel("Queries", (("queries/s", f"rate(mysql_global_status_queries{{{job}}}[{window}])"),), "ops", None),
        Panel("Slow queries", (("slow/s", f"rate(mysql_global_status_slow_queries{{{job}}}[{window}])"),), "ops", None),
    )


def _postgres_panels(store: DatastorePlan, window: str) -> tuple[Panel, ...]:
    job = _job(store.name)
    hits = f"sum(rate(pg_stat_database_blks_hit{{{job}}}[{window}]))"
    reads = f"sum(rate(pg_stat_database_blks_read{{{job}}}[{window}]))"
    return (
        _connections(("in use", f"sum(pg_stat_activity_count{{{job}}})"), ("max_connections", f"max(pg_settings_max_connections{{{job}}})")),
        Panel("Cache hit ratio", (("hits", _ratio(hits, reads)),), "percentunit", None),
        Panel(
            "Transactions",
            (
                ("commits/s", f"sum(rate(pg_stat_database_xact_commit{{{job}}}[{window}]))"),
                ("rollbacks/s", f"sum(rate(pg_stat_database_xact_rollback{{{job}}}[{window}]))"),
            ),
            "ops",
            None,
        ),
        Panel("Deadlocks", (("deadlocks/s", f"sum(rate(pg_stat_database_deadlocks{{{job}}}[{window}]))"),), "ops", None),
    )


def _redis_panels(store: DatastorePlan, window: str) -> tuple[Panel, ...]:
    job = _job(store.name)
    hits = f"rate(redis_keyspace_hits_total{{{job}}}[{window}])"
    misses = f"rate(redis_keyspace_misses_total{{{job}}}[{window}])"
    return (
        _connections(("clients", f"redis_connected_clients{{{job}}}"), ("maxclients", f"redis_config_maxclients{{{job}}}")),
        Panel("Keyspace hit ratio", (("hits", _ratio(hits, misses)),), "percentunit", None),
        Panel("Memory", (("used", f"redis_memory_used_bytes{{{job}}}"), ("maxmemory", f"redis_memory_max_bytes{{{job}}}")), "bytes", None),
        Panel("Evicted keys", (("evicted/s", f"rate(redis_evicted_keys_total{{{job}}}[{window}])"),), "ops", None),
    )


ENGINE_PANELS = {"mysql": _mysql_panels, "mariadb": _mysql_panels, "postgres": _postgres_panels, "redis": _redis_panels}


def datastore_panels(observability: ObservabilityPlan, store: DatastorePlan) -> tuple[Panel, ...]:
    """Whether the exporter reaches the engine, its connections against the limit (the alert
    fires at CONNECTIONS_RATIO of it), and the engine's own cache and query metrics."""
    up = Panel(f"{store.engine} up", (("up", f"{UP_METRICS[store.engine]}{{{_job(store.name)}}}"),), "none", None)
    connections, *rest = ENGINE_PANELS[store.engine](store, observability.rate_window)
    connections = Panel(f"{connections.title} (alert at {CONNECTIONS_RATIO:.0%})", connections.exprs, connections.unit, None)
    return (up, connections, *rest)


def logs_panel(observability: ObservabilityPlan, subject: str) -> tuple[LogsPanel, ...]:
    if not observability.loki:
        return ()
    return (LogsPanel(f"Logs of {subject}", log_selector(observability.project, subject)),)


def project_logs(observability: ObservabilityPlan) -> tuple[LogsPanel, ...]:
    """The overview's: the lines of every container that look like trouble."""
    if not observability.loki:
        return ()
    selector = f'{{{LOG_PROJECT_LABEL}="{observability.project}"}} |~ "(?i)(error|fatal|panic)"'
    return (LogsPanel("Lines with error, fatal or panic, every container", selector),)


def route_logs(observability: ObservabilityPlan, route: RouteDashboard) -> tuple[LogsPanel, ...]:
    return logs_panel(observability, route.service)
