"""Compose and Kubernetes, rendered from the same blueprint, agree wherever they say the same
thing: the health path, how long a container may take to stop, the user and the read-only
root, the limits, every environment value as the container receives it, and where each
secret file appears in the container."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from msgen.contract import SECRETS_DIR
from msgen.units import compose_cpu_m, compose_memory_bytes, quantity
from tests.rendering import expand, render_in_memory

ROOT = Path(__file__).resolve().parent.parent
ODD_ENV = '{LOG_LEVEL: info, PATTERN: "pa$(DB_PORT)word", DOUBLE: "a$$b", LONE: "cost$"}'


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    text = (ROOT / "blueprints" / "reference.yaml").read_text().replace("env: {LOG_LEVEL: info}", f"env: {ODD_ENV}")
    path = tmp_path_factory.mktemp("parity") / "blueprint.yaml"
    path.write_text(text)
    rendered = render_in_memory(path)
    compose = yaml.safe_load(rendered.files["compose/docker-compose.yml"].text)["services"]
    pods = {}
    for built in rendered.files.values():
        for document in built.documents if built.path.startswith("kubernetes/services/") else ():
            if document.get("kind") == "Deployment":
                pods[document["metadata"]["name"]] = document["spec"]["template"]["spec"]
    return rendered, compose, pods


def received_in_compose(entry: dict) -> dict[str, str]:
    return {key: str(value).replace("$$", "$") for key, value in entry.get("environment", {}).items()}


def received_in_kubernetes(container: dict) -> dict[str, str]:
    received: dict[str, str] = {}
    for variable in container.get("env", []):
        received[variable["name"]] = expand(variable["value"], received)
    return received


def test_every_service_is_rendered_both_ways(both):
    rendered, compose, pods = both
    assert set(pods) == {service.name for service in rendered.plan.services} <= set(compose)


def test_health_path_grace_user_and_root_filesystem_agree(both):
    rendered, compose, pods = both
    for service in rendered.plan.services:
        entry, pod = compose[service.name], pods[service.name]
        container = pod["containers"][0]
        assert f"localhost:{service.port}{container['readinessProbe']['httpGet']['path']} " in entry["healthcheck"]["test"][1]
        assert entry["stop_grace_period"] == f"{pod['terminationGracePeriodSeconds']}s"
        assert entry["user"] == f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}"
        assert entry["read_only"] is container["securityContext"]["readOnlyRootFilesystem"] is True
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"] and entry["tmpfs"] == ["/tmp"]


def test_limits_and_requests_agree(both):
    rendered, compose, pods = both
    for service in rendered.plan.services:
        resources = compose[service.name]["deploy"]["resources"]
        kubernetes = pods[service.name]["containers"][0]["resources"]
        for side, compose_side in (("limits", "limits"), ("requests", "reservations")):
            assert compose_memory_bytes(resources[compose_side]["memory"]) == quantity(kubernetes[side]["memory"])
            assert compose_cpu_m(resources[compose_side]["cpus"]) == round(quantity(kubernetes[side]["cpu"]) * 1000)


def test_every_environment_value_arrives_the_same(both):
    rendered, compose, pods = both
    for service in rendered.plan.services:
        in_compose = received_in_compose(compose[service.name])
        in_kubernetes = received_in_kubernetes(pods[service.name]["containers"][0])
        assert set(in_compose) == set(in_kubernetes), service.name
        # only the addresses differ: Kubernetes names the namespace in each DNS name
        differing = {key for key in in_compose if in_compose[key] != in_kubernetes[key]}
        assert all(key == "DB_HOST" or key.endswith("_URL") for key in differing), differing
    payment = received_in_kubernetes(pods["payment"]["containers"][0])
    assert (payment["PATTERN"], payment["DOUBLE"], payment["LONE"]) == ("pa$(DB_PORT)word", "a$$b", "cost$")


def test_secret_files_appear_at_the_same_paths(both):
    rendered, compose, pods = both
    for service in rendered.plan.services:
        in_compose = {f"{SECRETS_DIR}/{secret['target']}" for secret in compose[service.name].get("secrets", [])}
        pod = pods[service.name]
        mount = next((m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == SECRETS_DIR), None)
        in_kubernetes = set()
        if mount is not None:
            volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
            for source in volume["projected"]["sources"]:
                in_kubernetes |= {f"{SECRETS_DIR}/{item['path']}" for item in source["secret"]["items"]}
        assert in_compose == in_kubernetes, service.name
    assert f"{SECRETS_DIR}/PAYMENT_API_KEY" in {f"{SECRETS_DIR}/{s['target']}" for s in compose["payment"]["secrets"]}


def test_a_backup_runs_alike_in_both(both):
    """The compose backup container and the Kubernetes CronJob's pod: the same image, user,
    script, secret files, location and limits; compose schedules in the container, Kubernetes
    in the CronJob (the same schedule)."""
    rendered, compose, _ = both
    jobs = {}
    for built in rendered.files.values():
        for document in built.documents if built.path.startswith("kubernetes/datastores/") else ():
            if document.get("kind") == "CronJob":
                jobs[document["metadata"]["name"]] = document
    backed_up = [store for store in rendered.plan.datastores if store.backup is not None]
    assert set(jobs) == {store.backup.container for store in backed_up} == {name for name in compose if name.endswith("-backup")}
    for store in backed_up:
        entry, job = compose[store.backup.container], jobs[store.backup.container]
        pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert job["spec"]["schedule"] == store.backup.schedule.text
        assert entry["image"] == container["image"]
        assert entry["user"] == f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}"
        assert entry["read_only"] is container["securityContext"]["readOnlyRootFilesystem"] is True
        # the same script, `schedule` in compose's long-running container, `now` in each run's pod
        assert entry["entrypoint"] + ["now"] == container["command"] and entry["command"] == ["schedule"]
        in_compose = {f"{SECRETS_DIR}/{secret['target']}" for secret in entry["secrets"]}
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        mounts = {mount["mountPath"]: volumes[mount["name"]] for mount in container["volumeMounts"]}
        in_kubernetes = {f"{SECRETS_DIR}/{item['path']}" for item in mounts[SECRETS_DIR]["secret"]["items"]}
        assert in_compose == in_kubernetes, store.name
        compose_paths = {volume.split(":")[1] for volume in entry["volumes"]}
        scripts = {f"/msgen/{item['path']}" for item in mounts["/msgen"]["configMap"]["items"]}
        assert compose_paths == {"/backup"} | scripts
        limits = entry["deploy"]["resources"]["limits"]
        assert compose_memory_bytes(limits["memory"]) == quantity(container["resources"]["limits"]["memory"])
        assert compose_cpu_m(limits["cpus"]) == round(quantity(container["resources"]["limits"]["cpu"]) * 1000)
