"""`msgen graph`: Mermaid and DOT text, and SVG/PNG drawn by the real Graphviz `dot`."""

from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from msgen.cli import app
from msgen.graph import GRAPHVIZ_HINT, OVER_COLOR, build_graph, to_dot
from msgen.model.load import load_blueprint
from msgen.plan import build_plan
from tests.realtools import debian_tool

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
SVG = "{http://www.w3.org/2000/svg}"
# two regions, a call across them, personal data, a datastore, and one route over its budget
PLATFORM = """\
version: 1
project: shop
regions:
  oslo: {jurisdiction: NO}
  frankfurt: {jurisdiction: DE}
rtt_ms: {oslo/frankfurt: 30}
policy: {personal_data_in: [EEA]}
gateway: {domain: shop.example.com}
services:
  checkout:
    image: registry.example.com/checkout:1.0
    port: 8080
    region: oslo
    route: {path_prefix: /checkout, budget: 60ms}
    latency: {p99: 20ms}
    calls: [pricing, cart]
    personal_data: true
    datastore: orders
  cart:
    image: registry.example.com/cart:1.0
    port: 8080
    region: oslo
    route: {path_prefix: /cart}
  pricing:
    image: registry.example.com/pricing:1.0
    port: 8080
    region: frankfurt
    latency: {p99: 15ms}
datastores:
  orders: {engine: postgres, version: "16"}
"""


@pytest.fixture
def platform(write_blueprint) -> Path:
    return write_blueprint(PLATFORM)


def dot_tool() -> Path:
    return debian_tool("dot", "graphviz")


def test_graph_model(platform):
    graph = build_graph(build_plan(load_blueprint(platform).blueprint))
    nodes = {node.id: node for node in graph.nodes}
    # checkout: 20 + 1 query x 2 + (30 + 15) + (2 + 10) = 79 ms, + the gateway's hop 2 = 81 ms against 60ms
    assert nodes["svc-checkout"].over and "81 ms of 60ms budget" in nodes["svc-checkout"].label
    assert not nodes["svc-cart"].over and nodes["svc-checkout"].personal and nodes["ds-orders"].personal
    assert (nodes["ds-orders"].region, nodes["svc-pricing"].region) == ("oslo", "frankfurt")
    edges = {(e.source, e.target): (e.label, e.kind) for e in graph.edges}
    assert edges[("svc-checkout", "svc-pricing")] == ("30 ms", "call")
    assert edges[("svc-checkout", "svc-cart")] == ("2 ms", "call")
    assert edges[("svc-checkout", "ds-orders")] == ("", "store")
    assert edges[("gateway", "svc-checkout")] == ("/checkout", "route")
    assert graph.regions == (("frankfurt", "frankfurt (DE)"), ("oslo", "oslo (NO)"))


def test_mermaid_is_the_default_on_stdout(platform):
    result = runner.invoke(app, ["graph", str(platform)])
    assert result.exit_code == 0
    text = result.stdout
    assert "flowchart LR" in text
    assert 'subgraph region_oslo["oslo (NO)"]' in text and 'subgraph region_frankfurt["frankfurt (DE)"]' in text
    assert 'svc_checkout -->|"30 ms"| svc_pricing' in text and "svc_checkout -.- ds_orders" in text
    assert 'ds_orders[("orders<br/>postgres 16<br/>personal data")]' in text
    assert re.search(r"^  class svc_checkout over$", text, re.M) and re.search(r"^  class ds_orders personal$", text, re.M)
    # every subgraph is closed, and the YAML front matter's title is quoted (it holds a colon)
    assert text.count("subgraph ") == text.count("\n  end\n") and 'title: "shop: calls' in text


def test_dot_to_stdout_and_to_a_file(platform, tmp_path):
    result = runner.invoke(app, ["graph", str(platform), "--format", "dot"])
    assert result.exit_code == 0 and result.stdout.startswith('digraph "shop')
    target = tmp_path / "g.dot"
    result = runner.invoke(app, ["graph", str(platform), "--format", "dot", "-o", str(target)])
    assert result.exit_code == 0 and target.read_text(encoding="utf-8") == to_dot(
        build_graph(build_plan(load_blueprint(platform).blueprint))
    )


def test_dot_renders_to_svg_with_the_real_dot(platform, tmp_path):
    dot_tool()
    target = tmp_path / "g.svg"
    result = runner.invoke(app, ["graph", str(platform), "--format", "svg", "-o", str(target)])
    assert result.exit_code == 0, result.output
    root = ET.fromstring(target.read_bytes())
    groups = {g.findtext(f"{SVG}title"): g for g in root.iter(f"{SVG}g") if g.get("class") in ("node", "cluster", "edge")}
    assert {"svc-checkout", "svc-cart", "svc-pricing", "ds-orders", "gateway", "cluster_0", "cluster_1"} <= set(groups)
    assert "svc-checkout->svc-pricing" in groups and "gateway->svc-checkout" in groups
    # the service over its budget is drawn in red, the others are not
    strokes = lambda name: {shape.get("stroke") for shape in groups[name] if shape.get("stroke")}  # noqa: E731
    assert OVER_COLOR in strokes("svc-checkout") and OVER_COLOR not in strokes("svc-cart")
    labels = " ".join(text.text or "" for text in root.iter(f"{SVG}text"))
    assert "oslo (NO)" in labels and "frankfurt (DE)" in labels and "30 ms" in labels


def test_dot_renders_to_png_with_the_real_dot(platform, tmp_path):
    dot_tool()
    target = tmp_path / "g.png"
    result = runner.invoke(app, ["graph", str(platform), "--format", "png", "-o", str(target)])
    assert result.exit_code == 0, result.output
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 200 and height > 100


def test_the_dot_text_is_accepted_by_dot_as_is(platform):
    dot = dot_tool()
    text = runner.invoke(app, ["graph", str(platform), "--format", "dot"]).stdout
    checked = subprocess.run([str(dot), "-Tcanon"], input=text, capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0 and checked.stderr == ""


def test_without_graphviz_it_says_how_to_get_it(platform, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = runner.invoke(app, ["graph", str(platform), "--format", "png", "-o", str(tmp_path / "g.png")])
    assert result.exit_code == 2 and "apt-get install graphviz" in result.output and GRAPHVIZ_HINT[:40] in result.output
    assert not (tmp_path / "g.png").exists()
    # the text formats need no tool
    assert runner.invoke(app, ["graph", str(platform), "--format", "dot"]).exit_code == 0


def test_bad_blueprint_exits_2(write_blueprint):
    result = runner.invoke(app, ["graph", str(write_blueprint("version: 1\nproject: x\n"))])
    assert result.exit_code == 2


def test_readme_picture_shows_the_current_reference_graph():
    """docs/reference-graph.svg (in the README) has exactly the nodes and edges msgen draws now."""
    svg = ET.parse(ROOT / "docs" / "reference-graph.svg").getroot()
    drawn = {g.findtext(f"{SVG}title").replace("&#45;", "-") for g in svg.iter(f"{SVG}g") if g.get("class") in ("node", "edge")}
    graph = build_graph(build_plan(load_blueprint(ROOT / "blueprints" / "reference.yaml").blueprint))
    expected = {node.id for node in graph.nodes} | {f"{edge.source}->{edge.target}" for edge in graph.edges}
    assert drawn == expected, "regenerate: msgen graph blueprints/reference.yaml --format svg -o docs/reference-graph.svg"
