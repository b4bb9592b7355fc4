"""The plan: every derived value, computed once; templates read only this.

Each part (services, gateway, tuning, kubernetes, observability, latency, residency) is
computed by its own module under msgen/plan/; the plan holds decisions, never a target's files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from msgen.model.blueprint import Blueprint, Host
from msgen.model.references import gateway_regions
from msgen.plan.gateway import GatewayPlan, plan_gateway
from msgen.plan.images import ImageTable, plan_images
from msgen.plan.kubernetes import KubernetesPlan, plan_kubernetes
from msgen.plan.latency import LatencyPlan, plan_latency
from msgen.plan.lifecycle import Grace, plan_grace
from msgen.plan.mounts import MountsPlan, plan_mounts
from msgen.plan.networks import NetworkPlan, plan_networks
from msgen.plan.observability import ObservabilityPlan, plan_observability
from msgen.plan.residency import ResidencyPlan, plan_residency
from msgen.plan.services import DatastorePlan, ServicePlan, personal_data_flow, plan_datastores, plan_services
from msgen.plan.tuning import DatastoreTuning, plan_tuning


@dataclass(frozen=True)
class Plan:
    project: str
    blueprint: Blueprint
    services: tuple[ServicePlan, ...]  # sorted by name
    datastores: tuple[DatastorePlan, ...]  # sorted by name
    compose_host: Host | None  # the host the compose stack runs on, when compose is enabled
    env: str | None
    tuning: dict[str, DatastoreTuning]  # datastore name -> its tuned settings with reasons
    gateway: GatewayPlan | None  # Traefik's routers, services, middlewares; None when nothing is routed
    kubernetes: KubernetesPlan | None  # placement, rollout and cluster wiring; None without `kubernetes:`
    observability: ObservabilityPlan | None  # scrape jobs, alerts, exporters, dashboards; None without `observability:`
    latency: LatencyPlan  # request costs vs budgets, fan-out, retry amplification
    residency: ResidencyPlan  # where personal data lives and which calls carry it out
    networks: NetworkPlan | None  # the compose networks and their subnets; None without compose
    grace: dict[str, Grace]  # compose service name -> how long it may take to stop
    images: ImageTable  # image key -> the reference every target renders
    mounts: dict[str, MountsPlan] = field(default_factory=dict)  # service name -> its own volumes and config files

    def service(self, name: str) -> ServicePlan:
        return self._services_by_name[name]

    def datastore(self, name: str) -> DatastorePlan:
        return self._datastores_by_name[name]

    # lookups by name stay O(1): targets call them once per service, thousands of times
    @cached_property
    def _services_by_name(self) -> dict[str, ServicePlan]:
        return {service.name: service for service in self.services}

    @cached_property
    def _datastores_by_name(self) -> dict[str, DatastorePlan]:
        return {datastore.name: datastore for datastore in self.datastores}

    @property
    def routed(self) -> tuple[ServicePlan, ...]:
        return tuple(service for service in self.services if service.route is not None)


def compose_host(blueprint: Blueprint) -> Host | None:
    if blueprint.compose is None or not blueprint.hosts:
        return None
    name = blueprint.compose.host or blueprint.hosts[0].name
    return next(host for host in blueprint.hosts if host.name == name)


def build_plan(blueprint: Blueprint, env: str | None = None, files: dict[str, bytes] | None = None) -> Plan:
    """Derive everything the targets and checks need from a valid blueprint; `files` holds the
    services' config files by source, as the loader read them (LoadedBlueprint.files)."""
    host = compose_host(blueprint)
    personal = personal_data_flow(blueprint)
    datastores = plan_datastores(blueprint, host, personal)
    services = plan_services(blueprint, {d.name: d for d in datastores}, personal)
    latency = plan_latency(
        blueprint,
        {service.name: service.region for service in services},
        {store.name: store.region for store in datastores},
        gateway_regions(blueprint),
    )
    gateway = plan_gateway(blueprint, latency)
    table = plan_images(blueprint)
    observability = plan_observability(blueprint, services, datastores, gateway, table)
    return Plan(
        project=blueprint.project,
        blueprint=blueprint,
        services=services,
        datastores=datastores,
        compose_host=host,
        env=env,
        tuning=plan_tuning(datastores),
        gateway=gateway,
        kubernetes=plan_kubernetes(blueprint, services, datastores, gateway),
        observability=observability,
        latency=latency,
        residency=plan_residency(blueprint, services, datastores),
        networks=plan_networks(blueprint, services, datastores, gateway, observability),
        grace=plan_grace(blueprint, services, datastores, gateway, observability.monitors if observability else ()),
        images=table,
        mounts=plan_mounts(blueprint, files or {}),
    )
