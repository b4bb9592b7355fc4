"""Backups (docs/backups.md): when each datastore is backed up, with which of its engine's own
tools, where the copies and the logs that roll them forward live, how long they are kept,
and the recovery point that follows.

Every backup goes over the network (a Kubernetes CronJob cannot mount the StatefulSet's
ReadWriteOnce volume), into one location per datastore with three folders: `base` (the
scheduled backups), `binlog` (MySQL/MariaDB write their binary log there) and `wal`
(PostgreSQL archives each WAL segment there).
"""

from __future__ import annotations

from dataclasses import dataclass

from msgen.cron import Schedule
from msgen.model.blueprint import Datastore
from msgen.units import Cpu, Duration, Memory

# where the backup location is mounted, in the datastore's container and in the backup's
BACKUP_MOUNT = "/backup"
BASE_DIR, BINLOG_DIR, WAL_DIR = f"{BACKUP_MOUNT}/base", f"{BACKUP_MOUNT}/binlog", f"{BACKUP_MOUNT}/wal"
# PostgreSQL switches to a new WAL segment (and so archives the last one) at least this often
ARCHIVE_TIMEOUT_S = 60
# the backup container: a client tool streaming a dump, and the scheduler's shell
BACKUP_CPU, BACKUP_MEMORY = Cpu(250, "250m"), Memory(256 * 1024**2, "256Mi")
TOOLS = {
    "mysql": "mysqldump --single-transaction --source-data=2 (one consistent snapshot, the binary log position noted)",
    "mariadb": "mariadb-dump --single-transaction --master-data=2 (one consistent snapshot, the binary log position noted)",
    "postgres": "pg_basebackup (a base backup over the replication protocol, the WAL it needs included)",
    "redis": "redis-cli --rdb (a snapshot the server writes and sends)",
}


@dataclass(frozen=True)
class BackupPlan:
    datastore: str
    engine: str
    container: str  # the compose service and Kubernetes CronJob: <datastore>-backup
    schedule: Schedule
    interval_minutes: int  # the longest time between two scheduled backups
    retention: Duration
    point_in_time: bool
    rpo_minutes: int
    rpo_why: str
    volume: str  # the compose named volume and the Kubernetes claims' base name
    path: str | None  # a host directory instead of the named volume (compose)
    size: Memory
    size_why: str
    tool: str

    @property
    def log_retention_seconds(self) -> int:
        """Logs are kept one interval longer than backups, so the oldest kept backup still rolls forward."""
        return self.retention.ms // 1000 + self.interval_minutes * 60

    @property
    def location(self) -> str:
        return f"path {self.path}" if self.path else f"volume {self.volume}"


def backup_on(datastore: Datastore) -> bool:
    if datastore.backup.enabled is not None:
        return datastore.backup.enabled
    return datastore.engine != "redis" or datastore.role != "cache"


def plan_backup(name: str, datastore: Datastore) -> BackupPlan | None:
    """The backup of one datastore, or None when it is not backed up."""
    if not backup_on(datastore):
        return None
    backup = datastore.backup
    interval = backup.schedule.longest_gap_minutes()
    point_in_time = datastore.engine != "redis" and backup.point_in_time is not False
    rpo, why = _recovery_point(datastore.engine, point_in_time, interval)
    size, size_why = (backup.size, "the blueprint's backup.size") if backup.size else (datastore.storage, "the datastore's storage")
    return BackupPlan(
        datastore=name,
        engine=datastore.engine,
        container=f"{name}-backup",
        schedule=backup.schedule,
        interval_minutes=interval,
        retention=backup.retention,
        point_in_time=point_in_time,
        rpo_minutes=rpo,
        rpo_why=why,
        volume=f"{name}-backup",
        path=backup.path,
        size=size,
        size_why=size_why,
        tool=TOOLS[datastore.engine],
    )


def _recovery_point(engine: str, point_in_time: bool, interval: int) -> tuple[int, str]:
    """(minutes of writes a lost data volume can cost, why)."""
    if point_in_time and engine == "postgres":
        return ARCHIVE_TIMEOUT_S // 60, f"each WAL segment is archived when full and at least every {ARCHIVE_TIMEOUT_S}s"
    if point_in_time:
        return 0, "each commit is in the binary log on the backup location before it returns (sync_binlog=1)"
    return interval, "the longest time between two scheduled backups"


def minutes_text(minutes: int) -> str:
    """`0`, `45m`, `6h`, `1d`, `1d 6h`: the largest whole units."""
    if minutes == 0:
        return "0"
    parts = []
    for unit, size in (("d", 1440), ("h", 60), ("m", 1)):
        if minutes >= size:
            parts.append(f"{minutes // size}{unit}")
            minutes %= size
    return " ".join(parts)
