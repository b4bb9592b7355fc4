"""examples/job-queue: a worker, a service with command, args, volumes, labels and a config file,
msgen's images through a mirror, and patches; rendered and accepted by the real consumers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from msgen import api
from tests import compose_variants as variants
from tests import realtools

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "job-queue"


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    """The example's blueprint and config file rendered into a fresh folder."""
    folder = tmp_path_factory.mktemp("job-queue")
    shutil.copy(EXAMPLE / "blueprint.yaml", folder / "blueprint.yaml")
    shutil.copytree(EXAMPLE / "config", folder / "config")
    outcome = api.render(api.RenderRequest(folder / "blueprint.yaml", folder))
    assert outcome.wrote, [f.id for f in outcome.analysis.findings]
    return folder


def manifest_objects(out: Path, name: str) -> dict[str, dict]:
    documents = yaml.safe_load_all((out / "kubernetes" / "services" / f"{name}.yaml").read_text(encoding="utf-8"))
    return {document["kind"]: document for document in documents if document}


def test_the_example_shows_each_escape_hatch(out):
    worker = manifest_objects(out, "worker")
    assert "Service" not in worker and "Deployment" not in worker  # a worker; a persistent volume
    statefulset = worker["StatefulSet"]
    pod = statefulset["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "batch-low"  # the patch
    container = pod["containers"][0]
    assert container["command"] == ["/app/worker"] and container["args"][:2] == ["--queue", "jobs"]
    assert container["readinessProbe"]["exec"]["command"] == ["/app/worker", "healthcheck"]
    assert [claim["metadata"]["name"] for claim in statefulset["spec"]["volumeClaimTemplates"]] == ["results"]
    assert statefulset["metadata"]["labels"]["team"] == "jobs"
    api_objects = manifest_objects(out, "api")
    assert [port["name"] for port in api_objects["Service"]["spec"]["ports"]] == ["http", "grpc"]
    assert api_objects["Deployment"]["metadata"]["annotations"] == {"example.com/runbook": "https://runbooks.example.com/jobs-api"}
    compose = yaml.safe_load((out / variants.COMPOSE_FILE).read_text(encoding="utf-8"))["services"]
    assert compose["worker"]["init"] is True and compose["worker"]["entrypoint"] == ["/app/worker"]
    assert compose["gateway"]["image"].startswith("registry.example.com/mirror/library/traefik:")
    assert compose["jobs-db"]["image"] == "registry.example.com/mirror/library/postgres:16.4-bookworm"
    copied = out / "compose" / "files" / "worker" / "config" / "worker.toml"
    assert copied.read_bytes() == (EXAMPLE / "config" / "worker.toml").read_bytes()


@pytest.mark.realtool
def test_compose_loads_the_example(out):
    document = yaml.safe_load((out / variants.COMPOSE_FILE).read_text(encoding="utf-8"))
    variants.create_secrets(out, document)
    command = [str(realtools.compose_binary()), "-f", str(out / variants.COMPOSE_FILE), "--project-directory", str(out / "compose")]
    done = subprocess.run([*command, "config", "-q"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stderr == "", done.stderr


@pytest.mark.realtool
def test_kustomize_builds_the_example_and_the_strict_schemas_accept_it(out):
    import kubernetes_validate

    done = subprocess.run(
        [str(realtools.kubectl()), "kustomize", str(out / "kubernetes")], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    objects = [document for document in yaml.safe_load_all(done.stdout) if document]
    core = [d for d in objects if d["apiVersion"].split("/")[0] in ("v1", "apps", "policy", "networking.k8s.io", "batch", "autoscaling")]
    assert len(core) > 20
    for document in core:
        kubernetes_validate.validate(document, "1.31", strict=True)
    assert ("StatefulSet", "worker") in {(d["kind"], d["metadata"]["name"]) for d in core}
