"""Datastore findings: the estimated peak memory of a MySQL/MariaDB datastore must fit its
container limit, and a datastore tuned for one host must run there.
"""

from __future__ import annotations

from collections.abc import Iterator

from msgen.findings import Finding, finding
from msgen.model.blueprint import Host
from msgen.plan.services import DatastorePlan
from msgen.plan.tuning import DatastoreTuning
from msgen.units import human_bytes


def check(context) -> Iterator[Finding]:
    for store in context.plan.datastores:
        yield from _memory(store, context.plan.tuning[store.name])
        yield from _placement(store, context.plan.compose_host)


def _placement(store: DatastorePlan, compose_host: Host | None) -> Iterator[Finding]:
    """Compose runs every container on its one host: a datastore declared on another host is
    tuned for a disk it does not run on."""
    declared = store.datastore.host
    if compose_host is None or declared is None or declared == compose_host.name:
        return
    yield finding(
        "datastore-placement",
        "warning",
        ("datastores", store.name, "host"),
        f"{store.name} is tuned for host {declared} ({store.storage_class}"
        + (f", {store.iops} iops" if store.iops else "")
        + f") but compose runs it on the compose host {compose_host.name} ({compose_host.storage}"
        + (f", {compose_host.iops} iops" if compose_host.iops else "")
        + ")",
        f"set host: {compose_host.name} (or leave host out) for compose; keep {declared} only where Kubernetes places it on that node",
    )


def _memory(store: DatastorePlan, tuning: DatastoreTuning) -> Iterator[Finding]:
    if tuning.peak is None or tuning.peak <= tuning.limit:
        return
    at = ("datastores", store.name, "max_connections" if store.datastore.max_connections else "memory")
    parts = ", ".join(f"{label} {human_bytes(size)}" for label, size in tuning.peak_parts)
    yield finding(
        "datastore-memory",
        "error",
        at,
        f"{store.name}: max_connections {store.app_connections}{_reserved_text(store)} with memory {store.memory} does not fit: estimated peak "
        f"{human_bytes(tuning.peak)} ({parts}) exceeds the limit even with the smallest per-connection buffers and a 128 MiB buffer pool",
        "lower max_connections (put a connection pool in front) or raise memory",
    )


def _reserved_text(store: DatastorePlan) -> str:
    reserved = " + ".join(f"{count} for the {who}" for who, count in store.reserved_connections)
    return f" (+ {reserved})" if reserved else ""


def inspector(context) -> None:
    """Nothing here reads built objects."""
    return None
