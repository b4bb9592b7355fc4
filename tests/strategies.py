"""Hypothesis strategies for valid blueprints (format v1, see blueprints/reference.yaml).

`blueprints()` draws blueprint dicts of varied shapes that `msgen validate` should accept
without an error finding: regions with jurisdictions and a round-trip time for every pair,
hosts big enough for what runs on them, services with an acyclic call graph, at most one
datastore per service, personal data only where the policy allows it, and optional gateway,
observability, Kubernetes, compose and environment overlays. Budgets are generous on
purpose: the point is to reach the renderers with many shapes, not to probe the limits
(other tests do that). `write_blueprint` writes one as YAML that reads back identically
under msgen's YAML 1.2 loader.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from msgen.loader import load_yaml
from msgen.model.versions import ENGINE_LINES, KUBERNETES_VERSIONS

# For tests that run msgen per example: derandomized, so that a failure comes from a change in
# the code rather than from luck (Hypothesis may still draw other examples when the modules
# imported before a test differ, e.g. one file run alone versus the whole suite); no example
# database left behind; no deadline, since one example runs several commands.
GENERATED = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

REGION_NAMES = ("oslo", "frankfurt", "stockholm", "us-east", "helsinki", "amsterdam")
# EEA members and one outside it, so that personal data meets both verdicts
JURISDICTIONS = ("NO", "DE", "SE", "US", "FI", "NL")
# names msgen keeps for its own containers, and the suffix of its exporters
RESERVED = frozenset({"gateway", "prometheus", "grafana", "loki", "alloy"})

# DNS-1123 labels, short enough that every derived object name stays a valid Kubernetes name
names = st.from_regex(r"[a-z][a-z0-9]{0,9}(-[a-z0-9]{1,6})?", fullmatch=True).filter(
    lambda name: name not in RESERVED and not name.endswith("-exporter")
)
domains = st.sampled_from(("shop.example.com", "pay.example.no", "api.example.org", "a.b.example.net"))
image_tags = st.from_regex(r"v?[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{1,2}", fullmatch=True)
durations_ms = st.sampled_from(("5ms", "10ms", "25ms", "40ms"))


def engines() -> st.SearchStrategy[tuple[str, str]]:
    """(engine, version) for every release line msgen accepts, read from msgen's own table."""
    return st.sampled_from([(engine, line) for engine, lines in sorted(ENGINE_LINES.items()) for line in lines])


@st.composite
def datastores(draw, engine_version: tuple[str, str] | None = None) -> dict:
    engine, version = engine_version or draw(engines())
    store: dict = {"engine": engine, "version": version}
    innodb = engine in ("mysql", "mariadb")
    # InnoDB engines need 1Gi for their default connection count; 512Mi fits 50 connections
    memory = draw(st.sampled_from(("512Mi", "1Gi", "2Gi", "4Gi") if innodb else ("256Mi", "512Mi", "1Gi", "2Gi")))
    if memory != "1Gi" or draw(st.booleans()):
        store["memory"] = memory
    if draw(st.booleans()):
        store["cpu"] = draw(st.sampled_from(("500m", 1, 2)))
    if draw(st.booleans()):
        store["storage"] = draw(st.sampled_from(("5Gi", "10Gi", "50Gi")))
    if engine == "redis":
        if draw(st.booleans()):
            store["role"] = draw(st.sampled_from(("cache", "store")))
    elif innodb and memory == "512Mi":
        store["max_connections"] = 50
    elif draw(st.booleans()):
        # about 4 MiB per InnoDB connection at least: the count must fit the memory
        most = {"256Mi": 50, "512Mi": 50, "1Gi": 100, "2Gi": 200, "4Gi": 400}[memory]
        store["max_connections"] = draw(st.sampled_from([count for count in (20, 50, 100, 200, 400) if count <= most]))
    return store


@st.composite
def blueprints(draw, prometheus_operator: bool = True) -> dict:
    """A valid blueprint dict (see the module docstring for what "valid" covers).

    `prometheus_operator` lets Kubernetes blueprints ask for PodMonitors and a PrometheusRule.
    """
    region_names = draw(st.lists(st.sampled_from(REGION_NAMES), min_size=1, max_size=3, unique=True))
    regions = {name: {"jurisdiction": draw(st.sampled_from(JURISDICTIONS))} for name in region_names}
    rtt_ms = {f"{a}/{b}": draw(st.sampled_from((5, 12.5, 30, 90, 150))) for a, b in combinations(region_names, 2)}

    hosts: list[dict] = []
    for region in region_names:
        for index in range(1, draw(st.integers(1, 4)) + 1):
            host = {
                "name": f"{region[:3]}-{index}",
                "region": region,
                "vcpu": draw(st.sampled_from((16, 32, 64))),
                "memory": draw(st.sampled_from(("64Gi", "128Gi", "256Gi"))),
                "storage": draw(st.sampled_from(("nvme", "ssd", "hdd"))),
            }
            if draw(st.booleans()):
                host["zone"] = draw(st.sampled_from(("a", "b", "c")))
            if draw(st.integers(0, 3)) == 0:
                host["iops"] = draw(st.sampled_from((3000, 20000, 100000)))
            hosts.append(host)
    nodes_in = {region: sum(1 for host in hosts if host["region"] == region) for region in region_names}

    # services and datastores share one namespace of names
    all_names = draw(st.lists(names, min_size=2, max_size=16, unique=True))
    service_names = all_names[: max(1, min(8, len(all_names) // 2 + draw(st.integers(0, 4))))]
    spare_names = [name for name in all_names if name not in service_names]

    gateway = None
    if draw(st.booleans()):
        gateway = {"domain": draw(domains)}
        if draw(st.booleans()):
            gateway["acme_email"] = "ops@" + gateway["domain"]
        if draw(st.booleans()):
            gateway["http3"] = draw(st.booleans())

    kubernetes = None
    if draw(st.booleans()):
        kubernetes = {"version": draw(st.sampled_from(KUBERNETES_VERSIONS))}
        if draw(st.booleans()):
            kubernetes["namespace"] = draw(names)
        if draw(st.booleans()):
            kubernetes["anti_affinity"] = draw(st.sampled_from(("required", "preferred")))
        if draw(st.booleans()):
            kubernetes["ingress"] = draw(st.sampled_from(("host_ports", "load_balancer")))
    required_spread = kubernetes is not None and kubernetes.get("anti_affinity", "required") == "required"

    policy_codes = None
    if draw(st.booleans()):
        policy_codes = draw(st.lists(st.sampled_from((*JURISDICTIONS, "EEA")), min_size=1, max_size=3, unique=True))
    allowed = _expand(policy_codes)

    services: dict[str, dict] = {}
    datastores_out: dict[str, dict] = {}
    any_retry = False
    for position, name in enumerate(service_names):
        service: dict = {
            "image": f"registry.example.com/team/{name}:{draw(image_tags)}",
            "port": draw(st.sampled_from((80, 3000, 8080, 8443, 9000))),
        }
        region = region_names[0]
        if len(region_names) > 1 or draw(st.booleans()):
            region = draw(st.sampled_from(region_names))
            service["region"] = region
        if draw(st.booleans()):
            # required anti-affinity puts one replica per node of the region
            most = nodes_in[region] if required_spread else 4
            service["replicas"] = draw(st.integers(1, max(1, most)))
        elif required_spread and nodes_in[region] < 2:
            service["replicas"] = 1
        if gateway is not None and draw(st.booleans()):
            route: dict = {"path_prefix": draw(st.sampled_from((f"/{name}", f"/api/{name}", f"/v1/{name}/")))}
            if draw(st.integers(0, 3)) == 0:
                route["host"] = f"{name}.{gateway['domain']}"
            service["route"] = route
        if draw(st.booleans()):
            metrics: dict = {"path": draw(st.sampled_from(("/metrics", "/prometheus")))}
            if draw(st.booleans()):
                metrics["port"] = 9100 if service["port"] != 9100 else 9101
            service["metrics"] = metrics
        if draw(st.booleans()):
            service["health"] = {"path": draw(st.sampled_from(("/health", "/healthz", "/ready")))}
        if draw(st.booleans()):
            service["latency"] = {"p99": draw(durations_ms)}
        later = service_names[position + 1 :]
        if later and draw(st.booleans()):
            # calls only go to services later in the list: the graph stays acyclic
            service["calls"] = draw(st.lists(st.sampled_from(later), min_size=1, max_size=min(3, len(later)), unique=True))
            if draw(st.booleans()):
                service["parallel_calls"] = True
        if "route" in service and draw(st.booleans()):
            service["rate_limit"] = {"average": draw(st.integers(1, 500)), "burst": draw(st.integers(1, 200))}
        if draw(st.integers(0, 3)) == 0:
            service["circuit_breaker"] = draw(
                st.sampled_from(({"failure_ratio": 0.5, "min_requests": 5}, {"expression": "NetworkErrorRatio() > 0.3"}))
            )
        if draw(st.integers(0, 3)) == 0:
            service["retry"] = {"attempts": draw(st.integers(0, 2))}
            any_retry = True
        if draw(st.integers(0, 3)) == 0:
            service["env"] = {"LOG_LEVEL": draw(st.sampled_from(("info", "debug"))), "WORKERS": draw(st.integers(1, 8))}
        if draw(st.integers(0, 4)) == 0:
            service["secrets"] = ["API_KEY"]
        if draw(st.integers(0, 3)) == 0:
            service["resources"] = {
                "requests": {"cpu": "100m", "memory": "128Mi"},
                "limits": {"cpu": draw(st.sampled_from(("250m", "500m", 1))), "memory": draw(st.sampled_from(("256Mi", "512Mi")))},
            }
        may_hold_personal_data = allowed is None or regions[region]["jurisdiction"] in allowed
        if may_hold_personal_data and draw(st.booleans()):
            service["personal_data"] = True
        if spare_names and draw(st.booleans()):
            store_name = spare_names.pop(0)
            store = draw(datastores())
            if draw(st.integers(0, 2)) == 0:
                # on a host of the owner's region, so that residency stays the owner's
                store["host"] = draw(st.sampled_from([host["name"] for host in hosts if host["region"] == region]))
            datastores_out[store_name] = store
            service["datastore"] = store_name
        services[name] = service

    blueprint: dict = {
        "version": 1,
        "project": draw(names),
        "regions": regions,
    }
    if draw(st.booleans()):
        blueprint["description"] = "Generated: " + ", ".join(service_names)
    if rtt_ms:
        blueprint["rtt_ms"] = rtt_ms
    blueprint["hosts"] = hosts
    policy: dict = {"latency_budget": "10s"}
    if policy_codes is not None:
        policy["personal_data_in"] = policy_codes
    if any_retry:
        # retries multiply along a call path; the path length is bounded by the service count
        policy["max_retry_amplification"] = 3 ** len(service_names)
    blueprint["policy"] = policy
    if gateway is not None:
        blueprint["gateway"] = gateway
    blueprint["services"] = services
    if datastores_out:
        blueprint["datastores"] = datastores_out
    if draw(st.booleans()):
        observability: dict = {
            "grafana": draw(st.booleans()),
            "loki": draw(st.booleans()),
            "alerts": draw(st.booleans()),
        }
        if draw(st.booleans()):
            prometheus: dict = {"scrape_interval": draw(st.sampled_from(("15s", "30s", "1m")))}
            if kubernetes is not None and prometheus_operator and draw(st.booleans()):
                prometheus["operator"] = True
            observability["prometheus"] = prometheus
        blueprint["observability"] = observability
    if kubernetes is not None:
        blueprint["kubernetes"] = kubernetes
    if draw(st.booleans()) or kubernetes is None:
        blueprint["compose"] = {"host": draw(st.sampled_from([host["name"] for host in hosts]))}
    _contain_personal_data(blueprint, allowed)
    environments = _environments(draw, services, gateway)
    if environments:
        blueprint["environments"] = environments
    return blueprint


def _contain_personal_data(blueprint: dict, allowed: frozenset[str] | None) -> None:
    """Keep personal data inside the policy where it flows beyond its own service: a caller of
    a personal-data service outside the allowed jurisdictions says it only forwards opaque data
    (which stops the flow); off an allowed compose host, personal data keeps no backups there
    and the gateway's access logs (client IPs) are not shipped to Loki."""
    if allowed is None:
        return
    services, regions = blueprint["services"], blueprint["regions"]
    first_region = next(iter(regions))

    def allowed_in(region: str) -> bool:
        return regions[region]["jurisdiction"] in allowed

    personal: set[str] = set()
    for name in reversed(list(services)):  # callees come later in the list
        service = services[name]
        if service.get("personal_data") or any(callee in personal for callee in service.get("calls", ())):
            if service.get("personal_data") or allowed_in(service.get("region", first_region)):
                personal.add(name)
            else:
                service["personal_data"] = False
                service["personal_data_reason"] = "forwards opaque tokens only"
    compose_host = blueprint.get("compose", {}).get("host")
    if compose_host is None:
        return
    compose_region = next(host["region"] for host in blueprint["hosts"] if host["name"] == compose_host)
    if allowed_in(compose_region):
        return
    for name in personal:
        if "datastore" in services[name]:
            blueprint["datastores"][services[name]["datastore"]]["backup"] = {"enabled": False}
    if "gateway" in blueprint and blueprint.get("observability", {}).get("loki"):
        blueprint["observability"]["loki"] = False


def _environments(draw, services: dict[str, dict], gateway: dict | None) -> dict:
    """Overlays that keep the blueprint valid: one replica (fits any node count) and another domain."""
    environments: dict = {}
    for env in draw(st.lists(st.sampled_from(("staging", "dev")), max_size=2, unique=True)):
        overlay: dict = {}
        scaled = draw(st.lists(st.sampled_from(sorted(services)), max_size=2, unique=True))
        if scaled:
            overlay["services"] = {name: {"replicas": 1} for name in scaled}
        if gateway is not None and draw(st.booleans()):
            overlay["gateway"] = {"domain": f"{env}.{gateway['domain']}"}
        if overlay:
            environments[env] = overlay
    return environments


# the members of the EEA among JURISDICTIONS (US is outside)
EEA_MEMBERS = frozenset({"NO", "DE", "SE", "FI", "NL"})


def _expand(codes: list[str] | None) -> frozenset[str] | None:
    if codes is None:
        return None
    return frozenset(member for code in codes for member in (EEA_MEMBERS if code == "EEA" else {code}))


def blueprint_yaml(blueprint: dict) -> str:
    """YAML text for a blueprint dict. PyYAML quotes every string a YAML 1.1 reader would
    take for a number or boolean ("8.0", "16", "NO"), which covers YAML 1.2's cases too."""
    return yaml.safe_dump(blueprint, sort_keys=False, default_flow_style=False, allow_unicode=True)


def write_blueprint(blueprint: dict, path: Path) -> Path:
    """Write `blueprint` to `path` and check that msgen's YAML 1.2 loader reads back the same dict."""
    text = blueprint_yaml(blueprint)
    data, _ = load_yaml(text, str(path))
    assert data == blueprint, "the YAML does not read back as the blueprint (a quoting problem)"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
