"""The rendered initdb/20-users.sh on the real servers: the exporter's own login with exactly the
grants the exporters document (mysqld_exporter: PROCESS, REPLICATION CLIENT, SELECT; MariaDB
10.5+ names REPLICATION CLIENT "BINLOG MONITOR"; postgres_exporter: pg_monitor) and at most
EXPORTER_CONNECTIONS connections, on a fresh data dir as the image's entrypoint runs it, and on
one from before (the exporter missing, or holding more) run twice: the same exact result."""

from __future__ import annotations

import re
import subprocess

import pytest
from realservers import (
    ADMIN_PASSWORD,
    checked,
    init_postgres,
    make_dirs_as,
    mariadb_entrypoint_users,
    mariadb_overrides,
    owned_dir,
    pg_milliseconds,
    postgres_overrides,
    run_script,
    running_mariadb,
    running_postgres_on,
    two_datastores_on_a_host_with_iops,
    write_as,
)
from realtools import wait_until_ready

from msgen.contract import EXPORTER_USER
from msgen.plan.services import EXPORTER_CONNECTIONS
from msgen.targets.datastores import config_files

pytestmark = pytest.mark.realtool
APP_PASSWORD = "app-'\"\\$y"
EXPORTER_PASSWORD = "exp-'\"\\$w"
# what mysqld_exporter documents, as MariaDB 10.11 shows it
MARIADB_EXPORTER_GRANTS = {("*.*", frozenset({"PROCESS", "BINLOG MONITOR", "SELECT"}))}


@pytest.fixture(scope="module")
def scraped_plan():
    plan = two_datastores_on_a_host_with_iops()
    assert plan.datastore("db").scraped and plan.datastore("pg").scraped
    return plan


# --- MariaDB -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mariadb_scraped(mariadb_base, scraped_plan):
    """A fresh data dir: the entrypoint's users, then 20-users.sh as the entrypoint runs it
    (as mysql, root's password from its secret file, the client on the server's socket)."""
    files = config_files(scraped_plan, "db")
    store = scraped_plan.datastore("db")
    work = mariadb_base["root"] / "scraped"
    make_dirs_as("mysql", work, work / "backup" / "binlog")
    write_as(work / "20-users.sh", files["initdb/20-users.sh"], "mysql")
    config = write_as(work / "my.cnf", files["my.cnf"], "mysql")
    with running_mariadb(mariadb_base, work, config, mariadb_overrides(files["my.cnf"], work / "backup")) as server:
        mariadb_entrypoint_users(server, ADMIN_PASSWORD, store.db_name, store.db_user, APP_PASSWORD)
        env = {
            "MYSQL_UNIX_PORT": str(server.socket),
            "MSGEN_ADMIN_PASSWORD_FILE": str(write_as(work / "admin-password", ADMIN_PASSWORD, "mysql", 0o600)),
            "MSGEN_EXPORTER_PASSWORD_FILE": str(write_as(work / "exporter-password", EXPORTER_PASSWORD, "mysql", 0o600)),
        }

        def users_script() -> subprocess.CompletedProcess:
            return run_script(work / "20-users.sh", user="mysql", env=env)

        server.users_script = users_script
        server.store = store
        checked(users_script())
        yield server


def mariadb_exporter_grants(server) -> tuple[set[tuple[str, frozenset[str]]], set[str]]:
    """SHOW GRANTS for the exporter, parsed: {(on what, privileges)} and the WITH options."""
    lines = server.sql(f"SHOW GRANTS FOR '{EXPORTER_USER}'@'%'", password=ADMIN_PASSWORD).splitlines()
    grants, options = set(), set()
    for line in lines:
        match = re.fullmatch(rf"GRANT (.+?) ON (\S+) TO `{EXPORTER_USER}`@`%`(?: IDENTIFIED BY PASSWORD '[^']*')?(?: WITH (.+))?", line)
        assert match, line
        grants.add((match.group(2), frozenset(p.strip() for p in match.group(1).split(","))))
        options.update(re.findall(r"[A-Z_]+ [0-9]+|GRANT OPTION", match.group(3) or ""))
    return grants, options


def assert_mariadb_exporter_is_documented(server) -> None:
    login = server.run("SELECT CURRENT_USER()", user=EXPORTER_USER, password=EXPORTER_PASSWORD, tcp=True)
    assert login.returncode == 0, login.stderr
    assert login.stdout.strip() == f"{EXPORTER_USER}@%"
    assert mariadb_exporter_grants(server) == (MARIADB_EXPORTER_GRANTS, {f"MAX_USER_CONNECTIONS {EXPORTER_CONNECTIONS}"})


def test_mariadb_exporter_has_exactly_the_documented_grants(mariadb_scraped):
    assert_mariadb_exporter_is_documented(mariadb_scraped)


@pytest.mark.parametrize("before", ["missing", "over-granted"])
def test_mariadb_users_script_brings_an_existing_data_dir_to_the_documented_grants(mariadb_scraped, before):
    server, db = mariadb_scraped, mariadb_scraped.store.db_name
    setup = f"DROP USER IF EXISTS '{EXPORTER_USER}'@'%';"
    if before == "over-granted":
        setup += (
            f" CREATE USER '{EXPORTER_USER}'@'%' IDENTIFIED BY 'old'; GRANT ALL ON `{db}`.* TO '{EXPORTER_USER}'@'%';"
            f" GRANT SUPER, RELOAD ON *.* TO '{EXPORTER_USER}'@'%' WITH GRANT OPTION;"
        )
    server.sql(setup, password=ADMIN_PASSWORD)
    first = checked(server.users_script())
    assert_mariadb_exporter_is_documented(server)
    shown = server.sql(f"SHOW GRANTS FOR '{EXPORTER_USER}'@'%'", password=ADMIN_PASSWORD)
    second = checked(server.users_script())
    assert server.sql(f"SHOW GRANTS FOR '{EXPORTER_USER}'@'%'", password=ADMIN_PASSWORD) == shown
    assert_mariadb_exporter_is_documented(server)
    assert (first.stderr, second.stderr) == ("", "")


def test_mariadb_refuses_the_exporter_a_fourth_connection(mariadb_scraped):
    server = mariadb_scraped
    login = [str(server.client), "--no-defaults", "-N", "-B", "--protocol=TCP", "-h", "127.0.0.1", "-P", str(server.port), "-u", EXPORTER_USER]
    env = {"MYSQL_PWD": EXPORTER_PASSWORD, "PATH": "/usr/bin:/bin"}
    # each client logs in and then waits for statements on its standard input
    held = [subprocess.Popen(login, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) for _ in range(EXPORTER_CONNECTIONS)]
    try:
        count = f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '{EXPORTER_USER}'"

        def connected() -> tuple[bool, str]:
            answer = server.sql(count, password=ADMIN_PASSWORD)
            return answer == str(EXPORTER_CONNECTIONS), answer

        wait_until_ready(connected, server.process, "the exporter's connections", server.work / "error.log", timeout=30)
        fourth = subprocess.run([*login, "-e", "SELECT 1"], capture_output=True, text=True, timeout=30, env=env)
    finally:
        for client in held:
            client.communicate(timeout=30)  # end of input: each logs out
    assert fourth.returncode != 0
    assert "max_user_connections" in fourth.stderr, fourth.stderr
    assert all(client.returncode == 0 for client in held)


# --- PostgreSQL ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_scraped(scraped_plan):
    """A fresh data dir as the image initialises it, then its init scripts as it runs them
    (as postgres, psql over the socket)."""
    files = config_files(scraped_plan, "pg")
    with owned_dir("postgres") as work:
        data = work / "data"
        init_postgres(data, write_as(work / "admin-password", ADMIN_PASSWORD, "postgres", 0o600))
        for name in ("initdb/10-app-user.sh", "initdb/20-users.sh"):
            write_as(work / name, files[name], "postgres")
        config = write_as(work / "postgresql.conf", files["postgresql.conf"], "postgres")
        make_dirs_as("postgres", work / "backup" / "wal")
        with running_postgres_on(work, data, config, postgres_overrides(files, work, work / "backup")) as server:
            env = {
                "POSTGRES_USER": "postgres",
                "PGHOST": str(work),
                "PGPORT": str(server.port),
                "MSGEN_DB_PASSWORD_FILE": str(write_as(work / "app-password", APP_PASSWORD, "postgres", 0o600)),
                "MSGEN_EXPORTER_PASSWORD_FILE": str(write_as(work / "exporter-password", EXPORTER_PASSWORD, "postgres", 0o600)),
            }

            def users_script() -> subprocess.CompletedProcess:
                return run_script(work / "initdb" / "20-users.sh", user="postgres", env=env)

            checked(run_script(work / "initdb" / "10-app-user.sh", user="postgres", env=env))
            checked(users_script())
            server.users_script = users_script
            server.store = scraped_plan.datastore("pg")
            yield server


EXPORTER_ROLE = (
    "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolconnlimit "
    f"FROM pg_roles WHERE rolname = '{EXPORTER_USER}'"
)
MEMBERSHIPS = (
    "SELECT string_agg(r.rolname, ',' ORDER BY r.rolname) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
    f"WHERE m.member = '{EXPORTER_USER}'::regrole"
)
DATABASE_GRANTS = (
    "SELECT count(*) FROM pg_database d, aclexplode(d.datacl) a "
    f"WHERE a.grantee = '{EXPORTER_USER}'::regrole"
)


def assert_postgres_exporter_is_documented(server) -> None:
    assert server.sql("SELECT current_user", user=EXPORTER_USER, host="127.0.0.1", password=EXPORTER_PASSWORD) == EXPORTER_USER
    # it logs in; it is no superuser and creates no database, role or replication; it bypasses no row security
    assert server.sql(EXPORTER_ROLE) == f"t|f|f|f|f|f|{EXPORTER_CONNECTIONS}"
    assert server.sql(MEMBERSHIPS) == "pg_monitor"
    assert server.sql(DATABASE_GRANTS) == "0"


def test_postgres_exporter_has_exactly_the_documented_role(postgres_scraped):
    assert_postgres_exporter_is_documented(postgres_scraped)


@pytest.mark.parametrize("before", ["missing", "over-granted"])
def test_postgres_users_script_brings_an_existing_data_dir_to_the_documented_role(postgres_scraped, before):
    server, db = postgres_scraped, postgres_scraped.store.db_name
    server.sql(f"DROP OWNED BY {EXPORTER_USER}; DROP ROLE {EXPORTER_USER}")
    if before == "over-granted":
        server.sql(
            f"CREATE ROLE {EXPORTER_USER} LOGIN SUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS CONNECTION LIMIT 50 PASSWORD 'old'; "
            f"GRANT pg_read_all_data, pg_write_all_data TO {EXPORTER_USER}; GRANT ALL ON DATABASE {db} TO {EXPORTER_USER}"
        )
    checked(server.users_script())
    assert_postgres_exporter_is_documented(server)
    checked(server.users_script())
    assert_postgres_exporter_is_documented(server)


def test_postgres_app_role_gets_its_statement_limit(postgres_scraped):
    server, store = postgres_scraped, postgres_scraped.store
    shown = server.sql("SHOW statement_timeout", user=store.db_user, host="127.0.0.1", password=APP_PASSWORD, db=store.db_name)
    assert pg_milliseconds(shown) == store.statement_timeout_ms
