"""Write docs/blueprint.md, the blueprint reference, from the models' own field descriptions.

    python scripts/blueprint_reference.py           # writes docs/blueprint.md
    python scripts/blueprint_reference.py --check   # exit 1 when docs/blueprint.md is stale

The tables come from msgen/model/blueprint.py (each field's type, constraints, default and
`description`); the conventions below are the loader's and the types' rules; the complete
example is blueprints/reference.yaml, embedded as it is. The output depends on nothing but
those files, so it is the same on every run and machine.
"""

from __future__ import annotations

import argparse
import re
import sys
import types
import typing
from pathlib import Path

import annotated_types
from pydantic import AfterValidator, BaseModel, BeforeValidator, PlainValidator
from pydantic.fields import FieldInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from msgen.cron import Schedule  # noqa: E402
from msgen.model import blueprint as models  # noqa: E402
from msgen.model import types as field_types  # noqa: E402
from msgen.model.references import RESERVED_NAMES  # noqa: E402
from msgen.model.versions import ENGINE_LINES, KUBERNETES_VERSIONS  # noqa: E402
from msgen.units import Cpu, Duration, Memory  # noqa: E402

OUTPUT = ROOT / "docs" / "blueprint.md"
EXAMPLE = ROOT / "blueprints" / "reference.yaml"

# section heading of each model, in the order the reference shows them
HEADINGS: dict[type[BaseModel], str] = {
    models.Blueprint: "Top level",
    models.Region: "Region",
    models.Host: "Host",
    models.Policy: "Policy",
    models.Gateway: "Gateway",
    models.RateLimit: "Rate limit",
    models.SourceCriterion: "Source criterion",
    models.GatewayResources: "Gateway resources",
    models.Service: "Service",
    models.ExtraPort: "Further port",
    models.Route: "Route",
    models.Health: "Health",
    models.Metrics: "Metrics",
    models.Resources: "Resources",
    models.PartialAmount: "Amount",
    models.CircuitBreaker: "Circuit breaker",
    models.Retry: "Retry",
    models.Egress: "Egress",
    models.Autoscale: "Autoscale",
    models.Latency: "Latency",
    models.ServiceVolume: "Service volume",
    models.ConfigFile: "Config file",
    models.Datastore: "Datastore",
    models.Backup: "Backup",
    models.Observability: "Observability",
    models.Prometheus: "Prometheus",
    models.Alertmanager: "Alertmanager",
    models.Receiver: "Receiver",
    models.WebhookReceiver: "Webhook receiver",
    models.EmailReceiver: "Email receiver",
    models.SlackReceiver: "Slack receiver",
    models.AlertRoute: "Alert route",
    models.Kubernetes: "Kubernetes",
    models.KubernetesPatch: "Kubernetes patch",
    models.PatchTarget: "Patch target",
    models.JsonPatchOperation: "JSON Patch operation",
    models.Compose: "Compose",
    models.Images: "Images",
    models.ImageOverride: "Image override",
    models.Suppression: "Suppression",
}
ENVIRONMENTS_AFTER = models.Compose  # the Environments section (no model of its own) follows this one


def anchor(heading: str) -> str:
    """The fragment GitHub and most Markdown viewers give a heading."""
    return "#" + "".join(char for char in heading.lower().replace(" ", "-") if char.isalnum() or char == "-")


def _unwrap(annotation: object) -> tuple[object, tuple]:
    """(the bare type, the Annotated metadata around it)."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *metadata = typing.get_args(annotation)
        inner, more = _unwrap(base)
        return inner, (*metadata, *more)
    return annotation, ()


def _unit_name(metadata: tuple) -> str | None:
    """The blueprint's own scalar types, recognised by their validators."""
    for item in metadata:
        function = getattr(item, "func", None)
        if isinstance(item, PlainValidator) and function == Duration.parse:
            return "duration"
        if isinstance(item, PlainValidator) and function == Duration.parse_positive:
            return "duration > 0"
        if isinstance(item, PlainValidator) and function == Memory.parse:
            return "memory size"
        if isinstance(item, PlainValidator) and function == Memory.parse_size:
            return "size"
        if isinstance(item, PlainValidator) and function == Cpu.parse:
            return "CPU"
        if isinstance(item, PlainValidator) and function == Schedule.parse:
            return "cron schedule"
        if isinstance(item, AfterValidator) and function is field_types._check_name:
            return "name"
        if isinstance(item, AfterValidator) and function is field_types._check_env_name:
            return "variable name"
        if isinstance(item, BeforeValidator) and function is field_types._require_text_version:
            return "version string"
    return None


def _constraints(metadata: tuple, text: bool) -> list[str]:
    """Bounds and lengths in words (patterns are left to the description)."""
    found: dict[str, object] = {}
    for item in metadata:
        for name in ("gt", "ge", "lt", "le", "min_length", "max_length"):
            value = getattr(item, name, None)
            if value is not None and isinstance(item, (annotated_types.BaseMetadata, annotated_types.Interval)):
                found[name] = value
    words = []
    if "ge" in found and "le" in found:
        words.append(f"{found['ge']}..{found['le']}")
    else:
        for name, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            if name in found:
                words.append(f"{sign} {found[name]}")
    unit = "characters" if text else "entries"
    if "min_length" in found:
        words.append(f"at least {found['min_length']} {unit}" if found["min_length"] != 1 else ("not empty"))
    if "max_length" in found:
        words.append(f"at most {found['max_length']} {unit}")
    return words


def type_text(annotation: object, metadata: tuple = ()) -> str:
    """A human-friendly type: duration, memory size, CPU, name, list of ..., one of a | b."""
    base, inner = _unwrap(annotation)
    metadata = (*metadata, *inner)
    unit = _unit_name(metadata)
    origin = typing.get_origin(base)
    if origin in (typing.Union, types.UnionType):
        options = [option for option in typing.get_args(base) if option is not type(None)]
        if len(options) == 1:
            return type_text(options[0], metadata)
        return " or ".join(type_text(option) for option in options)
    if unit is not None:
        text = unit
    elif origin is typing.Literal:
        values = typing.get_args(base)
        text = f"`{values[0]}`" if len(values) == 1 else "one of " + " | ".join(f"`{value}`" for value in values)
    elif origin is list:
        text = f"list of {type_text(typing.get_args(base)[0])}"
    elif origin is dict:
        key, value = typing.get_args(base)
        text = f"map of {type_text(key)} to {type_text(value)}"
    elif base is dict:
        text = "partial blueprint"
    elif isinstance(base, type) and issubclass(base, BaseModel):
        heading = HEADINGS[base]
        text = f"[{heading.lower()}]({anchor(heading)})"
    else:
        text = {bool: "boolean", int: "integer", float: "number", str: "string", object: "any value"}[base]
    words = _constraints(metadata, text=base is str)
    return f"{text}, {', '.join(words)}" if words else text


def _yaml_flow(value: object) -> str:
    """A default as one would write it in the blueprint (flow style, unset fields left out)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_yaml_flow(item)}" for key, item in value.items() if item is not None) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_flow(item) for item in value) + "]"
    return str(value)


def default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    default = field.default
    if default is None:
        return "none"
    if isinstance(default, BaseModel):
        default = default.model_dump(mode="json", exclude_none=True)
        if not any(default.values()):
            return "each value its own default"
    elif isinstance(default, (Duration, Memory, Cpu, Schedule)):
        default = default.text
    return f"`{_yaml_flow(default)}`"


def cell(text: str) -> str:
    """One table cell: on one line, pipes escaped, `<` kept from starting an HTML tag."""
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", " ".join(text.split()).replace("|", "\\|"))


def _where(model: type[BaseModel], prefix: str, found: dict[type[BaseModel], list[str]]) -> None:
    """Record the key path of every model reachable from `model` (first seen, field order)."""
    for name, field in model.model_fields.items():
        name = field.alias or name  # the key as the blueprint spells it (`from`)
        path = f"{prefix}.{name}" if prefix else name
        for child, suffix in _models_in(field.annotation):
            paths = found.setdefault(child, [])
            full = path + suffix
            if full not in paths:
                paths.append(full)
                _where(child, full, found)


def _models_in(annotation: object) -> list[tuple[type[BaseModel], str]]:
    base, _ = _unwrap(annotation)
    origin = typing.get_origin(base)
    if origin in (typing.Union, types.UnionType):
        return [item for option in typing.get_args(base) for item in _models_in(option)]
    if origin is list:
        return [(model, "[]" + suffix) for model, suffix in _models_in(typing.get_args(base)[0])]
    if origin is dict:
        return [(model, ".<name>" + suffix) for model, suffix in _models_in(typing.get_args(base)[1])]
    if isinstance(base, type) and issubclass(base, BaseModel):
        return [(base, "")]
    return []


def reachable_models() -> dict[type[BaseModel], list[str]]:
    """Every model the blueprint uses, with the key paths where it appears."""
    found: dict[type[BaseModel], list[str]] = {models.Blueprint: []}
    _where(models.Blueprint, "", found)
    return found


def section(model: type[BaseModel], paths: list[str]) -> list[str]:
    heading = HEADINGS[model]
    lines = [f"## {heading}", ""]
    if model.__doc__:
        lines += [" ".join(model.__doc__.split()), ""]
    if paths:
        lines += ["Where: " + ", ".join(f"`{path}`" for path in paths), ""]
    else:
        lines += ["Where: the top of the file.", ""]
    lines += ["| field | type | required / default | description |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        kind = type_text(field.annotation, tuple(field.metadata))
        lines.append(f"| `{field.alias or name}` | {cell(kind)} | {cell(default_text(field))} | {cell(field.description or '')} |")
    return [*lines, ""]


def _versions() -> str:
    return "; ".join(f"{engine} " + ", ".join(f'`"{line}"`' for line in lines) for engine, lines in ENGINE_LINES.items())


CONVENTIONS = f"""\
## Conventions

- **YAML 1.2 core schema.** `NO`, `yes`, `on`, `off` are strings; `true` and `false` (also
  `True`, `TRUE`, `False`, `FALSE`) are the only booleans; `012` is the integer 12, `0o17`
  octal, `0x1f` hexadecimal. One YAML document per file, UTF-8 (a byte-order mark is
  accepted); keys are strings. The only tags are `!!str`, `!!int`, `!!float`, `!!bool` and
  `!!null` on scalars; any other tag, and any tag on a mapping or list (`!!map`, `!!set`),
  is a load error.
- **Line breaks** are LF, CR LF or CR. NEL, LINE SEPARATOR and PARAGRAPH SEPARATOR (U+0085,
  U+2028, U+2029) are line breaks in YAML 1.1 but not in 1.2, so the file would read
  differently in each: anywhere in the file they are a load error. Inside a double-quoted
  string write them as `\\u0085`, `\\u2028`, `\\u2029`.
- **Unknown keys are rejected**, with a did-you-mean hint when a known key is close
  (`replica` -> `replicas`). **Duplicate keys** in one mapping are load errors.
- **Anchors, aliases and merge keys** (`<<`) are allowed; only a plain `<<` merges (a
  quoted `"<<"` is an ordinary key, and so an unknown one). What aliases add is charged to a
  budget of max(10,000, 4 x the file's characters) nodes, so a file whose aliases expand
  beyond it stops at once with `aliases expand to more than N nodes`, before it takes much
  memory.
- **Durations** are strings `<digits><unit>` with the unit `ms`, `s`, `m`, `h` or `d`:
  `250ms`, `10s`, `2m`, `1h`, `15d`. Bare numbers are rejected (is `10` seconds or
  milliseconds?).
- **Memory sizes** are strings `<digits><unit>` with a binary unit `Ki`, `Mi`, `Gi` or `Ti`
  (`512Mi` = 512 x 1024 x 1024 bytes); a container's memory is at least `6Mi`, other sizes
  (a request body) greater than 0.
- **CPU** is a number of cores (`0.5`, `2`) or a string of millicores (`250m`), greater than
  0 and no finer than one millicore.
- **Versions are quoted strings**: YAML reads `version: 8.0` as a number, and `1.30` as
  the number 1.3, so an unquoted version is a load error whose hint says `write it quoted:
  version: "8.0"`. The same hint appears wherever YAML read a number where text is expected
  (`env: {{PYTHON: 3.10}}`). Datastore versions: {_versions()}; a patch version such as
  `"8.0.40"` pins the image. Kubernetes versions: `"{KUBERNETES_VERSIONS[0]}"` to `"{KUBERNETES_VERSIONS[-1]}"`.
- **Names** (project, services, datastores, hosts, regions, namespaces, the image pull
  secret) are DNS-1123 labels: lowercase letters, digits and `-`, starting with a letter and
  ending with a letter or digit, at most 40 characters (`[a-z]([-a-z0-9]{{0,38}}[a-z0-9])?`).
- **Variable names** (`env`, `secrets`) are letters, digits and `_`, not starting with a digit.
- **Every load error** reads `file:line:column: key.path: message (hint: ...)` and exits
  with 2; line and column are those of the key (of the item, in a list). Keys that could be
  misread in a path are JSON-quoted (`services."we:b"`). An error inside an `environments`
  overlay names the overlay's path (`environments.staging.services.web.replicas`).

### Rules across fields (load errors)

- Every name a field refers to must be declared: a host's `region`, a service's `region`,
  `calls` and `datastore`, a datastore's `host`, `compose.host`, the regions of an `rtt_ms`
  pair.
- A service needs `region` when several regions are declared; `compose` needs `host` when
  several hosts are declared.
- Host names are unique. The names msgen gives its own containers are taken:
  {", ".join(f"`{name}`" for name in RESERVED_NAMES)}; a datastore may not end in
  `-exporter`; a service may not share a datastore's name.
- `calls` form no cycle and no service calls itself; a call between two regions needs their
  pair in `rtt_ms`.
- A route needs the `gateway` section.
- `rtt_ms` declares each pair of regions once: `a/b` and `b/a` together are a load error.
- Text msgen writes into Traefik's dynamic configuration file (`health.path`,
  `circuit_breaker.expression`, a rate limit's `source.request_header`) may not contain
  `{{{{` or `}}}}`: Traefik reads that file as a Go template, and drops the whole file when
  the template fails (a template that works would run in the gateway).
"""

ENVIRONMENTS = """\
## Environments

Where: `environments.<name>`

`msgen validate|render|plan --env NAME` merges `environments.NAME` over the blueprint before
validation: maps merge key by key, lists and scalars replace. An overlay may not set
`version` or `environments`, and may not name a service or datastore the base does not
declare (a load error with a did-you-mean hint). An unknown `NAME` is a load error. Without
`--env`, every overlay is still merged and validated, so a broken overlay is found before
it is used. `--env` changes the blueprint, not the layout of the output: use one output
folder per environment (`-o out/staging`).
"""


def render() -> str:
    """The whole of docs/blueprint.md."""
    found = reachable_models()
    missing = sorted(model.__name__ for model in found if model not in HEADINGS)
    if missing:
        raise SystemExit(f"models without a section in {Path(__file__).name}: {', '.join(missing)}")
    lines = [
        "# Blueprint reference",
        "",
        "<!-- Generated by scripts/blueprint_reference.py from msgen/model/blueprint.py; do not edit by hand. -->",
        "",
        "A blueprint is one YAML file that describes the whole platform: its services,",
        "datastores, gateway, monitoring and where they run. This reference lists every key the",
        "format (version 1) accepts, one section per part of the file. `msgen schema` prints the",
        "same rules as a JSON Schema (editors use it through the first line",
        "`# yaml-language-server: $schema=msgen.schema.json`), and `msgen plan` shows every value",
        "a blueprint left to its default.",
        "",
        "In the tables, *required* marks a key the part needs, *none* a key whose absence means",
        "the feature is off, and a value in code font the default msgen uses.",
        "",
        "Sections: " + ", ".join(f"[{heading}]({anchor(heading)})" for heading in _ordered_headings()) + ".",
        "",
        CONVENTIONS,
    ]
    for model in HEADINGS:
        if model not in found:
            continue
        lines += section(model, found[model])
        if model is ENVIRONMENTS_AFTER:
            lines += [ENVIRONMENTS]
    example = EXAMPLE.read_text(encoding="utf-8")
    lines += [
        "## Complete example",
        "",
        "`blueprints/reference.yaml`, the `reference` starter (`msgen init DIR --starter reference`):",
        "",
        "```yaml",
        example.rstrip("\n"),
        "```",
        "",
    ]
    return "\n".join(lines)


def _ordered_headings() -> list[str]:
    headings = []
    for model, heading in HEADINGS.items():
        headings.append(heading)
        if model is ENVIRONMENTS_AFTER:
            headings.append("Environments")
    return [*headings, "Complete example"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write docs/blueprint.md from the blueprint models")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when docs/blueprint.md is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.is_file() else None
        if current != text:
            print(f"{OUTPUT.relative_to(ROOT)} is stale: run python scripts/blueprint_reference.py", file=sys.stderr)
            return 1
        print(f"{OUTPUT.relative_to(ROOT)} is up to date")
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8", newline="\n")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
