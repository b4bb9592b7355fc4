"""The loader and the load errors: every bad blueprint gives exit code 2, the
line and column of the place to fix, its key path, no traceback, and writes nothing."""

from __future__ import annotations

import json
import resource
import time

import pytest
from typer.testing import CliRunner

from msgen.cli import app
from msgen.errors import BlueprintError
from msgen.loader import format_path, load_yaml, resolve_plain_scalar
from msgen.model.load import load_blueprint

HEAD = "version: 1\nproject: shop\n"
WEB = "services:\n  web:\n    image: ghcr.io/x/web:1.0\n    port: 8080\n"

BOMB = (
    HEAD
    + "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]\n" for prev, name in zip("abcdefgh", "bcdefghi", strict=True))
)

# (case id, blueprint bytes, exit code, "line:column", key path shown, words the message has)
BAD = [
    ("syntax", HEAD + "services:\n  web: {image: a:1, port: 80\n", 2, "5:1", "", "YAML syntax"),
    ("tab-indent", HEAD + "services:\n\tweb: {}\n", 2, "4:1", "", "YAML syntax"),
    # numbers no consumer reads, and durations that divide or wait, are refused at the key
    ("huge-integer", HEAD + WEB + "    replicas: " + "1" * 4301 + "\n", 2, "7:15", "services.web.replicas", "beyond the 64-bit integers"),
    ("int-beyond-64-bits", HEAD + WEB + "    replicas: 9223372036854775808\n", 2, "7:15", "services.web.replicas", "beyond the 64-bit"),
    ("infinite-cpu", HEAD + WEB + "    resources: {limits: {cpu: .inf}}\n", 2, "7:31", "services.web.resources.limits.cpu", "not a finite number"),
    (
        "nan-rtt",
        HEAD + "regions: {a: {jurisdiction: DE}, b: {jurisdiction: SE}}\nrtt_ms: {a/b: .nan}\n" + WEB,
        2,
        "4:15",
        "rtt_ms.a/b",
        "not a finite number",
    ),
    ("tiny-memory", HEAD + "services:\n  web: {image: a:1, port: 80, datastore: c}\ndatastores:\n  c: {engine: redis, version: '7', memory: 1Mi}\n", 2, "6:36", "datastores.c.memory", "below 6Mi"),
    ("zero-budget", HEAD + WEB + "policy: {latency_budget: 0ms}\n", 2, "7:10", "policy.latency_budget", "must be longer than 0"),
    ("duration-beyond-go", HEAD + WEB + "policy: {latency_budget: 9999999999999999d}\n", 2, "7:10", "policy.latency_budget", "longest duration"),
    ("deep-nesting", HEAD + WEB + "    env: " + "[" * 100 + "]" * 100 + "\n", 2, "7:72", "services.web.env" + "[0]" * 62, "nested deeper than 64"),
    # a name that ends in a line break would become a file name with one in it
    ("name-trailing-newline", HEAD + 'services:\n  "web\\n": {image: a:1, port: 80}\n', 2, "4:3", 'services."web\\n"', "is not a valid name"),
    ("env-name-trailing-newline", HEAD + WEB + '    env: {"LEVEL\\n": info}\n', 2, "7:11", 'services.web.env."LEVEL\\n"', "not a valid variable name"),
    ("unknown-key", HEAD + WEB + "    prot: 81\n", 2, "7:5", "services.web.prot", "did you mean 'port'?"),
    ("misspelled-required-key", "version: 1\nprojcet: shop\n" + WEB, 2, "2:1", "projcet", "did you mean 'project'?"),
    (
        "unknown-nested-key",
        HEAD + "hosts:\n  - {name: h, region: r, vcpu: 1, memory: 1Gi, storag: ssd}\n" + WEB,
        2,
        "4:48",
        "hosts[0].storag",
        "did you mean 'storage'?",
    ),
    (
        "misspelled-datastore",
        HEAD + WEB + '    datastore: web-bd\ndatastores:\n  web-db: {engine: redis, version: "7"}\n',
        2,
        "7:5",
        "services.web.datastore",
        "did you mean 'web-db'?",
    ),
    (
        "misspelled-call",
        HEAD + WEB + "    calls: [ap]\n  api: {image: a:1, port: 80}\n",
        2,
        "7:13",
        "services.web.calls[0]",
        "did you mean 'api'?",
    ),
    (
        "misspelled-region",
        HEAD + "regions: {oslo: {jurisdiction: NO}}\n" + WEB + "    region: olso\n",
        2,
        "8:5",
        "services.web.region",
        "did you mean 'oslo'?",
    ),
    (
        "call-cycle",
        HEAD + "services:\n  a: {image: a:1, port: 80, calls: [b]}\n  b: {image: a:1, port: 80, calls: [a]}\n",
        2,
        "5:37",
        "services.b.calls[0]",
        "a -> b -> a",
    ),
    ("duplicate-key", HEAD + WEB + "    port: 8081\n", 2, "7:5", "services.web.port", "duplicate key 'port'"),
    ("duplicate-service", HEAD + WEB + "  web:\n    image: a:1\n    port: 80\n", 2, "7:3", "services.web", "duplicate key 'web'"),
    ("alias-bomb", BOMB + WEB, 2, "6:36", "d[7]", "aliases expand to more than"),
    ("wrong-type", HEAD + "services:\n  web:\n    image: a:1\n    port: eighty\n", 2, "6:5", "services.web.port", "valid integer"),
    ("bool-for-int", HEAD + "services:\n  web:\n    image: a:1\n    port: true\n", 2, "6:5", "services.web.port", "valid integer"),
    ("bare-number-duration", HEAD + WEB + "    timeout: 10\n", 2, "7:5", "services.web.timeout", "bare numbers are rejected"),
    ("bad-duration", HEAD + WEB + "    timeout: 10 sec\n", 2, "7:5", "services.web.timeout", "not a duration"),
    (
        "bad-size",
        HEAD + WEB + 'datastores:\n  d: {engine: redis, version: "7", memory: 2GB}\n',
        2,
        "8:36",
        "datastores.d.memory",
        "not a memory size",
    ),
    (
        "unquoted-version",
        HEAD + WEB + "datastores:\n  d: {engine: mysql, version: 8.0}\n",
        2,
        "8:22",
        "datastores.d.version",
        'version: "8.0"',
    ),
    ("unquoted-k8s-version", HEAD + WEB + "kubernetes: {version: 1.30}\n", 2, "7:14", "kubernetes.version", 'version: "1.30"'),
    (
        "unsupported-engine-version",
        HEAD + WEB + 'datastores:\n  d: {engine: postgres, version: "9"}\n',
        2,
        "8:3",
        "datastores.d",
        "not supported",
    ),
    ("unquoted-env-number", HEAD + WEB + "    env: {PYTHON: 3.10}\n", 2, "7:11", "services.web.env.PYTHON", 'PYTHON: "3.10"'),
    ("name-with-colon", HEAD + 'services:\n  "we:b": {image: a:1, port: 80}\n', 2, "4:3", 'services."we:b"', "DNS-1123"),
    ("name-with-newline", HEAD + 'services:\n  "we\\nb": {image: a:1, port: 80}\n', 2, "4:3", 'services."we\\nb"', "DNS-1123"),
    ("name-uppercase", HEAD + "services:\n  Web: {image: a:1, port: 80}\n", 2, "4:3", "services.Web", "DNS-1123"),
    ("reserved-name", HEAD + "services:\n  gateway: {image: a:1, port: 80}\n", 2, "4:3", "services.gateway", "taken"),
    ("empty-file", "", 2, "1:1", "", "the file is empty"),
    ("only-comments", "# nothing here\n", 2, "1:1", "", "the file is empty"),
    ("non-mapping-root", "- web\n- api\n", 2, "1:1", "", "must be a mapping"),
    ("scalar-root", "hello\n", 2, "1:1", "", "must be a mapping"),
    ("wrong-version", "project: shop\nversion: 2\n" + WEB, 2, "2:1", "version", "unsupported format version 2"),
    ("missing-version", "project: shop\n" + WEB, 2, "1:1", "", "missing required key 'version'"),
    ("two-documents", HEAD + WEB + "---\nx: 1\n", 2, "7:1", "", "more than one YAML document"),
    # a service without a port is a worker; without an image it is nothing
    ("missing-image", HEAD + "services:\n  web:\n    port: 8080\n", 2, "4:3", "services.web", "missing required key 'image'"),
    ("unknown-alias", HEAD + "services: *nothing\n", 2, "3:11", "services", "unknown alias *nothing"),
    (
        "shared-datastore",
        HEAD
        + WEB
        + '    datastore: d\n  api:\n    image: a:1\n    port: 80\n    datastore: d\ndatastores:\n  d: {engine: redis, version: "7"}\n',
        1,
        "7:5",
        "services.web.datastore",
        "datastore-shared",
    ),
    ("latest-tag", HEAD + "services:\n  web:\n    image: nginx:latest\n    port: 80\n", 1, "5:5", "services.web.image", "image-latest"),
    ("untagged-image", HEAD + "services:\n  web:\n    image: nginx\n    port: 80\n", 1, "5:5", "services.web.image", "image-latest"),
    # a tag on a mapping or a list is refused as an unknown scalar tag is, at the tag
    ("map-tag", HEAD + WEB + "    env: !!map {A: x}\n", 2, "7:10", "services.web.env", "unsupported YAML tag 'tag:yaml.org,2002:map'"),
    ("seq-tag", HEAD + WEB + "    calls: !!seq []\n", 2, "7:12", "services.web.calls", "unsupported YAML tag 'tag:yaml.org,2002:seq'"),
    ("local-tag-on-mapping", HEAD + WEB + "    resources: !foo {limits: {cpu: 1}}\n", 2, "7:16", "services.web.resources", "unsupported YAML tag '!foo'"),
    ("set-tag", HEAD + WEB + "    secrets: !!set {A, B}\n", 2, "7:14", "services.web.secrets", "unsupported YAML tag 'tag:yaml.org,2002:set'"),
    ("omap-tag", HEAD + WEB + "    calls: !!omap [{a: 1}]\n", 2, "7:12", "services.web.calls", "on a list"),
    # only a plain << merges: a quoted one is an ordinary (and unknown) key
    ("double-quoted-merge-key", HEAD + WEB + '    "<<": {replicas: 3}\n', 2, "7:5", "services.web.<<", "unknown key '<<'"),
    ("single-quoted-merge-key", HEAD + WEB + "    '<<': {replicas: 3}\n", 2, "7:5", "services.web.<<", "unknown key '<<'"),
    # line breaks of YAML 1.1 only: refused wherever they stand, at their own position
    ("line-separator-in-quotes", HEAD + WEB + '    env: {A: "x\u2028y"}\n', 2, "7:16", "", "LINE SEPARATOR (U+2028)"),
    ("nel-in-plain-scalar", HEAD + "description: a\x85b\n" + WEB, 2, "3:15", "", "NEL (U+0085)"),
    ("paragraph-separator-in-comment", HEAD + WEB + "# note\u2029\n", 2, "7:7", "", "PARAGRAPH SEPARATOR (U+2029)"),
]


@pytest.mark.parametrize(("case", "text", "code", "where", "path", "words"), BAD, ids=[case[0] for case in BAD])
def test_bad_blueprint(tmp_path, case, text, code, where, path, words):
    blueprint = tmp_path / "blueprint.yaml"
    blueprint.write_text(text, encoding="utf-8")
    out_dir = tmp_path / "out"
    for command in (["validate", str(blueprint)], ["render", str(blueprint), "-o", str(out_dir)]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
        first = next(line for line in result.output.splitlines() if f"{blueprint}:" in line)
        assert first.startswith(f"{'error: ' if code == 2 else ''}{blueprint}:{where}"), first
        if path:
            assert f": {path}: " in first, first
        assert words in result.output
    assert not out_dir.exists(), "a blueprint that fails must write nothing"


def test_non_utf8_bytes(tmp_path):
    blueprint = tmp_path / "blueprint.yaml"
    blueprint.write_bytes(b"version: 1\nproject: sh\xffop\n")
    result = CliRunner().invoke(app, ["render", str(blueprint), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert f"{blueprint}:2:12: not UTF-8 text (byte 0xff)" in result.output
    assert not (tmp_path / "out").exists()


def test_missing_file_is_a_load_error(tmp_path):
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "cannot read" in result.output and "Traceback" not in result.output


def test_load_errors_list_every_issue_sorted_by_line(write_blueprint):
    path = write_blueprint(HEAD + "services:\n  web:\n    image: a:1\n    port: x\n    replicas: y\n    colour: red\n")
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(path)
    lines = [(issue.line, issue.path) for issue in caught.value.issues]
    assert lines == [(6, "services.web.port"), (7, "services.web.replicas"), (8, "services.web.colour")]


def test_alias_bomb_fails_fast_in_little_memory(tmp_path):
    # nine levels of ten: 10**9 nodes if expanded
    bomb = (
        HEAD
        + "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]\n" for prev, name in zip("abcdefghi", "bcdefghij", strict=True))
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(BlueprintError, match="aliases expand"):
        load_yaml(bomb, "bomb.yaml")
    assert time.perf_counter() - started < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB


def test_a_one_line_json_blueprint_loads(write_blueprint):
    """Nodes written out in the file are not charged to the alias budget: a blueprint on one
    line (JSON) with thousands of nodes and no alias loads."""
    services = {f"s{index}": {"image": "a:1", "port": 80, "replicas": 2, "env": {"A": "x", "B": "y"}, "calls": []} for index in range(2000)}
    text = json.dumps({"version": 1, "project": "shop", "services": services})
    assert "\n" not in text
    assert len(load_blueprint(write_blueprint(text)).blueprint.services) == 2000


def test_the_alias_budget_grows_with_the_file(write_blueprint):
    """A large file may repeat an anchored block in every service; the same expansion in a
    small file is a bomb."""
    anchored = "x: &common [" + ", ".join(["v"] * 100) + "]\n"
    reuses = "".join(f"k{index}: *common\n" for index in range(400))  # 400 x 101 nodes
    assert 4 * len(anchored + reuses) < 400 * 101
    with pytest.raises(BlueprintError, match="aliases expand to more than"):
        load_yaml(anchored + reuses, "small.yaml")
    padding = "".join(f"p{index}: {'w' * 60}\n" for index in range(100))
    assert 4 * len(anchored + reuses + padding) > 400 * 101
    data, _ = load_yaml(anchored + reuses + padding, "large.yaml")
    assert len(data["k399"]) == 100


def test_a_plain_merge_key_merges_and_a_quoted_one_does_not():
    assert load_yaml("a: {<<: {x: 1}, y: 2}\n", "f.yaml")[0] == {"a": {"x": 1, "y": 2}}
    assert load_yaml('a: {"<<": {x: 1}, y: 2}\n', "f.yaml")[0] == {"a": {"<<": {"x": 1}, "y": 2}}
    assert load_yaml("a: {'<<': {x: 1}, y: 2}\n", "f.yaml")[0] == {"a": {"<<": {"x": 1}, "y": 2}}
    with pytest.raises(BlueprintError, match="unsupported YAML tag"):
        load_yaml("a: {!!merge <<: {x: 1}}\n", "f.yaml")


@pytest.mark.parametrize("tagged", ["!!map {a: 1}", "!!seq [1]", "!foo {a: 1}", "!!set {a, b}", "! {a: 1}", "!!omap [{a: 1}]", "!!pairs []"])
def test_tags_on_mappings_and_lists_are_refused(tagged):
    with pytest.raises(BlueprintError) as caught:
        load_yaml(f"ok: 1\nkey: {tagged}\n", "f.yaml")
    issue = caught.value.first
    assert (issue.line, issue.column, issue.path) == (2, 6, "key")
    assert "unsupported YAML tag" in issue.message and "remove the tag" in issue.hint


def test_tags_on_keys_other_than_str_are_refused():
    assert load_yaml("!!str a: 1\n", "f.yaml")[0] == {"a": 1}
    with pytest.raises(BlueprintError, match=r"unsupported YAML tag 'tag:yaml\.org,2002:int' on a key"):
        load_yaml("!!int 5: x\n", "f.yaml")


@pytest.mark.parametrize(("char", "name"), [("\x85", "U+0085"), ("\u2028", "U+2028"), ("\u2029", "U+2029")])
def test_yaml_11_line_breaks_are_refused_at_their_position(char, name):
    """libyaml reads NEL, LS and PS as line breaks (YAML 1.1), which shifts every line number
    after them and can split a scalar; YAML 1.2 reads them as characters."""
    for text, where in ((f"a: 1\r\nbb: x{char}y\n", (2, 6)), (f'a: 1\rb: "{char}"\n', (2, 5)), (f"{char}a: 1\n", (1, 1))):
        with pytest.raises(BlueprintError) as caught:
            load_yaml(text, "f.yaml")
        issue = caught.value.first
        assert (issue.line, issue.column) == where, text
        assert name in issue.message and "YAML 1.1" in issue.message
        assert f"\\u{ord(char):04x}" in issue.hint and "double-quoted" in issue.hint


def test_an_escaped_line_separator_is_text():
    assert load_yaml('a: "x\\u2028y\\x85"\n', "f.yaml")[0] == {"a": "x\u2028y\x85"}


def test_small_aliases_and_merge_keys_load(write_blueprint):
    path = write_blueprint(
        HEAD + "x-common: &common {image: 'a:1', port: 80, replicas: 3}\n" + "services:\n  web: {<<: *common, port: 81}\n  api: *common\n"
    )
    services = load_blueprint(path).blueprint.services  # an extension key holds the anchor
    assert (services["web"].port, services["web"].replicas, services["api"].port) == (81, 3, 80)
    data, _ = load_yaml(path.read_text(), "b.yaml")
    assert data["services"]["web"] == {"image": "a:1", "port": 81, "replicas": 3}
    assert data["services"]["api"] == {"image": "a:1", "port": 80, "replicas": 3}


@pytest.mark.parametrize("text", ["NO", "yes", "on", "off", "Yes", "y", "n", "No", "ON", "OFF"])
def test_yaml_11_booleans_stay_strings(text):
    assert resolve_plain_scalar(text) == text
    data, _ = load_yaml(f"key: {text}\n", "x.yaml")
    assert data == {"key": text}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("False", False),
        ("~", None),
        ("null", None),
        ("", None),
        ("0o17", 15),
        ("0x1F", 31),
        ("012", 12),
        ("1_000", "1_000"),
        ("1.5", 1.5),
        ("1:30", "1:30"),
        ("0b101", "0b101"),
    ],
)
def test_yaml_12_core_scalars(text, value):
    assert resolve_plain_scalar(text) == value


@pytest.mark.parametrize("text", ["-.inf", ".Inf", ".NaN", "1e400", "0x" + "F" * 17])
def test_scalars_no_consumer_reads_are_refused(text):
    """YAML 1.2 reads these as numbers (.inf, .nan, a float that overflows to infinity, an
    integer beyond 64 bits); msgen refuses them where they stand."""
    with pytest.raises(ValueError):
        resolve_plain_scalar(text)


def test_norway_and_yes_survive_into_the_blueprint(write_blueprint):
    path = write_blueprint(
        HEAD
        + "regions: {oslo: {jurisdiction: NO}}\npolicy: {personal_data_in: [NO, EEA]}\n"
        + WEB
        + "    env: {A: yes, B: on, C: NO, D: 'true', E: 3, F: true}\n"
    )
    blueprint = load_blueprint(path).blueprint
    assert blueprint.regions["oslo"].jurisdiction == "NO"
    assert blueprint.policy.personal_data_in == ["NO", "EEA"]
    assert blueprint.services["web"].env == {"A": "yes", "B": "on", "C": "NO", "D": "true", "E": 3, "F": True}


def test_positions_of_keys_and_list_items():
    text = "a:\n  b: 1\n  c:\n    - x\n    - {d: 2}\n"
    _, source = load_yaml(text, "f.yaml")
    assert source.locate(("a",)) == (1, 1)
    assert source.locate(("a", "b")) == (2, 3)
    assert source.locate(("a", "c", 1)) == (5, 7)
    assert source.locate(("a", "c", 1, "d")) == (5, 8)
    assert source.locate(("a", "c", 1, "missing")) == (5, 8 - 1)


def test_format_path_quotes_keys_that_could_be_misread():
    assert format_path(("services", "payment", "calls", 1)) == "services.payment.calls[1]"
    assert format_path(("rtt_ms", "oslo/frankfurt")) == "rtt_ms.oslo/frankfurt"
    assert format_path(("services", "a.b")) == 'services."a.b"'
    assert format_path(("services", "x: y")) == 'services."x: y"'


def test_non_string_keys_are_rejected():
    with pytest.raises(BlueprintError, match="plain strings"):
        load_yaml("? [a, b]\n: 1\n", "f.yaml")


def test_explicit_tags():
    data, _ = load_yaml("a: !!str 1.30\nb: !!int '7'\nc: !!float 2\n", "f.yaml")
    assert data == {"a": "1.30", "b": 7, "c": 2.0}
    with pytest.raises(BlueprintError, match="not a valid int"):
        load_yaml("a: !!int x\n", "f.yaml")
    with pytest.raises(BlueprintError, match="unsupported YAML tag"):
        load_yaml("a: !!python/object x\n", "f.yaml")


def test_an_endless_file_is_refused_without_reading_it_whole():
    """/dev/zero (or any file larger than a blueprint can be) is a load error, not a memory exhaustion."""
    result = CliRunner().invoke(app, ["validate", "/dev/zero"])
    assert result.exit_code == 2 and "larger than 64 MiB: not a blueprint" in result.stderr
