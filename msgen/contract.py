"""The facts every target shares, each defined once: where secrets are mounted, the compose
networks, the file paths other files point at, and the container-hardening rule."""

from __future__ import annotations

# where secrets are mounted in every container (compose and Kubernetes alike)
SECRETS_DIR = "/run/secrets"
# the application user's password, the superuser's password (file names under SECRETS_DIR)
PASSWORD_SECRET = "db-password"
ADMIN_PASSWORD_SECRET = "admin-password"
# the exporter's own login (mysql, mariadb, postgres): documented grants, a connection cap
EXPORTER_USER = "exporter"
EXPORTER_PASSWORD_SECRET = "exporter-password"
PASSWORD_FILE = f"{SECRETS_DIR}/{PASSWORD_SECRET}"
EXPORTER_PASSWORD_FILE = f"{SECRETS_DIR}/{EXPORTER_PASSWORD_SECRET}"


def compose_secret(datastore: str, secret: str) -> str:
    """The compose secret that holds one of a datastore's passwords, by its file name under
    SECRETS_DIR: `orders-db-password`, `orders-db-admin-password`, `orders-db-exporter-password`."""
    return f"{datastore}-{secret.removeprefix('db-')}"
ADMIN_PASSWORD_FILE = f"{SECRETS_DIR}/{ADMIN_PASSWORD_SECRET}"

# files that other files name
COMPOSE_FILE = "compose/docker-compose.yml"
# the writer's record of what it wrote, at the top of the output folder
MANIFEST_FILE = ".msgen-manifest.json"

# where msgen mounts something into every service container: a service's own volumes and files
# go elsewhere
MSGEN_MOUNTS = ("/tmp", SECRETS_DIR)
# a service's config files together, at most: what one Kubernetes ConfigMap holds (the API
# server refuses a larger one), the same in compose so that a blueprint renders in both
CONFIG_FILES_MAX_BYTES = 1024 * 1024

# Kubernetes kinds whose spec holds a pod template (a CronJob's, in its jobTemplate's spec)
POD_TEMPLATE_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob")
# the kinds whose pods come and go with runs (no selector, no replicas: a run's pods)
RUN_KINDS = ("Job", "CronJob")

# every compose container: restarted unless stopped, no privilege gained after start, and no
# capability but those its image's entrypoint needs
RESTART = "unless-stopped"
NO_NEW_PRIVILEGES = "no-new-privileges:true"


def hardened(entry: dict, drop_capabilities: bool = True, cap_add: tuple[str, ...] = ()) -> dict:
    """`entry` with the hardening every compose container gets."""
    entry["restart"] = RESTART
    entry["security_opt"] = [NO_NEW_PRIVILEGES]
    if drop_capabilities:
        entry["cap_drop"] = ["ALL"]
        if cap_add:
            entry["cap_add"] = sorted(cap_add)
    return entry
