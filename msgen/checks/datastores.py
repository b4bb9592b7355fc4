"""Datastore findings: the estimated peak memory of a MySQL/MariaDB datastore must fit its
container limit.
"""

from __future__ import annotations

from collections.abc import Iterator

from msgen.findings import Finding, finding
from msgen.plan.services import DatastorePlan
from msgen.plan.tuning import DatastoreTuning
from msgen.units import human_bytes


def check(context) -> Iterator[Finding]:
    for store in context.plan.datastores:
        yield from _memory(store, context.plan.tuning[store.name])


def _memory(store: DatastorePlan, tuning: DatastoreTuning) -> Iterator[Finding]:
    if tuning.peak is None or tuning.peak <= tuning.limit:
        return
    at = ("datastores", store.name, "max_connections" if store.datastore.max_connections else "memory")
    parts = ", ".join(f"{label} {human_bytes(size)}" for label, size in tuning.peak_parts)
    yield finding(
        "datastore-memory",
        "error",
        at,
        f"{store.name}: max_connections {store.max_connections} with memory {store.memory} does not fit: estimated peak "
        f"{human_bytes(tuning.peak)} ({parts}) exceeds the limit even with the smallest per-connection buffers and a 128 MiB buffer pool",
        "lower max_connections (put a connection pool in front) or raise memory",
    )


def inspector(context) -> None:
    """Nothing here reads built objects."""
    return None
