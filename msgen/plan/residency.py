"""Data residency: where personal data lives, and which calls carry it out."""

from __future__ import annotations

from dataclasses import dataclass, replace

from msgen.model.blueprint import Blueprint
from msgen.plan.services import DatastorePlan, ServicePlan

# the EU's 27 member states (ISO 3166 alpha-2; Greece is GR, not the EU's own "EL")
# fmt: off
EU = frozenset({
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
    "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
})
# fmt: on
# the European Economic Area: the EU plus Iceland, Liechtenstein and Norway
EEA = EU | {"IS", "LI", "NO"}
GROUPS = {"EEA": EEA}


@dataclass(frozen=True)
class Placement:
    """Where one service or datastore runs, and whether its personal data may be there."""

    kind: str  # service | datastore | backup | logs
    name: str
    region: str | None
    region_from: str  # why that region: declared, the only region, its host, its owner
    jurisdiction: str | None
    personal_data: bool
    verdict: str  # allowed | not allowed | unknown | no personal data | no policy
    personal_from: str = ""  # why it holds personal data (or why not), where that is not obvious
    operator: str | None = None  # the jurisdiction of the region's operator, where declared
    operator_verdict: str = ""  # allowed | not allowed, for personal data in a region with an operator


@dataclass(frozen=True)
class Transfer:
    """A call from a personal-data service to a service, or to a declared external dependency,
    in a jurisdiction the policy does not allow (or, for a dependency, does not know)."""

    caller: str
    at: tuple  # the call (services.<caller>.calls[i]) or the dependency (services.<caller>.egress[i])
    callee: str  # a service, or an external dependency's host:port
    region: str | None  # None for an external dependency
    jurisdiction: str | None  # None: an external dependency of unknown jurisdiction

    @property
    def external(self) -> bool:
        return self.region is None


@dataclass(frozen=True)
class ResidencyPlan:
    policy: tuple[str, ...] | None  # policy.personal_data_in as written; None: no policy
    placements: tuple[Placement, ...]  # services, then datastores, each sorted by name
    transfers: tuple[Transfer, ...]


def allowed_codes(policy: list[str] | tuple[str, ...]) -> frozenset[str]:
    """The policy's codes with groups (EEA) expanded."""
    codes: set[str] = set()
    for code in policy:
        codes |= GROUPS.get(code, {code})
    return frozenset(codes)


def plan_residency(blueprint: Blueprint, services: tuple[ServicePlan, ...], datastores: tuple[DatastorePlan, ...]) -> ResidencyPlan:
    """Every placement with its verdict, and the calls that move personal data out of bounds,
    from the regions the service and datastore plans resolved."""
    policy = tuple(blueprint.policy.personal_data_in) if blueprint.policy.personal_data_in is not None else None
    allowed = allowed_codes(policy) if policy is not None else None
    placements = [_service(blueprint, service, allowed) for service in services]
    placements.extend(_datastore(blueprint, store, allowed) for store in datastores)
    placements.extend(_backups(blueprint, datastores, allowed))
    placements.extend(_logs(blueprint, allowed))
    return ResidencyPlan(policy, tuple(_with_operator(blueprint, place, allowed) for place in placements), _transfers(blueprint, services, allowed))


def _with_operator(blueprint: Blueprint, place: Placement, allowed: frozenset[str] | None) -> Placement:
    """A region's operator may answer to another country's law (a US provider's Frankfurt region)."""
    operator = blueprint.regions[place.region].operator_jurisdiction if place.region else None
    if operator is None:
        return place
    verdict = _verdict(place.personal_data, operator, allowed)
    return replace(place, operator=operator, operator_verdict=verdict)


def _compose_region(blueprint: Blueprint) -> tuple[str | None, str]:
    if blueprint.compose is None or not blueprint.hosts:
        return None, ""
    name = blueprint.compose.host or blueprint.hosts[0].name
    host = next(host for host in blueprint.hosts if host.name == name)
    return host.region, f"the compose host {name}"


def _backups(blueprint: Blueprint, datastores: tuple[DatastorePlan, ...], allowed: frozenset[str] | None) -> list[Placement]:
    """A datastore's backups hold what it holds: on the compose host (its volume, or a path
    mounted there), or in a claim of the cluster beside the datastore."""
    region, source = _compose_region(blueprint)
    placements = []
    for store in datastores:
        if store.backup is None:
            continue
        where, why = (region, source) if region else (store.region, f"a claim beside {store.name}")
        jurisdiction = _jurisdiction(blueprint, where)
        verdict = _verdict(store.personal_data, jurisdiction, allowed)
        placements.append(Placement("backup", store.backup.volume, where, why, jurisdiction, store.personal_data, verdict, f"backups of {store.name}"))
    return placements


def _logs(blueprint: Blueprint, allowed: frozenset[str] | None) -> list[Placement]:
    """The gateway's access logs carry every client's IP address, which is personal data:
    where Loki keeps them (on the compose host) is a placement like any other."""
    observability = blueprint.observability
    if blueprint.gateway is None or observability is None or not observability.loki:
        return []
    region, source = _compose_region(blueprint)
    jurisdiction = _jurisdiction(blueprint, region)
    verdict = _verdict(True, jurisdiction, allowed)
    return [Placement("logs", "loki", region, source or "none declared", jurisdiction, True, verdict, "the gateway's access logs (client IPs)")]


def _jurisdiction(blueprint: Blueprint, region: str | None) -> str | None:
    return blueprint.regions[region].jurisdiction if region is not None else None


def _verdict(personal_data: bool, jurisdiction: str | None, allowed: frozenset[str] | None) -> str:
    if not personal_data:
        return "no personal data"
    if allowed is None:
        return "no policy"
    if jurisdiction is None:
        return "unknown"
    return "allowed" if jurisdiction in allowed else "not allowed"


def _service(blueprint: Blueprint, service: ServicePlan, allowed: frozenset[str] | None) -> Placement:
    region = service.region
    source = "declared" if service.service.region is not None else ("the only region" if region else "none declared")
    jurisdiction = _jurisdiction(blueprint, region)
    personal = service.personal_data
    verdict = _verdict(personal, jurisdiction, allowed)
    return Placement("service", service.name, region, source, jurisdiction, personal, verdict, service.personal_data_from)


def _datastore(blueprint: Blueprint, store: DatastorePlan, allowed: frozenset[str] | None) -> Placement:
    """A datastore sits in its host's region, else its owner's, and inherits the owner's personal data."""
    if store.datastore.host is not None:
        source = f"its host {store.datastore.host}"
    elif store.owner is not None:
        source = f"its owner {store.owner}"
    else:
        source = "no host, no owner"
    jurisdiction = _jurisdiction(blueprint, store.region)
    verdict = _verdict(store.personal_data, jurisdiction, allowed)
    return Placement("datastore", store.name, store.region, source, jurisdiction, store.personal_data, verdict)


def _transfers(blueprint: Blueprint, services: tuple[ServicePlan, ...], allowed: frozenset[str] | None) -> tuple[Transfer, ...]:
    if allowed is None:
        return ()
    regions = {service.name: service.region for service in services}
    transfers = []
    for service in services:
        if not service.personal_data:
            continue
        for index, callee in enumerate(service.calls):
            region = regions[callee]
            jurisdiction = _jurisdiction(blueprint, region)
            if region is not None and jurisdiction is not None and jurisdiction not in allowed:
                transfers.append(Transfer(service.name, ("services", service.name, "calls", index), callee, region, jurisdiction))
        for index, dependency in enumerate(service.service.egress):
            if dependency.jurisdiction not in allowed:
                at = ("services", service.name, "egress", index)
                transfers.append(Transfer(service.name, at, f"{dependency.host}:{dependency.port}", None, dependency.jurisdiction))
    return tuple(transfers)
