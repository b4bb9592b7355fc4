"""The compose target: structure of compose/docker-compose.yml, escaping, and compose-* findings.

The real compose binary loads these same files in tests/test_compose_real.py.
"""

from __future__ import annotations

import io
import ipaddress
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from msgen import api, images, views
from msgen.checks import compose as compose_checks
from msgen.contract import COMPOSE_FILE
from msgen.errors import BlueprintError
from msgen.model.blueprint import Blueprint
from msgen.plan import build_plan
from msgen.targets import compose
from msgen.targets.observability import HOST_AGENT_MOUNTS
from msgen.units import compose_cpus, compose_memory
from tests import compose_variants as variants
from tests.rendering import render_in_memory

YAML12 = YAML(typ="safe", pure=True)
MONITORING = {"prometheus", "grafana", "loki", "alloy"}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[tuple[str, str | None], tuple]:
    """(variant, env) -> (output folder, parsed compose file, analysis) for every variant."""
    result = {}
    for name, env in variants.RENDERS:
        folder = tmp_path_factory.mktemp(f"{name}-{env or 'base'}")
        out = variants.render_variant(folder, name, env)
        text = (out / variants.COMPOSE_FILE).read_text(encoding="utf-8")
        analysis = api.analyse(folder / "blueprint.yaml", env)
        result[(name, env)] = (out, YAML12.load(text), analysis)
    return result


ALL = variants.RENDERS


def unescape(value):
    """What a container sees: compose turns `$$` into `$`."""
    if isinstance(value, str):
        return value.replace("$$", "$")
    if isinstance(value, dict):
        return {key: unescape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unescape(item) for item in value]
    return value


def findings(analysis, prefix="compose-"):
    return [f for f in analysis.findings if f.id.startswith(prefix)]


# --- the file as written --------------------------------------------------------------------


@pytest.mark.parametrize("key", ALL, ids=[f"{n}-{e}" for n, e in ALL])
def test_written_file_is_the_document(rendered, key):
    _, document, analysis = rendered[key]
    assert document == compose.compose_document(analysis.plan)
    assert document["name"] == analysis.plan.project


@pytest.mark.parametrize("key", ALL, ids=[f"{n}-{e}" for n, e in ALL])
def test_only_the_gateway_publishes_ports(rendered, key):
    _, document, analysis = rendered[key]
    publishing = sorted(name for name, entry in document["services"].items() if entry.get("ports"))
    assert publishing == (["gateway"] if analysis.plan.gateway else [])
    if analysis.plan.gateway:
        ports = document["services"]["gateway"]["ports"]
        assert ports[:2] == ["80:80", "443:443"]
        assert ("443:443/udp" in ports) == analysis.plan.blueprint.gateway.http3


@pytest.mark.parametrize("key", ALL, ids=[f"{n}-{e}" for n, e in ALL])
def test_every_container_is_hardened_sized_and_checked(rendered, key):
    _, document, analysis = rendered[key]
    root = {s.name for s in analysis.plan.services if s.run_as_root}
    for name, entry in document["services"].items():
        assert entry["restart"] == "unless-stopped", name
        assert entry["security_opt"] == ["no-new-privileges:true"], name
        assert ("cap_drop" in entry) == (name not in root), name
        if name not in root:
            assert entry["cap_drop"] == ["ALL"]
        limits = entry["deploy"]["resources"]["limits"]
        assert re.fullmatch(r"[0-9]+(\.[0-9]+)?", limits["cpus"]), (name, limits)
        assert re.fullmatch(r"[0-9]+[kmg]?", limits["memory"]), (name, limits)
        assert entry["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        for forbidden in ("privileged", "pid", "ipc"):
            assert forbidden not in entry, (name, forbidden)
        # a container that talks to nobody has no network at all, never the host's
        assert entry.get("network_mode", "none") == "none" and ("network_mode" in entry) != ("networks" in entry), name


@pytest.mark.parametrize("key", ALL, ids=[f"{n}-{e}" for n, e in ALL])
def test_every_network_is_internal_with_its_own_subnet_but_egress(rendered, key):
    _, document, analysis = rendered[key]
    networks = document.get("networks", {})
    subnets = [ipaddress.IPv4Network(options["ipam"]["config"][0]["subnet"]) for options in networks.values()]
    pool = ipaddress.IPv4Network(analysis.plan.blueprint.compose.subnet_pool)
    assert all(subnet.subnet_of(pool) for subnet in subnets)
    assert all(not a.overlaps(b) for index, a in enumerate(subnets) for b in subnets[index + 1 :])
    for name, options in networks.items():
        assert options.get("internal", False) == (not name.startswith("egress_")), name
        members = [c for c, entry in document["services"].items() if name in entry.get("networks", [])]
        replicas = sum(entry.get("deploy", {}).get("replicas", 1) for c, entry in document["services"].items() if c in members)
        # room for every container of the network and Docker's three reserved addresses
        assert ipaddress.IPv4Network(options["ipam"]["config"][0]["subnet"]).num_addresses >= replicas + 3, name


@pytest.mark.parametrize("key", ALL, ids=[f"{n}-{e}" for n, e in ALL])
def test_every_mount_and_secret_points_into_the_output_folder(rendered, key):
    out, document, _ = rendered[key]
    folder = out / "compose"
    for name, entry in document["services"].items():
        for volume in entry.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("../"):
                assert (folder / source).exists(), (name, source)  # another target wrote it
            elif name in HOST_AGENT_MOUNTS:
                assert volume in HOST_AGENT_MOUNTS[name], (name, volume)  # the agent's documented read-only view
            elif source.startswith("/"):
                assert source in ("/var/run/docker.sock", "/var/lib/docker/containers"), (name, source)
            else:
                assert source in document["volumes"], (name, source)
        for secret in entry.get("secrets", []):
            source = secret["source"] if isinstance(secret, dict) else secret
            assert source in document["secrets"], (name, source)
    for secret in document.get("secrets", {}).values():
        assert secret["file"].startswith("../secrets/")


def test_docker_socket_only_with_the_docker_provider(rendered):
    for key, (_, document, analysis) in rendered.items():
        gateway = document["services"].get("gateway")
        if gateway is None:
            continue
        sockets = [v for v in gateway["volumes"] if v.startswith("/var/run/docker.sock")]
        if analysis.plan.gateway.provider == "docker":
            assert sockets == ["/var/run/docker.sock:/var/run/docker.sock:ro"], key
            assert [f.id for f in findings(analysis)] == ["compose-docker-socket"]
            assert findings(analysis)[0].severity == "warning"
        else:
            assert sockets == [], key
    others = [f.id for key, (_, _, a) in rendered.items() if key[0] != "docker-provider" for f in findings(a)]
    assert others == []


def test_docker_provider_labels_and_dashboard_secret(rendered):
    _, document, _ = rendered[("docker-provider", None)]
    payment = document["services"]["payment"]
    labels = dict(label.split("=", 1) for label in payment["labels"])
    assert labels["traefik.enable"] == "true"
    # the network compose creates for the pair gateway-payment: the project, `_`, the key
    assert labels["traefik.docker.network"] == "nordic-pay_edge_payment"
    assert "edge_payment" in payment["networks"] and "edge_payment" in document["services"]["gateway"]["networks"]
    assert document["services"]["gateway"]["secrets"] == [{"source": "dashboard-users", "target": "dashboard-users"}]
    assert document["secrets"]["dashboard-users"] == {"file": "../secrets/gateway/dashboard-users"}
    _, reference, _ = rendered[("reference", None)]
    assert "labels" not in reference["services"]["payment"]


def test_the_gateway_container(rendered):
    _, document, _ = rendered[("reference", None)]
    gateway = document["services"]["gateway"]
    assert gateway["image"] == "traefik:v3.7.15" and gateway["image"] == images.image("traefik")
    assert gateway["volumes"] == [
        "../traefik/traefik.yml:/etc/traefik/traefik.yml:ro",
        "../traefik/dynamic:/etc/traefik/dynamic:ro",
        "gateway-acme:/letsencrypt",
    ]
    assert gateway["healthcheck"]["test"] == ["CMD", "traefik", "healthcheck", "--ping"]
    assert gateway["deploy"]["resources"]["limits"] == {"cpus": "1", "memory": "512m"}
    assert gateway["cap_add"] == ["NET_BIND_SERVICE"]


def test_images_of_datastores_are_the_official_ones_pinned(rendered):
    expected = {
        ("reference", "payment-db"): ("mysql:8.0", ["CMD", "mysqladmin", "ping", "-h", "127.0.0.1", "--silent"]),
        ("reference", "ledger-db"): ("postgres:16", ["CMD", "pg_isready", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]),
        ("minimal", "web-db"): ("mariadb:10.11", ["CMD", "healthcheck.sh", "--connect", "--innodb_initialized"]),
        ("every-engine", "payment-db"): ("mysql:8.4", None),
        ("every-engine", "ledger-db"): ("mariadb:11.4", ["CMD", "healthcheck.sh", "--connect", "--innodb_initialized"]),
        ("every-engine", "fraud-cache"): ("postgres:17.2", None),
        ("every-engine", "audit-cache"): ("redis:7", None),
    }
    for (variant, store), (image, test) in expected.items():
        entry = rendered[(variant, None)][1]["services"][store]
        assert entry["image"] == image
        if test is not None:
            assert entry["healthcheck"]["test"] == test
        assert entry["stop_grace_period"] == "1m"


def test_datastore_credentials_config_and_volumes(rendered):
    _, document, _ = rendered[("every-engine", None)]
    mysql, mariadb, postgres = (document["services"][n] for n in ("payment-db", "ledger-db", "fraud-cache"))
    assert mysql["environment"] == {
        "MYSQL_DATABASE": "payment",
        "MYSQL_PASSWORD_FILE": "/run/secrets/db-password",
        "MYSQL_ROOT_PASSWORD_FILE": "/run/secrets/admin-password",
        "MYSQL_USER": "payment",
    }
    assert mysql["volumes"] == [
        "payment-db-data:/var/lib/mysql",
        "../datastores/payment-db/my.cnf:/etc/mysql/conf.d/msgen.cnf:ro",
        "../datastores/payment-db/initdb:/docker-entrypoint-initdb.d:ro",
        "payment-db-backup:/backup",
        "../datastores/payment-db/restore.sh:/msgen/restore.sh:ro",
    ]
    # the image's own command after msgen's step that prepares the backup folders
    assert mysql["entrypoint"][:2] == ["sh", "-c"] and mysql["command"] == ["mysqld"]
    assert set(mariadb["environment"]) == {"MARIADB_DATABASE", "MARIADB_PASSWORD_FILE", "MARIADB_ROOT_PASSWORD_FILE", "MARIADB_USER"}
    assert postgres["command"] == ["postgres", "-c", "config_file=/etc/postgresql/postgresql.conf"]
    assert "../datastores/fraud-cache/pg_hba.conf:/etc/postgresql/pg_hba.conf:ro" in postgres["volumes"]
    assert postgres["environment"] == {"POSTGRES_PASSWORD_FILE": "/run/secrets/admin-password"}
    assert "../datastores/fraud-cache/initdb:/docker-entrypoint-initdb.d:ro" in postgres["volumes"]
    assert postgres["shm_size"] == "256m"
    for entry in (mysql, mariadb, postgres):
        # exporter-password: the init script creates the exporter's own user from it
        assert [s["target"] for s in entry["secrets"]] == ["db-password", "admin-password", "exporter-password"]
        assert entry["cap_add"] == ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"]


def test_redis_password_reaches_the_server_without_redis_conf(rendered):
    out, document, _ = rendered[("every-engine", None)]
    redis = document["services"]["audit-cache"]
    script = unescape(redis["entrypoint"])
    assert script[:2] == ["sh", "-c"]
    assert script[2] == (
        "install -d -o 999 -g 999 /backup/base && "
        'exec docker-entrypoint.sh redis-server /usr/local/etc/redis/redis.conf --requirepass "$(cat /run/secrets/db-password)"'
    )
    assert redis["entrypoint"][2].count("$$(") == 1  # compose would otherwise interpolate it
    assert redis["secrets"] == [{"source": "audit-cache-password", "target": "db-password"}]
    conf = (out / "datastores/audit-cache/redis.conf").read_text()
    assert "requirepass" not in conf
    assert redis["volumes"][1] == "../datastores/audit-cache/redis.conf:/usr/local/etc/redis/redis.conf:ro"


def test_service_wiring_and_secrets(rendered):
    _, document, _ = rendered[("reference", None)]
    payment = document["services"]["payment"]
    assert payment["environment"]["FRAUD_CHECK_URL"] == "http://fraud-check:8080"
    assert payment["environment"]["DB_PASSWORD_FILE"] == "/run/secrets/db-password"
    assert payment["environment"]["DB_PORT"] == "3306"
    assert payment["secrets"] == [
        {"source": "payment-PAYMENT_API_KEY", "target": "PAYMENT_API_KEY"},
        {"source": "payment-db-password", "target": "db-password"},
    ]
    assert document["secrets"]["payment-PAYMENT_API_KEY"] == {"file": "../secrets/payment/PAYMENT_API_KEY"}
    assert payment["deploy"] == {
        "replicas": 3,
        "resources": {"limits": {"cpus": "0.5", "memory": "256m"}, "reservations": {"cpus": "0.25", "memory": "128m"}},
    }
    assert payment["healthcheck"] == {
        "test": [
            "CMD-SHELL",
            "curl -fsS -o /dev/null http://localhost:8080/health || wget -q -O /dev/null http://localhost:8080/health || exit 1",
        ],
        "interval": "10s",
        "timeout": "3s",
        "retries": 3,
        "start_period": "5s",
    }


def test_staging_overlay_changes_replicas(rendered):
    _, document, _ = rendered[("reference", "staging")]
    assert document["services"]["payment"]["deploy"]["replicas"] == 1
    assert document["services"]["ledger"]["deploy"]["replicas"] == 1


def test_health_command_forms_and_run_as_root(rendered):
    _, document, _ = rendered[("run-as-root", None)]
    containers = document["services"]
    assert containers["payment"]["healthcheck"]["test"] == ["CMD", "/app/check", "--quick"]
    assert containers["ledger"]["healthcheck"]["test"] == ["CMD-SHELL", "wget -qO- http://localhost:8080/health | grep -q ok"]
    assert containers["fraud-check"]["healthcheck"]["test"] == ["CMD-SHELL", "test -f /tmp/ready"]
    assert "cap_drop" not in containers["payment"]
    assert containers["ledger"]["cap_drop"] == ["ALL"]


def test_odd_env_values_survive_exactly(rendered):
    out, document, _ = rendered[("odd-env", None)]
    environment = document["services"]["payment"]["environment"]
    for key, value in variants.ODD_ENV.items():
        expected = {True: "true", False: "false"}.get(value, value) if isinstance(value, bool) else str(value)
        assert unescape(environment[key]) == expected, key
    assert environment["DOLLAR"] == "pa$$$$word $$HOME $${X:-y} $$"
    text = (out / variants.COMPOSE_FILE).read_text()
    for word in ("yes", "on", "NO", "3.10", "0o17", "1e3", "42", "true"):
        assert f'"{word}"' in text  # quoted: no YAML reader may take it for a bool or a number


def test_monitoring_containers_are_merged(rendered):
    _, document, _ = rendered[("reference", None)]
    containers = document["services"]
    assert set(containers) >= MONITORING
    assert {"payment-db-exporter", "ledger-db-exporter", "fraud-cache-exporter"} <= set(containers)
    assert {"prometheus-data", "grafana-data", "loki-data"} <= set(document["volumes"])
    assert containers["prometheus"]["image"] == images.image("prometheus")
    # with Loki every container logs with its compose service name, which Alloy turns into a label
    assert all(entry["logging"]["driver"] == "json-file" for entry in containers.values())
    _, engines, _ = rendered[("every-engine", None)]
    assert "grafana" not in engines["services"] and "logging" not in engines["services"]["payment"]


def test_internal_only_stack(rendered):
    _, document, _ = rendered[("internal-only", None)]
    assert set(document["services"]) == {"worker"}
    # a service that calls nobody and is called by nobody gets no network
    assert "networks" not in document and document["services"]["worker"]["network_mode"] == "none"
    assert "volumes" not in document and "secrets" not in document


def test_no_compose_section_no_compose_file(tmp_path):
    data = variants.internal_only()
    del data["compose"]
    path = tmp_path / "b.yaml"
    path.write_text(variants.dump(data))
    analysis = render_in_memory(path)
    assert "compose" not in [module.NAME for module in analysis.planned.targets]
    assert variants.COMPOSE_FILE not in analysis.files


def test_plan_shows_every_container(rendered):
    _, document, analysis = rendered[("run-as-root", None)]
    rows = {row[0]: row for row in views.compose_rows(compose.compose_document(analysis.plan))}
    assert set(rows) == set(document["services"])
    assert rows["payment"][6] == "all kept (run_as_root)"
    assert rows["gateway"][1:] == (
        "traefik:v3.7.15",
        "edge_payment, egress_gateway, scrape_gateway",
        "1",
        "512m",
        "traefik healthcheck --ping",
        "drop ALL +NET_BIND_SERVICE",
    )
    titles = [section.title for section in views.plan_sections(analysis.plan)]
    assert "Compose stack on osl-1" in titles


# --- units ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("millicores", "text"), [(1000, "1"), (250, "0.25"), (500, "0.5"), (1, "0.001"), (2500, "2.5"), (100, "0.1")])
def test_compose_cpus(millicores, text):
    assert compose_cpus(millicores) == text


@pytest.mark.parametrize(("amount", "text"), [(256 * 1024**2, "256m"), (4 * 1024**3, "4g"), (1536 * 1024, "1536k"), (1000, "1000")])
def test_compose_memory(amount, text):
    assert compose_memory(amount) == text


# --- findings -------------------------------------------------------------------------------


def _analyse(tmp_path, data):
    path = tmp_path / "blueprint.yaml"
    path.write_text(variants.dump(data), encoding="utf-8")
    return api.analyse(path)


def test_disabled_healthcheck_is_a_finding_at_the_command(tmp_path):
    data = variants.load("reference")
    data["services"]["ledger"]["health"]["command"] = ["NONE"]
    found = findings(_analyse(tmp_path, data))
    assert [(f.id, f.severity, f.path) for f in found] == [("compose-no-healthcheck", "warning", "services.ledger.health.command")]
    assert found[0].line > 0


def test_memory_reservation_over_limit_is_an_error(tmp_path):
    data = variants.load("reference")
    data["services"]["ledger"]["resources"] = {"requests": {"memory": "512Mi", "cpu": 2}}
    found = findings(_analyse(tmp_path, data))
    assert [(f.id, f.severity, f.path) for f in found] == [
        ("compose-reservation-over-limit", "error", "services.ledger.resources"),
        ("compose-reservation-over-limit", "warning", "services.ledger.resources"),
    ]


def test_document_checks_guard_merged_containers():
    """Containers other targets add are held to the same rules (ports, limits, healthcheck)."""
    at = ("observability",)
    entry = {"ports": ["9090:9090"], "deploy": {"resources": {"limits": {"memory": "1g"}}}}
    assert [f.id for f in compose_checks.check_ports("prometheus", entry, at)] == ["compose-published-port"]
    assert [f.id for f in compose_checks.check_ports("gateway", entry, at)] == []
    assert [f.message for f in compose_checks.check_limits("prometheus", entry, at)] == [
        "container prometheus has no cpus limit: one runaway process can starve the host"
    ]
    assert [f.id for f in compose_checks.check_healthcheck(None, "prometheus", entry, at)] == ["compose-no-healthcheck"]


def test_host_agents_alone_read_the_host(rendered):
    """node-exporter and cadvisor pass with exactly their documented read-only mounts; nothing
    else in any rendered stack reaches the host beyond what msgen writes."""
    for key, (_, document, analysis) in rendered.items():
        assert [f for f in analysis.findings if f.id == "compose-host-access"] == [], key
        services = document["services"]
        assert ("node-exporter" in services) == ("cadvisor" in services) == ("prometheus" in services), key
        if "prometheus" not in services:
            continue
        assert services["node-exporter"]["volumes"] == ["/:/host:ro,rslave"], key
        assert "--path.rootfs=/host" in services["node-exporter"]["command"]
        assert services["cadvisor"]["devices"] == ["/dev/kmsg"] and all(v.endswith(":ro") for v in services["cadvisor"]["volumes"])
        for name in ("node-exporter", "cadvisor"):
            assert [f.id for f in compose_checks.check_host_access(name, services[name], ("observability",))] == [], (key, name)


@pytest.mark.parametrize(
    ("name", "change", "reason"),
    [
        # the agents' mounts on any other container
        ("payment", {"volumes": ["/:/host:ro,rslave"]}, "host path /"),
        ("prometheus", {"volumes": ["/var/run:/var/run:ro"]}, "host path /var/run"),
        ("grafana", {"devices": ["/dev/kmsg"]}, "device /dev/kmsg"),
        ("node-exporter", {"volumes": ["/var/lib/docker/:/var/lib/docker:ro"]}, "host path /var/lib/docker/"),
        # the agents themselves, beyond their documented view
        ("node-exporter", {"volumes": ["/:/host:rw"]}, "host path /"),
        ("cadvisor", {"volumes": ["/etc:/etc:ro"]}, "host path /etc"),
        ("cadvisor", {"volumes": [{"type": "bind", "source": "/proc", "target": "/host/proc"}]}, "host path /proc"),
        ("cadvisor", {"privileged": True}, "privileged mode"),
        ("node-exporter", {"pid": "host"}, "pid: host"),
        ("node-exporter", {"network_mode": "host"}, "network_mode: host"),
        ("cadvisor", {"devices": ["/dev/mem"]}, "device /dev/mem"),
    ],
)
def test_host_access_beyond_the_agents_documented_mounts_is_an_error(rendered, name, change, reason):
    _, document, _ = rendered[("reference", None)]
    entry = {**document["services"][name], **change}
    found = list(compose_checks.check_host_access(name, entry, ("observability",)))
    assert [(f.id, f.severity) for f in found] == [("compose-host-access", "error")]
    assert reason in found[0].message


def test_a_backup_path_among_the_hosts_system_paths_is_found_at_the_blueprint(tmp_path):
    data = variants.load("reference")
    data["datastores"]["payment-db"]["backup"] = {"path": "/etc/pay-backups"}
    found = [(f.id, f.severity, f.path) for f in findings(_analyse(tmp_path, data)) if f.id == "compose-host-access"]
    # the datastore's container and the backup's both mount it
    assert sorted(found) == [
        ("compose-host-access", "error", "datastores.payment-db"),
        ("compose-host-access", "error", "datastores.payment-db.backup"),
    ]
    data["datastores"]["payment-db"]["backup"] = {"path": "/srv/pay-backups"}
    assert [f for f in findings(_analyse(tmp_path, data)) if f.id == "compose-host-access"] == []


def test_host_access_check_runs_on_the_built_compose_file(tmp_path, rendered):
    """The inspector reads the file as built: a host mount added there is found, where the
    unchanged file has none."""
    _, document, analysis = rendered[("reference", None)]
    inspector = compose_checks.Inspector(analysis.plan)
    changed = {**document, "services": {**document["services"], "payment": {**document["services"]["payment"], "pid": "host"}}}

    class Built:
        path = COMPOSE_FILE

        @staticmethod
        def document():
            return changed

    inspector.read(Built())
    assert [(f.id, f.path) for f in inspector.findings() if f.id == "compose-host-access"] == [
        ("compose-host-access", "services.payment")
    ]


# --- property: env values survive -----------------------------------------------------------

_BASE = {
    "version": 1,
    "project": "prop",
    "services": {"app": {"image": "example/app:1.0", "port": 8080}},
    "compose": {},
}
env_values = st.one_of(st.text(), st.integers(), st.booleans(), st.text(alphabet="$$$:#{}-\n \"'\\yesnoNO0123456789.e"))
env_maps = st.dictionaries(st.from_regex(r"[A-Z][A-Z0-9_]{0,6}", fullmatch=True), env_values, max_size=6)


def env_as_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def compose_text(env: dict) -> str:
    data = {**_BASE, "services": {"app": {**_BASE["services"]["app"], "env": env}}}
    plan = build_plan(Blueprint.model_validate(data))
    (artifact,) = compose.render(plan)
    return artifact.built().text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(env_maps)
def test_env_values_parse_back_equal(env):
    document = YAML12.load(io.StringIO(compose_text(env)))
    environment = document["services"]["app"].get("environment", {})
    assert {key: unescape(value) for key, value in environment.items()} == {k: env_as_text(v) for k, v in env.items()}
    for value in environment.values():
        assert isinstance(value, str)
        assert "$" not in value.replace("$$", "")  # every `$` escaped: compose interpolates nothing


@pytest.mark.parametrize("case", ALL, ids=[f"{name}-{env}" for name, env in ALL])
def test_no_container_may_swap_beyond_its_memory_limit(rendered, case):
    """memswap_limit equal to the memory limit: Docker's default lets a container use as much
    swap again, which hides a limit that is too low until the host slows down."""
    _, document, _ = rendered[case]
    for name, entry in document["services"].items():
        assert entry["memswap_limit"] == entry["deploy"]["resources"]["limits"]["memory"], name


@pytest.mark.parametrize("key", ALL, ids=[f"{n}-{e}" for n, e in ALL])
def test_services_run_as_on_kubernetes_read_only_and_non_root(rendered, key):
    _, document, analysis = rendered[key]
    for service in analysis.plan.services:
        entry = document["services"][service.name]
        assert entry["read_only"] is True and entry["tmpfs"] == ["/tmp"], service.name
        if service.run_as_root:
            assert "user" not in entry
        else:
            assert entry["user"] == f"{service.uid}:{service.uid}" and service.uid != 0
    for name in MONITORING & set(document["services"]) - {"alloy"}:
        assert document["services"][name]["user"] == str(images.facts(name).uid)


def test_a_chosen_user_and_the_default_one(tmp_path):
    data = variants.load("reference")
    data["services"]["ledger"]["run_as_user"] = 1000
    path = tmp_path / "b.yaml"
    path.write_text(variants.dump(data))
    document = compose.compose_document(render_in_memory(path).plan)
    assert document["services"]["ledger"]["user"] == "1000:1000"
    assert document["services"]["payment"]["user"] == "65532:65532"
    data["services"]["ledger"]["run_as_root"] = True
    path.write_text(variants.dump(data))
    with pytest.raises(BlueprintError, match="run_as_root or run_as_user"):
        render_in_memory(path)


def test_grace_periods_cover_the_drain_and_the_longest_request(rendered):
    _, document, _ = rendered[("reference", None)]
    grace = {name: entry.get("stop_grace_period") for name, entry in document["services"].items()}
    # payment: out of rotation after its health period and timeout (10s + 3s), then requests of up
    # to its route timeout (15s), and 5s to exit
    assert grace["payment"] == "33s"
    # ledger is called by payment, which waits 1s: 10s + 3s + 1s + 5s
    assert grace["ledger"] == "19s"
    assert grace["gateway"] == "20s"  # Traefik's own drain (the longest route timeout, 15s) + 5s
    assert {grace[name] for name in ("payment-db", "ledger-db", "fraud-cache")} == {"1m"}
    assert {grace[name] for name in MONITORING} == {"30s"}
    assert all(grace[name] is None for name in grace if name.endswith("-exporter"))  # stateless: Docker's default
