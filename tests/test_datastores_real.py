"""The rendered datastore configs boot the real servers: MariaDB 10.11,
PostgreSQL 15 and Redis 7 start with them as their non-root users, in temp dirs, on free
loopback ports, and report exactly the values the plan derived."""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from realservers import (
    ADMIN_PASSWORD,
    checked,
    init_postgres,
    make_dirs_as,
    mariadb_overrides,
    owned_dir,
    pg_milliseconds,
    pg_number,
    plan_for,
    postgres_overrides,
    redis_cli,
    run_script,
    running_mariadb,
    running_postgres,
    running_postgres_on,
    running_redis,
    sql_string,
    two_datastores_on_a_host_with_iops,
    write_as,
)
from realtools import debian_tool

from msgen.targets.datastores import config_files

pytestmark = pytest.mark.realtool


# --- MariaDB -------------------------------------------------------------------------------------

MARIADB_KEYS = (
    "innodb_buffer_pool_size", "innodb_io_capacity", "innodb_io_capacity_max", "innodb_flush_neighbors", "max_connections",
    "innodb_log_file_size", "sync_binlog", "binlog_expire_logs_seconds",
)  # fmt: skip
# text the server reports as it is: the character set, the collation, the slow log (1 = ON) and
# its threshold, the statement limit's init_connect, and the binary log (1 = ON) and its format
MARIADB_TEXT_KEYS = ("character_set_server", "collation_server", "slow_query_log", "long_query_time", "init_connect", "log_bin", "binlog_format")


def boot_mariadb(base: dict, my_cnf: str, name: str) -> dict[str, int | str]:
    """Boot mariadbd with the rendered my.cnf (plus only datadir, socket, pid, log, a loopback
    port and the binary log moved into a temp backup dir on the command line) and return what
    the server reports."""
    work = base["root"] / name
    try:
        backup = work / "backup"
        make_dirs_as("mysql", work, backup / "binlog")
        config = write_as(work / "my.cnf", my_cnf, "mysql")
        with running_mariadb(base, work, config, mariadb_overrides(my_cnf, backup)) as server:
            # tab-separated: init_connect holds spaces
            values = server.sql("SELECT " + ", ".join(f"@@{key}" for key in (*MARIADB_KEYS, *MARIADB_TEXT_KEYS))).split("\t")
    finally:
        shutil.rmtree(work, ignore_errors=True)
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
    # the statement limit for logins without administrative rights, as planned (quotes are my.cnf's)
    assert reported["init_connect"] == tuning.get("init_connect").value.strip("'")
    # point-in-time recovery (the default backup): every commit in a row-based binary log, synced
    assert (reported["log_bin"], reported["binlog_format"]) == ("1", "ROW")
    assert (reported["sync_binlog"], reported["binlog_expire_logs_seconds"]) == (1, plan.datastore("db").backup.log_retention_seconds)
    assert tuning.peak <= tuning.limit


def test_mariadb_io_capacity_is_its_share_of_the_hosts_iops(mariadb_base):
    plan = two_datastores_on_a_host_with_iops()
    tuning = plan.tuning["db"]
    capacity = tuning.get("innodb_io_capacity")
    # 40000 IOPS over 2 datastores and Prometheus' volume: 13333 each, half of it for writes
    assert "iops 40000 shared by 2 datastore(s) and 1 monitoring volume(s), 13333 each" in capacity.why
    assert (capacity.number, tuning.get("innodb_io_capacity_max").number) == (6666, 13332)
    reported = boot_mariadb(mariadb_base, config_files(plan, "db")["my.cnf"], "iops-share")
    assert (reported["innodb_io_capacity"], reported["innodb_io_capacity_max"]) == (6666, 13332)


def boolean_word(value: str) -> str:
    """`--help --verbose` prints a boolean as TRUE/FALSE where my.cnf says ON/OFF."""
    word = value.lower()
    return {"on": "true", "off": "false"}.get(word, word)


def help_values(output: str) -> dict[str, str]:
    """Each `name  value` line of the table; a value may hold spaces (init-connect)."""
    values = {}
    for line in output.splitlines():
        parts = line.split(maxsplit=1)
        if len(parts) == 2:
            values[parts[0].replace("-", "_")] = parts[1].strip()
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
            # my.cnf quotes init_connect's statement; the table shows it bare
            assert boolean_word(effective[setting.name]) == boolean_word(setting.value.strip("'")), setting.name


# --- PostgreSQL ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("memory", "storage"), [("2Gi", "nvme"), ("8Gi", "hdd")])
def test_postgres_boots_with_rendered_config_and_reports_the_plan(memory, storage):
    plan = plan_for("postgres", "15", memory, storage)
    tuning = plan.tuning["db"]
    files = config_files(plan, "db")
    with running_postgres(files["postgresql.conf"], files=files) as server:
        for name in ("shared_buffers", "effective_cache_size", "work_mem", "random_page_cost", "maintenance_work_mem", "wal_buffers"):
            shown = server.sql(f"SHOW {name}")
            assert pg_number(shown) == pytest.approx(tuning.get(name).number), (name, shown)
        assert server.sql("SHOW shared_preload_libraries") == "pg_stat_statements"
        assert server.sql("SHOW log_min_duration_statement") == "1s"
        assert server.sql("SHOW idle_in_transaction_session_timeout") == "1min"
        # point-in-time recovery (the default backup): each segment archived, at least every minute
        assert (server.sql("SHOW archive_mode"), server.sql("SHOW archive_timeout")) == ("on", "1min")
        assert pg_milliseconds(server.sql("SHOW archive_timeout")) == tuning.get("archive_timeout").number * 1000
        # the one override of hba_file: the rendered pg_hba.conf, copied next to the config
        assert server.sql("SHOW hba_file") == str(server.work / "pg_hba.conf")
        assert server.sql("SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL") == "0"


# --- Redis --------------------------------------------------------------------------------------


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
        assert int(redis_cli(port, "CONFIG", "GET", "maxclients")[1]) == tuning.get("maxclients").number


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
    my_cnf = (out / "datastores" / "orders-db" / "my.cnf").read_text(encoding="utf-8")
    # the image reads /etc/mysql/my.cnf, which includes /etc/mysql/conf.d/ where compose mounts msgen.cnf
    write_as(work / "conf.d" / "msgen.cnf", my_cnf, "mysql")
    config = write_as(work / "my.cnf", f"[mysqld]\n!includedir {work / 'conf.d'}\n", "mysql")
    make_dirs_as("mysql", work / "backup" / "binlog")
    with running_mariadb(mariadb_base, work, config, mariadb_overrides(my_cnf, work / "backup")) as server:
        # what the image's entrypoint does with MARIADB_USER / MARIADB_PASSWORD_FILE / MARIADB_DATABASE
        server.sql(
            f"CREATE DATABASE `{env['DB_NAME']}`; CREATE USER '{env['DB_USER']}'@'%' IDENTIFIED BY {sql_string(password)}; "
            f"GRANT ALL ON `{env['DB_NAME']}`.* TO '{env['DB_USER']}'@'%';"
        )
        result = server.run(
            "SELECT CURRENT_USER(), DATABASE(), @@innodb_buffer_pool_size, @@max_statement_time",
            user=env["DB_USER"], password=password, tcp=True, database=env["DB_NAME"],
        )  # fmt: skip
        root_limit = server.sql("SELECT @@max_statement_time")
    assert result.returncode == 0, result.stderr
    user, database, pool, limit = result.stdout.split()
    assert (user, database) == (f"{env['DB_USER']}@%", env["DB_NAME"])
    assert int(pool) == plan.tuning["orders-db"].get("innodb_buffer_pool_size").number
    # init_connect gives the application's sessions the planned limit; root (backups, restores) has none
    assert float(limit) == plan.datastore("orders-db").statement_timeout_ms / 1000 > 0
    assert float(root_limit) == 0
    assert int(env["DB_PORT"]) == 3306


def test_postgres_compose_entry_is_honest(rendered_output):
    out, plan = rendered_output["out"], rendered_output["plan"]
    env = wiring(plan, "ledger")
    secret = out / "secrets" / "ledger-db" / "password"
    rendered = out / "datastores" / "ledger-db"
    files = {name: (rendered / name).read_text(encoding="utf-8") for name in ("postgresql.conf", "pg_hba.conf")}
    with owned_dir("postgres") as work:
        data = work / "data"
        init_postgres(data, write_as(work / "admin-password", ADMIN_PASSWORD, "postgres", 0o600))
        make_dirs_as("postgres", work / "backup" / "wal")
        overrides = postgres_overrides(files, work, work / "backup")
        with running_postgres_on(work, data, rendered / "postgresql.conf", overrides) as server:
            # the image's entrypoint runs /docker-entrypoint-initdb.d/*.sh as postgres with POSTGRES_USER set
            init_env = {"POSTGRES_USER": "postgres", "PGHOST": str(work), "PGPORT": str(server.port), "MSGEN_DB_PASSWORD_FILE": str(secret)}
            for script in ("10-app-user.sh", "20-users.sh"):
                checked(run_script(rendered / "initdb" / script, user="postgres", env=init_env))
            password = secret.read_text(encoding="utf-8")
            as_app = functools.partial(server.sql, user=env["DB_USER"], host="127.0.0.1", password=password, db=env["DB_NAME"])
            assert as_app("SELECT current_user || ' ' || current_database()") == f"{env['DB_USER']} {env['DB_NAME']}"
            # the init script created pg_stat_statements in the app database: the app user reads its own queries
            assert as_app("SELECT count(*) > 0 FROM pg_stat_statements WHERE query LIKE 'SELECT current_user%'") == "t"
            # 20-users.sh gave the application role its statement limit; the superuser has none
            assert pg_milliseconds(as_app("SHOW statement_timeout")) == plan.datastore("ledger-db").statement_timeout_ms > 0
            assert server.sql("SHOW statement_timeout") == "0"
            assert pg_number(server.sql("SHOW shared_buffers")) == plan.tuning["ledger-db"].get("shared_buffers").number
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
