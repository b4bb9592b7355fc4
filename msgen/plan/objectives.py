"""Each route's objectives at the gateway, and the histogram edges that make them measurable.

Availability: the share of a route's requests the gateway answers without a 5xx
(`route.availability`, percent). Its alerts follow the multi-window, multi-burn-rate scheme
of Google's SRE workbook: an alert when the error ratio burns the 30-day error budget
`factor` times too fast over a long window, and still does over a short one (so the alert
ends soon after the burning stops).

Latency: the route's budget covers the clients' leg too, which the gateway never sees; the
gateway's p99 is held to the budget minus that leg. Where the leg uses up the budget there
is nothing left to hold the gateway to: that route gets no latency alert, and the
latency-budget error already names the route.

Histogram edges: `histogram_quantile` interpolates inside a bucket, so a p99 compared with a
threshold is exact only when the threshold is a bucket edge. Every edge adds one series per
router, service, code, method and protocol, so the edges are capped (MAX_BUCKETS): msgen's
defaults always, then the routes' latency thresholds, then their budgets (for the
dashboards' budget line), within each group the values most routes share first, then the
smaller first. A threshold left without an edge is the warning traefik-bucket-cap.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from msgen.plan.latency import EPSILON_MS, RouteLatency, format_ms
from msgen.units import Duration

# Traefik's own edges (0.1, 0.3, 1.2, 5) and four below 100ms, where most routes' traffic lies
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.3, 1.2, 5.0)
MAX_BUCKETS = 16  # edges in all, the defaults included (+Inf comes on top)
ERROR_BUDGET_DIGITS = 10  # 1 - 99.9/100 is 0.0010000000000000009 in floats


@dataclass(frozen=True)
class BurnRate:
    """Alert when the error ratio exceeds `factor` x the error budget over both windows."""

    name: str  # the alert name's suffix
    factor: float
    long_window: Duration
    short_window: Duration
    severity: str


# the SRE workbook's two paging rules: 2% of a 30-day budget in 1h, 5% in 6h
BURN_RATES = (
    BurnRate("Fast", 14.4, Duration(3_600_000, "1h"), Duration(300_000, "5m"), "critical"),
    BurnRate("Slow", 6.0, Duration(21_600_000, "6h"), Duration(1_800_000, "30m"), "critical"),
)


@dataclass(frozen=True)
class RouteObjective:
    """One route's availability and latency objectives as the gateway can watch them."""

    service: str
    availability: float  # percent
    error_budget: float  # the share of requests allowed to fail: 1 - availability / 100
    budget: Duration  # the route's end-to-end p99 budget
    clients_ms: float  # the clients' leg, which the gateway cannot see (0 when not counted)
    clients_counted: bool
    latency_ms: int | None  # the gateway's p99 threshold, whole ms; None: the clients' leg uses up the budget

    @property
    def latency_seconds(self) -> float | None:
        return None if self.latency_ms is None else self.latency_ms / 1000

    @property
    def latency_text(self) -> str:
        return f"{self.latency_ms}ms" if self.latency_ms is not None else "none"

    def burn_threshold(self, burn: BurnRate) -> float:
        return round(burn.factor * self.error_budget, ERROR_BUDGET_DIGITS)

    def latency_reason(self) -> str:
        """Where the gateway's latency threshold comes from, in words."""
        if not self.clients_counted:
            return f"the {self.budget.text} budget (the clients' leg is not counted: no clients_region)"
        if self.latency_ms is None:
            return f"none: the clients' leg of {format_ms(self.clients_ms)} uses up the {self.budget.text} budget (error latency-budget)"
        return f"the {self.budget.text} budget minus the clients' leg of {format_ms(self.clients_ms)}, which the gateway cannot see"


def route_objective(service: str, availability: float, latency: RouteLatency) -> RouteObjective:
    left = latency.budget.ms - latency.clients_ms
    # whole milliseconds, rounded down: the alert fires at most 1ms early, never late
    threshold = math.floor(left + EPSILON_MS)
    return RouteObjective(
        service=service,
        availability=availability,
        error_budget=round(1 - availability / 100, ERROR_BUDGET_DIGITS),
        budget=latency.budget,
        clients_ms=latency.clients_ms,
        clients_counted=latency.clients_region is not None,
        latency_ms=threshold if threshold > 0 else None,
    )


def _most_shared_first(values: Iterable[float]) -> list[float]:
    counts = Counter(values)
    return sorted(counts, key=lambda value: (-counts[value], value))


def histogram_buckets(objectives: Iterable[RouteObjective]) -> tuple[float, ...]:
    """The request-duration edges, at most MAX_BUCKETS: the defaults, then latency thresholds, then budgets."""
    objectives = tuple(objectives)
    edges = list(DEFAULT_BUCKETS)
    thresholds = _most_shared_first(o.latency_seconds for o in objectives if o.latency_seconds is not None)
    budgets = _most_shared_first(o.budget.seconds for o in objectives)
    for value in (*thresholds, *budgets):
        if len(edges) >= MAX_BUCKETS:
            break
        if value not in edges:
            edges.append(value)
    return tuple(sorted(edges))
