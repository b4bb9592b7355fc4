"""The blueprint being written: plain values, a comment for each key saying where its value came
from, and what could not be mapped. Written with ruamel.yaml's round-trip types so the comments
stay beside their keys."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

TODO = "TODO(import)"


@dataclass
class Draft:
    data: dict = field(default_factory=dict)
    comments: dict[tuple, list[str]] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)

    def set(self, path: tuple, value: object, source: str | None = None) -> None:
        parent = self.data
        for key in path[:-1]:
            parent = parent.setdefault(key, {})
        parent[path[-1]] = value
        if source:
            self.note(path, f"from {source}")

    def get(self, path: tuple, default: object = None) -> object:
        value: object = self.data
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return default
            value = value[key]
        return value

    def note(self, path: tuple, text: str) -> None:
        notes = self.comments.setdefault(path, [])
        if text not in notes:
            notes.append(text)

    def todo(self, path: tuple, text: str, at: str | None = None) -> None:
        """A comment on `path` and an entry in the unmapped list (`at`: where in the compose files)."""
        self.note(path, f"{TODO}: {text}")
        entry = f"{at or '.'.join(str(part) for part in path)}: {text}"
        if entry not in self.unmapped:
            self.unmapped.append(entry)

    def text(self, header: list[str]) -> str:
        document = _commented(self.data, (), self.comments)
        document.yaml_set_start_comment("\n".join(header))
        yaml = YAML()  # round-trip mode
        yaml.width = 4096  # one line a comment: a wrapped one would be read as the next key's
        yaml.indent(mapping=2, sequence=4, offset=2)
        stream = io.StringIO()
        yaml.dump(document, stream)
        return stream.getvalue()


def _commented(value: object, path: tuple, comments: dict[tuple, list[str]]) -> object:
    if isinstance(value, dict):
        mapping = CommentedMap()
        for key, item in value.items():
            mapping[key] = _commented(item, (*path, key), comments)
            if (*path, key) in comments:
                mapping.yaml_add_eol_comment("; ".join(comments[(*path, key)]), key, column=0)  # one space after the value
        return mapping
    if isinstance(value, list):
        return CommentedSeq(_commented(item, (*path, index), comments) for index, item in enumerate(value))
    return value
