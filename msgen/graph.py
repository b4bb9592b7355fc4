"""`msgen graph`: the call graph as Mermaid or Graphviz DOT, and as SVG/PNG through Graphviz `dot`.

Services are grouped by region, calls are labelled with their round-trip time, datastores
hang off their owners, personal-data services are marked and services over their latency
budget are drawn in red. Both texts are built from the plan, sorted, so they are stable.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass

from msgen.errors import MsgenError
from msgen.model.references import declared_rtts
from msgen.plan.latency import format_ms, rtt_ms

IMAGE_FORMATS = ("svg", "png")
DOT_TIMEOUT_S = 60
GRAPHVIZ_HINT = (
    "Graphviz `dot` is needed for --format svg/png and was not found on PATH: install it with "
    "`sudo apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS) or from "
    "https://graphviz.org/download/, or use --format dot / --format mermaid (text, no tool needed)"
)
OVER_COLOR = "#c62828"
OVER_FILL = "#ffebee"
PERSONAL_FILL = "#fff8e1"


@dataclass(frozen=True)
class Node:
    id: str
    label: tuple[str, ...]  # lines
    kind: str  # service | datastore | gateway
    region: str | None
    personal: bool
    over: bool


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str
    kind: str  # call | route | store


@dataclass(frozen=True)
class Graph:
    title: str
    regions: tuple[tuple[str, str], ...]  # (region, its title), sorted
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]


def build_graph(plan) -> Graph:
    """Nodes and edges of the platform, from the plan (latency and residency included)."""
    blueprint = plan.blueprint
    over = {route.service: route for route in plan.latency.routes}
    rtts = declared_rtts(blueprint)
    nodes: list[Node] = []
    edges: list[Edge] = []
    if plan.routed:
        nodes.append(Node("gateway", ("gateway",), "gateway", None, False, False))
    for service in plan.services:
        lines = [service.name, f"p99 {format_ms(service.service.latency.p99.ms)}"]
        route = over.get(service.name)
        if route is not None:
            lines.append(f"{format_ms(route.total_ms)} of {route.budget.text} budget")
        if service.personal_data:
            lines.append("personal data")
        nodes.append(
            Node(f"svc-{service.name}", tuple(lines), "service", service.region, service.personal_data, bool(route and route.over))
        )
        if service.route is not None:
            edges.append(Edge("gateway", f"svc-{service.name}", _route_label(service.route), "route"))
        edges.extend(
            Edge(f"svc-{service.name}", f"svc-{callee}", format_ms(rtt_ms(plan.latency.regions, rtts, service.name, callee)), "call")
            for callee in service.calls
        )
        if service.datastore is not None:
            edges.append(Edge(f"svc-{service.name}", f"ds-{service.datastore}", "", "store"))
    for store in plan.datastores:
        lines = (store.name, f"{store.engine} {store.version}", *(("personal data",) if store.personal_data else ()))
        nodes.append(Node(f"ds-{store.name}", lines, "datastore", store.region, store.personal_data, False))
    used = sorted({node.region for node in nodes if node.region is not None})
    regions = tuple((name, f"{name} ({blueprint.regions[name].jurisdiction})") for name in used)
    return Graph(f"{plan.project}: calls (labelled with RTT), datastores, regions", regions, tuple(nodes), tuple(edges))


def _route_label(route) -> str:
    return " ".join(part for part in (route.host, route.path_prefix) if part)


# --- DOT -------------------------------------------------------------------------------------


def _dot_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot_node(node: Node) -> str:
    attributes = {"label": "\\n".join(line.replace("\\", "\\\\").replace('"', '\\"') for line in node.label)}
    if node.kind == "datastore":
        attributes["shape"] = "cylinder"
    elif node.kind == "gateway":
        attributes["shape"] = "hexagon"
    if node.personal:
        attributes["fillcolor"] = PERSONAL_FILL
        if node.kind != "datastore":  # a doubled cylinder reads as two datastores
            attributes["peripheries"] = "2"
    if node.over:
        attributes.update(color=OVER_COLOR, fontcolor=OVER_COLOR, fillcolor=OVER_FILL, penwidth="2")
    text = ", ".join(f'{key}="{value}"' for key, value in attributes.items())
    return f"{_dot_string(node.id)} [{text}];"


def _dot_edge(edge: Edge) -> str:
    attributes = []
    if edge.label:
        attributes.append(f"label={_dot_string(edge.label)}")
    if edge.kind == "store":
        attributes.append("style=dashed, arrowhead=none")
    elif edge.kind == "route":
        attributes.append('color="#546e7a"')
    suffix = f" [{', '.join(attributes)}]" if attributes else ""
    return f"{_dot_string(edge.source)} -> {_dot_string(edge.target)}{suffix};"


def to_dot(graph: Graph) -> str:
    """Graphviz DOT: one cluster per region."""
    lines = [
        f"digraph {_dot_string(graph.title)} {{",
        f'  graph [rankdir=LR, fontname="Helvetica", fontsize=12, label={_dot_string(graph.title)}, labelloc=t, nodesep=0.3];',
        '  node [fontname="Helvetica", fontsize=11, shape=box, style="rounded,filled", fillcolor="white"];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    lines.extend(f"  {_dot_node(node)}" for node in graph.nodes if node.region is None)
    for index, (region, title) in enumerate(graph.regions):
        lines.append(f"  subgraph cluster_{index} {{")
        lines.append(f'    label={_dot_string(title)}; style="rounded,dashed"; color="#90a4ae";')
        lines.extend(f"    {_dot_node(node)}" for node in graph.nodes if node.region == region)
        lines.append("  }")
    lines.extend(f"  {_dot_edge(edge)}" for edge in graph.edges)
    lines.append("}")
    return "\n".join(lines) + "\n"


# --- Mermaid ---------------------------------------------------------------------------------


def _mermaid_id(node_id: str) -> str:
    # DNS-1123 names have no underscore, so mapping '-' to '_' cannot make two ids collide
    return node_id.replace("-", "_")


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def _mermaid_node(node: Node) -> str:
    label = _mermaid_text("<br/>".join(node.label))
    shape = {"datastore": ('[("', '")]'), "gateway": ('{{"', '"}}')}.get(node.kind, ('["', '"]'))
    return f"{_mermaid_id(node.id)}{shape[0]}{label}{shape[1]}"


def _mermaid_edge(edge: Edge) -> str:
    source, target = _mermaid_id(edge.source), _mermaid_id(edge.target)
    if edge.kind == "store":
        return f"{source} -.- {target}"
    if edge.label:
        return f'{source} -->|"{_mermaid_text(edge.label)}"| {target}'
    return f"{source} --> {target}"


def to_mermaid(graph: Graph) -> str:
    """A Mermaid flowchart: one subgraph per region; classes mark personal data and broken budgets."""
    # the front matter is YAML: a JSON string is a valid YAML scalar whatever the title holds
    lines = ["---", f"title: {json.dumps(graph.title)}", "---", "flowchart LR"]
    lines.extend(f"  {_mermaid_node(node)}" for node in graph.nodes if node.region is None)
    for region, title in graph.regions:
        lines.append(f'  subgraph region_{_mermaid_id(region)}["{_mermaid_text(title)}"]')
        lines.extend(f"    {_mermaid_node(node)}" for node in graph.nodes if node.region == region)
        lines.append("  end")
    lines.extend(f"  {_mermaid_edge(edge)}" for edge in graph.edges)
    lines.append(f"  classDef personal fill:{PERSONAL_FILL},stroke-width:3px")
    lines.append(f"  classDef over fill:{OVER_FILL},stroke:{OVER_COLOR},color:{OVER_COLOR},stroke-width:2px")
    for cls, members in (("personal", [n for n in graph.nodes if n.personal and not n.over]), ("over", [n for n in graph.nodes if n.over])):
        if members:
            lines.append(f"  class {','.join(_mermaid_id(node.id) for node in members)} {cls}")
    return "\n".join(lines) + "\n"


# --- images ----------------------------------------------------------------------------------


def dot_binary() -> str | None:
    return shutil.which("dot")


def render_image(dot_text: str, fmt: str) -> bytes:
    """SVG or PNG bytes from DOT text through Graphviz `dot`; a clear error when it is missing."""
    if fmt not in IMAGE_FORMATS:
        raise MsgenError(f"unknown image format {fmt!r}; use one of {', '.join(IMAGE_FORMATS)}")
    binary = dot_binary()
    if binary is None:
        raise MsgenError(GRAPHVIZ_HINT)
    try:
        result = subprocess.run(
            [binary, f"-T{fmt}"], input=dot_text.encode("utf-8"), capture_output=True, timeout=DOT_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise MsgenError(f"Graphviz dot took longer than {DOT_TIMEOUT_S} s; use --format dot and render it yourself") from None
    if result.returncode != 0:
        raise MsgenError(f"Graphviz dot failed (exit {result.returncode}): {result.stderr.decode('utf-8', 'replace').strip()}")
    return result.stdout


def graph_output(plan, fmt: str) -> bytes:
    """The graph in `fmt` (mermaid, dot, svg, png) as bytes ready to write."""
    graph = build_graph(plan)
    if fmt == "mermaid":
        return to_mermaid(graph).encode("utf-8")
    dot_text = to_dot(graph)
    if fmt == "dot":
        return dot_text.encode("utf-8")
    return render_image(dot_text, fmt)
