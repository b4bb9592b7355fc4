"""Datastore files under `datastores/<name>/`: the config tuned by msgen/plan/tuning.py, the
init scripts that create the application's and the exporter's users, PostgreSQL's
pg_hba.conf, and the backup and restore scripts (docs/backups.md).

Compose mounts these files and Kubernetes carries the same text in each datastore's
ConfigMap: both read them through `config_files`.
"""

from __future__ import annotations

from functools import partial

from msgen.contract import ADMIN_PASSWORD_FILE, EXPORTER_PASSWORD_FILE, EXPORTER_USER, PASSWORD_FILE
from msgen.jinja import render_template
from msgen.plan import backup as backups
from msgen.plan.services import EXPORTER_CONNECTIONS, DatastorePlan
from msgen.plan.tuning import STATEMENT_LIMIT, DatastoreTuning
from msgen.targets import Artifact, text_file
from msgen.units import human_bytes

NAME = "datastores"
PATHS = ("datastores/",)  # where this target writes (a folder ends in /)
TEMPLATES = {"my.cnf": "my.cnf.j2", "postgresql.conf": "postgresql.conf.j2", "redis.conf": "redis.conf.j2"}
POSTGRES_INIT_SCRIPT = "initdb/10-app-user.sh"
# creates (or brings up to date) the exporter's user and the application user's limits; the
# image runs it on an empty data directory, a person runs it once on an existing one
USERS_SCRIPT = "initdb/20-users.sh"
PG_HBA = "pg_hba.conf"
BACKUP_SCRIPT = "backup.sh"
RESTORE_SCRIPT = "restore.sh"
# where compose and Kubernetes mount the backup and restore scripts
SCRIPTS_MOUNT = "/msgen"


def applies(plan) -> bool:
    return bool(plan.datastores)


def config_files(plan, datastore_name: str) -> dict[str, str]:
    """File name (relative to datastores/<name>/) -> text, for one datastore."""
    store = plan.datastore(datastore_name)
    return {file_name: config_file(plan, store, file_name) for file_name in file_names(store)}


def file_names(store: DatastorePlan) -> list[str]:
    """The files a datastore gets, sorted."""
    names = [store.config_file]
    if store.engine == "postgres":
        names += [POSTGRES_INIT_SCRIPT, PG_HBA]
    if store.is_sql:
        names.append(USERS_SCRIPT)
    if store.backup is not None:
        names += [BACKUP_SCRIPT, RESTORE_SCRIPT]
    return sorted(names)


SCRIPT_TEMPLATES = {
    POSTGRES_INIT_SCRIPT: "postgres-app-user.sh.j2",
    USERS_SCRIPT: "users.sh.j2",
    PG_HBA: "pg_hba.conf.j2",
    BACKUP_SCRIPT: "backup.sh.j2",
    RESTORE_SCRIPT: "restore.sh.j2",
}


def config_file(plan, store: DatastorePlan, file_name: str) -> str:
    """The text of one of a datastore's files (`file_names`)."""
    tuning = plan.tuning[store.name]
    if file_name in SCRIPT_TEMPLATES:
        return render_template(f"datastores/{SCRIPT_TEMPLATES[file_name]}", project=plan.project, **script_context(store, tuning))
    peak = f"{human_bytes(tuning.peak)}" if tuning.peak is not None else ""
    return render_template(f"datastores/{TEMPLATES[file_name]}", project=plan.project, store=store, tuning=tuning, peak=peak)


def script_context(store: DatastorePlan, tuning: DatastoreTuning) -> dict:
    """What the scripts are written from: the datastore, its backup, and the paths compose and
    Kubernetes mount (each a default that an environment variable may override)."""
    return {
        "store": store,
        # redis: whether the server loads its append-only files at start (and not dump.rdb)
        "appendonly": tuning.has("appendonly") and tuning.get("appendonly").value == "yes",
        "backup": store.backup,
        "password_file": PASSWORD_FILE,
        # backups and restores log in as the superuser (redis has one password)
        "admin_password_file": ADMIN_PASSWORD_FILE if store.is_sql else PASSWORD_FILE,
        "exporter_user": EXPORTER_USER,
        "exporter_password_file": EXPORTER_PASSWORD_FILE,
        "exporter_connections": EXPORTER_CONNECTIONS,
        "statement_limit": STATEMENT_LIMIT.get(store.engine),
        "backup_mount": backups.BACKUP_MOUNT,
        "base_dir": backups.BASE_DIR,
        "binlog_dir": backups.BINLOG_DIR,
        "wal_dir": backups.WAL_DIR,
        "scripts_mount": SCRIPTS_MOUNT,
    }


def render(plan) -> list[Artifact]:
    artifacts = []
    for store in plan.datastores:
        for file_name in file_names(store):
            artifacts.append(text_file(f"datastores/{store.name}/{file_name}", NAME, partial(config_file, plan, store, file_name)))
    return artifacts
