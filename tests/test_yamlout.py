"""msgen's one YAML emitter (msgen/yamlout.py): whatever it is given, YAML 1.1 and 1.2
readers read back exactly that value, at any indentation and in both list styles; and its
JSON writer (msgen.jinja.to_json) writes what the json module writes."""

from __future__ import annotations

import json

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from msgen import yamlout
from msgen.jinja import to_json

YAML12 = YAML(typ="safe", pure=True)

# strings that tempt a YAML reader: booleans and nulls of 1.1 and 1.2, numbers, indicators,
# comments, multi-line text with and without trailing newlines, odd whitespace
TRICKY = st.sampled_from(
    ["", "yes", "NO", "on", "Off", "null", "~", "3.10", "0o17", "1e3", "- a", "a: b # c", "#x", "&a", "*a", "!t", "|", ">",
     "@x", "`x", "%x", "a\nb", "a\nb\n", "a\n\n", "\n", " lead", "trail ", "a\tb", "x\r\ny", "\u2028", "caf\u00e9", "{}", "[]",
     "key:", "key: ", "-", "--- a", "...", "'q'", '"q"', "$$HOME", "C:\\path"]
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    TRICKY,
    st.text(max_size=30),
)
KEYS = st.one_of(TRICKY, st.text(min_size=0, max_size=12))
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=4)),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(value=VALUES, indent=st.sampled_from([0, 2, 4]), flow_lists=st.booleans())
def test_every_value_reads_back_unchanged(value, indent, flow_lists):
    # as every caller writes it: the dump, then a line break (a final literal block needs it)
    text = yamlout.dump(value, indent=indent, flow_lists=flow_lists) + "\n"
    assert yaml.load(text, Loader=yaml.CSafeLoader) == value, text
    assert YAML12.load(text) == value, text


def test_block_layout_is_what_a_reviewer_expects():
    document = {"a": {"b": [1, {"c": "x", "d": []}], "e": {}}, "f": "two\nlines\n", "g": ["ALL"]}
    assert yamlout.dump(document) == "a:\n  b:\n  - 1\n  - c: x\n    d: []\n  e: {}\nf: |\n  two\n  lines\ng:\n- ALL"
    assert yamlout.dump({"cap_drop": ["ALL"]}, flow_lists=True) == "cap_drop: [ALL]"


@settings(max_examples=300, deadline=None)
@given(value=st.recursive(
    st.one_of(SCALARS, st.floats()),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(KEYS, st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False)), children, max_size=4),
    ),
    max_leaves=25,
))  # fmt: skip
def test_json_is_byte_for_byte_what_the_json_module_writes(value):
    assert to_json(value) == json.dumps(value, indent=2, ensure_ascii=False)
