"""Findings about the gateway: blueprint values Traefik accepts silently or only disables at
run time (rate limits, source criteria, breaker expressions, retry attempts).
"""

from __future__ import annotations

from collections.abc import Iterator

from msgen.checks.traefik_expression import expression_problem
from msgen.findings import Finding, finding
from msgen.plan import gateway as gw
from msgen.plan.objectives import MAX_BUCKETS


def check(context) -> Iterator[Finding]:
    yield from check_expressions(context.blueprint)
    if context.plan.gateway is not None:
        yield from check_routes(context.blueprint, context.plan.gateway)
        yield from check_buckets(context.blueprint, context.plan.gateway)


def check_expressions(blueprint) -> Iterator[Finding]:
    """A breaker expression Traefik would reject (it would disable the router at run time)."""
    for name, service in sorted(blueprint.services.items()):
        breaker = service.circuit_breaker
        if breaker is None or breaker.expression is None:
            continue
        problem = expression_problem(breaker.expression)
        if problem is not None:
            yield finding(
                "traefik-breaker-expression",
                "error",
                ("services", name, "circuit_breaker", "expression"),
                f"circuit breaker expression of {name}, column {problem.column}: {problem.message}",
                "Traefik knows NetworkErrorRatio(), ResponseCodeRatio(a, b, c, d) and LatencyAtQuantileMS(q), "
                "compared with a number and joined by && or ||; e.g. NetworkErrorRatio() > 0.3",
            )


def check_routes(blueprint, gateway: gw.GatewayPlan) -> Iterator[Finding]:
    for route in gateway.routes:
        rate = route.rate_limit
        if rate.average < 1:
            yield finding(
                "traefik-rate-limit",
                "error",
                (*rate.at, "average"),
                f"rate limit of {route.name}: average {rate.average} switches Traefik's limiter off (0 means no limit)",
                "set average to the requests per period the service may receive (>= 1)",
            )
        if rate.burst < 1:
            yield finding(
                "traefik-rate-limit",
                "error",
                (*rate.at, "burst"),
                f"rate limit of {route.name}: burst {rate.burst} rejects every request (a burst of 0 holds no token)",
                "set burst to at least 1",
            )
        if len(rate.criteria) > 1:
            yield finding(
                "traefik-source-criterion",
                "error",
                (*rate.at, "source"),
                f"rate limit of {route.name} names {len(rate.criteria)} source criteria ({', '.join(rate.criteria)}): "
                "Traefik uses only one and silently ignores the rest",
                "keep exactly one of ip_depth, request_header, request_host",
            )
        breaker = route.breaker
        if breaker is not None and breaker.min_requests is not None:
            yield finding(
                "traefik-breaker-min-requests",
                "warning",
                ("services", route.name, "circuit_breaker", "min_requests"),
                f"circuit breaker of {route.name}: min_requests {breaker.min_requests} cannot be honoured: Traefik judges "
                f"`{breaker.expression}` over a rolling {gw.BREAKER_WINDOW} window with no minimum, so in a quiet window "
                f"one failed request opens the breaker for {breaker.open_for}",
                "remove min_requests (or suppress this with a reason); callers' own clients get it as "
                "<SERVICE>_BREAKER_MIN_REQUESTS",
            )
        service = blueprint.services[route.name]
        if service.retry is not None and service.retry.attempts < 1:
            yield finding(
                "traefik-retry-attempts",
                "warning",
                ("services", route.name, "retry", "attempts"),
                f"retry of {route.name} has attempts {service.retry.attempts}: Traefik needs attempts >= 1, "
                "so msgen emits no retry middleware",
                "remove retry, or set attempts to the number of tries (2 = one retry)",
            )


def check_buckets(blueprint, gateway: gw.GatewayPlan) -> Iterator[Finding]:
    """A route's latency threshold the capped histogram has no edge for: its p99 alert compares an interpolated p99."""
    for route in gateway.routes:
        objective = route.objective
        if objective.latency_seconds is None or objective.latency_seconds in gateway.buckets:
            continue
        own_budget = blueprint.services[route.name].route.budget is not None
        at = ("services", route.name, "route", "budget") if own_budget else ("services", route.name, "route")
        yield finding(
            "traefik-bucket-cap",
            "warning",
            at,
            f"the gateway's latency histogram has no bucket ending at {route.name}'s {objective.latency_text} (its p99 objective: "
            f"{objective.latency_reason()}): the {MAX_BUCKETS} edges went to thresholds more routes share, so "
            "RouteLatencyOverBudget compares a p99 interpolated inside a bucket",
            "give routes with similar needs the same budget (and clients_region), or suppress this with a reason",
        )


def inspector(context) -> None:
    """Nothing here reads built objects."""
    return None
