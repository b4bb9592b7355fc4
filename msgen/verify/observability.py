"""Verification of the Prometheus files (`--deep` and the tests): one scrape job per name,
every service with metrics and every datastore scraped, and every rule expression
well-formed PromQL (a structural check; promtool proves the rules in the test suite).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

from msgen.findings import Finding, finding
from msgen.targets.observability import GRAFANA_DASHBOARDS, PROMETHEUS_CONFIG

FUNCTIONS = frozenset(
    [
        "abs",
        "absent",
        "absent_over_time",
        "acos",
        "acosh",
        "asin",
        "asinh",
        "atan",
        "atanh",
        "avg_over_time",
        "ceil",
        "changes",
        "clamp",
        "clamp_max",
        "clamp_min",
        "cos",
        "cosh",
        "count_over_time",
        "day_of_month",
        "day_of_week",
        "day_of_year",
        "days_in_month",
        "deg",
        "delta",
        "deriv",
        "exp",
        "floor",
        "histogram_avg",
        "histogram_count",
        "histogram_fraction",
        "histogram_quantile",
        "histogram_stddev",
        "histogram_stdvar",
        "histogram_sum",
        "holt_winters",
        "double_exponential_smoothing",
        "hour",
        "idelta",
        "increase",
        "irate",
        "label_join",
        "label_replace",
        "last_over_time",
        "ln",
        "log10",
        "log2",
        "mad_over_time",
        "max_over_time",
        "min_over_time",
        "minute",
        "month",
        "pi",
        "predict_linear",
        "present_over_time",
        "quantile_over_time",
        "rad",
        "rate",
        "resets",
        "round",
        "scalar",
        "sgn",
        "sin",
        "sinh",
        "sort",
        "sort_by_label",
        "sort_by_label_desc",
        "sort_desc",
        "sqrt",
        "stddev_over_time",
        "stdvar_over_time",
        "sum_over_time",
        "tan",
        "tanh",
        "time",
        "timestamp",
        "vector",
        "year",
    ]
)
AGGREGATIONS = frozenset(
    [
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ]
)
KEYWORDS = frozenset(["by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"])
_TOKEN = re.compile(
    r"""\s*(?:
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<range>\[[0-9]+(?:ms|[smhdwy])(?:[0-9]+(?:ms|[smhdwy]))*(?::(?:[0-9]+(?:ms|[smhdwy]))?)?\])
  | (?P<number>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)
  | (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<matchop>=~|!~|!=)
  | (?P<op>==|>=|<=|[-+*/%^<>=])
  | (?P<open>[({])
  | (?P<close>[)}])
  | (?P<comma>,)
    )""",
    re.VERBOSE,
)
_PAIRS = {")": "(", "}": "{"}


# msgen writes the same few rule shapes for every service, differing only in label values:
# the structural check of one expression is valid for every expression of the same shape
_SHAPES: dict[str, bool] = {}


def promql_problem(expr: str) -> str | None:
    """Why `expr` is not well-formed PromQL, or None (checked once per shape: the expression
    with every string literal emptied; string tokens are opaque to the structural check)."""
    shape = _STRING.sub('""', expr)
    if _SHAPES.get(shape):
        return None
    problem = _promql_problem(expr)
    if problem is None and len(_SHAPES) < 10_000:
        _SHAPES[shape] = True
    return problem


_STRING = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'""")


def _promql_problem(expr: str) -> str | None:
    """Why `expr` is not well-formed PromQL, or None. Structural: tokens, brackets, names, matchers."""
    if not expr.strip():
        return "the expression is empty"
    tokens = []
    position = 0
    while position < len(expr):
        if not expr[position:].strip():
            break
        match = _TOKEN.match(expr, position)
        if match is None or match.end() == position:
            return f"unexpected text at character {position + 1}: {expr[position : position + 12]!r}"
        tokens.append((match.lastgroup, match.group(match.lastgroup)))
        position = match.end()
    return _structure_problem(tokens)


def _structure_problem(tokens: list[tuple[str, str]]) -> str | None:
    stack: list[str] = []
    previous: tuple[str, str] | None = None
    for kind, text in tokens:
        if kind == "open":
            if text == "(" and previous and previous[0] == "name" and not _callable(previous[1]):
                return f"{previous[1]!r} is not a PromQL function or aggregation"
            stack.append(text)
        elif kind == "close":
            if not stack or stack.pop() != _PAIRS[text]:
                return f"unbalanced {text!r}"
        elif kind == "range" and (previous is None or previous[0] not in ("close", "name")):
            return f"range {text} must follow a selector"
        elif kind == "matchop" and not (stack and stack[-1] == "{"):
            return f"{text!r} is only valid inside a label matcher {{...}}"
        elif kind == "op" and previous is not None and previous[0] == "op" and text not in "-+":
            return f"two operators in a row: {previous[1]} {text}"
        previous = (kind, text)
    if stack:
        return f"unclosed {stack[-1]!r}"
    if previous is not None and previous[0] in ("op", "matchop", "comma"):
        return f"the expression ends with {previous[1]!r}"
    return None


def _callable(name: str) -> bool:
    return name in FUNCTIONS or name in AGGREGATIONS or name in KEYWORDS


def verify(context) -> Iterator[Finding]:
    if context.plan.observability is None:
        return
    config = context.document(PROMETHEUS_CONFIG)
    if config is not None:
        yield from _job_findings(context.plan, config)
    yield from _rule_findings(context)
    yield from _dashboard_findings(context)


def _job_findings(plan, config: dict) -> list[Finding]:
    found = []
    jobs = [job.get("job_name") for job in config.get("scrape_configs") or []]
    by_name = {job.name: job for job in plan.observability.jobs}
    for name, count in sorted(Counter(jobs).items()):
        if count > 1:
            at = by_name[name].at if name in by_name else ("observability",)
            found.append(
                finding(
                    "prometheus-job-duplicate", "error", at, f"{count} scrape jobs are named {name!r}", "rename the service or datastore"
                )
            )
    scraped = set(jobs)
    for service in plan.services:
        if service.metrics_port is not None and service.name not in scraped:
            at = ("services", service.name, "metrics")
            found.append(
                finding(
                    "prometheus-unscraped",
                    "error",
                    at,
                    f"service {service.name} has metrics but no scrape job",
                    "please report this: msgen plans one job per service",
                )
            )
    for store in plan.datastores:
        if store.name not in scraped:
            at = ("datastores", store.name)
            found.append(
                finding(
                    "prometheus-unscraped", "error", at, f"datastore {store.name} has no scrape job for its exporter", "please report this"
                )
            )
    return found


def _rule_findings(context) -> list[Finding]:
    found = []
    for path in sorted(context.files):
        if not (path.startswith("prometheus/rules/") and path.endswith(".yml")):
            continue
        document = context.document(path) or {}
        for group in document.get("groups") or []:
            for rule in group.get("rules") or []:
                problem = promql_problem(str(rule.get("expr", "")))
                if problem is not None:
                    name = rule.get("alert") or rule.get("record")
                    message = f"{path}: rule {name} in group {group.get('name')}: {problem}"
                    found.append(
                        finding(
                            "prometheus-rule-expression",
                            "error",
                            ("observability", "alerts"),
                            message,
                            "please report this: msgen wrote the rule",
                        )
                    )
    return found


def _panel_problem(board: dict, panel: dict) -> str | None:
    """Why a panel cannot show its data: a datasource variable the dashboard lacks, or malformed PromQL."""
    variables = {variable.get("name") for variable in (board.get("templating") or {}).get("list") or []}
    for query in panel.get("targets") or []:
        uid = str((query.get("datasource") or {}).get("uid", ""))
        if uid.startswith("${") and uid[2:-1] not in variables:
            return f"its datasource {uid} is not a variable of the dashboard"
        if panel.get("type") == "timeseries":
            problem = promql_problem(str(query.get("expr", "")))
            if problem is not None:
                return problem
    return None


def _dashboard_findings(context) -> list[Finding]:
    found = []
    for path in sorted(context.files):
        if not (path.startswith(f"{GRAFANA_DASHBOARDS}/") and path.endswith(".json")):
            continue
        board = context.document(path) or {}
        for panel in board.get("panels") or []:
            problem = _panel_problem(board, panel)
            if problem is not None:
                message = f"{path}: panel {panel.get('title')!r}: {problem}"
                found.append(
                    finding("grafana-panel", "error", ("observability", "grafana"), message, "please report this: msgen wrote the dashboard")
                )
    return found
