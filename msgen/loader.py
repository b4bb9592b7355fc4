"""YAML 1.2 loading with a position for every key path.

PyYAML's libyaml parser gives events with marks quickly; PyYAML's own resolver follows
YAML 1.1 (`NO` -> False, last duplicate key wins), so scalars are resolved here with the
YAML 1.2 core schema and duplicate keys are rejected. Aliases are expanded lazily by
sharing the anchored value, and what each alias adds is charged to a node budget so that a
"billion laughs" file stops early with a clear message. Where YAML 1.1 and 1.2 read a file
differently and msgen cannot tell which was meant (the line breaks NEL, LS and PS), the
file is a load error.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from msgen.errors import BlueprintError, LoadIssue

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_TRUE = re.compile(r"^(?:true|True|TRUE)$")
_FALSE = re.compile(r"^(?:false|False|FALSE)$")
_INT = re.compile(r"^[-+]?[0-9]+$")
_OCT = re.compile(r"^0o[0-7]+$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")

_TAG = "tag:yaml.org,2002:"
MIN_ALIAS_BUDGET = 10_000
# nodes aliases may add per character of the file: a file that anchors a block and reuses it
# in every service stays well within it, a "billion laughs" does not
ALIAS_NODES_PER_CHARACTER = 4
MERGE_KEY = "<<"
# line breaks in YAML 1.1 (which libyaml follows) but ordinary characters in YAML 1.2: the
# two readings differ in line numbers and can split a scalar in two
_AMBIGUOUS_BREAKS = re.compile("[\x85\u2028\u2029]")
_BREAK_NAMES = {"\x85": "NEL (U+0085)", "\u2028": "LINE SEPARATOR (U+2028)", "\u2029": "PARAGRAPH SEPARATOR (U+2029)"}

KeyPath = tuple[str | int, ...]


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_/<-]+$")


def format_path(path: KeyPath) -> str:
    """`("services", "payment", "calls", 1)` -> `services.payment.calls[1]`.

    A key that could be misread in a path (a ':', a '.', a newline, an emoji) is shown
    JSON-quoted, so that a bad name in an error message reads as exactly what the file holds.
    """
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        shown = part if _PLAIN_KEY.fullmatch(part) else json.dumps(part)
        text += f".{shown}" if text else shown
    return text


COLUMNS = 1 << 20  # a position is packed as line * COLUMNS + column


def packed(mark) -> int:
    """A parser mark's 1-based position as one int (a column past COLUMNS is shown as COLUMNS - 1)."""
    return (mark.line + 1) * COLUMNS + min(mark.column + 1, COLUMNS - 1)


@dataclass
class SourceMap:
    """Where each key path of a loaded document stands in its file (1-based)."""

    file: str
    # key path -> line * COLUMNS + column: one int, not a tuple of two (a large blueprint has
    # hundreds of thousands of positions, and they live as long as the findings may need them)
    positions: dict[KeyPath, int] = field(default_factory=dict)
    # the source text of plain scalars that YAML read as numbers (so hints can quote them)
    number_texts: dict[KeyPath, str] = field(default_factory=dict)
    # after `--env NAME`: the paths whose value came from the overlay, and the overlay's own
    # path, so that an error in an overlay names the place a person has to edit
    overlay_prefix: KeyPath = ()
    overlaid: frozenset[KeyPath] = frozenset()

    def anchor(self, path: KeyPath) -> KeyPath:
        """`path`, else its nearest ancestor that has a position."""
        for end in range(len(path), -1, -1):
            if tuple(path[:end]) in self.positions:
                return tuple(path[:end])
        return ()

    def locate(self, path: KeyPath) -> tuple[int, int]:
        """The position (line, column) of `path`, else of its nearest ancestor that has one."""
        return divmod(self.positions.get(self.anchor(path), COLUMNS + 1), COLUMNS)

    def shown_path(self, path: KeyPath) -> str:
        """The key path as a person finds it in the file (inside the overlay when it came from one)."""
        if self.overlay_prefix and self.anchor(path) in self.overlaid:
            return format_path((*self.overlay_prefix, *path))
        return format_path(path)

    def issue(self, path: KeyPath, message: str, hint: str = "") -> LoadIssue:
        line, column = self.locate(path)
        return LoadIssue(self.file, line, column, self.shown_path(path), message, hint)


# numbers every consumer reads: signed 64-bit integers, finite floats
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# the deepest nesting a blueprint needs is a handful of levels; deeper is an attack or a mistake
MAX_DEPTH = 64
# a 5000-service blueprint is a few MiB; a larger file (or /dev/zero) is refused before it is read whole
MAX_FILE_BYTES = 64 * 1024 * 1024


def _integer(text: str, base: int) -> int:
    digits = text.lstrip("+-")
    if len(digits.lstrip("0")) > 64:  # before int(): CPython refuses to convert very long digit strings
        raise ValueError(f"{text[:20]}... is beyond the 64-bit integers msgen and its consumers read")
    value = int(text, base) if base == 10 else int(digits[2:], base) * (-1 if text.startswith("-") else 1)
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"{text} is beyond the 64-bit integers msgen and its consumers read")
    return value


def resolve_plain_scalar(text: str) -> object:
    """Resolve an untagged plain scalar with the YAML 1.2 core schema; integers beyond 64 bits
    and the non-finite floats (.inf, .nan) are refused (ValueError): no field takes them and
    no consumer reads them."""
    if _NULL.fullmatch(text):
        return None
    if _TRUE.fullmatch(text):
        return True
    if _FALSE.fullmatch(text):
        return False
    if _INT.fullmatch(text):
        return _integer(text, 10)
    if _OCT.fullmatch(text):
        return _integer(text, 8)
    if _HEX.fullmatch(text):
        return _integer(text, 16)
    if _FLOAT.fullmatch(text):
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{text} is too large for a number")
        return value
    if _INF.fullmatch(text) or _NAN.fullmatch(text):
        raise ValueError(f"{text} is not a finite number; no field takes it")
    return text


def _tagged_scalar(tag: str, text: str) -> object:
    if tag in (f"{_TAG}str", "!"):
        return text
    if tag == f"{_TAG}null":
        return None
    resolved = resolve_plain_scalar(text)
    kinds = {f"{_TAG}int": int, f"{_TAG}float": (int, float), f"{_TAG}bool": bool}
    expected = kinds.get(tag)
    if expected is None:
        raise ValueError(f"unsupported YAML tag {tag!r}")
    if not isinstance(resolved, expected) or (tag == f"{_TAG}int" and isinstance(resolved, bool)):
        raise ValueError(f"{text!r} is not a valid {tag.removeprefix(_TAG)}")
    return float(resolved) if tag == f"{_TAG}float" else resolved


class _Builder:
    """Builds Python values from the parser's events, recording positions."""

    def __init__(self, source: SourceMap, next_event, node_budget: int):
        self.source = source
        self.next_event = next_event
        self.anchors: dict[str, tuple[object, int]] = {}
        self.budget = node_budget
        self.spent = 0

    def fail(self, mark, path: KeyPath, message: str, hint: str = "") -> BlueprintError:
        line, column = (mark.line + 1, mark.column + 1) if mark else self.source.locate(path)
        return BlueprintError([LoadIssue(self.source.file, line, column, format_path(path), message, hint)])

    def charge(self, nodes: int, mark, path: KeyPath) -> None:
        self.spent += nodes
        if self.spent > self.budget:
            raise self.fail(
                mark,
                path,
                f"aliases expand to more than {self.budget} nodes",
                "the file repeats anchored content too often (a 'billion laughs' pattern?)",
            )

    def value(self, event, path: KeyPath) -> tuple[object, int]:
        """Build the value starting at `event`; returns it and its size in nodes.

        Only an alias is charged to the budget (the nodes it repeats): nodes written out in
        the file cost what the file's size already limits."""
        if isinstance(event, yaml.AliasEvent):
            if event.anchor not in self.anchors:
                raise self.fail(event.start_mark, path, f"unknown alias *{event.anchor}")
            built, size = self.anchors[event.anchor]
            self.charge(size, event.start_mark, path)
            return built, size
        if len(path) > MAX_DEPTH:
            raise self.fail(event.start_mark, path, f"nested deeper than {MAX_DEPTH} levels", "a blueprint needs a few levels")
        if isinstance(event, yaml.ScalarEvent):
            built, size = self.scalar(event, path), 1
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if event.tag is not None and not event.implicit:
                kind = "mapping" if isinstance(event, yaml.MappingStartEvent) else "list"
                raise self.fail(
                    event.start_mark,
                    path,
                    f"unsupported YAML tag {event.tag!r} on a {kind}",
                    f"remove the tag: a blueprint takes plain {kind}s",
                )
            built, size = self.mapping(event, path) if isinstance(event, yaml.MappingStartEvent) else self.sequence(path)
        else:  # pragma: no cover - the parser guarantees node events here
            raise self.fail(event.start_mark, path, f"unexpected YAML event {type(event).__name__}")
        if event.anchor:
            self.anchors[event.anchor] = (built, size)
        return built, size

    def scalar(self, event, path: KeyPath) -> object:
        plain = not event.style and event.implicit[0]
        if plain:
            try:
                resolved = resolve_plain_scalar(event.value)
            except ValueError as error:
                raise self.fail(event.start_mark, path, str(error)) from None
            if isinstance(resolved, (int, float)) and not isinstance(resolved, bool):
                self.source.number_texts[path] = event.value
            return resolved
        if event.tag is None or event.implicit[1]:
            return event.value
        try:
            return _tagged_scalar(event.tag, event.value)
        except ValueError as error:
            raise self.fail(event.start_mark, path, str(error)) from None

    def mapping(self, start, path: KeyPath) -> tuple[dict, int]:
        result: dict[str, object] = {}
        merged: dict[str, object] = {}
        size = 1
        while True:
            key_event = self.next_event()
            if isinstance(key_event, yaml.MappingEndEvent):
                break
            key = self.key(key_event, path)
            key_mark = key_event.start_mark
            child = (*path, key)
            # only a plain `<<` merges: a quoted "<<" is an ordinary key (YAML 1.1 resolves the
            # merge key from the plain scalar alone)
            merge = key == MERGE_KEY and not key_event.style and key_event.implicit[0]
            if key in result:
                raise self.fail(key_mark, child, f"duplicate key {key!r}", "each key may appear once in a mapping")
            if not merge:
                self.source.positions[child] = packed(key_mark)
            value, child_size = self.value(self.next_event(), child)
            size += child_size
            if merge:
                merged.update(self.merge_sources(value, key_mark, child))
            else:
                result[key] = value
        return ({**merged, **result} if merged else result), size

    def merge_sources(self, value, mark, path: KeyPath) -> dict:
        sources = value if isinstance(value, list) else [value]
        combined: dict = {}
        for source in reversed(sources):
            if not isinstance(source, dict):
                raise self.fail(mark, path, "a merge key (<<) takes a mapping or a list of mappings")
            combined.update(source)
        return combined

    def key(self, event, path: KeyPath) -> str:
        if not isinstance(event, yaml.ScalarEvent):
            raise self.fail(event.start_mark, path, "mapping keys must be plain strings")
        if event.tag is not None and not event.implicit[1] and event.tag not in (f"{_TAG}str", "!"):
            raise self.fail(event.start_mark, path, f"unsupported YAML tag {event.tag!r} on a key", "mapping keys must be plain strings")
        # one string object per distinct key: thousands of services repeat the same keys
        return sys.intern(event.value)

    def sequence(self, path: KeyPath) -> tuple[list, int]:
        result: list[object] = []
        size = 1
        while True:
            event = self.next_event()
            if isinstance(event, yaml.SequenceEndEvent):
                break
            child = (*path, len(result))
            self.source.positions[child] = packed(event.start_mark)
            value, child_size = self.value(event, child)
            result.append(value)
            size += child_size
        return result, size


def decode(data: bytes, file: str) -> str:
    """UTF-8 text of a blueprint file, or a load error naming the bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        issue = LoadIssue(file, line, column, "", f"not UTF-8 text (byte 0x{data[error.start]:02x})", "save the file as UTF-8")
        raise BlueprintError([issue]) from None


def _position(text: str, index: int) -> tuple[int, int]:
    """The 1-based line and column of `text[index]`, counting the line breaks YAML 1.2 has
    (LF, CR LF, CR), as the parser counts them."""
    before = text[:index]
    line = before.count("\n") + before.count("\r") - before.count("\r\n") + 1
    start = max(before.rfind("\n"), before.rfind("\r")) + 1
    return line, index - start + 1


def _refuse_ambiguous_breaks(text: str, file: str) -> None:
    found = _AMBIGUOUS_BREAKS.search(text)
    if found is None:
        return
    line, column = _position(text, found.start())
    name = _BREAK_NAMES[found.group()]
    message = f"{name} is a line break in YAML 1.1 but not in YAML 1.2: the file reads differently in each"
    hint = f"remove it, or write it as \\u{ord(found.group()):04x} inside a double-quoted string"
    raise BlueprintError([LoadIssue(file, line, column, "", message, hint)])


def load_yaml(text: str, file: str) -> tuple[object, SourceMap]:
    """Parse one YAML document into Python values and its source map."""
    source = SourceMap(file)
    _refuse_ambiguous_breaks(text, file)
    budget = max(MIN_ALIAS_BUDGET, ALIAS_NODES_PER_CHARACTER * len(text))
    try:
        # the parser's own get_event, not yaml.parse's generator: one Python frame less per event
        parser = _LOADER(text)
        next_event = parser.get_event
        next_event()  # StreamStart
        first = next_event()
        if isinstance(first, yaml.StreamEndEvent):
            return None, source
        builder = _Builder(source, next_event, budget)
        root, _ = builder.value(next_event(), ())
        next_event()  # DocumentEnd
        extra = next_event()
        if not isinstance(extra, yaml.StreamEndEvent):
            raise builder.fail(extra.start_mark, (), "more than one YAML document", "a blueprint is one document")
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = f"YAML syntax: {error.problem or error.context}"
        raise BlueprintError([LoadIssue(file, line, column, "", message)]) from None
    except yaml.YAMLError as error:
        raise BlueprintError([LoadIssue(file, 1, 1, "", f"YAML syntax: {error}")]) from None
    source.positions.setdefault((), COLUMNS + 1)
    return root, source


# `-` names standard input, as in most command line tools; positions are reported against <stdin>
STDIN = Path("-")
STDIN_NAME = "<stdin>"
_stdin_read: tuple[object, bytes] | None = None  # (the stream, what it held)


def _read_stdin() -> bytes:
    """Standard input's bytes. A stream can be read once, but a blueprint is read once per
    environment overlay: the bytes are kept for as long as the same stream is standard input."""
    global _stdin_read
    stream = sys.stdin.buffer
    if _stdin_read is None or _stdin_read[0] is not stream:
        _stdin_read = (stream, stream.read(MAX_FILE_BYTES + 1))
    return _stdin_read[1]


def read_yaml_file(path: Path) -> tuple[object, SourceMap]:
    """Read and parse a YAML file (`-`: standard input); unreadable files are load errors too."""
    name = STDIN_NAME if path == STDIN else str(path)
    try:
        if path == STDIN:
            data = _read_stdin()
        else:
            with path.open("rb") as file:
                data = file.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise BlueprintError([LoadIssue(name, 1, 1, "", f"cannot read: {error.strerror}")]) from None
    if len(data) > MAX_FILE_BYTES:
        message = f"larger than {MAX_FILE_BYTES // 2**20} MiB: not a blueprint"
        raise BlueprintError([LoadIssue(name, 1, 1, "", message, "point msgen at the blueprint's YAML file")])
    return load_yaml(decode(data, name), name)
