"""One compose service as a blueprint service: image, ports, replicas, resources, environment
and secrets, health check, calls, command, volumes; everything else a TODO."""

from __future__ import annotations

import re

from msgen.credentials import credential_name, credential_shape
from msgen.importer import values
from msgen.importer.compose import ComposeModel, depends_on, environment, labels
from msgen.importer.draft import Draft
from msgen.importer.gateway import Router

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# variables msgen writes itself into a service it renders: not the blueprint's env
_MSGEN_ENV = re.compile(r"^(DB_(HOST|NAME|USER|PORT|PASSWORD_FILE)|[A-Z0-9_]+_(URL|TIMEOUT_MS))$")
_MSGEN_SECRET_TARGETS = ("db-password",)
# well-known images msgen has no model for: imported as services, their role left to the reader
UNMODELLED = ("rabbitmq", "kafka", "zookeeper", "memcached", "mongo", "elasticsearch", "opensearch", "minio", "nginx", "haproxy", "nats", "valkey")
UNMODELLED_NOTE = "a well-known image msgen has no model for: imported as a service, check its role"


def map_service(draft: Draft, model: ComposeModel, name: str, apps: list[str], stores: list[str], routers: list[Router]) -> None:
    compose = model.data["services"][name]
    at = f"services.{name}"
    path = ("services", values.dns_label(name))
    _image(draft, compose, path, at)
    _ports(draft, compose, path, at, routers)
    _replicas(draft, compose, path, at)
    _resources(draft, compose, path, at)
    _health(draft, compose, path, at)
    _environment(draft, model, compose, path, at, apps)
    _calls(draft, compose, path, at, name, apps)
    _command(draft, compose, path, at)
    _volumes(draft, model, compose, path, at)
    _unsafe(draft, compose, path, at)
    if path[-1] != name:
        draft.note(path, f"compose service {name}: renamed, the blueprint's names are DNS labels and msgen's own are taken")
    if compose.get("profiles"):
        draft.note(path, f"compose profiles: {', '.join(str(profile) for profile in compose['profiles'])}")


def _image(draft: Draft, compose: dict, path: tuple, at: str) -> None:
    image = compose.get("image")
    if not image:
        draft.set((*path, "image"), f"{path[-1]}:0.0.0")
        draft.todo((*path, "image"), "built from source (build:): name the image the build pushes", at=f"{at}.build")
        return
    draft.set((*path, "image"), str(image), f"{at}.image")
    if values.image_parts(str(image))[0] in UNMODELLED:
        draft.todo((*path, "image"), UNMODELLED_NOTE, at=f"{at}.image")
    elif not values.has_tag_or_digest(str(image)):
        draft.todo((*path, "image"), "no tag: pin a version", at=f"{at}.image")


def _ports(draft: Draft, compose: dict, path: tuple, at: str, routers: list[Router]) -> None:
    """The first container port is `port`, the others `ports`; a published one is reported."""
    candidates: list[tuple[int, str, str]] = []  # (port, protocol, source)
    for index, entry in enumerate(compose.get("ports") or []):
        found = values.container_port(entry)
        if found is None:
            draft.todo(path, f"port {entry!r} is not read", at=f"{at}.ports[{index}]")
            continue
        candidates.append((found[0], found[1], f"{at}.ports[{index}]"))
        if found[2]:
            draft.todo(path, f"published port {entry}: msgen publishes only the gateway's ports", at=f"{at}.ports[{index}]")
    for index, entry in enumerate(compose.get("expose") or []):
        found = values.container_port(entry)
        if found:
            candidates.append((found[0], found[1], f"{at}.expose[{index}]"))
    health = values.local_http(values.words((compose.get("healthcheck") or {}).get("test")) or [])
    if health and health[0]:
        candidates.append((health[0], "tcp", f"{at}.healthcheck.test"))
    for key, value in sorted((str(key).lower(), value) for key, value in labels(compose).items()):
        if key.endswith(".loadbalancer.server.port") and str(value).isdigit():
            candidates.append((int(value), "tcp", f"{at}.labels.{key}"))
    seen: set[tuple[int, str]] = set()
    extra = []
    for port, protocol, source in candidates:
        if (port, protocol) in seen:
            continue
        seen.add((port, protocol))
        if not draft.get((*path, "port")) and protocol == "tcp":
            draft.set((*path, "port"), port, source)
        else:
            extra.append({"name": f"{protocol}-{port}", "port": port, "protocol": protocol})
    if extra:
        draft.set((*path, "ports"), extra, f"{at}.ports/expose")


def _replicas(draft: Draft, compose: dict, path: tuple, at: str) -> None:
    replicas = (compose.get("deploy") or {}).get("replicas", compose.get("scale"))
    if isinstance(replicas, int) and replicas >= 1:
        draft.set((*path, "replicas"), replicas, f"{at}.deploy.replicas")
    else:
        draft.set((*path, "replicas"), 1, "compose's default of one container")


def _resources(draft: Draft, compose: dict, path: tuple, at: str) -> None:
    resources = (compose.get("deploy") or {}).get("resources") or {}
    for compose_key, key in (("reservations", "requests"), ("limits", "limits")):
        amounts = resources.get(compose_key) or {}
        source = f"{at}.deploy.resources.{compose_key}"
        if values.cpu(amounts.get("cpus")) is not None:
            draft.set((*path, "resources", key, "cpu"), values.cpu(amounts["cpus"]), f"{source}.cpus")
        if values.memory(amounts.get("memory")) is not None:
            draft.set((*path, "resources", key, "memory"), values.memory(amounts["memory"]), f"{source}.memory")
    if compose.get("mem_limit") and values.memory(compose["mem_limit"]) and not draft.get((*path, "resources", "limits", "memory")):
        draft.set((*path, "resources", "limits", "memory"), values.memory(compose["mem_limit"]), f"{at}.mem_limit")


def _health(draft: Draft, compose: dict, path: tuple, at: str) -> None:
    check = compose.get("healthcheck")
    if not check:
        draft.todo(path, "no healthcheck: health.path is the default /health", at=at)
        return
    source = f"{at}.healthcheck"
    test = values.words(check.get("test")) or []
    local = values.local_http(test)
    health: dict = {}
    if check.get("disable") or test[:1] == ["NONE"]:
        health["command"] = ["NONE"]
    elif local:
        health["path"] = local[1]
    elif test:
        health["command"] = test if isinstance(check.get("test"), list) else ["CMD-SHELL", str(check["test"])]
    for compose_key, key in (("start_period", "initial_delay"), ("interval", "period"), ("timeout", "timeout")):
        value = values.duration(check[compose_key]) if check.get(compose_key) is not None else None
        if value and (value != "0s" or key == "initial_delay"):  # a period or timeout must be longer than 0
            health[key] = value
    if health:
        draft.set((*path, "health"), health, source)


def _environment(draft: Draft, model: ComposeModel, compose: dict, path: tuple, at: str, apps: list[str]) -> None:
    env: dict = {}
    secrets: list[str] = []
    for key, value in environment(compose).items():
        source = f"{at}.environment.{key}"
        if model.generated_for and _MSGEN_ENV.match(key):
            continue
        if not _ENV_NAME.match(key):
            draft.todo(path, f"variable {key!r} is not a name the blueprint accepts", at=source)
        elif value is None:
            draft.todo(path, f"{key} is passed from the host's environment: set it in env or secrets", at=source)
        elif credential_name(key) or (isinstance(value, str) and credential_shape(value)):
            secrets.append(key)
            draft.todo((*path, "secrets"), f"{key} held a credential: its value is not imported, write it into the secret file", at=source)
        else:
            env[key] = value if isinstance(value, (int, bool)) else str(value)
    for index, entry in enumerate(compose.get("secrets") or []):
        target = str(entry.get("target") or entry.get("source")) if isinstance(entry, dict) else str(entry)
        if model.generated_for and target in _MSGEN_SECRET_TARGETS:
            continue
        if _ENV_NAME.match(target) and target not in secrets:
            secrets.append(target)
            draft.note((*path, "secrets"), f"from {at}.secrets[{index}]")
        elif target not in secrets:
            draft.todo(path, f"secret {target!r} is not a name the blueprint accepts", at=f"{at}.secrets[{index}]")
    if env:
        draft.set((*path, "env"), dict(sorted(env.items())), f"{at}.environment")
    if secrets:
        draft.set((*path, "secrets"), sorted(secrets))


def _calls(draft: Draft, compose: dict, path: tuple, at: str, name: str, apps: list[str]) -> None:
    """depends_on and URLs in variables that name another imported service."""
    named = [other for other in depends_on(compose) if other in apps]
    for value in environment(compose).values():
        named += [host for host in values.url_hosts(str(value or "")) if host in apps]
    calls = sorted({values.dns_label(other) for other in named if other != name})
    if calls:
        draft.set((*path, "calls"), calls, f"{at}.depends_on and URLs in {at}.environment")


def _command(draft: Draft, compose: dict, path: tuple, at: str) -> None:
    entrypoint = values.words(compose.get("entrypoint"))
    command = values.words(compose.get("command"))
    if entrypoint:
        draft.set((*path, "command"), entrypoint, f"{at}.entrypoint")
    if command:
        draft.set((*path, "args"), command, f"{at}.command")


def _volumes(draft: Draft, model: ComposeModel, compose: dict, path: tuple, at: str) -> None:
    named = model.data.get("volumes") or {}
    volumes: dict = {}
    for index, mount in enumerate(compose.get("volumes") or []):
        source, target = _mount(mount)
        where = f"{at}.volumes[{index}]"
        if source is None or target is None:
            continue  # an anonymous volume: the container's own scratch space
        if source.endswith("docker.sock"):
            draft.todo(path, "the Docker socket is mounted: not imported (it is root on the host)", at=where)
        elif source in named:
            label = values.dns_label(source)
            label = label if label not in ("tmp", "secrets") else f"{label}-data"
            volumes[label] = {"path": target, "size": "1Gi"}
            draft.todo((*path, "volumes"), f"volume {source}'s size is unknown: 1Gi assumed", at=where)
        else:
            draft.todo(path, f"bind mount {source}:{target}: declare the files under files, or a volume", at=where)
    if volumes:
        draft.set((*path, "volumes"), volumes)


def _mount(mount: object) -> tuple[str | None, str | None]:
    if isinstance(mount, dict):
        return (str(mount["source"]) if mount.get("source") else None), (str(mount["target"]) if mount.get("target") else None)
    parts = str(mount).split(":")
    return (parts[0], parts[1]) if len(parts) >= 2 else (None, parts[0])


def _unsafe(draft: Draft, compose: dict, path: tuple, at: str) -> None:
    if compose.get("network_mode") == "host":
        draft.todo(path, "host networking is not imported: msgen gives every service its own networks", at=f"{at}.network_mode")
    if compose.get("privileged"):
        draft.todo(path, "a privileged container is not imported", at=f"{at}.privileged")
    if compose.get("cap_add"):
        draft.todo(path, f"added capabilities {', '.join(map(str, compose['cap_add']))} are not imported", at=f"{at}.cap_add")
