"""`msgen import`: compose files of five shapes imported, validated, fixed and rendered; the merge
and interpolation compared with compose's own model; msgen's own output imported back."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
import realtools
import yaml
from hypothesis import assume, given, settings
from strategies import GENERATED, blueprints, write_blueprint
from typer.testing import CliRunner

from msgen import api
from msgen.cli import app
from msgen.errors import InternalError
from msgen.importer import import_compose
from msgen.importer.compose import environment, read_compose
from msgen.loader import load_yaml
from msgen.model.load import validate

DATA = Path(__file__).parent / "data" / "compose"
ROOT = Path(__file__).resolve().parent.parent
SHAPES = {
    "traefik": ["docker-compose.yml"],
    "health": ["docker-compose.yml"],
    "databases": ["docker-compose.yml"],
    "prometheus": ["docker-compose.yml"],
    "override": ["docker-compose.yml", "docker-compose.override.yml"],
}


def files(shape: str) -> list[Path]:
    return [DATA / shape / name for name in SHAPES[shape]]


def imported(shape: str) -> tuple[dict, tuple[str, ...]]:
    result = import_compose(files(shape))
    return yaml.safe_load(result.text), result.unmapped


def unmapped_about(unmapped: tuple[str, ...], where: str) -> list[str]:
    return [entry for entry in unmapped if entry.startswith(where)]


def test_traefik_labels_become_routes_and_the_gateway(monkeypatch):
    blueprint, unmapped = imported("traefik")
    api_service, catalog = blueprint["services"]["api"], blueprint["services"]["catalog"]
    assert sorted(blueprint["services"]) == ["api", "catalog"]  # the Traefik container is the gateway
    assert blueprint["project"] == "storefront"
    assert catalog["image"].endswith("@sha256:" + "0123456789abcdef" * 4)
    assert (api_service["port"], catalog["port"]) == (8000, 9000)
    assert blueprint["gateway"]["provider"] == "docker"
    assert blueprint["gateway"]["acme_email"] == "ops@shop.example.com"
    domain = blueprint["gateway"]["domain"]
    assert domain == "shop.example.com"  # the host with paths under it, not catalog's own
    routes = {name: service["route"] for name, service in blueprint["services"].items()}
    hosts = {name: route.get("host", domain) for name, route in routes.items()}
    assert hosts == {"api": "shop.example.com", "catalog": "catalog.example.com"}
    assert routes["api"]["path_prefix"] == "/api"
    assert api_service["rate_limit"] == {"average": 20, "burst": 40}
    assert api_service["retry"] == {"attempts": 3, "initial_interval": "200ms"}
    assert api_service["calls"] == ["catalog"]
    assert any("--api.insecure" in entry for entry in unmapped_about(unmapped, "services.traefik.command"))
    assert any("Docker socket" in entry for entry in unmapped_about(unmapped, "services.traefik.volumes"))
    assert api_service["circuit_breaker"] == {"expression": "NetworkErrorRatio() > 0.30"}
    # published ports of the gateway are its job, not something to report
    assert unmapped_about(unmapped, "services.traefik.ports") == []


def test_healthchecks_resources_and_credentials():
    blueprint, unmapped = imported("health")
    orders, mailer = blueprint["services"]["orders"], blueprint["services"]["mailer"]
    assert orders["port"] == 8081
    assert orders["ports"] == [{"name": "tcp-9102", "port": 9102, "protocol": "tcp"}]
    assert orders["replicas"] == 3
    assert orders["resources"] == {"limits": {"cpu": 0.5, "memory": "512Mi"}, "requests": {"cpu": 0.25, "memory": "256Mi"}}
    assert orders["health"] == {"path": "/ready", "initial_delay": "90s", "period": "15s", "timeout": "2s"}
    assert orders["args"] == ["--listen", ":8081", "--metrics", ":9102"]
    assert orders["env"] == {"LOG_LEVEL": "debug", "WORKERS": 4}
    assert orders["secrets"] == ["STRIPE_API_KEY"]
    assert "sk_live" not in import_compose(files("health")).text  # the credential's value never enters the blueprint
    assert mailer["health"] == {"command": ["CMD-SHELL", "pgrep mailer"], "period": "30s"}
    assert (mailer["command"], mailer["args"]) == (["/usr/bin/mailer"], ["--queue", "orders"])
    assert mailer["resources"] == {"limits": {"cpu": 1, "memory": "1Gi"}}
    assert mailer["calls"] == ["orders"]
    assert "port" not in mailer
    assert len(unmapped_about(unmapped, "services.mailer.network_mode")) == 1
    assert len(unmapped_about(unmapped, "services.mailer.privileged")) == 1


def test_databases_become_datastores_with_one_owner_each():
    blueprint, unmapped = imported("databases")
    assert blueprint["datastores"] == {
        "pg": {"engine": "postgres", "version": "16.4", "memory": "2Gi", "cpu": 2},
        "mysql": {"engine": "mysql", "version": "8.0.39"},
        "cache": {"engine": "redis", "version": "7.4"},
    }
    owners = {name: service.get("datastore") for name, service in blueprint["services"].items()}
    assert owners == {"accounts": "pg", "reports": "cache", "shop": "mysql"}
    assert sorted(blueprint["services"]) == ["accounts", "reports", "shop"]
    assert any("shared with reports" in entry for entry in unmapped_about(unmapped, "services.pg"))
    assert blueprint["services"]["accounts"]["secrets"] == ["DB_PASSWORD"]
    assert any("published port 127.0.0.1:8088:8080" in entry for entry in unmapped_about(unmapped, "services.shop.ports[0]"))
    assert len([entry for entry in unmapped if "storage is the default 10Gi" in entry]) == 3


def test_prometheus_is_msgen_s_own_and_its_bind_mount_is_reported():
    blueprint, unmapped = imported("prometheus")
    assert sorted(blueprint["services"]) == ["app"]
    assert blueprint["observability"] == {"prometheus": {"retention": "30d"}}
    app_service = blueprint["services"]["app"]
    assert (app_service["port"], app_service["health"]) == (8080, {"path": "/healthz"})
    assert app_service["volumes"] == {"app-cache": {"path": "/var/cache/app", "size": "1Gi"}}
    assert any("./prometheus.yml" in entry for entry in unmapped_about(unmapped, "services.prometheus.volumes"))
    assert any("./config:/etc/app" in entry for entry in unmapped_about(unmapped, "services.app.volumes[1]"))
    assert len(unmapped_about(unmapped, "services.node-exporter")) == 1


def test_override_anchors_extensions_and_env_file():
    blueprint, _ = imported("override")
    api_service, billing = blueprint["services"]["gateway-api"], blueprint["services"]["billing"]
    assert api_service["image"] == "registry.example.com/team/gateway-api:1.4.2"  # .env's API_TAG over the default
    assert billing["image"] == "registry.example.com/team/billing:2.1.0"  # the override's image
    assert api_service["replicas"] == 2
    assert api_service["resources"]["limits"] == {"cpu": 0.5, "memory": "512Mi"}  # merged: the anchor's cpu, the override's memory
    assert api_service["env"] == {"BILLING_URL": "http://billing:8001", "GREETING": "price is $5", "MODE": "production"}
    assert billing["env"] == {"CURRENCY": "NOK"}
    assert api_service["health"] == {"path": "/health", "period": "10s", "timeout": "3s"}
    assert api_service["calls"] == ["billing"]
    assert "compose profiles: debug" in import_compose(files("override")).text
    assert not any(key.startswith("x-") for key in blueprint)


def test_names_cycles_and_rules_a_blueprint_cannot_take_still_load():
    result = import_compose([DATA / "awkward" / "compose.yaml"])
    blueprint = yaml.safe_load(result.text)
    assert sorted(blueprint["services"]) == ["gateway-app", "web-1", "worker"]  # msgen's own name, a DNS label
    assert blueprint["services"]["worker"]["calls"] == ["web-1"]
    assert "calls" not in blueprint["services"]["web-1"]  # worker -> web-1 -> worker would be a cycle
    assert "gateway" not in blueprint  # the only rule is a regular expression: nothing routed
    assert blueprint["services"]["worker"]["env"] == {"CALLBACK": "http://Web_1:3000/done", "RATIO": "0.25"}
    assert [entry for entry in result.unmapped if "closes a cycle" in entry] == ["services.web-1: the call to worker closes a cycle of calls: dropped"]
    assert any(entry.startswith("services.Web_1.build:") for entry in result.unmapped)
    assert any(entry.startswith("services.gateway.image:") and "no model" in entry for entry in result.unmapped)


def test_a_blueprint_that_does_not_load_is_an_internal_error(monkeypatch):
    monkeypatch.setattr("msgen.importer.PLACEHOLDER_REGION", "Not_A_Name")
    with pytest.raises(InternalError, match="does not load"):
        import_compose(files("health"))


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_an_import_is_deterministic(shape):
    assert import_compose(files(shape)).text == import_compose(files(shape)).text


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_findings_fixed_or_suppressed_then_it_renders(shape, tmp_path):
    """The findings of a fresh import are fixed (the host's real size) or suppressed with a reason,
    and the blueprint then renders."""
    path = tmp_path / "blueprint.yaml"
    path.write_text(import_compose(files(shape)).text, encoding="utf-8")
    before = api.analyse(path).findings
    blueprint = yaml.safe_load(path.read_text(encoding="utf-8"))
    blueprint["hosts"][0].update(vcpu=16, memory="64Gi")  # the host the stack really runs on
    path.write_text(yaml.safe_dump(blueprint, sort_keys=False), encoding="utf-8")
    remaining = [finding for finding in api.analyse(path).findings if finding.severity != "info"]
    assert {finding.id for finding in remaining} <= {finding.id for finding in before}
    blueprint["suppress"] = [
        {"id": finding.id, "at": finding.path, "reason": "as the compose file ran it; reviewed on import"} for finding in remaining
    ]
    path.write_text(yaml.safe_dump(blueprint, sort_keys=False), encoding="utf-8")
    outcome = api.render(api.RenderRequest(path, tmp_path / "out", targets=("compose",)))
    assert [finding for finding in outcome.analysis.findings if finding.severity == "error" and not finding.suppressed] == []
    assert (tmp_path / "out" / "compose" / "docker-compose.yml").is_file()


def test_expected_findings_of_the_traefik_import(tmp_path):
    path = tmp_path / "blueprint.yaml"
    path.write_text(import_compose(files("traefik")).text, encoding="utf-8")
    ids = {finding.id for finding in api.analyse(path).findings}
    assert "compose-docker-socket" in ids  # the docker provider, as imported, keeps the socket


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_merge_and_interpolation_match_compose(shape, monkeypatch):
    """compose's own model of the same files: the same services, images and environment."""
    for name in ("REGISTRY", "API_TAG", "BILLING_TAG", "MODE"):
        monkeypatch.delenv(name, raising=False)
    binary = realtools.compose_binary()
    arguments = [argument for path in files(shape) for argument in ("-f", str(path))]
    command = [str(binary), *arguments, "--project-directory", str(DATA / shape), "--profile", "*", "config", "--format", "json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    theirs = json.loads(done.stdout)["services"]
    ours = read_compose(files(shape)).data["services"]
    assert sorted(ours) == sorted(theirs)
    for name, service in ours.items():
        assert service.get("image") == theirs[name].get("image"), name
        mine = {key: None if value is None else str(value) for key, value in environment(service).items()}
        # `config` writes a literal $ as $$ again, so that its output reads back the same
        unescaped = {key: None if value is None else value.replace("$$", "$") for key, value in (theirs[name].get("environment") or {}).items()}
        assert mine == unescaped, name


@pytest.mark.parametrize("starter", ["reference", "minimal"])
def test_round_trip_of_msgen_s_own_output(starter, tmp_path):
    """A blueprint rendered to compose and imported back: the same services, images, replicas,
    resources, routes and datastores."""
    source = ROOT / "blueprints" / f"{starter}.yaml"
    api.render(api.RenderRequest(source, tmp_path / "out"))
    back = yaml.safe_load(import_compose([tmp_path / "out" / "compose" / "docker-compose.yml"]).text)
    assert_same_platform(api.plan_blueprint(source).loaded.blueprint, back)


def test_msgen_output_without_its_traefik_folder_is_reported(tmp_path):
    api.render(api.RenderRequest(ROOT / "blueprints" / "reference.yaml", tmp_path / "out", targets=("compose",)))
    result = import_compose([tmp_path / "out" / "compose" / "docker-compose.yml"])
    assert [entry for entry in result.unmapped if "routes msgen wrote there are not read" in entry] != []
    assert "route" not in yaml.safe_load(result.text)["services"]["payment"]


def assert_same_platform(original, back: dict) -> None:
    data, source = load_yaml(yaml.safe_dump(back), "back.yaml")
    loaded = validate(data, source)
    assert loaded.project == original.project
    assert sorted(loaded.services) == sorted(original.services)
    for name, service in original.services.items():
        other = loaded.services[name]
        assert other.image == service.image, name
        assert other.replicas == service.replicas, name
        assert _resources(other) == _resources(service), name
        assert (other.route is not None) == (service.route is not None), name
        if service.route is not None:
            domain = original.gateway.domain
            assert (other.route.host or loaded.gateway.domain) == (service.route.host or domain), name
            assert (other.route.path_prefix or "/") == (service.route.path_prefix or "/"), name
        assert other.datastore == service.datastore, name
        if service.route is not None:  # only a routed service's breaker is rendered
            assert _breaker(other) == _breaker(service), name
    if original.observability is not None:
        assert loaded.observability is not None
        assert (loaded.observability.grafana, loaded.observability.loki) == (original.observability.grafana, original.observability.loki)
        assert loaded.observability.prometheus == original.observability.prometheus
    assert {name: (store.engine, store.version, store.memory.bytes, store.cpu.millicores) for name, store in loaded.datastores.items()} == {
        name: (store.engine, store.version, store.memory.bytes, store.cpu.millicores) for name, store in original.datastores.items()
    }


def _breaker(service) -> tuple | None:
    """The circuit breaker as Traefik gets it (min_requests has no Traefik setting: it is not rendered)."""
    breaker = service.circuit_breaker
    return None if breaker is None else (breaker.failure_ratio, breaker.expression, breaker.open_for.ms)


def _resources(service) -> tuple:
    """Each value as msgen renders it: an unset one is msgen's default."""
    defaults = {"requests": (100, 128 * 1024**2), "limits": (500, 256 * 1024**2)}
    values = []
    for kind in ("requests", "limits"):
        amount = getattr(service.resources, kind)
        values.append(amount.cpu.millicores if amount.cpu else defaults[kind][0])
        values.append(amount.memory.bytes if amount.memory else defaults[kind][1])
    return tuple(values)


runner = CliRunner()


def test_cli_writes_refuses_and_dry_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    compose = str(files("databases")[0])
    first = runner.invoke(app, ["import", compose, "-o", "blueprint.yaml"])
    assert first.exit_code == 0, first.output
    written = (tmp_path / "blueprint.yaml").read_bytes()
    assert "shared with reports" in first.output and "findings:" in first.output
    again = runner.invoke(app, ["import", compose, "-o", "blueprint.yaml"])
    assert again.exit_code == 2 and "--force" in again.output
    forced = runner.invoke(app, ["import", compose, "-o", "blueprint.yaml", "--force", "--project", "shop"])
    assert forced.exit_code == 0
    assert (tmp_path / "blueprint.yaml").read_bytes() != written  # the project name changed
    dry = runner.invoke(app, ["import", compose, "--dry-run", "-o", "other.yaml"])
    assert dry.exit_code == 0 and "datastores:" in dry.stdout
    assert not (tmp_path / "other.yaml").exists()


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    """The blueprint is written whole or not at all; a link at -o is replaced, never written through."""
    monkeypatch.chdir(tmp_path)
    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text("theirs\n")
    (tmp_path / "blueprint.yaml").symlink_to(elsewhere)
    compose = str(files("databases")[0])
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda *args: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    failed = runner.invoke(app, ["import", compose, "-o", "blueprint.yaml", "--force"])
    assert failed.exit_code == 2 and "cannot write blueprint.yaml: No space left on device" in failed.output
    assert "Traceback" not in failed.output
    assert sorted(path.name for path in tmp_path.iterdir()) == ["blueprint.yaml", "elsewhere.yaml"]
    monkeypatch.setattr(os, "replace", real_replace)
    assert runner.invoke(app, ["import", compose, "-o", "blueprint.yaml", "--force"]).exit_code == 0
    assert not (tmp_path / "blueprint.yaml").is_symlink() and elsewhere.read_text() == "theirs\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("services: [a\n", "compose.yml:2:1"),
        ("- 1\n", "compose.yml:1:1: a compose file is a mapping"),
        ("name: x\nservices: {}\n", "compose.yml:2:1"),
        ("name: x\n", "no services to import"),
    ],
)
def test_bad_compose_input_is_exit_2_with_a_position(tmp_path, text, expected):
    path = tmp_path / "compose.yml"
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["import", str(path), "-o", str(tmp_path / "out.yaml")])
    assert result.exit_code == 2
    assert expected in result.output
    assert not (tmp_path / "out.yaml").exists()


@settings(GENERATED, max_examples=15)
@given(blueprints())
def test_round_trip_of_generated_blueprints(blueprint):
    """Any valid blueprint with a compose target, rendered and imported back, keeps its platform."""
    assume("compose" in blueprint)
    with tempfile.TemporaryDirectory(prefix="msgen-import-") as work:
        path = write_blueprint(blueprint, Path(work) / "blueprint.yaml")
        api.render(api.RenderRequest(path, Path(work) / "out"))  # every target: the routes are in traefik/
        back = yaml.safe_load(import_compose([Path(work) / "out" / "compose" / "docker-compose.yml"]).text)
        assert_same_platform(api.plan_blueprint(path).loaded.blueprint, back)
