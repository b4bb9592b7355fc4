"""Kubernetes objects against the real API definitions, fast enough for thousands of objects.

Two independent judges:
- the strict JSON schemas that kubernetes-validate ships for 1.25-1.37 (every unknown key,
  wrong type and missing required field), compiled once per kind with jsonschema-rs instead
  of `kubernetes_validate.validate`, which re-reads and re-compiles them on every call;
- the kubernetes client's pydantic models (`V1Deployment.model_validate`, extra="forbid"),
  imported only here, for `--deep`: importing them is slow.
Both report every problem with the field's path inside the object.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pydantic import ValidationError

# kubernetes-validate's schema files point at their shared definitions by this absolute
# URI; pointing it at a local `$defs` lets one document compile without a retriever
_DEFINITIONS_REF = "/api/_definitions.json#/"


@dataclass(frozen=True)
class Problem:
    """One way an object breaks the API: where (`spec.template.spec.containers[0]`) and what."""

    field: str
    message: str


def field_path(parts) -> str:
    """Key and index parts as `a.b[0].c`."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@cache
def schema_root() -> Path:
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - a runtime dependency
        raise RuntimeError("kubernetes-validate is not installed; msgen needs its schemas")
    return Path(next(iter(spec.submodule_search_locations))) / "kubernetes-json-schema"


def schema_file_name(document: dict) -> str:
    """kubernetes-validate's file naming: `deployment-apps-v1.json`, `service-v1.json`."""
    api_version = str(document.get("apiVersion", ""))
    group, _, version = api_version.rpartition("/")
    prefix = f"{group.split('.')[0]}-" if group else ""
    return f"{str(document.get('kind', '')).lower()}-{prefix}{version}.json"


def _strict_dir(version: str) -> Path:
    return schema_root() / f"v{version}.0-local-strict"


@cache
def _definitions(version: str) -> dict:
    text = (_strict_dir(version) / "_definitions.json").read_text(encoding="utf-8")
    return json.loads(text.replace(_DEFINITIONS_REF, "#/"))["$defs"]


@cache
def _validator(version: str, file_name: str):
    """The compiled strict schema of one kind, or None when the version has no such kind."""
    import jsonschema_rs  # only `--deep` pays for importing it

    path = _strict_dir(version) / file_name
    if not path.is_file():
        return None
    schema = json.loads(path.read_text(encoding="utf-8").replace(_DEFINITIONS_REF, "#/"))
    schema["$defs"] = _definitions(version)
    return jsonschema_rs.Draft202012Validator(schema)


def schema_problems(document: dict, version: str) -> list[Problem]:
    """Every violation of the version's strict schema; an unknown kind is itself a problem."""
    validator = _validator(version, schema_file_name(document))
    if validator is None:
        return [Problem("kind", f"Kubernetes {version} has no {document.get('apiVersion')} {document.get('kind')}")]
    return sorted(
        (Problem(field_path(error.instance_path), error.message) for error in validator.iter_errors(document)),
        key=lambda problem: (problem.field, problem.message),
    )


@cache
def _model_class(api_version: str, kind: str):
    from kubernetes.client import models  # only `--deep` pays for importing the client

    version = api_version.rpartition("/")[2]
    return getattr(models, version[:1].upper() + version[1:] + kind, None)


def model_problems(document: dict) -> list[Problem] | None:
    """Every error the kubernetes client's strict model reports, or None when no model applies."""
    model = _model_class(str(document.get("apiVersion", "")), str(document.get("kind", "")))
    if model is None or not hasattr(model, "model_validate"):
        return None
    try:
        model.model_validate(document)
    except ValidationError as error:
        return [Problem(field_path(item["loc"]), item["msg"]) for item in error.errors()]
    return []
