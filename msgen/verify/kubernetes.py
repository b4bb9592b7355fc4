"""Verification of the Kubernetes output (`--deep` and the tests): every object against the
strict schema of the blueprint's Kubernetes version and the kubernetes client's models, then
the rules across objects: selectors select their pods, probes use declared ports, requests
stay within limits, budgets allow an eviction, the kustomization lists every file, and the
NetworkPolicies (evaluated by msgen/verify/netpol.py) allow exactly the blueprint's traffic.
Objects of custom resources (Traefik, cert-manager, Prometheus Operator) are proven against
their published CRDs in the test suite.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from msgen.contract import RUN_KINDS
from msgen.findings import Finding, finding
from msgen.plan import kubernetes as k8s
from msgen.targets import kubernetes as target
from msgen.units import quantity
from msgen.verify import k8s_schemas, netpol

# custom resources: proven against their published CRDs in the test suite
CRD_GROUPS = ("traefik.io/", "cert-manager.io/", "monitoring.coreos.com/")


def rendered_objects(files: dict) -> Iterator[target.RenderedObject]:
    """Every Kubernetes object msgen renders, with the file it is in."""
    for path in sorted(files):
        if target.is_manifest(path):
            yield from target.objects_of(path, files[path].documents)


def verify(context) -> Iterator[Finding]:
    plan = context.plan
    if plan.kubernetes is None:
        return
    yield from kustomization_findings(context.files)
    gathered = Gathered()
    for item in rendered_objects(context.files):
        yield from object_findings(plan.kubernetes.version, item)
        yield from model_findings(item)
        gathered.add(item)
    yield from service_selector_findings(gathered)
    yield from budget_findings(gathered)
    yield from network_findings(plan, gathered)


# --- per object --------------------------------------------------------------------------


def object_findings(version: str, item: target.RenderedObject) -> Iterator[Finding]:
    document = item.document
    if not isinstance(document, dict):
        yield finding("k8s-schema", "error", item.at, f"{item.path}: document {item.index + 1} is not an object", "")
        return
    if not str(document.get("apiVersion", "")).startswith(CRD_GROUPS):
        yield from schema_findings(version, item)
    template = target.pod_template(document)
    if template is not None:
        yield from workload_findings(item, template)


def schema_findings(version: str, item: target.RenderedObject) -> Iterator[Finding]:
    for problem in k8s_schemas.schema_problems(item.document, version):
        yield finding(
            "k8s-schema",
            "error",
            item.at,
            f"{item.where()}: {problem.field or '(object)'}: {problem.message} (Kubernetes {version} strict schema)",
            "a bug in msgen's output or an edited file; render again, and report it if it persists",
        )


def model_findings(item: target.RenderedObject) -> Iterator[Finding]:
    if not isinstance(item.document, dict) or str(item.document.get("apiVersion", "")).startswith(CRD_GROUPS):
        return
    for problem in k8s_schemas.model_problems(item.document) or []:
        yield finding(
            "k8s-model",
            "error",
            item.at,
            f"{item.where()}: {problem.field or '(object)'}: {problem.message} (kubernetes client model)",
            "a bug in msgen's output or an edited file; render again, and report it if it persists",
        )


def workload_findings(item: target.RenderedObject, template: dict) -> Iterator[Finding]:
    spec = item.document.get("spec") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    selector = spec.get("selector")
    # a Job's selector is its controller's to set, and a CronJob has none
    if item.document.get("kind") not in RUN_KINDS and (not selector or not netpol.match_labels(selector, labels)):
        yield finding(
            "k8s-selector",
            "error",
            item.at,
            f"{item.where()}: spec.selector does not select its own pod template's labels",
            "the selector must match spec.template.metadata.labels",
        )
    pod_spec = template.get("spec") or {}
    for term in ((pod_spec.get("affinity") or {}).get("podAntiAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or []:
        if not netpol.match_labels(term.get("labelSelector"), labels):
            yield finding(
                "k8s-selector", "error", item.at, f"{item.where()}: a podAntiAffinity term does not select the workload's own pods", ""
            )
    for index, container in enumerate(pod_spec.get("containers") or []):
        yield from container_findings(item, index, container)


def container_findings(item: target.RenderedObject, index: int, container: dict) -> Iterator[Finding]:
    name = container.get("name", str(index))
    declared_names = {port.get("name") for port in container.get("ports") or []}
    declared_numbers = {port.get("containerPort") for port in container.get("ports") or []}
    for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container.get(probe_name) or {}
        action = probe.get("httpGet") or probe.get("tcpSocket") or probe.get("grpc")
        port = (action or {}).get("port")
        if port is None:
            continue
        if port not in declared_names and port not in declared_numbers:
            yield finding(
                "k8s-probe-port",
                "error",
                item.at,
                f"{item.where()}: container {name}: {probe_name} uses port {port!r}, which the container does not declare",
                "probe a declared, named container port",
            )
    yield from resource_findings(item, name, container.get("resources") or {})


def resource_findings(item: target.RenderedObject, name: str, resources: dict) -> Iterator[Finding]:
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    for key in ("cpu", "memory"):
        if key not in limits:
            yield finding("k8s-resources", "error", item.at, f"{item.where()}: container {name} has no {key} limit", "set resources.limits")
            continue
        if key not in requests:
            continue
        if quantity(requests[key]) > quantity(limits[key]):  # a malformed quantity (0) is the schema's to report
            yield finding(
                "k8s-resources",
                "error",
                item.at,
                f"{item.where()}: container {name} requests {requests[key]} {key} but is limited to {limits[key]}; Kubernetes rejects requests above limits",
                "raise the limit or lower the request",
            )


# --- across objects ----------------------------------------------------------------------


def kustomization_findings(files: dict) -> Iterator[Finding]:
    """kustomization.yaml lists exactly the manifests written (a missing file breaks kustomize)."""
    built = files.get(target.KUSTOMIZATION)
    if built is None:
        return
    listed = set((built.document() or {}).get("resources") or [])
    written = {path.removeprefix(f"{target.ROOT}/") for path in files if target.is_manifest(path)}
    for path in sorted(listed - written):
        yield finding(
            "k8s-kustomization",
            "error",
            ("kubernetes",),
            f"{target.KUSTOMIZATION} lists {path}, which msgen does not write",
            "render again",
        )
    for path in sorted(written - listed):
        yield finding("k8s-kustomization", "error", ("kubernetes",), f"{target.KUSTOMIZATION} does not list {path}", "render again")


@dataclass(frozen=True)
class Selecting:
    """A Service or PodDisruptionBudget as the checks across objects see it: where it is,
    its selector, and a budget's limits."""

    where: str
    at: tuple
    namespace: str
    kind: str
    selector: dict | None
    max_unavailable: object = None
    min_available: object = None


@dataclass(frozen=True)
class Workload:
    """A workload's pods as the checks across objects see them."""

    at: tuple
    pod: netpol.Pod
    replicas: int


class Gathered:
    """What the checks across objects need from every object (selectors, pod labels and
    ports, replicas, policies), gathered in the one pass over them, without the objects.
    Workloads are indexed by label so a selector finds its pods without scanning every
    workload (thousands of Services and PDBs each look once)."""

    def __init__(self) -> None:
        self.workloads: list[Workload] = []
        self.selecting: list[Selecting] = []
        self.policies: list[dict] = []
        self._by_label: dict[tuple, list[Workload]] = {}

    def add(self, item: target.RenderedObject) -> None:
        document = item.document
        if not isinstance(document, dict):
            return
        kind = document.get("kind")
        namespace = (document.get("metadata") or {}).get("namespace", "")
        template = target.pod_template(document)
        if template is not None:
            key = f"{namespace or 'default'}/{(document.get('metadata') or {}).get('name')}"
            pod = netpol.pod_from_template(key, namespace or "default", template)
            # a run (Job, CronJob) has one pod at a time: msgen's CronJobs forbid overlapping runs
            workload = Workload(item.at, pod, (document.get("spec") or {}).get("replicas", 1) if kind not in RUN_KINDS else 1)
            self.workloads.append(workload)
            for label in pod.labels.items():
                self._by_label.setdefault(label, []).append(workload)
        elif kind in ("Service", "PodDisruptionBudget"):
            spec = document.get("spec") or {}
            limits = (spec.get("maxUnavailable"), spec.get("minAvailable"))
            self.selecting.append(Selecting(item.where(), item.at, namespace, kind, spec.get("selector"), *limits))
        elif kind == "NetworkPolicy":
            spec = document.get("spec") or {}
            self.policies.append({"metadata": {"namespace": namespace or "default"}, "spec": spec})

    def matching(self, namespace: str, selector: dict) -> list[Workload]:
        """The workloads in `namespace` whose pods a label selector picks."""
        match = selector.get("matchLabels") or {}
        if not match:
            return []  # msgen's selectors always name labels; an empty one is reported as matching nothing
        first = next(iter(match.items()))
        namespace = namespace or "default"
        return [w for w in self._by_label.get(first, []) if w.pod.namespace == namespace and netpol.match_labels(selector, w.pod.labels)]


def service_selector_findings(gathered: Gathered) -> Iterator[Finding]:
    """Every Service selects the pods of some workload in its namespace."""
    for item in gathered.selecting:
        selector = item.selector
        if item.kind != "Service" or not selector:
            continue  # a Service without selector is managed by hand (EndpointSlices)
        if not gathered.matching(item.namespace, {"matchLabels": selector}):
            yield finding(
                "k8s-service-selector",
                "error",
                item.at,
                f"{item.where}: the selector {selector} matches no workload's pods",
                "the selector must match a Deployment or StatefulSet's pod labels",
            )


def budget_findings(gathered: Gathered) -> Iterator[Finding]:
    """A PodDisruptionBudget must allow one eviction, or every node drain blocks on it."""
    for item in gathered.selecting:
        if item.kind != "PodDisruptionBudget":
            continue
        replicas = sum(workload.replicas for workload in gathered.matching(item.namespace, item.selector or {}))
        unavailable, available = item.max_unavailable, item.min_available
        blocks = unavailable in (0, "0%") or available == "100%" or (isinstance(available, int) and available >= replicas)
        if blocks:
            yield finding(
                "k8s-pdb",
                "error",
                item.at,
                f"{item.where}: the budget allows no disruption of its {replicas} pod(s): a node drain would block",
                "use maxUnavailable: 1",
            )


GATEWAY_ROLE = "gateway"
PROMETHEUS_ROLE = "prometheus"
DNS_ROLE = "dns"
OUTSIDER_ROLE = "outsider"
BACKUPS = "backups"  # a datastore's backup pods: `backups:<datastore>`


def network_pods(plan, workloads: list[Workload]) -> tuple[list[netpol.Pod], dict[str, str]]:
    """The namespace's pods from the rendered workloads, and the pods around it that matter
    (Traefik, Prometheus, DNS, and strangers inside and outside): pod key -> role."""
    kube = plan.kubernetes
    pods, roles = [], {}
    for workload in workloads:
        pods.append(workload.pod)
        roles[workload.pod.key] = _role(workload.at, workload.pod)
    outsiders = [
        (f"{kube.gateway_namespace}/traefik", kube.gateway_namespace, dict(k8s.TRAEFIK_POD), GATEWAY_ROLE),
        ("monitoring/prometheus", "monitoring", dict(k8s.PROMETHEUS_POD), PROMETHEUS_ROLE),
        (f"{k8s.DNS_NAMESPACE}/coredns", k8s.DNS_NAMESPACE, dict(k8s.DNS_POD), DNS_ROLE),
        (f"{kube.namespace}/stranger", kube.namespace, {"app": "stranger"}, OUTSIDER_ROLE),
        (f"{kube.gateway_namespace}/stranger", kube.gateway_namespace, {"app": "stranger"}, OUTSIDER_ROLE),
        ("elsewhere/stranger", "elsewhere", {"app": "stranger"}, OUTSIDER_ROLE),
    ]
    dns_ports = {"dns": (("UDP", 53), ("TCP", 53))}
    for key, namespace, labels, role in outsiders:
        pods.append(netpol.Pod(key, namespace, labels, dns_ports if role == DNS_ROLE else {}))
        roles[key] = role
    return pods, roles


def backup_role(datastore: str) -> str:
    return f"{BACKUPS}:{datastore}"


def _role(at: tuple, pod: netpol.Pod) -> str:
    if at[0] == "datastores" and pod.labels.get(k8s.COMPONENT_LABEL) == k8s.BACKUP_COMPONENT:
        return backup_role(at[1])
    if at[0] in ("services", "datastores"):
        return f"{at[0]}:{at[1]}"
    if netpol.match_labels({"matchLabels": k8s.PROMETHEUS_POD}, pod.labels):
        return PROMETHEUS_ROLE
    return OUTSIDER_ROLE


def expected_ingress(plan, role: str, pod: netpol.Pod) -> dict[str, set]:
    """Role of a source -> the ports it may open on this pod, per the blueprint."""
    kind, _, name = role.partition(":")
    expected: dict[str, set] = {}
    metrics = set(pod.ports.get("metrics", ()))
    if kind == "services":
        service = plan.service(name)
        http = set(pod.ports.get("http", ()))
        if plan.gateway is not None and plan.gateway.route(name) is not None:
            expected[GATEWAY_ROLE] = set(http)
        for caller in plan.kubernetes.callers[name]:
            expected[f"services:{caller}"] = http | own_ports(service)
        if service.metrics_port is not None:
            expected[PROMETHEUS_ROLE] = metrics
    elif kind == "datastores":
        store = plan.datastore(name)
        if store.owner is not None:
            expected[f"services:{store.owner}"] = {("TCP", store.port)}
        if name in plan.kubernetes.backups:
            expected[backup_role(name)] = {("TCP", store.port)}
        if store.scraped:
            expected[PROMETHEUS_ROLE] = metrics
    return expected


def own_ports(service) -> set:
    """A service's further ports, which its callers may open besides http."""
    return {(port.protocol.upper(), port.port) for port in service.service.ports}


def expected_egress(plan, role: str, pods_by_role: dict[str, netpol.Pod]) -> dict[str, set]:
    kind, _, name = role.partition(":")
    expected: dict[str, set] = {DNS_ROLE: {("UDP", 53), ("TCP", 53)}}
    if kind == "services":
        service = plan.service(name)
        for callee in service.calls:
            http = set(pods_by_role[f"services:{callee}"].ports.get("http", ()))
            expected[f"services:{callee}"] = http | own_ports(plan.service(callee))
        if service.datastore is not None:
            expected[f"datastores:{service.datastore}"] = {("TCP", plan.datastore(service.datastore).port)}
    elif kind == BACKUPS:
        expected[f"datastores:{name}"] = {("TCP", plan.datastore(name).port)}
    return expected


def _by_role(allowed: dict | None, roles: dict[str, str]) -> dict[str, set] | None:
    if allowed is None:
        return None
    result: dict[str, set] = {}
    for key, ports in allowed.items():
        role = roles[key]
        result.setdefault(role, set())
        result[role] |= {("*", 0)} if ports is None else ports
    return result


def network_findings(plan, gathered: Gathered) -> Iterator[Finding]:
    """Reachability computed from the rendered policies equals what the blueprint declares."""
    pods, roles = network_pods(plan, gathered.workloads)
    network = netpol.Network(pods, gathered.policies)
    pods_by_role = {roles[pod.key]: pod for pod in pods if ":" in roles[pod.key]}
    for pod in pods:
        role = roles[pod.key]
        if ":" not in role:
            continue
        kind, _, name = role.partition(":")
        at = ("datastores", name, "backup") if kind == BACKUPS else (kind, name)
        yield from _compare(
            f"ingress to {role}", at, _by_role(network.ingress_sources(pod), roles), expected_ingress(plan, role, pod)
        )
        yield from _compare(
            f"egress from {role}", at, _by_role(network.egress_targets(pod), roles), expected_egress(plan, role, pods_by_role)
        )
        yield from _compare_blocks(role, at, network.egress_blocks(pod), expected_blocks(plan, role))


def expected_blocks(plan, role: str) -> set[tuple[str, tuple[str, ...], tuple[str, int]]]:
    """The outside addresses a workload may reach: only a service's declared `egress`."""
    kind, _, name = role.partition(":")
    if kind != "services":
        return set()
    blocks = set()
    for dependency in plan.service(name).service.egress:
        if dependency.block is not None:
            blocks.add((dependency.block, (), ("TCP", dependency.port)))
        else:  # a name: every public address, never the private, shared or link-local ranges
            blocks.add(("0.0.0.0/0", tuple(sorted(target.NOT_PUBLIC)), ("TCP", dependency.port)))
    return blocks


def _compare_blocks(role: str, at: tuple, actual: set | None, expected: set) -> Iterator[Finding]:
    if actual is None or actual == expected:
        return  # an unrestricted pod is reported by _compare
    for cidr, excepted, (protocol, port) in sorted(actual ^ expected):
        verb = "allow" if (cidr, excepted, (protocol, port)) in actual else "block"
        yield finding(
            "k8s-network-policy",
            "error",
            at,
            f"egress from {role}: the policies {verb} {cidr} on {port}/{protocol}, unlike the blueprint's egress",
            "render again; a hand-edited policy opens or closes paths the blueprint does not declare",
        )


def _compare(what: str, at: tuple, actual: dict[str, set] | None, expected: dict[str, set]) -> Iterator[Finding]:
    if actual is None:
        yield finding(
            "k8s-network-policy",
            "error",
            at,
            f"{what}: no NetworkPolicy restricts it",
            "render again: msgen writes a policy per workload and a default deny",
        )
        return
    for role in sorted(set(actual) | set(expected)):
        have, want = actual.get(role, set()), expected.get(role, set())
        if have != want:
            shown = ", ".join(f"{port}/{protocol}" for protocol, port in sorted(have ^ want))
            verb = "allow" if have - want else "block"
            yield finding(
                "k8s-network-policy",
                "error",
                at,
                f"{what}: the policies {verb} {role} on {shown}, unlike the blueprint's calls and datastores",
                "render again; a hand-edited policy opens or closes paths the blueprint does not declare",
            )
