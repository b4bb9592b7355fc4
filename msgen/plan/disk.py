"""Disk: the volumes placed on the compose host, each with its size and where the size comes
from (docs/tuning.md, Capacity). Kubernetes claims are read from the manifests instead, where
their sizes are written (msgen/checks/capacity.py).

Monitoring volumes are estimated from their retention: Prometheus keeps every sample of every
series for `retention` at about two bytes a sample (its documented figure after compression),
and is told that estimate as its retention size, so that more series than estimated cost
history, not disk; Loki keeps each container's logs for the same time.
"""

from __future__ import annotations

from dataclasses import dataclass

# a scrape target (an instrumented service, an exporter, the gateway) exposes hundreds to a
# few thousand series: the estimate takes the upper end
SERIES_PER_TARGET = 2000
BYTES_PER_SAMPLE = 2
# a container's logs kept by Loki a day, compressed: the gateway's access log at a few
# requests a second, or a chatty service
LOG_BYTES_PER_CONTAINER_DAY = 50 * 1024**2
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Volume:
    name: str
    size: int  # bytes
    why: str


def compose_volumes(plan) -> tuple[Volume, ...]:
    """Every volume compose puts on its host that can grow: data, backups, monitoring, the services' own."""
    volumes = [Volume(f"{store.name}-data", store.storage.bytes, f"{store.name}'s storage") for store in plan.datastores]
    for store in plan.datastores:
        backup = store.backup
        if backup is not None and backup.path is None:
            volumes.append(Volume(backup.volume, backup.size.bytes, backup.size_why))
    volumes.extend(_monitoring(plan))
    volumes.extend(_services(plan))
    return tuple(volumes)


def _services(plan) -> list[Volume]:
    """The services' persistent volumes: one named volume each, whatever the replicas (they
    share it); a volume that is not persistent is a tmpfs, in memory."""
    return [
        Volume(volume.compose_volume, volume.size.bytes, f"{mounts.service}'s volume {volume.name}")
        for mounts in plan.mounts.values()
        for volume in mounts.persistent
    ]


def prometheus_bytes(observability) -> int:
    """What Prometheus keeps on disk for its retention time; also its retention size
    (--storage.tsdb.retention.size), so that the volume stays within what capacity counted."""
    samples = len(observability.jobs) * SERIES_PER_TARGET * observability.retention.ms // observability.scrape_interval.ms
    return samples * BYTES_PER_SAMPLE


def _monitoring(plan) -> list[Volume]:
    observability = plan.observability
    if observability is None or not observability.prometheus:
        return []
    days = observability.retention.ms / DAY_MS
    targets = len(observability.jobs)
    volumes = [
        Volume(
            "prometheus-data",
            prometheus_bytes(observability),
            f"{targets} targets x {SERIES_PER_TARGET} series, one sample every {observability.scrape_interval} for "
            f"{observability.retention}, {BYTES_PER_SAMPLE} bytes a sample",
        )
    ]
    if observability.loki:
        # the services' replicas, the datastores and the gateway: the containers whose logs matter
        containers = sum(service.replicas for service in plan.services) + len(plan.datastores) + (plan.gateway is not None)
        volumes.append(
            Volume(
                "loki-data",
                int(containers * LOG_BYTES_PER_CONTAINER_DAY * days),
                f"{containers} containers x 50 MiB of compressed logs a day for {observability.retention}",
            )
        )
    return volumes
