"""msgen's one YAML emitter: block mappings in the order built, every scalar through
`yaml_scalar` (the one escaping filter).

PyYAML's representer is slow for thousands of objects and orders keys its own way; this
writes what it is given, in that order. Multi-line text (config files in ConfigMaps) becomes a literal block
so that it reads well in diffs; with `flow_lists`, lists of scalars are written inline
(`cap_drop: [ALL]`), as compose files usually are. The tests parse every rendered file
back (PyYAML, ruamel.yaml for YAML 1.2, and the real consumers).
"""

from __future__ import annotations

import json
import re

# fullmatch: `$` alone would also match before a trailing newline
_PLAIN_SAFE = re.compile(r"[A-Za-z_/][A-Za-z0-9_./@+-]*")
# words YAML 1.1 or 1.2 readers turn into booleans or null
_SPECIAL_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}


def yaml_scalar(value: object) -> str:
    """One scalar as YAML text that every YAML 1.1 and 1.2 reader reads back unchanged."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _yaml_float(value)
    text = str(value)
    if _PLAIN_SAFE.fullmatch(text) and text.lower() not in _SPECIAL_WORDS and not text.endswith((":", "-")):
        return text
    # a JSON string is a valid YAML double-quoted scalar, once the characters YAML forbids raw
    # (DEL, C1 controls, BOM, U+FFFE/F) or reads as line breaks (NEL, LS, PS) are escaped too
    return _UNSAFE_RAW.sub(_escape_char, json.dumps(text, ensure_ascii=False))


def _yaml_float(value: float) -> str:
    """A float both YAML 1.1 (a `.` in the mantissa: `1.0e-05`, not `1e-05`) and 1.2 read as one."""
    if value != value:
        return ".nan"
    if value in (float("inf"), float("-inf")):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    mantissa, e, exponent = text.partition("e")
    if e and "." not in mantissa:
        return f"{mantissa}.0e{exponent}"
    return text


_UNSAFE_RAW = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


def _escape_char(match: re.Match) -> str:
    return f"\\u{ord(match.group()):04x}"


# the same few thousand keys and strings recur in every object: escape each once (by type,
# so that 1, 1.0 and True stay apart); bounded, since a long-running process renders many
_STRINGS: dict[str, str] = {}
_OTHERS: dict[tuple[type, object], str] = {}
_CACHE_LIMIT = 100_000


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
    append = lines.append
    for key, value in mapping.items():
        head = lead + (_STRINGS.get(key) or _key(key)) + ":"
        lead = pad
        kind = type(value)
        if kind is str:
            # the common case first: a cached plain string (multi-line text is never cached)
            append(head + " " + (_STRINGS.get(value) or _scalar(value, deeper)))
        elif kind is dict and value:
            append(head)
            _mapping(value, deeper, lines, flow)
        elif kind is list and value and not (flow and _flat(value)):
            append(head)
            _sequence(value, pad, lines, flow)
        else:
            append(head + " " + _inline(value, deeper, flow))


def _sequence(items: list, pad: str, lines: list[str], flow: bool) -> None:
    deeper = pad + "  "
    dash = pad + "- "
    for item in items:
        if type(item) is dict and item:
            _mapping(item, deeper, lines, flow, first=dash)
        elif type(item) is list and item and not (flow and _flat(item)):
            start = len(lines)
            _sequence(item, deeper, lines, flow)
            lines[start] = dash + lines[start][len(deeper) :]
        else:
            lines.append(dash + _inline(item, deeper, flow))


def _flat(items: list) -> bool:
    return not any(isinstance(item, dict | list) for item in items)


def _inline(value: object, pad: str, flow: bool) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        # plain scalars never hold `,[]{}` (yaml_scalar quotes them), so they are safe in flow
        # style; a block (multi-line text) is not, so those are quoted like keys
        return "[" + ", ".join(_key(item) for item in value) + "]"
    return _scalar(value, pad)


def _key(key: object) -> str:
    """A mapping key: never a literal block (YAML has no block keys), so multi-line keys are quoted."""
    if type(key) is str and "\n" in key:
        return yaml_scalar(key)
    return _scalar(key, "")


def _scalar(value: object, pad: str) -> str:
    if type(value) is str:
        text = _STRINGS.get(value)
        if text is not None:
            return text
        if "\n" in value and _literal_safe(value):
            return _literal(value, pad)  # depends on the indentation: not cached
        text = yaml_scalar(value)
        if len(_STRINGS) < _CACHE_LIMIT:
            _STRINGS[value] = text
        return text
    key = (type(value), value)
    text = _OTHERS.get(key)
    if text is None:
        text = yaml_scalar(value)
        if len(_OTHERS) < _CACHE_LIMIT:
            _OTHERS[key] = text
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
