"""`msgen secrets`: every secret the rendered stack reads, read from the built objects (so the
list cannot drift from what the files mount), and the missing compose secret files created.

compose bind-mounts a file secret into the container as it is on the host: its owner and mode
are the host file's (the long syntax's uid, gid and mode apply to swarm only). So each file is
made readable by exactly the users its containers run as: mode 0400 for its owner, the
container in whose folder it lives (secrets/<container>/), and a POSIX ACL entry `user:UID:r`
for each other uid that reads it (a datastore's password is read by the datastore and by the
services that use it). The folders are 0700: no other host user reaches a file.

The output folder is a boundary (msgen/folder.py): every path is opened component by component
without following a symbolic link, and a value is written under a temporary name, then linked
to its final name, which fails rather than replace a file that is there.
"""

from __future__ import annotations

import os
import posixpath
import secrets as random
import string
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from msgen import images
from msgen.contract import COMPOSE_FILE, POD_TEMPLATE_KINDS
from msgen.errors import OutputError
from msgen.folder import OutputFolder, is_inside
from msgen.patches import Patching
from msgen.plan import gateway as gw
from msgen.targets import Built, render_targets
from msgen.targets import alerting as alerting_target
from msgen.targets.kubernetes import is_manifest
from msgen.targets.traefik import HELM_VALUES

FILE_MODE = 0o400
FOLDER_MODE = 0o700
# letters and digits only: a value fits a connection URL, a shell argument (redis's
# --requirepass) and an SQL string without escaping; 43 of them carry 256 bits, as
# secrets.token_urlsafe(32) does
ALPHABET = string.ascii_letters + string.digits
VALUE_LENGTH = 43
# compose secrets whose value comes from elsewhere, never made up: the dashboard's htpasswd
# lines and the alert receivers' credentials (a webhook's, an SMTP password, a Slack URL)
SUPPLIED_PREFIXES = (gw.DASHBOARD_USERS_SECRET, alerting_target.compose_secret(""))


@dataclass(frozen=True)
class Reader:
    """A compose container that mounts a secret, and the user it reads it as."""

    container: str
    uid: int
    gid: int


@dataclass(frozen=True)
class ComposeSecret:
    """One secret file of the compose stack: its compose name, its path under the output
    folder, who reads it, and whether it is there."""

    name: str
    path: str
    readers: tuple[Reader, ...]
    exists: bool = False
    of_service: bool = False  # a blueprint service's own secret (else the platform's)
    problem: str | None = None  # an existing file its containers cannot read, or others can

    @property
    def generated(self) -> bool:
        """Whether `--create` makes its value (else a person supplies it)."""
        return not self.name.startswith(SUPPLIED_PREFIXES)

    @property
    def owner(self) -> Reader:
        """The container in whose folder the file lives, else its first reader."""
        folder = self.path.split("/")[1] if self.path.count("/") >= 2 else ""
        return next((reader for reader in self.readers if reader.container == folder), self.readers[0])

    @property
    def mode(self) -> int:
        """The file's mode as `stat` shows it: with an ACL the group bits show its mask (read
        for the uids it names); the owning group itself gets nothing."""
        return FILE_MODE | 0o040 if self.others else FILE_MODE

    @property
    def others(self) -> tuple[int, ...]:
        """The further uids that read it (each an ACL entry)."""
        return tuple(sorted({reader.uid for reader in self.readers} - {self.owner.uid}))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "path": self.path,
            "exists": self.exists,
            "problem": self.problem,
            "generated": self.generated,
            "of_service": self.of_service,
            "owner": {"uid": self.owner.uid, "gid": self.owner.gid},
            "mode": f"{self.mode:04o}",
            "acl_read_uids": list(self.others),
            "readers": [{"container": r.container, "uid": r.uid, "gid": r.gid} for r in self.readers],
        }


@dataclass(frozen=True)
class KubernetesSecret:
    """One Secret the manifests read: its keys (empty: every key), the objects that read it, and
    the object that makes it (a cert-manager Certificate) if one does: else a person creates it."""

    name: str
    keys: tuple[str, ...]
    readers: tuple[str, ...]
    made_by: str | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "keys": list(self.keys), "readers": list(self.readers), "made_by": self.made_by}


@dataclass(frozen=True)
class SecretsList:
    compose: tuple[ComposeSecret, ...]
    kubernetes: tuple[KubernetesSecret, ...]

    @property
    def missing(self) -> tuple[ComposeSecret, ...]:
        return tuple(item for item in self.compose if not item.exists)

    @property
    def unready(self) -> tuple[ComposeSecret, ...]:
        """Missing files, and files that are there but wrongly owned or open."""
        return tuple(item for item in self.compose if not item.exists or item.problem is not None)

    def to_dict(self) -> dict:
        return {"compose": [item.to_dict() for item in self.compose], "kubernetes": [item.to_dict() for item in self.kubernetes]}


# --- reading the built objects ---------------------------------------------------------------


def built_files(planned) -> Iterator[Built]:
    """The compose file, every manifest and Traefik's Helm values, built and patched as a render builds them."""
    patching = Patching(planned.loaded.blueprint)
    read = (COMPOSE_FILE, HELM_VALUES)
    wanted = [artifact for artifact in render_targets(planned.plan, planned.targets) if artifact.path in read or is_manifest(artifact.path)]
    yield from patching.each(artifact.built() for artifact in wanted)


def secrets_list(planned, out_dir: Path) -> SecretsList:
    """Every secret the built files read; each compose file looked for under `out_dir`."""
    compose: tuple[ComposeSecret, ...] = ()
    kubernetes: dict[str, tuple[set[str], set[str]]] = {}
    made: dict[str, str] = {}
    for built in built_files(planned):
        if built.path == COMPOSE_FILE:
            compose = compose_secrets(built.document(), planned.plan)
            continue
        found = values_secrets(built.document()) if built.path == HELM_VALUES else (item for document in built.documents for item in object_secrets(document))
        for name, keys, reader in found:
            entry = kubernetes.setdefault(name, (set(), set()))
            entry[0].update(keys)
            entry[1].add(reader)
        made.update(item for document in built.documents for item in made_secrets(document))
    listed = tuple(
        KubernetesSecret(name, tuple(sorted(keys)), tuple(sorted(readers)), made.get(name)) for name, (keys, readers) in sorted(kubernetes.items())
    )
    return SecretsList(with_existence(compose, out_dir), listed)


def compose_secrets(document: dict, plan) -> tuple[ComposeSecret, ...]:
    """The top-level secrets with a file, each with the containers that mount it."""
    readers: dict[str, list[Reader]] = {}
    for container, entry in document.get("services", {}).items():
        for mounted in entry.get("secrets", []):
            source = mounted if isinstance(mounted, str) else mounted["source"]
            readers.setdefault(unescape(source), []).append(reader_of(container, entry, plan))
    listed = []
    for name, definition in sorted((document.get("secrets") or {}).items()):
        if "file" not in definition or not readers.get(unescape(name)):
            continue  # an external or environment secret, or one no container mounts
        path = posixpath.normpath(posixpath.join(posixpath.dirname(COMPOSE_FILE), unescape(definition["file"])))
        of_service = path.split("/")[1] in {service.name for service in plan.services}
        listed.append(ComposeSecret(unescape(name), path, tuple(readers[unescape(name)]), of_service=of_service))
    return tuple(listed)


def unescape(text: str) -> str:
    """A compose string as the engine reads it (msgen doubles every `$`)."""
    return text.replace("$$", "$")


def reader_of(container: str, entry: dict, plan) -> Reader:
    """The user a container reads its secrets as: its `user`; else a datastore's, whose
    entrypoint starts as root and runs the server and its init scripts as the engine's user;
    else root."""
    user = entry.get("user")
    if user is not None:
        uid, _, gid = str(user).partition(":")
        return Reader(container, int(uid), int(gid or uid))
    engines = {store.name: store.engine for store in plan.datastores}
    uid = images.facts(engines[container]).uid if container in engines else 0
    return Reader(container, uid, uid)


def object_secrets(document: dict) -> Iterator[tuple[str, tuple[str, ...], str]]:
    """(Secret name, keys, `Kind/name`) for each Secret a manifest object reads: a pod
    template's volumes, projected sources, env and envFrom, and a Traefik Middleware's basic
    auth or an IngressRoute's TLS."""
    if not isinstance(document, dict):
        return
    kind = document.get("kind")
    reader = f"{kind}/{(document.get('metadata') or {}).get('name')}"
    spec = document.get("spec") or {}
    if kind in POD_TEMPLATE_KINDS:
        template = (spec.get("jobTemplate") or {}).get("spec", {}) if kind == "CronJob" else spec
        yield from ((name, keys, reader) for name, keys in pod_secrets(template.get("template", {}).get("spec", {})))
    elif kind == "Pod":
        yield from ((name, keys, reader) for name, keys in pod_secrets(spec))
    elif kind == "Middleware" and "basicAuth" in spec:
        yield spec["basicAuth"]["secret"], ("users",), reader  # htpasswd lines under `users`
    elif kind == "IngressRoute" and (spec.get("tls") or {}).get("secretName"):
        yield spec["tls"]["secretName"], ("tls.crt", "tls.key"), reader  # a kubernetes.io/tls Secret


def values_secrets(values: dict) -> Iterator[tuple[str, tuple[str, ...], str]]:
    """The TLS Secret of the dashboard's IngressRoute, which Traefik's Helm chart writes from its values."""
    tls = ((values.get("ingressRoute") or {}).get("dashboard") or {}).get("tls") or {}
    if tls.get("secretName"):
        yield tls["secretName"], ("tls.crt", "tls.key"), f"{HELM_VALUES}: ingressRoute.dashboard"


def made_secrets(document: dict) -> Iterator[tuple[str, str]]:
    """(Secret name, its maker) for a Secret cert-manager writes from a Certificate."""
    if isinstance(document, dict) and document.get("kind") == "Certificate":
        yield document["spec"]["secretName"], f"Certificate/{document['metadata']['name']} (cert-manager)"


def pod_secrets(pod: dict) -> Iterator[tuple[str, tuple[str, ...]]]:
    for volume in pod.get("volumes", []):
        if "secret" in volume:
            yield volume["secret"]["secretName"], item_keys(volume["secret"])
        for source in (volume.get("projected") or {}).get("sources", []):
            if "secret" in source:
                yield source["secret"]["name"], item_keys(source["secret"])
    for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        for variable in container.get("env", []):
            reference = (variable.get("valueFrom") or {}).get("secretKeyRef")
            if reference is not None:
                yield reference["name"], (reference["key"],)
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                yield source["secretRef"]["name"], ()
    for pull in pod.get("imagePullSecrets", []):
        yield pull["name"], (".dockerconfigjson",)


def item_keys(secret: dict) -> tuple[str, ...]:
    """The keys a secret volume names (none: it mounts every key)."""
    return tuple(item["key"] for item in secret.get("items", []))


# --- the output folder -----------------------------------------------------------------------


def with_existence(listed: tuple[ComposeSecret, ...], out_dir: Path) -> tuple[ComposeSecret, ...]:
    """Each secret with whether its file is there (a link anywhere on the way is an error)."""
    if not listed or (not out_dir.exists() and not out_dir.is_symlink()):
        return listed
    folder = OutputFolder(out_dir)
    try:
        return tuple(examined(folder, item) for item in listed)
    finally:
        folder.close()


def examined(folder: OutputFolder, item: ComposeSecret) -> ComposeSecret:
    exists = is_present(folder, item.path)
    problem = access_problem(folder, item) if exists else None
    return ComposeSecret(item.name, item.path, item.readers, exists, item.of_service, problem)


def access_problem(folder: OutputFolder, item: ComposeSecret) -> str | None:
    """What keeps an existing file from being readable by exactly its containers' users: its
    owner, a mode that lets every user read it, a reader the ACL does not name."""
    parent_path, _, name = item.path.rpartition("/")
    parent = folder.folder(parent_path)
    assert parent is not None
    descriptor = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    try:
        found = os.fstat(descriptor)
        granted = acl_read_uids(f"/proc/self/fd/{descriptor}")  # the file itself, through its descriptor
    finally:
        os.close(descriptor)
    shown, owner = folder.shown(item.path), item.owner
    problems = []
    if found.st_uid != owner.uid:
        problems.append(f"owned by uid {found.st_uid}, not {owner.uid} ({owner.container}): sudo chown {owner.uid}:{owner.gid} {shown}")
    if found.st_mode & 0o007:
        problems.append(f"every user may open it: chmod 400 {shown}")
    if granted is None and found.st_mode & 0o070:  # with an ACL the group bits are its mask
        problems.append(f"its group may open it: chmod 400 {shown}")
    unnamed = [uid for uid in item.others if uid not in (granted or ())]
    if unnamed:
        problems.append(f"uid {', '.join(map(str, unnamed))} cannot read it: {' '.join(f'setfacl -m u:{uid}:r' for uid in unnamed)} {shown}")
    return "; ".join(problems) or None


def acl_read_uids(path: str) -> tuple[int, ...] | None:
    """The uids a file's POSIX ACL lets read it; None when it has no ACL."""
    try:
        data = os.getxattr(path, ACL_XATTR)
    except OSError:
        return None
    entries = struct.iter_unpack("<HHI", data[4:])
    return tuple(uid for tag, permissions, uid in entries if tag == _USER and permissions & _READ)


def is_present(folder: OutputFolder, path: str) -> bool:
    if not is_inside(path):
        raise OutputError(f"the compose file reads the secret {path!r} outside the output folder: msgen neither checks nor creates it")
    found = folder.kind(path)
    if found in (None, "a file"):
        return found == "a file"
    if found == "link":
        raise OutputError(f"{folder.shown(path)}: is a symbolic link; msgen never reads or writes a secret through one")
    raise OutputError(f"{folder.shown(path)}: is {found} where a secret file belongs; move it away")


@dataclass
class Created:
    """What `create` did: the files it wrote and the owner changes left to a person."""

    paths: list[str] = field(default_factory=list)
    chown: list[str] = field(default_factory=list)  # `sudo chown UID:GID PATH`, one per file


def create(listed: SecretsList, out_dir: Path) -> Created:
    """Write each missing generated compose secret: a new random value, mode 0400 (with an ACL
    for further readers), owned by its container's user when running as root; folders 0700."""
    created = Created()
    missing = [item for item in listed.missing if item.generated]
    if not missing:
        return created
    if not out_dir.exists() and not out_dir.is_symlink():
        out_dir.mkdir(parents=True)  # secrets may come before the first render
    folder = OutputFolder(out_dir)
    try:
        for item in missing:
            write_secret(folder, item)
            created.paths.append(item.path)
            if os.geteuid() != 0:
                owner = item.owner
                created.chown.append(f"sudo chown {owner.uid}:{owner.gid} {folder.shown(item.path)}")
    finally:
        folder.close()
    return created


def new_value() -> bytes:
    return "".join(random.choice(ALPHABET) for _ in range(VALUE_LENGTH)).encode("ascii")


def write_secret(folder: OutputFolder, item: ComposeSecret) -> None:
    """Link a fully written temporary file to the secret's name: never a partial value, and
    never over a file that appeared meanwhile."""
    parent_path, _, name = item.path.rpartition("/")
    parent = make_folders(folder, parent_path)
    temporary = f".{name}.{os.getpid()}.msgen-tmp"
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE, dir_fd=parent)
    except OSError as error:
        raise OutputError(f"cannot write {folder.shown(item.path)}: {error.strerror}") from None
    try:
        os.fchmod(descriptor, FILE_MODE)  # whatever the umask
        value = new_value()
        if os.write(descriptor, value) != len(value):
            raise OSError(28, os.strerror(28))  # a short write: the disk is full
        if item.others:
            grant_readers(descriptor, item, folder)
        if os.geteuid() == 0:
            os.fchown(descriptor, item.owner.uid, item.owner.gid)
        os.fsync(descriptor)
        os.link(temporary, name, src_dir_fd=parent, dst_dir_fd=parent, follow_symlinks=False)
    except OSError as error:
        raise OutputError(f"cannot write {folder.shown(item.path)}: {error.strerror}") from None
    finally:
        os.close(descriptor)
        os.unlink(temporary, dir_fd=parent)


def grant_readers(descriptor: int, item: ComposeSecret, folder: OutputFolder) -> None:
    try:
        os.setxattr(descriptor, ACL_XATTR, read_acl(item.others))
    except OSError as error:
        uids = ", ".join(map(str, item.others))
        raise OutputError(
            f"cannot let uid {uids} read {folder.shown(item.path)} beside its owner: {error.strerror}; "
            "secrets/ needs a filesystem with POSIX ACLs (ext4, xfs, btrfs)"
        ) from None


def make_folders(folder: OutputFolder, relative: str) -> int:
    """The descriptor of `relative`, each folder msgen makes on the way 0700."""
    made: list[str] = []
    descriptor = folder.folder(relative, create=True, made=made)
    assert descriptor is not None
    for path in made:
        made_descriptor = folder.folder(path)
        assert made_descriptor is not None
        os.fchmod(made_descriptor, FOLDER_MODE)
    return descriptor


# the Linux xattr form of a POSIX ACL (include/uapi/linux/posix_acl_xattr.h): a version, then
# (tag, permissions, id) entries in tag order
ACL_XATTR = "system.posix_acl_access"
_ACL_VERSION = 2
_USER_OBJ, _USER, _GROUP_OBJ, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
_READ = 4
_NO_ID = 0xFFFFFFFF


def read_acl(uids: tuple[int, ...]) -> bytes:
    """Read for the owner and for each of `uids`; nothing for the group or others."""
    entries = [(_USER_OBJ, _READ, _NO_ID), *((_USER, _READ, uid) for uid in uids), (_GROUP_OBJ, 0, _NO_ID), (_MASK, _READ, _NO_ID), (_OTHER, 0, _NO_ID)]
    return struct.pack("<I", _ACL_VERSION) + b"".join(struct.pack("<HHI", *entry) for entry in entries)


# --- what the command prints (never a value) -------------------------------------------------

SHOWN_MISSING = 3  # the render summary names this many missing files, then counts the rest


def create_command(blueprint: Path, out_dir: Path) -> str:
    return f"msgen secrets {blueprint} -o {out_dir} --create"


def missing_note(missing: tuple[ComposeSecret, ...], blueprint: Path, out_dir: Path) -> str:
    """One line for the render's summary: how many compose secret files are missing, the first few."""
    shown = ", ".join(str(out_dir / item.path) for item in missing[:SHOWN_MISSING])
    more = f" and {len(missing) - SHOWN_MISSING} more" if len(missing) > SHOWN_MISSING else ""
    return f"{len(missing)} compose secret file(s) missing: {shown}{more}; run `{create_command(blueprint, out_dir)}`"


def access(item: ComposeSecret) -> str:
    owner = item.owner
    extra = f" (ACL: read for uid {', '.join(map(str, item.others))})" if item.others else ""
    return f"owner {owner.uid}:{owner.gid} mode {item.mode:04o}{extra}"


def secrets_text(listed: SecretsList, created: Created, out_dir: Path, blueprint: Path) -> str:
    lines: list[str] = []
    if listed.compose:
        lines.append(f"compose secret files (under {out_dir}):")
        for item in listed.compose:
            state = "missing" if not item.exists else "fix" if item.problem else "ok"
            readers = ", ".join(f"{reader.container} (uid {reader.uid})" for reader in item.readers)
            supplied = "" if item.generated else "; you supply its value"
            lines.append(f"  {state:<8}{item.path}  {access(item)}; read by {readers}{supplied}")
            if item.problem:
                lines.append(f"          {item.problem}")
    if listed.kubernetes:
        lines.append("Kubernetes Secrets the manifests read (msgen never writes them; create each one no Certificate makes):")
        for secret in listed.kubernetes:
            keys = ", ".join(secret.keys) if secret.keys else "every key"
            maker = f"; made by {secret.made_by}" if secret.made_by else ""
            lines.append(f"  {secret.name}  keys: {keys}; read by {', '.join(secret.readers)}{maker}")
    lines.extend(f"created {out_dir / path}" for path in created.paths)
    if created.chown:
        lines.append("not root: give each created file to its container's user:")
        lines.extend(f"  {command}" for command in created.chown)
    lines.append(summary(listed, created, out_dir, blueprint))
    return "\n".join(lines) + "\n"


def summary(listed: SecretsList, created: Created, out_dir: Path, blueprint: Path) -> str:
    missing = listed.missing
    parts = [f"{len(created.paths)} created"] if created.paths else []
    parts.append(f"{len(missing)} of {len(listed.compose)} compose secret file(s) missing")
    to_fix = [item for item in listed.compose if item.exists and item.problem]
    if to_fix:
        parts.append(f"{len(to_fix)} to fix as shown under each")
    if created.chown:
        parts.append(f"not root: the {len(created.chown)} created file(s) are yours until you run their sudo chown")
    if any(item.generated for item in missing):
        parts.append(f"run `{create_command(blueprint, out_dir)}`")
    supplied = [item.path for item in missing if not item.generated]
    if supplied:
        parts.append(f"write these yourself, then run this again to check owner and mode: {', '.join(supplied)}")
    services = [item.path for item in listed.compose if item.path in created.paths and item.of_service]
    if services:
        parts.append(f"random values for the services' own secrets ({', '.join(services)}): replace one that must hold a key from elsewhere")
    return "; ".join(parts)
