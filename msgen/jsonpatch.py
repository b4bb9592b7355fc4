"""JSON Patch (RFC 6902) and JSON Merge Patch (RFC 7386) on plain values.

The same two kinds of patch kubectl and kustomize apply. Each function returns a new value
and leaves its input alone; an operation that cannot apply raises PatchError with the index
of the operation, so the blueprint can point at it.
"""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    """An operation that cannot apply: `index` is its position in the patch."""

    def __init__(self, index: int, message: str):
        self.index = index
        super().__init__(message)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: a mapping merges key by key, `null` removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def json_patch(document: Any, operations: list[dict]) -> Any:
    """RFC 6902: the operations in order; the first that cannot apply stops the patch."""
    result = copy.deepcopy(document)
    for index, operation in enumerate(operations):
        try:
            result = _apply(result, operation)
        except (KeyError, IndexError, ValueError, TypeError) as error:
            raise PatchError(index, _reason(error)) from None
    return result


def _reason(error: Exception) -> str:
    return str(error.args[0]) if error.args else type(error).__name__


def pointer_tokens(pointer: str) -> list[str]:
    """RFC 6901: `/a/b~1c` -> ['a', 'b/c']; the empty pointer is the whole document."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ValueError(f"{pointer!r} is not a JSON pointer (it starts with /)")
    return [token.replace("~1", "/").replace("~0", "~") for token in pointer[1:].split("/")]


def _apply(document: Any, operation: dict) -> Any:
    op, path = operation["op"], operation["path"]
    if op == "test":
        if _get(document, path) != operation["value"]:
            raise ValueError(f"test failed: {path} is not {operation['value']!r}")
        return document
    if op == "remove":
        return _remove(document, path)[0]
    if op == "replace":
        _get(document, path)
        return _add(_remove(document, path)[0], path, copy.deepcopy(operation["value"]))
    if op == "add":
        return _add(document, path, copy.deepcopy(operation["value"]))
    source = operation["from"]
    value = copy.deepcopy(_get(document, source))
    if op == "move":
        if path.startswith(source + "/"):
            raise ValueError(f"cannot move {source} into its own child {path}")
        document = _remove(document, source)[0]
    return _add(document, path, value)


def _parent(document: Any, path: str) -> tuple[Any, str]:
    tokens = pointer_tokens(path)
    container = document
    for depth, token in enumerate(tokens[:-1]):
        container = _child(container, token, "/" + "/".join(tokens[: depth + 1]))
    return container, tokens[-1]


def _child(container: Any, token: str, where: str) -> Any:
    if isinstance(container, dict):
        if token not in container:
            raise KeyError(f"{where} does not exist")
        return container[token]
    if isinstance(container, list):
        return container[_index(token, len(container), where)]
    raise TypeError(f"{where} is inside a {type(container).__name__}, not an object or an array")


def _index(token: str, length: int, where: str, appending: bool = False) -> int:
    if appending and token == "-":
        return length
    if not token.isdigit() or (token.startswith("0") and token != "0"):
        raise ValueError(f"{where}: {token!r} is not an array index")
    index = int(token)
    if index > length or (index == length and not appending):
        raise IndexError(f"{where}: index {index} is beyond the array's {length} items")
    return index


def _get(document: Any, path: str) -> Any:
    if path == "":
        return document
    container, last = _parent(document, path)
    return _child(container, last, path)


def _add(document: Any, path: str, value: Any) -> Any:
    if path == "":
        return value
    container, last = _parent(document, path)
    if isinstance(container, dict):
        container[last] = value
    elif isinstance(container, list):
        container.insert(_index(last, len(container), path, appending=True), value)
    else:
        raise TypeError(f"{path} is inside a {type(container).__name__}, not an object or an array")
    return document


def _remove(document: Any, path: str) -> tuple[Any, Any]:
    if path == "":
        raise ValueError("cannot remove the whole document")
    container, last = _parent(document, path)
    if isinstance(container, dict):
        if last not in container:
            raise KeyError(f"{path} does not exist")
        return document, container.pop(last)
    if isinstance(container, list):
        return document, container.pop(_index(last, len(container), path))
    raise TypeError(f"{path} is inside a {type(container).__name__}, not an object or an array")
