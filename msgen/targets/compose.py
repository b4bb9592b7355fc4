"""docker-compose: `compose/docker-compose.yml`, the single-host stack on `compose.host`.

The file is built as a plain dict (`compose_document`) and written by a YAML encoder, so
no value is ever pasted into YAML text. Every image fact (tag, healthcheck, config path,
capabilities, credentials) comes from msgen/images.py; the gateway's labels and paths come
from the gateway plan, the monitoring containers from the observability target.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from msgen import images, yamlout
from msgen.contract import (
    ADMIN_PASSWORD_SECRET,
    COMPOSE_FILE,
    EXPORTER_PASSWORD_SECRET,
    PASSWORD_FILE,
    PASSWORD_SECRET,
    compose_secret,
    hardened,
)
from msgen.jinja import render_template
from msgen.plan import backup as backups
from msgen.plan import gateway as gw
from msgen.plan import tuning
from msgen.plan.images import ImageTable
from msgen.plan.mounts import MountsPlan
from msgen.plan.services import DatastorePlan, ServicePlan
from msgen.targets import Artifact, alerting, copied_file, observability, traefik
from msgen.targets.datastores import BACKUP_SCRIPT, RESTORE_SCRIPT, SCRIPTS_MOUNT
from msgen.units import Cpu, Memory, compose_cpus, compose_memory

NAME = "compose"
PATHS = ("compose/",)  # where this target writes (a folder ends in /)
GATEWAY = "gateway"
ACME_VOLUME = "gateway-acme"
SECRETS_ROOT = "../secrets"  # relative to compose/, where the secret files live (never written by msgen)

HEALTH_RETRIES = 3
# a datastore's first start initialises its data directory: give it time before failures count
DATASTORE_HEALTH = {"interval": "10s", "timeout": "5s", "retries": 5, "start_period": "2m"}
GATEWAY_HEALTH = {"interval": "10s", "timeout": "5s", "retries": 3, "start_period": "10s"}
# the healthcheck of a service that names no command: curl, else wget (busybox and alpine
# images have wget, Debian-based images usually curl); `exit 1` because Docker reserves other codes
DEFAULT_HEALTH = "curl -fsS -o /dev/null {url} || wget -q -O /dev/null {url} || exit 1"
HEALTH_FORMS = ("CMD", "CMD-SHELL", "NONE")


def applies(plan) -> bool:
    return plan.blueprint.compose is not None


def render(plan) -> list[Artifact]:
    compose_file = Artifact(COMPOSE_FILE, NAME, partial(_compose_text, plan.project), lambda: (compose_document(plan),))
    return [compose_file, *config_file_artifacts(plan)]


def _compose_text(project: str, documents: tuple[dict]) -> str:
    """The compose file: services in block style, one entry after another, lists in flow style."""
    (document,) = documents
    header = render_template("compose/docker-compose.yml.j2", project=project).rstrip("\n")
    services = document["services"]
    chunks = [header, yamlout.dump({"name": document["name"]}), "services:" if services else "services: {}"]
    chunks.extend(yamlout.dump({name: entry}, indent=2, flow_lists=True) for name, entry in services.items())
    chunks.extend(yamlout.dump({key: part}, flow_lists=True) for key, part in document.items() if key not in ("name", "services"))
    return "\n".join(chunks) + "\n"


# --- units and escaping ---------------------------------------------------------------------


def escaped(part: Any) -> Any:
    """`escape` for a part of a compose file, walked only if it holds a `$` at all (one
    C-speed json pass finds out; most parts hold none)."""
    return escape(part) if "$" in json.dumps(part, default=str) else part


def escape(value: Any) -> Any:
    """Every string of a compose document with `$` doubled: compose interpolates `$` everywhere."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {key: escape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [escape(item) for item in value]
    return value


def _resources(cpu: Cpu, memory: Memory) -> dict:
    return {"cpus": compose_cpus(cpu.millicores), "memory": compose_memory(memory.bytes)}


# --- services -------------------------------------------------------------------------------


def healthcheck_test(service: ServicePlan) -> list[str]:
    """The healthcheck of a service: its `health.command`, else an HTTP GET of its health path
    (a worker without a command: none).

    A command starting with CMD, CMD-SHELL or NONE is compose's own form and passes as it is;
    one string is a shell command line; several strings are an exec command.
    """
    command = service.health_command
    if command is None and service.port is None:
        return []  # a worker serves no HTTP: without a command of its own it has no check
    if command is None:
        url = shlex.quote(f"http://localhost:{service.port}{service.health_path}")
        return ["CMD-SHELL", DEFAULT_HEALTH.format(url=url)]
    if command[0] in HEALTH_FORMS:
        return list(command)
    if len(command) == 1:
        return ["CMD-SHELL", command[0]]
    return ["CMD", *command]


def _service_health(service: ServicePlan) -> dict:
    return {
        "test": healthcheck_test(service),
        "interval": gw.go_duration(service.period),
        "timeout": gw.go_duration(service.timeout),
        "retries": HEALTH_RETRIES,
        "start_period": gw.go_duration(service.initial_delay),
    }


def _service_secrets(plan, service: ServicePlan) -> list[dict]:
    secrets = [{"source": service_secret(service.name, name), "target": name} for name in service.secrets]
    if service.datastore is not None:
        secrets.append({"source": datastore_secret(service.datastore), "target": PASSWORD_SECRET})
    return secrets


def process_entry(service: ServicePlan) -> dict:
    """What the container runs and the further ports it listens on. compose's entrypoint
    replaces the image's ENTRYPOINT and its command the CMD, as Kubernetes' command and args
    do; the ports are exposed to the stack's networks, never published."""
    own = service.service
    entry: dict = {}
    if own.command is not None:
        entry["entrypoint"] = list(own.command)
    if own.args is not None:
        entry["command"] = list(own.args)
    if own.ports:
        entry["expose"] = [f"{port.port}/{port.protocol}" for port in own.ports]
    return entry


def service_entry(plan, service: ServicePlan) -> dict:
    """The compose service of a blueprint service (wiring, health, limits, hardening)."""
    entry: dict = {"image": service.image, **process_entry(service)}
    if service.env:
        entry["environment"] = dict(service.env)
    secrets = _service_secrets(plan, service)
    if secrets:
        entry["secrets"] = secrets
    if service.datastore is not None:
        entry["depends_on"] = {service.datastore: {"condition": "service_healthy"}}
    labels = {**traefik.compose_labels(plan, service.name), **service.service.labels}
    if labels:
        # as KEY=VALUE: in a mapping compose takes a key starting with x- for an extension of
        # its own and drops it from the container's labels
        entry["labels"] = [f"{key}={value}" for key, value in labels.items()]
    if service.uid is not None:
        entry["user"] = f"{service.uid}:{service.uid}"
    # as on Kubernetes: nothing but /tmp (in memory) and the service's own volumes is writable
    entry["read_only"] = True
    entry["tmpfs"] = ["/tmp"]
    mounts = own_mounts(plan.mounts[service.name])
    if mounts:
        entry["volumes"] = mounts
    if healthcheck_test(service):
        entry["healthcheck"] = _service_health(service)
    entry["deploy"] = {
        "replicas": service.replicas,
        "resources": {
            "limits": _resources(service.limits.cpu, service.limits.memory),
            "reservations": _resources(service.requests.cpu, service.requests.memory),
        },
    }
    return hardened(entry, drop_capabilities=not service.run_as_root)


def own_mounts(mounts: MountsPlan) -> list[dict]:
    """A service's own volumes (a named volume, or a tmpfs of its size) and its config files
    (read-only binds of the copies beside the compose file), in long syntax: each key says what it is."""
    entries: list[dict] = []
    for volume in mounts.volumes:
        if volume.persistent:
            entries.append({"type": "volume", "source": volume.compose_volume, "target": volume.path})
        else:
            entries.append({"type": "tmpfs", "target": volume.path, "tmpfs": {"size": volume.size.bytes}})
    for file in mounts.files:
        entries.append({"type": "bind", "source": f"./{mounts.compose_copy(file)}", "target": file.path, "read_only": True})
    return entries


def config_file_artifacts(plan) -> list[Artifact]:
    """The services' config files, copied byte for byte under compose/files/<service>/ (once,
    when a service mounts one source at several paths)."""
    copies = {f"compose/{mounts.compose_copy(file)}": file.data for mounts in plan.mounts.values() for file in mounts.files}
    return [copied_file(path, NAME, data) for path, data in copies.items()]


# --- datastores -----------------------------------------------------------------------------


def data_volume(datastore: str) -> str:
    return f"{datastore}-data"


def service_secret(service: str, name: str) -> str:
    return f"{service}-{name}"


def datastore_secret(datastore: str) -> str:
    """The secret of a datastore's application password (redis's exporter mounts it too)."""
    return compose_secret(datastore, PASSWORD_SECRET)


def datastore_admin_secret(datastore: str) -> str:
    return compose_secret(datastore, ADMIN_PASSWORD_SECRET)


def exporter_secret(datastore: str) -> str:
    return compose_secret(datastore, EXPORTER_PASSWORD_SECRET)


def has_exporter_user(store: DatastorePlan) -> bool:
    """SQL engines give their exporter a login of its own; redis has one password."""
    return store.scraped and store.is_sql


def redis_start(facts: images.ImageFacts, prepare: str) -> list[str]:
    """Redis has no *_FILE variable: a shell reads the password file into --requirepass.

    The image's entrypoint still runs (it drops root with gosu); the password never enters
    redis.conf or the compose file.
    """
    server = " ".join(shlex.quote(arg) for arg in facts.config_args)
    return ["sh", "-c", f'{prepare}exec docker-entrypoint.sh {server} --requirepass "$(cat {PASSWORD_FILE})"']


def backup_folders(store: DatastorePlan, facts: images.ImageFacts) -> str:
    """A shell step that makes the backup location's folders the engine's user's, run as root
    before the image's entrypoint: a new volume (or host folder) belongs to root, and both the
    server (its logs) and the backup container (its copies) write there as that user."""
    if store.backup is None:
        return ""
    folders = [backups.BASE_DIR]
    if store.backup.point_in_time:
        folders.append(backups.WAL_DIR if store.engine == "postgres" else backups.BINLOG_DIR)
    return f"install -d -o {facts.uid} -g {facts.uid} {' '.join(folders)} && "


def backup_source(store: DatastorePlan) -> str:
    backup = store.backup
    return backup.path if backup.path else backup.volume


def _datastore_volumes(store: DatastorePlan, facts: images.ImageFacts) -> list[str]:
    folder = f"../datastores/{store.name}"
    volumes = [f"{data_volume(store.name)}:{facts.data_dir}", f"{folder}/{store.config_file}:{facts.config_path}:ro"]
    if store.engine == "postgres":
        volumes.append(f"{folder}/pg_hba.conf:{tuning.PG_HBA_FILE}:ro")
    if store.is_sql:
        volumes.append(f"{folder}/initdb:/docker-entrypoint-initdb.d:ro")
    if store.backup is not None:
        volumes.append(f"{backup_source(store)}:{backups.BACKUP_MOUNT}")
        volumes.append(f"{folder}/{RESTORE_SCRIPT}:{SCRIPTS_MOUNT}/{RESTORE_SCRIPT}:ro")
    return volumes


def _datastore_secrets(store: DatastorePlan) -> list[dict]:
    secrets = [{"source": datastore_secret(store.name), "target": PASSWORD_SECRET}]
    if store.is_sql:
        secrets.append({"source": datastore_admin_secret(store.name), "target": ADMIN_PASSWORD_SECRET})
    if has_exporter_user(store):
        secrets.append({"source": exporter_secret(store.name), "target": EXPORTER_PASSWORD_SECRET})
    return secrets


def _start(store: DatastorePlan, facts: images.ImageFacts) -> dict:
    """How the server starts: the image's entrypoint, after the backup folders are prepared."""
    prepare = backup_folders(store, facts)
    if store.engine == "redis":
        return {"entrypoint": redis_start(facts, prepare)}
    command = list(facts.config_args or facts.command)
    if not prepare:
        return {"command": command} if facts.config_args else {}
    return {"entrypoint": ["sh", "-c", f'{prepare}exec docker-entrypoint.sh "$@"', "sh"], "command": command}


def datastore_entry(table: ImageTable, store: DatastorePlan) -> dict:
    """A datastore on its official image, pinned, healthy by the image's own tool, on its own network."""
    facts = images.facts(store.engine)
    entry: dict = {"image": table.ref(store.engine, store.version), **_start(store, facts)}
    environment = images.credential_env(store.engine, store.db_name, store.db_user)
    if environment:
        entry["environment"] = environment
    entry["secrets"] = _datastore_secrets(store)
    entry["volumes"] = _datastore_volumes(store, facts)
    if store.shm_bytes is not None:
        # Docker's 64 MiB default is too small for parallel queries
        entry["shm_size"] = compose_memory(store.shm_bytes)
    entry["healthcheck"] = {"test": ["CMD", *facts.healthcheck], **DATASTORE_HEALTH}
    entry["deploy"] = {"resources": {"limits": _resources(store.cpu, store.memory)}}
    return hardened(entry, cap_add=facts.cap_add)


# the scheduler writes its heartbeat each minute: two missed minutes are a stopped scheduler
BACKUP_HEALTH = {"interval": "1m", "timeout": "10s", "retries": 2, "start_period": "2m"}


def backup_entry(table: ImageTable, store: DatastorePlan) -> dict:
    """The datastore's backup: its engine's image (the client tools of the same version) running
    msgen's scheduler as the engine's user, reaching the server over the network."""
    facts = images.facts(store.engine)
    folder = f"../datastores/{store.name}"
    secret = (datastore_admin_secret(store.name), ADMIN_PASSWORD_SECRET) if store.is_sql else (datastore_secret(store.name), PASSWORD_SECRET)
    entry: dict = {
        "image": table.ref(store.engine, store.version),
        "user": f"{facts.uid}:{facts.uid}",
        "entrypoint": ["sh", f"{SCRIPTS_MOUNT}/{BACKUP_SCRIPT}"],
        "command": ["schedule"],
        "read_only": True,
        "tmpfs": ["/tmp"],
        "depends_on": {store.name: {"condition": "service_healthy"}},
        "secrets": [{"source": secret[0], "target": secret[1]}],
        "volumes": [
            f"{backup_source(store)}:{backups.BACKUP_MOUNT}",
            f"{folder}/{BACKUP_SCRIPT}:{SCRIPTS_MOUNT}/{BACKUP_SCRIPT}:ro",
            f"{folder}/{RESTORE_SCRIPT}:{SCRIPTS_MOUNT}/{RESTORE_SCRIPT}:ro",
        ],
        "healthcheck": {"test": ["CMD", "sh", f"{SCRIPTS_MOUNT}/{BACKUP_SCRIPT}", "health"], **BACKUP_HEALTH},
        "deploy": {"resources": {"limits": _resources(backups.BACKUP_CPU, backups.BACKUP_MEMORY)}},
    }
    return hardened(entry)


# --- gateway --------------------------------------------------------------------------------


def gateway_entry(plan) -> dict:
    """Traefik: the only container that publishes ports; the docker socket only in docker mode."""
    gateway = plan.gateway
    facts = images.facts("traefik")
    volumes = [
        f"../{gw.STATIC_CONFIG}:{gw.STATIC_MOUNT}:ro",
        f"../{gw.DYNAMIC_DIR}:{gw.DYNAMIC_MOUNT}:ro",
        f"{ACME_VOLUME}:{gw.ACME_MOUNT}",
    ]
    if gateway.provider == "docker":
        volumes.append(f"{gw.DOCKER_SOCKET}:{gw.DOCKER_SOCKET}:ro")
    entry: dict = {"image": plan.images.ref("traefik"), "ports": list(gateway.published_ports), "volumes": volumes}
    if gateway.dashboard:
        entry["secrets"] = [{"source": gw.DASHBOARD_USERS_SECRET, "target": gw.DASHBOARD_USERS_SECRET}]
    entry["healthcheck"] = {"test": ["CMD", *facts.healthcheck], **GATEWAY_HEALTH}
    resources = plan.blueprint.gateway.resources
    entry["deploy"] = {"resources": {"limits": _resources(resources.cpu, resources.memory)}}
    return hardened(entry, cap_add=facts.cap_add)


# --- monitoring (the observability target's containers) -------------------------------------


def _prometheus_on(plan) -> bool:
    return plan.observability is not None and plan.blueprint.observability.prometheus is not None


def _observability(plan) -> tuple[dict[str, Callable[[], dict]], list[str]]:
    if plan.observability is None:
        return {}, []
    entries = observability.compose_services(plan)
    return entries, list(observability.compose_volumes(plan))


def _logging(plan) -> dict | None:
    """With Loki, every container logs json-file with its compose service name (Alloy's label)."""
    if plan.observability is None or not plan.blueprint.observability.loki:
        return None
    return observability.compose_logging()


# --- the document ---------------------------------------------------------------------------


def _secret_files(plan) -> dict[str, str]:
    """Every secret the stack reads, by compose name -> file under ../secrets/ (wiring contract)."""
    files: dict[str, str] = {}
    for service in plan.services:
        for name in service.secrets:
            files[service_secret(service.name, name)] = f"{SECRETS_ROOT}/{service.name}/{name}"
    for store in plan.datastores:
        files[datastore_secret(store.name)] = f"{SECRETS_ROOT}/{store.name}/password"
        if store.is_sql:
            files[datastore_admin_secret(store.name)] = f"{SECRETS_ROOT}/{store.name}/admin-password"
        if has_exporter_user(store):
            files[exporter_secret(store.name)] = f"{SECRETS_ROOT}/{store.name}/{EXPORTER_PASSWORD_SECRET}"
    if plan.gateway is not None and plan.gateway.dashboard:
        files[gw.DASHBOARD_USERS_SECRET] = f"{SECRETS_ROOT}/{GATEWAY}/{gw.DASHBOARD_USERS_SECRET}"
    if plan.observability is not None and plan.blueprint.observability.grafana:
        files["grafana-admin-password"] = f"{SECRETS_ROOT}/grafana/admin-password"
    if plan.observability is not None and plan.observability.alerting is not None:
        files.update(alerting.secret_files(plan.observability.alerting, SECRETS_ROOT))
    return files


def _networks(plan) -> dict[str, dict]:
    """Every network with its own subnet; `internal` ones have no route out of the host."""
    networks: dict[str, dict] = {}
    for network in plan.networks.networks:
        options: dict = {"internal": True} if network.internal else {}
        if network.subnet is not None:
            options["ipam"] = {"config": [{"subnet": network.subnet}]}
        networks[network.name] = options
    return networks


def with_networks(entry: dict, networks: tuple[str, ...]) -> dict:
    """The entry with its networks placed before its healthcheck; a container that talks to
    nobody gets no network at all (compose would put it on a default network with a route out)."""
    part = {"networks": list(networks)} if networks else {"network_mode": "none"}
    placed: dict = {}
    for key, value in entry.items():
        if key == "healthcheck":
            placed.update(part)
        placed[key] = value
    return placed if len(placed) > len(entry) else {**entry, **part}


def compose_document(plan) -> dict:
    """The compose file as a dict, exactly as written (`$` already doubled)."""
    sections = _sections(plan)
    sections["services"] = dict(_entries(plan, sections["services"]))
    return {"name": escaped(plan.project), **sections}


def _sections(plan) -> dict:
    """The file's top-level sections; `services` maps each name to the function that builds its entry."""
    builders: dict[str, Callable[[], dict]] = {service.name: partial(service_entry, plan, service) for service in plan.services}
    builders.update((store.name, partial(datastore_entry, plan.images, store)) for store in plan.datastores)
    builders.update((store.backup.container, partial(backup_entry, plan.images, store)) for store in plan.datastores if store.backup is not None)
    if plan.gateway is not None:
        builders[GATEWAY] = partial(gateway_entry, plan)
    monitoring, monitoring_volumes = _observability(plan)
    builders.update(monitoring)
    volumes = [data_volume(store.name) for store in plan.datastores] + monitoring_volumes
    volumes += [store.backup.volume for store in plan.datastores if store.backup is not None and store.backup.path is None]
    if plan.gateway is not None:
        volumes.append(ACME_VOLUME)
    volumes += [volume.compose_volume for mounts in plan.mounts.values() for volume in mounts.persistent]
    sections: dict = {"services": dict(sorted(builders.items()))}
    networks = _networks(plan)
    if networks:
        sections["networks"] = escaped(networks)
    if volumes:
        sections["volumes"] = escaped({name: {} for name in sorted(volumes)})
    secrets = _secret_files(plan)
    if secrets:
        sections["secrets"] = escaped({name: {"file": path} for name, path in sorted(secrets.items())})
    return sections


def _entries(plan, builders: dict[str, Callable[[], dict]]) -> Iterator[tuple[str, dict]]:
    logging = _logging(plan)
    for name, build in builders.items():
        entry = with_networks(build(), plan.networks.joined[name])
        grace = plan.grace.get(name)
        if grace is not None:
            # Docker's default is 10s, then SIGKILL
            entry["stop_grace_period"] = gw.go_duration(grace.period)
        if logging is not None:
            entry.setdefault("logging", logging)
        limit = entry["deploy"]["resources"]["limits"].get("memory")
        if limit is not None:
            # without it Docker lets a container swap as much again as its memory limit
            entry["memswap_limit"] = limit
        yield name, escaped(entry)
