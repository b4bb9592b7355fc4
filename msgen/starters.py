"""Starter blueprints for `msgen init`, and the blueprint's JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic.json_schema import GenerateJsonSchema

from msgen.cron import Schedule
from msgen.errors import MsgenError
from msgen.jinja import TEMPLATES_DIR
from msgen.model.blueprint import Blueprint
from msgen.units import Cpu, Duration, Memory

BLUEPRINTS_DIR = next(
    (path for path in (TEMPLATES_DIR.parent / "blueprints", Path(__file__).resolve().parent / "blueprints") if path.is_dir()),
    TEMPLATES_DIR.parent / "blueprints",
)
SCHEMA_FILE = "msgen.schema.json"
# the schema's identity: editors and validators key their caches by it; v1 is the format's version
SCHEMA_ID = "urn:msgen:schema:blueprint:v1"


class BlueprintSchema(GenerateJsonSchema):
    """The JSON Schema of the blueprint, with each default written as a blueprint would write it."""

    def encode_default(self, dft):
        # a quantity or a schedule as the blueprint writes it ("15d", 0.5, "250m", "0 3 * * *"),
        # which its own schema accepts
        if isinstance(dft, Cpu):
            return dft.written
        if isinstance(dft, (Duration, Memory, Cpu, Schedule)):
            return dft.text
        return super().encode_default(dft)


def schema_text() -> str:
    schema = Blueprint.model_json_schema(schema_generator=BlueprintSchema)
    schema = {**schema, "$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, "title": "msgen blueprint v1"}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def starter_text(name: str) -> str:
    path = BLUEPRINTS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise MsgenError(f"unknown starter {name!r}")
    return path.read_text(encoding="utf-8")


def write_starter(directory: Path, name: str, force: bool) -> list[Path]:
    """Write blueprint.yaml and msgen.schema.json into `directory`; never overwrite without force."""
    files = {directory / "blueprint.yaml": starter_text(name), directory / SCHEMA_FILE: schema_text()}
    existing = [path for path in files if path.exists()]
    if existing and not force:
        raise MsgenError(f"{existing[0]} exists; use --force to overwrite")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for path, text in files.items():
            path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise MsgenError(f"cannot write into {directory}: {error.strerror}") from None
    return list(files)
