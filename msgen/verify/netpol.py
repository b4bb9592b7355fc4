"""NetworkPolicy semantics, evaluated: which pod may open a connection to which pod and port.

A small model of the Kubernetes rules (networking.k8s.io/v1): a pod selected by no policy of
a type is open in that direction; a selected pod accepts only what some selecting policy's
rule allows; a peer's podSelector alone means the policy's namespace, a namespaceSelector
picks namespaces by their labels (every namespace has `kubernetes.io/metadata.name`);
a rule without ports allows every port, a named port resolves on the destination pod.
Pods are indexed by label so that a thousand-service namespace evaluates in linear time.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

NAMESPACE_KEY = "kubernetes.io/metadata.name"
Port = tuple[str, int]  # (protocol, number)


@dataclass(frozen=True)
class Pod:
    key: str  # namespace/name
    namespace: str
    labels: dict[str, str] = field(hash=False, compare=False)
    ports: dict[str, tuple[Port, ...]] = field(default_factory=dict, hash=False, compare=False)  # name -> ports
    numbers: tuple[Port, ...] = ()


def match_labels(selector: dict | None, labels: dict[str, str]) -> bool:
    """Kubernetes label selector semantics (an empty selector matches everything)."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


class Network:
    """Pods and the policies over them; answers who may reach whom, on which ports."""

    def __init__(self, pods: list[Pod], policies: list[dict]):
        self.pods = pods
        self.by_key = {pod.key: pod for pod in pods}
        self._index: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._by_namespace: dict[str, set[str]] = defaultdict(set)
        for pod in pods:
            self._by_namespace[pod.namespace].add(pod.key)
            for item in pod.labels.items():
                self._index[item].add(pod.key)
        self.ingress_policies: dict[str, list[dict]] = defaultdict(list)
        self.egress_policies: dict[str, list[dict]] = defaultdict(list)
        for policy in policies:
            namespace = policy["metadata"].get("namespace", "default")
            spec = policy.get("spec") or {}
            types = spec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in spec else ["Ingress"])
            for key in self.select(spec.get("podSelector"), {namespace}):
                if "Ingress" in types:
                    self.ingress_policies[key].append(policy)
                if "Egress" in types:
                    self.egress_policies[key].append(policy)

    def namespaces(self, selector: dict) -> set[str]:
        return {name for name in self._by_namespace if match_labels(selector, {NAMESPACE_KEY: name})}

    def select(self, selector: dict | None, namespaces: set[str]) -> set[str]:
        """Keys of the pods in `namespaces` that match a label selector."""
        selector = selector or {}
        candidates: set[str] | None = None
        for item in (selector.get("matchLabels") or {}).items():
            found = self._index.get(item, set())
            candidates = set(found) if candidates is None else candidates & found
        if candidates is None:
            candidates = set().union(*(self._by_namespace[name] for name in namespaces)) if namespaces else set()
        return {key for key in candidates if self.by_key[key].namespace in namespaces and match_labels(selector, self.by_key[key].labels)}

    def peers(self, peer: dict, namespace: str) -> set[str]:
        if "ipBlock" in peer:
            return set()
        namespaces = self.namespaces(peer["namespaceSelector"]) if "namespaceSelector" in peer else {namespace}
        return self.select(peer.get("podSelector"), namespaces)

    def _ports(self, rule: dict, target: Pod) -> set[Port] | None:
        """The ports a rule opens on `target` (None: every port)."""
        if not rule.get("ports"):
            return None
        opened: set[Port] = set()
        for entry in rule["ports"]:
            protocol, port = entry.get("protocol", "TCP"), entry.get("port")
            if port is None:
                return None
            if isinstance(port, str):
                opened.update(p for p in target.ports.get(port, ()) if p[0] == protocol)
            else:
                opened.add((protocol, port))
        return opened

    def _allowed(self, policies: list[dict], section: str, direction: str, pod: Pod) -> dict[str, set[Port] | None] | None:
        """Peer key -> ports, over every rule of every policy selecting `pod`; None if unrestricted."""
        if not policies:
            return None
        allowed: dict[str, set[Port] | None] = {}
        for policy in policies:
            namespace = policy["metadata"].get("namespace", "default")
            for rule in (policy.get("spec") or {}).get(section) or []:
                peers = rule.get(direction)
                keys = set(self.by_key) if not peers else set().union(*(self.peers(peer, namespace) for peer in peers))
                for key in keys:
                    target = pod if section == "ingress" else self.by_key[key]
                    ports = self._ports(rule, target)
                    if key in allowed and allowed[key] is None:
                        continue
                    allowed[key] = None if ports is None else (allowed.get(key) or set()) | ports
        return allowed

    def ingress_sources(self, pod: Pod) -> dict[str, set[Port] | None] | None:
        return self._allowed(self.ingress_policies.get(pod.key, []), "ingress", "from", pod)

    def egress_targets(self, pod: Pod) -> dict[str, set[Port] | None] | None:
        return self._allowed(self.egress_policies.get(pod.key, []), "egress", "to", pod)

    def egress_blocks(self, pod: Pod) -> set[tuple[str, tuple[str, ...], Port]] | None:
        """The address blocks the pod may reach outside the cluster, each with its exceptions and
        port: (cidr, except, port); None if its egress is unrestricted. A rule with no ports
        gives port ("*", 0)."""
        policies = self.egress_policies.get(pod.key, [])
        if not policies:
            return None
        blocks = set()
        for policy in policies:
            for rule in (policy.get("spec") or {}).get("egress") or []:
                for peer in rule.get("to") or []:
                    if "ipBlock" not in peer:
                        continue
                    block = peer["ipBlock"]
                    ports = [(entry.get("protocol", "TCP"), entry.get("port")) for entry in rule.get("ports") or []] or [("*", 0)]
                    blocks.update((block["cidr"], tuple(sorted(block.get("except") or ())), port) for port in ports)
        return blocks

    def may_connect(self, source: Pod, target: Pod, port: Port) -> bool:
        """Both ends agree: the source's egress and the target's ingress allow the port."""
        egress = self.egress_targets(source)
        if egress is not None and not _admits(egress, target.key, port):
            return False
        ingress = self.ingress_sources(target)
        return ingress is None or _admits(ingress, source.key, port)


def _admits(allowed: dict[str, set[Port] | None], peer: str, port: Port) -> bool:
    if peer not in allowed:
        return False
    ports = allowed[peer]
    return ports is None or port in ports


def pod_from_template(key: str, namespace: str, template: dict) -> Pod:
    """A pod as its workload's template describes it: labels and every container's ports."""
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    named: dict[str, list[Port]] = defaultdict(list)
    numbers: list[Port] = []
    for container in (template.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            entry = (port.get("protocol", "TCP"), port["containerPort"])
            numbers.append(entry)
            if "name" in port:
                named[port["name"]].append(entry)
    return Pod(key, namespace, labels, {name: tuple(ports) for name, ports in named.items()}, tuple(numbers))
