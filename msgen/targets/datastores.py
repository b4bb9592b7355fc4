"""Datastore configs: `datastores/<name>/my.cnf`, `postgresql.conf` or `redis.conf`, tuned by
msgen/plan/tuning.py, plus the postgres init script that creates the application user.

Compose mounts these files (A's compose target) and Kubernetes carries them in each
datastore's ConfigMap (E's target): both read them through `config_files`.
"""

from __future__ import annotations

from functools import partial

from msgen.jinja import render_template
from msgen.plan.services import DB_PASSWORD_FILE, DatastorePlan
from msgen.targets import Artifact
from msgen.units import human_bytes

NAME = "datastores"
TEMPLATES = {"my.cnf": "my.cnf.j2", "postgresql.conf": "postgresql.conf.j2", "redis.conf": "redis.conf.j2"}
POSTGRES_INIT_SCRIPT = "initdb/10-app-user.sh"


def applies(plan) -> bool:
    return bool(plan.datastores)


def config_files(plan, datastore_name: str) -> dict[str, str]:
    """File name (relative to datastores/<name>/) -> text, for one datastore (rendered once:
    compose mounts the files and Kubernetes embeds the same text in a ConfigMap)."""
    return plan.built(f"datastore-files/{datastore_name}", lambda: _config_files(plan, datastore_name))


def file_names(store: DatastorePlan) -> list[str]:
    """The files a datastore gets, sorted: its config file, and postgres's init script."""
    return sorted([store.config_file, POSTGRES_INIT_SCRIPT] if store.engine == "postgres" else [store.config_file])


def _config_files(plan, datastore_name: str) -> dict[str, str]:
    store = plan.datastore(datastore_name)
    return {file_name: config_file(plan, store, file_name) for file_name in file_names(store)}


def config_file(plan, store: DatastorePlan, file_name: str) -> str:
    """The text of one of a datastore's files (`file_names`)."""
    if file_name == POSTGRES_INIT_SCRIPT:
        return render_template("datastores/postgres-app-user.sh.j2", store=store, password_file=DB_PASSWORD_FILE)
    tuning = plan.tuning[store.name]
    peak = f"{human_bytes(tuning.peak)}" if tuning.peak is not None else ""
    return render_template(f"datastores/{TEMPLATES[file_name]}", store=store, tuning=tuning, peak=peak)


def render(plan) -> list[Artifact]:
    artifacts = []
    for store in plan.datastores:
        for file_name in file_names(store):
            # kept: the text Kubernetes embeds too; not kept: this one file's text, for each use
            text = config_files(plan, store.name)[file_name] if plan.keeps_built else partial(config_file, plan, store, file_name)
            artifacts.append(Artifact(f"datastores/{store.name}/{file_name}", text, NAME))
    return artifacts
