"""Datastore configs: `datastores/<name>/my.cnf`, `postgresql.conf` or `redis.conf`, tuned by
msgen/plan/tuning.py, plus the postgres init script that creates the application user.

Compose mounts these files and Kubernetes carries the same text in each datastore's
ConfigMap: both read them through `config_files`.
"""

from __future__ import annotations

from functools import partial

from msgen.contract import PASSWORD_FILE
from msgen.jinja import render_template
from msgen.plan.services import DatastorePlan
from msgen.targets import Artifact, text_file
from msgen.units import human_bytes

NAME = "datastores"
PATHS = ("datastores/",)  # where this target writes (a folder ends in /)
TEMPLATES = {"my.cnf": "my.cnf.j2", "postgresql.conf": "postgresql.conf.j2", "redis.conf": "redis.conf.j2"}
POSTGRES_INIT_SCRIPT = "initdb/10-app-user.sh"


def applies(plan) -> bool:
    return bool(plan.datastores)


def config_files(plan, datastore_name: str) -> dict[str, str]:
    """File name (relative to datastores/<name>/) -> text, for one datastore."""
    store = plan.datastore(datastore_name)
    return {file_name: config_file(plan, store, file_name) for file_name in file_names(store)}


def file_names(store: DatastorePlan) -> list[str]:
    """The files a datastore gets, sorted: its config file, and postgres's init script."""
    return sorted([store.config_file, POSTGRES_INIT_SCRIPT] if store.engine == "postgres" else [store.config_file])


def config_file(plan, store: DatastorePlan, file_name: str) -> str:
    """The text of one of a datastore's files (`file_names`)."""
    if file_name == POSTGRES_INIT_SCRIPT:
        return render_template("datastores/postgres-app-user.sh.j2", store=store, password_file=PASSWORD_FILE)
    tuning = plan.tuning[store.name]
    peak = f"{human_bytes(tuning.peak)}" if tuning.peak is not None else ""
    return render_template(f"datastores/{TEMPLATES[file_name]}", store=store, tuning=tuning, peak=peak)


def render(plan) -> list[Artifact]:
    artifacts = []
    for store in plan.datastores:
        for file_name in file_names(store):
            artifacts.append(text_file(f"datastores/{store.name}/{file_name}", NAME, partial(config_file, plan, store, file_name)))
    return artifacts
