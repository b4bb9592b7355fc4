"""Compose's value formats turned into the blueprint's: images, CPU, memory, durations, ports,
Traefik rules and URLs."""

from __future__ import annotations

import re
import shlex
from typing import Any

_MEMORY = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([bkmg]?)b?", re.IGNORECASE)
_GO_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
_RULE_PART = re.compile(r"(Host|PathPrefix)\(\s*`([^`]*)`\s*\)")
_URL_HOST = re.compile(r"\b[a-z][a-z0-9+.-]*://(?:[^@/\s]*@)?([A-Za-z0-9_.-]+)")
_LOCAL_URL = re.compile(r"https?://(?:localhost|127\.0\.0\.1|\[::1\])(?::([0-9]+))?(/[^\s'\"|;&]*)?")


def image_parts(image: str) -> tuple[str, str | None]:
    """(the image's base name without registry or owner, its tag or None): `docker.io/library/postgres:16` -> (postgres, 16)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    base, _, tag = last.partition(":")
    return base.lower(), tag or None


def has_tag_or_digest(image: str) -> bool:
    return "@sha256:" in image or image_parts(image)[1] is not None


def cpu(value: Any) -> int | float | None:
    """compose's `cpus` ("0.5", 2) as cores: 0.5, 2."""
    try:
        cores = float(value)
    except (TypeError, ValueError):
        return None
    if cores <= 0:
        return None
    cores = round(cores, 3)
    return int(cores) if cores == int(cores) else cores


def memory(value: Any) -> str | None:
    """compose's memory ("512m", "1g", bytes) in the blueprint's binary units: 512Mi, 1Gi; rounded up to a Mi."""
    if isinstance(value, bool):
        return None
    match = _MEMORY.fullmatch(str(value).strip())
    if not match:
        return None
    factor = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2).lower()]
    mebibytes = -(-int(float(match.group(1)) * factor) // 1024**2)
    if mebibytes <= 0:
        return None
    return f"{mebibytes // 1024}Gi" if mebibytes % 1024 == 0 else f"{mebibytes}Mi"


def duration(value: Any) -> str | None:
    """A Go duration ("1m30s", "500ms") in one unit the blueprint reads: 90s, 500ms."""
    text = str(value).strip()
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    ms = round(sum(float(number) * _DURATION_MS[unit] for number, unit in parts))
    if ms % 1000:
        return f"{ms}ms"
    seconds = ms // 1000
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def words(value: Any) -> list[str] | None:
    """`command` and `entrypoint` as a list: a string is split as a shell would."""
    if value is None:
        return None
    if isinstance(value, str):
        return shlex.split(value)
    return [str(item) for item in value]


def container_port(entry: Any) -> tuple[int, str, bool] | None:
    """(the container port, its protocol, whether it is published on the host) of a `ports` entry."""
    if isinstance(entry, dict):
        target = entry.get("target")
        published = entry.get("published") not in (None, "")
        protocol = str(entry.get("protocol") or "tcp")
    else:
        text, _, protocol = str(entry).partition("/")
        parts = text.rsplit(":", 2)
        target, published = parts[-1], len(parts) > 1
        protocol = protocol or "tcp"
    first = str(target).split("-", 1)[0]  # a range: its first port
    return (int(first), protocol, published) if first.isdigit() and 0 < int(first) < 65536 else None


def rule_parts(rule: str) -> dict[str, str]:
    """Host and PathPrefix of a Traefik rule, lower-cased function names as keys: {host, path_prefix}."""
    found = {}
    for function, argument in _RULE_PART.findall(rule):
        found.setdefault("host" if function == "Host" else "path_prefix", argument)
    return found


def url_hosts(text: str) -> list[str]:
    """The host names of URLs in a text: `http://ledger:8080/x` -> ledger."""
    return _URL_HOST.findall(text)


def local_http(test: list[str]) -> tuple[int | None, str] | None:
    """(port, path) of an HTTP URL on localhost in a healthcheck's test, or None."""
    match = _LOCAL_URL.search(" ".join(test))
    if not match:
        return None
    return (int(match.group(1)) if match.group(1) else None), (match.group(2) or "/")


# names msgen gives its own containers: an imported service or datastore keeps clear of them
RESERVED = ("gateway", "prometheus", "grafana", "loki", "alloy", "alertmanager")
_PATH_PREFIX = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")
_HOST = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def dns_label(name: str) -> str:
    """A compose name as a blueprint name: lowercase letters, digits and '-', a letter first, at
    most 40 characters, and none of msgen's own names (`gateway` becomes `gateway-app`)."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    if not label[:1].isalpha():
        label = f"s-{label}"
    if label in RESERVED or label.endswith("-exporter"):
        label = f"{label}-app"
    return label[:40].strip("-")


def route_value(key: str, value: str) -> bool:
    """A route's host or path_prefix in the form the blueprint accepts."""
    return bool((_HOST if key == "host" else _PATH_PREFIX).fullmatch(value))
