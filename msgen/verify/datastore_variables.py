"""Curated server variables per engine and release line, with the ranges the servers accept.

No MySQL server installs here, and MariaDB aborts at start on an unknown variable, so msgen
checks every option it writes against these lists (sources: the MySQL 8.0/8.4 and MariaDB
10.11/11.4 server system variable references, the PostgreSQL 14-17 runtime configuration
chapters, redis.conf of Redis 7). Only what msgen may write needs to be here; the lists
of variables a server lacks make the most common mistakes explicit.
"""

from __future__ import annotations

from dataclasses import dataclass

U64 = 2**64 - 1
KI, MI, GI = 1024, 1024**2, 1024**3


@dataclass(frozen=True)
class Variable:
    minimum: float | None = None  # in bytes for sizes
    maximum: float | None = None
    words: tuple[str, ...] = ()  # accepted values of an enum or boolean


_FLUSH_METHODS = ("fsync", "O_DSYNC", "littlesync", "nosync", "O_DIRECT", "O_DIRECT_NO_FSYNC")

_INNODB_COMMON: dict[str, Variable] = {
    "character_set_server": Variable(),
    "collation_server": Variable(),
    "slow_query_log": Variable(words=("ON", "OFF")),
    "long_query_time": Variable(0, 31_536_000),
    "innodb_buffer_pool_size": Variable(5 * MI, U64),
    "innodb_log_buffer_size": Variable(MI, 4 * GI - 1),
    "innodb_flush_neighbors": Variable(0, 2),
    "innodb_io_capacity": Variable(100, U64),
    "innodb_io_capacity_max": Variable(100, U64),
    "max_connections": Variable(1, 100_000),
    "sort_buffer_size": Variable(32 * KI, U64),
    "join_buffer_size": Variable(128, U64),
    "read_buffer_size": Variable(8 * KI, 2 * GI - 4096),
    "read_rnd_buffer_size": Variable(8200, 2 * GI - 1),
    "binlog_cache_size": Variable(4 * KI, U64),
    "tmp_table_size": Variable(1024, U64),
    "max_heap_table_size": Variable(16 * KI, U64),
    "key_buffer_size": Variable(8, U64),
    "init_connect": Variable(),
    "log_bin": Variable(),
    "binlog_format": Variable(words=("ROW", "STATEMENT", "MIXED")),
    "sync_binlog": Variable(0, 4_294_967_295),
}

_MYSQL_COMMON = {
    **_INNODB_COMMON,
    "innodb_buffer_pool_instances": Variable(1, 64),
    "innodb_buffer_pool_chunk_size": Variable(MI, U64),
    "innodb_flush_method": Variable(words=_FLUSH_METHODS),
    "temptable_max_ram": Variable(2 * MI, U64),
    "innodb_dedicated_server": Variable(words=("ON", "OFF")),
    "binlog_expire_logs_seconds": Variable(0, 4_294_967_295),
    "skip_log_bin": Variable(),  # an option without a value: no binary log
}

MYSQL_80 = {
    **_MYSQL_COMMON,
    "innodb_redo_log_capacity": Variable(8 * MI, 128 * GI),  # from 8.0.30
    "innodb_log_file_size": Variable(4 * MI, 512 * GI),  # before 8.0.30 (deprecated after)
    "innodb_log_files_in_group": Variable(2, 100),
}

MYSQL_84 = {
    **_MYSQL_COMMON,
    "innodb_redo_log_capacity": Variable(8 * MI, 128 * GI),
}

_MARIADB_COMMON = {
    **_INNODB_COMMON,
    "innodb_log_file_size": Variable(MI, 512 * GI),
    "aria_pagecache_buffer_size": Variable(128 * KI, U64),
    "binlog_expire_logs_seconds": Variable(0, 8_553_600),  # 99 days
}

MARIADB_1011 = {**_MARIADB_COMMON, "innodb_flush_method": Variable(words=_FLUSH_METHODS)}
MARIADB_114 = {
    **_MARIADB_COMMON,
    "innodb_flush_method": Variable(words=_FLUSH_METHODS),  # deprecated since 11.0, still read
    "innodb_data_file_buffering": Variable(words=("ON", "OFF")),
    "innodb_data_file_write_through": Variable(words=("ON", "OFF")),
    "innodb_log_file_buffering": Variable(words=("ON", "OFF")),
    "innodb_log_file_write_through": Variable(words=("ON", "OFF")),
}

# PostgreSQL's largest kB setting on 64-bit platforms (`postgres --describe-config`: INT_MAX kB)
MAX_KILOBYTES = 2147483647 * KI

POSTGRES = {
    "listen_addresses": Variable(),
    "max_connections": Variable(1, 262_143),
    "shared_buffers": Variable(128 * KI, 1024 * GI),
    "effective_cache_size": Variable(8 * KI, 16 * 1024**4),
    "maintenance_work_mem": Variable(MI, MAX_KILOBYTES),
    "work_mem": Variable(64 * KI, MAX_KILOBYTES),
    "wal_buffers": Variable(32 * KI, 2 * GI),
    "min_wal_size": Variable(32 * MI, U64),
    "max_wal_size": Variable(32 * MI, U64),
    "checkpoint_completion_target": Variable(0, 1),
    "default_statistics_target": Variable(1, 10_000),
    "random_page_cost": Variable(0, 1.79e308),
    "effective_io_concurrency": Variable(0, 1000),
    "max_worker_processes": Variable(0, 262_143),
    "max_parallel_workers": Variable(0, 1024),
    "max_parallel_workers_per_gather": Variable(0, 1024),
    "max_parallel_maintenance_workers": Variable(0, 1024),
    "shared_preload_libraries": Variable(),
    "log_min_duration_statement": Variable(-1, 2_147_483_647),
    "idle_in_transaction_session_timeout": Variable(0, 2_147_483_647),
    "hba_file": Variable(),
    "archive_mode": Variable(words=("on", "off", "always")),
    "archive_command": Variable(),
    "archive_timeout": Variable(0, 1_073_741_823),
}

REDIS_7 = {
    "maxmemory": Variable(0, U64),
    "maxmemory-policy": Variable(
        words=(
            "volatile-lru",
            "allkeys-lru",
            "volatile-lfu",
            "allkeys-lfu",
            "volatile-random",
            "allkeys-random",
            "volatile-ttl",
            "noeviction",
        )
    ),
    "maxmemory-samples": Variable(1, 64),
    "appendonly": Variable(words=("yes", "no")),
    "appendfsync": Variable(words=("always", "everysec", "no")),
    "save": Variable(),
    "maxclients": Variable(1, U64),
}

VARIABLES: dict[tuple[str, str], dict[str, Variable]] = {
    ("mysql", "8.0"): MYSQL_80,
    ("mysql", "8.4"): MYSQL_84,
    ("mariadb", "10.11"): MARIADB_1011,
    ("mariadb", "11.4"): MARIADB_114,
    **{("postgres", line): POSTGRES for line in ("14", "15", "16", "17")},
    ("redis", "7"): REDIS_7,
}

# variables a server does not have, with the reason (the mistakes the checks name)
ABSENT: dict[tuple[str, str], dict[str, str]] = {
    ("mariadb", "10.11"): {
        "innodb_buffer_pool_instances": "removed in MariaDB 10.6",
        "innodb_redo_log_capacity": "MySQL-only (MariaDB sizes its one redo file with innodb_log_file_size)",
        "innodb_dedicated_server": "MySQL-only",
        "temptable_max_ram": "MySQL-only (TempTable engine)",
        "innodb_log_files_in_group": "removed in MariaDB 10.6",
    },
    ("mysql", "8.4"): {
        "innodb_log_file_size": "deprecated since 8.0.30: 8.4 sizes redo with innodb_redo_log_capacity",
        "innodb_log_files_in_group": "deprecated since 8.0.30: 8.4 sizes redo with innodb_redo_log_capacity",
        "aria_pagecache_buffer_size": "MariaDB-only",
    },
    ("mysql", "8.0"): {"aria_pagecache_buffer_size": "MariaDB-only"},
}
ABSENT[("mariadb", "11.4")] = ABSENT[("mariadb", "10.11")]

# settings msgen must never write, whatever the engine accepts
FORBIDDEN = {"innodb_dedicated_server": "reads host RAM, not the container limit (8.0/8.4): msgen sizes everything explicitly"}


def variables_for(engine: str, line: str) -> dict[str, Variable]:
    return VARIABLES[(engine, line)]


def absent_reason(engine: str, line: str, name: str) -> str | None:
    return ABSENT.get((engine, line), {}).get(name)
