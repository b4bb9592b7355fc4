"""Capacity of the compose host and the Kubernetes nodes at the edge; availability findings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from msgen.checks.capacity import Inspector, node_allocatable, os_reserve
from msgen.cli import app
from msgen.plan.backup import BACKUP_CPU, BACKUP_MEMORY
from msgen.targets.compose import COMPOSE_FILE
from msgen.units import compose_memory_bytes, quantity
from msgen.views import placed_capacity
from tests.rendering import render_in_memory

MI, GI = 1024**2, 1024**3


def svc(memory="256Mi", cpu="500m", request_cpu="100m", request_memory="128Mi", replicas=2, **extra) -> dict:
    resources = {"requests": {"cpu": request_cpu, "memory": request_memory}, "limits": {"cpu": cpu, "memory": memory}}
    return {"image": "registry.example.com/app:1.0", "port": 8080, "replicas": replicas, "resources": resources, **extra}


def host(name="box-1", memory="4Gi", vcpu=2, region="home", zone=None) -> dict:
    entry = {"name": name, "region": region, "vcpu": vcpu, "memory": memory, "storage": "ssd"}
    if zone is not None:
        entry["zone"] = zone
    return entry


def write(tmp_path: Path, services: dict, hosts: list[dict], **top) -> Path:
    document = {"version": 1, "project": "shop", "regions": {"home": {"jurisdiction": "NO"}}, "hosts": hosts, "services": services, **top}
    path = tmp_path / "blueprint.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def placed(path: Path):
    """The blueprint rendered in memory, and what its compose and Kubernetes files place on the hosts."""
    rendered = render_in_memory(path)
    inspector = Inspector(rendered.plan)
    for built in rendered.artifacts:
        inspector.read(built)
    return rendered, inspector.capacity()


def capacity(path: Path):
    """What the files place on the hosts, and the capacity and availability findings `msgen validate` reports."""
    rendered, placement = placed(path)
    return placement, [f for f in rendered.findings if f.id.startswith(("capacity-", "ha-"))]


def failing(found) -> list[str]:
    return [f.id for f in found if f.severity != "info"]


def test_units():
    assert os_reserve(4 * GI) == 512 * MI  # 10% is 409.6Mi: the floor wins
    assert os_reserve(16 * GI) == round(16 * GI / 10)
    assert compose_memory_bytes("256m") == 256 * MI and compose_memory_bytes("4g") == 4 * GI and compose_memory_bytes(1024) == 1024
    assert quantity("250m") == 0.25 and quantity("1.5") == 1.5 and quantity("256Mi") == 256 * MI and quantity("1G") == 10**9
    assert node_allocatable(4 * GI, 2) == (4 * GI - 512 * MI - 100 * MI, 1900)


# --- compose ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("memory", "fails"), [("3584Mi", False), ("3585Mi", True)])
def test_compose_memory_at_the_edge_small_host(tmp_path, memory, fails):
    # 4Gi host: the OS keeps 512Mi (10% would be less), 3584Mi is left for the one container
    path = write(tmp_path, {"api": svc(memory=memory, request_memory="128Mi", replicas=1)}, [host()], compose={"host": "box-1"})
    placement, found = capacity(path)
    assert placement.compose.memory_used == int(memory[:-2]) * MI
    assert failing(found) == (["capacity-memory"] if fails else [])
    if fails:
        item = next(f for f in found if f.id == "capacity-memory")
        assert item.path == "compose.host" and "3.50 GiB" in item.message and "512 MiB for the OS" in item.message


@pytest.mark.parametrize(("memory", "fails"), [("14745Mi", False), ("14746Mi", True)])
def test_compose_memory_at_the_edge_big_host(tmp_path, memory, fails):
    # 16Gi host: the OS keeps 10% (1638.4Mi), leaving 14745.6Mi
    path = write(tmp_path, {"api": svc(memory=memory, replicas=1)}, [host(memory="16Gi", vcpu=8)], compose={})
    _, found = capacity(path)
    assert failing(found) == (["capacity-memory"] if fails else [])
    if fails:
        assert next(f for f in found if f.id == "capacity-memory").path == "compose"


def test_compose_memory_counts_replicas(tmp_path):
    # 7 x 512Mi = 3584Mi fits a 4Gi host exactly; 8 do not
    path = write(tmp_path, {"api": svc(memory="512Mi", replicas=7)}, [host()], compose={})
    _, found = capacity(path)
    assert failing(found) == []
    path = write(tmp_path, {"api": svc(memory="512Mi", replicas=8)}, [host()], compose={})
    _, found = capacity(path)
    assert failing(found) == ["capacity-memory"]


@pytest.mark.parametrize(("replicas", "fails"), [(2, False), (3, True)])
def test_compose_cpu_reservations_at_the_edge(tmp_path, replicas, fails):
    path = write(tmp_path, {"api": svc(cpu="1000m", request_cpu="1000m", replicas=replicas)}, [host(vcpu=2)], compose={})
    placement, found = capacity(path)
    assert placement.compose.cpu_reserved_m == replicas * 1000
    assert failing(found) == (["capacity-cpu"] if fails else [])
    # limits of 3 x 1 CPU on 2 vCPUs: overcommit, reported but never failing
    assert ("capacity-cpu-overcommit" in [f.id for f in found]) == fails


def test_compose_counts_every_container_of_the_compose_file(reference_blueprint):
    rendered, placement = placed(reference_blueprint)
    loads = {load.name: load for load in placement.compose.loads}
    assert set(loads) == set(rendered.files[COMPOSE_FILE].document()["services"])
    # services 3x256 + 2x256 + 2x256, datastores 4096 + 2048 + 512, gateway 512,
    # prometheus 1024, grafana 256, loki 512, alloy 256, three exporters 3x64, node-exporter 64,
    # cadvisor 256, the backups of payment-db and ledger-db 2x256 (MiB; the cache fraud-cache is
    # not backed up)
    assert placement.compose.memory_used == (
        768 + 512 + 512 + 4096 + 2048 + 512 + 512 + 1024 + 256 + 512 + 256 + 192 + 64 + 256 + 512
    ) * MI
    backup = loads["payment-db-backup"]
    assert (backup.memory, backup.cpu_limit_m, backup.replicas) == (BACKUP_MEMORY.bytes, BACKUP_CPU.millicores, 1)
    assert placement.compose.cpu_reserved_m == 3 * 250 + 2 * 100 + 2 * 100  # datastores' cpu is a limit
    # `msgen plan` shows the same placement as the checks count
    assert placed_capacity(rendered.plan) == placement


def test_service_outside_the_compose_hosts_region(tmp_path):
    document = {
        "version": 1,
        "project": "shop",
        "regions": {"oslo": {"jurisdiction": "NO"}, "frankfurt": {"jurisdiction": "DE"}},
        "rtt_ms": {"oslo/frankfurt": 30},
        "hosts": [host(region="oslo")],
        "compose": {},
        "services": {"api": svc(region="oslo"), "geo": svc(region="frankfurt")},
    }
    path = tmp_path / "blueprint.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    _, found = capacity(path)
    assert [(f.id, f.severity, f.path) for f in found if f.id == "capacity-compose-region"] == [
        ("capacity-compose-region", "warning", "services.geo.region")
    ]


def test_compose_without_a_host_says_it_cannot_check(tmp_path):
    path = write(tmp_path, {"api": svc()}, [], compose={})
    _, found = capacity(path)
    assert [(f.id, f.severity) for f in found] == [("capacity-unknown", "info")]


# --- kubernetes ------------------------------------------------------------------------------


def kube(tmp_path: Path, services: dict, hosts: list[dict]) -> tuple:
    return capacity(write(tmp_path, services, hosts, kubernetes={"version": "1.30", "anti_affinity": "preferred"}))


@pytest.mark.parametrize(("request_memory", "fails"), [("1742Mi", False), ("1743Mi", True)])
def test_kubernetes_memory_requests_at_the_edge(tmp_path, request_memory, fails):
    # each 4Gi node offers 4096 - 512 (OS) - 100 (eviction) = 3484Mi: two nodes 6968Mi = 4 x 1742Mi
    services = {"api": svc(memory="2Gi", request_memory=request_memory, replicas=4)}
    placement, found = kube(tmp_path, services, [host("n1"), host("n2")])
    assert placement.kubernetes.usable_memory == 2 * 3484 * MI
    assert failing(found) == (["capacity-kubernetes-memory"] if fails else [])


@pytest.mark.parametrize(("replicas", "fails"), [(19, False), (20, True)])
def test_kubernetes_cpu_requests_at_the_edge(tmp_path, replicas, fails):
    # two 2-vCPU nodes keep 100m each for the kubelet: 3800m for 200m pods
    placement, found = kube(
        tmp_path,
        {"api": svc(cpu="200m", request_cpu="200m", request_memory="64Mi", memory="64Mi", replicas=replicas)},
        [host("n1"), host("n2")],
    )
    assert placement.kubernetes.cpu_reserved_m == replicas * 200
    assert failing(found) == (["capacity-kubernetes-cpu"] if fails else [])


def test_kubernetes_pod_larger_than_any_node(tmp_path):
    services = {"api": svc(memory="4Gi", request_memory="3485Mi", replicas=1)}
    _, found = kube(tmp_path, services, [host("n1"), host("n2"), host("n3")])
    assert "capacity-pod" in failing(found) and "capacity-kubernetes-memory" not in failing(found)


def test_kubernetes_counts_datastores_and_the_gateway(reference_blueprint):
    _, placement = placed(reference_blueprint)
    loads = {load.name: load for load in placement.kubernetes.loads}
    assert {
        "deployment/payment",
        "statefulset/payment-db",
        "statefulset/ledger-db",
        "statefulset/fraud-cache",
        "daemonset/traefik",
    } <= set(loads)
    # on the nodes' host ports Traefik runs one pod a node: the reference has 4
    assert loads["daemonset/traefik"].replicas == 4
    # a backup CronJob counts as one pod of the backup's size: it runs one at a time (Forbid),
    # and every backup may be due at once (the default 03:00)
    backups = {name: load for name, load in loads.items() if name.startswith("cronjob/")}
    assert set(backups) == {"cronjob/payment-db-backup", "cronjob/ledger-db-backup"}  # fraud-cache is a cache
    assert {(load.replicas, load.memory, load.cpu_reserved_m) for load in backups.values()} == {(1, BACKUP_MEMORY.bytes, BACKUP_CPU.millicores)}
    # and the datastores' pods count their engine and exporter only
    assert loads["statefulset/payment-db"].memory == (4096 + 64) * MI


def test_traefik_behind_a_load_balancer_counts_its_replicas(tmp_path, reference_blueprint):
    text = reference_blueprint.read_text(encoding="utf-8")
    assert '  version: "1.30"\n' in text
    path = tmp_path / "blueprint.yaml"
    path.write_text(text.replace('  version: "1.30"\n', '  version: "1.30"\n  ingress: load_balancer\n'), encoding="utf-8")
    _, placement = placed(path)
    traefik = next(load for load in placement.kubernetes.loads if load.name.endswith("/traefik"))
    assert (traefik.name, traefik.replicas, traefik.cpu_reserved_m) == ("deployment/traefik", 2, 1000)


# --- availability ----------------------------------------------------------------------------


@pytest.mark.parametrize(("replicas", "warns"), [(1, True), (2, False)])
def test_routed_service_with_one_replica(tmp_path, replicas, warns):
    path = write(tmp_path, {"api": svc(replicas=replicas, route={"path_prefix": "/"})}, [host()], gateway={"domain": "shop.example.com"})
    _, found = capacity(path)
    assert [(f.id, f.path) for f in found if f.id == "ha-replicas"] == ([("ha-replicas", "services.api.replicas")] if warns else [])


def test_internal_service_with_one_replica_is_not_flagged(tmp_path):
    _, found = capacity(write(tmp_path, {"worker": svc(replicas=1)}, [host()]))
    assert found == []


def test_zone_spread_is_reported_when_hosts_declare_zones(tmp_path):
    _, found = kube(tmp_path, {"api": svc()}, [host("n1", zone="a"), host("n2", zone="b"), host("n3", zone="a")])
    zones = [f for f in found if f.id == "ha-zones"]
    assert [(f.severity, f.path) for f in zones] == [("info", "hosts")] and "a (2), b (1)" in zones[0].message
    _, found = kube(tmp_path, {"api": svc()}, [host("n1", zone="a"), host("n2", zone="a")])
    assert [(f.id, f.severity) for f in found if f.id == "ha-zones"] == [("ha-zones", "warning")]
    _, found = kube(tmp_path, {"api": svc()}, [host("n1"), host("n2")])
    assert [f for f in found if f.id == "ha-zones"] == []


def test_plan_shows_capacity_and_residency(reference_blueprint):
    result = CliRunner().invoke(app, ["plan", str(reference_blueprint), "--format", "json"])
    assert result.exit_code == 0
    sections = {section["title"]: section["rows"] for section in json.loads(result.stdout)}
    capacity = {row["scope"]: row for row in sections["Capacity (per host, with headroom)"]}
    assert capacity["compose"]["memory placed / usable"] == "11.75 GiB / 14.40 GiB (memory limits)"
    assert capacity["compose"]["CPU reserved / usable"] == "1150m / 8"
    assert capacity["kubernetes"]["hosts"] == "osl-1, osl-2, osl-3, osl-4"
    residency = sections["Residency (personal data allowed in: NO, EEA)"]
    assert {(row["name"], row["verdict"]) for row in residency if row["personal data"] == "yes"} == {
        ("payment", "allowed"),
        ("ledger", "allowed"),
        ("payment-db", "allowed"),
        ("ledger-db", "allowed"),
    }


# --- disk ------------------------------------------------------------------------------------------


def _disk_blueprint(disk: str, kubernetes: bool = False) -> dict:
    data = {
        "version": 1,
        "project": "shop",
        "regions": {"home": {"jurisdiction": "DE"}},
        "hosts": [{"name": "box-1", "region": "home", "vcpu": 16, "memory": "64Gi", "storage": "nvme", "disk": disk}],
        "services": {"api": {"image": "example/api:1.0", "port": 8080, "datastore": "db", "metrics": {}}},
        "datastores": {"db": {"engine": "postgres", "version": "16", "storage": "40Gi", "backup": {"size": "60Gi"}}},
        "observability": {"prometheus": {"retention": "30d", "scrape_interval": "15s"}},
        "compose": {"host": "box-1"},
    }
    if kubernetes:
        data["kubernetes"] = {"namespace": "shop", "version": "1.30"}
    return data


def test_compose_disk_adds_data_backups_and_retention_sized_monitoring(write_blueprint):
    path = write_blueprint(yaml.safe_dump(_disk_blueprint("110Gi")))
    analysis, placement = placed(path)
    compose = placement.compose
    sizes = {volume.name: volume.size for volume in compose.volumes}
    targets = len(analysis.plan.observability.jobs)
    prometheus = targets * 2000 * (30 * 86400 // 15) * 2
    assert sizes == {"db-data": 40 * 1024**3, "db-backup": 60 * 1024**3, "prometheus-data": prometheus}
    # 110Gi minus 11Gi (10%, at least 10Gi) = 99Gi usable, less than the 100Gi of data and backups alone
    assert compose.usable_disk == 99 * 1024**3
    found = [f for f in analysis.findings if f.id == "capacity-disk"]
    assert len(found) == 1
    assert found[0].severity == "error" and found[0].path == "hosts[0].disk"
    assert "db-backup 60 GiB" in found[0].message
    roomy, _ = placed(write_blueprint(yaml.safe_dump(_disk_blueprint("200Gi"))))
    assert not [f for f in roomy.findings if f.id == "capacity-disk"]


def test_kubernetes_disk_reads_the_claims_of_the_manifests(write_blueprint):
    analysis, placement = placed(write_blueprint(yaml.safe_dump(_disk_blueprint("100Gi", kubernetes=True))))
    nodes = placement.kubernetes
    claims = {volume.name: volume.size for volume in nodes.volumes}
    # the data and archive claim templates of the StatefulSet, and the backup job's own claim
    assert claims["claim/data-db"] == 40 * 1024**3 and claims["claim/db-backup"] == 60 * 1024**3
    assert sum(claims.values()) > 90 * 1024**3
    found = [f for f in analysis.findings if f.id == "capacity-disk" and f.path == "hosts"]
    assert len(found) == 1 and "claim/" in found[0].message
