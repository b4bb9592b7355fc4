"""Verification of the datastore configs (`--deep` and the tests): each rendered file parsed
back as its server reads it; every option exists for the engine and version (MariaDB aborts
on an unknown one), every value lies in the range the server accepts (servers clamp
silently), and the InnoDB buffer pool is aligned.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from msgen.findings import Finding, finding
from msgen.plan.services import DatastorePlan
from msgen.plan.tuning import DatastoreTuning
from msgen.verify.datastore_variables import FORBIDDEN, Variable, absent_reason, variables_for

_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)$")
_CNF_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_PG_UNITS = {"": 1, "B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_REDIS_UNITS = {"": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3, "gb": 1024**3}


def parse_config(text: str, engine: str) -> dict[str, str]:
    """Option name -> value text, as the server reads the file (last one wins)."""
    options: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        if engine == "redis":
            name, _, value = line.partition(" ")
        else:
            name, _, value = line.partition("=")
        name = name.strip()
        if engine in ("mysql", "mariadb"):
            name = name.replace("-", "_")
        options[name] = value.strip()
    return options


def number(value: str, engine: str) -> float | None:
    """The value in base units (bytes for sizes), or None when it is a word."""
    match = _SIZE.fullmatch(value.strip("'\""))
    if not match:
        return None
    amount, unit = float(match.group(1)), match.group(2)
    units = {"mysql": _CNF_UNITS, "mariadb": _CNF_UNITS, "postgres": _PG_UNITS, "redis": _REDIS_UNITS}[engine]
    key = unit.upper() if engine in ("mysql", "mariadb") else (unit.lower() if engine == "redis" else unit)
    if key not in units:
        return None
    return amount * units[key]


def verify(context) -> Iterator[Finding]:
    plan = context.plan
    for store in plan.datastores:
        built = context.files.get(f"datastores/{store.name}/{store.config_file}")
        if built is None:
            continue
        options = parse_config(built.text, store.engine)
        yield from _options(store, options)
        if store.engine in ("mysql", "mariadb"):
            yield from _alignment(store, plan.tuning[store.name], options)


def _options(store: DatastorePlan, options: dict[str, str]) -> Iterator[Finding]:
    known = variables_for(store.engine, store.line)
    for name, value in options.items():
        reason = FORBIDDEN.get(name) or absent_reason(store.engine, store.line, name)
        if reason is not None or name not in known:
            yield finding(
                "datastore-option",
                "error",
                ("datastores", store.name),
                f"{store.config_file} of {store.name} sets {name}, which {store.engine} {store.line} "
                + (f"must not get: {reason}" if reason else "does not know (the server would refuse to start or ignore it)"),
                "this is a bug in msgen's tuning; please report it",
            )
            continue
        problem = _out_of_range(known[name], value, store.engine)
        if problem:
            yield finding(
                "datastore-range",
                "error",
                ("datastores", store.name),
                f"{store.config_file} of {store.name}: {name} = {value} {problem} (the server would clamp it silently)",
                "check memory, cpu and max_connections of this datastore",
            )


def _out_of_range(variable: Variable, value: str, engine: str) -> str | None:
    if variable.words:
        return None if value.strip("'\"") in variable.words else f"is not one of {', '.join(variable.words)}"
    if variable.minimum is None and variable.maximum is None:
        return None
    amount = number(value, engine)
    if amount is None:
        return "is not a number"
    if variable.minimum is not None and amount < variable.minimum:
        return f"is below the minimum {variable.minimum:g}"
    if variable.maximum is not None and amount > variable.maximum:
        return f"is above the maximum {variable.maximum:g}"
    return None


def _alignment(store: DatastorePlan, tuning: DatastoreTuning, options: dict[str, str]) -> Iterator[Finding]:
    pool = number(options.get("innodb_buffer_pool_size", "0"), store.engine) or 0
    granule = tuning.pool_granule or 1
    if store.engine == "mysql":
        chunk = number(options.get("innodb_buffer_pool_chunk_size", str(128 * 1024**2)), store.engine) or 0
        instances = number(options.get("innodb_buffer_pool_instances", "1"), store.engine) or 1
        granule = int(chunk * instances)
    if pool <= 0 or granule <= 0 or pool % granule:
        yield finding(
            "datastore-pool-alignment",
            "error",
            ("datastores", store.name, "memory"),
            f"{store.name}: innodb_buffer_pool_size {int(pool)} is not a non-zero multiple of {granule} "
            "(chunk size x instances): the server would round it up, past the memory budget",
            "this is a bug in msgen's tuning; please report it",
        )
    io, io_max = (number(options.get(key, "0"), store.engine) or 0 for key in ("innodb_io_capacity", "innodb_io_capacity_max"))
    if io_max < io:
        yield finding(
            "datastore-range",
            "error",
            ("datastores", store.name),
            f"{store.name}: innodb_io_capacity_max {int(io_max)} is below innodb_io_capacity {int(io)}",
            "this is a bug in msgen's tuning; please report it",
        )
