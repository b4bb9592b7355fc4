"""`msgen secrets`: the list is what compose (compose-go's own model) and the manifests read;
`--create` writes new random values only where nothing is, readable by exactly the uids that
read them, never through a link, and never prints a value."""

from __future__ import annotations

import json
import os
import re
import stat
import string
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from msgen import images
from msgen.cli import app
from tests import alerting_variant, realtools
from tests import compose_variants as variants

ROOT = Path(__file__).resolve().parent.parent
BLUEPRINTS = ("blueprints/reference.yaml", "blueprints/minimal.yaml", "supplied")
# secrets whose value comes from elsewhere (the dashboard's htpasswd lines, the alert
# receivers' credentials), and a service that runs as root
SUPPLIED = ("secrets/alertmanager/oncall-token", "secrets/alertmanager/slack-webhook-url", "secrets/alertmanager/smtp-password", "secrets/gateway/dashboard-users")
runner = CliRunner()
AS_ROOT = os.geteuid() == 0


def render(blueprint: str, out: Path):
    return runner.invoke(app, ["render", str(ROOT / blueprint), "-o", str(out)])


def secrets(blueprint: str, out: Path, *extra: str):
    return runner.invoke(app, ["secrets", str(ROOT / blueprint), "-o", str(out), *extra])


def listed(blueprint: str, out: Path) -> dict:
    result = secrets(blueprint, out, "--format", "json")
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def compose_model(out: Path) -> dict:
    """The compose file as compose-go loads it (secret files resolved to absolute paths)."""
    binary = realtools.compose_binary()
    command = [str(binary), "-f", str(out / "compose/docker-compose.yml"), "--project-directory", str(out / "compose"), "config", "--format", "json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def compose_readers(model: dict) -> dict[str, set[str]]:
    """Absolute secret file -> the services that mount it, from compose's model."""
    files = {name: definition["file"] for name, definition in model.get("secrets", {}).items()}
    readers: dict[str, set[str]] = {}
    for service, entry in model["services"].items():
        for mounted in entry.get("secrets", []):
            readers.setdefault(files[mounted["source"]], set()).add(service)
    return readers


def manifest_secrets(out: Path) -> tuple[set[str], set[str]]:
    """Every Secret name anywhere in the rendered manifests and Helm values, by a walk that
    knows no kinds but cert-manager's Certificate (which writes its Secret): (read, written)."""
    found: set[str] = set()
    written: set[str] = set()

    def walk(node, key=None):
        if isinstance(node, dict):
            for name, value in node.items():
                if name == "secretName" and isinstance(value, str):
                    found.add(value)
                elif name in ("secretKeyRef", "secretRef", "secret") and isinstance(value, dict) and "name" in value:
                    found.add(value["name"])
                elif name == "secret" and isinstance(value, str) and key == "basicAuth":
                    found.add(value)
                elif name == "imagePullSecrets":
                    found.update(item["name"] for item in value)
                walk(value, name)
        elif isinstance(node, list):
            for item in node:
                walk(item, key)

    for path in sorted((out / "kubernetes").rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(document, dict) and document.get("kind") == "Certificate":
                written.add(document["spec"]["secretName"])
            elif isinstance(document, dict) and document.get("kind") != "Kustomization":
                walk(document)
    return found, written


def supplied_blueprint(folder: Path) -> str:
    """The reference with an Alertmanager, the gateway's dashboard, and payment as root."""
    data = variants._yaml().load(alerting_variant.reference_with_alertmanager_text())
    data["gateway"]["dashboard"] = True
    data["services"]["payment"]["run_as_root"] = True
    path = folder / "supplied.yaml"
    path.write_text(variants.dump(data), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module", params=BLUEPRINTS)
def rendered(request, tmp_path_factory) -> tuple[str, Path]:
    folder = tmp_path_factory.mktemp("out")
    blueprint = supplied_blueprint(folder) if request.param == "supplied" else request.param
    out = folder / "out"
    result = render(blueprint, out)
    assert result.exit_code == 0, result.output
    return blueprint, out


def test_the_list_is_what_compose_reads(rendered):
    blueprint, out = rendered
    before = listed(blueprint, out)
    assert secrets(blueprint, out).exit_code == 1  # missing files fail, as a check does
    assert before["compose"] and all(not item["exists"] for item in before["compose"])
    readers = compose_readers(compose_model(out))
    ours = {str(out / item["path"]): {reader["container"] for reader in item["readers"]} for item in before["compose"]}
    assert ours == readers
    supplied = [item["path"] for item in before["compose"] if not item["generated"]]
    created = secrets(blueprint, out, "--create")
    assert created.exit_code == (1 if supplied else 0), created.output
    after = listed(blueprint, out)
    assert [item["path"] for item in after["compose"] if not item["exists"]] == supplied
    assert all(not item["problem"] for item in after["compose"] if item["exists"])
    for item in (item for item in after["compose"] if item["exists"]):  # the mode listed is the one the file has
        assert f"{stat.S_IMODE((out / item['path']).stat().st_mode):04o}" == item["mode"], item["path"]
    print(Path(blueprint).name, len(ours), "compose secret files, as compose reads them;", len(supplied), "supplied:", supplied)


def test_the_list_is_what_the_manifests_read(rendered):
    blueprint, out = rendered
    ours = listed(blueprint, out)["kubernetes"]
    read, written = manifest_secrets(out)
    assert {item["name"] for item in ours} == read
    assert {item["name"] for item in ours if item["made_by"]} == read & written
    names = [(item["name"], item["made_by"] is not None) for item in ours]
    print(Path(blueprint).name, sorted(names))


def test_the_summary_of_a_render_names_the_missing_files(tmp_path):
    out = tmp_path / "out"
    result = render("blueprints/minimal.yaml", out)
    assert result.exit_code == 0, result.output
    files = yaml.safe_load((out / "compose/docker-compose.yml").read_text())["secrets"]
    paths = sorted(str((out / "compose" / entry["file"]).resolve()) for entry in files.values())
    assert f"{len(paths)} compose secret file(s) missing" in result.stderr
    assert all(path in result.stderr for path in paths[:3])
    assert "--create`" in result.stderr
    assert not (out / "secrets").exists()  # render never writes a secret
    assert secrets("blueprints/minimal.yaml", out, "--create").exit_code == 0
    again = render("blueprints/minimal.yaml", out)
    assert again.exit_code == 0 and "secret file(s) missing" not in again.stderr


def can_read(path: Path, uid: int, gid: int) -> bool:
    """Whether `uid`:`gid` can open the file itself (as compose's bind mount hands it over:
    the host folders on the way are not walked), through /proc/self/fd of an O_PATH descriptor."""
    descriptor = os.open(path, os.O_PATH | os.O_NOFOLLOW)
    try:
        done = subprocess.run(
            ["cat", f"/proc/self/fd/{descriptor}"], pass_fds=(descriptor,), user=uid, group=gid, extra_groups=[], capture_output=True, timeout=30
        )
    finally:
        os.close(descriptor)
    return done.returncode == 0


def created_values(out: Path) -> dict[str, bytes]:
    return {str(path.relative_to(out)): path.read_bytes() for path in sorted((out / "secrets").rglob("*")) if path.is_file()}


def run_cli(*arguments: str) -> subprocess.CompletedProcess:
    """msgen as a process: stdout and stderr apart, nothing shared with this one."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "msgen", *arguments], capture_output=True, text=True, timeout=120, env=environment, cwd=ROOT)


def test_create_writes_new_values_readable_by_their_containers_only(tmp_path):
    out = tmp_path / "out"
    blueprint = str(ROOT / "blueprints/reference.yaml")
    assert render("blueprints/reference.yaml", out).exit_code == 0
    model = yaml.safe_load((out / "compose/docker-compose.yml").read_text())
    kept = out / "secrets/payment/PAYMENT_API_KEY"  # a value someone wrote already
    kept.parent.mkdir(parents=True)  # secrets/ and secrets/payment/ are the test's, not msgen's
    kept.write_bytes(b"mine\n")
    os.utime(kept, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    before = kept.stat()
    done = run_cli("secrets", blueprint, "-o", str(out), "--create")
    # the kept file is root's and open to all (the test wrote it): listed to fix, so not ready
    assert done.returncode == 1, done.stderr
    [problem] = [line.strip() for line in done.stdout.splitlines() if "secrets/payment/PAYMENT_API_KEY" in line and "chown" in line]
    uid = int(str(model["services"]["payment"]["user"]).split(":")[0])
    assert f"owned by uid {kept.stat().st_uid}, not {uid}" in problem and "every user may open it" in problem
    values = created_values(out)
    assert len(values) == len(model["secrets"])
    for relative, value in values.items():
        assert value.decode() not in done.stdout + done.stderr, relative
    assert kept.read_bytes() == b"mine\n" and kept.stat().st_mtime_ns == before.st_mtime_ns and kept.stat().st_ino == before.st_ino
    made = {relative: value for relative, value in values.items() if relative != "secrets/payment/PAYMENT_API_KEY"}
    for relative, value in made.items():
        assert len(value) == 43 and set(value.decode()) <= set(string.ascii_letters + string.digits), relative
        assert stat.S_IMODE((out / relative).stat().st_mode) & 0o037 == 0, relative  # group: the ACL mask (read) at most
        assert stat.S_IMODE((out / relative).stat().st_mode) & 0o400 and not stat.S_IMODE((out / relative).stat().st_mode) & 0o333
    assert len(set(made.values())) == len(made)  # each a new value
    for folder in [path for path in (out / "secrets").iterdir() if path != kept.parent]:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    print("created", len(made), "kept 1, lengths", sorted({len(value) for value in made.values()}))
    if AS_ROOT:
        check_owners(out, model)


def container_uid(name: str, entry: dict, datastores: dict[str, str]) -> int:
    """The uid a compose container runs as: its `user`, else a datastore's engine user, else root."""
    if "user" in entry:
        return int(str(entry["user"]).split(":")[0])
    return images.IMAGES[datastores[name]].uid if name in datastores else 0


def check_owners(out: Path, model: dict) -> None:
    """Each file: owned by the container in whose folder it lives; readable by each uid that
    mounts it and by no other (a stranger's uid)."""
    engines = {"postgres", "mysql", "mariadb", "redis"}
    datastores = {name: entry["image"].split(":")[0].rsplit("/", 1)[-1] for name, entry in model["services"].items()}
    datastores = {name: image for name, image in datastores.items() if image in engines and "user" not in model["services"][name]}
    readers: dict[str, set[int]] = {}
    for name, entry in model["services"].items():
        for mounted in entry.get("secrets", []):
            source = mounted if isinstance(mounted, str) else mounted["source"]
            readers.setdefault(source, set()).add(container_uid(name, entry, datastores))
    checked = 0
    for source, uids in readers.items():
        path = (out / "compose" / model["secrets"][source]["file"]).resolve()
        if path.relative_to(out.resolve()).as_posix() == "secrets/payment/PAYMENT_API_KEY":
            continue  # the one written by hand
        owner = path.parent.name
        assert path.stat().st_uid == container_uid(owner, model["services"][owner], datastores), path
        for uid in uids:
            assert can_read(path, uid, uid), (path, uid)
        assert not can_read(path, 12345, 12345), path
        checked += 1
    print("owners and readers checked for", checked, "files")


def test_not_root_prints_the_chown_commands(tmp_path, monkeypatch):
    """Not root: the files stay the current user's, and the command says which chown each needs."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    out = tmp_path / "out"
    assert render("blueprints/minimal.yaml", out).exit_code == 0
    model = yaml.safe_load((out / "compose/docker-compose.yml").read_text())
    result = secrets("blueprints/minimal.yaml", out, "--create")
    assert result.exit_code == 1, result.output  # not ready until the owners are changed
    block = [line.split()[2:] for line in result.stdout.splitlines() if line.startswith("  sudo chown ")]  # to copy and run
    commands = re.findall(r"sudo chown (\d+):(\d+) (\S+)", result.stdout)
    assert len(commands) == 2 * len(model["secrets"]) == 2 * len(block)  # under each file, and together
    assert sorted(f"{owner}:{group} {path}" for owner, group, path in commands) == sorted(2 * [" ".join(line) for line in block])
    uid = images.IMAGES[model["services"]["web-db"]["image"].split(":")[0]].uid  # every file is the datastore's
    for owner, group, path in commands:
        assert (int(owner), int(group)) == (uid, uid) and Path(path).stat().st_uid == os.getuid()
    assert stat.S_IMODE((out / "secrets").stat().st_mode) == 0o700
    assert f"not root: the {len(block)} created file(s) are yours until you run their sudo chown" in result.stdout
    assert json.loads(secrets("blueprints/minimal.yaml", out, "--format", "json").stdout)["compose"][0]["problem"].startswith("owned by uid")


@pytest.mark.parametrize("planted", ["secrets", "secrets/web-db", "secrets/web-db/password"])
def test_a_link_is_refused(tmp_path, planted):
    out = tmp_path / "out"
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "password"
    target.write_bytes(b"theirs")
    assert render("blueprints/minimal.yaml", out).exit_code == 0
    link = out / planted
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target if planted.endswith("password") else outside)
    for extra in ((), ("--create",)):
        result = secrets("blueprints/minimal.yaml", out, *extra)
        assert result.exit_code == 2, result.output
        assert "symbolic link" in result.stderr
    assert sorted(path.name for path in outside.iterdir()) == ["password"] and target.read_bytes() == b"theirs"
    assert not [path for path in out.rglob("*") if path.is_file() and "secrets" in path.parts and not path.is_symlink()]


def test_bad_input_exits_2(tmp_path):
    assert secrets("blueprints/missing.yaml", tmp_path).exit_code == 2


def test_values_from_elsewhere_are_never_made_up(tmp_path):
    """The dashboard's htpasswd and the receivers' credentials: listed, never created; a file
    written by hand with its owner and mode counts as there."""
    blueprint = supplied_blueprint(tmp_path)
    out = tmp_path / "out"
    assert render(blueprint, out).exit_code == 0
    result = secrets(blueprint, out, "--create")
    assert result.exit_code == 1
    assert f"write these yourself, then run this again to check owner and mode: {', '.join(SUPPLIED)}" in result.stdout
    assert all(not (out / path).exists() for path in SUPPLIED)
    by_path = {item["path"]: item for item in listed(blueprint, out)["compose"]}
    assert sorted(path for path, item in by_path.items() if not item["generated"]) == sorted(SUPPLIED)
    assert by_path["secrets/payment/PAYMENT_API_KEY"]["owner"] == {"uid": 0, "gid": 0}  # run_as_root
    for path in SUPPLIED:
        owner = by_path[path]["owner"]
        (out / path).parent.mkdir(mode=0o700, exist_ok=True)
        (out / path).write_text("value from elsewhere\n")
        (out / path).chmod(0o400)
        if AS_ROOT:
            os.chown(out / path, owner["uid"], owner["gid"])
    final = secrets(blueprint, out)
    assert final.exit_code == (0 if AS_ROOT else 1), final.output
    assert "value from elsewhere" not in final.output


def test_the_list_follows_the_overrides_and_patches(tmp_path):
    """Read from the built, patched objects: a compose override's `user` moves the owner and
    the ACL; a Kubernetes patch that reads one more Secret key adds it."""
    data = variants.load("reference")
    data["compose"]["overrides"] = {"payment": {"user": "4242:4242"}}
    variable = {"name": "FEATURE_TOKEN", "valueFrom": {"secretKeyRef": {"name": "feature-flags", "key": "token"}}}
    operation = {"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": variable}
    data["kubernetes"]["patches"] = [{"target": {"kind": "Deployment", "name": "payment"}, "json_patch": [operation]}]
    blueprint = tmp_path / "patched.yaml"
    blueprint.write_text(variants.dump(data), encoding="utf-8")
    out = tmp_path / "out"
    assert render(str(blueprint), out).exit_code == 0
    found = listed(str(blueprint), out)
    by_path = {item["path"]: item for item in found["compose"]}
    assert by_path["secrets/payment/PAYMENT_API_KEY"]["owner"] == {"uid": 4242, "gid": 4242}
    assert 4242 in by_path["secrets/payment-db/password"]["acl_read_uids"]
    kubernetes = {item["name"]: item for item in found["kubernetes"]}
    assert kubernetes["feature-flags"] == {"name": "feature-flags", "keys": ["token"], "readers": ["Deployment/payment"], "made_by": None}
    assert secrets(str(blueprint), out, "--create").exit_code == 0
    if AS_ROOT:
        assert (out / "secrets/payment/PAYMENT_API_KEY").stat().st_uid == 4242
        assert can_read(out / "secrets/payment-db/password", 4242, 4242)


def test_an_existing_file_its_readers_cannot_read_is_listed_to_fix(tmp_path):
    out = tmp_path / "out"
    assert render("blueprints/reference.yaml", out).exit_code == 0
    assert secrets("blueprints/reference.yaml", out, "--create").exit_code == (0 if AS_ROOT else 1)
    os.removexattr(out / "secrets/payment-db/password", "system.posix_acl_access")
    (out / "secrets/grafana/admin-password").chmod(0o440)
    result = secrets("blueprints/reference.yaml", out, "--format", "json")
    assert result.exit_code == 1
    problems = {item["path"]: item["problem"] for item in json.loads(result.stdout)["compose"] if item["problem"]}
    if AS_ROOT:
        assert sorted(problems) == ["secrets/grafana/admin-password", "secrets/payment-db/password"]
    uid = str(yaml.safe_load((out / "compose/docker-compose.yml").read_text())["services"]["payment"]["user"]).split(":")[0]
    assert problems["secrets/payment-db/password"].endswith(f"setfacl -m u:{uid}:r {out}/secrets/payment-db/password")
    assert "its group may open it" in problems["secrets/grafana/admin-password"]


def test_an_output_folder_that_is_a_link_is_refused(tmp_path):
    real = tmp_path / "real"
    assert render("blueprints/minimal.yaml", real).exit_code == 0
    (tmp_path / "out").symlink_to(real)
    result = secrets("blueprints/minimal.yaml", tmp_path / "out", "--create")
    assert result.exit_code == 2 and "symbolic link" in result.stderr
    assert not (real / "secrets").exists()
