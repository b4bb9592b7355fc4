"""Compose's merge rules for override files, on plain values.

`docker compose -f base.yml -f override.yml` merges the second file into the first by the
rules of the Compose Specification ("Merge"): mappings merge key by key, sequences append,
`command`, `entrypoint` and `healthcheck.test` are replaced, and `ports`, `volumes`,
`secrets` and `configs` hold one entry per unique key (an override's entry replaces the one
with its key). Compose reads each file into its long syntax before merging, so the
attributes that may be written as a list or a mapping (`environment`, `labels`,
`depends_on`, `networks`, ...) merge as mappings, and lists of plain values hold each value
once. An override's null changes nothing (compose keeps the earlier value). The blueprint's `compose.overrides` and `msgen import` both merge with this module.

Nothing here reads or writes a file; the inputs are not modified.
"""

from __future__ import annotations

from typing import Any

# attributes whose override replaces the earlier value outright
REPLACED = frozenset({"command", "entrypoint"})
# attributes written either as a mapping or as a list of KEY=VALUE (or KEY:VALUE) strings
KEY_VALUE_SEPARATORS = {
    "environment": "=",
    "labels": "=",
    "annotations": "=",
    "sysctls": "=",
    "extra_hosts": "=",
}
# attributes written either as a mapping or as a list of names
NAMED = frozenset({"depends_on", "networks"})
# sequences of entries that are unique by a key
UNIQUE = frozenset({"ports", "volumes", "secrets", "configs"})


class MergeError(ValueError):
    """An override that cannot merge (a mapping over a list, say): compose refuses it too."""

    def __init__(self, path: tuple, message: str):
        self.path = path
        super().__init__(message)


def merge_files(base: dict, override: dict) -> dict:
    """One compose file merged over another: `services`, `networks`, `volumes`, `secrets`,
    `configs` and the rest key by key, each service by `merge_service`."""
    merged = dict(base)
    for key, value in override.items():
        if key == "services" and isinstance(value, dict) and isinstance(base.get(key), dict):
            services = dict(base[key])
            for name, entry in value.items():
                services[name] = merge_service(services[name], entry, ("services", name)) if name in services else entry
            merged[key] = services
        elif key in base:
            merged[key] = merge_values(base[key], value, (key,))
        else:
            merged[key] = value
    return merged


def merge_service(base: dict, override: dict, at: tuple = ()) -> dict:
    """One service's attributes with an override's merged over them, by compose's rules."""
    _expect(base, dict, at, "a service")
    _expect(override, dict, at, "a service")
    merged = dict(base)
    for key, value in override.items():
        where = (*at, key)
        if value is None and key in base:
            continue  # compose keeps the earlier value under an override's null
        if key not in base or key.startswith("x-") or key in REPLACED:
            merged[key] = value
        elif key in KEY_VALUE_SEPARATORS:
            mapping = {**as_mapping(base[key], key, where), **as_mapping(value, key, where)}
            merged[key] = as_list(mapping, key) if isinstance(base[key], list) else mapping
        elif key in NAMED:
            merged[key] = _merge_named(base[key], value, where)
        elif key in UNIQUE:
            merged[key] = _merge_unique(base[key], value, key, where)
        elif key == "healthcheck":
            merged[key] = _merge_healthcheck(base[key], value, where)
        elif key == "logging":
            merged[key] = _merge_logging(base[key], value, where)
        else:
            merged[key] = merge_values(base[key], value, where)
    return merged


def merge_values(base: Any, override: Any, at: tuple = ()) -> Any:
    """The generic rule: mappings merge, sequences append (a plain value already present is
    not repeated), anything else is replaced; a null changes nothing, as in compose."""
    if override is None:
        return base
    if isinstance(base, dict):
        _expect(override, dict, at, "a mapping")
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge_values(base[key], value, (*at, key)) if key in base and not key.startswith("x-") else value
        return merged
    if isinstance(base, list):
        _expect(override, list, at, "a list")
        return base + [item for item in override if isinstance(item, (dict, list)) or item not in base]
    return override


def as_mapping(value: Any, attribute: str, at: tuple) -> dict:
    """`environment`-like values as a mapping: `["A=1", "B"]` -> `{"A": "1", "B": None}`."""
    if isinstance(value, dict):
        return dict(value)
    _expect(value, list, at, "a mapping or a list")
    separator = KEY_VALUE_SEPARATORS[attribute]
    mapping: dict = {}
    for item in value:
        text = str(item)
        if attribute == "extra_hosts" and separator not in text and ":" in text:
            key, _, rest = text.partition(":")  # the older HOST:IP form
            mapping[key] = rest
            continue
        key, found, rest = text.partition(separator)
        mapping[key] = rest if found else None
    return mapping


def as_list(mapping: dict, attribute: str) -> list[str]:
    """A mapping back in the list form (`KEY=VALUE`, or `KEY` alone for a null), which keeps a
    key compose would otherwise read as its own extension (`x-...` in a mapping)."""
    separator = KEY_VALUE_SEPARATORS[attribute]
    return [key if value is None else f"{key}{separator}{value}" for key, value in mapping.items()]


def _merge_named(base: Any, override: Any, at: tuple) -> Any:
    """`depends_on` and `networks`: two lists of names append; otherwise both as mappings."""
    if isinstance(base, list) and isinstance(override, list):
        return base + [name for name in override if name not in base]
    return merge_values(_named_mapping(base, at), _named_mapping(override, at), at)


def _named_mapping(value: Any, at: tuple) -> dict:
    if isinstance(value, dict):
        return dict(value)
    _expect(value, list, at, "a mapping or a list")
    # a dependency named in a list waits for the service to start: compose's long form of it
    default = {"condition": "service_started"} if at[-1] == "depends_on" else None
    return {str(name): default for name in value}


def _merge_unique(base: Any, override: Any, attribute: str, at: tuple) -> list:
    """An override's entry replaces the earlier entry with its key (`ports`, `volumes`,
    `secrets`, `configs`); new keys are appended."""
    _expect(base, list, at, "a list")
    _expect(override, list, at, "a list")
    merged = list(base)
    positions = {unique_key(attribute, item): index for index, item in enumerate(merged)}
    for item in override:
        key = unique_key(attribute, item)
        if key in positions:
            merged[positions[key]] = item
        else:
            positions[key] = len(merged)
            merged.append(item)
    return merged


def unique_key(attribute: str, item: Any) -> tuple:
    """The key compose keeps one entry per: a volume's, secret's or config's target, a port's
    (host ip, published, target, protocol)."""
    if attribute == "ports":
        return _port_key(item)
    if isinstance(item, dict):
        return (str(item.get("target") or item.get("source")),)
    text = str(item)
    if attribute == "volumes":
        parts = text.split(":")
        return (parts[1] if len(parts) > 1 else parts[0],)
    return (text,)


def _port_key(item: Any) -> tuple:
    if isinstance(item, dict):
        published = item.get("published")
        return (
            str(item.get("host_ip") or ""),
            "" if published is None else str(published),
            str(item.get("target")),
            str(item.get("protocol") or "tcp"),
        )
    text, _, protocol = str(item).partition("/")
    host_ip = ""
    if text.startswith("["):  # an IPv6 host address: [::1]:8080:80
        host_ip, _, text = text[1:].partition("]")
        text = text.removeprefix(":")
    parts = text.split(":")
    if len(parts) == 3:
        host_ip, published, target = parts
    elif len(parts) == 2:
        published, target = parts
    else:
        published, target = "", parts[0]
    return (host_ip, published, target, protocol or "tcp")


def _merge_healthcheck(base: Any, override: Any, at: tuple) -> Any:
    _expect(base, dict, at, "a mapping")
    _expect(override, dict, at, "a mapping")
    merged = dict(base)
    for key, value in override.items():
        merged[key] = value if key == "test" or key not in base else merge_values(base[key], value, (*at, key))
    return merged


def _merge_logging(base: Any, override: Any, at: tuple) -> Any:
    """Logging options merge only while the driver stays the same; another driver replaces them."""
    _expect(base, dict, at, "a mapping")
    _expect(override, dict, at, "a mapping")
    if "driver" in override and "driver" in base and override["driver"] != base["driver"]:
        return dict(override)
    return merge_values(base, override, at)


def _expect(value: Any, kind: type, at: tuple, what: str) -> None:
    if not isinstance(value, kind):
        raise MergeError(at, f"must be {what} here, not {type(value).__name__}")
