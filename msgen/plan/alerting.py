"""The alerting plan: who Alertmanager notifies, how alerts are grouped, and which alerts
silence which, decided once for the compose and Kubernetes flavours alike.

The inhibitions follow the labels msgen's own rules carry (msgen/plan/observability.py):
TargetDown has the scraped series' `job` and `service` = that job; the routed services'
alerts have `service` but no `job` (their series are the gateway's); the datastores' alerts
have `job` = the datastore's exporter job and `datastore`.
"""

from __future__ import annotations

from dataclasses import dataclass

from msgen.contract import SECRETS_DIR
from msgen.model.blueprint import Alertmanager, Blueprint, Receiver
from msgen.units import Cpu, Duration, Memory

ALERTMANAGER_PORT = 9093
# the version the configuration is written for (Debian's, which the tests run; the image is pinned to it)
ALERTMANAGER_VERSION = "0.25"
# where the secret files live, relative to the output folder (msgen never writes them)
SECRETS_FOLDER = "alertmanager"
SIZE = (Cpu(100, "100m"), Memory(128 * 1024**2, "128Mi"), "holds the active alerts, silences and notification log in memory")
# one notification per service or datastore, listing all of its alerts
GROUP_BY = ("service", "datastore")
# Alertmanager's own defaults, written out so the file says what it does
GROUP_WAIT = Duration(30_000, "30s")
GROUP_INTERVAL = Duration(300_000, "5m")
SEVERITIES = ("critical", "warning")


@dataclass(frozen=True)
class Inhibition:
    """While an alert named `source` fires, the other alerts with the same `equal` labels are not sent."""

    source: str
    equal: tuple[str, ...]
    why: str


# TargetDown: by `service`, the routed services' gateway alerts (no `job`); by `job`, every
# alert from the same job's series (memory, a datastore's exporter job). DatastoreDown: that
# datastore's other alerts. Equal labels a target lacks never match a source that has them.
INHIBITIONS = (
    Inhibition("TargetDown", ("service",), "a service that is down fails its requests and latency too"),
    Inhibition("TargetDown", ("job",), "a job that cannot be scraped says nothing else that can be trusted"),
    Inhibition("DatastoreDown", ("datastore",), "a datastore that is down has no connections to count"),
)


@dataclass(frozen=True)
class AlertingPlan:
    receivers: tuple[tuple[str, Receiver], ...]  # sorted by name
    receiver: str  # the route's default
    severity_receivers: tuple[tuple[str, str], ...]  # (severity, receiver), only where it differs
    repeat_interval: Duration
    secrets: tuple[str, ...]  # secret file names under SECRETS_DIR, sorted

    def secret_file(self, name: str) -> str:
        return f"{SECRETS_DIR}/{name}"


def plan_alerting(blueprint: Blueprint) -> AlertingPlan | None:
    """None without `observability.alertmanager`."""
    observability = blueprint.observability
    section: Alertmanager | None = observability.alertmanager if observability is not None else None
    if section is None:
        return None
    route = section.route
    overrides = ((severity, getattr(route, severity)) for severity in SEVERITIES)
    return AlertingPlan(
        receivers=tuple(sorted(section.receivers.items())),
        receiver=route.receiver,
        severity_receivers=tuple((severity, name) for severity, name in overrides if name is not None and name != route.receiver),
        repeat_interval=route.repeat_interval,
        secrets=tuple(sorted({name for _, receiver in section.receivers.items() for name in receiver_secrets(receiver)})),
    )


def receiver_secrets(receiver: Receiver) -> tuple[str, ...]:
    """The secret files one receiver reads."""
    names = []
    if receiver.webhook is not None and receiver.webhook.credentials_secret is not None:
        names.append(receiver.webhook.credentials_secret)
    if receiver.email is not None and receiver.email.password_secret is not None:
        names.append(receiver.email.password_secret)
    if receiver.slack is not None:
        names.append(receiver.slack.api_url_secret)
    return tuple(names)
