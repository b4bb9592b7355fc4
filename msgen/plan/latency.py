"""Latency budgets and retry amplification over the call graph (docs/tuning.md, Latency).

cost(S) = p99(S) + queries(S) x RTT(S, its datastore) + for each callee C: RTT(S, C) + cost(C),
summed for sequential calls and the maximum with `parallel_calls`. A route adds the clients'
leg (their region to the gateway's) and the gateway's hop (the gateway's region to the
service's). Every figure is a sum of p99s: an upper bound, not itself a p99. Both this and the retry products are computed by dynamic
programming over one topological order of the (acyclic, checked at load) call graph: linear
in its edges, iterative, so neither a graph with exponentially many paths nor a 1000-deep
chain is a problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from graphlib import TopologicalSorter

from msgen.model.blueprint import Blueprint
from msgen.model.references import declared_rtts, rtt_key
from msgen.units import Duration

SAME_REGION_RTT_MS = 2.0  # same region, unless rtt_ms declares `region/region`
SLOW_SHARE = 0.01  # p of "The Tail at Scale": one request in a hundred is slower than p99
EPSILON_MS = 1e-9  # RTTs may be fractional; sums of floats must not fail a budget they meet


@dataclass(frozen=True)
class Hop:
    """One service on a branch: the round trip from its caller (0 at the entry) and its own p99."""

    service: str
    region: str | None
    rtt_ms: float
    p99_ms: int


@dataclass(frozen=True)
class RouteLatency:
    """The latency of a request entering a routed service, against that route's budget:
    the clients' leg, the gateway's hop and the service's own cost, summed."""

    service: str
    total_ms: float
    budget: Duration
    budget_field: str  # the key path the budget comes from
    clients_region: str | None  # None: not declared, the leg is not counted
    clients_ms: float
    gateway_region: str | None  # the worst of the regions the gateway runs in
    gateway_ms: float
    service_ms: float  # cost(service)

    def legs(self) -> str:
        """`clients stockholm -> gateway oslo 12 ms + gateway -> payment 2 ms + payment 86 ms`."""
        where = f" ({self.gateway_region})" if self.gateway_region else ""
        clients = (
            f"clients {self.clients_region} -> gateway{where} {format_ms(self.clients_ms)}"
            if self.clients_region
            else "clients' leg not counted (no clients_region)"
        )
        return f"{clients} + gateway -> {self.service} {format_ms(self.gateway_ms)} + {self.service} {format_ms(self.service_ms)}"

    @property
    def over_ms(self) -> float:
        return self.total_ms - self.budget.ms

    @property
    def over(self) -> bool:
        return self.total_ms > self.budget.ms + EPSILON_MS

    @property
    def share(self) -> float:
        """Total as a fraction of the budget, so routes with different budgets sort together."""
        return self.total_ms / self.budget.ms


@dataclass(frozen=True)
class Amplification:
    """The worst product of attempts on any call path reaching a service, and that path."""

    factor: int
    path: tuple[tuple[str, int], ...]  # (service, attempts its caller makes), the gateway first when routed


@dataclass(frozen=True)
class LatencyPlan:
    order: tuple[str, ...]  # callees before callers
    cost_ms: dict[str, float]  # service -> latency of a request entering it
    datastore_ms: dict[str, float]  # service -> its queries' round trips to its datastore
    heaviest: dict[str, tuple[str, float] | None]  # service -> (callee, RTT) on its heaviest branch
    depth: dict[str, int]  # hops on the heaviest branch from a service, itself included
    p99_ms: dict[str, int]
    regions: dict[str, str | None]
    routes: tuple[RouteLatency, ...]  # routed services, worst share of budget first
    fanout: dict[str, float]  # services calling >= 2 others -> P(a request is slow)
    amplification: dict[str, Amplification]
    max_amplification: int

    def branch(self, start: str, limit: int | None = None) -> tuple[Hop, ...]:
        """The heaviest branch from `start` (its first `limit` hops), walked on demand: building
        every route's branch up front would be quadratic in a deep graph."""
        hops = [Hop(start, self.regions[start], 0.0, self.p99_ms[start])]
        step = self.heaviest[start]
        while step is not None and (limit is None or len(hops) < limit):
            callee, rtt = step
            hops.append(Hop(callee, self.regions[callee], rtt, self.p99_ms[callee]))
            step = self.heaviest[callee]
        return tuple(hops)


def rtt_ms(regions: dict[str, str | None], rtts: dict[tuple[str, str], float], caller: str, callee: str) -> float:
    """The round trip of one call: within a region its declared `a/a`, else 2 ms; between
    regions the declared pair (load guarantees it)."""
    return region_rtt_ms(rtts, regions[caller], regions[callee])


def region_rtt_ms(rtts: dict[tuple[str, str], float], origin: str | None, target: str | None) -> float:
    """The round trip between two regions (None: unknown, counted as the same region)."""
    if origin is None or target is None:
        return SAME_REGION_RTT_MS
    if origin == target:
        return rtts.get((origin, origin), SAME_REGION_RTT_MS)
    return rtts[rtt_key(origin, target)]


def callees_first(blueprint: Blueprint) -> list[str]:
    """A topological order with every callee before its callers."""
    services = blueprint.services
    return list(TopologicalSorter({name: services[name].calls for name in sorted(services)}).static_order())


def attempts(blueprint: Blueprint, name: str) -> int:
    """How many times a caller tries a call to `name` (its `retry.attempts`; no retry is one try)."""
    retry = blueprint.services[name].retry
    return max(1, retry.attempts) if retry is not None else 1


def backoff_ms(blueprint: Blueprint, name: str) -> int:
    """The waits between the tries of a call to `name`: initial_interval, doubling each time."""
    retry = blueprint.services[name].retry
    tries = attempts(blueprint, name)
    return retry.initial_interval.ms * (2 ** (tries - 1) - 1) if retry is not None else 0


def longest_wait_ms(blueprint: Blueprint, name: str) -> int | None:
    """How long a request to `name` may take within its own timeouts: its p99 plus, for each
    call, every try of the callee waited out to `name`'s timeout and the backoffs between
    them (summed for sequential calls, the largest with `parallel_calls`). None when `name`
    makes calls without a timeout: nothing bounds its wait."""
    service = blueprint.services[name]
    if not service.calls:
        return service.latency.p99.ms
    if service.timeout is None:
        return None
    waits = [attempts(blueprint, callee) * service.timeout.ms + backoff_ms(blueprint, callee) for callee in service.calls]
    return service.latency.p99.ms + (max(waits) if service.parallel_calls else sum(waits))


def plan_latency(
    blueprint: Blueprint, regions: dict[str, str | None], datastore_regions: dict[str, str | None], gateway: tuple[str, ...]
) -> LatencyPlan:
    """Costs, heaviest branches, budgets, fan-out and retry amplification of every service
    (`regions`: each service's region, as the service plans resolved it; `datastore_regions`:
    each datastore's; `gateway`: the regions the gateway runs in)."""
    rtts = declared_rtts(blueprint)
    order = callees_first(blueprint)
    cost: dict[str, float] = {}
    queries: dict[str, float] = {}
    heaviest: dict[str, tuple[str, float] | None] = {}
    depth: dict[str, int] = {}
    for name in order:
        service = blueprint.services[name]
        legs = sorted(
            ((rtt_ms(regions, rtts, name, callee), callee) for callee in service.calls),
            key=lambda leg: (-(leg[0] + cost[leg[1]]), leg[1]),
        )
        spent = [rtt + cost[callee] for rtt, callee in legs]
        waited = (spent[0] if service.parallel_calls else sum(spent)) if legs else 0.0
        queries[name] = (
            service.queries_per_request * region_rtt_ms(rtts, regions[name], datastore_regions[service.datastore])
            if service.datastore is not None
            else 0.0
        )
        cost[name] = service.latency.p99.ms + queries[name] + waited
        heaviest[name] = (legs[0][1], legs[0][0]) if legs else None
        depth[name] = 1 + depth[legs[0][1]] if legs else 1
    services = sorted(blueprint.services)
    routes = tuple(
        sorted(
            (_route(blueprint, name, cost[name], rtts, regions[name], gateway) for name in services if blueprint.services[name].route),
            key=lambda r: (-r.share, r.service),
        )
    )
    return LatencyPlan(
        order=tuple(order),
        cost_ms=cost,
        datastore_ms=queries,
        heaviest=heaviest,
        depth=depth,
        p99_ms={name: blueprint.services[name].latency.p99.ms for name in services},
        regions={name: regions[name] for name in services},
        routes=routes,
        fanout={name: fanout_slow(len(blueprint.services[name].calls)) for name in services if len(blueprint.services[name].calls) >= 2},
        amplification=plan_amplification(blueprint, order),
        max_amplification=blueprint.policy.max_retry_amplification,
    )


def fanout_slow(backends: int, slow: float = SLOW_SHARE) -> float:
    """P(a request waits on at least one slow backend) = 1 - (1 - p)^n (Dean and Barroso)."""
    return 1 - (1 - slow) ** backends


def _route(blueprint: Blueprint, name: str, cost: float, rtts, region: str | None, gateway: tuple[str, ...]) -> RouteLatency:
    """The route's legs; the gateway's region is the one that makes them longest."""
    route = blueprint.services[name].route
    clients = route.clients_region or (blueprint.gateway.clients_region if blueprint.gateway else None)
    candidates = []
    for where in gateway or (region,):
        hop = region_rtt_ms(rtts, where, region)
        first = region_rtt_ms(rtts, clients, where) if clients else 0.0
        candidates.append((first + hop, where or "", first, hop))
    _, where, first, hop = max(candidates)
    total = first + hop + cost
    if route.budget is not None:
        budget, field = route.budget, f"services.{name}.route.budget"
    else:
        budget, field = blueprint.policy.latency_budget, "policy.latency_budget"
    return RouteLatency(name, total, budget, field, clients, first, where or None, hop, cost)


def plan_amplification(blueprint: Blueprint, order: list[str]) -> dict[str, Amplification]:
    """For each service, the largest product of attempts along any path that reaches it.

    The gateway retries calls to a routed service by that service's `retry`, so a routed entry
    starts at its own attempts; an internal root starts at 1 (nobody retries it). Callers are
    visited before callees (the reverse of `order`), so each service relaxes its callees once.
    """
    best: dict[str, tuple[int, str | None]] = {}  # service -> (factor, the caller on the worst path)
    for name in sorted(blueprint.services):
        entry = attempts(blueprint, name) if blueprint.services[name].route is not None else 1
        best[name] = (entry, None)
    for name in reversed(order):
        factor = best[name][0]
        for callee in blueprint.services[name].calls:
            candidate = factor * attempts(blueprint, callee)
            if candidate > best[callee][0] or (candidate == best[callee][0] and best[callee][1] is not None and name < best[callee][1]):
                best[callee] = (candidate, name)
    return {name: Amplification(best[name][0], _worst_path(blueprint, best, name)) for name in sorted(best)}


def _worst_path(blueprint: Blueprint, best: dict[str, tuple[int, str | None]], name: str) -> tuple[tuple[str, int], ...]:
    path: list[tuple[str, int]] = []
    current: str | None = name
    while current is not None:
        path.append((current, attempts(blueprint, current)))
        current = best[current][1]
    path.reverse()
    entry = path[0][0]
    if blueprint.services[entry].route is not None:
        path.insert(0, ("gateway", 1))
    else:
        path[0] = (entry, 1)  # nobody calls an internal root, so nobody retries it
    return tuple(path)


def format_ms(value: float) -> str:
    """Milliseconds without a trailing `.0`: `84 ms`, `32.5 ms`."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return f"{text} ms"


BRANCH_SHOWN = 12  # hops named in a message or a table cell; deeper branches end with a count


def describe_branch(latency: LatencyPlan, start: str) -> str:
    """`payment (p99 25 ms, datastore 2 ms) -> fraud-check (RTT 2 ms, p99 40 ms)`, cut after BRANCH_SHOWN hops."""
    branch = latency.branch(start, BRANCH_SHOWN)

    def queries(hop: Hop) -> str:
        spent = latency.datastore_ms[hop.service]
        return f", datastore {format_ms(spent)}" if spent else ""

    parts = [f"{branch[0].service} (p99 {format_ms(branch[0].p99_ms)}{queries(branch[0])})"]
    parts.extend(f"{hop.service} (RTT {format_ms(hop.rtt_ms)}, p99 {format_ms(hop.p99_ms)}{queries(hop)})" for hop in branch[1:])
    hidden = latency.depth[start] - len(branch)
    return " -> ".join(parts) + (f" -> ... ({hidden} more hops)" if hidden else "")


def describe_path(path: tuple[tuple[str, int], ...]) -> str:
    """`gateway -> payment (x2) -> ledger (x3)`: each hop with the attempts its caller makes."""
    return " -> ".join(name if tries == 1 else f"{name} (x{tries})" for name, tries in path)
