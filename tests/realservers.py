"""The real datastore servers the tests boot with msgen's rendered files: MariaDB 10.11,
PostgreSQL 15 and Redis 7, each as its own non-root user, in temp dirs, on free loopback
ports, stopped by the context manager that started it.

The rendered configs name the backup location /backup (the volume compose and Kubernetes
mount) and PostgreSQL's pg_hba.conf at /etc/postgresql. A test may move ONLY such paths and
ports, on the server's command line: data dir, socket, pid and log files, port, listen address,
the binary log (`--log-bin`), `archive_command` (the rendered command with the temp dir in
place of /backup) and `hba_file` (the rendered pg_hba.conf, copied); Redis gets its `--dir` and
the `--requirepass` the compose entry passes from the secret file. These are the only
overrides: everything else is the rendered text.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from realtools import command_probe, debian_tool, free_port, postgres_bin, start, stop, wait_until_ready

from msgen.model.blueprint import Blueprint
from msgen.plan import build_plan
from msgen.plan.backup import BACKUP_MOUNT

GI, MI, KI = 1024**3, 1024**2, 1024
# Start-up on a loaded machine can be slow; the deadline only bounds a server that never comes up.
READY_TIMEOUT = 60.0
# the superuser's password the tests give each engine (quotes, a backslash and $ must survive)
ADMIN_PASSWORD = "adm-'\"\\$x"


def plan_from(data: dict):
    return build_plan(Blueprint.model_validate(data, strict=False))


def plan_for(engine: str, version: str, memory: str, storage: str = "ssd", extra: dict | None = None, top: dict | None = None):
    """The plan of one datastore `db` used by service `web` on one compose host; `extra` goes
    into the datastore, `top` into the blueprint (observability, say)."""
    data = {
        "version": 1,
        "project": "shop",
        "regions": {"home": {"jurisdiction": "DE"}},
        "hosts": [{"name": "box-1", "region": "home", "vcpu": 16, "memory": "128Gi", "storage": storage}],
        "services": {"web": {"image": "example/web:1.0", "port": 8080, "datastore": "db"}},
        "datastores": {"db": {"engine": engine, "version": version, "memory": memory, **(extra or {})}},
        "compose": {"host": "box-1"},
        **(top or {}),
    }
    return plan_from(data)


def two_datastores_on_a_host_with_iops():
    """MariaDB `db` and PostgreSQL `pg` on one compose host that declares its IOPS, with
    Prometheus on: both datastores and Prometheus' volume share the host's IOPS."""
    return plan_from(
        {
            "version": 1,
            "project": "shop",
            "regions": {"home": {"jurisdiction": "DE"}},
            "hosts": [{"name": "box-1", "region": "home", "vcpu": 16, "memory": "64Gi", "storage": "nvme", "iops": 40000}],
            "services": {
                "web": {"image": "example/web:1.0", "port": 8080, "datastore": "db"},
                "api": {"image": "example/api:1.0", "port": 8080, "datastore": "pg"},
            },
            "datastores": {
                "db": {"engine": "mariadb", "version": "10.11", "memory": "2Gi"},
                "pg": {"engine": "postgres", "version": "15", "memory": "2Gi"},
            },
            "observability": {},
            "compose": {"host": "box-1"},
        }
    )


@contextmanager
def owned_dir(user: str) -> Iterator[Path]:
    """A temp dir the server's user owns (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="msgen-ds-"))
    path.chmod(0o755)
    shutil.chown(path, user, user)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def write_as(path: Path, text: str, user: str, mode: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    shutil.chown(path, user, user)
    if mode is not None:
        path.chmod(mode)
    return path


def make_dirs_as(user: str, *paths: Path) -> None:
    for path in paths:
        path.mkdir(parents=True, exist_ok=True)
        shutil.chown(path, user, user)


def sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def moved_from_backup_mount(rendered: str, backup_dir: Path) -> str:
    """A rendered setting with the temp backup dir in place of /backup, and nothing else changed."""
    assert f"{BACKUP_MOUNT}/" in rendered, rendered
    return rendered.replace(f"{BACKUP_MOUNT}/", f"{backup_dir}/")


def rendered_setting(config: str, name: str, separator: str = "=") -> str | None:
    """The value a rendered config file gives `name` (quotes kept), or None."""
    match = re.search(rf"^{re.escape(name)}\s*{separator}\s*(.*)$", config, re.MULTILINE)
    return match.group(1).strip() if match else None


def as_user(user: str) -> dict:
    """Popen's arguments that start a server as `user` (no supplementary groups). Not runuser:
    runuser passes a TERM on and then sleeps two seconds before it exits, on every stop."""
    return {"user": user, "group": user, "extra_groups": []}


# --- running the rendered scripts ----------------------------------------------------------------


def dash() -> Path:
    """The shell the official images run /bin/sh as: the scripts are POSIX sh, tested under dash."""
    return debian_tool("dash", "dash")


def run_script(script: Path, *args: str, user: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """A rendered script under dash as `user`, with only PATH and `env` in its environment (so
    that it can only read what it documents)."""
    path = f"{postgres_bin('psql').parent}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
    variables = [f"{key}={value}" for key, value in {"PATH": path, **env}.items()]
    return subprocess.run(
        ["runuser", "-u", user, "--", "env", "-i", *variables, str(dash()), str(script), *args],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def checked(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


# --- MariaDB -------------------------------------------------------------------------------------


def init_mariadb_base(root: Path) -> dict:
    """One data dir initialised once with a tiny redo log; each boot copies it."""
    mariadbd = debian_tool("mariadbd", "mariadb-server")
    install = debian_tool("mariadb-install-db", "mariadb-server")
    client = debian_tool("mariadb", "mariadb-client")
    base = root / "base"
    make_dirs_as("mysql", base)
    subprocess.run(
        [
            "runuser", "-u", "mysql", "--", str(install), "--no-defaults", f"--datadir={base}",
            "--auth-root-authentication-method=normal", "--skip-test-db", "--innodb-log-file-size=1M",
        ],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return {"mariadbd": mariadbd, "client": client, "base": base, "root": root}


class SqlClient:
    """`sql` runs one statement through the server's own client and returns its output."""

    def sql(self, sql: str, **kwargs) -> str:
        result = self.run(sql, **kwargs)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()


@dataclass
class MariaDB(SqlClient):
    client: Path
    work: Path
    socket: Path
    port: int
    process: subprocess.Popen

    def run(self, sql: str, user: str = "root", password: str | None = None, tcp: bool = False, database: str | None = None):
        """A client on the socket (root, no password: as the base was installed) or over TCP."""
        where = ["--protocol=TCP", "-h", "127.0.0.1", "-P", str(self.port)] if tcp else [f"--socket={self.socket}"]
        env = {**os.environ, "MYSQL_PWD": password} if password is not None else dict(os.environ)
        return subprocess.run(
            [str(self.client), "--no-defaults", "-N", "-B", *where, "-u", user, *([database] if database else []), "-e", sql],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip


def wait_for_mariadb(client: Path, socket: Path, process: subprocess.Popen, log: Path) -> None:
    """Wait until mariadbd answers a query as root on its socket (it binds TCP before the socket)."""
    probe = command_probe([str(client), "--no-defaults", "-uroot", f"--socket={socket}", "-N", "-B", "-e", "SELECT 1"], "1")
    wait_until_ready(probe, process, "mariadbd", log, READY_TIMEOUT)


def mariadb_overrides(my_cnf: str, backup_dir: Path) -> list[str]:
    """The binary log on the temp backup dir where the rendered my.cnf puts it on /backup."""
    log_bin = rendered_setting(my_cnf, "log_bin")
    return [f"--log-bin={moved_from_backup_mount(log_bin, backup_dir)}"] if log_bin else []


@contextmanager
def running_mariadb(base: dict, work: Path, config: Path, extra: tuple[str, ...] | list[str] = ()) -> Iterator[MariaDB]:
    """mariadbd with `config`; on the command line only its data dir (a copy of the base unless
    `work`/data exists), socket, pid and error log in `work`, a free loopback port, and `extra`."""
    if not (work / "data").exists():
        shutil.copytree(base["base"], work / "data", symlinks=True)
    subprocess.run(["chown", "-R", "mysql:mysql", str(work)], check=True)
    socket, port = work / "mysqld.sock", free_port()
    process = start(
        [
            str(base["mariadbd"]), f"--defaults-file={config}", "--user=mysql", f"--datadir={work / 'data'}",
            f"--socket={socket}", f"--pid-file={work / 'mysqld.pid'}", f"--log-error={work / 'error.log'}",
            f"--port={port}", "--bind-address=127.0.0.1", *extra,
        ],
        work / "console.log",
    )  # fmt: skip
    try:
        wait_for_mariadb(base["client"], socket, process, work / "error.log")
        yield MariaDB(base["client"], work, socket, port, process)
    finally:
        stop(process)


def mariadb_entrypoint_users(server: MariaDB, admin_password: str, db_name: str, db_user: str, app_password: str) -> None:
    """What the image's entrypoint does on an empty data dir with MARIADB_ROOT_PASSWORD_FILE,
    MARIADB_DATABASE, MARIADB_USER and MARIADB_PASSWORD_FILE: root gets the password, locally
    and from anywhere, the app user gets its database; none of it goes to the binary log."""
    root = sql_string(admin_password)
    server.sql(
        "SET @@SESSION.SQL_LOG_BIN=0; "
        f"SET PASSWORD FOR 'root'@'localhost' = PASSWORD({root}); "
        f"CREATE USER 'root'@'%' IDENTIFIED BY {root}; GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION; "
        f"CREATE DATABASE IF NOT EXISTS `{db_name}`; "
        f"CREATE USER '{db_user}'@'%' IDENTIFIED BY {sql_string(app_password)}; GRANT ALL ON `{db_name}`.* TO '{db_user}'@'%';"
    )


# --- PostgreSQL ---------------------------------------------------------------------------------

PG_UNITS = {"kB": KI, "MB": MI, "GB": GI, "TB": 1024 * GI}
PG_TIME_UNITS = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}


def pg_number(text: str) -> float:
    for unit, factor in PG_UNITS.items():
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def pg_milliseconds(text: str) -> float:
    """`30s`, `1min`, `250ms` as SHOW prints them, in milliseconds."""
    match = re.fullmatch(r"([0-9.]+)([a-z]*)", text)
    assert match, text
    return float(match.group(1)) * PG_TIME_UNITS[match.group(2) or "ms"]


@dataclass
class Postgres(SqlClient):
    work: Path
    data: Path
    port: int
    process: subprocess.Popen

    @property
    def socket_dir(self) -> Path:
        return self.work

    def run(self, sql: str, user: str = "postgres", host: str | None = None, password: str | None = None, db: str = "postgres"):
        env = {**os.environ, "PGPASSWORD": password} if password is not None else {k: v for k, v in os.environ.items() if k != "PGPASSWORD"}
        return subprocess.run(
            [str(postgres_bin("psql")), "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", host or str(self.work), "-p", str(self.port),
             "-U", user, "-d", db, "-c", sql],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip



def init_postgres(data: Path, password_file: Path | None = None) -> None:
    """initdb as the image runs it: trust on the socket, scram-sha-256 over TCP, and the
    superuser's password from a file when one is given."""
    auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={password_file}"] if password_file else ["--auth=trust"]
    subprocess.run(
        ["runuser", "-u", "postgres", "--", str(postgres_bin("initdb")), "-D", str(data), "-U", "postgres", *auth, "--no-sync"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def postgres_overrides(files: dict[str, str], work: Path, backup_dir: Path) -> list[str]:
    """hba_file: the rendered pg_hba.conf copied into `work`; archive_command: the rendered
    command with `backup_dir` in place of /backup."""
    conf = files["postgresql.conf"]
    overrides = []
    if rendered_setting(conf, "hba_file") is not None:
        hba = write_as(work / "pg_hba.conf", files["pg_hba.conf"], "postgres")
        overrides += ["-c", f"hba_file={hba}"]
    command = rendered_setting(conf, "archive_command")
    if command is not None:
        unquoted = command[1:-1].replace("''", "'")
        overrides += ["-c", f"archive_command={moved_from_backup_mount(unquoted, backup_dir)}"]
    return overrides


def wait_for_postgres(socket_dir: Path, port: int, process: subprocess.Popen, log: Path, answer: tuple[str, str] = ("SELECT 1", "1")) -> None:
    """Wait until postgres answers `answer`'s query with its text on the chosen port: a bound
    port can still answer "the database system is starting up"."""
    psql = [str(postgres_bin("psql")), "-X", "-At", "-h", str(socket_dir), "-p", str(port), "-U", "postgres", "-d", "postgres"]
    probe = command_probe([*psql, "-c", answer[0]], answer[1])
    wait_until_ready(probe, process, "postgres", log, READY_TIMEOUT)


@contextmanager
def running_postgres_on(work: Path, data: Path, config: Path, overrides: list[str], ready: tuple[str, str] = ("SELECT 1", "1")) -> Iterator[Postgres]:
    """postgres on `data` with the rendered `config`; on the command line only the port, the
    socket dir (`work`), a loopback listen address and `overrides`."""
    port, log = free_port(), work / "postgres.log"
    process = start(
        [
            str(postgres_bin("postgres")), "-D", str(data), "-c", f"config_file={config}",
            "-p", str(port), "-k", str(work), "-c", "listen_addresses=127.0.0.1", *overrides,
        ],
        log, **as_user("postgres"),
    )  # fmt: skip
    try:
        wait_for_postgres(work, port, process, log, ready)
        yield Postgres(work, data, port, process)
    finally:
        stop(process)


@contextmanager
def running_postgres(postgresql_conf: str, extra_args: tuple[str, ...] = (), files: dict[str, str] | None = None) -> Iterator[Postgres]:
    """initdb (trust) + postgres with the rendered postgresql.conf, in a temp dir; with `files`
    (the rendered datastore files) pg_hba.conf and the WAL archive are moved into it."""
    with owned_dir("postgres") as work:
        data = work / "data"
        init_postgres(data)
        config = write_as(work / "postgresql.conf", postgresql_conf, "postgres")
        overrides = []
        if files is not None:
            make_dirs_as("postgres", work / "backup" / "wal")
            overrides = postgres_overrides(files, work, work / "backup")
        with running_postgres_on(work, data, config, [*overrides, *extra_args]) as server:
            yield server


# --- Redis --------------------------------------------------------------------------------------


def wait_for_redis(port: int, process: subprocess.Popen, log: Path, password: str | None = None) -> None:
    """Wait until redis-server answers PING with PONG on the chosen port."""
    auth = ["--no-auth-warning", "-a", password] if password else []
    probe = command_probe([str(debian_tool("redis-cli", "redis-tools")), "-h", "127.0.0.1", "-p", str(port), *auth, "PING"], "PONG")
    wait_until_ready(probe, process, "redis-server", log, READY_TIMEOUT)


@contextmanager
def running_redis_on(config: Path, data: Path, log: Path, password: str | None = None) -> Iterator[int]:
    """redis-server with the rendered config; on the command line only the port, a loopback
    bind, the data dir and the password (the entry passes it from the secret file)."""
    server = debian_tool("redis-server", "redis-server")
    port = free_port()
    auth = ["--requirepass", password] if password else []
    process = start(
        [str(server), str(config), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), *auth],
        log, **as_user("redis"),
    )  # fmt: skip
    try:
        wait_for_redis(port, process, log, password)
        yield port
    finally:
        stop(process)


@contextmanager
def running_redis(redis_conf: str, password: str | None = None) -> Iterator[int]:
    with owned_dir("redis") as work:
        config = write_as(work / "redis.conf", redis_conf, "redis")
        with running_redis_on(config, work, work / "redis.log", password) as port:
            yield port


def redis_cli(port: int, *args: str, password: str | None = None) -> list[str]:
    cli = debian_tool("redis-cli", "redis-tools")
    auth = ["--no-auth-warning", "-a", password] if password else []
    result = subprocess.run([str(cli), "-h", "127.0.0.1", "-p", str(port), *auth, *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()
