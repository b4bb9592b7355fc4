"""Who can reach whom: the compose networks walked, against the blueprint and against the
Kubernetes NetworkPolicies of the same blueprint (evaluated by msgen/verify/netpol.py).

A Docker network connects every pair of its containers in both directions, so compose can
only say "these two may talk"; Kubernetes also says who opens the connection. The
comparison is therefore on pairs: compose connects two workloads exactly when some
NetworkPolicy lets one of them open a connection to the other. The workload is the pod: a
datastore's exporter is a sidecar in Kubernetes and its own container in compose.
"""

from __future__ import annotations

import ipaddress
import itertools
from pathlib import Path

import pytest
import yaml

from msgen.plan.networks import allocate, prefix_for
from msgen.verify import kubernetes as verifier
from msgen.verify import netpol
from tests.rendering import render_in_memory, verification

ROOT = Path(__file__).resolve().parent.parent
MONITORS = ("grafana", "loki", "alloy")  # outside the application's namespace in Kubernetes
HOST_AGENTS = ("node-exporter", "cadvisor")  # compose only: Kubernetes scrapes the cluster's own

BLUEPRINT = """\
version: 1
project: mesh
regions: {home: {jurisdiction: DE}}
policy: {personal_data_in: [EEA]}
gateway: {domain: mesh.example.com}
services:
  front:
    image: example/front:1.0.0
    port: 8080
    replicas: 3
    route: {path_prefix: /}
    metrics: {port: 9100}
    calls: [orders, catalog]
  orders:
    image: example/orders:1.0.0
    port: 8080
    calls: [catalog, payments]
    datastore: orders-db
  catalog:
    image: example/catalog:1.0.0
    port: 8080
    datastore: catalog-cache
  payments:
    image: example/payments:1.0.0
    port: 8080
    personal_data: true
    egress:
      - {host: api.stripe.com, port: 443, jurisdiction: US}
      - {host: 192.0.2.0/24, port: 8443, jurisdiction: DE}
  reports:
    image: example/reports:1.0.0
    port: 8080
    metrics: {}
  lonely:
    image: example/lonely:1.0.0
    port: 8080
datastores:
  orders-db: {engine: postgres, version: "16", memory: 1Gi, cpu: 1, storage: 10Gi}
  catalog-cache: {engine: redis, version: "7", memory: 256Mi, role: cache}
observability:
  prometheus: {}
  grafana: true
  loki: true
kubernetes: {version: "1.30"}
compose: {}
"""


def compose_links(document: dict) -> tuple[dict[str, set[str]], set[str]]:
    """Container -> the containers it shares a network with; and the containers with a route out."""
    members: dict[str, set[str]] = {}
    for name, entry in document["services"].items():
        for network in entry.get("networks", []):
            members.setdefault(network, set()).add(name)
    links: dict[str, set[str]] = {name: set() for name in document["services"]}
    for group in members.values():
        for name in group:
            links[name] |= group - {name}
    outside = {name for network, group in members.items() if not document["networks"][network].get("internal") for name in group}
    return links, outside


def compose_document(rendered) -> dict:
    return yaml.safe_load(rendered.files["compose/docker-compose.yml"].text)


def pod_role(plan, container: str) -> str | None:
    """The Kubernetes role of a compose container (None: no counterpart in the namespace's policies)."""
    if container in {service.name for service in plan.services}:
        return f"services:{container}"
    if container in {store.name for store in plan.datastores}:
        return f"datastores:{container}"
    if container in HOST_AGENTS:
        return None
    if container.endswith("-exporter"):
        return f"datastores:{container.removesuffix('-exporter')}"
    backed_up = {store.backup.container: store.name for store in plan.datastores if store.backup is not None}
    if container in backed_up:
        return verifier.backup_role(backed_up[container])  # the CronJob's pods
    if container in ("gateway", "prometheus"):
        return container
    assert container in MONITORS, container
    return None


def compose_pairs(rendered) -> tuple[set[frozenset[str]], set[str]]:
    links, outside = compose_links(compose_document(rendered))
    pairs = set()
    for container, peers in links.items():
        for peer in peers:
            ends = {pod_role(rendered.plan, container), pod_role(rendered.plan, peer)}
            if None not in ends and len(ends) == 2:
                pairs.add(frozenset(ends))
    return pairs, {pod_role(rendered.plan, name) for name in outside}


def kubernetes_pairs(rendered, roles_wanted: set[str]) -> tuple[set[frozenset[str]], set[str]]:
    gathered = verifier.Gathered()
    for item in verifier.rendered_objects(rendered.files):
        gathered.add(item)
    pods, roles = verifier.network_pods(rendered.plan, gathered.workloads)
    network = netpol.Network(pods, gathered.policies)
    by_role = {roles[pod.key]: pod for pod in pods if roles[pod.key] in roles_wanted}
    pairs = set()
    for a, source in by_role.items():
        for b, target in by_role.items():
            ports = target.numbers or ((protocol, port) for ports in target.ports.values() for protocol, port in ports)
            if a != b and any(network.may_connect(source, target, port) for port in ports):
                pairs.add(frozenset((a, b)))
    outside = {role for role, pod in by_role.items() if network.egress_blocks(pod)}
    return pairs, outside


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    path = tmp_path_factory.mktemp("mesh") / "blueprint.yaml"
    path.write_text(BLUEPRINT)
    return render_in_memory(path)


@pytest.fixture(scope="module")
def reference():
    return render_in_memory(ROOT / "blueprints" / "reference.yaml")


def expected_peers(plan, service) -> set[str]:
    """What the blueprint lets a service talk to (in either direction)."""
    blueprint = plan.blueprint
    peers = {f"services:{callee}" for callee in service.calls}
    peers |= {f"services:{name}" for name, other in blueprint.services.items() if service.name in other.calls}
    if service.datastore is not None:
        peers.add(f"datastores:{service.datastore}")
    if plan.gateway is not None and plan.gateway.route(service.name) is not None:
        peers.add("gateway")
    if service.metrics_port is not None and plan.observability is not None and plan.observability.prometheus:
        peers.add("prometheus")
    return peers


@pytest.mark.parametrize("which", ["mesh", "reference"])
def test_each_service_reaches_exactly_what_the_blueprint_declares(request, which):
    rendered = request.getfixturevalue(which)
    pairs, outside = compose_pairs(rendered)
    for service in rendered.plan.services:
        me = f"services:{service.name}"
        reached = {next(iter(pair - {me})) for pair in pairs if me in pair}
        assert reached == expected_peers(rendered.plan, service), service.name
        assert (me in outside) == bool(service.service.egress), service.name
    assert outside - {f"services:{s.name}" for s in rendered.plan.services} == {"gateway"}


@pytest.mark.parametrize("which", ["mesh", "reference"])
def test_compose_reachability_equals_the_network_policies(request, which):
    rendered = request.getfixturevalue(which)
    pairs, outside = compose_pairs(rendered)
    wanted = {role for pair in pairs for role in pair} | {f"services:{s.name}" for s in rendered.plan.services}
    wanted |= {f"datastores:{d.name}" for d in rendered.plan.datastores}
    wanted |= {verifier.backup_role(d.name) for d in rendered.plan.datastores if d.backup is not None}
    policy_pairs, policy_outside = kubernetes_pairs(rendered, wanted | {"gateway", "prometheus"})
    if not (rendered.plan.observability and rendered.plan.observability.prometheus):
        policy_pairs = {pair for pair in policy_pairs if "prometheus" not in pair}
    # Traefik and Prometheus both run outside the namespace: no policy of it governs that pair
    assert pairs - {frozenset(("gateway", "prometheus"))} == policy_pairs
    assert outside - {"gateway"} == policy_outside
    assert verification(rendered) == []


def test_co_callers_and_strangers_do_not_meet(mesh):
    links, outside = compose_links(compose_document(mesh))
    # front and orders both call catalog, yet they share only their own call network
    assert links["front"] & {"orders", "catalog"} == {"orders", "catalog"}
    assert "payments" not in links["front"] and "reports" not in links["front"]
    assert links["lonely"] == set() and "network_mode" in compose_document(mesh)["services"]["lonely"]
    assert links["orders-db"] == {"orders", "orders-db-exporter", "orders-db-backup"}
    assert links["orders-db-backup"] == {"orders-db"}
    assert "catalog-cache-backup" not in links  # a cache is not backed up
    assert links["orders-db-exporter"] == {"orders-db", "prometheus"}
    assert outside == {"gateway", "payments"}


def test_declared_egress_becomes_policy_rules_and_residency_transfers(mesh):
    documents = [doc for built in mesh.files.values() if built.path.startswith("kubernetes/") for doc in built.documents]
    policy = next(d for d in documents if d.get("kind") == "NetworkPolicy" and d["metadata"]["name"] == "payments")
    blocks = [rule["to"][0]["ipBlock"] for rule in policy["spec"]["egress"] if "ipBlock" in rule["to"][0]]
    assert blocks == [
        {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"]},
        {"cidr": "192.0.2.0/24"},
    ]
    transfers = [f for f in mesh.findings if f.id == "residency-transfer"]
    assert [(f.path, "api.stripe.com:443" in f.message) for f in transfers] == [("services.payments.egress[0]", True)]


def test_a_hand_opened_egress_is_a_verification_finding(mesh):
    from tests.rendering import edited

    path = "kubernetes/services/reports.yaml"
    text = mesh.files[path].text.replace("  egress:\n", "  egress:\n  - to:\n    - ipBlock: {cidr: 0.0.0.0/0}\n", 1)
    assert text != mesh.files[path].text
    found = verification(mesh, {**mesh.files, path: edited(mesh.files[path], text)})
    assert any(f.id == "verify-k8s-network-policy" and "0.0.0.0/0" in f.message for f in found), found


def test_subnets_stay_disjoint_in_the_pool_at_a_few_hundred_services():
    # a call chain of 400 services, each called by the next, routed and scraped
    addresses = {}
    for index in range(400):
        addresses[f"call_s{index + 1}_s{index}"] = 2 + 2 + 3
        addresses[f"edge_s{index}"] = 1 + 2 + 3
        addresses[f"scrape_s{index}"] = 1 + 2 + 3
    addresses["wide"] = 60 + 3  # a service with many replicas
    placed = allocate("10.201.0.0/16", addresses)
    assert len(placed) == len(addresses)
    subnets = sorted(ipaddress.IPv4Network(subnet) for subnet in placed.values())
    assert all(a.broadcast_address < b.network_address for a, b in itertools.pairwise(subnets))
    assert all(subnet.subnet_of(ipaddress.IPv4Network("10.201.0.0/16")) for subnet in subnets)
    assert ipaddress.IPv4Network(placed["wide"]).prefixlen == prefix_for(63) == 26
    # a network keeps its subnet when another network comes (at most the one whose place it took moves)
    grown = allocate("10.201.0.0/16", {**addresses, "newcomer": 7})
    assert sum(grown[name] != subnet for name, subnet in placed.items()) <= 1
    # a pool too small places what fits and leaves the rest out: "wide" takes a /26, 24 /29s fill the rest
    assert len(allocate("10.201.0.0/24", addresses)) == 1 + 24


def test_a_backup_pod_reaches_its_datastores_port_and_dns_and_nothing_reaches_it(mesh):
    gathered = verifier.Gathered()
    for item in verifier.rendered_objects(mesh.files):
        gathered.add(item)
    pods, roles = verifier.network_pods(mesh.plan, gathered.workloads)
    network = netpol.Network(pods, gathered.policies)
    by_role = {roles[pod.key]: pod for pod in pods}
    backup, store = by_role[verifier.backup_role("orders-db")], by_role["datastores:orders-db"]
    assert verifier.backup_role("catalog-cache") not in by_role  # a cache has no backup
    assert network.may_connect(backup, store, ("TCP", 5432))
    assert not network.may_connect(backup, store, ("TCP", 9187))  # not the exporter's port
    assert not any(network.may_connect(backup, by_role[other], port) for other in ("services:orders", "datastores:catalog-cache") for port in [("TCP", 8080), ("TCP", 6379)])
    assert network.may_connect(backup, by_role["dns"], ("UDP", 53))
    assert network.egress_blocks(backup) == set()  # no address outside the cluster
    # nobody opens a connection to the backup pod, the datastore's owner included
    assert not any(network.may_connect(pod, backup, port) for pod in pods if pod is not backup for port in [("TCP", 5432), ("TCP", 80)])
    # and the owner still reaches the datastore, a stranger does not
    assert network.may_connect(by_role["services:orders"], store, ("TCP", 5432))
    assert not network.may_connect(by_role["outsider"], store, ("TCP", 5432))


def test_host_agents_are_reached_by_prometheus_alone(reference):
    """node-exporter and cadvisor see the host: no container but Prometheus reaches them, and
    they reach nothing outside."""
    links, outside = compose_links(compose_document(reference))
    assert {agent: links[agent] for agent in HOST_AGENTS} == {agent: {"prometheus"} for agent in HOST_AGENTS}
    assert not outside & set(HOST_AGENTS)
