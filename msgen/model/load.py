"""From a file to a validated Blueprint, or a load error with file, line and column."""

from __future__ import annotations

import difflib
import json
import re
import types
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path

from pydantic import BaseModel, ValidationError

from msgen import __version__
from msgen.errors import BlueprintError, LoadIssue
from msgen.loader import KeyPath, SourceMap, read_yaml_file
from msgen.model.blueprint import MIN_VERSION_KEY, VERSION_PATTERN, Blueprint, version_tuple
from msgen.model.files import read_config_files
from msgen.model.references import check_references


@dataclass(frozen=True)
class LoadedBlueprint:
    """A valid blueprint with the map back to the lines it came from."""

    blueprint: Blueprint
    source: SourceMap
    env: str | None
    files: dict[str, bytes] = field(default_factory=dict)  # a config file's source -> its bytes, read once

    @property
    def file(self) -> str:
        return self.source.file


def load_blueprint(path: Path, env: str | None = None) -> LoadedBlueprint:
    """Read, overlay `env`, validate and cross-check a blueprint file."""
    data, source = read_yaml_file(path)
    _check_root(data, source)
    _check_msgen_version(data, source)
    environments = data.get("environments") or {}
    if env is not None and (not isinstance(environments, dict) or env not in environments):
        known = sorted(environments) if isinstance(environments, dict) else []
        hint = _did_you_mean(env, known, "environments: ") if known else "the blueprint declares no environments"
        raise BlueprintError([source.issue(("environments",), f"unknown environment {env!r}", hint)])
    folder = path.parent
    base = validate(data, source)
    if env is None:
        files = read_config_files(base, source, folder)
        # every overlay must stay valid, even unused; identical overlays are validated once
        distinct: dict[str, str] = {}
        for name in sorted(base.environments):
            distinct.setdefault(json.dumps(environments[name], sort_keys=True, default=str), name)
        for name in distinct.values():
            _in_overlay(name, lambda name=name: _with_files(*_overlaid(data, source, name), folder))
        return LoadedBlueprint(base, source, None, files)
    merged_data, merged_source = _overlaid(data, source, env)
    blueprint, files = _in_overlay(env, lambda: _with_files(merged_data, merged_source, folder))
    return LoadedBlueprint(blueprint, merged_source, env, files)


def _with_files(data: dict, source: SourceMap, folder: Path) -> tuple[Blueprint, dict[str, bytes]]:
    """The validated blueprint and its config files' bytes."""
    blueprint = validate(data, source)
    return blueprint, read_config_files(blueprint, source, folder)


def _in_overlay(env: str, work):
    """`work()`, with each load error it raises naming the environment whose overlay caused it
    (one located in the overlay names it by its path already)."""
    try:
        return work()
    except BlueprintError as error:
        prefix = f"environments.{env}"
        issues = [
            issue if issue.path == prefix or issue.path.startswith(prefix + ".") else replace(issue, message=f"with environment {env}: {issue.message}")
            for issue in error.issues
        ]
        raise BlueprintError(issues) from None


def validate(data: dict, source: SourceMap) -> Blueprint:
    """Validate parsed data as a Blueprint, then its cross-references."""
    try:
        blueprint = Blueprint.model_validate(data)
    except ValidationError as error:
        raise BlueprintError(_issues_of(error, data, source)) from None
    check_references(blueprint, source)
    return blueprint


def _check_msgen_version(data: dict, source: SourceMap) -> None:
    """A blueprint that needs a newer msgen says so before anything else: its newer fields would
    otherwise read as unknown keys."""
    wanted = data.get(MIN_VERSION_KEY)
    if not isinstance(wanted, str) or not re.fullmatch(VERSION_PATTERN, wanted):
        return  # the model reports a malformed value at its place
    if version_tuple(wanted) > version_tuple(__version__):
        raise BlueprintError([
            source.issue(
                (MIN_VERSION_KEY,),
                f"this blueprint needs msgen {wanted} or newer; this is msgen {__version__}",
                "upgrade msgen (pipx upgrade msgen, uv tool upgrade msgen, or a newer container image); its "
                "CHANGELOG.md says what each release changes in the output",
            )
        ])


def _check_root(data: object, source: SourceMap) -> None:
    if data is None:
        raise BlueprintError([source.issue((), "the file is empty", "run `msgen init` for a starter blueprint")])
    if not isinstance(data, dict):
        raise BlueprintError([source.issue((), "the blueprint must be a mapping of keys (version, project, services, ...)")])
    version = data.get("version")
    if "version" not in data:
        raise BlueprintError([source.issue((), "missing required key 'version'", "add `version: 1` at the top")])
    if version != 1 or isinstance(version, bool):
        raise BlueprintError([source.issue(("version",), f"unsupported format version {version!r}", "this msgen reads `version: 1`")])


def _overlaid(data: dict, source: SourceMap, env: str) -> tuple[dict, SourceMap]:
    overlay = data["environments"][env]
    prefix: KeyPath = ("environments", env)
    if not isinstance(overlay, dict):
        raise BlueprintError([source.issue(prefix, "an environment is a mapping merged over the blueprint")])
    for section in ("services", "datastores"):
        for name in sorted((overlay.get(section) or {}) if isinstance(overlay.get(section), dict) else {}):
            if name not in (data.get(section) or {}):
                hint = _did_you_mean(name, sorted(data.get(section) or {}))
                raise BlueprintError(
                    [source.issue((*prefix, section, name), f"the overlay names an unknown {section[:-1]} {name!r}", hint)]
                )
    if "environments" in overlay or "version" in overlay:
        raise BlueprintError([source.issue(prefix, "an overlay cannot change 'version' or 'environments'")])
    # the overlay's suppress entries come after the base's: a base entry applies to every
    # environment, an overlay's to its own
    base_suppress = data.get("suppress") if isinstance(data.get("suppress"), list) else []
    shift = len(base_suppress) if isinstance(overlay.get("suppress"), list) else 0

    def merged_path(path: KeyPath) -> KeyPath:
        if shift and path[0] == "suppress" and len(path) > 1 and isinstance(path[1], int):
            return ("suppress", path[1] + shift, *path[2:])
        return path

    from_overlay = {
        merged_path(path[2:]): position for path, position in source.positions.items() if path[:2] == prefix and len(path) > 2
    }
    merged_source = SourceMap(
        source.file,
        {**source.positions, **from_overlay},
        dict(source.number_texts),
        overlay_prefix=prefix,
        overlaid=frozenset(from_overlay),
    )
    for path, text in source.number_texts.items():
        if path[:2] == prefix and len(path) > 2:
            merged_source.number_texts[path[2:]] = text
    merged = deep_merge(data, overlay)
    if shift:
        merged["suppress"] = [*base_suppress, *overlay["suppress"]]
    return merged, merged_source


def deep_merge(base: object, overlay: object) -> object:
    """Maps merge key by key; lists and scalars in the overlay replace the base's."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = dict(base)
        for key, value in overlay.items():
            merged[key] = deep_merge(base[key], value) if key in base else value
        return merged
    return overlay


def _did_you_mean(word: str, choices: list[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"{prefix}known: {', '.join(choices)}" if choices else ""


def _issues_of(error: ValidationError, data: dict, source: SourceMap) -> list[LoadIssue]:
    details = [(detail, _data_path(detail["loc"], data)) for detail in error.errors()]
    misspelled = _misspelled_required(details)
    issues: dict[str, LoadIssue] = {}
    for detail, path in details:
        if detail["type"] == "missing" and path in misspelled:
            continue  # the unknown key's "did you mean" says it better
        issue = _issue_of(detail, path, source)
        issues.setdefault(issue.path, issue)
    return sorted(issues.values(), key=lambda issue: (issue.line, issue.column, issue.path))


def _misspelled_required(details: list[tuple[dict, KeyPath]]) -> set[KeyPath]:
    """Missing required keys that an unknown key beside them is a misspelling of."""
    found: set[KeyPath] = set()
    for detail, path in details:
        if detail["type"] == "extra_forbidden" and path:
            close = difflib.get_close_matches(str(path[-1]), allowed_keys(path[:-1]), n=1, cutoff=0.6)
            if close:
                found.add((*path[:-1], close[0]))
    return found


def _data_path(loc: tuple, data: object) -> KeyPath:
    """Pydantic's loc without the entries that name validators or union members."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if part == "[key]":
            break
        if (isinstance(node, dict) and isinstance(part, str) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        ):
            node = node[part]
            path.append(part)
        elif isinstance(node, dict) and isinstance(part, str) and not path_is_meta(part):
            path.append(part)  # a missing key: keep its name so the message can say it
            node = None
    return tuple(path)


def path_is_meta(part: str) -> bool:
    return "[" in part or part in ("str", "int", "bool", "float", "list", "dict", "none")


def _issue_of(detail: dict, path: KeyPath, source: SourceMap) -> LoadIssue:
    kind = detail["type"]
    message = str(detail["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    hint = str((detail.get("ctx") or {}).get("hint", ""))  # a validator's own hint (PydanticCustomError)
    if kind == "extra_forbidden":
        key = path[-1] if path else ""
        message = f"unknown key {key!r}"
        hint = _did_you_mean(str(key), allowed_keys(path[:-1]))
    elif kind == "missing":
        parent = path[:-1]
        return source.issue(parent, f"missing required key {path[-1]!r}")
    elif path in source.number_texts and path and (kind == "string_type" or path[-1] == "version"):
        # YAML read digits as a number where text was meant (`version: 8.0`, `env: {X: 3.10}`)
        hint = f'write it quoted: {path[-1]}: "{source.number_texts[path]}"'
        if kind == "string_type":
            message = f"expected a string, YAML read the number {source.number_texts[path]} (unquoted)"
    elif kind in ("string_type", "int_type", "bool_type", "float_type", "dict_type", "list_type"):
        message = f"{message} (got {type(detail.get('input')).__name__} {detail.get('input')!r})"
    return source.issue(path, message, hint)


def allowed_keys(path: KeyPath) -> list[str]:
    """The keys the model accepts at `path` (for did-you-mean hints)."""
    annotation: object = Blueprint
    for part in path:
        annotation = _child_annotation(annotation, part)
        if annotation is None:
            return []
    model = _model_in(annotation)
    return sorted(field.alias or name for name, field in model.model_fields.items()) if model else []


def _child_annotation(annotation: object, part: str | int) -> object:
    model = _model_in(annotation)
    if model is not None:
        # a key the blueprint spells differently from the field (`from` is `from_`)
        field = next((f for name, f in model.model_fields.items() if (f.alias or name) == str(part)), None)
        return field.annotation if field else None
    for option in _options(annotation):
        origin = typing.get_origin(option)
        if origin is dict:
            return typing.get_args(option)[1]
        if origin is list:
            return typing.get_args(option)[0]
    return None


def _options(annotation: object) -> list:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return list(typing.get_args(annotation))
    if typing.get_origin(annotation) is typing.Annotated:
        return _options(typing.get_args(annotation)[0])
    return [annotation]


def _model_in(annotation: object) -> type[BaseModel] | None:
    for option in _options(annotation):
        if isinstance(option, type) and issubclass(option, BaseModel):
            return option
    return None
