"""What `msgen plan` shows: sections of rows, printed as rich tables or as JSON.

Each stage adds its section function to SECTIONS; a section function takes the Plan and
returns Sections (a title, column names, rows of text) so that the CLI prints them and
`--format json` dumps the same data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from msgen.checks.capacity import Capacity, Inspector, capacity_table
from msgen.plan import Plan
from msgen.plan.gateway import gateway_rows
from msgen.plan.latency import latency_table
from msgen.plan.observability import observability_tables
from msgen.plan.residency import residency_table
from msgen.targets import build_each, compose, kubernetes, render_targets
from msgen.units import human_bytes


@dataclass(frozen=True)
class Section:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def to_dict(self) -> dict:
        return {"title": self.title, "rows": [dict(zip(self.columns, row, strict=True)) for row in self.rows]}


def services_section(plan: Plan) -> list[Section]:
    rows = []
    for service in plan.services:
        route = service.route
        where = " ".join(filter(None, [route.host or "", route.path_prefix or ""])) if route else "internal"
        rows.append(
            (
                service.name,
                service.image,
                str(service.port),
                str(service.replicas),
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
            rows.append((name, "(estimated peak memory)", human_bytes(tuning.peak), f"of the {human_bytes(tuning.limit)} limit: " + " + ".join(f"{label} {human_bytes(size)}" for label, size in tuning.peak_parts)))
    return [Section("Datastore tuning", ("datastore", "setting", "value", "why"), tuple(rows))]


def gateway_section(plan: Plan) -> list[Section]:
    """The Traefik gateway's routes, middleware chains and effective limits (msgen/plan/gateway.py)."""
    if plan.gateway is None:
        return []
    columns = ("route", "rule", "backend", "middlewares", "rate limit (origin)", "circuit breaker", "retry")
    return [Section(f"Gateway ({plan.gateway.provider} provider)", columns, gateway_rows(plan.gateway))]


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
        rows.append((workload.name, workload.component, str(workload.replicas), f"{len(workload.nodes)}{where}", workload.anti_affinity, rollout, workload.survives_node_loss))
    columns = ("workload", "kind", "replicas", "nodes", "anti-affinity", "rolling update", "survives losing a node")
    return [Section(f"Kubernetes (namespace {kube.namespace}, version {kube.version})", columns, tuple(rows))]


def compose_section(plan: Plan) -> list[Section]:
    """The compose stack's containers as written (msgen/targets/compose.py)."""
    if not compose.applies(plan):
        return []
    host = f" on {plan.compose_host.name}" if plan.compose_host else ""
    columns = ("container", "image", "networks", "cpus", "memory", "healthcheck", "capabilities")
    return [Section(f"Compose stack{host}", columns, compose_rows(compose.compose_document(plan)))]


def compose_rows(document: dict) -> tuple[tuple[str, ...], ...]:
    """One row per container: image, networks, limits, healthcheck and capabilities, as written."""
    rows = []
    for name, entry in document["services"].items():
        limits = entry["deploy"]["resources"]["limits"]
        test = entry["healthcheck"]["test"]
        capabilities = (
            "all kept (run_as_root)" if "cap_drop" not in entry else " ".join(["drop ALL", *(f"+{c}" for c in entry.get("cap_add", []))])
        )
        rows.append((name, entry["image"], ", ".join(entry["networks"]), limits["cpus"], limits["memory"], " ".join(test[1:]), capabilities))
    return tuple(rows)


def architecture_section(plan: Plan) -> list[Section]:
    """Latency vs budget, residency, and capacity as the compose and Kubernetes objects place it."""
    policy = ", ".join(plan.residency.policy) if plan.residency.policy is not None else "no policy"
    sections = [
        Section("Latency vs budget (routed services, worst first)", *latency_table(plan.latency)),
        Section(f"Residency (personal data allowed in: {policy})", *residency_table(plan.residency)),
    ]
    columns, rows = capacity_table(placed_capacity(plan))
    if rows:
        sections.append(Section("Capacity (per host, with headroom)", columns, rows))
    return sections


SECTIONS: list[Callable[[Plan], list[Section]]] = [services_section, placement_section, wiring_section, defaults_section, tuning_section, gateway_section, observability_section, kubernetes_section, compose_section, architecture_section]


def plan_sections(plan: Plan) -> list[Section]:
    sections: list[Section] = []
    for build in SECTIONS:
        sections.extend(build(plan))
    return sections


def placed_capacity(plan: Plan) -> Capacity:
    """What the compose and Kubernetes objects place on the hosts, read as the checks read it."""
    inspector = Inspector(plan)
    modules = tuple(module for module in (compose, kubernetes) if module.applies(plan))
    for built in build_each(render_targets(plan, modules)):
        inspector.read(built)
    return inspector.capacity()
