"""Architecture: latency budgets, retries and timeouts, data residency, availability.

Physics and law decide whether the platform works before any code runs. The numbers are
computed in msgen/plan/latency.py and residency.py; this module only turns them into findings
a person can act on.
"""

from __future__ import annotations

from collections.abc import Iterator

from msgen.findings import Finding, finding
from msgen.model.references import declared_rtts
from msgen.plan.latency import EPSILON_MS, attempts, describe_branch, describe_path, format_ms, rtt_ms

FANOUT_PERCENT = "{:.2f}".format


def check(context) -> Iterator[Finding]:
    plan = context.plan
    yield from latency_findings(plan)
    yield from retry_findings(plan)
    yield from timeout_findings(plan)
    yield from route_timeout_findings(plan)
    yield from residency_findings(plan)
    yield from availability_findings(plan)


# --- latency ---------------------------------------------------------------------------------


def latency_findings(plan) -> Iterator[Finding]:
    """One error per routed service over its budget, with the hops of its heaviest branch."""
    latency = plan.latency
    for route in latency.routes:
        if not route.over:
            continue
        own = route.budget_field != "policy.latency_budget"
        at = ("services", route.service, "route", "budget") if own else ("services", route.service, "route")
        yield finding(
            "latency-budget",
            "error",
            at,
            f"a request to {route.service} takes up to {format_ms(route.total_ms)} (a sum of p99s, an upper bound), "
            f"{format_ms(route.over_ms)} over its {route.budget.text} budget ({route.budget_field}): {route.legs()}; "
            f"heaviest branch: {describe_branch(latency, route.service)}",
            "move the heaviest hops into one region, set parallel_calls where calls are independent, "
            "drop a synchronous call, or raise the budget (route.budget)",
        )
    for name, slow in latency.fanout.items():
        calls = plan.blueprint.services[name].calls
        yield finding(
            "latency-fanout",
            "info",
            ("services", name, "calls"),
            f"{name} calls {len(calls)} services: {FANOUT_PERCENT(slow * 100)}% of its requests wait on at least one "
            "backend slower than its p99 (1 - 0.99^n, The Tail at Scale)",
            "hedged or tied requests, or fewer synchronous calls, keep the tail short",
        )


# --- retries and timeouts --------------------------------------------------------------------


def retry_findings(plan) -> Iterator[Finding]:
    """Where the worst product of attempts first passes the policy's maximum, naming that path."""
    latency = plan.latency
    limit = latency.max_amplification
    for name, amplification in latency.amplification.items():
        if amplification.factor <= limit:
            continue
        path = amplification.path
        caller = path[-2][0] if len(path) >= 2 else None
        if caller is not None and caller != "gateway" and latency.amplification[caller].factor > limit:
            continue  # reported at the caller, where the path first went over
        yield finding(
            "retry-amplification",
            "error",
            ("services", name, "retry"),
            f"retries multiply to {amplification.factor} attempts on {name} (policy.max_retry_amplification is {limit}) "
            f"along {describe_path(path)}; every service below it sees at least as many",
            "retry at one layer only (usually the edge), or lower retry.attempts on the services of this path",
        )


def timeout_findings(plan) -> Iterator[Finding]:
    """A caller that gives up before its callee can answer leaves that work running for nothing."""
    blueprint = plan.blueprint
    latency = plan.latency
    rtts = _rtts(blueprint)
    callers: dict[str, list[str]] = {}
    for name in sorted(blueprint.services):
        for callee in blueprint.services[name].calls:
            callers.setdefault(callee, []).append(name)
    for name in sorted(blueprint.services):
        service = blueprint.services[name]
        if service.timeout is None:
            continue
        for index, callee in enumerate(service.calls):
            needed = rtt_ms(latency.regions, rtts, name, callee) + latency.cost_ms[callee]
            if service.timeout.ms + EPSILON_MS < needed:
                yield finding(
                    "timeout-short",
                    "warning",
                    ("services", name, "calls", index),
                    f"{name} waits {service.timeout.text} for {callee}, whose answer takes {format_ms(needed)} at p99 "
                    f"(RTT included): {name} gives up while {callee} keeps working",
                    f"raise {name}.timeout above {format_ms(needed)}, or make {callee} faster",
                )
            tries = attempts(blueprint, callee)
            waited = tries * service.timeout.ms
            spent = f"{tries} x {service.timeout.text} = {format_ms(waited)}" if tries > 1 else service.timeout.text
            for upstream in callers.get(name, []):
                outer = blueprint.services[upstream].timeout
                if outer is not None and waited > outer.ms:
                    yield finding(
                        "timeout-retry",
                        "warning",
                        ("services", upstream, "timeout"),
                        f"{name} may wait {spent} for {callee}{' (retries included)' if tries > 1 else ''}, longer than {upstream} "
                        f"waits for {name} ({outer.text}): {upstream} gives up while {name} is still waiting",
                        f"make {upstream}.timeout at least {format_ms(waited)}, or lower {callee}'s retry.attempts or {name}.timeout",
                    )


def route_timeout_findings(plan) -> Iterator[Finding]:
    """A gateway that gives up before the service may answer: below the wait its own timeouts
    allow, or below its p99 (a timeout at p99 fails one request in a hundred by design)."""
    if plan.gateway is None:
        return
    cost = {route.service: route.total_ms for route in plan.latency.routes}
    for route in plan.gateway.routes:
        timeout = route.timeout
        waited = timeout.timeout.ms
        source = f"{route.name}.route.timeout" if timeout.origin == "route" else f"the gateway's default timeout for {route.name}"
        if timeout.longest_wait_ms is not None and waited < timeout.longest_wait_ms:
            yield finding(
                "timeout-route",
                "warning",
                timeout.at,
                f"{source} is {timeout.timeout.text}, but {route.name} may take {format_ms(timeout.longest_wait_ms)} within its own "
                "timeouts and its callees' retries: the client gets 504 while the work goes on",
                f"raise {route.name}.route.timeout to at least {format_ms(timeout.longest_wait_ms)}, or lower {route.name}'s timeout or its callees' retry.attempts",
            )
        elif waited < cost[route.name]:
            yield finding(
                "timeout-route",
                "warning",
                timeout.at,
                f"{source} is {timeout.timeout.text}, below {route.name}'s p99 latency of {format_ms(cost[route.name])}: more than "
                "one request in a hundred gets 504",
                f"raise {route.name}.route.timeout well above {format_ms(cost[route.name])}",
            )


def _rtts(blueprint):
    return declared_rtts(blueprint)


# --- residency -------------------------------------------------------------------------------


def residency_findings(plan) -> Iterator[Finding]:
    residency = plan.residency
    if residency.policy is None:
        return
    allowed = ", ".join(residency.policy)
    for place in residency.placements:
        base = _placement_path(place)
        if place.verdict == "not allowed":
            yield finding(
                "residency",
                "error",
                _region_path(place, base),
                f"{place.kind} {place.name} holds personal data{_because(place)} in region {place.region} ({place.jurisdiction}; "
                f"region from {place.region_from}), outside policy.personal_data_in [{allowed}]",
                f"place {place.name} in a region whose jurisdiction is one of {allowed}" + _move_hint(place),
            )
        elif place.verdict == "unknown":
            yield finding(
                "residency-unknown",
                "warning",
                base,
                f"{place.kind} {place.name} holds personal data{_because(place)} but has no region, so its jurisdiction cannot be checked",
                "declare regions with their jurisdiction and place it in one",
            )
        elif place.operator_verdict == "not allowed":
            yield finding(
                "residency-operator",
                "warning",
                ("regions", place.region, "operator_jurisdiction"),
                f"{place.kind} {place.name} holds personal data{_because(place)} in region {place.region} ({place.jurisdiction}), "
                f"whose operator answers to {place.operator} law, outside policy.personal_data_in [{allowed}]: its authorities "
                "may reach the data (Schrems II); a transfer impact assessment must show the safeguards hold",
                "choose a provider under an allowed jurisdiction, or record the transfer impact assessment and suppress this",
            )
    for transfer in residency.transfers:
        if transfer.external:
            where = f"({transfer.jurisdiction})" if transfer.jurisdiction else "of unknown jurisdiction"
            message = f"{transfer.caller} holds personal data and calls {transfer.callee} outside the platform, {where}"
            hint = "send it no personal data (and say so in a suppress entry), choose a provider in an allowed jurisdiction"
            hint += ", or declare its jurisdiction" if transfer.jurisdiction is None else ""
        else:
            message = f"{transfer.caller} holds personal data and calls {transfer.callee} in {transfer.region} ({transfer.jurisdiction})"
            hint = f"send {transfer.callee} no personal data (and say so in a suppress entry), or move it into an allowed region"
        yield finding(
            "residency-transfer",
            "warning",
            transfer.at,
            f"{message}, outside policy.personal_data_in [{allowed}]: a transfer that needs an assessment",
            hint,
        )


def _placement_path(place) -> tuple:
    if place.kind == "service":
        return ("services", place.name)
    if place.kind == "datastore":
        return ("datastores", place.name)
    if place.kind == "backup":
        return ("datastores", place.name.removesuffix("-backup"), "backup")
    return ("observability", "loki")


def _region_path(place, base: tuple) -> tuple:
    if place.kind in ("service", "datastore") and place.region_from.startswith("its host"):
        return (*base, "host")
    if place.kind == "service" and place.region_from == "declared":
        return (*base, "region")
    return base


def _because(place) -> str:
    """Why it holds personal data, where that is not its own declaration."""
    reason = place.personal_from
    return f" ({reason})" if reason and reason != "declared" else ""


def _move_hint(place) -> str:
    return {"datastore": ", or move its host", "backup": ", or set backup.path to storage there", "logs": ", or turn Loki off"}.get(place.kind, "")


# --- availability ----------------------------------------------------------------------------


def availability_findings(plan) -> Iterator[Finding]:
    for service in plan.routed:
        if service.replicas < 2:
            yield finding(
                "ha-replicas",
                "warning",
                ("services", service.name, "replicas"),
                f"{service.name} is routed from the internet with one replica: every restart, deploy or crash is an outage",
                "run at least 2 replicas",
            )
    zones = host_zones(plan.blueprint)
    if not zones or plan.kubernetes is None:
        return  # zones matter to the cluster; the compose stack is one host
    counts = ", ".join(f"{zone} ({len(hosts)})" for zone, hosts in zones.items())
    unzoned = sorted(host.name for host in plan.blueprint.hosts if host.zone is None)
    if len(zones) < 2:
        yield finding(
            "ha-zones",
            "warning",
            ("hosts",),
            f"every host with a zone is in zone {next(iter(zones))}: losing that zone loses the platform",
            "spread hosts over at least two zones",
        )
    else:
        yield finding(
            "ha-zones",
            "info",
            ("hosts",),
            f"nodes span zones {counts} (hosts per zone); replicas are spread over topology.kubernetes.io/zone, "
            "so a service with at least as many replicas as zones keeps one through a zone outage"
            + (f"; hosts without a zone: {', '.join(unzoned)}" if unzoned else ""),
        )


def host_zones(blueprint) -> dict[str, tuple[str, ...]]:
    """Zone -> the hosts in it, for hosts that declare a zone."""
    zones: dict[str, list[str]] = {}
    for host in blueprint.hosts:
        if host.zone is not None:
            zones.setdefault(host.zone, []).append(host.name)
    return {zone: tuple(sorted(names)) for zone, names in sorted(zones.items())}


def inspector(context) -> None:
    """Nothing here reads built objects."""
    return None
