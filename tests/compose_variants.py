"""Blueprints that exercise every branch of the compose target, rendered into output folders.

Shared by tests/test_compose.py (structure, findings) and tests/test_compose_real.py (the
real compose binary loads every file msgen writes).
"""

from __future__ import annotations

import copy
import io
from pathlib import Path

from ruamel.yaml import YAML

from msgen import api
from tests.alerting_variant import reference_with_alertmanager_text

ROOT = Path(__file__).resolve().parent.parent
BLUEPRINTS = ROOT / "blueprints"
COMPOSE_FILE = "compose/docker-compose.yml"

# env values whose meaning YAML or compose would change if they were pasted as they are
ODD_ENV = {
    "DOLLAR": "pa$$word $HOME ${X:-y} $",
    "YES": "yes",
    "ON": "on",
    "NORWAY": "NO",
    "VERSION": "3.10",
    "OCTAL": "0o17",
    "EXPONENT": "1e3",
    "COLON_HASH": "a: b # c",
    "PORTS": "8080:80",
    "ALIAS": "*x",
    "DASH": "- item",
    "NEWLINES": "line one\nline two\n",
    "QUOTES": 'it\'s "quoted" \\ back',
    "UNICODE": "Ærlig talt — 東京 🚀",
    "CONTROLS": "tab\there\x00nul\x7fdel\x85nel\u2028ls\u2029ps\ufeffbom\ufffe\x1besc\r",
    "EMPTY": "",
    "SPACES": "  padded  ",
    "NUMBER": 42,
    "FLAG": True,
    "OFF_FLAG": False,
}


def _yaml() -> YAML:
    yaml = YAML(typ="safe", pure=True)  # YAML 1.2: `NO` stays a string
    yaml.default_flow_style = False
    return yaml


def load(name: str) -> dict:
    return _yaml().load((BLUEPRINTS / f"{name}.yaml").read_text(encoding="utf-8"))


def dump(data: dict) -> str:
    stream = io.StringIO()
    _yaml().dump(data, stream)
    return stream.getvalue()


def docker_provider() -> dict:
    data = load("reference")
    data["gateway"]["provider"] = "docker"
    data["gateway"]["dashboard"] = True
    return data


def root_and_commands() -> dict:
    """run_as_root, and each form health.command takes."""
    data = load("reference")
    services = data["services"]
    services["payment"]["run_as_root"] = True
    services["payment"]["health"]["command"] = ["/app/check", "--quick"]
    services["ledger"]["health"]["command"] = ["wget -qO- http://localhost:8080/health | grep -q ok"]
    services["fraud-check"]["health"]["command"] = ["CMD-SHELL", "test -f /tmp/ready"]
    return data


def odd_env() -> dict:
    data = load("reference")
    data["services"]["payment"]["env"] = dict(ODD_ENV)
    return data


def every_engine() -> dict:
    """All four engines at their other versions, Grafana and Loki off, HTTP/3 off, no ACME."""
    data = load("reference")
    data["gateway"]["http3"] = False
    del data["gateway"]["acme_email"]
    data["datastores"] = {
        "payment-db": {"engine": "mysql", "version": "8.4", "memory": "1Gi", "max_connections": 50},
        "ledger-db": {"engine": "mariadb", "version": "11.4", "memory": "1Gi"},
        "fraud-cache": {"engine": "postgres", "version": "17.2", "memory": "1Gi"},
    }
    data["services"]["audit"] = {"image": "registry.example.no/audit:v1.0.0", "port": 9000, "datastore": "audit-cache", "region": "oslo"}
    data["datastores"]["audit-cache"] = {"engine": "redis", "version": "7", "memory": "256Mi", "role": "store"}
    data["observability"] = {"prometheus": {"scrape_interval": "30s", "retention": "7d"}}
    return data


def internal_only() -> dict:
    """No gateway, no observability, no datastore: the smallest stack."""
    return {
        "version": 1,
        "project": "tiny",
        "services": {"worker": {"image": "ghcr.io/example/worker:2.0", "port": 8000, "replicas": 1}},
        "compose": {},
    }


def alerting() -> dict:
    """The reference with an Alertmanager and a receiver of each kind (their secrets as compose secrets)."""
    return _yaml().load(reference_with_alertmanager_text())


VARIANTS = {
    "reference": lambda: load("reference"),
    "alerting": alerting,
    "minimal": lambda: load("minimal"),
    "docker-provider": docker_provider,
    "run-as-root": root_and_commands,
    "odd-env": odd_env,
    "every-engine": every_engine,
    "internal-only": internal_only,
}
# (variant, --env) pairs: staging is the reference's overlay
RENDERS = [(name, None) for name in VARIANTS] + [("reference", "staging")]


def render_variant(folder: Path, name: str, env: str | None) -> Path:
    """Write the variant's blueprint and render it into `folder`/out; return the output folder."""
    folder.mkdir(parents=True, exist_ok=True)
    blueprint = folder / "blueprint.yaml"
    blueprint.write_text(dump(copy.deepcopy(VARIANTS[name]())), encoding="utf-8")
    out = folder / "out"
    outcome = api.render(api.RenderRequest(blueprint, out, env=env))
    assert outcome.wrote, [f.to_dict() for f in outcome.analysis.findings if f.severity == "error"]
    return out


def create_secrets(out: Path, document: dict) -> None:
    """The secret files compose reads (placeholders: msgen never writes a secret value)."""
    for secret in (document.get("secrets") or {}).values():
        path = (out / "compose" / secret["file"]).resolve()
        assert out.resolve() / "secrets" in path.parents, path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("placeholder\n", encoding="utf-8")
