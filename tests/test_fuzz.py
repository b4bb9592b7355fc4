"""The fuzzer as a test: hostile mutations of the starter blueprints fed to the CLI.

Each example takes a starter (blueprints/minimal.yaml or blueprints/reference.yaml) and
mutates it at the YAML level (a value anywhere in the parsed tree replaced with a hostile one,
keys deleted, renamed, added or duplicated, subtrees shared as anchors/aliases or merged
with `<<`) and/or at the text level (bytes flipped, the file truncated, YAML syntax
characters, tags, directives, BOMs and line separators inserted). The result goes to
`msgen validate` (some with --format json/sarif, --strict, --env, --deep), and in
`test_fuzz_render` also to `msgen render -o DIR` and `msgen render --check` (same folder,
and a folder holding the unmutated starter's files).

For every input: no exception escapes the CLI (with CliRunner an unexpected exception is
`result.exception`; `msgen.cli.main()` would turn it into exit code 3, "internal error"), the
exit code is 0, 1 or 2, no output mentions a traceback or an internal error, and no command
runs longer than COMMAND_TIMEOUT seconds (SIGALRM; a hang inside C code that the alarm cannot
interrupt is caught by a watchdog thread that prints the input and ends the process).

CI runs a few thousand examples, derandomized; `MSGEN_FUZZ_EXAMPLES=50000` (`make fuzz`)
runs more. `test_known_crashes` keeps every crash the fuzzer found as a minimal blueprint that
must now end in a clear message (exit 0, 1 or 2); no case here is skipped or expected to fail.
"""

from __future__ import annotations

import copy
import faulthandler
import os
import re
import signal
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from typer.main import get_command

from msgen.cli import app
from msgen.loader import load_yaml

ROOT = Path(__file__).resolve().parent.parent
STARTERS = {name: (ROOT / "blueprints" / f"{name}.yaml").read_text(encoding="utf-8") for name in ("minimal", "reference")}
TREES = {name: load_yaml(text, name)[0] for name, text in STARTERS.items()}

# examples in all (CI default); split over the three fuzz tests below
TOTAL_EXAMPLES = int(os.environ.get("MSGEN_FUZZ_EXAMPLES", "3000"))
COMMAND_TIMEOUT = float(os.environ.get("MSGEN_FUZZ_TIMEOUT", "20"))
# a hang the alarm cannot break (inside libyaml, a regex, ...) ends the process after this
WATCHDOG_TIMEOUT = 3 * COMMAND_TIMEOUT

FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)

runner = CliRunner()
# typer.testing.CliRunner would build the click command from the app on every call (~20 ms)
COMMAND = get_command(app)

# ---------------------------------------------------------------------------------------------
# hostile values


def _known_scalars() -> list[object]:
    """Every scalar of the starters: a value that is right somewhere is hostile elsewhere."""
    found: list[object] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif node not in found:
            found.append(node)

    for tree in TREES.values():
        walk(tree)
    return found


def _known_keys() -> list[str]:
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key not in found:
                    found.append(key)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for tree in TREES.values():
        walk(tree)
    return found


KNOWN_SCALARS = _known_scalars()
KNOWN_KEYS = _known_keys()

HOSTILE_INTS = [0, -1, 1, 2, 7, 65535, 65536, 2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**100, -(10**30)]
HOSTILE_FLOATS = [0.0, -0.0, 0.5, -0.5, 1e-9, 5e-324, 1e308, -1e308, 1.7976931348623157e308, 1e16, 0.1 + 0.2, float("inf"), float("nan")]
LINE_BREAKS = ["\n", "\r", "\r\n", "\u2028", "\u2029", "\x85", "\x0b", "\x0c"]
HOSTILE_STRINGS = [
    "",
    " ",
    "\t",
    "-",
    "~",
    "null",
    "NO",
    "yes",
    "0",
    "-0",
    "007",
    "0o17",
    "0x1F",
    "1e3",
    "1_000",
    ".inf",
    ".nan",
    "12:30",
    "2001-12-14",
    "a\nb",
    "line\n",
    "\nline",
    "a\u2028b",
    "a\x85b",
    "a\rb",
    "tab\there",
    "a\x00b",
    "\x1b[31mred",
    "\ufeffbom",
    "\u202eevil",
    "zero\u200bwidth",
    "ÆØÅ-ñ-日本-🚀",
    '{{ env "HOME" }}',
    "{{ 7 * 7 }}",
    "{% for x in y %}",
    "{{",
    "}}",
    "${HOME}",
    "$HOME",
    "$",
    "$$",
    "%s%n",
    "%",
    "'",
    '"',
    "`id`",
    "\\",
    "[x]",
    "{x}",
    "a: b",
    "- a",
    "# comment",
    "&anchor",
    "*alias",
    "!!int",
    "<script>",
    "a.b",
    "a/b",
    "../../etc/passwd",
    "/",
    "//",
    "C:\\x",
    "UPPER",
    "with space",
    "a" * 64,
    "a" * 254,
    "a" * 4096,
    "x" * 70000,
    "a-" * 40,
    "latest",
    "image:tag",
    "a:b:c",
    "registry.example.no:5000/x/y:1@sha256:" + "0" * 64,
    "0s",
    "-5s",
    "1ms",
    "999999999h",
    "1e308s",
    "1.5s",
    "5 s",
    "s",
    "0Mi",
    "-1Gi",
    "1e308Gi",
    "99999999999999999999Ti",
    "1.5Ki",
    "512MB",
    "1Pi",
    "0m",
    "-250m",
    "0.0001",
    "1000000",
    "10.11",
    "1.30",
    "1.99",
    "99",
    "EEA",
    "XX",
    "EU",
    "required",
    "preferred",
    "none",
    "cache",
]


def _leaf() -> st.SearchStrategy:
    return st.one_of(
        st.sampled_from(HOSTILE_INTS),
        st.sampled_from(HOSTILE_FLOATS),
        st.sampled_from(HOSTILE_STRINGS),
        st.sampled_from(KNOWN_SCALARS),
        st.sampled_from([None, True, False]),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=40),
        st.builds(lambda text, brk: text.replace(" ", brk, 1) + brk, st.sampled_from(KNOWN_SCALARS).map(str), st.sampled_from(LINE_BREAKS)),
        st.builds(lambda value, times: str(value) * times, st.sampled_from(KNOWN_SCALARS), st.sampled_from([2, 10, 1000])),
    )


def hostile_keys() -> st.SearchStrategy:
    return HOSTILE_KEYS


HOSTILE_KEYS = st.one_of(
    st.sampled_from(KNOWN_KEYS),
    st.sampled_from(
        ["", " ", "x", "unknown", "a.b", "a:b", "a b", "-", "?", "#", "*", "&", "<<", "1", "0x10", "true", "null", "~",
         "UPPER", "ÆØÅ", "🚀", "a\nb", "a\u2028b", "a\x85b", "k" * 300, "__proto__", "{{ x }}", "$HOME", "x_" * 30]
    ),
    st.text(max_size=12),
)
LEAF = _leaf()
# the values most likely to break something, drawn more often than the rest
CORE_VALUES = st.sampled_from(
    ["a\nb", "a\u2028b", "a\x85b", "$", '{{ env "HOME" }}', "x" * 70000, "X" * 1100, "", 2**63, 2**63 - 1, -(2**63), 1e308, 5e-324,
     0, -1, 0.0, None, True, [], {}]
)
# scalars, and lists or maps of them where a scalar is expected (one level: cheap to draw)
HOSTILE_VALUES = st.one_of(
    CORE_VALUES,
    CORE_VALUES,
    CORE_VALUES,
    LEAF,
    LEAF,
    LEAF,
    st.lists(LEAF, max_size=3),
    st.dictionaries(HOSTILE_KEYS, LEAF, max_size=3),
    st.lists(st.dictionaries(HOSTILE_KEYS, LEAF, max_size=2), max_size=2),
)


def hostile_values() -> st.SearchStrategy:
    return HOSTILE_VALUES


NUMBERS_IN_TEXT = ["0", "1", "00", "0.5", "-1", "1.5", "99999999999", "9223372036854775807", "9223372036854775808", "1e308", "1" * 70]
UNITS = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "K", "M", "G", "B", "m", "s", "ms", "us", "ns", "h", "d", "w", "y", "%"]
_UNIT_VALUE = re.compile(r"^(\d+(?:\.\d+)?)([A-Za-z]*)$")
STRING_EDITS = [
    str.upper,
    lambda text: text + "-",
    lambda text: "-" + text,
    lambda text: text + ".",
    lambda text: "." + text,
    lambda text: text + "_x",
    lambda text: text * 20,
    lambda text: text + "\n",
    lambda text: "\n" + text,
    lambda text: text + "\u2028x",
    lambda text: text + "\x85",
    lambda text: text + " ",
    lambda text: " " + text,
    lambda text: text.replace("-", "_"),
    lambda text: text.replace(".", ""),
    lambda text: text[:1],
    lambda text: text[:-1],
    lambda text: text + "/x",
    lambda text: text + ":latest",
    lambda text: text.split(":")[0],
    lambda text: text + "@sha256:" + "f" * 64,
    lambda text: text + "$",
    lambda text: text + '{{ env "HOME" }}',
    lambda text: text + "${HOME}",
    lambda text: text.replace("e", "\u0435"),  # a Cyrillic homoglyph
    lambda text: text + "é",
    lambda text: text + "/" + "x" * 300,
]


@st.composite
def tweaked(draw, old: object) -> object:
    """A value of the same kind as `old` but at an edge: the mutations that get past the loader."""
    if isinstance(old, bool):
        return draw(st.sampled_from([not old, None, 0, 1, "true"]))
    if isinstance(old, int):
        return draw(st.one_of(
            st.sampled_from([0, -1, 1, old - 1, old + 1, -old, old * 1000, old * 10**6, 2**31, 2**53, 2**63 - 1, 2**63, -(2**63)]),
            st.integers(-10, 10**6),
            st.sampled_from([float(old), old + 0.5, str(old)]),
        ))
    if isinstance(old, float):
        return draw(st.sampled_from([0.0, -0.0, 1.0, 1.0000001, -old, old * 1e-9, 1e-300, 5e-324, 1e308, 0.999999, 2, 0, -1, str(old)]))
    if isinstance(old, str):
        unit = _UNIT_VALUE.fullmatch(old)
        choice = draw(st.integers(0, 3))
        if unit and choice < 2:
            number = draw(st.sampled_from([*NUMBERS_IN_TEXT, unit.group(1)]))
            return number + draw(st.sampled_from([unit.group(2), unit.group(2), *UNITS]))
        if choice == 0:
            return draw(st.sampled_from([value for value in KNOWN_SCALARS if isinstance(value, str)] + KNOWN_KEYS))
        if choice == 1 and re.search(r"\d", old):
            return re.sub(r"\d+(?:\.\d+)?", draw(st.sampled_from(NUMBERS_IN_TEXT)), old, count=1)
        return draw(st.sampled_from(STRING_EDITS))(old)
    if isinstance(old, list):
        return draw(st.sampled_from([[], old * 2, old[::-1], old[:1], [*old, old[0] if old else None]]))
    if isinstance(old, dict):
        return draw(st.sampled_from([{}, {key: old[key] for key in list(old)[::-1]}, {key: None for key in old}]))
    return draw(LEAF)


YAML_TOKENS = [
    b":", b": ", b"-", b"- ", b"? ", b"{", b"}", b"[", b"]", b",", b"&a ", b"*a", b"&a", b"*", b"&", b"!!int ", b"!!str ",
    b"!!float ", b"!!bool ", b"!!null ", b"!!binary ", b"!!set ", b"!!omap ", b"!!map ", b"!!seq ", b"!!timestamp ",
    b"!!python/object/apply:os.system ", b"!custom ", b"! ", b"!<tag:yaml.org,2002:int> ", b"|", b"|-", b"|+", b">", b">-",
    b"|2", b"#", b" #", b"'", b'"', b"\t", b"\n", b"\r", b"\r\n", b"\x00", b"\x07", b"\xff", b"\xc3", b"\xef\xbb\xbf",
    "\u2028".encode(), "\u2029".encode(), "\x85".encode(), "\ufeff".encode(), b"\\", b"\\u", b"%", b"%YAML 1.1\n---\n",
    b"%YAML 1.2\n---\n", b"%TAG ! tag:example.com,2000:\n---\n", b"---\n", b"\n---\n", b"\n...\n", b"@", b"`", b"<<: *a\n",
    b"<<: ", b"~", b".inf", b".nan", b"-.inf", b"0x", b"0o", b"1e309", b"99999999999999999999", b"-0", b'{{ env "HOME" }}',
    b"${HOME}", b"$", b"    ", b"  ", b"a" * 1000, b"[" * 80, b"{a: " * 80, b"- " * 80, b"&a [*a, *a, *a]",
]

# ---------------------------------------------------------------------------------------------
# the parsed tree: paths, mutations


def node_paths(tree: object) -> list[tuple]:
    """Every node's path (root included); a node on its own path (a cycle) is not entered twice."""
    paths: list[tuple] = []

    def walk(node: object, path: tuple, seen: frozenset[int]) -> None:
        paths.append(path)
        if id(node) in seen or len(path) > 12:
            return
        inner = seen | {id(node)}
        if isinstance(node, dict):
            for key, value in list(node.items()):
                walk(value, (*path, key), inner)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, (*path, index), inner)

    walk(tree, (), frozenset())
    return paths


def get(tree: object, path: tuple) -> object:
    for part in path:
        tree = tree[part]  # type: ignore[index]
    return tree


def put(tree: object, path: tuple, value: object) -> object:
    """Set the node at `path` (the root itself when `path` is empty); returns the new root."""
    if not path:
        return value
    get(tree, path[:-1])[path[-1]] = value  # type: ignore[index]
    return tree


def _rename(mapping: dict, old: str, new: str) -> None:
    """Rename a key in place, keeping the order (onto an existing key: the renamed one wins)."""
    items = [(new if key == old else key, value) for key, value in mapping.items() if key != new or new == old]
    mapping.clear()
    mapping.update(items)


TREE_OPS = ("tweak", "tweak", "tweak", "tweak", "tweak", "replace", "replace", "other", "delete", "duplicate", "rename", "add", "alias", "merge", "wrap", "empty")


# mostly mutations that keep the blueprint readable, so that the plan and the renderers run
RENDER_OPS = ("tweak", "tweak", "tweak", "tweak", "tweak", "tweak", "delete", "duplicate", "other", "alias", "replace")


@st.composite
def tree_mutation(draw, tree: object, ops: tuple[str, ...] = TREE_OPS) -> tuple[object, str]:
    """One mutation of `tree` (in place where it can); returns the new root and what was done."""
    paths = node_paths(tree)
    inner = [path for path in paths if path]
    mappings = [path for path in paths if isinstance(get(tree, path), dict)]
    op = draw(st.sampled_from(ops))
    if op in ("delete", "duplicate", "rename") and not inner:
        op = "replace"
    if op in ("add", "merge") and not mappings:
        op = "replace"
    if op == "tweak":
        path = draw(st.sampled_from(inner or paths))
        value = draw(tweaked(get(tree, path)))
        return put(tree, path, value), f"tweak {path} to {value!r:.200}"
    if op == "replace":  # mostly a scalar's place: a value where a value is expected
        leaves = [path for path in inner if not isinstance(get(tree, path), (dict, list))]
        path = draw(st.sampled_from(leaves if leaves and draw(st.integers(0, 3)) else paths))
        value = draw(hostile_values())
        return put(tree, path, value), f"replace {path} with {value!r:.200}"
    if op == "other":  # a subtree of elsewhere, copied (or shared: an alias) into this place
        path, source = draw(st.sampled_from(paths)), draw(st.sampled_from(paths))
        value = get(tree, source)
        value = value if draw(st.booleans()) else copy.deepcopy(value)
        return put(tree, path, value), f"replace {path} with the node at {source}"
    if op == "delete":
        path = draw(st.sampled_from(inner))
        del get(tree, path[:-1])[path[-1]]  # type: ignore[attr-defined]
        return tree, f"delete {path}"
    if op == "duplicate":
        path = draw(st.sampled_from(inner))
        parent, value = get(tree, path[:-1]), copy.deepcopy(get(tree, path))
        if isinstance(parent, list):
            parent.insert(draw(st.integers(0, len(parent))), value)
        else:
            key = draw(st.one_of(st.just(f"{path[-1]}-2"), st.just(f"{path[-1]}2"), hostile_keys()))
            parent[key] = value  # type: ignore[index]
        return tree, f"duplicate {path}"
    if op == "rename":
        keyed = [path for path in inner if isinstance(path[-1], str)]
        if not keyed:
            return tree, "rename: no key"
        path = draw(st.sampled_from(keyed))
        new = draw(st.one_of(hostile_keys(), st.just(path[-1].upper()), st.just(path[-1] + "_x"), st.just(path[-1].replace("_", "-"))))
        _rename(get(tree, path[:-1]), path[-1], new)  # type: ignore[arg-type]
        return tree, f"rename {path} to {new!r:.80}"
    if op == "add":
        path = draw(st.sampled_from(mappings))
        key = draw(hostile_keys())
        value = draw(st.one_of(hostile_values(), st.sampled_from(paths).map(lambda source: copy.deepcopy(get(tree, source)))))
        get(tree, path)[key] = value  # type: ignore[index]
        return tree, f"add {key!r:.80} to {path}"
    if op == "alias":  # the same object in two places: safe_dump writes an anchor and an alias
        target, source = draw(st.sampled_from(paths)), draw(st.sampled_from(paths))
        return put(tree, target, get(tree, source)), f"alias {target} -> {source}"
    if op == "merge":  # `<<: *anchor` (or a list of them, or a hostile value)
        path = draw(st.sampled_from(mappings))
        sources = draw(st.lists(st.sampled_from(paths), min_size=1, max_size=2))
        value = get(tree, sources[0]) if len(sources) == 1 else [get(tree, source) for source in sources]
        if draw(st.integers(0, 4)) == 0:
            value = draw(hostile_values())
        get(tree, path)["<<"] = value  # type: ignore[index]
        return tree, f"merge {sources} into {path}"
    if op == "wrap":
        path = draw(st.sampled_from(paths))
        value = get(tree, path)
        wrapped = draw(st.sampled_from(["list", "map"]))
        return put(tree, path, [value] if wrapped == "list" else {"value": value}), f"wrap {path} in a {wrapped}"
    path = draw(st.sampled_from(paths))  # "empty"
    value = get(tree, path)
    emptied = type(value)() if isinstance(value, (dict, list, str)) else None
    return put(tree, path, emptied), f"empty {path}"


def dump(tree: object, style: dict) -> str:
    text = yaml.dump(tree, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False, **style)
    # the dumper quotes a '<<' key (so that it stays a string): plain, it is a merge key
    return text.replace("'<<': ", "<<: ")


DUMP_STYLES = st.fixed_dictionaries(
    {
        "allow_unicode": st.booleans(),
        "default_flow_style": st.sampled_from([False, None, True]),
        "width": st.sampled_from([80, 10**6]),
    }
)

# ---------------------------------------------------------------------------------------------
# the text: byte-level mutations

TEXT_OPS = ("flip", "insert", "insert", "insert_line", "truncate", "delete", "duplicate_line", "indent", "replace_token")


@st.composite
def text_mutation(draw, data: bytes) -> tuple[bytes, str]:
    op = draw(st.sampled_from(TEXT_OPS))
    at = draw(st.integers(0, len(data)))
    if op == "flip" and data:
        at = min(at, len(data) - 1)
        byte = draw(st.one_of(st.integers(0, 255), st.sampled_from(list(b":-{}[],&*!|>#'\"%@` \t\n"))))
        return data[:at] + bytes([byte]) + data[at + 1 :], f"flip byte {at} to {byte:#04x}"
    if op == "truncate":
        return data[:at], f"truncate at {at}"
    if op == "delete":
        size = draw(st.integers(1, 40))
        return data[:at] + data[at + size :], f"delete {size} bytes at {at}"
    lines = data.split(b"\n")
    line = min(draw(st.integers(0, max(len(lines) - 1, 0))), len(lines) - 1)
    if op == "duplicate_line":
        where = draw(st.integers(0, len(lines)))
        lines.insert(where, lines[line])
        return b"\n".join(lines), f"copy line {line + 1} to {where + 1}"
    if op == "indent":
        change = draw(st.sampled_from([-4, -2, -1, 1, 2, 4]))
        lines[line] = b" " * change + lines[line] if change > 0 else lines[line][-change:]
        return b"\n".join(lines), f"indent line {line + 1} by {change}"
    token = draw(st.sampled_from(YAML_TOKENS))
    if op == "insert_line":  # a token at the start of a line, or just after its indentation
        stripped = lines[line].lstrip(b" ")
        indent = lines[line][: len(lines[line]) - len(stripped)]
        lines[line] = indent + token + stripped if draw(st.booleans()) else token + lines[line]
        return b"\n".join(lines), f"insert {token[:40]!r} in line {line + 1}"
    if op == "replace_token":  # a token instead of the word (or symbol) at `at`
        end = at
        while end < len(data) and data[end : end + 1] not in (b" ", b"\n", b",", b"}", b"]"):
            end += 1
        return data[:at] + token + data[end:], f"replace bytes {at}..{end} with {token[:40]!r}"
    return data[:at] + token + data[at:], f"insert {token[:40]!r} at {at}"


# ---------------------------------------------------------------------------------------------
# one case: the blueprint, the commands, the verdict


@st.composite
def blueprints(
    draw, tree_ops: tuple[int, int] = (0, 4), text_ops: tuple[int, int] = (0, 3), ops: tuple[str, ...] = TREE_OPS
) -> tuple[str, bytes, list[str]]:
    """(starter, mutated file content, what was done)."""
    starter = draw(st.sampled_from(sorted(STARTERS)))
    done: list[str] = []
    tree = copy.deepcopy(TREES[starter])
    steps = draw(st.integers(*tree_ops))
    for _ in range(steps):
        tree, what = draw(tree_mutation(tree, ops))
        done.append(what)
    data = dump(tree, draw(DUMP_STYLES)).encode("utf-8") if steps else STARTERS[starter].encode("utf-8")
    for _ in range(draw(st.integers(*text_ops))):
        data, what = draw(text_mutation(data))
        done.append(what)
    return starter, data, done


VALIDATE_FLAGS = st.tuples(
    st.sampled_from([[], [], ["--format", "json"], ["--format", "sarif"]]),
    st.sampled_from([[], ["--strict"]]),
    st.sampled_from([[], [], [], ["--env", "staging"], ["--env", "prod"]]),
    st.sampled_from([[], [], [], ["--deep"]]),
).map(lambda parts: [flag for part in parts for flag in part])


class CommandTimeout(BaseException):
    """Raised by SIGALRM inside a command that ran too long (BaseException: nothing in msgen catches it)."""


_current = {"case": ""}


def _watchdog_fire() -> None:  # pragma: no cover - only on a hang the alarm cannot break
    sys.__stderr__.write(f"\nmsgen fuzz: a command hung for {WATCHDOG_TIMEOUT}s (inside C code?) on:\n{_current['case']}\n")
    faulthandler.dump_traceback(all_threads=True)
    sys.__stderr__.flush()
    os._exit(70)


@contextmanager
def time_limit(seconds: float):
    """SIGALRM after `seconds` (main thread only), and a watchdog that ends the process later."""
    watchdog = threading.Timer(WATCHDOG_TIMEOUT, _watchdog_fire)
    watchdog.daemon = True
    watchdog.start()
    alarm = threading.current_thread() is threading.main_thread()
    if alarm:

        def fire(signum, frame):
            raise CommandTimeout(f"no result after {seconds}s")

        previous = signal.signal(signal.SIGALRM, fire)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        watchdog.cancel()


def run(args: list[str]):
    """One CLI command in-process; returns (result, problem or "")."""
    try:
        with time_limit(COMMAND_TIMEOUT):
            result = runner.invoke(COMMAND, args)
    except CommandTimeout as error:
        return None, f"hang: {error}"
    return result, verdict(result)


def verdict(result) -> str:
    """What is wrong with a command's result, or "" when it is one msgen may give."""
    error = result.exception
    if error is not None and not isinstance(error, SystemExit):
        import traceback

        trace = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else ""
        return f"crash (exit 3 from msgen.cli.main): {type(error).__name__}: {str(error)[:500]}\n{trace[-3000:]}"
    if result.exit_code not in (0, 1, 2):
        return f"exit code {result.exit_code}"
    for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        if "Traceback" in text:
            return f"'Traceback' in {stream}: {text[-1500:]}"
        if "internal error" in text:
            return f"'internal error' in {stream}: {text[-1500:]}"
    return ""


def describe(starter: str, data: bytes, done: list[str], args: list[str], problem: str) -> str:
    text = data.decode("utf-8", errors="backslashreplace")
    shown = text if len(text) <= 6000 else text[:6000] + f"\n... ({len(text)} characters in all)"
    return f"msgen {' '.join(args)}\n{problem}\nstarter {starter}, mutations: {done}\n--- blueprint:\n{shown}\n--- repr: {data[:3000]!r}"


# the exit codes seen, per command (read by the exploratory runs; harmless in CI)
EXIT_CODES: dict[str, dict[int | str, int]] = {}


def _count(command: str, result) -> None:
    codes = EXIT_CODES.setdefault(command, {})
    key: int | str = "hang" if result is None else result.exit_code
    codes[key] = codes.get(key, 0) + 1


def run_case(starter: str, data: bytes, done: list[str], validate_flags: list[str], render: bool, render_flags: list[str]) -> list[str]:
    """Run the commands on one blueprint; returns the problems found (each with its input)."""
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="msgen-fuzz-") as folder:
        blueprint = Path(folder) / "blueprint.yaml"
        blueprint.write_bytes(data)
        _current["case"] = describe(starter, data, done, ["validate", *validate_flags], "(running)")
        commands = [["validate", str(blueprint), *validate_flags]]
        if render:
            out = str(Path(folder) / "out")
            commands += [
                ["render", str(blueprint), "-o", out, *render_flags],
                ["render", str(blueprint), "-o", out, "--check", *render_flags],
                ["render", str(blueprint), "-o", str(rendered_starter(starter)), "--check", "--diff", *render_flags],
            ]
        for args in commands:
            _current["case"] = describe(starter, data, done, args, "(running)")
            result, problem = run(args)
            _count(args[0] + (" --check" if "--check" in args else ""), result)
            if problem:
                problems.append(describe(starter, data, done, args, problem))
                break
    return problems


_RENDERED: dict[str, Path] = {}


def rendered_starter(starter: str) -> Path:
    """A folder holding the unmutated starter's files (for `render --check` to compare with)."""
    if starter not in _RENDERED:
        folder = Path(tempfile.mkdtemp(prefix=f"msgen-fuzz-{starter}-"))
        source = folder / "blueprint.yaml"
        source.write_text(STARTERS[starter], encoding="utf-8")
        result = runner.invoke(COMMAND, ["render", str(source), "-o", str(folder / "out")])
        assert result.exit_code == 0, result.output
        _RENDERED[starter] = folder / "out"
    return _RENDERED[starter]


def _examples(share: float) -> int:
    return max(1, round(TOTAL_EXAMPLES * share))


def _check(problems: list[str]) -> None:
    for problem in problems:
        note(problem)
    assert not problems, "\n\n".join(problems)


# ---------------------------------------------------------------------------------------------
# the tests


@settings(FUZZ, max_examples=_examples(0.45))
@given(case=blueprints(tree_ops=(1, 4), text_ops=(0, 0)), flags=VALIDATE_FLAGS)
def test_fuzz_tree(case, flags):
    """YAML-level mutations of a starter, validated."""
    _check(run_case(*case, flags, render=False, render_flags=[]))


@settings(FUZZ, max_examples=_examples(0.35))
@given(case=blueprints(tree_ops=(0, 1), text_ops=(1, 4)), flags=VALIDATE_FLAGS)
def test_fuzz_text(case, flags):
    """Byte-level mutations of a starter's text (or of a tree-mutated one), validated."""
    _check(run_case(*case, flags, render=False, render_flags=[]))


@settings(FUZZ, max_examples=_examples(0.20))
@given(
    case=blueprints(tree_ops=(1, 2), text_ops=(0, 0), ops=RENDER_OPS),
    flags=VALIDATE_FLAGS,
    render_flags=st.tuples(
        st.sampled_from([[], [], ["--strict"]]),
        st.sampled_from([[], [], ["--env", "staging"]]),
        st.sampled_from([[], [], ["--target", "compose"], ["--target", "kubernetes"], ["--target", "traefik"]]),
    ).map(lambda parts: [flag for part in parts for flag in part]),
)
def test_fuzz_render(case, flags, render_flags):
    """YAML-level mutations, validated, rendered, and compared with `render --check`."""
    _check(run_case(*case, flags, render=True, render_flags=render_flags))


# ---------------------------------------------------------------------------------------------
# crashes the fuzzer once found, kept as regression cases: each must now be a clear message

KNOWN_CRASHES = [
    pytest.param(
        ("validate",),
        "version: 1\nproject: shop\nservices:\n  web:\n    image: ghcr.io/example/web:1.0.0\n    port: 8080\n"
        "    resources:\n      requests: {cpu: 1e308}\n",
        id="cpu-1e308-overflow",
    ),
    pytest.param(
        ("render", "-o", "{out}"),
        "version: 1\nproject: shop\nregions:\n  home: {jurisdiction: DE}\n"
        "hosts:\n  - {name: box-1, region: home, vcpu: 4, memory: 8Gi, storage: ssd}\n"
        "services:\n  web:\n    image: ghcr.io/example/web:1.0.0\n    port: 8080\n    secrets: [" + "X" * 1100 + "]\n"
        "compose:\n  host: box-1\n",
        id="long-secret-compose-not-well-formed",
    ),
]


@pytest.mark.parametrize(("args", "text"), KNOWN_CRASHES)
def test_known_crashes(tmp_path, args, text):
    blueprint = tmp_path / "blueprint.yaml"
    blueprint.write_text(text, encoding="utf-8")
    argv = [args[0], str(blueprint), *args[1:]]
    argv = [str(tmp_path / "out") if part == "{out}" else part for part in argv]
    _, problem = run(argv)
    assert not problem, problem


@pytest.mark.parametrize("starter", sorted(STARTERS))
def test_the_starters_pass_unmutated(starter):
    """The fuzz starts from blueprints msgen accepts (else every mutation only tests the loader)."""
    data = STARTERS[starter].encode("utf-8")
    assert run_case(starter, data, [], [], render=True, render_flags=[]) == []
    result, problem = run(["validate", str(ROOT / "blueprints" / f"{starter}.yaml")])
    assert not problem and result.exit_code == 0, result.output
