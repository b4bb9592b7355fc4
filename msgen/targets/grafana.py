"""Grafana's dashboard JSON model (schemaVersion 39), built from the plan's panels: which
dashboards exist and what each shows. The compose flavour writes them as provisioned files,
the Kubernetes flavour as ConfigMaps for Grafana's dashboard sidecar (msgen/targets/observability.py).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from msgen.plan import dashboards as plan_dashboards
from msgen.plan import observability as obs

# the provisioned datasources' uids (compose); on Kubernetes the variables pick the cluster's
DATASOURCE_UIDS = {"prometheus": "prometheus", "loki": "loki"}
# the dashboard variables that hold the datasource of each kind
DATASOURCE_VARIABLES = {"prometheus": "datasource", "loki": "loki"}
TAG = "msgen"
WIDTH = 24  # Grafana's grid is 24 columns wide
HEIGHT = 8


def _datasource(kind: str) -> dict:
    return {"type": kind, "uid": f"${{{DATASOURCE_VARIABLES[kind]}}}"}


def _timeseries(number: int, position: dict, panel: obs.Panel) -> dict:
    datasource = _datasource("prometheus")
    steps: list[dict] = [{"color": "green", "value": None}]
    if panel.threshold is not None:
        steps.append({"color": "red", "value": panel.threshold})
    return {
        "id": number,
        "type": "timeseries",
        "title": panel.title,
        "datasource": datasource,
        "gridPos": position,
        "fieldConfig": {
            "defaults": {
                "unit": panel.unit,
                "thresholds": {"mode": "absolute", "steps": steps},
                "custom": {"thresholdsStyle": {"mode": "line" if panel.threshold is not None else "off"}},
            },
            "overrides": [],
        },
        "targets": [
            {"refId": chr(ord("A") + index), "datasource": datasource, "expr": expr, "legendFormat": legend}
            for index, (legend, expr) in enumerate(panel.exprs)
        ],
    }


def _logs(number: int, position: dict, panel: plan_dashboards.LogsPanel) -> dict:
    datasource = _datasource("loki")
    return {
        "id": number,
        "type": "logs",
        "title": panel.title,
        "datasource": datasource,
        "gridPos": position,
        "options": {"showTime": True, "wrapLogMessage": True, "sortOrder": "Descending", "enableLogDetails": True},
        "targets": [{"refId": "A", "datasource": datasource, "expr": panel.selector}],
    }


def _datasource_variable(kind: str) -> dict:
    uid = DATASOURCE_UIDS[kind]
    return {
        "name": DATASOURCE_VARIABLES[kind],
        "label": kind.capitalize(),
        "type": "datasource",
        "query": kind,
        "current": {"text": kind.capitalize(), "value": uid},  # the provisioned datasource's name and uid
        "hide": 0,
        "refresh": 1,
    }


def _query_variable(variable: plan_dashboards.Variable) -> dict:
    query = f"label_values({variable.selector}, {variable.label})"
    return {
        "name": variable.name,
        "type": "query",
        "datasource": _datasource("prometheus"),
        "query": {"query": query, "refId": "variable"},
        "definition": query,
        "refresh": 2,  # on a time range change: replicas come and go
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {"text": "All", "value": "$__all"},
        "sort": 1,
    }


def dashboard(uid: str, title: str, panels: tuple, variables: tuple[plan_dashboards.Variable, ...] = ()) -> dict:
    """Time series panels two to a row, then logs panels across the full width."""
    charts = [panel for panel in panels if isinstance(panel, obs.Panel)]
    logs = [panel for panel in panels if isinstance(panel, plan_dashboards.LogsPanel)]
    built = [
        _timeseries(index + 1, {"h": HEIGHT, "w": WIDTH // 2, "x": (index % 2) * WIDTH // 2, "y": (index // 2) * HEIGHT}, panel)
        for index, panel in enumerate(charts)
    ]
    top = ((len(charts) + 1) // 2) * HEIGHT
    built += [
        _logs(len(charts) + index + 1, {"h": 2 * HEIGHT, "w": WIDTH, "x": 0, "y": top + index * 2 * HEIGHT}, panel)
        for index, panel in enumerate(logs)
    ]
    sources = [_datasource_variable("prometheus")] + ([_datasource_variable("loki")] if logs else [])
    return {
        "uid": uid,
        "title": title,
        "tags": [TAG],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": sources + [_query_variable(variable) for variable in variables]},
        # every msgen dashboard, one click away
        "links": [{"type": "dashboards", "tags": [TAG], "asDropdown": True, "title": "msgen dashboards", "includeVars": False, "keepTime": True}],
        "panels": built,
    }


def _route_dashboard(observability: obs.ObservabilityPlan, route: obs.RouteDashboard, kubernetes: bool) -> dict:
    panels = (*obs.route_panels(route, observability.rate_window, kubernetes), *plan_dashboards.route_logs(observability, route))
    return dashboard(route.uid, route.title, panels)


def _overview(plan, kubernetes: bool) -> dict:
    observability: obs.ObservabilityPlan = plan.observability
    panels = (*obs.overview_panels(observability, plan.datastores, kubernetes), *plan_dashboards.project_logs(observability))
    return dashboard(f"{plan.project}-overview", f"{plan.project} / overview", panels)


def _board(plan, board: plan_dashboards.Board) -> dict:
    observability: obs.ObservabilityPlan = plan.observability
    if board.kind == "service":
        service = plan.service(board.name)
        panels = plan_dashboards.service_panels(observability, service)
        variables = plan_dashboards.service_variables(service)
    else:
        store = plan.datastore(board.name)
        panels, variables = plan_dashboards.datastore_panels(observability, store), ()
    return dashboard(board.uid, board.title, (*panels, *plan_dashboards.logs_panel(observability, board.name)), variables)


def boards(plan, kubernetes: bool) -> list[tuple[str, str, Callable[[], dict]]]:
    """(uid, path under the dashboards folder, build) of every dashboard, in a fixed order:
    the overview, each route's, each service's, each datastore's."""
    observability: obs.ObservabilityPlan = plan.observability
    if not observability.prometheus:
        return []
    found = [(f"{plan.project}-overview", "overview.json", partial(_overview, plan, kubernetes))]
    found += [
        (route.uid, f"{route.service}.json", partial(_route_dashboard, observability, route, kubernetes)) for route in observability.dashboards
    ]
    found += [
        (board.uid, board.path, partial(_board, plan, board))
        for board in plan_dashboards.boards(observability, plan.services, plan.datastores)
    ]
    return found
