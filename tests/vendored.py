"""The pinned upstream schemas in ../shared/vendor, as their real consumers enforce them.

The folder sits beside the repository (its README.md names every upstream, version and commit):

* Traefik Helm chart 41.3.0 (Traefik v3.7.11): `crds/traefik.io_*.yaml`, `values.yaml`,
  `values.schema.json`;
* cert-manager v1.21.1: the Certificate, Issuer and ClusterIssuer CRDs;
* prometheus-operator v0.93.0: the ServiceMonitor, PodMonitor and PrometheusRule CRDs.

Without the folder a test fails under CI=true (CI must check against the real schemas) and
skips elsewhere with the reason.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from msgen import images

VENDOR = Path(__file__).resolve().parents[2] / "shared" / "vendor"
# the versions msgen writes for are the versions vendored: one constant each, in msgen/images.py
TRAEFIK_CHART = f"traefik-helm-chart-{images.TRAEFIK_CHART_VERSION}"
CERT_MANAGER = f"cert-manager-{images.CERT_MANAGER_VERSION.removeprefix('v')}"
CRD_FOLDERS = (TRAEFIK_CHART, CERT_MANAGER, "prometheus-operator-0.93.0")
# the API groups whose kinds the vendored CRDs serve
CRD_GROUPS = ("traefik.io", "cert-manager.io", "monitoring.coreos.com")


def vendor_dir() -> Path:
    """The vendor folder, or fail (CI=true) / skip (elsewhere) saying where it was expected."""
    if VENDOR.is_dir() and all((VENDOR / folder).is_dir() for folder in CRD_FOLDERS):
        return VENDOR
    message = f"the pinned upstream schemas are not at {VENDOR} (expected {', '.join(CRD_FOLDERS)})"
    if os.environ.get("CI") == "true":
        pytest.fail(message + ": CI must check msgen's output against them")
    pytest.skip(message)  # reached only outside CI: under CI=true the line above fails the test


def is_crd_kind(obj: Any) -> bool:
    """Whether the object's apiVersion belongs to a group the vendored CRDs cover."""
    if not isinstance(obj, dict) or not isinstance(obj.get("apiVersion"), str):
        return False
    return obj["apiVersion"].split("/")[0] in CRD_GROUPS


# --- CRDs ----------------------------------------------------------------------------------------


@functools.cache
def _served_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> the openAPIV3Schema of every served version of every vendored CRD."""
    schemas: dict[tuple[str, str], dict] = {}
    for folder in CRD_FOLDERS:
        for path in sorted((vendor_dir() / folder / "crds").glob("*.yaml")):
            for crd in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
                for version in crd["spec"]["versions"]:
                    if version.get("served"):
                        schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


# The API server checks names and labels itself; the CRD schema only says `type: object`.
LOOSE_METADATA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "generateName": {"type": "string"},
        "namespace": {"type": "string", "minLength": 1},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "anyOf": [{"required": ["name"]}, {"required": ["generateName"]}],
}

# value validations (inside these keywords) never declare fields of their own in a structural schema
_VALUE_KEYWORDS = ("allOf", "anyOf", "oneOf", "not")


def _translate(node: Any, structural: bool = True) -> Any:
    """An OpenAPI v3 (Kubernetes structural) schema as a JSON Schema the `jsonschema` package runs.

    * `nullable: true` adds "null" to the type (and to an enum);
    * `x-kubernetes-int-or-string: true` accepts an integer or a string;
    * `x-kubernetes-preserve-unknown-fields: true` keeps unknown fields; every other object is
      closed (`additionalProperties: false`), because the API server prunes unknown fields or,
      with strict field validation (kubectl's default), rejects them;
    * `x-kubernetes-embedded-resource: true` also allows apiVersion, kind and metadata;
    * `x-kubernetes-validations` (CEL rules) are not evaluated;
    * a null where the schema is not nullable is a problem, although the API server would drop
      it silently: either way what the file says is not what the cluster keeps.
    """
    if isinstance(node, list):
        return [_translate(item, structural) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("nullable", "format", "default", "description", "example"):
            continue
        if key in ("properties", "patternProperties"):
            out[key] = {name: _translate(sub, structural) for name, sub in value.items()}
        elif key in _VALUE_KEYWORDS:
            out[key] = _translate(value, structural=False)
        elif key == "pattern":
            out[key] = _python_pattern(value)
        elif key in ("items", "additionalProperties"):
            out[key] = _translate(value, structural) if isinstance(value, dict) else value
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if node.get("x-kubernetes-embedded-resource"):
        props = out.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    if node.get("nullable"):
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        elif isinstance(out.get("type"), list) and "null" not in out["type"]:
            out["type"] = [*out["type"], "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    is_object = node.get("type") == "object"
    if (
        structural
        and is_object
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
        and not node.get("x-kubernetes-int-or-string")
    ):
        out["additionalProperties"] = False
    return out


def _python_pattern(pattern: str) -> str:
    """Go's RE2 accepts an inline flag group such as `^(?i)...` anywhere; Python only at the start."""
    flags = re.findall(r"\(\?[imsU]+\)", pattern)
    if not flags or pattern.startswith(flags[0]):
        return pattern
    for flag in flags:
        pattern = pattern.replace(flag, "", 1)
    return "".join(dict.fromkeys(flags)) + pattern


@functools.cache
def _crd_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    raw = _served_schemas().get((api_version, kind))
    if raw is None:
        served = ", ".join(sorted(f"{v}/{k}" for v, k in _served_schemas()))
        pytest.fail(f"no vendored CRD serves {api_version} {kind} (served: {served})")
    schema = _translate(raw)
    schema.setdefault("properties", {})["metadata"] = LOOSE_METADATA
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
    validator_class = jsonschema.Draft7Validator
    validator_class.check_schema(schema)
    return validator_class(schema)


def crd_problems(obj: dict) -> list[str]:
    """Every way `obj` breaks the openAPIV3Schema of the vendored CRD serving its apiVersion and
    kind (Traefik chart 41.3.0 CRDs, cert-manager v1.21.1, prometheus-operator v0.93.0).

    Fails the test when no vendored CRD serves the kind: silence would pass anything.
    """
    validator = _crd_validator(str(obj.get("apiVersion")), str(obj.get("kind")))
    metadata = obj.get("metadata")
    name = metadata.get("name", "?") if isinstance(metadata, dict) else "?"
    return [
        f"{obj.get('kind')}/{name}: {'.'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in sorted(validator.iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path])
    ]


# --- the Traefik chart's values ----------------------------------------------------------------------


def helm_merge(defaults: Any, user: Any) -> Any:
    """Helm's coalescing of a user's values over a chart's: maps merge key by key, recursively;
    a user's null deletes the key; any other user value replaces the default."""
    if not isinstance(defaults, dict) or not isinstance(user, dict):
        return _drop_nulls(copy.deepcopy(user))
    merged = copy.deepcopy(defaults)
    for key, value in user.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = _drop_nulls(copy.deepcopy(value))
    return merged


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _drop_nulls(item) for key, item in value.items() if item is not None}
    return value


@functools.cache
def _chart_defaults_text() -> str:
    return (vendor_dir() / TRAEFIK_CHART / "values.yaml").read_text(encoding="utf-8")


@functools.cache
def _values_validator() -> jsonschema.protocols.Validator:
    schema = json.loads((vendor_dir() / TRAEFIK_CHART / "values.schema.json").read_text(encoding="utf-8"))
    # The file declares draft 2020-12 but uses only keywords whose meaning draft 7 shares.
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def traefik_values_problems(values: dict) -> list[str]:
    """Every error `helm install`/`helm template` of the Traefik chart 41.3.0 would stop on:
    the user's values merged over the chart's values.yaml, validated against its
    values.schema.json (JSON Schema draft 7)."""
    defaults = yaml.safe_load(_chart_defaults_text()) or {}
    merged = helm_merge(defaults, values)
    return [
        f"{'.'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in sorted(_values_validator().iter_errors(merged), key=lambda e: [str(p) for p in e.absolute_path])
    ]
