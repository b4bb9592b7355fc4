"""Kubernetes findings: placement (anti-affinity against the nodes), and the rules over the
objects as they will be deployed: names within Kubernetes' limits, pods locked down.
"""

from __future__ import annotations

from collections.abc import Iterator

from msgen.findings import Finding, finding
from msgen.targets import Built
from msgen.targets import kubernetes as target

MAX_NAME = 63
# the API refuses a longer CronJob name: its Jobs append 11 characters (-<minutes since the epoch>)
MAX_CRON_JOB_NAME = 52


def check(context) -> Iterator[Finding]:
    if context.plan.kubernetes is not None:
        yield from anti_affinity_findings(context.plan)
        yield from resource_findings(context.plan)


def resource_findings(plan) -> Iterator[Finding]:
    """The API server refuses a pod whose requests exceed its limits (a default limit included)."""
    for service in plan.services:
        requests, limits = service.requests, service.limits
        for kind, wanted, cap in (
            ("cpu", requests.cpu.millicores, limits.cpu.millicores),
            ("memory", requests.memory.bytes, limits.memory.bytes),
        ):
            if wanted > cap:
                yield finding(
                    "k8s-resources",
                    "error",
                    ("services", service.name, "resources"),
                    f"{service.name} requests {getattr(requests, kind).text} {kind} but is limited to {getattr(limits, kind).text}: "
                    "Kubernetes rejects a pod whose requests exceed its limits",
                    f"raise resources.limits.{kind} or lower resources.requests.{kind}",
                )


class Inspector:
    """Reads every Kubernetes object once, as it is built."""

    def __init__(self) -> None:
        self.found: list[Finding] = []

    def read(self, built: Built) -> None:
        if not target.is_manifest(built.path):
            return
        for item in target.objects_of(built.path, built.documents):
            self.found.extend(name_findings(item))
            template = target.pod_template(item.document)
            if template is not None:
                self.found.extend(security_findings(item, template.get("spec") or {}))
                self.found.extend(probe_findings(item, template.get("spec") or {}))

    def findings(self) -> list[Finding]:
        return self.found


def inspector(context) -> Inspector | None:
    return Inspector() if context.plan.kubernetes is not None else None


def anti_affinity_findings(plan) -> Iterator[Finding]:
    """Required anti-affinity on the hostname: one replica per node, and rollouts need room."""
    kube = plan.kubernetes
    for name, workload in kube.services.items():
        at = ("services", name, "replicas")
        nodes = len(workload.nodes)
        where = f"in region {workload.region}" if workload.region else "in the cluster"
        if not nodes:
            yield finding(
                "anti-affinity",
                "info",
                at,
                f"{name}: no hosts are declared, so msgen cannot tell whether {workload.max_replicas} replicas fit on the nodes",
                "declare the cluster's nodes under hosts:",
            )
        elif workload.anti_affinity == "required" and workload.max_replicas > nodes:
            most = workload.max_replicas
            yield finding(
                "anti-affinity",
                "error",
                at,
                f"{name}: {most} replicas with required anti-affinity need {most} nodes, but {nodes} {'is' if nodes == 1 else 'are'} available {where}; {most - nodes} would stay Pending",
                f"lower replicas to {nodes}, add nodes, or leave kubernetes.anti_affinity unset (a service with more replicas than nodes then prefers spreading)",
            )
        elif workload.anti_affinity == "required" and workload.max_replicas == nodes > 1:
            yield finding(
                "anti-affinity",
                "warning",
                at,
                f"{name}: {workload.max_replicas} replicas on {nodes} nodes {where} leave no free node: a rollout replaces pods one at a time (maxSurge 0, maxUnavailable 1) and a lost node leaves a replica Pending",
                f"add a node or run {nodes - 1} replicas",
            )


def name_findings(item: target.RenderedObject) -> Iterator[Finding]:
    metadata = item.document.get("metadata") or {}
    name = str(metadata.get("name", ""))
    most = MAX_CRON_JOB_NAME if item.document.get("kind") == "CronJob" else MAX_NAME
    if len(name) > most:
        yield finding(
            "k8s-name-length",
            "error",
            item.at,
            f"{item.where()}: the name has {len(name)} characters; Kubernetes allows {most}",
            "shorten the service or datastore name",
        )
    for key, value in (metadata.get("labels") or {}).items():
        if len(str(value)) > MAX_NAME:
            yield finding(
                "k8s-name-length",
                "error",
                item.at,
                f"{item.where()}: label {key} has a value of {len(str(value))} characters; Kubernetes allows {MAX_NAME}",
                "shorten the name it comes from",
            )


def _requested_root(item: target.RenderedObject, pod_spec: dict) -> bool:
    return (pod_spec.get("securityContext") or {}).get("runAsNonRoot") is False


def security_findings(item: target.RenderedObject, pod_spec: dict) -> Iterator[Finding]:
    """Locked-down pods; a service with `run_as_root` is reported by run-as-root instead."""
    root = _requested_root(item, pod_spec)
    context = pod_spec.get("securityContext") or {}
    gaps = []
    if not root and context.get("runAsNonRoot") is not True:
        gaps.append("securityContext.runAsNonRoot is not true")
    if (context.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        gaps.append("seccompProfile is not RuntimeDefault")
    if pod_spec.get("automountServiceAccountToken") is not False:
        gaps.append("automountServiceAccountToken is not false")
    for container in pod_spec.get("containers") or []:
        own = container.get("securityContext") or {}
        name = container.get("name", "?")
        if own.get("allowPrivilegeEscalation") is not False:
            gaps.append(f"container {name}: allowPrivilegeEscalation is not false")
        if own.get("readOnlyRootFilesystem") is not True:
            gaps.append(f"container {name}: readOnlyRootFilesystem is not true")
        if not root and "ALL" not in ((own.get("capabilities") or {}).get("drop") or []):
            gaps.append(f"container {name}: capabilities do not drop ALL")
    for gap in gaps:
        yield finding(
            "k8s-security",
            "error",
            item.at,
            f"{item.where()}: {gap}",
            "msgen renders pods locked down; render again if the file was edited",
        )


def probe_findings(item: target.RenderedObject, pod_spec: dict) -> Iterator[Finding]:
    """A service's container without readiness and liveness probes (a worker without
    health.command): Kubernetes counts it ready once it starts and restarts it only when it exits."""
    if item.at[:1] != ("services",):
        return
    for container in pod_spec.get("containers") or []:
        if "readinessProbe" not in container and "livenessProbe" not in container:
            yield finding(
                "k8s-no-probe",
                "warning",
                (*item.at, "health", "command"),
                f"{item.where()}: container {container.get('name', '?')} has no probes: Kubernetes cannot tell a hung "
                "process from a working one, and restarts it only when it exits",
                'give health.command a check that works in the image, e.g. ["CMD", "/app/healthcheck"]',
            )
