"""Data residency: services and datastores with personal data, jurisdictions, the EEA group, transfers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from msgen.checks import architecture
from msgen.findings import locate
from msgen.model.load import load_blueprint
from msgen.plan import build_plan
from msgen.plan.residency import EEA, allowed_codes

REGIONS = {
    "oslo": {"jurisdiction": "NO"},
    "frankfurt": {"jurisdiction": "DE"},
    "us-east": {"jurisdiction": "US"},
    "zurich": {"jurisdiction": "CH"},
}
RTTS = {"oslo/frankfurt": 30, "oslo/us-east": 100, "frankfurt/us-east": 90, "oslo/zurich": 35, "frankfurt/zurich": 10, "us-east/zurich": 95}


def svc(region: str, **extra) -> dict:
    return {"image": "registry.example.com/app:1.0", "port": 8080, "region": region, **extra}


def write(tmp_path: Path, services: dict, policy=("NO", "EEA"), **top) -> Path:
    document = {"version": 1, "project": "shop", "regions": REGIONS, "rtt_ms": RTTS, "services": services, **top}
    if policy is not None:
        document["policy"] = {"personal_data_in": list(policy)}
    path = tmp_path / "blueprint.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def residency(path: Path):
    loaded = load_blueprint(path)
    plan = build_plan(loaded.blueprint)
    return plan, locate(list(architecture.residency_findings(plan)), loaded.source)


def test_eea_is_the_eu_plus_iceland_liechtenstein_norway():
    assert len(EEA) == 30 and {"IS", "LI", "NO", "DE", "GR", "IE"} <= EEA
    assert not {"CH", "GB", "US", "EL"} & EEA
    assert allowed_codes(["NO"]) == {"NO"} and allowed_codes(["EEA", "CH"]) == EEA | {"CH"}


@pytest.mark.parametrize(
    ("region", "policy", "verdict"),
    [
        ("oslo", ("NO",), "allowed"),
        ("frankfurt", ("NO",), "not allowed"),
        ("frankfurt", ("NO", "EEA"), "allowed"),  # DE is in the EEA
        ("us-east", ("NO", "EEA"), "not allowed"),
        ("zurich", ("EEA",), "not allowed"),  # Switzerland is not in the EEA
        ("zurich", ("EEA", "CH"), "allowed"),
        ("us-east", None, "no policy"),
    ],
)
def test_service_with_personal_data(tmp_path, region, policy, verdict):
    plan, found = residency(write(tmp_path, {"api": svc(region, personal_data=True)}, policy=policy))
    place = next(p for p in plan.residency.placements if p.name == "api")
    assert place.verdict == verdict
    if verdict == "not allowed":
        assert [(f.id, f.severity, f.path) for f in found] == [("residency", "error", "services.api.region")]
        jurisdiction = REGIONS[region]["jurisdiction"]
        assert f"region {region} ({jurisdiction}" in found[0].message and "api" in found[0].message
    else:
        assert found == []


def test_no_personal_data_anywhere_is_fine(tmp_path):
    _, found = residency(write(tmp_path, {"api": svc("us-east")}))
    assert found == []


def test_datastore_inherits_personal_data_and_its_owners_region(tmp_path):
    services = {"api": svc("oslo", personal_data=True, datastore="api-db")}
    datastores = {"api-db": {"engine": "postgres", "version": "16"}}
    plan, found = residency(write(tmp_path, services, datastores=datastores))
    store = next(p for p in plan.residency.placements if p.name == "api-db")
    assert (store.region, store.jurisdiction, store.personal_data, store.verdict) == ("oslo", "NO", True, "allowed")
    assert found == []


def test_datastore_on_another_regions_host(tmp_path):
    services = {"api": svc("oslo", personal_data=True, datastore="api-db")}
    datastores = {"api-db": {"engine": "postgres", "version": "16", "host": "use-1"}}
    hosts = [
        {"name": "osl-1", "region": "oslo", "vcpu": 4, "memory": "8Gi", "storage": "ssd"},
        {"name": "use-1", "region": "us-east", "vcpu": 4, "memory": "8Gi", "storage": "ssd"},
    ]
    path = write(tmp_path, services, datastores=datastores, hosts=hosts)
    plan, found = residency(path)
    store = next(p for p in plan.residency.placements if p.name == "api-db")
    assert (store.region, store.jurisdiction, store.region_from) == ("us-east", "US", "its host use-1")
    # its backups (a claim beside it: no compose host) hold the same data in the same place
    assert sorted((f.id, f.path) for f in found) == [("residency", "datastores.api-db.backup"), ("residency", "datastores.api-db.host")]
    store_finding = next(f for f in found if f.path == "datastores.api-db.host")
    assert "datastore api-db" in store_finding.message and "us-east (US" in store_finding.message
    line = next(n for n, row in enumerate(path.read_text().splitlines(), 1) if "host: use-1" in row)
    assert store_finding.line == line


def test_call_from_personal_data_service_out_of_bounds_is_a_transfer_warning(tmp_path):
    services = {"api": svc("oslo", personal_data=True, calls=["geo", "mailer"]), "geo": svc("frankfurt"), "mailer": svc("us-east")}
    plan, found = residency(write(tmp_path, services))
    assert [(t.caller, t.callee, t.jurisdiction) for t in plan.residency.transfers] == [("api", "mailer", "US")]
    assert [(f.id, f.severity, f.path) for f in found] == [("residency-transfer", "warning", "services.api.calls[1]")]


def test_call_without_personal_data_is_no_transfer(tmp_path):
    services = {"api": svc("oslo", calls=["mailer"]), "mailer": svc("us-east")}
    _, found = residency(write(tmp_path, services))
    assert found == []


def test_personal_data_without_any_region_cannot_be_checked(tmp_path):
    document = {
        "version": 1,
        "project": "shop",
        "policy": {"personal_data_in": ["NO"]},
        "services": {"api": {"image": "registry.example.com/app:1.0", "port": 8080, "personal_data": True}},
    }
    path = tmp_path / "blueprint.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    _, found = residency(path)
    assert [(f.id, f.severity) for f in found] == [("residency-unknown", "warning")]


def test_reference_blueprint_is_resident(reference_blueprint):
    plan, found = residency(reference_blueprint)
    assert found == []
    assert {p.name: p.verdict for p in plan.residency.placements if p.personal_data} == {
        "ledger": "allowed",
        "payment": "allowed",
        "ledger-db": "allowed",
        "payment-db": "allowed",
        "ledger-db-backup": "allowed",
        "payment-db-backup": "allowed",
        "loki": "allowed",
    }


# --- personal data beyond the declared services ---------------------------------------------------


def test_callers_of_a_personal_data_service_handle_personal_data_unless_they_say_why_not(tmp_path):
    services = {
        "web": svc("us-east", calls=["api"]),
        "batch": svc("us-east", calls=["relay"]),
        "relay": svc("oslo", calls=["api"], personal_data=False, personal_data_reason="passes only opaque order ids"),
        "api": svc("oslo", personal_data=True),
    }
    plan, found = residency(write(tmp_path, services))
    places = {p.name: p for p in plan.residency.placements}
    assert places["web"].personal_data and places["web"].personal_from == "calls api, which handles personal data"
    assert not places["relay"].personal_data and places["relay"].personal_from == "declared false: passes only opaque order ids"
    assert not places["batch"].personal_data  # the relay stops the flow
    assert [(f.id, f.path) for f in found] == [("residency", "services.web.region")]
    assert "(calls api, which handles personal data)" in found[0].message
    # an explicit false without a reason is told apart from the default, and does not stop the flow
    services["relay"].pop("personal_data_reason")
    plan, _ = residency(write(tmp_path, services))
    places = {p.name: p for p in plan.residency.placements}
    assert places["relay"].personal_data and places["batch"].personal_data


def test_a_region_operated_under_another_law_is_a_transfer_risk(tmp_path):
    regions = {**REGIONS, "frankfurt": {"jurisdiction": "DE", "operator_jurisdiction": "US"}}
    services = {"api": svc("frankfurt", personal_data=True), "site": svc("frankfurt")}
    path = write(tmp_path, services, regions=regions)
    _, found = residency(path)
    assert [(f.id, f.severity, f.path) for f in found] == [("residency-operator", "warning", "regions.frankfurt.operator_jurisdiction")]
    assert "operator answers to US law" in found[0].message and "transfer impact assessment" in found[0].message
    # an operator under an allowed law is fine
    regions["frankfurt"]["operator_jurisdiction"] = "NO"
    _, found = residency(write(tmp_path, services, regions=regions))
    assert found == []


def host(name: str, region: str) -> dict:
    return {"name": name, "region": region, "vcpu": 8, "memory": "16Gi", "storage": "nvme"}


def test_logs_and_backups_on_a_compose_host_outside_the_policy(tmp_path):
    services = {"api": svc("oslo", personal_data=True, datastore="api-db", route={"path_prefix": "/"})}
    datastores = {"api-db": {"engine": "postgres", "version": "16", "host": "osl-1"}}
    top = dict(datastores=datastores, hosts=[host("osl-1", "oslo"), host("zrh-1", "zurich")], compose={"host": "zrh-1"})
    top.update(gateway={"domain": "shop.example.com"}, observability={"prometheus": {}, "loki": True})
    plan, found = residency(write(tmp_path, services, **top))
    places = {p.name: p for p in plan.residency.placements}
    assert (places["api-db-backup"].region, places["api-db-backup"].region_from) == ("zurich", "the compose host zrh-1")
    assert places["loki"].personal_data and places["loki"].personal_from == "the gateway's access logs (client IPs)"
    assert sorted((f.id, f.path) for f in found) == [
        ("residency", "datastores.api-db.backup"),
        ("residency", "observability.loki"),
    ]
    # without Loki the access logs stay in the gateway's container log; backups turned off leave nothing
    datastores["api-db"]["backup"] = {"enabled": False}
    top["observability"] = {"prometheus": {}}
    _, found = residency(write(tmp_path, services, **top))
    assert found == []
