"""What `msgen plan` shows: sections of rows, printed as rich tables or as JSON.

Each stage adds its section function to SECTIONS; a section function takes the Plan and
returns Sections (a title, column names, rows of cells) so that the CLI prints them and
`--format json` dumps the same data. A cell is text, or a number where the plan has one (so
JSON carries it as a number), or None where the plan has no value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from msgen import images
from msgen.checks.capacity import Capacity, Inspector
from msgen.patches import Patching
from msgen.plan import Plan
from msgen.plan import gateway as gw
from msgen.plan import kubernetes as k8s
from msgen.plan.backup import minutes_text
from msgen.plan.latency import LatencyPlan, describe_branch, format_ms
from msgen.plan.observability import AlertRule, ObservabilityPlan, prom_duration
from msgen.plan.residency import ResidencyPlan
from msgen.targets import build_each, compose, kubernetes, render_targets
from msgen.units import format_millicores, human_bytes

Cell = str | int | float | None


def cell_text(cell: Cell) -> str:
    """A cell as a table shows it: no value is `-`."""
    return "-" if cell is None else str(cell)


@dataclass(frozen=True)
class Section:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]

    def to_dict(self) -> dict:
        return {"title": self.title, "columns": list(self.columns), "rows": [dict(zip(self.columns, row, strict=True)) for row in self.rows]}

    def text_rows(self) -> tuple[tuple[str, ...], ...]:
        return tuple(tuple(cell_text(cell) for cell in row) for row in self.rows)


def services_section(plan: Plan) -> list[Section]:
    rows = []
    for service in plan.services:
        route = service.route
        where = " ".join(filter(None, [route.host or "", route.path_prefix or ""])) if route else "internal"
        rows.append(
            (
                service.name,
                service.image,
                service.port,  # None: a worker
                service.replicas,
                service.region or "-",
                where,
                f"{service.requests.cpu} / {service.limits.cpu}",
                f"{service.requests.memory} / {service.limits.memory}",
                service.datastore or "-",
                ", ".join(service.calls) or "-",
            )
        )
    columns = ("service", "image", "port", "replicas", "region", "route", "cpu req/limit", "memory req/limit", "datastore", "calls")
    return [Section("Services", columns, tuple(rows))]


def wiring_section(plan: Plan) -> list[Section]:
    rows = []
    for service in plan.services:
        for key, value in service.env:
            rows.append((service.name, key, value))
        for secret in service.secrets:
            rows.append((service.name, secret, f"file /run/secrets/{secret}"))
    return [Section("Wiring (environment each service receives)", ("service", "variable", "value"), tuple(rows))]


def placement_section(plan: Plan) -> list[Section]:
    rows = []
    for store in plan.datastores:
        rows.append(
            (
                store.name,
                f"{store.engine} {store.version}",
                store.owner or "-",
                store.region or "-",
                store.host or "-",
                store.storage_class,
                str(store.memory),
                str(store.cpu),
                str(store.storage),
            )
        )
    columns = ("datastore", "engine", "owner", "region", "tuned for host", "storage", "memory", "cpu", "volume")
    return [Section("Datastores and placement", columns, tuple(rows))]


def defaults_section(plan: Plan) -> list[Section]:
    rows = tuple((service.name, note.field, note.value, note.why) for service in plan.services for note in service.defaulted)
    return [Section("Defaulted values", ("service", "field", "value", "why"), rows)]


def tuning_section(plan: Plan) -> list[Section]:
    """Every tuned datastore setting with its value and reason (msgen/plan/tuning.py)."""
    rows = []
    for name, tuning in plan.tuning.items():
        rows.extend((name, setting.name, setting.value, setting.why) for setting in tuning.settings)
        if tuning.peak is not None:
            rows.append(
                (
                    name,
                    "(estimated peak memory)",
                    human_bytes(tuning.peak),
                    f"of the {human_bytes(tuning.limit)} limit: "
                    + " + ".join(f"{label} {human_bytes(size)}" for label, size in tuning.peak_parts),
                )
            )
        store = plan.datastore(name)
        if store.engine == "postgres":
            why = f"set on the role {store.db_user} by initdb/20-users.sh: {store.statement_timeout_why}"
            rows.append((name, "(role) statement_timeout", str(store.statement_timeout_ms), why))
    return [Section("Datastore tuning", ("datastore", "setting", "value", "why"), tuple(rows))]


def backups_section(plan: Plan) -> list[Section]:
    """Each datastore's backups: when, with what, where, for how long, and the recovery point."""
    rows = []
    for store in plan.datastores:
        backup = store.backup
        if backup is None:
            rows.append((store.name, "off", "", "", "", "", "no backups: " + _no_backup_reason(store)))
            continue
        rows.append(
            (
                store.name,
                f"{backup.schedule.text} UTC",
                str(backup.retention),
                f"{backup.location} ({backup.size}, {backup.size_why}); Kubernetes: " + _kubernetes_claims(store),
                _recovery_log(store),
                minutes_text(backup.rpo_minutes),
                f"{backup.rpo_why}; {backup.tool}",
            )
        )
    return [Section("Backups", ("datastore", "schedule", "retention", "location", "point in time", "RPO", "why"), tuple(rows))]


def _kubernetes_claims(store) -> str:
    """The backup's claims on Kubernetes: its own, and with point in time the log's, which the
    datastore's pod writes and the backup pod (on the same node) reads."""
    backup = store.backup
    if not backup.point_in_time:
        return f"claim {backup.volume}"
    return f"claims {backup.volume} and {k8s.archive_claim(store.name)} ({_recovery_log(store)}, beside the datastore)"


def _recovery_log(store) -> str:
    if not store.backup.point_in_time:
        return "no"
    return "WAL archive" if store.engine == "postgres" else "binary log"


def _no_backup_reason(store) -> str:
    if store.datastore.backup.enabled is False:
        return "backup.enabled is false"
    return "a redis cache is rebuilt from its source"


def gateway_section(plan: Plan) -> list[Section]:
    """The Traefik gateway's routes, middleware chains and effective limits (msgen/plan/gateway.py)."""
    if plan.gateway is None:
        return []
    columns = ("route", "rule", "servers", "timeout (origin)", "middlewares", "rate limit (origin)", "circuit breaker", "retry")
    return [Section(f"Gateway ({plan.gateway.provider} provider)", columns, gateway_rows(plan.gateway))]


def objectives_section(plan: Plan) -> list[Section]:
    """Each route's objectives at the gateway, and the latency histogram's edges (msgen/plan/objectives.py)."""
    gateway = plan.gateway
    if gateway is None:
        return []
    rows = []
    for route in gateway.routes:
        objective = route.objective
        declared = "availability" in plan.blueprint.services[route.name].route.model_fields_set
        if objective.latency_seconds is None:
            edge = "-"
        else:
            edge = "yes" if objective.latency_seconds in gateway.buckets else "no (traefik-bucket-cap)"
        availability = f"{objective.availability:g}%" + ("" if declared else " (default)")
        latency = objective.latency_reason() if objective.latency_ms is None else f"{objective.latency_text}: {objective.latency_reason()}"
        rows.append((route.name, availability, latency, edge))
    edges = ", ".join(f"{edge:g}" for edge in gateway.buckets)
    columns = ("route", "availability", "p99 at the gateway", "histogram edge")
    return [Section(f"Route objectives (latency histogram edges, seconds: {edges})", columns, tuple(rows))]


def observability_section(plan: Plan) -> list[Section]:
    """Scrape jobs, alerts and the monitoring containers' sizes (msgen/plan/observability.py)."""
    return [Section(title, columns, rows) for title, columns, rows in observability_tables(plan.observability)]


def kubernetes_section(plan: Plan) -> list[Section]:
    """Per workload: replicas, the nodes it may use, anti-affinity, and whether one lost node keeps it up."""
    kube = plan.kubernetes
    if kube is None:
        return []
    rows = []
    for workload in (*kube.services.values(), *kube.datastores.values()):
        where = f" ({workload.region})" if workload.region else ""
        rollout = f"surge {workload.max_surge}, unavailable {workload.max_unavailable}"
        rows.append(
            (
                workload.name,
                workload.component,
                str(workload.replicas) if workload.max_replicas == workload.replicas else f"{workload.replicas}-{workload.max_replicas}",
                f"{len(workload.nodes)}{where}",
                workload.anti_affinity,
                rollout,
                workload.survives_node_loss,
            )
        )
    columns = ("workload", "kind", "replicas", "nodes", "anti-affinity", "rolling update", "survives losing a node")
    features = tuple(
        (feature.name, feature.since, "yes: " + feature.does if kube.has(feature.name) else f"no: {feature.without}")
        for feature in k8s.FEATURES
    )
    return [
        Section(f"Kubernetes (namespace {kube.namespace}, version {kube.version})", columns, tuple(rows)),
        Section(f"Kubernetes fields by version (cluster {kube.version})", ("field", "since", "written"), features),
        volumes_section(plan),
        *service_volumes_section(plan),
    ]


def service_volumes_section(plan: Plan) -> list[Section]:
    """Per service volume: each replica's claim of which StorageClass, or an emptyDir; none without volumes."""
    rows = []
    for mounts in plan.mounts.values():
        storage = plan.kubernetes.service_volumes.get(mounts.service)
        for volume in mounts.volumes:
            if volume.persistent and storage is not None:
                kind, storage_class, why = f"claim of {volume.size.text} a replica", storage.storage_class or "(the cluster's default)", storage.why
            else:
                kind, storage_class, why = f"emptyDir of {volume.size.text}", "-", "not persistent: it goes with the pod"
            rows.append((mounts.service, volume.name, volume.path, kind, storage_class, why))
    columns = ("service", "volume", "path", "data", "StorageClass", "why")
    return [Section("Kubernetes service volumes", columns, tuple(rows))] if rows else []


def volumes_section(plan: Plan) -> Section:
    """Per datastore: a claim of which StorageClass (or the cluster's default), or an emptyDir, and why."""
    rows = []
    for store in plan.datastores:
        volume = plan.kubernetes.volumes[store.name]
        if volume.claim:
            rows.append((store.name, f"claim of {store.storage}", volume.storage_class or "(the cluster's default)", volume.why))
        else:
            rows.append((store.name, "emptyDir", "-", volume.why))
    return Section("Kubernetes datastore volumes", ("datastore", "data", "StorageClass", "why"), tuple(rows))


def kubernetes_gateway_section(plan: Plan) -> list[Section]:
    """Traefik on the cluster: the chart it is installed from, how traffic reaches it, where its certificates come from."""
    kube = plan.kubernetes
    if kube is None or kube.edge is None:
        return []
    title = f"Gateway on Kubernetes (Helm chart traefik/traefik {images.TRAEFIK_CHART_VERSION}, Traefik {images.TRAEFIK_VERSION})"
    return [Section(title, ("what", "value", "why"), edge_rows(kube.edge))]


# kubernetes.ingress -> how Traefik runs, and why that mode
INGRESS_TEXT = {
    k8s.HOST_PORTS: (
        "DaemonSet on every node's ports 80/443 (443/udp with HTTP/3), ClusterIP Service",
        "host_ports: no cloud load balancer needed; the client's address reaches Traefik as it is",
    ),
    k8s.LOAD_BALANCER: (
        f"Deployment of {k8s.GATEWAY_REPLICAS} spread over the nodes, LoadBalancer Service with externalTrafficPolicy Local",
        "load_balancer: only nodes running Traefik get traffic, and the client's address reaches the rate limiter",
    ),
}


def edge_rows(edge: k8s.EdgePlan) -> tuple[tuple[str, ...], ...]:
    """One row each for the ingress mode, the rollout and the TLS source, then one a certificate."""
    rollout = f"surge {edge.max_surge}, unavailable {edge.max_unavailable}; PodDisruptionBudget maxUnavailable 1"
    rows = [
        ("ingress", *INGRESS_TEXT[edge.ingress]),
        ("rolling update", rollout, f"survives losing a node: {edge.survives_node_loss}"),
    ]
    if edge.cert_manager:
        tls = f"cert-manager {images.CERT_MANAGER_VERSION}: ClusterIssuer {edge.issuer} (Let's Encrypt)"
        rows.append(("TLS", tls, f"gateway.acme_email; HTTP-01 answered through Traefik on IngressClass {edge.solver_class}"))
    else:
        rows.append(("TLS", "your TLS Secrets (tls.crt, tls.key)", "no gateway.acme_email; Traefik serves its self-signed one until then"))
    source = "Certificate {name}" if edge.cert_manager else "yours to create"
    rows.extend(
        (f"certificate {item.host}", f"Secret {item.namespace}/{item.secret}", source.format(name=item.name)) for item in edge.certificates
    )
    return tuple(rows)


def compose_section(plan: Plan) -> list[Section]:
    """The compose stack's containers as written (msgen/targets/compose.py, with the blueprint's overrides)."""
    if not compose.applies(plan):
        return []
    host = f" on {plan.compose_host.name}" if plan.compose_host else ""
    columns = ("container", "image", "networks", "cpus", "memory", "healthcheck", "capabilities")
    # the compose target also copies the services' config files: the stack is the compose file
    built = next(item for item in Patching(plan.blueprint).each(build_each(render_targets(plan, (compose,)))) if item.path == compose.COMPOSE_FILE)
    return [Section(f"Compose stack{host}", columns, compose_rows(built.document()))]


def compose_rows(document: dict) -> tuple[tuple[str, ...], ...]:
    """One row per container: image, networks, limits, healthcheck and capabilities, as written."""
    rows = []
    for name, entry in document["services"].items():
        limits = entry["deploy"]["resources"]["limits"]
        # a worker without a health command has no healthcheck; a container that talks to nobody, no network
        test = (entry.get("healthcheck") or {}).get("test") or ["", "none"]
        networks = ", ".join(entry.get("networks", ())) or entry.get("network_mode", "")
        capabilities = (
            "all kept (run_as_root)" if "cap_drop" not in entry else " ".join(["drop ALL", *(f"+{c}" for c in entry.get("cap_add", []))])
        )
        rows.append((name, entry["image"], networks, limits["cpus"], limits["memory"], " ".join(test[1:]), capabilities))
    return tuple(rows)


def architecture_section(plan: Plan) -> list[Section]:
    """Latency vs budget, residency, and capacity as the compose and Kubernetes objects place it."""
    policy = ", ".join(plan.residency.policy) if plan.residency.policy is not None else "no policy"
    sections = [
        Section("Latency vs budget (routed services, worst first)", *latency_table(plan.latency)),
        Section(f"Residency (personal data allowed in: {policy})", *residency_table(plan.residency)),
    ]
    columns, rows = worker_latency_table(plan)
    if rows:
        sections.insert(1, Section("Latency of workers' calls (no budget: nothing waits on a worker)", columns, rows))
    columns, rows = capacity_table(placed_capacity(plan))
    if rows:
        sections.append(Section("Capacity (per host, with headroom)", columns, rows))
    return sections


def worker_latency_table(plan: Plan) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """(columns, rows): each worker that makes calls starts a chain, as a route does."""
    latency = plan.latency
    columns = ("worker", "sum of p99s (upper bound)", "heaviest branch")
    rows = tuple(
        (service.name, format_ms(latency.cost_ms[service.name]), describe_branch(latency, service.name))
        for service in plan.services
        if service.port is None and service.calls
    )
    return columns, rows


IMAGE_SOURCES = {"msgen": "msgen's pin", "mirrored": "msgen's pin, mirrored", "overridden": "overridden"}


def images_section(plan: Plan) -> list[Section]:
    """Every image msgen chooses and where it is pulled from; an engine once per version in use
    (an engine no datastore uses has no row: its tag would be a version no datastore names)."""
    rows = []
    for key, resolved in plan.images.images.items():
        source = IMAGE_SOURCES[resolved.source]
        if not resolved.by_version:
            rows.append((key, resolved.ref(), source))
            continue
        versions = sorted({store.version for store in plan.datastores if store.engine == key})
        rows.extend((key, resolved.ref(version), source) for version in versions)
    return [Section("Images (msgen's own containers)", ("image", "reference", "source"), tuple(rows))]


SECTIONS: list[Callable[[Plan], list[Section]]] = [
    services_section,
    placement_section,
    wiring_section,
    defaults_section,
    tuning_section,
    backups_section,
    gateway_section,
    objectives_section,
    observability_section,
    kubernetes_section,
    kubernetes_gateway_section,
    compose_section,
    images_section,
    architecture_section,
]


def plan_sections(plan: Plan) -> list[Section]:
    sections: list[Section] = []
    for build in SECTIONS:
        sections.extend(build(plan))
    return sections


def placed_capacity(plan: Plan) -> Capacity:
    """What the compose and Kubernetes objects place on the hosts, read as the checks read it."""
    inspector = Inspector(plan)
    modules = tuple(module for module in (compose, kubernetes) if module.applies(plan))
    for built in Patching(plan.blueprint).each(build_each(render_targets(plan, modules))):
        inspector.read(built)
    return inspector.capacity()


def gateway_rows(gateway: gw.GatewayPlan) -> tuple[tuple[str, ...], ...]:
    """One row per route for `msgen plan`: rule, middleware chain and effective limits."""
    rows = []
    for route in gateway.routes:
        rate = route.rate_limit
        origins = dict(rate.origins)
        limit = f"{rate.average}/{gw.go_duration(rate.period)} burst {rate.burst} ({origins['average']}, {origins['burst']}, {origins['period']})"
        servers = route.urls[0] if len(route.urls) == 1 else f"{route.urls[0]} .. {route.urls[-1]} ({len(route.urls)})"
        timeout = f"{gw.go_duration(route.timeout.timeout)} ({route.timeout.origin})"
        middlewares = ", ".join(route.middleware_names)
        rows.append((route.name, route.rule, servers, timeout, middlewares, limit, _breaker_text(route.breaker), _retry_text(route)))
    return tuple(rows)


def _breaker_text(breaker: gw.BreakerPlan | None) -> str:
    if breaker is None:
        return "-"
    text = f"{breaker.expression}; open {gw.go_duration(breaker.open_for)}, recovery ramp {gw.go_duration(breaker.recovery)}"
    if breaker.min_requests is not None:
        text += f"; min_requests {breaker.min_requests} not expressible (ratio over Traefik's rolling {gw.BREAKER_WINDOW} window)"
    return text


def _retry_text(route: gw.RoutePlan) -> str:
    if route.retry_attempts is None:
        return "-"
    return (
        f"{route.retry_attempts} tries, from {gw.go_duration(route.retry_interval)}, on dropped connection/{'/'.join(gw.RETRY_STATUS)}, "
        f"idempotent methods, within {gw.go_duration(route.timeout.timeout)}"
    )


def latency_table(latency: LatencyPlan) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """(columns, rows) for `msgen plan`: routed services, worst share of budget first."""
    columns = ("route", "sum of p99s (upper bound)", "budget", "share", "status", "retry amplification", "legs", "heaviest branch")
    rows = tuple(
        (
            route.service,
            format_ms(route.total_ms),
            f"{route.budget.text} ({route.budget_field})",
            f"{route.share * 100:.0f}%",
            f"over by {format_ms(route.over_ms)}" if route.over else "ok",
            f"x{latency.amplification[route.service].factor}",
            route.legs(),
            describe_branch(latency, route.service),
        )
        for route in latency.routes
    )
    return columns, rows


def residency_table(residency: ResidencyPlan) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """(columns, rows) for `msgen plan`: every service, datastore, backup location and log store,
    where it runs, whether (and why) it holds personal data, and the verdict."""
    columns = ("kind", "name", "region", "from", "jurisdiction", "personal data", "verdict")
    rows = tuple(
        (
            p.kind,
            p.name,
            p.region or "-",
            p.region_from,
            p.jurisdiction + (f", operator {p.operator}" if p.operator else "") if p.jurisdiction else "-",
            ("yes" if p.personal_data else "no") + (f" ({p.personal_from})" if p.personal_from not in ("", "declared", "default") else ""),
            p.verdict + (f"; operator {p.operator_verdict}" if p.operator_verdict else ""),
        )
        for p in residency.placements
    )
    transfers = tuple(
        ("call", f"{t.caller} -> {t.callee}", t.region or "outside", "callee", t.jurisdiction or "unknown", "yes", "transfer outside the policy")
        for t in residency.transfers
    )
    return columns, rows + transfers


def observability_tables(observability: ObservabilityPlan | None) -> list[tuple[str, tuple[str, ...], tuple[tuple[str, ...], ...]]]:
    """`msgen plan` tables: scrape jobs, alerts, and the monitoring containers' default sizes."""
    if observability is None:
        return []
    jobs = tuple(
        (job.name, job.kind, f"dns {job.host}:{job.port}" if job.dns_sd else job.target, job.metrics_path, job.subject)
        for job in observability.jobs
    )
    timing = f"every {prom_duration(observability.scrape_interval.ms)}, timeout {prom_duration(observability.scrape_timeout.ms)}"
    alerts = tuple(
        (rule.alert, _about(rule), dict(rule.labels)["severity"], rule.for_, rule.expr)
        for group in observability.rule_groups
        for rule in group.rules
    )
    sizes = tuple((size.name, size.cpu.text, size.memory.text, size.why) for size in observability.sizes)
    return [
        (f"Scrape jobs ({timing}; retention {observability.retention})", ("job", "kind", "compose target", "path", "watches"), jobs),
        ("Alerts", ("alert", "about", "severity", "for", "expression"), alerts),
        ("Monitoring containers (msgen's default sizes)", ("container", "cpu limit", "memory limit", "why"), sizes),
    ]


def capacity_table(capacity: Capacity) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """(columns, rows) for `msgen plan`: per host (or the nodes together), what is placed and what is left."""
    columns = (
        "scope",
        "hosts",
        "memory placed / usable",
        "memory headroom",
        "reserve",
        "CPU reserved / usable",
        "CPU limits / vCPUs",
        "disk placed / usable",
    )
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
                _disk_text(host),
            )
        )
    return columns, tuple(rows)


def _disk_text(host) -> str:
    """What grows on the host's disk (data, backups, monitoring), against what it declares."""
    placed = human_bytes(host.disk_used)
    if host.disk is None:
        return f"{placed} / no disk declared"
    return f"{placed} / {human_bytes(host.usable_disk)} (10%, >= 10Gi kept for the OS)"


def _about(rule: AlertRule) -> str:
    labels = dict(rule.labels)
    subject = labels.get("service") or labels.get("datastore", "-")
    return "every job" if "{{" in subject else subject
