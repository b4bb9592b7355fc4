"""Backups as msgen plans them: cron schedules and their longest gap, the recovery point, the
backup container compose runs, the Backups table of `msgen plan`, the IOPS a host's
datastores share, and the placement finding (real backups and restores: test_backups_real.py)."""

from __future__ import annotations

import datetime
import itertools

import pytest
import yaml
from typer.testing import CliRunner

from msgen.api import analyse
from msgen.cli import app
from msgen.cron import Schedule
from msgen.model.blueprint import Blueprint
from msgen.plan import build_plan
from msgen.targets.compose import compose_document
from msgen.targets.datastores import config_files


def blueprint(datastores: dict, hosts: list | None = None, observability: dict | None = None, compose_host: str = "box-1") -> dict:
    services = {f"svc-{name}": {"image": "example/app:1.0", "port": 8080, "datastore": name} for name in datastores}
    data = {
        "version": 1,
        "project": "shop",
        "regions": {"home": {"jurisdiction": "DE"}},
        "hosts": hosts or [{"name": "box-1", "region": "home", "vcpu": 16, "memory": "64Gi", "storage": "nvme"}],
        "services": services,
        "datastores": datastores,
        "compose": {"host": compose_host},
    }
    if observability is not None:
        data["observability"] = observability
    return data


def plan_of(data: dict):
    return build_plan(Blueprint.model_validate(data, strict=False))


# --- cron ----------------------------------------------------------------------------------


def runs(schedule: Schedule, start: datetime.datetime, minutes: int) -> list[datetime.datetime]:
    """Every run in `minutes` minutes from `start`, by brute force over each minute."""
    found = []
    for offset in range(minutes):
        moment = start + datetime.timedelta(minutes=offset)
        if (
            moment.minute in schedule.minutes
            and moment.hour in schedule.hours
            and schedule.runs_on(moment.month, moment.day, moment.isoweekday() % 7)
        ):
            found.append(moment)
    return found


@pytest.mark.parametrize(
    ("text", "gap"),
    [
        ("0 3 * * *", 1440),
        ("*/15 * * * *", 15),
        ("0 */6 * * *", 360),
        ("0 3 * * 1-5", 3 * 1440),  # Friday 03:00 to Monday 03:00
        ("@weekly", 7 * 1440),
        ("30 1 1,15 * mon", None),
        ("0 0,12 * * sun", None),
    ],
)
def test_longest_gap_matches_the_runs_counted_minute_by_minute(text, gap):
    schedule = Schedule.parse(text)
    start = datetime.datetime(2025, 1, 1)
    moments = runs(schedule, start, 70 * 1440)
    brute = max(int((later - earlier).total_seconds() // 60) for earlier, later in itertools.pairwise(moments))
    assert schedule.longest_gap_minutes() >= brute
    if gap is not None:
        assert schedule.longest_gap_minutes() == gap == brute


def test_both_day_fields_restricted_run_on_either():
    schedule = Schedule.parse("0 0 13 * fri")
    assert schedule.runs_on(1, 13, 2)  # the 13th, a Tuesday
    assert schedule.runs_on(1, 10, 5)  # a Friday, the 10th
    assert not schedule.runs_on(1, 11, 6)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("0 3 * *", "five fields"),
        ("60 * * * *", "outside the minute field's range 0-59"),
        ("0 0 31 2 *", "never runs"),
        ("0 0 * * 8", "outside the day of week field's range"),
        ("*/0 * * * *", "at least 1"),
        ("@often", "five fields"),
    ],
)
def test_bad_schedules_are_refused_at_load_with_their_place(write_blueprint, text, words):
    path = write_blueprint(
        f"""
        version: 1
        project: shop
        services:
          web: {{image: example/web:1.0, port: 8080, datastore: db}}
        datastores:
          db:
            engine: postgres
            version: "16"
            backup: {{schedule: "{text}"}}
        """
    )
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert words in result.output and "blueprint.yaml:10:" in result.output
    assert "Traceback" not in result.output


# --- the backup plan -------------------------------------------------------------------------


def test_defaults_back_up_sql_engines_and_redis_stores_but_not_caches():
    plan = plan_of(
        blueprint(
            {
                "pg": {"engine": "postgres", "version": "16"},
                "my": {"engine": "mariadb", "version": "11.4"},
                "store": {"engine": "redis", "version": "7", "role": "store"},
                "cache": {"engine": "redis", "version": "7", "role": "cache"},
            }
        )
    )
    backups = {store.name: store.backup for store in plan.datastores}
    assert backups["cache"] is None
    assert (backups["pg"].rpo_minutes, backups["my"].rpo_minutes, backups["store"].rpo_minutes) == (1, 0, 1440)
    assert backups["pg"].point_in_time and backups["my"].point_in_time and not backups["store"].point_in_time
    assert backups["my"].log_retention_seconds == 7 * 86400 + 86400


def test_without_point_in_time_the_recovery_point_is_the_longest_gap():
    plan = plan_of(
        blueprint({"db": {"engine": "mysql", "version": "8.4", "backup": {"schedule": "0 2 * * 1-5", "point_in_time": False}}})
    )
    backup = plan.datastore("db").backup
    assert (backup.rpo_minutes, backup.point_in_time) == (3 * 1440, False)
    # no binary log at all: MySQL's default one would fill the data volume for 30 days
    assert plan.tuning["db"].has("skip_log_bin") and "skip_log_bin\n" in config_files(plan, "db")["my.cnf"]
    assert not plan.tuning["db"].has("log_bin")


def test_redis_point_in_time_is_refused(write_blueprint):
    path = write_blueprint(
        """
        version: 1
        project: shop
        services:
          web: {image: example/web:1.0, port: 8080, datastore: db}
        datastores:
          db: {engine: redis, version: "7", backup: {point_in_time: true}}
        """
    )
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "point_in_time applies to SQL engines" in result.output


def test_plan_shows_schedule_retention_location_and_recovery_point(write_blueprint):
    data = blueprint(
        {
            "orders": {"engine": "postgres", "version": "16", "backup": {"schedule": "0 */6 * * *", "retention": "14d", "size": "50Gi"}},
            "cache": {"engine": "redis", "version": "7", "role": "cache"},
            "ledger": {"engine": "mariadb", "version": "10.11", "backup": {"path": "/mnt/nas/ledger", "point_in_time": False}},
        }
    )
    path = write_blueprint(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["plan", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    import json

    section = next(section for section in json.loads(result.output) if section["title"] == "Backups")
    rows = {row["datastore"]: row for row in section["rows"]}
    assert rows["orders"]["schedule"] == "0 */6 * * * UTC" and rows["orders"]["retention"] == "14d"
    assert rows["orders"]["location"].startswith("volume orders-backup (50Gi") and rows["orders"]["RPO"] == "1m"
    assert rows["orders"]["point in time"] == "WAL archive"
    assert rows["ledger"]["location"].startswith("path /mnt/nas/ledger") and rows["ledger"]["RPO"] == "1d"
    assert rows["cache"]["schedule"] == "off" and "rebuilt from its source" in rows["cache"]["why"]


# --- compose ---------------------------------------------------------------------------------


def test_compose_runs_one_backup_container_per_backed_up_datastore():
    data = blueprint(
        {
            "pg": {"engine": "postgres", "version": "16"},
            "cache": {"engine": "redis", "version": "7", "role": "cache"},
            "kv": {"engine": "redis", "version": "7", "backup": {"path": "/srv/backups/kv"}},
        },
        observability={"prometheus": {}},
    )
    document = compose_document(plan_of(data))
    services = document["services"]
    assert "cache-backup" not in services
    backup = services["pg-backup"]
    assert backup["image"] == services["pg"]["image"] and backup["user"] == "999:999"
    assert backup["entrypoint"] == ["sh", "/msgen/backup.sh"] and backup["command"] == ["schedule"]
    assert backup["depends_on"] == {"pg": {"condition": "service_healthy"}}
    assert backup["networks"] == ["backup_pg"] and "backup_pg" in services["pg"]["networks"]
    assert backup["deploy"]["resources"]["limits"] and backup["read_only"] is True
    assert backup["healthcheck"]["test"] == ["CMD", "sh", "/msgen/backup.sh", "health"]
    assert [secret["target"] for secret in backup["secrets"]] == ["admin-password"]
    # the server writes its WAL archive to the same location the backups go to
    assert "pg-backup:/backup" in services["pg"]["volumes"] and "pg-backup:/backup" in backup["volumes"]
    assert "install -d -o 999 -g 999 /backup/base /backup/wal && exec docker-entrypoint.sh" in services["pg"]["entrypoint"][2]
    assert services["pg"]["command"][0] == "postgres"
    # a host path replaces the named volume
    assert "/srv/backups/kv:/backup" in services["kv-backup"]["volumes"] and "kv-backup" not in document["volumes"]
    assert [secret["target"] for secret in services["kv-backup"]["secrets"]] == ["db-password"]
    # the exporter of a SQL engine logs in as its own user, with its own secret only
    exporter = services["pg-exporter"]
    assert exporter["secrets"] == [{"source": "pg-exporter-password", "target": "exporter-password"}]
    assert dict(exporter["environment"])["DATA_SOURCE_USER"] == "exporter"
    assert document["secrets"]["pg-exporter-password"] == {"file": "../secrets/pg/exporter-password"}


def test_backups_can_be_turned_off():
    data = blueprint({"pg": {"engine": "postgres", "version": "16", "backup": {"enabled": False}}})
    plan = plan_of(data)
    services = compose_document(plan)["services"]
    assert "pg-backup" not in services and "entrypoint" not in services["pg"]
    assert not plan.tuning["pg"].has("archive_mode")


# --- connections, IOPS and placement --------------------------------------------------------


def test_exporter_and_backup_connections_are_counted_in_max_connections():
    plan = plan_of(blueprint({"db": {"engine": "mariadb", "version": "10.11", "max_connections": 60}}, observability={"prometheus": {}}))
    setting = plan.tuning["db"].get("max_connections")
    assert setting.number == 64 and setting.why == "60: the blueprint's max_connections + 3 for the exporter + 1 for the backup"
    alone = plan_of(blueprint({"db": {"engine": "postgres", "version": "16"}}))
    assert alone.tuning["db"].get("max_connections").number == 100  # no exporter; pg_basebackup uses a WAL sender


def test_redis_maxclients_follow_memory():
    plan = plan_of(blueprint({"small": {"engine": "redis", "version": "7", "memory": "256Mi"}, "big": {"engine": "redis", "version": "7", "memory": "32Gi"}}))
    assert plan.tuning["small"].get("maxclients").number == 256
    assert plan.tuning["big"].get("maxclients").number == 10_000


def test_datastores_and_monitoring_share_the_declared_iops_of_their_host():
    hosts = [{"name": "box-1", "region": "home", "vcpu": 16, "memory": "64Gi", "storage": "nvme", "iops": 40_000}]
    stores = {name: {"engine": "mariadb", "version": "10.11"} for name in ("a", "b", "c")}
    plan = plan_of(blueprint(stores, hosts=hosts, observability={"prometheus": {}, "loki": True}))
    setting = plan.tuning["a"].get("innodb_io_capacity")
    # 3 datastores + Prometheus + Loki: 8000 IOPS each, half of that for background flushing
    assert setting.number == 4000 and plan.tuning["a"].get("innodb_io_capacity_max").number == 8000
    assert "shared by 3 datastore(s) and 2 monitoring volume(s), 8000 each" in setting.why
    alone = plan_of(blueprint({"a": stores["a"]}, hosts=hosts))
    assert alone.tuning["a"].get("innodb_io_capacity").number == 20_000


def test_validate_names_a_datastore_tuned_for_another_host_than_compose_runs_it_on(write_blueprint):
    hosts = [
        {"name": "box-1", "region": "home", "vcpu": 16, "memory": "64Gi", "storage": "hdd"},
        {"name": "fast-1", "region": "home", "vcpu": 16, "memory": "64Gi", "storage": "nvme", "iops": 40000},
    ]
    data = blueprint({"db": {"engine": "postgres", "version": "16", "host": "fast-1"}}, hosts=hosts)
    path = write_blueprint(yaml.safe_dump(data, sort_keys=False))
    found = [f for f in analyse(path).findings if f.id == "datastore-placement"]
    assert len(found) == 1 and found[0].path == "datastores.db.host" and found[0].line > 0
    assert "tuned for host fast-1 (nvme, 40000 iops) but compose runs it on the compose host box-1 (hdd)" in found[0].message
    data["datastores"]["db"]["host"] = "box-1"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    assert not [f for f in analyse(path).findings if f.id == "datastore-placement"]


def test_a_postgres_backup_without_point_in_time_touches_no_wal_folder():
    """Without an archive there is no wal/ folder: pruning it would fail every backup under set -e."""
    plan = plan_of(blueprint({"pg": {"engine": "postgres", "version": "16", "backup": {"point_in_time": False}}}))
    script = config_files(plan, "pg")["backup.sh"]
    assert "/wal" not in script and "log_retention_minutes" not in script
    with_archive = config_files(plan_of(blueprint({"pg": {"engine": "postgres", "version": "16"}})), "pg")["backup.sh"]
    assert 'find "$backup_dir/wal"' in with_archive
