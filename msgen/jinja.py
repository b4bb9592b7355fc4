"""The single Jinja environment: strict undefined, no HTML escaping, YAML-safe filters."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import jinja2

_PACKAGE = Path(__file__).resolve().parent
# installed wheels carry templates inside the package; a checkout has them at the top level
TEMPLATES_DIR = next(
    (path for path in (_PACKAGE / "templates", _PACKAGE.parent / "templates") if path.is_dir()),
    _PACKAGE / "templates",
)

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


def to_yaml(value: object, indent: int = 0) -> str:
    """A structure as block YAML, keys in the order given, indented by `indent` spaces."""
    from msgen.yamlout import dump  # yamlout builds on yaml_scalar above

    return dump(value, indent)


def to_json(value: object) -> str:
    """`json.dumps(value, indent=2, ensure_ascii=False)`, byte for byte, several times faster:
    with `indent` the json module drops to its pure-Python encoder (1000 Grafana dashboards
    took 0.3 s); here only strings go through the C escaper."""
    parts: list[str] = []
    _json(value, "\n", parts)
    return "".join(parts)


_JSON_CONSTANTS = {True: "true", False: "false", None: "null"}


def _json(value: object, newline: str, parts: list[str]) -> None:
    kind = type(value)
    if kind is str:
        parts.append(_json_string(value))
    elif kind is dict or kind is list:
        if not value:
            parts.append("{}" if kind is dict else "[]")
            return
        inner = newline + "  "
        parts.append("{" if kind is dict else "[")
        separator = inner
        if kind is dict:
            for key, item in value.items():
                parts.append(separator)
                parts.append(_json_string(key) if type(key) is str else _json_key(key))
                parts.append(": ")
                _json(item, inner, parts)
                separator = "," + inner
        else:
            for item in value:
                parts.append(separator)
                _json(item, inner, parts)
                separator = "," + inner
        parts.append(newline + ("}" if kind is dict else "]"))
    elif kind is bool or value is None:
        parts.append(_JSON_CONSTANTS[value])
    else:
        parts.append(json.dumps(value))  # numbers, and whatever json itself accepts or refuses


def _json_key(key: object) -> str:
    """An int, float, bool or None key, turned into a string the way json does it."""
    return json.dumps({key: 0})[1:].rsplit(":", 1)[0]


_json_string = json.encoder.encode_basestring  # the C escaper where CPython has it


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # templates do not change during a run: no stat of the file per render
    )
    env.filters["yaml_scalar"] = yaml_scalar
    env.filters["to_yaml"] = to_yaml
    env.filters["to_json"] = to_json
    return env


@cache
def _template(name: str) -> jinja2.Template:
    return environment().get_template(name)


def render_template(name: str, **context: object) -> str:
    return _template(name).render(**context)
