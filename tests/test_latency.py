"""Latency budgets, fan-out, retry amplification and timeouts: hand-computed numbers, exact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from msgen.checks import architecture
from msgen.cli import app
from msgen.errors import BlueprintError
from msgen.findings import locate
from msgen.graph import build_graph
from msgen.model.blueprint import Blueprint
from msgen.model.load import load_blueprint
from msgen.plan import build_plan

runner = CliRunner()
GATEWAY = {"domain": "shop.example.com"}


def svc(p99: str, calls=(), **extra) -> dict:
    return {"image": "registry.example.com/app:1.0", "port": 8080, "latency": {"p99": p99}, "calls": list(calls), **extra}


def write(tmp_path: Path, services: dict, **top) -> Path:
    document = {"version": 1, "project": "shop", "services": services, **top}
    path = tmp_path / "blueprint.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def analyse(path: Path):
    loaded = load_blueprint(path)
    plan = build_plan(loaded.blueprint)
    found = [f for f in architecture.latency_findings(plan) if f.severity != "info"]
    found += list(architecture.retry_findings(plan)) + list(architecture.timeout_findings(plan))
    return plan, locate(found, loaded.source)


def ids(found) -> list[str]:
    return [f.id for f in found]


# --- costs -----------------------------------------------------------------------------------


def test_chain(tmp_path):
    plan, _ = analyse(write(tmp_path, {"a": svc("10ms", ["b"]), "b": svc("20ms", ["c"]), "c": svc("30ms")}))
    # 10 + (2 + 20 + (2 + 30)) within one (implicit) region
    assert plan.latency.cost_ms == {"c": 30, "b": 52, "a": 64}


def test_diamond_sequential_and_parallel(tmp_path):
    services = {"a": svc("5ms", ["b", "c"]), "b": svc("10ms", ["d"]), "c": svc("20ms", ["d"]), "d": svc("40ms")}
    plan, _ = analyse(write(tmp_path, services))
    # d 40; b 10+2+40 = 52; c 20+2+40 = 62; a 5 + (2+52) + (2+62) = 123
    assert plan.latency.cost_ms == {"d": 40, "b": 52, "c": 62, "a": 123}
    services["a"]["parallel_calls"] = True
    plan, _ = analyse(write(tmp_path, services))
    # the slowest callee only: 5 + 2 + 62
    assert plan.latency.cost_ms["a"] == 69
    assert [hop.service for hop in plan.latency.branch("a")] == ["a", "c", "d"]


def test_three_region_chain_uses_declared_rtts(tmp_path):
    regions = {"oslo": {"jurisdiction": "NO"}, "frankfurt": {"jurisdiction": "DE"}, "us-east": {"jurisdiction": "US"}}
    rtts = {"oslo/frankfurt": 30, "frankfurt/us-east": 90, "oslo/us-east": 100}
    services = {
        "a": svc("10ms", ["b"], region="oslo", route={"path_prefix": "/a"}),
        "b": svc("20ms", ["c"], region="frankfurt"),
        "c": svc("5ms", region="us-east"),
    }
    plan, found = analyse(write(tmp_path, services, regions=regions, rtt_ms=rtts, gateway=GATEWAY))
    assert plan.latency.cost_ms["a"] == 10 + 30 + 20 + 90 + 5
    hops = [(h.service, h.region, h.rtt_ms, h.p99_ms) for h in plan.latency.branch("a")]
    assert hops == [("a", "oslo", 0.0, 10), ("b", "frankfurt", 30, 20), ("c", "us-east", 90, 5)]
    assert found == []  # 155 ms is within the default 200ms budget


def test_a_declared_same_region_rtt_overrides_the_default(tmp_path):
    """`oslo/oslo` is the round trip within oslo: it replaces the 2 ms default there, in the
    costs, the branches, the timeout checks and the graph; frankfurt keeps the default."""
    regions = {"oslo": {"jurisdiction": "NO"}, "frankfurt": {"jurisdiction": "DE"}}
    services = {
        "a": svc("10ms", ["b"], region="oslo", timeout="25ms"),
        "b": svc("20ms", region="oslo"),
        "c": svc("10ms", ["d"], region="frankfurt"),
        "d": svc("20ms", region="frankfurt"),
    }
    plan, found = analyse(write(tmp_path, services, regions=regions, rtt_ms={"oslo/oslo": 7.5}))
    assert plan.latency.cost_ms["a"] == 10 + 7.5 + 20
    assert [(hop.service, hop.rtt_ms) for hop in plan.latency.branch("a")] == [("a", 0.0), ("b", 7.5)]
    assert plan.latency.cost_ms["c"] == 10 + 2 + 20
    # 25 ms is enough for b's 20 ms plus the default 2 ms, not plus the declared 7.5 ms
    assert [(f.id, f.path) for f in found] == [("timeout-short", "services.a.calls[0]")]
    labels = {(edge.source, edge.target): edge.label for edge in build_graph(plan).edges}
    assert labels[("svc-a", "svc-b")] == "7.5 ms" and labels[("svc-c", "svc-d")] == "2 ms"


def test_cross_region_call_without_rtt_is_a_load_error_at_the_call(tmp_path):
    regions = {"oslo": {"jurisdiction": "NO"}, "us-east": {"jurisdiction": "US"}}
    path = write(tmp_path, {"a": svc("10ms", ["b"], region="oslo"), "b": svc("5ms", region="us-east")}, regions=regions)
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(path)
    text = str(caught.value)
    line = next(n for n, row in enumerate(path.read_text().splitlines(), 1) if row.strip() == "- b")
    assert f":{line}:" in text and "oslo/us-east" in text


# --- budgets ---------------------------------------------------------------------------------


# a -> b -> c: 10 + 2 + 20 + 2 + 30 = 64 ms, and the gateway's hop to a (same region) 2 ms
@pytest.mark.parametrize(("budget", "fails"), [("66ms", False), ("65ms", True)])
def test_exactly_at_the_budget_passes_one_ms_over_fails(tmp_path, budget, fails):
    services = {"a": svc("10ms", ["b"], route={"path_prefix": "/a", "budget": budget}), "b": svc("20ms", ["c"]), "c": svc("30ms")}
    _, found = analyse(write(tmp_path, services, gateway=GATEWAY))
    assert ids(found) == (["latency-budget"] if fails else [])
    if fails:
        item = found[0]
        assert item.severity == "error" and item.path == "services.a.route.budget"
        assert "66 ms" in item.message and "1 ms over" in item.message and "gateway -> a 2 ms + a 64 ms" in item.message
        assert "a (p99 10 ms) -> b (RTT 2 ms, p99 20 ms) -> c (RTT 2 ms, p99 30 ms)" in item.message


def test_policy_budget_applies_without_a_route_budget(tmp_path):
    services = {"a": svc("150ms", ["b"], route={"path_prefix": "/a"}), "b": svc("49ms")}
    path = write(tmp_path, services, gateway=GATEWAY)
    _, found = analyse(path)
    assert ids(found) == ["latency-budget"]
    assert found[0].path == "services.a.route" and "203 ms" in found[0].message and "policy.latency_budget" in found[0].message
    # the finding's line is the route's line in the file
    line = next(n for n, row in enumerate(path.read_text().splitlines(), 1) if row.strip().startswith("route:"))
    assert found[0].line == line


def test_routes_sorted_worst_first_and_validate_fails(tmp_path):
    services = {
        "a": svc("100ms", route={"path_prefix": "/a"}),
        "b": svc("90ms", route={"path_prefix": "/b", "budget": "100ms"}),
        "c": svc("250ms", route={"path_prefix": "/c"}),
    }
    path = write(tmp_path, services, gateway=GATEWAY)
    plan, _ = analyse(path)
    assert [route.service for route in plan.latency.routes] == ["c", "b", "a"]
    result = runner.invoke(app, ["validate", str(path), "--format", "json"])
    assert result.exit_code == 1 and '"latency-budget"' in result.stdout


def test_fanout_probability(tmp_path):
    services = {"a": svc("5ms", ["b", "c", "d"]), "b": svc("1ms"), "c": svc("1ms"), "d": svc("1ms")}
    plan, _ = analyse(write(tmp_path, services))
    assert plan.latency.fanout == {"a": pytest.approx(1 - 0.99**3)}
    found = list(architecture.latency_findings(plan))
    assert [(f.id, f.severity) for f in found] == [("latency-fanout", "info")] and "2.97%" in found[0].message


# --- scale -----------------------------------------------------------------------------------


def _blueprint(services: dict) -> Blueprint:
    return Blueprint.model_validate({"version": 1, "project": "big", "services": services, "gateway": GATEWAY})


def test_a_thousand_services_each_calling_the_next_two():
    n = 1000
    services = {f"s{i}": svc("1ms", [f"s{j}" for j in (i + 1, i + 2) if j < n], route={"path_prefix": f"/s{i}"}) for i in range(n)}
    blueprint = _blueprint(services)
    # cost(i) = 1 + (2 + cost(i+1)) + (2 + cost(i+2)): Fibonacci-like, exponential in n, still finite in floats
    cost = {n - 1: 1.0, n - 2: 1 + 2 + 1.0}
    for i in range(n - 3, -1, -1):
        cost[i] = 1 + 2 + cost[i + 1] + 2 + cost[i + 2]
    plan = build_plan(blueprint)
    latency = plan.latency
    found = [*architecture.latency_findings(plan), *architecture.retry_findings(plan), *architecture.timeout_findings(plan)]
    assert sum(1 for f in found if f.id == "latency-budget") == sum(1 for i in range(n) if cost[i] > 200)
    assert latency.cost_ms["s0"] == pytest.approx(cost[0], rel=1e-12) and latency.cost_ms["s500"] == pytest.approx(cost[500], rel=1e-12)


def test_a_thousand_deep_chain_needs_no_recursion():
    n = 3000  # three times Python's default recursion limit
    services = {f"s{i}": svc("1ms", [f"s{i + 1}"] if i + 1 < n else [], route={"path_prefix": f"/s{i}"}) for i in range(n)}
    latency = build_plan(_blueprint(services)).latency
    assert latency.cost_ms["s0"] == n * 1 + (n - 1) * 2
    assert len(latency.branch("s0")) == n


# --- retries ---------------------------------------------------------------------------------


def test_retry_amplification_names_the_path(tmp_path):
    services = {
        "a": svc("1ms", ["b"], route={"path_prefix": "/a"}, retry={"attempts": 2}),
        "b": svc("1ms", ["c"], retry={"attempts": 3}),
        "c": svc("1ms", ["d"], retry={"attempts": 2}),
        "d": svc("1ms"),
    }
    path = write(tmp_path, services, gateway=GATEWAY, policy={"max_retry_amplification": 10})
    plan, found = analyse(path)
    assert {name: a.factor for name, a in plan.latency.amplification.items()} == {"a": 2, "b": 6, "c": 12, "d": 12}
    assert ids(found) == ["retry-amplification"]  # reported once, where the product first passes 10
    assert found[0].path == "services.c.retry" and "gateway -> a (x2) -> b (x3) -> c (x2)" in found[0].message
    assert "12 attempts" in found[0].message


def test_retry_amplification_at_the_limit_passes(tmp_path):
    services = {"a": svc("1ms", ["b"], route={"path_prefix": "/a"}, retry={"attempts": 2}), "b": svc("1ms", retry={"attempts": 5})}
    _, found = analyse(write(tmp_path, services, gateway=GATEWAY, policy={"max_retry_amplification": 10}))
    assert found == []


def test_retry_amplification_takes_the_worst_of_several_paths(tmp_path):
    services = {
        "a": svc("1ms", ["b", "c"]),
        "b": svc("1ms", ["d"], retry={"attempts": 4}),
        "c": svc("1ms", ["d"]),
        "d": svc("1ms", retry={"attempts": 3}),
    }
    plan, found = analyse(write(tmp_path, services, policy={"max_retry_amplification": 10}))
    assert plan.latency.amplification["d"].factor == 12 and plan.latency.amplification["d"].path == (("a", 1), ("b", 4), ("d", 3))
    assert ids(found) == ["retry-amplification"] and found[0].path == "services.d.retry"


# --- timeouts --------------------------------------------------------------------------------


def test_caller_timeout_shorter_than_callee_cost(tmp_path):
    services = {"a": svc("1ms", ["b"], timeout="50ms"), "b": svc("40ms", ["c"]), "c": svc("20ms")}
    _, found = analyse(write(tmp_path, services))
    # a waits 50ms; b needs 2 + 40 + 2 + 20 = 64 ms
    assert ids(found) == ["timeout-short"]
    assert found[0].path == "services.a.calls[0]" and "64 ms" in found[0].message and "a gives up while b keeps working" in found[0].message


def test_caller_timeout_long_enough_passes(tmp_path):
    services = {"a": svc("1ms", ["b"], timeout="64ms"), "b": svc("40ms", ["c"]), "c": svc("20ms")}
    _, found = analyse(write(tmp_path, services))
    assert found == []


def test_retries_times_timeout_beyond_the_upstream_timeout(tmp_path):
    services = {
        "a": svc("1ms", ["b"], timeout="1s"),
        "b": svc("1ms", ["c"], timeout="400ms"),
        "c": svc("1ms", retry={"attempts": 3}),
    }
    _, found = analyse(write(tmp_path, services))
    # b may wait 3 x 400ms = 1200 ms for c, but a gives b only 1s
    assert ids(found) == ["timeout-retry"]
    assert found[0].path == "services.a.timeout" and "1200 ms" in found[0].message
    services["a"]["timeout"] = "1200ms"
    _, found = analyse(write(tmp_path, services))
    assert found == []


def test_plan_shows_latency_vs_budget_worst_first(tmp_path):
    services = {
        "a": svc("100ms", route={"path_prefix": "/a"}),
        "b": svc("90ms", ["c"], route={"path_prefix": "/b", "budget": "100ms"}, retry={"attempts": 3}),
        "c": svc("10ms"),
    }
    result = runner.invoke(app, ["plan", str(write(tmp_path, services, gateway=GATEWAY)), "--format", "json"])
    assert result.exit_code == 0
    section = next(s for s in json.loads(result.stdout) if s["title"].startswith("Latency vs budget"))
    rows = [(row["route"], row["sum of p99s (upper bound)"], row["status"], row["retry amplification"]) for row in section["rows"]]
    # the gateway's hop (2 ms, same region) comes on top of each service's cost
    assert rows == [("b", "104 ms", "over by 4 ms", "x3"), ("a", "102 ms", "ok", "x1")]
    assert section["rows"][0]["heaviest branch"] == "b (p99 90 ms) -> c (RTT 2 ms, p99 10 ms)"


def test_inner_timeout_longer_than_the_outer_one_without_retries(tmp_path):
    services = {"a": svc("1ms", ["b"], timeout="300ms"), "b": svc("1ms", ["c"], timeout="400ms"), "c": svc("1ms")}
    _, found = analyse(write(tmp_path, services))
    assert [(f.id, f.path) for f in found] == [("timeout-retry", "services.a.timeout")] and "b may wait 400ms for c" in found[0].message


# --- the legs outside the call graph -----------------------------------------------------------

REGIONS = {"oslo": {"jurisdiction": "NO"}, "frankfurt": {"jurisdiction": "DE"}, "virginia": {"jurisdiction": "US"}}
RTTS = {"oslo/frankfurt": 30, "oslo/virginia": 100, "frankfurt/virginia": 90, "oslo/oslo": 1.5}


def host(name: str, region: str) -> dict:
    return {"name": name, "region": region, "vcpu": 8, "memory": "16Gi", "storage": "nvme"}


def test_a_datastore_in_another_region_costs_each_query_its_round_trip(tmp_path):
    services = {
        "front": svc("20ms", ["payment"], region="oslo", route={"path_prefix": "/"}),
        "payment": svc("25ms", region="oslo", datastore="payment-db", queries_per_request=3),
    }
    datastores = {"payment-db": {"engine": "postgres", "version": "16", "host": "fra-1"}}
    top = dict(gateway=GATEWAY, regions=REGIONS, rtt_ms=RTTS, datastores=datastores, hosts=[host("osl-1", "oslo"), host("fra-1", "frankfurt")])
    top["compose"] = {"host": "osl-1"}
    plan, _ = analyse(write(tmp_path, services, **top))
    # payment: 25 + 3 queries x 30 ms (oslo/frankfurt) = 115; front: 20 + 1.5 + 115 = 136.5
    assert plan.latency.datastore_ms["payment"] == 90 and plan.latency.cost_ms == {"payment": 115, "front": 136.5}
    route = plan.latency.routes[0]
    # the gateway runs on the compose host in oslo: its hop is oslo/oslo, 1.5 ms; no clients' region
    assert (route.gateway_region, route.gateway_ms, route.clients_ms, route.total_ms) == ("oslo", 1.5, 0, 138)
    assert "clients' leg not counted" in route.legs()
    datastores["payment-db"]["host"] = "osl-1"
    plan, _ = analyse(write(tmp_path, services, **top))
    assert plan.latency.cost_ms["payment"] == 25 + 3 * 1.5


def test_the_clients_leg_runs_from_their_region_to_the_gateway(tmp_path):
    services = {
        "shop": svc("50ms", region="oslo", route={"path_prefix": "/", "budget": "150ms"}),
        "admin": svc("50ms", region="oslo", route={"path_prefix": "/admin", "budget": "150ms", "clients_region": "oslo"}),
    }
    gateway = {**GATEWAY, "clients_region": "virginia"}
    top = dict(gateway=gateway, regions=REGIONS, rtt_ms=RTTS, hosts=[host("osl-1", "oslo")], compose={"host": "osl-1"})
    plan, found = analyse(write(tmp_path, services, **top))
    routes = {route.service: route for route in plan.latency.routes}
    # shop: clients virginia -> gateway oslo 100 + gateway -> shop 1.5 + shop 50 = 151.5, over 150 by 1.5
    assert routes["shop"].total_ms == 151.5 and routes["shop"].over
    assert routes["admin"].total_ms == 1.5 + 1.5 + 50
    assert ids(found) == ["latency-budget"] and found[0].path == "services.shop.route.budget"
    message = found[0].message
    assert "up to 151.5 ms (a sum of p99s, an upper bound)" in message
    assert "clients virginia -> gateway (oslo) 100 ms + gateway -> shop 1.5 ms + shop 50 ms" in message


def test_kubernetes_gateway_counts_its_worst_node_region(tmp_path):
    services = {"shop": svc("50ms", region="oslo", route={"path_prefix": "/"})}
    top = dict(gateway=GATEWAY, regions=REGIONS, rtt_ms=RTTS, hosts=[host("osl-1", "oslo"), host("fra-1", "frankfurt")])
    top["kubernetes"] = {"namespace": "shop", "version": "1.30"}
    plan, _ = analyse(write(tmp_path, services, **top))
    route = plan.latency.routes[0]
    # a gateway pod may run on the frankfurt node: 30 ms to the oslo service
    assert (route.gateway_region, route.gateway_ms, route.total_ms) == ("frankfurt", 30, 80)


def test_a_leg_across_regions_without_a_declared_round_trip_is_a_load_error(tmp_path):
    services = {"payment": svc("25ms", region="oslo", datastore="payment-db", route={"path_prefix": "/"})}
    datastores = {"payment-db": {"engine": "postgres", "version": "16", "host": "fra-1"}}
    top = dict(gateway={**GATEWAY, "clients_region": "virginia"}, regions=REGIONS, rtt_ms={"oslo/virginia": 100})
    top.update(datastores=datastores, hosts=[host("osl-1", "oslo"), host("fra-1", "frankfurt")], compose={"host": "osl-1"})
    with pytest.raises(BlueprintError) as raised:
        load_blueprint(write(tmp_path, services, **top))
    messages = [issue.message for issue in raised.value.issues]
    assert messages == ["payment's queries to payment-db crosses oslo/frankfurt, whose round-trip time is not declared"]
