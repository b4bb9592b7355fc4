"""msgen's one YAML emitter: block mappings in the order built, every scalar through
`yaml_scalar` (the one escaping filter).

PyYAML's representer costs ~0.5 ms per object, seconds for a 1000-service platform; this
costs a tenth of it. Multi-line text (config files in ConfigMaps) becomes a literal block
so that it reads well in diffs; with `flow_lists`, lists of scalars are written inline
(`cap_drop: [ALL]`), as compose files usually are. The tests parse every rendered file
back (PyYAML, ruamel.yaml for YAML 1.2, and the real consumers).
"""

from __future__ import annotations

from msgen.jinja import yaml_scalar

# the same few thousand keys and values recur in every object: escape each once
_TEXTS: dict[object, str] = {}
_CACHE_LIMIT = 100_000  # bounded: a long-running process renders many blueprints


def dump(value: object, indent: int = 0, flow_lists: bool = False) -> str:
    """`value` (a dict, list or scalar) as block YAML, each line indented by `indent` spaces."""
    lines: list[str] = []
    pad = " " * indent
    if isinstance(value, dict) and value:
        _mapping(value, pad, lines, flow_lists)
    elif isinstance(value, list) and value:
        _sequence(value, pad, lines, flow_lists)
    else:
        lines.append(pad + _inline(value, pad + "  ", flow_lists))
    return "\n".join(lines)


def _mapping(mapping: dict, pad: str, lines: list[str], flow: bool, first: str | None = None) -> None:
    lead = pad if first is None else first
    deeper = pad + "  "
    for key, value in mapping.items():
        head = f"{lead}{_scalar(key, deeper)}:"
        lead = pad
        if type(value) is dict and value:
            lines.append(head)
            _mapping(value, deeper, lines, flow)
        elif type(value) is list and value and not (flow and _flat(value)):
            lines.append(head)
            _sequence(value, pad, lines, flow)
        else:
            lines.append(f"{head} {_inline(value, deeper, flow)}")


def _sequence(items: list, pad: str, lines: list[str], flow: bool) -> None:
    deeper = pad + "  "
    for item in items:
        if type(item) is dict and item:
            _mapping(item, deeper, lines, flow, first=f"{pad}- ")
        elif type(item) is list and item and not (flow and _flat(item)):
            start = len(lines)
            _sequence(item, deeper, lines, flow)
            lines[start] = f"{pad}- {lines[start][len(deeper):]}"
        else:
            lines.append(f"{pad}- {_inline(item, deeper, flow)}")


def _flat(items: list) -> bool:
    return not any(isinstance(item, dict | list) for item in items)


def _inline(value: object, pad: str, flow: bool) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        # plain scalars never hold `,[]{}` (yaml_scalar quotes them), so they are safe in flow style
        return "[" + ", ".join(_scalar(item, pad) for item in value) + "]"
    return _scalar(value, pad)


def _scalar(value: object, pad: str) -> str:
    if type(value) is str and "\n" in value and _literal_safe(value):
        return _literal(value, pad)
    key = (type(value), value)
    text = _TEXTS.get(key)
    if text is None:
        text = yaml_scalar(value)
        if len(_TEXTS) < _CACHE_LIMIT:
            _TEXTS[key] = text
    return text


def _literal(value: str, pad: str) -> str:
    body = value.rstrip("\n")
    trailing = len(value) - len(body)
    chomp = "-" if trailing == 0 else ("" if trailing == 1 else "+")
    kept = value[: len(body) + max(trailing - 1, 0)]
    return f"|{chomp}\n" + "\n".join(f"{pad}{line}" if line else "" for line in kept.split("\n"))


def _literal_safe(text: str) -> bool:
    """Whether a literal block keeps the text exactly (else it is written as a quoted string)."""
    if text.startswith((" ", "\n")) or "\r" in text or "\t" in text:
        return False
    return all(line == line.rstrip(" ") and line.isprintable() for line in text.split("\n"))
