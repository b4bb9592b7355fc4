"""The plan: every derived value, computed once; templates read only this.

Each later stage (gateway, tuning, observability, latency, capacity) adds one field here,
computed by its own module under msgen/plan/.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from msgen.model.blueprint import Blueprint, Host
from msgen.plan.gateway import GatewayPlan, plan_gateway
from msgen.plan.kubernetes import KubernetesPlan, plan_kubernetes
from msgen.plan.latency import LatencyPlan, plan_latency
from msgen.plan.observability import ObservabilityPlan, plan_observability
from msgen.plan.residency import ResidencyPlan, plan_residency
from msgen.plan.services import DatastorePlan, ServicePlan, plan_datastores, plan_services
from msgen.plan.tuning import DatastoreTuning, plan_tuning

# From this many services and datastores together on, objects built from the plan are not
# kept (Plan.keeps_built). Below it keeping them is affordable (a render of 1000 services
# with 1000 datastores peaks at ~185 MiB) and saves building them for each of checks,
# capacity and writer.
KEEP_BUILT_UP_TO = 4000


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
    # objects a target builds from this plan that others read again (the compose document,
    # the Kubernetes objects: capacity counts them, checks judge them, the writer formats
    # them): built once, on first use, while the platform is small (keeps_built)
    _built: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @cached_property
    def keeps_built(self) -> bool:
        """Whether what targets build from this plan is kept for every later use. On a large
        platform it is not: each use builds a file's objects again and drops them, so memory
        holds one file's objects at a time instead of the whole platform's (at 5000 services
        the objects alone take ~450 MB) for some time spent building twice or three times."""
        return len(self.services) + len(self.datastores) < KEEP_BUILT_UP_TO

    def build_per_use(self) -> None:
        """Keep nothing built from this plan from now on (keeps_built becomes False): for a
        process that reads each file's objects once, as the writer does while the checks run
        in another process."""
        self.__dict__["keeps_built"] = False  # where cached_property keeps its value
        self._built.clear()

    def built(self, key: str, make: Callable[[], object]):
        """`make()`, computed the first time `key` is asked for and kept with this plan (only
        while it keeps_built; otherwise computed at each call)."""
        if not self.keeps_built:
            return make()
        if key not in self._built:
            self._built[key] = make()
        return self._built[key]

    def service(self, name: str) -> ServicePlan:
        return self._services_by_name[name]

    @cached_property
    def capacity(self):
        """The compose host's and the nodes' load (msgen/plan/capacity.py): computed on first use,
        because it is read from the compose file and the manifests, which are built from this plan."""
        from msgen.plan.capacity import plan_capacity

        return plan_capacity(self)

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


def build_plan(blueprint: Blueprint, env: str | None = None) -> Plan:
    """Derive everything the targets and checks need from a valid blueprint."""
    host = compose_host(blueprint)
    datastores = plan_datastores(blueprint, host)
    services = plan_services(blueprint, {d.name: d for d in datastores})
    gateway = plan_gateway(blueprint)
    return Plan(
        project=blueprint.project,
        blueprint=blueprint,
        services=services,
        datastores=datastores,
        compose_host=host,
        env=env,
        tuning=plan_tuning(datastores),
        gateway=gateway,
        kubernetes=plan_kubernetes(blueprint, services, datastores),
        observability=plan_observability(blueprint, services, datastores, gateway),
        latency=plan_latency(blueprint),
        residency=plan_residency(blueprint),
    )
