"""How long each workload may take to stop: one grace period per container, used by compose's
`stop_grace_period`, the Kubernetes services' and datastores' `terminationGracePeriodSeconds`
(and Traefik's own drain, `lifeCycle.graceTimeOut`).

A service stopping must first be taken out of rotation (the gateway's health check notices it
within one period and one timeout) and then finish what it is doing: a request may last as
long as the longest anyone waits for it (the route's timeout, its callers' timeouts). The
gateway finishes its in-flight requests for as long as the longest route timeout. Without
these, Docker kills a container after 10 s, exactly when Traefik's own default drain ends.
"""

from __future__ import annotations

from dataclasses import dataclass

from msgen.plan.gateway import ROUTE_TIMEOUT_FLOOR, GatewayPlan, go_duration
from msgen.units import Duration

# a database flushes and checkpoints on shutdown; killing it means crash recovery on start
DATASTORE_GRACE = Duration(60_000, "60s")
# Prometheus writes its head block, Loki flushes its chunks
MONITORING_GRACE = Duration(30_000, "30s")
# between the end of the drain and the kill: the signal, the last response, the exit
MARGIN = Duration(5000, "5s")


@dataclass(frozen=True)
class Grace:
    period: Duration
    why: str


def plan_grace(blueprint, services, datastores, gateway: GatewayPlan | None, monitors: tuple[str, ...]) -> dict[str, Grace]:
    """Compose service name -> its grace period and the reason for it."""
    callers: dict[str, list[int]] = {}
    for service in blueprint.services.values():
        if service.timeout is not None:
            for callee in service.calls:
                callers.setdefault(callee, []).append(service.timeout.ms)
    graces: dict[str, Grace] = {}
    for service in services:
        route = gateway.route(service.name) if gateway is not None else None
        waits = [route.timeout.timeout.ms] if route is not None else []
        waits += callers.get(service.name, [])
        longest = max(waits) if waits else ROUTE_TIMEOUT_FLOOR.ms
        drain = service.period.ms + service.timeout.ms
        period = drain + longest + MARGIN.ms
        why = f"out of rotation in {_text(drain)} (health period + timeout), then requests of up to {_text(longest)}"
        graces[service.name] = Grace(Duration(period, _text(period)), why)
    graces.update((store.name, Grace(DATASTORE_GRACE, "a clean shutdown, without crash recovery on start")) for store in datastores)
    if gateway is not None:
        period = gateway.drain.ms + MARGIN.ms
        graces["gateway"] = Grace(Duration(period, _text(period)), f"in-flight requests for up to {_text(gateway.drain.ms)}")
    graces.update((name, Grace(MONITORING_GRACE, "flushes its data to the volume")) for name in monitors)
    return graces


def _text(ms: int) -> str:
    return go_duration(Duration(ms, f"{ms}ms"))
