"""The plan: every derived value, computed once; templates read only this.

Each later stage (gateway, tuning, observability, latency, capacity) adds one field here,
computed by its own module under msgen/plan/.
"""

from __future__ import annotations

from dataclasses import dataclass

from msgen.model.blueprint import Blueprint, Host
from msgen.plan.services import DatastorePlan, ServicePlan, plan_datastores, plan_services


@dataclass(frozen=True)
class Plan:
    project: str
    blueprint: Blueprint
    services: tuple[ServicePlan, ...]  # sorted by name
    datastores: tuple[DatastorePlan, ...]  # sorted by name
    compose_host: Host | None  # the host the compose stack runs on, when compose is enabled
    env: str | None

    def service(self, name: str) -> ServicePlan:
        return next(service for service in self.services if service.name == name)

    def datastore(self, name: str) -> DatastorePlan:
        return next(datastore for datastore in self.datastores if datastore.name == name)

    @property
    def routed(self) -> tuple[ServicePlan, ...]:
        return tuple(service for service in self.services if service.route is not None)


def compose_host(blueprint: Blueprint) -> Host | None:
    if blueprint.compose is None or not blueprint.hosts:
        return None
    name = blueprint.compose.host or blueprint.hosts[0].name
    return next(host for host in blueprint.hosts if host.name == name)


def build_plan(blueprint: Blueprint, env: str | None = None) -> Plan:
    """Derive everything the targets and checks need from a valid blueprint."""
    host = compose_host(blueprint)
    datastores = plan_datastores(blueprint, host)
    return Plan(
        project=blueprint.project,
        blueprint=blueprint,
        services=plan_services(blueprint, {d.name: d for d in datastores}),
        datastores=datastores,
        compose_host=host,
        env=env,
    )
