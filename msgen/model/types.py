"""Annotated field types shared by the blueprint models."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, PlainValidator, WithJsonSchema

from msgen.units import Cpu, Duration, Memory

NAME_PATTERN = r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$"
_NAME = re.compile(NAME_PATTERN)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid name: use lowercase letters, digits and '-', "
            "start with a letter, end with a letter or digit, at most 40 characters (DNS-1123 label)"
        )
    return value


def _check_env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid variable name: use letters, digits and '_', not starting with a digit")
    return value


def _require_text_version(value: object) -> object:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError("a version is a string: YAML reads an unquoted version as a number (1.30 becomes 1.3)")
    return value


def _unit(cls, pattern: str, description: str):
    return (
        PlainValidator(cls.parse),
        PlainSerializer(lambda value: value.text, return_type=str),
        WithJsonSchema({"type": "string", "pattern": pattern, "description": description}),
    )


Name = Annotated[str, AfterValidator(_check_name), WithJsonSchema({"type": "string", "pattern": NAME_PATTERN})]
EnvName = Annotated[str, AfterValidator(_check_env_name)]
VersionText = Annotated[str, BeforeValidator(_require_text_version)]
DurationField = Annotated[Duration, *_unit(Duration, r"^[0-9]+(ms|s|m|h|d)$", "duration, e.g. 250ms, 10s, 2m")]
PositiveDurationField = Annotated[
    Duration,
    PlainValidator(Duration.parse_positive),
    PlainSerializer(lambda value: value.text, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^[0-9]*[1-9][0-9]*(ms|s|m|h|d)$", "description": "duration longer than 0, e.g. 250ms, 10s"}),
]
MemoryField = Annotated[Memory, *_unit(Memory, r"^[0-9]+(Ki|Mi|Gi|Ti)$", "memory size, e.g. 128Mi, 2Gi")]
CpuField = Annotated[
    Cpu,
    PlainValidator(Cpu.parse),
    PlainSerializer(lambda value: value.text, return_type=str),
    WithJsonSchema({"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "string", "pattern": r"^[0-9]+m$"}]}),
]
