"""The dashboards' queries proven by the real programs:

- promtool parses every PromQL expression of every rendered dashboard (as recording rules
  of a scratch rule file), and rejects the same file with one function name misspelt;
- Debian's exporters (mysqld-exporter 0.14, postgres-exporter 0.11, redis-exporter 1.45),
  each scraping a real MariaDB 10.11, PostgreSQL 15 or Redis 7 on a free loopback port,
  expose every metric name the datastore dashboards query.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import realtools
import yaml
from realservers import init_postgres, make_dirs_as, owned_dir, running_mariadb, running_postgres_on, running_redis, write_as

from tests.rendering import render_in_memory

ROOT = Path(__file__).resolve().parent.parent
BOARDS = "grafana/provisioning/dashboards/msgen"
pytestmark = pytest.mark.realtool


@pytest.fixture(scope="module")
def reference():
    return render_in_memory(ROOT / "blueprints" / "reference.yaml")


def board_exprs(reference, path: str | None = None) -> list[str]:
    """The PromQL of every time series panel (of the one dashboard at `path`)."""
    found = []
    for built in reference.artifacts:
        if built.path.startswith(BOARDS) and (path is None or built.path == f"{BOARDS}/{path}"):
            panels = json.loads(built.text)["panels"]
            found += [query["expr"] for panel in panels if panel["type"] == "timeseries" for query in panel["targets"]]
    return found


def metric_names(exprs: list[str]) -> set[str]:
    """Every metric a selector names (msgen writes each with its label matchers)."""
    return {name for expr in exprs for name in re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", expr)}


def check_rules(exprs: list[str], folder: Path) -> subprocess.CompletedProcess:
    rules = [{"record": f"msgen_panel_{index}", "expr": expr} for index, expr in enumerate(exprs)]
    path = folder / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}), encoding="utf-8")
    promtool = realtools.debian_tool("promtool", "prometheus")
    return subprocess.run([str(promtool), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)


def test_promtool_parses_every_panel_expression(reference, tmp_path):
    exprs = board_exprs(reference)
    assert len(exprs) > 30
    result = check_rules(exprs, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout
    # the same check fails on a typo
    broken = [expr.replace("rate(", "rat(", 1) for expr in exprs]
    result = check_rules(broken, tmp_path)
    assert result.returncode != 0 and 'unknown function with name "rat"' in result.stdout + result.stderr


# --- the exporters against the real engines ----------------------------------------------------


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def _up_probe(port: int, up_line: str) -> Callable[[], tuple[bool, str]]:
    def probe() -> tuple[bool, str]:
        try:
            text = _metrics(port)
        except OSError as error:
            return False, str(error)
        return up_line in text.splitlines(), f"no {up_line!r} yet"

    return probe


def exported_names(args: list[str], port: int, up_line: str, work: Path, env: dict[str, str] | None = None) -> set[str]:
    """The metric names an exporter exposes once it has reached its engine (its up line says so)."""
    log = work / "exporter.log"
    process = realtools.start(args, log, env=env)
    try:
        realtools.wait_until_ready(_up_probe(port, up_line), process, args[0], log, timeout=30)
        text = _metrics(port)
    finally:
        realtools.stop(process)
    return {re.split(r"[{ ]", line, maxsplit=1)[0] for line in text.splitlines() if line and not line.startswith("#")}


def assert_exposed(reference, board: str, names: set[str], up: str) -> None:
    wanted = metric_names(board_exprs(reference, board))
    assert up in wanted and len(wanted) >= 5
    assert wanted - names == set(), f"{board} queries metrics the exporter does not expose"


def test_redis_exporter_exposes_what_the_redis_dashboard_queries(reference):
    exporter = realtools.debian_tool("prometheus-redis-exporter", "prometheus-redis-exporter")
    with running_redis("") as redis_port, owned_dir("redis") as work:
        port = realtools.free_port()
        args = [str(exporter), f"-redis.addr=redis://127.0.0.1:{redis_port}", f"-web.listen-address=127.0.0.1:{port}"]
        names = exported_names(args, port, "redis_up 1", work)
    assert_exposed(reference, "datastores/fraud-cache.json", names, "redis_up")


def test_mysqld_exporter_exposes_what_the_mysql_dashboard_queries(reference, mariadb_base):
    exporter = realtools.debian_tool("prometheus-mysqld-exporter", "prometheus-mysqld-exporter")
    work = mariadb_base["root"] / "dashboards"
    make_dirs_as("mysql", work)
    config = write_as(work / "my.cnf", "[mysqld]\n", "mysql")
    with running_mariadb(mariadb_base, work, config) as server:
        # the grants mysqld_exporter documents (the rendered exporter user's, test_exporter_users_real)
        server.sql("CREATE USER 'exporter'@'127.0.0.1' IDENTIFIED BY 'pw-x'; GRANT PROCESS, REPLICATION CLIENT, SELECT ON *.* TO 'exporter'@'127.0.0.1';")
        client = work / "exporter.cnf"
        client.write_text(f"[client]\nuser=exporter\npassword=pw-x\nhost=127.0.0.1\nport={server.port}\n", encoding="utf-8")
        port = realtools.free_port()
        args = [str(exporter), f"--config.my-cnf={client}", f"--web.listen-address=127.0.0.1:{port}"]
        names = exported_names(args, port, "mysql_up 1", work)
    assert_exposed(reference, "datastores/payment-db.json", names, "mysql_up")


def test_postgres_exporter_exposes_what_the_postgres_dashboard_queries(reference):
    exporter = realtools.debian_tool("prometheus-postgres-exporter", "prometheus-postgres-exporter")
    with owned_dir("postgres") as work:
        data = work / "data"
        init_postgres(data)
        config = write_as(work / "postgresql.conf", f"hba_file = '{data}/pg_hba.conf'\n", "postgres")
        with running_postgres_on(work, data, config, []) as server:
            port = realtools.free_port()
            dsn = f"host={work} port={server.port} user=postgres dbname=postgres sslmode=disable"
            args = [str(exporter), f"--web.listen-address=127.0.0.1:{port}"]
            names = exported_names(args, port, "pg_up 1", work, env={"DATA_SOURCE_NAME": dsn, "PATH": "/usr/bin:/bin"})
    assert_exposed(reference, "datastores/ledger-db.json", names, "pg_up")
