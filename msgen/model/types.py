"""Annotated field types shared by the blueprint models."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from msgen.cron import Schedule
from msgen.units import Cpu, Duration, Memory

NAME_PATTERN = r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$"
_NAME = re.compile(NAME_PATTERN)
# a name of a cluster-wide Kubernetes object such as a StorageClass: a DNS-1123 subdomain
OBJECT_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_OBJECT_NAME = re.compile(OBJECT_NAME_PATTERN)
OBJECT_NAME_MAX = 253
# a variable or secret name becomes a YAML key in the compose file: libyaml reads keys of at most 1024 characters
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,199}")


def _check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid name: use lowercase letters, digits and '-', "
            "start with a letter, end with a letter or digit, at most 40 characters (DNS-1123 label)"
        )
    return value


def _check_object_name(value: str) -> str:
    if len(value) > OBJECT_NAME_MAX or not _OBJECT_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid Kubernetes object name: use lowercase letters, digits, '-' and '.', start and "
            f"end each dot-separated part with a letter or digit, at most {OBJECT_NAME_MAX} characters (DNS-1123 subdomain)"
        )
    return value


def _check_env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid variable name: use letters, digits and '_', not starting with a digit, at most 200 characters"
        )
    return value


# Go's text/template delimiters: Traefik's file provider runs each dynamic configuration file
# through text/template before reading it
GO_TEMPLATE_DELIMITERS = ("{{", "}}")


def _no_go_template(value: str) -> str:
    """Text msgen writes into Traefik's dynamic configuration file must not hold `{{` or `}}`:
    Traefik drops the whole file (every route) when the template does not parse, and a
    template that does parse runs in the gateway (`{{ env "X" }}` reads its environment)."""
    for delimiter in GO_TEMPLATE_DELIMITERS:
        if delimiter in value:
            raise PydanticCustomError(
                "go_template",
                "{delimiter} is a Go template delimiter: Traefik reads the dynamic configuration file this text is "
                "written into as a Go template, and would drop the whole file or run the template",
                {"delimiter": repr(delimiter), "hint": "remove '{{' and '}}' from it"},
            )
    return value


def _require_text_version(value: object) -> object:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError("a version is a string: YAML reads an unquoted version as a number (1.30 becomes 1.3)")
    return value


def _unit(parse, pattern: str, description: str):
    """A blueprint quantity: read by `parse`, written back as the text the blueprint gave."""
    return (
        PlainValidator(parse),
        PlainSerializer(lambda value: value.text, return_type=str),
        WithJsonSchema({"type": "string", "pattern": pattern, "description": description}),
    )


Name = Annotated[str, AfterValidator(_check_name), WithJsonSchema({"type": "string", "pattern": NAME_PATTERN})]
ObjectName = Annotated[
    str, AfterValidator(_check_object_name), WithJsonSchema({"type": "string", "pattern": OBJECT_NAME_PATTERN, "maxLength": OBJECT_NAME_MAX})
]
EnvName = Annotated[str, AfterValidator(_check_env_name)]
# free text that reaches traefik/dynamic/<project>.yml
TraefikText = Annotated[str, AfterValidator(_no_go_template)]
VersionText = Annotated[str, BeforeValidator(_require_text_version)]
DurationField = Annotated[Duration, *_unit(Duration.parse, r"^[0-9]+(ms|s|m|h|d)$", "duration, e.g. 250ms, 10s, 2m")]
PositiveDurationField = Annotated[
    Duration, *_unit(Duration.parse_positive, r"^[0-9]*[1-9][0-9]*(ms|s|m|h|d)$", "duration longer than 0, e.g. 250ms, 10s")
]
MemoryField = Annotated[Memory, *_unit(Memory.parse, r"^[0-9]+(Ki|Mi|Gi|Ti)$", "memory size, e.g. 128Mi, 2Gi")]
SizeField = Annotated[Memory, *_unit(Memory.parse_size, r"^[0-9]*[1-9][0-9]*(Ki|Mi|Gi|Ti)$", "size larger than 0, e.g. 512Ki, 1Mi")]
CronField = Annotated[
    Schedule, *_unit(Schedule.parse, r"^(@[a-z]+|\S+( \S+){4})$", "cron schedule in UTC, five fields or a macro, e.g. '0 3 * * *', '@daily'")
]
CpuField = Annotated[
    Cpu,
    PlainValidator(Cpu.parse),
    PlainSerializer(lambda value: value.written),
    WithJsonSchema({"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "string", "pattern": r"^[0-9]+m$"}]}),
]


# Kubernetes' qualified names (label and annotation keys): an optional DNS subdomain prefix and
# `/`, then a name of at most 63 alphanumerics, '-', '_' and '.', alphanumeric at both ends
_QUALIFIED = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
# IANA_SVC_NAME, Kubernetes' port names: lowercase alphanumerics and '-', at most 15, a letter
# among them, no '-' at either end nor two in a row
_PORT_NAME = re.compile(r"(?=.*[a-z])[a-z0-9](-?[a-z0-9])*")
PORT_NAME_MAX = 15


def _check_metadata_key(value: str) -> str:
    prefix, _, name = value.rpartition("/")
    if "/" in prefix or not _QUALIFIED.fullmatch(name) or (prefix and (len(prefix) > OBJECT_NAME_MAX or not _OBJECT_NAME.fullmatch(prefix))):
        raise ValueError(
            f"{value!r} is not a valid Kubernetes label or annotation key: an optional DNS subdomain prefix and '/', then "
            "a name of at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        )
    return value


def _check_label_value(value: str) -> str:
    if not _LABEL_VALUE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid Kubernetes label value: empty, or at most 63 letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit"
        )
    return value


def _check_port_name(value: str) -> str:
    if len(value) > PORT_NAME_MAX or not _PORT_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid port name: at most {PORT_NAME_MAX} lowercase letters, digits and '-', with at least "
            "one letter, no '-' at either end nor two in a row (IANA_SVC_NAME)"
        )
    return value


MetadataKey = Annotated[str, AfterValidator(_check_metadata_key)]
LabelValue = Annotated[str, AfterValidator(_check_label_value)]
PortName = Annotated[str, AfterValidator(_check_port_name)]
