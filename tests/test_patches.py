"""The patch layer: `kubernetes.patches` (RFC 6902 / RFC 7386) and `compose.overrides`
(compose's merge rules), applied before the checks and the writer."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from msgen.cli import app
from msgen.composemerge import merge_files, merge_service
from msgen.jsonpatch import PatchError, json_patch, merge_patch
from tests import compose_variants as variants
from tests import realtools
from tests.rendering import render_in_memory

BLUEPRINT = """\
version: 1
project: shop
regions:
  home: {jurisdiction: DE}
hosts:
  - {name: box-1, region: home, vcpu: 4, memory: 8Gi, storage: ssd}
  - {name: box-2, region: home, vcpu: 4, memory: 8Gi, storage: ssd}
gateway:
  domain: shop.example.com
  acme_email: ops@example.com
services:
  web:
    image: ghcr.io/example/web:1.0.0
    port: 8080
    route: {path_prefix: /}
    datastore: web-db
    env: {LOG_LEVEL: info}
    labels: {team: shop}
datastores:
  web-db: {engine: mariadb, version: "10.11", memory: 1Gi, storage: 10Gi}
kubernetes:
  version: "1.30"
KUBERNETES_PATCHES
compose:
  host: box-1
COMPOSE_OVERRIDES
"""


def blueprint(kubernetes: str = "", compose: str = "") -> str:
    text = BLUEPRINT.replace("KUBERNETES_PATCHES\n", textwrap.indent(textwrap.dedent(kubernetes), "  "))
    return text.replace("COMPOSE_OVERRIDES\n", textwrap.indent(textwrap.dedent(compose), "  "))


def render(path: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    from typer.testing import CliRunner

    return CliRunner().invoke(app, ["render", str(path), "-o", str(out), *extra])


# --- RFC 6902 and RFC 7386 -------------------------------------------------------------------


def test_json_patch_follows_the_rfc_examples():
    """RFC 6902 appendix A: each operation, pointers with escapes, `-` for the end of an array."""
    assert json_patch({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}]) == {"foo": "bar", "baz": "qux"}
    assert json_patch({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}]) == {"foo": ["bar", "qux", "baz"]}
    assert json_patch({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": "x"}]) == {"foo": ["bar", "x"]}
    assert json_patch({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}]) == {"foo": "bar"}
    assert json_patch({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}]) == {"foo": ["bar", "baz"]}
    assert json_patch({"baz": "qux"}, [{"op": "replace", "path": "/baz", "value": "boo"}]) == {"baz": "boo"}
    moved = json_patch({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {}}, [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}])
    assert moved == {"foo": {"bar": "baz"}, "qux": {"thud": "fred"}}
    assert json_patch({"a": [1]}, [{"op": "copy", "from": "/a/0", "path": "/b"}]) == {"a": [1], "b": 1}
    assert json_patch({"a/b": {"m~n": 1}}, [{"op": "replace", "path": "/a~1b/m~0n", "value": 2}]) == {"a/b": {"m~n": 2}}
    assert json_patch({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "qux"}]) == {"baz": "qux"}


@pytest.mark.parametrize(
    ("document", "operations", "index", "words"),
    [
        ({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}], 0, "/baz does not exist"),
        ({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}], 0, "test failed"),
        ({"a": 1}, [{"op": "add", "path": "/b", "value": 2}, {"op": "remove", "path": "/c"}], 1, "/c does not exist"),
        ({"a": [1]}, [{"op": "replace", "path": "/a/5", "value": 2}], 0, "beyond the array's 1 items"),
        ({"a": [1]}, [{"op": "add", "path": "/a/01", "value": 2}], 0, "not an array index"),
        ({"a": {"b": 1}}, [{"op": "move", "from": "/a", "path": "/a/b/c"}], 0, "into its own child"),
    ],
)
def test_an_operation_that_cannot_apply_names_its_index(document, operations, index, words):
    before = json.dumps(document)
    with pytest.raises(PatchError) as raised:
        json_patch(document, operations)
    assert raised.value.index == index and words in str(raised.value)
    assert json.dumps(document) == before  # the input is left alone


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [  # RFC 7386 appendix A
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_follows_the_rfc_examples(target, patch, result):
    assert merge_patch(target, patch) == result


# --- compose's merge rules -------------------------------------------------------------------


def test_compose_merge_rules_by_attribute():
    base = {
        "image": "a:1",
        "command": ["serve", "--port", "80"],
        "environment": {"A": "1", "B": "2"},
        "labels": ["x=1"],
        "cap_add": ["NET_BIND_SERVICE"],
        "ports": ["8080:80", "443:443/udp"],
        "volumes": ["data:/data", "../conf:/etc/app:ro"],
        "secrets": [{"source": "s1", "target": "token"}],
        "depends_on": ["db"],
        "networks": ["front"],
        "healthcheck": {"test": ["CMD", "true"], "interval": "10s"},
        "logging": {"driver": "json-file", "options": {"max-size": "10m"}},
    }
    override = {
        "command": ["serve"],
        "environment": ["B=3", "C=4"],
        "labels": {"y": "2"},
        "cap_add": ["NET_BIND_SERVICE", "NET_RAW"],
        "ports": ["9090:80", "8080:80"],
        "volumes": ["other:/data"],
        "secrets": [{"source": "s2", "target": "token"}],
        "depends_on": {"cache": {"condition": "service_healthy"}},
        "networks": {"back": {"aliases": ["api"]}},
        "healthcheck": {"test": ["CMD", "false"], "retries": 5},
        "logging": {"driver": "local"},
    }
    merged = merge_service(base, override)
    assert merged["command"] == ["serve"]
    assert merged["environment"] == {"A": "1", "B": "3", "C": "4"}
    assert merged["labels"] == ["x=1", "y=2"]  # kept in the base's list form
    assert merged["cap_add"] == ["NET_BIND_SERVICE", "NET_RAW"]
    assert merged["ports"] == ["8080:80", "443:443/udp", "9090:80"]
    assert merged["volumes"] == ["other:/data", "../conf:/etc/app:ro"]
    assert merged["secrets"] == [{"source": "s2", "target": "token"}]
    assert merged["depends_on"] == {"db": {"condition": "service_started"}, "cache": {"condition": "service_healthy"}}
    assert merged["networks"] == {"front": None, "back": {"aliases": ["api"]}}
    assert merged["healthcheck"] == {"test": ["CMD", "false"], "interval": "10s", "retries": 5}
    assert merged["logging"] == {"driver": "local"}
    assert base["environment"] == {"A": "1", "B": "2"}  # the inputs are left alone


def test_compose_merge_refuses_a_mapping_over_a_list():
    from msgen.composemerge import MergeError

    with pytest.raises(MergeError) as raised:
        merge_files({"services": {"a": {"cap_add": ["X"]}}}, {"services": {"a": {"cap_add": {"Y": 1}}}})
    assert raised.value.path == ("services", "a", "cap_add")


OVERRIDE = {
    "web": {
        "environment": ["LOG_LEVEL=debug", "FEATURE=on"],
        "labels": {"com.example.team": "shop", "x-cost": "12"},
        "cap_add": ["NET_RAW"],
        "command": ["serve", "--verbose"],
        "healthcheck": {"retries": 7},
        "extra_hosts": ["legacy.internal=10.0.0.5"],
        "stop_grace_period": "45s",
    },
    "web-db": {
        "shm_size": "256m",
        "environment": {"MARIADB_AUTO_UPGRADE": "1"},
        "logging": {"driver": "local"},
        "cap_drop": None,
        "deploy": {"resources": {"limits": {"cpus": None}}},
    },
    "gateway": {
        "ports": ["8443:443", "80:80"],
        "volumes": ["./alt.yml:/etc/traefik/traefik.yml:ro"],
        "depends_on": {"web": {"condition": "service_healthy"}},
        "logging": {"options": {"max-file": "5"}},
    },
}


@pytest.mark.realtool
def test_overrides_merge_as_compose_merges_an_override_file(write_blueprint, tmp_path):
    """The same override given to msgen and, as an override file, to compose itself: compose's
    model of the two stacks is the same."""
    binary = realtools.compose_binary()
    plain, patched = tmp_path / "plain", tmp_path / "patched"
    assert render(write_blueprint(blueprint()), plain).exit_code == 0
    overrides = "overrides:\n" + textwrap.indent(yaml.safe_dump(OVERRIDE, sort_keys=False), "  ")
    assert render(write_blueprint(blueprint(compose=overrides), "patched.yaml"), patched).exit_code == 0
    (plain / "compose" / "override.yml").write_text(yaml.safe_dump({"services": OVERRIDE}), encoding="utf-8")
    models = []
    for folder, files in ((plain, ["docker-compose.yml", "override.yml"]), (patched, ["docker-compose.yml"])):
        document = yaml.safe_load((folder / variants.COMPOSE_FILE).read_text(encoding="utf-8"))
        variants.create_secrets(folder, document)
        command = [str(binary), *[arg for name in files for arg in ("-f", str(folder / "compose" / name))]]
        done = subprocess.run(
            [*command, "--project-directory", str(folder / "compose"), "config", "--format", "json"],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert done.returncode == 0, done.stderr
        models.append(json.loads(done.stdout.replace(str(folder), "<out>")))
    assert models[0] == models[1]
    web = models[1]["services"]["web"]
    assert web["environment"]["LOG_LEVEL"] == "debug" and web["command"] == ["serve", "--verbose"]
    assert web["healthcheck"]["retries"] == 7 and "NET_RAW" in web["cap_add"]
    assert web["labels"] == {"team": "shop", "com.example.team": "shop", "x-cost": "12"}
    gateway = models[1]["services"]["gateway"]
    assert sorted(port["published"] for port in gateway["ports"]) == ["443", "80", "8443"]
    assert [v["source"] for v in gateway["volumes"] if v["target"] == "/etc/traefik/traefik.yml"] == ["<out>/compose/alt.yml"]


# --- the blueprint's patches -----------------------------------------------------------------

PATCHES = """\
patches:
  - target: {kind: Deployment, name: web}
    json_patch:
      - {op: add, path: /spec/template/spec/priorityClassName, value: shop-high}
      - {op: replace, path: /spec/revisionHistoryLimit, value: 3}
  - target: {kind: Service, name: web}
    merge_patch: {metadata: {annotations: {example.com/owner: shop}}}
    reason: the owner lookup reads it
"""


def test_patches_reach_the_files_and_the_checks_see_them(write_blueprint):
    rendered = render_in_memory(write_blueprint(blueprint(kubernetes=PATCHES, compose="overrides:\n  web: {cap_add: [NET_RAW]}\n")))
    objects = {(d["kind"], d["metadata"]["name"]): d for d in rendered.files["kubernetes/services/web.yaml"].documents}
    deployment = objects[("Deployment", "web")]
    assert deployment["spec"]["template"]["spec"]["priorityClassName"] == "shop-high"
    assert deployment["spec"]["revisionHistoryLimit"] == 3
    assert objects[("Service", "web")]["metadata"]["annotations"] == {"example.com/owner": "shop"}
    text = rendered.files["kubernetes/services/web.yaml"].text
    assert "priorityClassName: shop-high" in text and "example.com/owner: shop" in text
    compose = yaml.safe_load(rendered.files[variants.COMPOSE_FILE].text)
    assert compose["services"]["web"]["cap_add"] == ["NET_RAW"]


def test_a_patch_that_breaks_a_rule_gets_the_finding(write_blueprint):
    unlocked = """\
    patches:
      - target: {kind: Deployment, name: web}
        json_patch:
          - {op: replace, path: /spec/template/spec/containers/0/securityContext/allowPrivilegeEscalation, value: true}
    """
    published = "overrides:\n  web: {ports: ['8080:8080']}\n"
    clean = render_in_memory(write_blueprint(blueprint()))
    assert not {"k8s-security", "compose-published-port"} & {f.id for f in clean.findings}
    rendered = render_in_memory(write_blueprint(blueprint(kubernetes=unlocked, compose=published), "broken.yaml"))
    found = {f.id: f for f in rendered.findings}
    assert "allowPrivilegeEscalation is not false" in found["k8s-security"].message
    assert "publishes ports 8080:8080" in found["compose-published-port"].message


@pytest.mark.parametrize(
    ("kubernetes", "compose", "where", "words", "line_holds"),
    [
        (
            "patches:\n  - target: {kind: Deployment, name: wbe}\n    merge_patch: {spec: {paused: true}}\n",
            "",
            "kubernetes.patches[0].target",
            "no rendered object is Deployment/wbe (hint: did you mean Deployment/web?)",
            "target: {kind: Deployment, name: wbe}",
        ),
        (
            "patches:\n  - target: {kind: Deployment, name: web, namespace: elsewhere}\n    merge_patch: {spec: {paused: true}}\n",
            "",
            "kubernetes.patches[0].target",
            "no rendered object is Deployment/web in namespace elsewhere",
            "namespace: elsewhere",
        ),
        (
            "patches:\n  - target: {kind: Deployment, name: web}\n    json_patch:\n      - {op: test, path: /spec/replicas, value: 2}\n"
            "      - {op: remove, path: /spec/nothing}\n",
            "",
            "kubernetes.patches[0].json_patch[1]",
            "cannot apply to kubernetes/services/web.yaml: Deployment/web: /spec/nothing does not exist",
            "{op: remove, path: /spec/nothing}",
        ),
        ("", "overrides:\n  wbe: {cap_add: [NET_RAW]}\n", "compose.overrides.wbe", "the compose file has no container 'wbe' (hint: did you mean 'web'?)", "wbe:"),
        ("", "overrides:\n  web: {cap_drop: {NET_RAW: 1}}\n", "compose.overrides.web.cap_drop", "must be a list here, not dict", "cap_drop: {NET_RAW"),
        (
            "patches:\n  - target: {kind: Deployment, name: web}\n    json_patch: [{op: add, path: /a}]\n",
            "",
            "kubernetes.patches[0].json_patch[0]",
            "add needs a value",
            "{op: add, path: /a}",
        ),
        (
            "patches:\n  - target: {kind: Deployment, name: web}\n    json_patch: [{op: add, path: /a, value: 1}]\n    merge_patch: {}\n",
            "",
            "kubernetes.patches[0]",
            "give json_patch or merge_patch",
            "- target:",
        ),
    ],
)
def test_a_patch_that_cannot_apply_is_a_load_error_and_nothing_is_written(
    write_blueprint, tmp_path, kubernetes, compose, where, words, line_holds
):
    path = write_blueprint(blueprint(kubernetes=kubernetes, compose=compose))
    out = tmp_path / "out"
    result = render(path, out)
    assert result.exit_code == 2, result.output
    assert f"{path}:" in result.output and f": {where}: " in result.output and words in result.output
    line = int(result.output.split(f"{path}:", 1)[1].split(":")[0])
    assert line_holds in path.read_text().splitlines()[line - 1]
    assert "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())


def test_plan_shows_a_patch_error_at_its_place(write_blueprint):
    from typer.testing import CliRunner

    path = write_blueprint(blueprint(compose="overrides:\n  wbe: {cap_add: [NET_RAW]}\n"))
    result = CliRunner().invoke(app, ["plan", str(path)])
    assert result.exit_code == 2 and "compose.overrides.wbe" in result.output and "did you mean 'web'" in result.output


def test_patched_output_is_stable_and_checks_clean(write_blueprint, tmp_path):
    path = write_blueprint(blueprint(kubernetes=PATCHES, compose="overrides:\n  web: {environment: {FEATURE: 'a$b'}}\n"))
    out = tmp_path / "out"
    assert render(path, out).exit_code == 0
    assert render(path, out, "--check").exit_code == 0
    compose = yaml.safe_load((out / variants.COMPOSE_FILE).read_text(encoding="utf-8"))
    assert compose["services"]["web"]["environment"]["FEATURE"] == "a$$b"  # reaches the container as a$b
    path.write_text(path.read_text().replace("value: 3", "value: 4"), encoding="utf-8")
    drift = render(path, out, "--check")
    assert drift.exit_code == 1 and "kubernetes/services/web.yaml" in drift.output


@pytest.mark.realtool
def test_patched_manifests_build_with_kustomize_and_pass_the_strict_schemas(write_blueprint, tmp_path):
    import kubernetes_validate

    out = tmp_path / "out"
    assert render(write_blueprint(blueprint(kubernetes=PATCHES)), out).exit_code == 0
    done = subprocess.run(
        [str(realtools.kubectl()), "kustomize", str(out / "kubernetes")], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    objects = [document for document in yaml.safe_load_all(done.stdout) if document]
    deployment = next(d for d in objects if d["kind"] == "Deployment" and d["metadata"]["name"] == "web")
    assert deployment["spec"]["template"]["spec"]["priorityClassName"] == "shop-high"
    for document in objects:
        if document["apiVersion"].split("/")[0] in ("v1", "apps", "policy", "networking.k8s.io", "batch", "autoscaling"):
            kubernetes_validate.validate(document, "1.30", strict=True)
