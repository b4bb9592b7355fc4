"""The single Jinja environment: strict undefined, no HTML escaping, YAML-safe filters."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jinja2

from msgen.yamlout import dump, yaml_scalar

_PACKAGE = Path(__file__).resolve().parent
# installed wheels carry templates inside the package; a checkout has them at the top level
TEMPLATES_DIR = next(
    (path for path in (_PACKAGE / "templates", _PACKAGE.parent / "templates") if path.is_dir()),
    _PACKAGE / "templates",
)

def to_yaml(value: object, indent: int = 0) -> str:
    """A structure as block YAML, keys in the order given, indented by `indent` spaces."""
    return dump(value, indent)


def to_json(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


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
