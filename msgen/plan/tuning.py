"""Datastore tuning (docs/tuning.md): every setting derived from the datastore's limits and its
host's storage, each with the reason shown by `msgen plan` and written beside it in the file.

Sizes are computed in bytes and rounded *down* to what the server keeps unchanged, so that
the value a server reports equals the plan and never exceeds the budget.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from msgen.plan.backup import ARCHIVE_TIMEOUT_S, BINLOG_DIR, WAL_DIR
from msgen.plan.services import DatastorePlan
from msgen.units import GI, KI, MI, human_bytes

# InnoDB engines ------------------------------------------------------------------------
MIN_POOL = 128 * MI  # below this even the smallest sensible buffers make no useful server
LARGE_POOL = GI  # from here: 128M chunks and about one instance per GiB (MySQL)
MYSQL_CHUNK = 128 * MI
MARIADB_OLD_GRANULE = 64 * MI  # MariaDB 10.8-10.11.11 autosizes chunks to pool/64
# first releases whose buffer pool ignores innodb_buffer_pool_chunk_size (1 MiB granularity)
MARIADB_FINE_POOL = {"10.11": 12, "11.4": 6}
REDO_MIN, REDO_MAX = 100 * MI, 16 * GI
LOG_BUFFER = 16 * MI
KEY_BUFFER = 8 * MI  # MyISAM key cache: only system tables could use it
BINLOG_CACHE = 32 * KI
THREAD_STACK = {"mysql": MI, "mariadb": 299008}  # the servers' defaults, counted, not set
CONNECTIONS_SHARE = 4  # per-connection buffers may take at most 1/4 of the memory after overhead


@dataclass(frozen=True)
class ConnectionTier:
    """Per-connection buffer sizes, from roomy to the smallest sensible."""

    name: str
    sort: int
    join: int
    read: int
    read_rnd: int
    tmp_table: int


TIERS = (
    ConnectionTier("roomy", 2 * MI, MI, MI, MI, 16 * MI),
    ConnectionTier("standard", MI, 512 * KI, 256 * KI, 512 * KI, 8 * MI),
    ConnectionTier("lean", 512 * KI, 256 * KI, 128 * KI, 256 * KI, 4 * MI),
    ConnectionTier("minimal", 256 * KI, 128 * KI, 128 * KI, 128 * KI, 2 * MI),
)

# PostgreSQL ------------------------------------------------------------------------------
PG_DEFAULT_WORKERS = 8  # max_worker_processes' default, counted by pgtune's work_mem rule
PG_MIN_WORK_MEM = 4 * MI
PG_MAX_MAINTENANCE = 2 * GI
PG_MAX_WAL_BUFFERS = 16 * MI
PG_PAGE = 8 * KI
PG_WAL_BUFFERS_ROUND_UP = 14 * MI  # pgtune: close to the 16MB cap means the cap

# where the postgres image finds msgen's pg_hba.conf (next to the mounted postgresql.conf)
PG_HBA_FILE = "/etc/postgresql/pg_hba.conf"

# Redis -----------------------------------------------------------------------------------
REDIS_CACHE_SHARE = (85, 100)
REDIS_STORE_SHARE = (50, 100)  # a fork for RDB/AOF rewrite can double the resident set


@dataclass(frozen=True)
class Setting:
    """One tuned variable: its name and text as written in the file, its number, and why."""

    name: str
    value: str
    why: str
    number: int | float | None = None  # bytes for sizes; None for words


@dataclass(frozen=True)
class DatastoreTuning:
    name: str
    engine: str
    version: str
    config_file: str
    settings: tuple[Setting, ...]  # in file order
    limit: int  # the container memory limit, bytes
    peak: int | None  # estimated peak memory, bytes (InnoDB engines)
    peak_parts: tuple[tuple[str, int], ...]  # what the peak is made of
    pool_granule: int | None  # what the buffer pool must be a multiple of (InnoDB engines)

    def get(self, name: str) -> Setting:
        return next(setting for setting in self.settings if setting.name == name)

    def has(self, name: str) -> bool:
        return any(setting.name == name for setting in self.settings)


def plan_tuning(datastores: tuple[DatastorePlan, ...]) -> dict[str, DatastoreTuning]:
    """Datastore name -> its tuning, in name order."""
    return {store.name: tune(store) for store in datastores}


def tune(store: DatastorePlan) -> DatastoreTuning:
    if store.engine in ("mysql", "mariadb"):
        return _tune_innodb(store)
    if store.engine == "postgres":
        return _finish(store, _tune_postgres(store))
    return _finish(store, _tune_redis(store))


def _finish(store: DatastorePlan, settings: list[Setting]) -> DatastoreTuning:
    return DatastoreTuning(store.name, store.engine, store.version, store.config_file, tuple(settings), store.memory.bytes, None, (), None)


# size formatting ---------------------------------------------------------------------------


def cnf_size(amount: int) -> str:
    """A size as my.cnf reads it: the largest exact suffix (K, M, G)."""
    for suffix, factor in (("G", GI), ("M", MI), ("K", KI)):
        if amount % factor == 0:
            return f"{amount // factor}{suffix}"
    return str(amount)


def pg_size(amount: int) -> str:
    """A size as postgresql.conf reads it (kB, MB, GB are 1024-based there)."""
    for suffix, factor in (("GB", GI), ("MB", MI), ("kB", KI)):
        if amount % factor == 0:
            return f"{amount // factor}{suffix}"
    raise ValueError(f"{amount} bytes is not a whole number of kB")  # pragma: no cover - sizes are rounded first


def redis_size(amount: int) -> str:
    """A size as redis.conf reads it (kb, mb, gb are 1024-based; k, m, g are not)."""
    for suffix, factor in (("gb", GI), ("mb", MI), ("kb", KI)):
        if amount % factor == 0:
            return f"{amount // factor}{suffix}"
    return str(amount)


def floor_to(amount: int, granule: int) -> int:
    return amount // granule * granule


def _h(amount: int) -> str:
    return human_bytes(amount)


# storage ----------------------------------------------------------------------------------


# what a disk of each class sustains when its host declares no IOPS: the background flushing
# rate InnoDB may use (its io_capacity), as MySQL's own guidance gives for such disks
CLASS_IO_CAPACITY = {"hdd": 200, "ssd": 2000, "nvme": 2000}
MAX_IO_CAPACITY = 20_000


def io_capacity(store: DatastorePlan) -> tuple[int, str]:
    """InnoDB's background flushing rate: half of this datastore's share of the host's IOPS
    (the other half is left for reads), or the class's figure when no IOPS are declared."""
    if store.iops is None:
        capacity = CLASS_IO_CAPACITY[store.storage_class]
        return capacity, f"storage {store.storage_origin} with no iops declared: {capacity} for the class"
    datastores, volumes = store.iops_sharers
    share = store.iops // (datastores + volumes)
    capacity = max(100, min(share // 2, MAX_IO_CAPACITY))
    sharers = f"{datastores} datastore(s)" + (f" and {volumes} monitoring volume(s)" if volumes else "")
    return capacity, (
        f"storage {store.storage_origin}: iops {store.iops} shared by {sharers}, {share} each; half of the share "
        f"(the rest for reads), in 100..{MAX_IO_CAPACITY}"
    )


# MySQL and MariaDB --------------------------------------------------------------------------


def _patch(version: str, line: str) -> int | None:
    rest = version[len(line) :]
    match = re.fullmatch(r"\.([0-9]+).*", rest)
    return int(match.group(1)) if match else None


def mysql_uses_redo_capacity(store: DatastorePlan) -> bool:
    """innodb_redo_log_capacity exists from 8.0.30; a bare "8.0" means a current 8.0."""
    if store.line != "8.0":
        return True
    patch = _patch(store.version, store.line)
    return patch is None or patch >= 30


def mariadb_fine_pool(store: DatastorePlan) -> bool:
    """Whether this MariaDB keeps any 1 MiB multiple as its buffer pool (chunk size ignored)."""
    patch = _patch(store.version, store.line)
    return patch is None or patch >= MARIADB_FINE_POOL[store.line]


def overhead(limit: int) -> int:
    """Memory kept for the server itself (code, dictionary, caches, threads): limit/8 in 64Mi..1Gi."""
    return min(GI, max(64 * MI, limit // 8))


def per_connection(tier: ConnectionTier, engine: str) -> int:
    return tier.sort + tier.join + tier.read + tier.read_rnd + tier.tmp_table + BINLOG_CACHE + THREAD_STACK[engine]


def connection_reserve(available: int, connections: int, engine: str) -> int:
    """Memory kept for per-connection buffers: a quarter of `available`, but at least what the
    smallest tier needs and at most what the roomiest needs. It grows smoothly with memory, so
    the buffer pool never shrinks when the limit grows (a tier switch only spends the reserve)."""
    smallest = connections * per_connection(TIERS[-1], engine)
    roomiest = connections * per_connection(TIERS[0], engine)
    return max(smallest, min(available // CONNECTIONS_SHARE, roomiest))


def choose_tier(reserve: int, connections: int, engine: str) -> ConnectionTier:
    """The roomiest tier whose buffers for every connection fit in the reserve."""
    for tier in TIERS:
        if connections * per_connection(tier, engine) <= reserve:
            return tier
    return TIERS[-1]


def temp_tables_ram(engine: str, limit: int) -> tuple[str, int, int]:
    """The global in-memory temporary table store: (variable, accounted bytes, written bytes).

    The accounting uses the unrounded share so that the pool grows smoothly with the limit."""
    if engine == "mysql":
        accounted = min(GI, max(16 * MI, limit // 16))
        return "temptable_max_ram", accounted, floor_to(accounted, MI)
    accounted = min(128 * MI, max(16 * MI, limit // 64))
    return "aria_pagecache_buffer_size", accounted, floor_to(accounted, MI)


@dataclass(frozen=True)
class PoolShape:
    size: int
    instances: int
    chunk: int | None  # MySQL's chunk size; None where the server sizes chunks itself
    granule: int
    why: str


def mysql_pool(target: int, cpu_millicores: int) -> PoolShape:
    """Round down to chunk x instances; small pools get one instance and a chunk equal to the pool."""
    if target < LARGE_POOL:
        size = max(floor_to(target, MI), MI)
        return PoolShape(size, 1, size, size, "one instance and a chunk equal to the pool (under 1 GiB)")
    instances = max(1, min(64, cpu_millicores // 1000, target // GI))
    granule = MYSQL_CHUNK * instances
    return PoolShape(floor_to(target, granule), instances, MYSQL_CHUNK, granule, f"rounded down to 128M chunks x {instances} instances")


def mariadb_pool(target: int, fine: bool) -> PoolShape:
    if fine:
        return PoolShape(floor_to(target, MI), 1, None, MI, "rounded down to 1 MiB (the server sizes its chunks itself)")
    granule = MARIADB_OLD_GRANULE
    return PoolShape(max(floor_to(target, granule), granule), 1, None, granule, "rounded down to 64 MiB (chunks autosized to pool/64)")


def _tune_innodb(store: DatastorePlan) -> DatastoreTuning:
    engine, limit, connections = store.engine, store.memory.bytes, store.max_connections
    reserved = overhead(limit)
    available = limit - reserved
    reserve = connection_reserve(available, connections, engine)
    tier = choose_tier(reserve, connections, engine)
    per_conn = per_connection(tier, engine)
    temp_name, temp_accounted, temp_written = temp_tables_ram(engine, limit)
    globals_: list[tuple[str, int]] = [("innodb_log_buffer_size", LOG_BUFFER), ("key_buffer_size", KEY_BUFFER), (temp_name, temp_written)]
    left = available - reserve - LOG_BUFFER - KEY_BUFFER - temp_accounted
    target = max(left * 3 // 4, MIN_POOL)
    shape = mysql_pool(target, store.cpu.millicores) if engine == "mysql" else mariadb_pool(target, mariadb_fine_pool(store))
    parts = (
        ("server overhead", reserved),
        ("innodb_buffer_pool_size", shape.size),
        *globals_,
        (f"{connections} connections x {_h(per_conn)}", connections * per_conn),
    )
    settings = _innodb_settings(store, shape, tier, per_conn, dict(globals_), left)
    peak = sum(size for _, size in parts)
    return DatastoreTuning(store.name, engine, store.version, store.config_file, tuple(settings), limit, peak, parts, shape.granule)


def _innodb_settings(store: DatastorePlan, shape: PoolShape, tier: ConnectionTier, per_conn: int, globals_: dict[str, int], left: int):
    engine = store.engine
    pool_why = (
        f"75% of the {_h(max(left, 0))} left of the {store.memory} limit after overhead (limit/8), global buffers and "
        f"the reserve for {store.max_connections} connections; {shape.why}"
    )
    if left * 3 // 4 < MIN_POOL:
        pool_why = f"the 128 MiB floor (75% of what is left, {_h(max(left * 3 // 4, 0))}, is less); {shape.why}"
    settings = [Setting("innodb_buffer_pool_size", cnf_size(shape.size), pool_why, shape.size)]
    if engine == "mysql":
        settings.append(
            Setting(
                "innodb_buffer_pool_instances",
                str(shape.instances),
                f"about one per GiB of pool, at most cpu {store.cpu} and 64",
                shape.instances,
            )
        )
        settings.append(
            Setting(
                "innodb_buffer_pool_chunk_size",
                cnf_size(shape.chunk or MYSQL_CHUNK),
                "pool = chunk x instances x n, so the server keeps it exactly",
                shape.chunk,
            )
        )
    settings.extend(_redo_settings(store, shape.size))
    settings.append(
        Setting(
            "innodb_log_buffer_size",
            cnf_size(globals_["innodb_log_buffer_size"]),
            "16M: the default, counted in the peak",
            globals_["innodb_log_buffer_size"],
        )
    )
    neighbors = 1 if store.storage_class == "hdd" else 0
    settings.append(
        Setting(
            "innodb_flush_neighbors",
            str(neighbors),
            f"storage {store.storage_origin}: " + ("adjacent pages flushed together save seeks" if neighbors else "no seek cost to save"),
            neighbors,
        )
    )
    capacity, why = io_capacity(store)
    settings.append(Setting("innodb_io_capacity", str(capacity), why, capacity))
    capacity_max = 2 * capacity
    settings.append(Setting("innodb_io_capacity_max", str(capacity_max), "2 x innodb_io_capacity: bursts stay within the share", capacity_max))
    settings.append(_flush_method(store))
    settings.append(_max_connections(store))
    settings.extend(_connection_settings(store, tier, per_conn))
    settings.append(
        Setting("key_buffer_size", cnf_size(KEY_BUFFER), "8M: MyISAM is not used; MariaDB's default 128M would be wasted", KEY_BUFFER)
    )
    settings.extend(_text_and_slow_log(engine))
    settings.append(_statement_limit(store))
    settings.extend(_binary_log(store))
    if engine == "mysql":
        ram = globals_["temptable_max_ram"]
        settings.append(
            Setting(
                "temptable_max_ram",
                cnf_size(ram),
                "limit/16 in 16M..1G, counted in the peak (MySQL's default is 1G whatever the limit)",
                ram,
            )
        )
    else:
        aria = globals_["aria_pagecache_buffer_size"]
        settings.append(
            Setting(
                "aria_pagecache_buffer_size", cnf_size(aria), "limit/64 in 16M..128M: Aria holds internal on-disk temporary tables", aria
            )
        )
    return settings


# a query this slow is worth a line in the slow log: the servers' own thresholds (10s) miss
# nearly every slow query of a service answering in milliseconds
SLOW_QUERY_S = 1
# a session that opened a transaction and went quiet holds its locks and stops vacuum
PG_IDLE_IN_TRANSACTION_MS = 60_000
# the collation each engine's current Unicode tables go by (MariaDB's from 10.10)
UTF8MB4_COLLATION = {"mysql": "utf8mb4_0900_ai_ci", "mariadb": "utf8mb4_uca1400_ai_ci"}


def _text_and_slow_log(engine: str) -> list[Setting]:
    return [
        Setting("character_set_server", "utf8mb4", "every Unicode character (MariaDB before 11.6 starts with latin1)"),
        Setting("collation_server", UTF8MB4_COLLATION[engine], "current Unicode sorting, accent- and case-insensitive"),
        Setting("slow_query_log", "ON", "queries over long_query_time go to the slow log in the data directory"),
        Setting("long_query_time", str(SLOW_QUERY_S), f"{SLOW_QUERY_S}s: the default 10s misses most slow queries", SLOW_QUERY_S),
    ]


def _max_connections(store: DatastorePlan) -> Setting:
    reserved = "".join(f" + {count} for the {who}" for who, count in store.reserved_connections)
    return Setting("max_connections", str(store.max_connections), f"{store.app_connections}: {store.connections_why}{reserved}", store.max_connections)


MARIADB_MAX_BINLOG_EXPIRE = 99 * 86_400

# the session variable that bounds a statement: MySQL's counts milliseconds and stops only
# read-only SELECTs; MariaDB's counts seconds and stops every statement
STATEMENT_LIMIT = {"mysql": "max_execution_time", "mariadb": "max_statement_time"}


def _statement_limit(store: DatastorePlan) -> Setting:
    """init_connect runs for every login without administrative rights: the application and
    the exporter get the limit, while root (backups, migrations, restores) does not."""
    milliseconds = store.statement_timeout_ms or 0
    amount = str(milliseconds) if store.engine == "mysql" else f"{milliseconds / 1000:g}"
    return Setting(
        "init_connect",
        f"'SET SESSION {STATEMENT_LIMIT[store.engine]} = {amount}'",
        f"statements of the application's sessions stop after {milliseconds} ms, {store.statement_timeout_why}"
        + ("; MySQL stops only read-only SELECTs" if store.engine == "mysql" else "")
        + "; administrative users (backups, migrations) are not limited",
    )


def _binary_log(store: DatastorePlan) -> list[Setting]:
    """With point-in-time recovery the binary log goes to the backup location, so that it
    survives the data volume; without it MySQL's default binary log (kept 30 days) is off."""
    backup = store.backup
    if backup is None or not backup.point_in_time:
        if store.engine == "mysql":
            return [Setting("skip_log_bin", "", "no point-in-time recovery: no binary log filling the data volume for 30 days")]
        return []
    keep = backup.log_retention_seconds
    why = f"backup.retention {backup.retention} + the longest interval between backups: the oldest kept backup rolls forward"
    if store.engine == "mariadb" and keep > MARIADB_MAX_BINLOG_EXPIRE:
        keep = MARIADB_MAX_BINLOG_EXPIRE
        why = f"MariaDB's longest, 99 days (backup.retention {backup.retention} is longer): older backups restore without rolling forward"
    return [
        Setting("log_bin", f"{BINLOG_DIR}/{store.name}-bin", "point-in-time recovery: the binary log lives on the backup location"),
        Setting("binlog_format", "ROW", "row events replay exactly, whatever the statement"),
        Setting("sync_binlog", "1", "each commit reaches the binary log on disk before it returns", 1),
        Setting("binlog_expire_logs_seconds", str(keep), why, keep),
    ]


def _redo_settings(store: DatastorePlan, pool: int) -> list[Setting]:
    redo = min(REDO_MAX, max(REDO_MIN, floor_to(pool // 4, MI)))
    why = f"a quarter of the buffer pool, in 100M..16G ({_h(pool)} / 4)"
    if store.engine == "mariadb":
        return [Setting("innodb_log_file_size", cnf_size(redo), why + "; MariaDB keeps one redo file", redo)]
    if mysql_uses_redo_capacity(store):
        return [Setting("innodb_redo_log_capacity", cnf_size(redo), why + "; MySQL >= 8.0.30", redo)]
    half = floor_to(redo // 2, MI)
    return [
        Setting("innodb_log_file_size", cnf_size(half), why + ", split over 2 files (before 8.0.30)", half),
        Setting("innodb_log_files_in_group", "2", "two redo files share the redo capacity", 2),
    ]


def _flush_method(store: DatastorePlan) -> Setting:
    if store.engine == "mariadb" and store.line != "10.11":
        # 11.x deprecates innodb_flush_method in favour of these booleans
        return Setting("innodb_data_file_buffering", "OFF", "O_DIRECT for data files: InnoDB caches pages itself; no double buffering")
    return Setting("innodb_flush_method", "O_DIRECT", "InnoDB caches pages itself: no double buffering in the OS cache")


def _connection_settings(store: DatastorePlan, tier: ConnectionTier, per_conn: int) -> list[Setting]:
    engine = store.engine
    why = (
        f"per-connection tier {tier.name}: {store.max_connections} connections x {_h(per_conn)} (thread_stack {_h(THREAD_STACK[engine])} included) "
        "fit the connection reserve (a quarter of the memory after overhead)"
    )
    return [
        Setting("sort_buffer_size", cnf_size(tier.sort), why, tier.sort),
        Setting("join_buffer_size", cnf_size(tier.join), why, tier.join),
        Setting("read_buffer_size", cnf_size(tier.read), why, tier.read),
        Setting("read_rnd_buffer_size", cnf_size(tier.read_rnd), why, tier.read_rnd),
        Setting("binlog_cache_size", cnf_size(BINLOG_CACHE), "32K: the default, counted per connection", BINLOG_CACHE),
        Setting("tmp_table_size", cnf_size(tier.tmp_table), why + "; in-memory temporary tables", tier.tmp_table),
        Setting("max_heap_table_size", cnf_size(tier.tmp_table), "equal to tmp_table_size: the smaller of the two applies", tier.tmp_table),
    ]


# PostgreSQL --------------------------------------------------------------------------------


def _tune_postgres(store: DatastorePlan) -> list[Setting]:
    ram, connections = store.memory.bytes, store.max_connections
    cores = store.cpu.millicores // 1000
    shared = floor_to(ram // 4, PG_PAGE)
    cache = floor_to(ram * 3 // 4, PG_PAGE)
    maintenance = min(PG_MAX_MAINTENANCE, floor_to(ram // 16, KI))
    wal_buffers = min(PG_MAX_WAL_BUFFERS, floor_to(shared * 3 // 100, PG_PAGE))
    if wal_buffers > PG_WAL_BUFFERS_ROUND_UP:
        wal_buffers = PG_MAX_WAL_BUFFERS
    workers = cores if cores >= 4 else PG_DEFAULT_WORKERS
    work_mem = max(PG_MIN_WORK_MEM, floor_to((ram - shared) // (3 * (connections + workers)), KI))
    ssd = store.storage_class != "hdd"
    io_concurrency = {"hdd": 2, "ssd": 200, "nvme": 1000}[store.storage_class]
    settings = [
        Setting("listen_addresses", "'*'", "the container's network interface; the datastore network limits who connects"),
        _max_connections(store),
        Setting("hba_file", f"'{PG_HBA_FILE}'", "msgen's pg_hba.conf: passwords over the network, base backups for the superuser only"),
        Setting("shared_buffers", pg_size(shared), f"a quarter of the {store.memory} limit", shared),
        Setting(
            "effective_cache_size", pg_size(cache), f"three quarters of the {store.memory} limit (planner estimate, not allocated)", cache
        ),
        Setting("maintenance_work_mem", pg_size(maintenance), "limit/16, at most 2GB", maintenance),
        Setting(
            "work_mem",
            pg_size(work_mem),
            f"(limit - shared_buffers) / (3 x ({connections} connections + {workers} workers)), at least 4MB",
            work_mem,
        ),
        Setting("wal_buffers", pg_size(wal_buffers), "3% of shared_buffers, at most 16MB (from 14MB: 16MB, as pgtune does)", wal_buffers),
        Setting("min_wal_size", "1GB", "web/OLTP profile", GI),
        Setting("max_wal_size", "4GB", "web/OLTP profile", 4 * GI),
        Setting("checkpoint_completion_target", "0.9", "spread checkpoint writes over 90% of the interval", 0.9),
        Setting("default_statistics_target", "100", "web/OLTP profile", 100),
        Setting(
            "random_page_cost",
            "1.1" if ssd else "4",
            f"storage {store.storage_origin}: " + ("random reads cost about as much as sequential" if ssd else "seeks are expensive"),
            1.1 if ssd else 4,
        ),
        Setting("effective_io_concurrency", str(io_concurrency), f"storage {store.storage_origin}", io_concurrency),
        Setting("shared_preload_libraries", "'pg_stat_statements'", "per-query statistics (the view is created in the app database)"),
        Setting(
            "log_min_duration_statement",
            str(SLOW_QUERY_S * 1000),
            f"statements over {SLOW_QUERY_S}s are logged with their duration",
            SLOW_QUERY_S * 1000,
        ),
        Setting(
            "idle_in_transaction_session_timeout",
            str(PG_IDLE_IN_TRANSACTION_MS),
            "60s: a transaction left open holds its locks and stops vacuum",
            PG_IDLE_IN_TRANSACTION_MS,
        ),
    ]
    settings.extend(_wal_archive(store))
    if cores >= 4:
        settings.extend(_postgres_workers(cores))
    return settings


def _wal_archive(store: DatastorePlan) -> list[Setting]:
    backup = store.backup
    if backup is None or not backup.point_in_time:
        return []
    return [
        Setting("archive_mode", "on", "point-in-time recovery: every WAL segment is copied to the backup location"),
        Setting(
            "archive_command",
            f"'test ! -f {WAL_DIR}/%f && cp %p {WAL_DIR}/%f'",
            "copy each finished segment once; a failure is retried and keeps the segment",
        ),
        Setting(
            "archive_timeout",
            str(ARCHIVE_TIMEOUT_S),
            f"a segment with writes is archived at least every {ARCHIVE_TIMEOUT_S}s: the recovery point",
            ARCHIVE_TIMEOUT_S,
        ),
    ]


def _postgres_workers(cores: int) -> list[Setting]:
    per_gather = min(4, math.ceil(cores / 2))
    why = f"cpu {cores} (parallel query from 4 vCPUs)"
    return [
        Setting("max_worker_processes", str(cores), why, cores),
        Setting("max_parallel_workers", str(cores), why, cores),
        Setting("max_parallel_workers_per_gather", str(per_gather), why + ": half, at most 4 (web/OLTP)", per_gather),
        Setting("max_parallel_maintenance_workers", str(per_gather), why + ": half, at most 4", per_gather),
    ]


# Redis ---------------------------------------------------------------------------------------


def _tune_redis(store: DatastorePlan) -> list[Setting]:
    limit = store.memory.bytes
    if store.role == "cache":
        share, policy = REDIS_CACHE_SHARE, "allkeys-lru"
        why = "85% of the limit: a cache evicts, the rest covers buffers and fragmentation"
    else:
        share, policy = REDIS_STORE_SHARE, "noeviction"
        why = "50% of the limit: a fork for RDB/AOF rewrite can copy every page it writes"
    maxmemory = floor_to(limit * share[0] // share[1], MI)
    settings = [
        Setting("maxmemory", redis_size(maxmemory), f"{why} ({store.memory})", maxmemory),
        Setting(
            "maxmemory-policy",
            policy,
            f"role {store.role}: "
            + ("evict the least recently used key" if policy != "noeviction" else "refuse writes rather than lose data"),
        ),
        Setting(
            "maxmemory-samples",
            "10" if store.role == "cache" else "5",
            "keys sampled per eviction: 10 approximates true LRU closely" if store.role == "cache" else "the default; nothing is evicted",
            10 if store.role == "cache" else 5,
        ),
    ]
    settings.append(
        Setting("maxclients", str(store.app_connections), store.connections_why, store.app_connections)
    )
    if store.role == "cache":
        settings.append(Setting("appendonly", "no", "a cache is rebuilt from its source: no persistence"))
        settings.append(Setting("save", '""', "a cache is rebuilt from its source: no snapshots"))
    else:
        settings.append(Setting("appendonly", "yes", "a store keeps its data: append-only file"))
        settings.append(Setting("appendfsync", "everysec", "at most one second of writes lost on a crash"))
        settings.append(Setting("save", '"3600 1 300 100 60 10000"', "snapshots besides the append-only file"))
    return settings
