"""Alertmanager: `alertmanager/alertmanager.yml` (the observability target writes it), its
compose container, and Prometheus' `alerting` block, from msgen/plan/alerting.py.

The same configuration serves compose and Kubernetes: every credential is a file under
/run/secrets that Alertmanager reads itself (compose secrets, or the `alertmanager-secrets`
Secret on Kubernetes), so the file holds no secret and can live in Git and a ConfigMap.
"""

from __future__ import annotations

from msgen import images
from msgen.contract import SECRETS_DIR, hardened
from msgen.model.blueprint import Receiver
from msgen.plan import alerting as plan
from msgen.plan.observability import ObservabilityPlan, prom_duration
from msgen.units import compose_cpus, compose_memory

ALERTMANAGER_DIR = "alertmanager"
ALERTMANAGER_CONFIG = f"{ALERTMANAGER_DIR}/alertmanager.yml"
ALERTMANAGER_MOUNT = "/etc/alertmanager"
DATA_VOLUME = "alertmanager-data"
# the Secret (Kubernetes) and the compose secrets' prefix msgen reads and never writes
SECRET_NAME = "alertmanager-secrets"
NOTE = (
    f"Alertmanager {plan.ALERTMANAGER_VERSION} configuration ({images.image('alertmanager')}). "
    f"Credentials are read from files under {SECRETS_DIR}."
)


def config_notes() -> list[str]:
    return [NOTE]


def command(storage: str) -> list[str]:
    """Alertmanager's arguments: one instance, so no cluster gossip (its port would be open to peers)."""
    return [f"--config.file={ALERTMANAGER_MOUNT}/alertmanager.yml", f"--storage.path={storage}", "--cluster.listen-address="]


def _matcher(label: str, value: str, op: str = "=") -> str:
    return f'{label}{op}"{value}"'


def alertmanager_config(alerting: plan.AlertingPlan) -> dict:
    """alertmanager.yml: severity routes, grouping per service or datastore, the inhibitions."""
    route: dict = {
        "receiver": alerting.receiver,
        "group_by": list(plan.GROUP_BY),
        "group_wait": prom_duration(plan.GROUP_WAIT.ms),
        "group_interval": prom_duration(plan.GROUP_INTERVAL.ms),
        "repeat_interval": prom_duration(alerting.repeat_interval.ms),
    }
    if alerting.severity_receivers:
        route["routes"] = [
            {"matchers": [_matcher("severity", severity)], "receiver": name} for severity, name in alerting.severity_receivers
        ]
    inhibit = [
        {
            "source_matchers": [_matcher("alertname", rule.source)],
            "target_matchers": [_matcher("alertname", rule.source, "!=")],
            "equal": list(rule.equal),
        }
        for rule in plan.INHIBITIONS
    ]
    receivers = [receiver_config(alerting, name, receiver) for name, receiver in alerting.receivers]
    return {"route": route, "inhibit_rules": inhibit, "receivers": receivers}


def receiver_config(alerting: plan.AlertingPlan, name: str, receiver: Receiver) -> dict:
    config: dict = {"name": name}
    if receiver.webhook is not None:
        webhook: dict = {"url": receiver.webhook.url, "send_resolved": True}
        if receiver.webhook.credentials_secret is not None:
            credentials = alerting.secret_file(receiver.webhook.credentials_secret)
            webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials_file": credentials}}
        config["webhook_configs"] = [webhook]
    if receiver.email is not None:
        email = receiver.email
        mail: dict = {"to": email.to, "from": email.from_, "smarthost": email.smarthost, "require_tls": email.require_tls}
        if email.username is not None and email.password_secret is not None:
            mail.update(auth_username=email.username, auth_password_file=alerting.secret_file(email.password_secret))
        config["email_configs"] = [{**mail, "send_resolved": True}]
    if receiver.slack is not None:
        slack = receiver.slack
        config["slack_configs"] = [
            {"channel": slack.channel, "api_url_file": alerting.secret_file(slack.api_url_secret), "send_resolved": True}
        ]
    return config


def prometheus_alerting(target: str) -> dict:
    """Prometheus' `alerting` block: the one Alertmanager at `target` (host:port)."""
    return {"alertmanagers": [{"static_configs": [{"targets": [target]}]}]}


def compose_target() -> str:
    return f"alertmanager:{plan.ALERTMANAGER_PORT}"


def kubernetes_target(namespace: str) -> str:
    """The Service's cluster DNS name: Prometheus may run in another namespace."""
    return f"alertmanager.{namespace}.svc:{plan.ALERTMANAGER_PORT}"


def compose_secret(name: str) -> str:
    return f"alertmanager-{name}"


def secret_files(alerting: plan.AlertingPlan, root: str) -> dict[str, str]:
    """compose secret name -> its file under `root` (secrets/alertmanager/<name>)."""
    return {compose_secret(name): f"{root}/{plan.SECRETS_FOLDER}/{name}" for name in alerting.secrets}


def compose_service(observability: ObservabilityPlan) -> dict:
    """The alertmanager container: non-root, read-only, its state on a volume."""
    alerting = observability.alerting
    size = observability.size("alertmanager")
    facts = images.facts("alertmanager")
    entry: dict = {
        "image": observability.images.ref("alertmanager"),
        "user": str(facts.uid),
        "command": command(facts.data_dir),
        "volumes": [f"../{ALERTMANAGER_CONFIG}:{ALERTMANAGER_MOUNT}/alertmanager.yml:ro", f"{DATA_VOLUME}:{facts.data_dir}"],
    }
    if alerting.secrets:
        entry["secrets"] = [{"source": compose_secret(name), "target": name} for name in alerting.secrets]
    entry["healthcheck"] = {
        "test": ["CMD", *facts.healthcheck],
        "interval": "30s",
        "timeout": "5s",
        "retries": 3,
        "start_period": "30s",
    }
    entry["deploy"] = {"resources": {"limits": {"cpus": compose_cpus(size.cpu.millicores), "memory": compose_memory(size.memory.bytes)}}}
    entry["read_only"] = True
    return hardened(entry)
