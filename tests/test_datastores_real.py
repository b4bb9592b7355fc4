"""The rendered datastore configs boot the real servers: MariaDB 10.11,
PostgreSQL 15 and Redis 7 start with them as their non-root users, in temp dirs, on free
loopback ports, and report exactly the values the plan derived."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from realtools import command_probe, debian_tool, free_port, postgres_bin, start, stop, wait_until_ready

from msgen.model.blueprint import Blueprint
from msgen.plan import build_plan
from msgen.targets.datastores import config_files

pytestmark = pytest.mark.realtool
GI, MI, KI = 1024**3, 1024**2, 1024


def plan_for(engine: str, version: str, memory: str, storage: str = "ssd", extra: dict | None = None):
    data = {
        "version": 1,
        "project": "shop",
        "regions": {"home": {"jurisdiction": "DE"}},
        "hosts": [{"name": "box-1", "region": "home", "vcpu": 16, "memory": "128Gi", "storage": storage}],
        "services": {"web": {"image": "example/web:1.0", "port": 8080, "datastore": "db"}},
        "datastores": {"db": {"engine": engine, "version": version, "memory": memory, **(extra or {})}},
        "compose": {"host": "box-1"},
    }
    return build_plan(Blueprint.model_validate(data, strict=False))


@contextmanager
def owned_dir(user: str):
    """A temp dir the server's user owns (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="msgen-ds-"))
    path.chmod(0o755)
    shutil.chown(path, user, user)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def write_as(path: Path, text: str, user: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    shutil.chown(path, user, user)
    return path


# Start-up on a loaded machine can be slow; the deadline only bounds a server that never comes up.
READY_TIMEOUT = 60.0


def wait_for_mariadb(client: Path, socket: Path, process: subprocess.Popen, log: Path) -> None:
    """Wait until mariadbd answers a query as root on its socket (it binds TCP before the socket)."""
    probe = command_probe([str(client), "--no-defaults", "-uroot", f"--socket={socket}", "-N", "-B", "-e", "SELECT 1"], "1")
    wait_until_ready(probe, process, "mariadbd", log, READY_TIMEOUT)


def wait_for_postgres(socket_dir: Path, port: int, process: subprocess.Popen, log: Path) -> None:
    """Wait until postgres answers `SELECT 1` on the chosen port: a bound port can still answer
    "the database system is starting up"."""
    psql = [str(postgres_bin("psql")), "-X", "-At", "-h", str(socket_dir), "-p", str(port), "-U", "postgres", "-d", "postgres"]
    probe = command_probe([*psql, "-c", "SELECT 1"], "1")
    wait_until_ready(probe, process, "postgres", log, READY_TIMEOUT)


def wait_for_redis(port: int, process: subprocess.Popen, log: Path, password: str | None = None) -> None:
    """Wait until redis-server answers PING with PONG on the chosen port."""
    auth = ["--no-auth-warning", "-a", password] if password else []
    probe = command_probe([str(debian_tool("redis-cli", "redis-tools")), "-h", "127.0.0.1", "-p", str(port), *auth, "PING"], "PONG")
    wait_until_ready(probe, process, "redis-server", log, READY_TIMEOUT)


# --- MariaDB -------------------------------------------------------------------------------------

MARIADB_QUERY = (
    "SELECT @@innodb_buffer_pool_size, @@innodb_io_capacity, @@innodb_flush_neighbors, @@max_connections, @@innodb_log_file_size, "
    "@@character_set_server, @@collation_server, @@slow_query_log, @@long_query_time"
)
MARIADB_KEYS = ("innodb_buffer_pool_size", "innodb_io_capacity", "innodb_flush_neighbors", "max_connections", "innodb_log_file_size")
# text the server reports as it is: the character set, the collation, the slow log (1 = ON) and its threshold
MARIADB_TEXT_KEYS = ("character_set_server", "collation_server", "slow_query_log", "long_query_time")


@pytest.fixture(scope="module")
def mariadb_base():
    """One data dir initialised once with a tiny redo log; each boot copies it."""
    mariadbd = debian_tool("mariadbd", "mariadb-server")
    install = debian_tool("mariadb-install-db", "mariadb-server")
    client = debian_tool("mariadb", "mariadb-client")
    with owned_dir("mysql") as root:
        base = root / "base"
        base.mkdir()
        shutil.chown(base, "mysql", "mysql")
        subprocess.run(
            [
                "runuser", "-u", "mysql", "--", str(install), "--no-defaults", f"--datadir={base}",
                "--auth-root-authentication-method=normal", "--skip-test-db", "--innodb-log-file-size=1M",
            ],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        yield {"mariadbd": mariadbd, "client": client, "base": base, "root": root}


def boot_mariadb(base: dict, my_cnf: str, name: str) -> dict[str, int | str]:
    """Boot mariadbd with the rendered my.cnf (plus only datadir, socket, pid, log and a
    loopback port on the command line) and return what the server reports."""
    work = base["root"] / name
    shutil.copytree(base["base"], work / "data", symlinks=True)
    subprocess.run(["chown", "-R", "mysql:mysql", str(work)], check=True)
    config = write_as(work / "my.cnf", my_cnf, "mysql")
    socket, log, port = work / "mysqld.sock", work / "console.log", free_port()
    process = start(
        [
            str(base["mariadbd"]), f"--defaults-file={config}", "--user=mysql", f"--datadir={work / 'data'}",
            f"--socket={socket}", f"--pid-file={work / 'mysqld.pid'}", f"--log-error={work / 'error.log'}",
            f"--port={port}", "--bind-address=127.0.0.1",
        ],
        log,
    )  # fmt: skip
    try:
        wait_for_mariadb(base["client"], socket, process, work / "error.log")
        result = subprocess.run(
            [str(base["client"]), "--no-defaults", "-uroot", f"--socket={socket}", "-N", "-B", "-e", MARIADB_QUERY],
            check=True, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    finally:
        stop(process)
        shutil.rmtree(work, ignore_errors=True)
    values = result.stdout.split()
    numbers = dict(zip(MARIADB_KEYS, (int(v) for v in values[: len(MARIADB_KEYS)]), strict=True))
    return {**numbers, **dict(zip(MARIADB_TEXT_KEYS, values[len(MARIADB_KEYS) :], strict=True))}


BOOT_CASES = [(memory, storage) for memory in ("512Mi", "2Gi", "8Gi") for storage in ("nvme", "ssd", "hdd")]


@pytest.mark.parametrize(("memory", "storage"), BOOT_CASES)
def test_mariadb_boots_with_rendered_my_cnf_and_reports_the_plan(mariadb_base, memory, storage):
    extra = {"max_connections": 50} if memory == "512Mi" else {}
    plan = plan_for("mariadb", "10.11", memory, storage, extra)
    tuning = plan.tuning["db"]
    reported = boot_mariadb(mariadb_base, config_files(plan, "db")["my.cnf"], f"{memory}-{storage}")
    assert {key: reported[key] for key in MARIADB_KEYS} == {key: tuning.get(key).number for key in MARIADB_KEYS}
    # MariaDB 10.11 alone would start with latin1 and no slow log
    assert (reported["character_set_server"], reported["collation_server"]) == ("utf8mb4", "utf8mb4_uca1400_ai_ci")
    assert (reported["slow_query_log"], float(reported["long_query_time"])) == ("1", tuning.get("long_query_time").number)
    assert tuning.peak <= tuning.limit


def boolean_word(value: str) -> str:
    """`--help --verbose` prints a boolean as TRUE/FALSE where my.cnf says ON/OFF."""
    word = value.lower()
    return {"on": "true", "off": "false"}.get(word, word)


def help_values(output: str) -> dict[str, str]:
    values = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2:
            values[parts[0].replace("-", "_")] = parts[1]
    return values


@pytest.mark.parametrize("memory", ["32Gi", "64Gi"])
@pytest.mark.parametrize("storage", ["nvme", "hdd"])
def test_mariadb_accepts_large_configs(mariadb_base, memory, storage):
    plan = plan_for("mariadb", "10.11", memory, storage, {"cpu": 8, "max_connections": 500})
    tuning = plan.tuning["db"]
    with owned_dir("mysql") as work:
        config = write_as(work / "my.cnf", config_files(plan, "db")["my.cnf"], "mysql")
        result = subprocess.run(
            ["runuser", "-u", "mysql", "--", str(mariadb_base["mariadbd"]), f"--defaults-file={config}", "--help", "--verbose"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "[ERROR]" not in result.stderr
    effective = help_values(result.stdout)
    for setting in tuning.settings:
        if setting.number is not None:
            assert float(effective[setting.name]) == setting.number, setting.name
        else:
            assert boolean_word(effective[setting.name]) == boolean_word(setting.value), setting.name


# --- PostgreSQL ---------------------------------------------------------------------------------

PG_UNITS = {"kB": KI, "MB": MI, "GB": GI, "TB": 1024 * GI}


def pg_number(text: str) -> float:
    for unit, factor in PG_UNITS.items():
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


@contextmanager
def running_postgres(postgresql_conf: str, extra_args: tuple[str, ...] = ()):
    """initdb + postgres with the rendered postgresql.conf; test-only overrides: port, socket
    dir, data dir and a loopback listen address."""
    initdb, postgres = postgres_bin("initdb"), postgres_bin("postgres")
    with owned_dir("postgres") as work:
        data = work / "data"
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(initdb), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        config = write_as(work / "postgresql.conf", postgresql_conf, "postgres")
        port, log = free_port(), work / "postgres.log"
        process = start(
            [
                "runuser", "-u", "postgres", "--", str(postgres), "-D", str(data), "-c", f"config_file={config}",
                "-p", str(port), "-k", str(work), "-c", "listen_addresses=127.0.0.1", *extra_args,
            ],
            log,
        )  # fmt: skip
        try:
            wait_for_postgres(work, port, process, log)
            yield {"port": port, "socket_dir": work, "work": work}
        finally:
            stop(process)


def psql(server: dict, sql: str, user: str = "postgres", host: str | None = None, password: str | None = None, db: str = "postgres") -> str:
    env = {**os.environ, "PGPASSWORD": password} if password else dict(os.environ)
    result = subprocess.run(
        [str(postgres_bin("psql")), "-X", "-At", "-h", host or str(server["socket_dir"]), "-p", str(server["port"]), "-U", user, "-d", db, "-c", sql],
        capture_output=True, text=True, timeout=30, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize(("memory", "storage"), [("2Gi", "nvme"), ("8Gi", "hdd")])
def test_postgres_boots_with_rendered_config_and_reports_the_plan(memory, storage):
    plan = plan_for("postgres", "15", memory, storage)
    tuning = plan.tuning["db"]
    with running_postgres(config_files(plan, "db")["postgresql.conf"]) as server:
        for name in ("shared_buffers", "effective_cache_size", "work_mem", "random_page_cost", "maintenance_work_mem", "wal_buffers"):
            shown = psql(server, f"SHOW {name}")
            assert pg_number(shown) == pytest.approx(tuning.get(name).number), (name, shown)
        assert psql(server, "SHOW shared_preload_libraries") == "pg_stat_statements"
        assert psql(server, "SHOW log_min_duration_statement") == "1s"
        assert psql(server, "SHOW idle_in_transaction_session_timeout") == "1min"


# --- Redis --------------------------------------------------------------------------------------


@contextmanager
def running_redis(redis_conf: str, password: str | None = None):
    server = debian_tool("redis-server", "redis-server")
    with owned_dir("redis") as work:
        config = write_as(work / "redis.conf", redis_conf, "redis")
        port, log = free_port(), work / "redis.log"
        # test-only overrides: the port, a loopback bind and the temp dir for persistence
        process = start(
            [
                "runuser",
                "-u",
                "redis",
                "--",
                str(server),
                str(config),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(work),
                *(["--requirepass", password] if password else []),
            ],
            log,
        )
        try:
            wait_for_redis(port, process, log, password)
            yield port
        finally:
            stop(process)


def redis_cli(port: int, *args: str, password: str | None = None) -> list[str]:
    cli = debian_tool("redis-cli", "redis-tools")
    auth = ["--no-auth-warning", "-a", password] if password else []
    result = subprocess.run([str(cli), "-h", "127.0.0.1", "-p", str(port), *auth, *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.mark.parametrize("role", ["cache", "store"])
def test_redis_boots_with_rendered_config_and_reports_the_plan(role):
    plan = plan_for("redis", "7", "1Gi", "ssd", {"role": role})
    tuning = plan.tuning["db"]
    with running_redis(config_files(plan, "db")["redis.conf"]) as port:
        reply = redis_cli(port, "CONFIG", "GET", "maxmemory*")
        got = dict(zip(reply[::2], reply[1::2], strict=True))
        planned = {
            s.name: str(s.number if s.number is not None and s.name == "maxmemory" else s.value)
            for s in tuning.settings
            if s.name.startswith("maxmemory")
        }
        assert {key: got[key] for key in planned} == planned
        assert redis_cli(port, "CONFIG", "GET", "appendonly")[1] == ("yes" if role == "store" else "no")


# --- the compose entry is honest -------------------------------------------------------------------
# Each booting engine is started the way the compose entry runs its image (the contract between
# the compose and datastores targets): the same rendered file at the place the image reads it,
# the same server flags, the application user created from the wiring contract's secret file;
# then a client connects over TCP to 127.0.0.1 as DB_USER with the password from that file.

HONEST_BLUEPRINT = {
    "version": 1,
    "project": "shop",
    "regions": {"home": {"jurisdiction": "DE"}},
    "hosts": [{"name": "box-1", "region": "home", "vcpu": 8, "memory": "32Gi", "storage": "nvme"}],
    "services": {
        "orders": {"image": "example/orders:1.0", "port": 8080, "datastore": "orders-db"},
        "ledger": {"image": "example/ledger:1.0", "port": 8080, "datastore": "ledger-db"},
        "sessions": {"image": "example/sessions:1.0", "port": 8080, "datastore": "sessions-cache"},
    },
    "datastores": {
        "orders-db": {"engine": "mariadb", "version": "10.11", "memory": "1Gi", "max_connections": 60},
        "ledger-db": {"engine": "postgres", "version": "15", "memory": "1Gi"},
        "sessions-cache": {"engine": "redis", "version": "7", "memory": "256Mi", "role": "cache"},
    },
    "compose": {"host": "box-1"},
}


@pytest.fixture(scope="module")
def rendered_output():
    """`msgen render` into an output folder, plus the secrets folder the operator provides."""
    import yaml

    from msgen.api import RenderRequest, render

    work = Path(tempfile.mkdtemp(prefix="msgen-honest-"))
    work.chmod(0o755)
    try:
        blueprint = work / "blueprint.yaml"
        blueprint.write_text(yaml.safe_dump(HONEST_BLUEPRINT), encoding="utf-8")
        outcome = render(RenderRequest(blueprint, work / "out"))
        assert outcome.wrote, [f.message for f in outcome.analysis.findings]
        for store in ("orders-db", "ledger-db", "sessions-cache"):
            secret = work / "out" / "secrets" / store / "password"
            secret.parent.mkdir(parents=True)
            secret.write_text(f"pw-{store}-'\"$x", encoding="utf-8")  # quotes and $ must survive
            secret.chmod(0o644)
        subprocess.run(["chmod", "-R", "a+rX", str(work)], check=True)
        yield {"out": work / "out", "plan": outcome.analysis.plan}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def wiring(plan, service: str) -> dict[str, str]:
    return dict(plan.service(service).env)


def test_mariadb_compose_entry_is_honest(mariadb_base, rendered_output):
    out, plan = rendered_output["out"], rendered_output["plan"]
    env = wiring(plan, "orders")
    password = (out / "secrets" / "orders-db" / "password").read_text(encoding="utf-8")
    work = mariadb_base["root"] / "honest"
    shutil.copytree(mariadb_base["base"], work / "data", symlinks=True)
    # the image reads /etc/mysql/my.cnf, which includes /etc/mysql/conf.d/ where compose mounts msgen.cnf
    (work / "conf.d").mkdir()
    shutil.copy(out / "datastores" / "orders-db" / "my.cnf", work / "conf.d" / "msgen.cnf")
    (work / "my.cnf").write_text(f"[mysqld]\n!includedir {work / 'conf.d'}\n", encoding="utf-8")
    subprocess.run(["chown", "-R", "mysql:mysql", str(work)], check=True)
    socket, port = work / "mysqld.sock", free_port()
    process = start(
        [
            str(mariadb_base["mariadbd"]), f"--defaults-file={work / 'my.cnf'}", "--user=mysql", f"--datadir={work / 'data'}",
            f"--socket={socket}", f"--pid-file={work / 'pid'}", f"--log-error={work / 'error.log'}", f"--port={port}",
            "--bind-address=127.0.0.1",
        ],
        work / "console.log",
    )  # fmt: skip
    client = [str(mariadb_base["client"]), "--no-defaults", "-N", "-B"]
    try:
        wait_for_mariadb(mariadb_base["client"], socket, process, work / "error.log")
        # what the image's entrypoint does with MARIADB_USER / MARIADB_PASSWORD_FILE / MARIADB_DATABASE
        setup = (
            f"CREATE DATABASE `{env['DB_NAME']}`; CREATE USER '{env['DB_USER']}'@'%' IDENTIFIED BY {sql_string(password)}; "
            f"GRANT ALL ON `{env['DB_NAME']}`.* TO '{env['DB_USER']}'@'%';"
        )
        subprocess.run([*client, "-uroot", f"--socket={socket}", "-e", setup], check=True, capture_output=True, timeout=30)
        result = subprocess.run(
            [*client, "--protocol=TCP", "-h", "127.0.0.1", "-P", str(port), "-u", env["DB_USER"], env["DB_NAME"],
             "-e", "SELECT CURRENT_USER(), DATABASE(), @@innodb_buffer_pool_size"],
            capture_output=True, text=True, timeout=30, env={**os.environ, "MYSQL_PWD": password},
        )  # fmt: skip
    finally:
        stop(process)
    assert result.returncode == 0, result.stderr
    user, database, pool = result.stdout.split()
    assert (user, database) == (f"{env['DB_USER']}@%", env["DB_NAME"])
    assert int(pool) == plan.tuning["orders-db"].get("innodb_buffer_pool_size").number
    assert int(env["DB_PORT"]) == 3306


def sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def test_postgres_compose_entry_is_honest(rendered_output):
    out, plan = rendered_output["out"], rendered_output["plan"]
    env = wiring(plan, "ledger")
    secret = out / "secrets" / "ledger-db" / "password"
    initdb, postgres = postgres_bin("initdb"), postgres_bin("postgres")
    with owned_dir("postgres") as work:
        data = work / "data"
        # the image's pg_hba: trust on the socket, scram-sha-256 over TCP
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(initdb), "-D", str(data), "-U", "postgres", "--auth-local=trust",
             "--auth-host=scram-sha-256", "--no-sync"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        port = free_port()
        process = start(
            ["runuser", "-u", "postgres", "--", str(postgres), "-D", str(data),
             "-c", f"config_file={out / 'datastores' / 'ledger-db' / 'postgresql.conf'}",
             "-p", str(port), "-k", str(work), "-c", "listen_addresses=127.0.0.1"],
            work / "postgres.log",
        )  # fmt: skip
        try:
            wait_for_postgres(work, port, process, work / "postgres.log")
            # the image's entrypoint runs /docker-entrypoint-initdb.d/*.sh as postgres with POSTGRES_USER set
            script = out / "datastores" / "ledger-db" / "initdb" / "10-app-user.sh"
            init_env = {
                **os.environ,
                "POSTGRES_USER": "postgres",
                "PGHOST": str(work),
                "PGPORT": str(port),
                "MSGEN_DB_PASSWORD_FILE": str(secret),
            }
            init = subprocess.run(
                ["runuser", "-u", "postgres", "--preserve-environment", "--", "sh", str(script)],
                env=init_env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert init.returncode == 0, init.stderr
            server = {"port": port, "socket_dir": work}
            password = secret.read_text(encoding="utf-8")
            as_app = functools.partial(psql, server, user=env["DB_USER"], host="127.0.0.1", password=password, db=env["DB_NAME"])
            assert as_app("SELECT current_user || ' ' || current_database()") == f"{env['DB_USER']} {env['DB_NAME']}"
            # the init script created pg_stat_statements in the app database: the app user reads its own queries
            assert as_app("SELECT count(*) > 0 FROM pg_stat_statements WHERE query LIKE 'SELECT current_user%'") == "t"
            assert pg_number(psql(server, "SHOW shared_buffers")) == plan.tuning["ledger-db"].get("shared_buffers").number
        finally:
            stop(process)
    assert int(env["DB_PORT"]) == 5432


def test_redis_compose_entry_is_honest(rendered_output):
    out, plan = rendered_output["out"], rendered_output["plan"]
    env = wiring(plan, "sessions")
    password = (out / "secrets" / "sessions-cache" / "password").read_text(encoding="utf-8")
    conf = (out / "datastores" / "sessions-cache" / "redis.conf").read_text(encoding="utf-8")
    # the entry starts redis-server with the mounted redis.conf and the password from the secret file
    with running_redis(conf, password) as port:
        assert redis_cli(port, "PING", password=password) == ["PONG"]
        assert redis_cli(port, "CONFIG", "GET", "maxmemory", password=password)[1] == str(
            plan.tuning["sessions-cache"].get("maxmemory").number
        )
        denied = subprocess.run(
            [str(debian_tool("redis-cli", "redis-tools")), "-h", "127.0.0.1", "-p", str(port), "GET", "x"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "NOAUTH" in denied.stdout + denied.stderr
    assert int(env["DB_PORT"]) == 6379
