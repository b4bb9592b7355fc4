"""What `msgen plan` shows: sections of rows, printed as rich tables or as JSON.

Each stage adds its section function to SECTIONS; a section function takes the Plan and
returns Sections (a title, column names, rows of text) so that the CLI prints them and
`--format json` dumps the same data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from msgen.plan import Plan


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


SECTIONS: list[Callable[[Plan], list[Section]]] = [services_section, placement_section, wiring_section, defaults_section]


def plan_sections(plan: Plan) -> list[Section]:
    sections: list[Section] = []
    for build in SECTIONS:
        sections.extend(build(plan))
    return sections
