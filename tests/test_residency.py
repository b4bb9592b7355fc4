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
    assert [(f.id, f.path) for f in found] == [("residency", "datastores.api-db.host")]
    assert "datastore api-db" in found[0].message and "us-east (US" in found[0].message
    line = next(n for n, row in enumerate(path.read_text().splitlines(), 1) if "host: use-1" in row)
    assert found[0].line == line


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
    }
