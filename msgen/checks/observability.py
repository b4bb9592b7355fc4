"""Observability findings: a scrape timeout Prometheus would refuse, and what the blueprint
leaves unwatched.
"""

from __future__ import annotations

from collections.abc import Iterable

from msgen.findings import Finding, finding
from msgen.plan.observability import prom_duration


def check(context) -> Iterable[Finding]:
    plan = context.plan
    observability = plan.observability
    if observability is None:
        return []
    found: list[Finding] = []
    section = plan.blueprint.observability
    prometheus = section.prometheus if section else None
    if prometheus is not None and prometheus.scrape_timeout is not None and prometheus.scrape_timeout.ms > prometheus.scrape_interval.ms:
        found.append(
            finding(
                "prometheus-timeout",
                "error",
                ("observability", "prometheus", "scrape_timeout"),
                f"scrape_timeout {prometheus.scrape_timeout} is longer than scrape_interval {prometheus.scrape_interval}: Prometheus refuses the config",
                f"use at most {prom_duration(prometheus.scrape_interval.ms)}",
            )
        )
    found.extend(_coverage_hints(plan))
    return found


def _coverage_hints(plan) -> list[Finding]:
    """What the blueprint leaves unwatched: services without metrics, logs nobody can read."""
    observability = plan.observability
    found = []
    if observability.prometheus:
        for name in observability.unscraped:
            routed = plan.service(name).route is not None
            seen = "the gateway's metrics still show its requests" if routed else "nothing shows its requests"
            found.append(
                finding(
                    "observability-no-metrics",
                    "info",
                    ("services", name),
                    f"service {name} declares no metrics endpoint: {seen}",
                    "add metrics: {path: /metrics, port: N} if the service exports Prometheus metrics",
                )
            )
    if observability.loki and not observability.grafana:
        found.append(
            finding(
                "observability-loki-without-grafana",
                "warning",
                ("observability", "loki"),
                "loki collects logs but grafana is off: nothing shows them",
                "set grafana: true",
            )
        )
    if observability.grafana and not observability.prometheus:
        found.append(
            finding(
                "observability-grafana-without-prometheus",
                "warning",
                ("observability", "grafana"),
                "grafana is on but prometheus is off: the dashboards have no data",
                "keep observability.prometheus",
            )
        )
    return found


def inspector(context) -> None:
    """Nothing here reads built objects."""
    return None
