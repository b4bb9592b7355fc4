"""The blueprint model: defaults, cross-references, and `environments` overlays."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from msgen.errors import BlueprintError
from msgen.model.blueprint import Blueprint
from msgen.model.load import deep_merge, load_blueprint
from msgen.units import Duration

HEAD = "version: 1\nproject: shop\n"


def load_error(write_blueprint, text: str, env: str | None = None) -> str:
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(write_blueprint(text), env)
    return str(caught.value)


def test_reference_blueprint_loads_with_its_defaults(reference_blueprint):
    blueprint = load_blueprint(reference_blueprint).blueprint
    assert sorted(blueprint.services) == ["fraud-check", "ledger", "payment"]
    ledger = blueprint.services["ledger"]
    assert ledger.route is None and ledger.calls == [] and ledger.parallel_calls is False
    assert ledger.resources.requests.cpu is None  # defaults are applied by the plan, and shown by `msgen plan`
    assert ledger.health.period == Duration(10_000, "10s")
    assert blueprint.datastores["payment-db"].max_connections == 200
    assert blueprint.datastores["ledger-db"].max_connections is None
    assert blueprint.gateway.provider == "file"
    assert blueprint.kubernetes.gateway_namespace == "traefik"
    assert blueprint.policy.max_retry_amplification == 10


def test_minimal_blueprint_loads(minimal_blueprint):
    blueprint = load_blueprint(minimal_blueprint).blueprint
    assert list(blueprint.services) == ["web"] and list(blueprint.datastores) == ["web-db"]


def test_models_are_frozen(reference_blueprint):
    blueprint = load_blueprint(reference_blueprint).blueprint
    with pytest.raises(ValidationError):
        blueprint.project = "other"


def test_staging_overlay_merges_maps_and_keeps_the_rest(reference_blueprint):
    base = load_blueprint(reference_blueprint).blueprint
    staging = load_blueprint(reference_blueprint, "staging")
    assert staging.env == "staging"
    blueprint = staging.blueprint
    assert blueprint.gateway.domain == "staging.pay.example.no"
    assert blueprint.gateway.acme_email == base.gateway.acme_email  # a map merges key by key
    assert blueprint.services["payment"].replicas == 1
    assert blueprint.services["payment"].image == base.services["payment"].image
    assert blueprint.services["fraud-check"] == base.services["fraud-check"]


def test_overlay_lists_and_scalars_replace(write_blueprint):
    path = write_blueprint(
        HEAD
        + "services:\n  web: {image: a:1, port: 80, calls: [api, auth], env: {A: x, B: y}}\n"
        + "  api: {image: a:1, port: 80}\n  auth: {image: a:1, port: 80}\n"
        + "environments:\n  dev:\n    services:\n      web: {calls: [api], env: {B: z}, port: 81}\n"
    )
    web = load_blueprint(path, "dev").blueprint.services["web"]
    assert web.calls == ["api"]
    assert web.env == {"A": "x", "B": "z"}
    assert web.port == 81


def test_deep_merge_does_not_mutate_its_inputs():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    overlay = {"a": {"c": [3]}, "e": 2}
    assert deep_merge(base, overlay) == {"a": {"b": 1, "c": [3]}, "d": 1, "e": 2}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}


def test_unknown_environment(reference_blueprint):
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(reference_blueprint, "stagign")
    issue = caught.value.first
    assert issue.path == "environments" and "unknown environment 'stagign'" in issue.message
    assert issue.hint == "did you mean 'staging'?"
    lines = reference_blueprint.read_text(encoding="utf-8").splitlines()
    assert (issue.line, issue.column) == (lines.index(next(line for line in lines if line.startswith("environments:"))) + 1, 1)


def test_unknown_environment_without_environments(write_blueprint):
    text = load_error(write_blueprint, HEAD + "services:\n  web: {image: a:1, port: 80}\n", "prod")
    assert "unknown environment 'prod'" in text and "declares no environments" in text


def test_overlay_naming_an_unknown_service(write_blueprint):
    text = HEAD + "services:\n  web: {image: a:1, port: 80}\nenvironments:\n  staging:\n    services:\n      wbe: {replicas: 1}\n"
    for env in (None, "staging"):  # every overlay is checked, even when another (or none) is chosen
        message = load_error(write_blueprint, text, env)
        assert ":8:7: environments.staging.services.wbe: the overlay names an unknown service 'wbe'" in message
        assert "did you mean 'web'?" in message


def test_overlay_naming_an_unknown_datastore(write_blueprint):
    text = HEAD + "services:\n  web: {image: a:1, port: 80}\nenvironments:\n  dev:\n    datastores: {db: {memory: 1Gi}}\n"
    assert "unknown datastore 'db'" in load_error(write_blueprint, text)


def test_an_invalid_overlay_value_names_the_overlay(write_blueprint):
    text = HEAD + "services:\n  web: {image: a:1, port: 80}\nenvironments:\n  staging:\n    services:\n      web: {replicas: 0}\n"
    for env in (None, "staging"):
        message = load_error(write_blueprint, text, env)
        assert ":8:13: environments.staging.services.web.replicas: " in message


def test_an_overlay_cannot_change_version_or_environments(write_blueprint):
    text = HEAD + "services:\n  web: {image: a:1, port: 80}\nenvironments:\n  dev: {version: 2}\n"
    assert "cannot change 'version'" in load_error(write_blueprint, text)


def test_an_overlay_must_be_a_mapping(write_blueprint):
    text = HEAD + "services:\n  web: {image: a:1, port: 80}\nenvironments:\n  dev: [1]\n"
    assert "environments.dev: " in load_error(write_blueprint, text)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ("regions: {a: {jurisdiction: DE}, b: {jurisdiction: NO}}\n", "region is required when several regions"),
        (
            "hosts:\n  - {name: h, region: nowhere, vcpu: 1, memory: 1Gi, storage: ssd}\nregions: {here: {jurisdiction: DE}}\n",
            "unknown region 'nowhere'",
        ),
        (
            "hosts:\n  - {name: h, region: r, vcpu: 1, memory: 1Gi, storage: ssd}\n  - {name: h, region: r, vcpu: 1, memory: 1Gi, storage: ssd}\nregions: {r: {jurisdiction: DE}}\n",
            "declared twice",
        ),
        (
            "hosts:\n  - {name: h1, region: r, vcpu: 1, memory: 1Gi, storage: ssd}\n  - {name: h2, region: r, vcpu: 1, memory: 1Gi, storage: ssd}\nregions: {r: {jurisdiction: DE}}\ncompose: {}\n",
            "compose.host is required",
        ),
        ("compose: {host: nowhere}\n", "unknown host 'nowhere'"),
        ("rtt_ms: {a/b: 3}\n", "unknown region 'a'"),
        ("rtt_ms: {a-b: 3}\n", "not a region pair"),
        ("datastores: {alloy: {engine: redis, version: '7'}}\n", "taken by msgen"),
        ("datastores: {x: {engine: mysql, version: '8.0', role: cache}}\n", "role applies to redis only"),
        ("kubernetes: {version: '1.20'}\n", "is not supported"),
        ("policy: {personal_data_in: [Norway]}\n", "neither an ISO 3166"),
        ("suppress: [{id: image-latest, at: services.web}]\n", "missing required key 'reason'"),
    ],
)
def test_cross_references_and_field_rules(write_blueprint, extra, words):
    assert words in load_error(write_blueprint, HEAD + "services:\n  web: {image: a:1, port: 80}\n" + extra)


def test_a_call_across_regions_needs_a_declared_rtt(write_blueprint):
    text = (
        HEAD
        + "regions: {a: {jurisdiction: DE}, b: {jurisdiction: NO}}\n"
        + "services:\n  web: {image: a:1, port: 80, region: a, calls: [api]}\n  api: {image: a:1, port: 80, region: b}\n"
    )
    message = load_error(write_blueprint, text)
    assert "services.web.calls[0]: the call web -> api crosses a/b" in message and "add `a/b: <ms>`" in message
    load_blueprint(write_blueprint(text + "rtt_ms: {b/a: 20}\n"))  # declared either way round


TWO_REGIONS = "regions: {a: {jurisdiction: DE}, b: {jurisdiction: NO}}\n"
ONE_SERVICE = "services:\n  web: {image: a:1, port: 80, region: a}\n"


@pytest.mark.parametrize(
    ("pairs", "second", "first"),
    [("{a/b: 20, b/a: 20}", "b/a", "a/b"), ("{a/b: 20, b/a: 30}", "b/a", "a/b"), ("{a/a: 1, b/b: 1, b/a: 5, a/b: 5}", "a/b", "b/a")],
)
def test_a_pair_of_regions_is_declared_once(write_blueprint, pairs, second, first):
    """`a/b` and `b/a` are one round trip: declaring both, even equal, is a load error at the second."""
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(write_blueprint(HEAD + TWO_REGIONS + f"rtt_ms: {pairs}\n" + ONE_SERVICE))
    (issue,) = caught.value.issues
    assert issue.path == f"rtt_ms.{second}" and f"the same pair of regions as {first}" in issue.message
    assert (issue.line, issue.column) == (4, 9 + pairs.index(second))


@pytest.mark.parametrize(("value", "words"), [("0", "greater than 0"), ("-5", "greater than 0"), ("1e400", "too large")])
def test_an_rtt_is_a_finite_number_above_zero_at_its_pair(write_blueprint, value, words):
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(write_blueprint(HEAD + TWO_REGIONS + f"rtt_ms:\n  a/b: {value}\n" + ONE_SERVICE))
    issue = caught.value.first
    assert (issue.path, issue.line) == ("rtt_ms.a/b", 5) and words in issue.message


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_an_rtt_given_as_python_data_must_be_finite(value):
    """The loader refuses .nan and .inf; the model refuses them from any other caller too."""
    document = {"version": 1, "project": "shop", "regions": {"a": {"jurisdiction": "DE"}}, "rtt_ms": {"a/a": value}}
    with pytest.raises(ValidationError) as caught:
        Blueprint.model_validate({**document, "services": {"web": {"image": "a:1", "port": 80}}})
    assert [error["loc"] for error in caught.value.errors()] == [("rtt_ms", "a/a")]


def test_an_unknown_region_in_a_same_region_pair_is_reported_once(write_blueprint):
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(write_blueprint(HEAD + TWO_REGIONS + "rtt_ms: {c/c: 1}\nservices:\n  web: {image: a:1, port: 80, region: a}\n"))
    assert [issue.message for issue in caught.value.issues] == ["unknown region 'c'"]


def test_a_route_needs_the_gateway(write_blueprint):
    message = load_error(write_blueprint, HEAD + "services:\n  web: {image: a:1, port: 80, route: {path_prefix: /}}\n")
    assert "services.web.route: " in message and "gateway" in message


def test_json_schema_covers_the_whole_model():
    schema = Blueprint.model_json_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(Blueprint.model_fields)
    service = schema["$defs"]["Service"]
    assert service["additionalProperties"] is False and "image" in service["required"]


def test_identical_overlays_are_validated_once(write_blueprint, monkeypatch):
    """Many identical overlays (a common pattern: one per region or tenant) cost one validation."""
    from msgen.model import load

    text = HEAD_FOR_OVERLAYS + "environments:\n" + "".join(f"  e{index}: {{services: {{web: {{replicas: 1}}}}}}\n" for index in range(50))
    text += "  other: {services: {web: {replicas: 3}}}\n"
    calls = []
    real = load.validate
    monkeypatch.setattr(load, "validate", lambda data, source: calls.append(1) or real(data, source))
    load.load_blueprint(write_blueprint(text))
    assert len(calls) == 3, "the base, the 50 identical overlays once, and the other one"


HEAD_FOR_OVERLAYS = "version: 1\nproject: shop\nservices:\n  web: {image: 'a:1.0', port: 80}\n"


def test_a_load_error_an_overlay_causes_names_the_overlay(write_blueprint):
    text = HEAD_FOR_OVERLAYS.replace("port: 80}", "port: 80, calls: [api]}") + "  api: {image: 'a:1.0', port: 81}\n"
    text += "environments:\n  bad:\n    services:\n      api: {calls: [web]}\n"
    for env in (None, "bad"):
        with pytest.raises(BlueprintError) as raised:
            load_blueprint(write_blueprint(text), env)
        (issue,) = raised.value.issues
        assert issue.message.startswith("with environment bad: call cycle"), issue
