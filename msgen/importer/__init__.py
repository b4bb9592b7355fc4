"""`msgen import`: a first blueprint from the docker-compose files a team already runs.

Each compose service is given a role by its image: the Traefik gateway, a datastore (mysql,
mariadb, postgres, redis), monitoring msgen provides itself, or one of the platform's services.
What maps is written with a comment naming its source; what does not is a `# TODO(import)`
comment and an entry of the unmapped list. The blueprint is loaded before it is returned: one
that does not load is a bug here, not in the input.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from msgen.errors import BlueprintError, InternalError
from msgen.importer import values
from msgen.importer.compose import ComposeModel, depends_on, environment, read_compose
from msgen.importer.draft import Draft
from msgen.importer.gateway import Router, file_routers, gateway_flags, label_routers
from msgen.importer.services import map_service
from msgen.loader import load_yaml, read_yaml_file
from msgen.model.load import validate
from msgen.model.versions import ENGINE_LINES, release_line

DATABASES = ("mysql", "mariadb", "postgres", "redis")
# monitoring images msgen runs itself: observability flags, or nothing to import
MONITORING = {"prometheus": "prometheus", "grafana": "grafana", "loki": "loki", "alertmanager": "alertmanager"}
MONITORING_AGENTS = ("node-exporter", "cadvisor", "alloy", "promtail", "mysqld-exporter", "postgres-exporter", "redis_exporter")
# msgen's own containers in a compose file it rendered
OWN_CONTAINERS = ("gateway", "prometheus", "grafana", "loki", "alloy", "alertmanager", "node-exporter", "cadvisor")
PLACEHOLDER_REGION = "home"
PLACEHOLDER_HOST = "host-1"
# the blueprint's own order of its top-level keys
ORDER = ("version", "project", "regions", "hosts", "gateway", "services", "datastores", "observability", "compose")


@dataclass(frozen=True)
class Imported:
    """The blueprint's text and what could not be mapped, one entry a line (`where: what`)."""

    text: str
    project: str
    unmapped: tuple[str, ...]


def import_compose(paths: list[Path], project: str | None = None) -> Imported:
    """The blueprint for the compose files, loaded once to prove it loads."""
    model = read_compose(paths)
    draft = Draft()
    name = values.dns_label(project or model.generated_for or model.data.get("name") or paths[0].resolve().parent.name)
    roles = _roles(model)
    _skeleton(draft, name, model)
    stores = [service for service, role in roles.items() if role == "datastore"]
    apps = [service for service, role in roles.items() if role == "service"]
    routers = _routers(draft, model, apps)
    for service in apps:
        map_service(draft, model, service, apps, stores, routers.get(service, []))
    _map_datastores(draft, model, stores, apps)
    _map_gateway(draft, model, roles, routers)
    _map_monitoring(draft, model, roles)
    for variable in model.unset:
        draft.unmapped.append(f"${{{variable}}}: not set in .env or the environment: read as an empty string")
    _break_call_cycles(draft)
    draft.data = {key: draft.data[key] for key in ORDER if key in draft.data}
    text = draft.text(_header(model))
    _must_load(text, paths[0])
    return Imported(text, name, tuple(draft.unmapped))


def _break_call_cycles(draft: Draft) -> None:
    """The blueprint's calls form no cycle: a call that closes one (a depends_on one way and a URL
    the other) is dropped with a TODO."""
    services = draft.data.get("services", {})
    for name in services:
        for callee in list(services[name].get("calls", [])):
            if _reaches(services, callee, name):
                services[name]["calls"].remove(callee)
                draft.todo(("services", name), f"the call to {callee} closes a cycle of calls: dropped", at=f"services.{name}")
        if services[name].get("calls") == []:
            del services[name]["calls"]


def _reaches(services: dict, start: str, goal: str) -> bool:
    seen, waiting = set(), [start]
    while waiting:
        current = waiting.pop()
        if current == goal:
            return True
        if current not in seen:
            seen.add(current)
            waiting.extend(services.get(current, {}).get("calls", []))
    return False


def _roles(model: ComposeModel) -> dict[str, str]:
    """Each compose service's role: service, datastore, gateway, monitoring name, agent or own."""
    services = model.data["services"]
    roles = {}
    stores = {name for name, service in services.items() if values.image_parts(str(service.get("image", "")))[0] in DATABASES}
    for name, service in services.items():
        base, _ = values.image_parts(str(service.get("image", "")))
        if model.generated_for and _is_own(name, stores):
            roles[name] = MONITORING.get(base, "own")  # msgen's monitoring: the blueprint's observability
        elif base == "traefik":
            roles[name] = "gateway"
        elif base in DATABASES:
            roles[name] = "datastore"
        elif base in MONITORING:
            roles[name] = MONITORING[base]
        elif base in MONITORING_AGENTS or base.endswith("-exporter"):
            roles[name] = "agent"
        else:
            roles[name] = "service"
    return roles


def _is_own(name: str, stores: set[str]) -> bool:
    return name in OWN_CONTAINERS or any(name in (f"{store}-exporter", f"{store}-backup") for store in stores)


def _header(model: ComposeModel) -> list[str]:
    files = ", ".join(path.name for path in model.files)
    return [
        f"Imported by msgen import from {files}.",
        "Comments name each value's source; TODO(import) marks what needs a decision.",
        "Check the placeholders (regions, hosts, compose.host) before rendering.",
    ]


def _skeleton(draft: Draft, project: str, model: ComposeModel) -> None:
    """The parts every blueprint needs that compose has no word for: placeholders with a TODO."""
    draft.set(("version",), 1)
    draft.set(("project",), project, "the compose project name" if model.data.get("name") else None)
    draft.set(("regions", PLACEHOLDER_REGION), {"jurisdiction": "DE"})
    draft.todo(("regions", PLACEHOLDER_REGION), "where the compose host stands: its country code", at="regions")
    host = {"name": PLACEHOLDER_HOST, "region": PLACEHOLDER_REGION, "vcpu": 4, "memory": "8Gi", "storage": "ssd"}
    draft.set(("hosts",), [host])
    draft.todo(("hosts",), "the compose host's real vCPUs, memory and disk class", at="hosts")
    draft.set(("compose", "host"), PLACEHOLDER_HOST)


def _routers(draft: Draft, model: ComposeModel, apps: list[str]) -> dict[str, list[Router]]:
    """Each service's Traefik routers: from its labels, and from msgen's file provider when the
    compose file is msgen's own output."""
    found: dict[str, list[Router]] = {}
    for name in apps:
        found[name] = label_routers(model.data["services"][name], name)
    dynamic = model.files[0].parent.parent / "traefik" / "dynamic"
    if model.generated_for and "gateway" in model.data["services"] and not dynamic.is_dir():
        draft.unmapped.append(f"{dynamic}: not found, so the routes msgen wrote there are not read: declare each service's route")
    if model.generated_for:
        for router in file_routers(dynamic):
            if router.service in found:
                found[router.service].append(router)
    return found


def _map_datastores(draft: Draft, model: ComposeModel, stores: list[str], apps: list[str]) -> None:
    services = model.data["services"]
    owned: dict[str, str] = {}
    for store in stores:
        compose = services[store]
        name = values.dns_label(store)
        engine, tag = values.image_parts(str(compose["image"]))
        at = f"services.{store}"
        draft.set(("datastores", name, "engine"), engine, f"{at}.image")
        draft.set(("datastores", name, "version"), _version(draft, name, engine, tag, at), f"{at}.image")
        limits = ((compose.get("deploy") or {}).get("resources") or {}).get("limits") or {}
        if values.memory(limits.get("memory")):
            draft.set(("datastores", name, "memory"), values.memory(limits["memory"]), f"{at}.deploy.resources.limits.memory")
        if values.cpu(limits.get("cpus")):
            draft.set(("datastores", name, "cpu"), values.cpu(limits["cpus"]), f"{at}.deploy.resources.limits.cpus")
        if any(_named_volume(model, mount) for mount in compose.get("volumes") or []):
            draft.todo(("datastores", name, "engine"), "the data volume's size is unknown: storage is the default 10Gi", at=f"{at}.volumes")
        _own(draft, model, store, name, [app for app in apps if _uses(services[app], store)], apps, owned)


def _version(draft: Draft, name: str, engine: str, tag: str | None, at: str) -> str:
    number = (tag or "").split("-", 1)[0]
    if number and release_line(engine, number):
        return number
    newest = ENGINE_LINES[engine][-1]
    draft.todo(("datastores", name, "version"), f"the image tag {tag or '(none)'} names no supported {engine} line: {newest} assumed", at=f"{at}.image")
    return newest


def _uses(service: dict, store: str) -> bool:
    """The service depends on the store, names it in a URL, or has it as a variable's value (DB_HOST=db)."""
    if store in depends_on(service):
        return True
    for value in environment(service).values():
        text = str(value or "")
        if text == store or store in values.url_hosts(text):
            return True
    return False


def _own(draft: Draft, model: ComposeModel, store: str, name: str, users: list[str], apps: list[str], owned: dict[str, str]) -> None:
    """The blueprint gives each datastore one owning service, and each service one datastore."""
    free = [user for user in users if user not in owned]
    at = f"services.{store}"
    if not apps:
        draft.todo(("datastores", name), "no service to own it", at=at)
        return
    if not users:
        owner = next((app for app in apps if app not in owned), None)
        if owner is None:
            draft.todo(("datastores", name), "no service uses it and every service owns another datastore", at=at)
            return
        draft.todo(("services", values.dns_label(owner), "datastore"), f"no service names {store}: given to the first service", at=at)
    elif not free:
        draft.todo(("datastores", name), f"used by {', '.join(users)}, who each own another datastore already: no owner", at=at)
        return
    else:
        owner = free[0]
        if len(users) > 1:
            others = ", ".join(user for user in users if user != owner)
            draft.todo(("services", values.dns_label(owner), "datastore"), f"{store} is shared with {others}: a blueprint datastore has one owner", at=at)
    owned[owner] = store
    draft.set(("services", values.dns_label(owner), "datastore"), name, f"{at} (depends_on or a URL)")


def _named_volume(model: ComposeModel, mount: object) -> bool:
    source = mount.get("source") if isinstance(mount, dict) else str(mount).split(":", 1)[0] if ":" in str(mount) else None
    return bool(source) and source in (model.data.get("volumes") or {})


def _map_gateway(draft: Draft, model: ComposeModel, roles: dict[str, str], routers: dict[str, list[Router]]) -> None:
    gateways = [name for name, role in roles.items() if role == "gateway"]
    hosts = Counter(router.host for found in routers.values() for router in found if router.host)
    routed = [name for name, found in routers.items() if any(router.rule_parts() for router in found)]
    if not gateways and not routed and not (model.generated_for and "gateway" in model.data["services"]):
        return
    # the most common host; in a tie, one with paths under it (a host of its own usually has none)
    with_paths = {router.host for found in routers.values() for router in found if "path_prefix" in router.rule_parts()}
    domain = sorted(hosts.items(), key=lambda item: (-item[1], item[0] not in with_paths, item[0]))[0][0] if hosts else None
    if domain:
        draft.set(("gateway", "domain"), domain, "the Host of most Traefik routers")
    else:
        draft.set(("gateway", "domain"), "example.com")
        draft.todo(("gateway", "domain"), "no router names a host: the public domain", at="gateway")
    for name in gateways:
        gateway_flags(draft, model.data["services"][name], name)
    for service in routed:
        _route(draft, service, routers[service], domain)
    if not gateways and not any(draft.get(("services", values.dns_label(service), "route")) for service in routed):
        del draft.data["gateway"]  # no rule could be read: nothing is routed


def _route(draft: Draft, service: str, found: list[Router], domain: str | None) -> None:
    label = values.dns_label(service)
    router = next(router for router in found if router.rule_parts())
    parts = {key: value.lower() if key == "host" else value for key, value in router.rule_parts().items()}
    unread = [value for key, value in parts.items() if not values.route_value(key, value)]
    if unread:
        draft.todo(("services", label), f"the rule {router.rule} holds {', '.join(unread)}, which a route cannot: no route", at=router.source)
        return
    route = {}
    if "host" in parts and parts["host"] != domain:
        route["host"] = parts["host"]
    if "path_prefix" in parts or "host" not in route:
        route["path_prefix"] = parts.get("path_prefix", "/")
    draft.set(("services", label, "route"), route, router.source)
    for extra in found:
        if extra is not router and extra.rule_parts():
            draft.todo(("services", label, "route"), f"a further router {extra.name} ({extra.rule}): one route a service", at=extra.source)
    router.map_middlewares(draft, ("services", label))


def _map_monitoring(draft: Draft, model: ComposeModel, roles: dict[str, str]) -> None:
    services = model.data["services"]
    for name, role in roles.items():
        at = f"services.{name}"
        if role == "prometheus":
            draft.set(("observability", "prometheus"), _prometheus(services[name], model), f"{at}")
            for mount in [] if model.generated_for else services[name].get("volumes") or []:
                text = mount.get("source") if isinstance(mount, dict) else str(mount)
                if str(text).startswith((".", "/", "~")):
                    draft.todo(("observability", "prometheus"), f"bind mount {text}: msgen writes its own scrape configuration; its jobs are not read", at=f"{at}.volumes")
        elif role in ("grafana", "loki"):
            draft.set(("observability", role), True, at)
        elif role == "alertmanager":
            draft.unmapped.append(f"{at}: Alertmanager's receivers are not read: declare observability.alertmanager")
        elif role == "agent":
            draft.unmapped.append(f"{at}: {services[name].get('image')} is not imported: msgen runs its own monitoring agents")


def _prometheus(service: dict, model: ComposeModel) -> dict:
    """Retention from the command line; in msgen's own output also the scrape interval from its configuration."""
    settings: dict = {}
    own = model.files[0].parent.parent / "prometheus" / "prometheus.yml"
    if model.generated_for and own.is_file():
        interval = ((read_yaml_file(own)[0] or {}).get("global") or {}).get("scrape_interval")
        if isinstance(interval, str) and re.fullmatch(r"[0-9]+(ms|s|m|h|d)", interval):
            settings["scrape_interval"] = interval
    for word in values.words(service.get("command")) or []:
        if word.startswith("--storage.tsdb.retention.time="):
            retention = word.split("=", 1)[1]
            if re.fullmatch(r"[0-9]+(ms|s|m|h|d)", retention):  # Prometheus' units the blueprint shares
                settings["retention"] = retention
    return settings


def _must_load(text: str, first: Path) -> None:
    """The written blueprint loads, or the import has a bug."""
    name = str(first.with_name("imported-blueprint.yaml"))
    try:
        data, source = load_yaml(text, name)
        validate(data, source)
    except BlueprintError as error:
        raise InternalError(f"msgen import wrote a blueprint that does not load: {error}") from None
