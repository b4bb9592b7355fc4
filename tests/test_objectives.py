"""Route objectives at the gateway: the availability field, the latency threshold (budget minus
the clients' leg), the capped histogram edges, and the router names the alerts match."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
import yaml

from msgen.errors import BlueprintError
from msgen.model.load import load_blueprint
from msgen.plan.latency import RouteLatency
from msgen.plan.objectives import DEFAULT_BUCKETS, MAX_BUCKETS, histogram_buckets, route_objective
from msgen.plan.observability import kubernetes_traefik_router
from msgen.units import Duration
from tests.rendering import render_in_memory

HEAD = """\
version: 1
project: shop
regions:
  home: {jurisdiction: DE}
  far: {jurisdiction: DE}
rtt_ms: {home/far: 30}
gateway:
  domain: shop.example.com
observability: {}
services:
"""


def service(name: str, route: str) -> str:
    return f"  {name}:\n    image: example/{name}:1.0.0\n    port: 8080\n    region: home\n    route: {route}\n"


def rules(rendered, alert: str) -> dict[str, dict]:
    """service -> the rendered compose rule of that alert."""
    document = yaml.safe_load(rendered.files["prometheus/rules/gateway.yml"].text)
    return {rule["labels"]["service"]: rule for rule in document["groups"][0]["rules"] if rule["alert"] == alert}


def objective(service: str, budget_ms: int, clients_ms: float = 0.0, availability: float = 99.9):
    budget = Duration(budget_ms, f"{budget_ms}ms")
    region = "far" if clients_ms else None
    latency = RouteLatency(service, budget_ms / 2, budget, "policy.latency_budget", region, clients_ms, None, 2.0, 10.0)
    return route_objective(service, availability, latency)


# --- route.availability ---------------------------------------------------------------------


def test_availability_sets_the_burn_rate_thresholds(write_blueprint):
    text = HEAD + service("web", "{path_prefix: /web}") + service("api", "{path_prefix: /api, availability: 99.5}")
    rendered = render_in_memory(write_blueprint(text))
    fast, slow = rules(rendered, "RouteErrorBudgetBurnFast"), rules(rendered, "RouteErrorBudgetBurnSlow")
    # the default 99.9%: 0.1% may fail; 14.4x and 6x of it over the long and the short window alike
    assert fast["web"]["expr"].count("> 0.0144") == 2 and slow["web"]["expr"].count("> 0.006") == 2
    # 99.5%: 0.5% may fail
    assert fast["api"]["expr"].count("> 0.072") == 2 and slow["api"]["expr"].count("> 0.03") == 2
    assert "[1h]" in fast["api"]["expr"] and "[5m]" in fast["api"]["expr"]
    assert "[6h]" in slow["api"]["expr"] and "[30m]" in slow["api"]["expr"]
    assert "0.5% its objective allows" in fast["api"]["annotations"]["description"]


@pytest.mark.parametrize(
    ("value", "words", "at"),
    [
        ("94.9", "greater than or equal to 95", "key"),
        ("99.9999", "less than or equal to 99.999", "key"),
        ("100", "less than or equal to 99.999", "key"),
        ('"99.9"', "valid number", "key"),
        (".nan", "not a finite number", "value"),  # the loader refuses it before the model
    ],
)
def test_availability_out_of_range_is_a_load_error_at_its_line_and_column(write_blueprint, value, words, at):
    text = HEAD + service("web", f"{{path_prefix: /web, availability: {value}}}")
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(write_blueprint(text))
    issue = caught.value.first
    line = text.splitlines().index(f"    route: {{path_prefix: /web, availability: {value}}}") + 1
    column = len("    route: {path_prefix: /web, " + ("availability: " if at == "value" else "")) + 1
    assert (issue.path, issue.line, issue.column) == ("services.web.route.availability", line, column)
    assert words in issue.message


def test_the_cli_names_file_line_and_column_and_exits_2(write_blueprint):
    path = write_blueprint(HEAD + service("web", "{path_prefix: /web, availability: 90}"))
    result = subprocess.run([sys.executable, "-m", "msgen", "validate", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    line = len(HEAD.splitlines()) + 5
    assert f"{path}:{line}:32: services.web.route.availability: Input should be greater than or equal to 95" in result.stderr


# --- the latency threshold ------------------------------------------------------------------


def test_the_threshold_is_the_budget_less_the_clients_leg_in_whole_ms():
    assert objective("a", 200, clients_ms=30).latency_ms == 170
    assert objective("a", 200, clients_ms=12.4).latency_ms == 187  # rounded down: never late
    assert objective("a", 200).latency_ms == 200  # no clients' leg counted
    assert objective("a", 200, clients_ms=200).latency_ms is None
    assert objective("a", 200, clients_ms=250).latency_ms is None


def test_a_clients_leg_that_uses_up_the_budget_leaves_no_latency_alert(write_blueprint):
    far = "{path_prefix: /far, budget: 20ms, clients_region: far}"
    rendered = render_in_memory(write_blueprint(HEAD + service("near", "{path_prefix: /near}") + service("far", far)))
    latency = rules(rendered, "RouteLatencyOverBudget")
    assert sorted(latency) == ["near"]  # far: 30ms to the gateway, its budget is 20ms
    assert sorted(rules(rendered, "RouteErrorBudgetBurnFast")) == ["far", "near"]  # its availability is still watched
    # the latency-budget error already fails the blueprint, at far's budget
    assert [(f.id, f.path) for f in rendered.findings if f.id == "latency-budget"] == [("latency-budget", "services.far.route.budget")]
    assert rendered.plan.gateway.route("far").objective.latency_reason().startswith("none: the clients' leg of 30 ms uses up")


# --- the histogram's edges ------------------------------------------------------------------


def test_edges_keep_the_defaults_and_add_every_threshold_and_budget_within_the_cap():
    edges = histogram_buckets([objective("a", 200, clients_ms=30), objective("b", 150)])
    assert edges == tuple(sorted({*DEFAULT_BUCKETS, 0.17, 0.2, 0.15}))


def test_past_the_cap_the_most_shared_thresholds_win_then_the_smaller_then_budgets():
    room = MAX_BUCKETS - len(DEFAULT_BUCKETS)
    # one threshold shared by three routes, one by two, then single ones from 101ms up: more than fit
    objectives = [objective(f"s{n}", 900) for n in range(3)] + [objective(f"d{n}", 800) for n in range(2)]
    objectives += [objective(f"r{n}", 101 + n) for n in range(room + 3)]
    random.Random(7).shuffle(objectives)
    edges = histogram_buckets(objectives)
    assert len(edges) == MAX_BUCKETS and set(DEFAULT_BUCKETS) <= set(edges)
    assert {0.9, 0.8} <= set(edges)  # the shared ones first
    singles = [0.101 + n / 1000 for n in range(room - 2)]
    assert [edge for edge in edges if edge not in DEFAULT_BUCKETS and edge not in (0.9, 0.8)] == [round(v, 3) for v in singles]
    assert histogram_buckets(reversed(objectives)) == edges  # the order of the routes does not matter


def test_thresholds_take_edges_before_budgets():
    room = MAX_BUCKETS - len(DEFAULT_BUCKETS)
    # each route's threshold (budget - 30ms) differs from its budget: the budgets get no room
    objectives = [objective(f"r{n}", 400 + 100 * n, clients_ms=30) for n in range(room)]
    edges = set(histogram_buckets(objectives))
    assert {o.latency_seconds for o in objectives} <= edges
    assert not {o.budget.seconds for o in objectives} & edges


def test_a_threshold_without_an_edge_is_a_warning_at_its_budget(write_blueprint):
    room = MAX_BUCKETS - len(DEFAULT_BUCKETS)
    text = HEAD + "".join(service(f"r{n}", f"{{path_prefix: /r{n}, budget: {110 + n}ms}}") for n in range(room + 2))
    path = write_blueprint(text)
    rendered = render_in_memory(path)
    capped = [f for f in rendered.findings if f.id == "traefik-bucket-cap"]
    # the smaller thresholds win the room; the two largest get none
    assert [(f.path, f.severity) for f in capped] == [(f"services.r{n}.route.budget", "warning") for n in (room, room + 1)]
    assert capped[0].line == text.splitlines().index(f"    route: {{path_prefix: /r{room}, budget: {110 + room}ms}}") + 1
    assert "no bucket ending at r8's 118ms" in capped[0].message
    latency = rules(rendered, "RouteLatencyOverBudget")
    assert "the p99 is interpolated" in latency[f"r{room}"]["annotations"]["description"]
    assert "a histogram bucket ends there" in latency["r0"]["annotations"]["description"]
    assert len(rendered.plan.gateway.buckets) == MAX_BUCKETS


# --- the router names the rules match ---------------------------------------------------------


def test_kubernetes_router_names_match_traefiks_own_fixture():
    # Traefik's CRD provider tests: IngressRoute test.route in namespace default with this match
    assert kubernetes_traefik_router("default", "test.route", "Host(`foo.com`) && PathPrefix(`/bar`)") == (
        "default-test-route-6b204d94623b3df4370c@kubernetescrd"
    )


def test_docker_provider_routes_are_matched_by_their_docker_router(write_blueprint):
    text = HEAD.replace("  domain: shop.example.com\n", "  domain: shop.example.com\n  provider: docker\n") + service("web", "{path_prefix: /web}")
    rendered = render_in_memory(write_blueprint(text))
    exprs = [rule["expr"] for rule in rules(rendered, "RouteErrorBudgetBurnFast").values()]
    assert exprs and all('router="web@docker"' in expr for expr in exprs)


def test_msgen_plan_shows_each_routes_objectives_and_the_edges(write_blueprint):
    from msgen.views import objectives_section

    far = "{path_prefix: /far, budget: 20ms, clients_region: far}"
    text = HEAD + service("near", "{path_prefix: /near, availability: 99.95}") + service("far", far)
    (section,) = objectives_section(render_in_memory(write_blueprint(text)).plan)
    # far's 20ms budget is an edge for its dashboard line, though it has no threshold
    assert section.title == "Route objectives (latency histogram edges, seconds: 0.005, 0.01, 0.02, 0.025, 0.05, 0.1, 0.2, 0.3, 1.2, 5)"
    assert section.rows == (
        ("far", "99.9% (default)", "none: the clients' leg of 30 ms uses up the 20ms budget (error latency-budget)", "-"),
        ("near", "99.95%", "200ms: the 200ms budget (the clients' leg is not counted: no clients_region)", "yes"),
    )


def test_the_kubernetes_rules_watch_the_router_of_the_rendered_ingress_route(reference_blueprint):
    rendered = render_in_memory(reference_blueprint)
    documents = [doc for doc in yaml.safe_load_all(rendered.files["kubernetes/gateway/route-payment.yaml"].text) if doc]
    (route,) = [doc for doc in documents if doc["kind"] == "IngressRoute"]
    (match,) = [entry["match"] for entry in route["spec"]["routes"]]
    router = kubernetes_traefik_router(route["metadata"]["namespace"], route["metadata"]["name"], match)
    rules = [rule for group in rendered.plan.observability.kubernetes_rule_groups if group.name == "gateway" for rule in group.rules]
    assert len(rules) == 4 and all(f'router="{router}"' in rule.expr for rule in rules)
    values = yaml.safe_load(rendered.files["kubernetes/gateway/traefik-values.yaml"].text)
    assert values["providers"]["kubernetesCRD"]["safeNaming"] is False  # the names above, not `<namespace>_<name>_<index>`
    assert values["metrics"]["prometheus"]["addRoutersLabels"] is True
