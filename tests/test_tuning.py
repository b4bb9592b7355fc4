"""Datastore tuning: msgen's sizing rules, the rendered files, the findings, and properties
over memory sizes and storage classes (the real servers are in test_datastores_real.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msgen.api import analyse
from msgen.checks import datastores as datastore_checks
from msgen.model.blueprint import Blueprint
from msgen.plan import build_plan
from msgen.targets import build_each, render_targets
from msgen.targets.datastores import config_files
from msgen.targets.registry import applicable
from msgen.units import GI, MI
from msgen.verify import VerifyContext
from msgen.verify.datastore_variables import ABSENT, variables_for
from msgen.verify.registry import verify
from tests.rendering import edited

ENGINES = {"mysql": ("8.0", "8.4"), "mariadb": ("10.11", "11.4"), "postgres": ("14", "15", "16", "17"), "redis": ("7",)}


def blueprint(engine="mariadb", version="10.11", memory="2Gi", storage="ssd", iops=None, cpu=1, extra="") -> Blueprint:
    """A one-service blueprint whose datastore runs on a host of the given storage class."""
    host = {"name": "box-1", "region": "home", "vcpu": 16, "memory": "128Gi", "storage": storage}
    if iops is not None:
        host["iops"] = iops
    data = {
        "version": 1,
        "project": "shop",
        "regions": {"home": {"jurisdiction": "DE"}},
        "hosts": [host],
        "services": {"web": {"image": "example/web:1.0", "port": 8080, "datastore": "db"}},
        "datastores": {"db": {"engine": engine, "version": version, "memory": memory, "cpu": cpu, **_extra(extra)}},
        "compose": {"host": "box-1"},
    }
    if engine != "redis":
        data["datastores"]["db"].pop("role", None)
    return Blueprint.model_validate(data, strict=False)


def _extra(extra: str) -> dict:
    import yaml

    return yaml.safe_load(extra) if extra else {}


def tuning_of(**kwargs):
    return build_plan(blueprint(**kwargs)).tuning["db"]


def value(tuning, name):
    return tuning.get(name).number


# --- MySQL and MariaDB ---------------------------------------------------------------------


def test_mariadb_files_carry_only_mariadb_variables():
    for line in ENGINES["mariadb"]:
        tuning = tuning_of(engine="mariadb", version=line)
        names = {setting.name for setting in tuning.settings}
        assert not names & {"innodb_buffer_pool_instances", "innodb_redo_log_capacity", "innodb_dedicated_server", "temptable_max_ram"}
        assert "innodb_log_file_size" in names
        assert names <= set(variables_for("mariadb", line))


def test_mysql_redo_variable_follows_the_version():
    assert tuning_of(engine="mysql", version="8.0").has("innodb_redo_log_capacity")
    assert tuning_of(engine="mysql", version="8.0.30").has("innodb_redo_log_capacity")
    old = tuning_of(engine="mysql", version="8.0.29")
    assert not old.has("innodb_redo_log_capacity")
    assert value(old, "innodb_log_file_size") * 2 <= 512 * MI
    new = tuning_of(engine="mysql", version="8.4")
    assert not new.has("innodb_log_file_size") and new.has("innodb_redo_log_capacity")


@pytest.mark.parametrize("version", ["8.0", "8.4"])
def test_mysql_files_are_free_of_mariadb_only_and_removed_variables(version):
    tuning = tuning_of(engine="mysql", version=version, memory="8Gi", cpu=4)
    names = {setting.name for setting in tuning.settings}
    assert names <= set(variables_for("mysql", version))
    assert not names & set(ABSENT[("mysql", version)])
    assert "innodb_dedicated_server" not in names
    text = config_files(build_plan(blueprint(engine="mysql", version=version)), "db")["my.cnf"]
    assert "aria_" not in text and "innodb_dedicated_server" not in text


def test_storage_class_sets_flushing_and_io_capacity():
    hdd = tuning_of(storage="hdd")
    assert (value(hdd, "innodb_flush_neighbors"), value(hdd, "innodb_io_capacity"), value(hdd, "innodb_io_capacity_max")) == (1, 200, 400)
    ssd = tuning_of(storage="ssd")
    assert (value(ssd, "innodb_flush_neighbors"), value(ssd, "innodb_io_capacity"), value(ssd, "innodb_io_capacity_max")) == (0, 2000, 4000)
    nvme = tuning_of(storage="nvme")
    assert (value(nvme, "innodb_io_capacity"), value(nvme, "innodb_io_capacity_max")) == (2000, 4000)
    # a lone datastore on a host with declared IOPS: half of them, capped
    assert value(tuning_of(storage="nvme", iops=50_000), "innodb_io_capacity") == 20_000
    assert value(tuning_of(storage="nvme", iops=6_000), "innodb_io_capacity") == 3_000
    # declared IOPS count on every class, not only nvme
    assert value(tuning_of(storage="ssd", iops=1_000), "innodb_io_capacity") == 500


def test_mysql_instances_follow_pool_and_cpu():
    assert value(tuning_of(engine="mysql", version="8.0", memory="16Gi", cpu=1), "innodb_buffer_pool_instances") == 1
    big = tuning_of(engine="mysql", version="8.0", memory="16Gi", cpu=4)
    assert value(big, "innodb_buffer_pool_instances") == 4
    assert value(big, "innodb_buffer_pool_size") % (4 * 128 * MI) == 0
    small = tuning_of(engine="mysql", version="8.0", memory="512Mi", extra="max_connections: 50")
    assert value(small, "innodb_buffer_pool_instances") == 1
    assert value(small, "innodb_buffer_pool_chunk_size") == value(small, "innodb_buffer_pool_size")


def test_512mi_mysql_fits_with_50_connections_but_not_with_151(write_blueprint):
    assert tuning_of(engine="mysql", version="8.0", memory="512Mi", extra="max_connections: 50").peak <= 512 * MI
    path = write_blueprint(
        """
        version: 1
        project: shop
        services:
          web: {image: example/web:1.0, port: 8080, datastore: db}
        datastores:
          db: {engine: mysql, version: "8.0", memory: 512Mi, max_connections: 151}
        """
    )
    found = [f for f in analyse(path).findings if f.id == "datastore-memory"]
    assert len(found) == 1
    assert found[0].severity == "error" and found[0].path == "datastores.db.max_connections" and found[0].line == 7
    assert "max_connections 151" in found[0].message and "512Mi" in found[0].message


def test_rendered_file_has_a_reason_above_every_setting():
    for engine, lines in ENGINES.items():
        plan = build_plan(blueprint(engine=engine, version=lines[-1], extra="role: store" if engine == "redis" else ""))
        store = plan.datastore("db")
        lines_ = config_files(plan, "db")[store.config_file].splitlines()
        settings_ = [i for i, line in enumerate(lines_) if line and not line.startswith(("#", "["))]
        assert len(settings_) == len(plan.tuning["db"].settings)
        for index in settings_:
            assert lines_[index - 1].startswith("# ") and len(lines_[index - 1]) > 4


# --- PostgreSQL and Redis ------------------------------------------------------------------


def test_postgres_follows_pgtune_web_profile():
    tuning = tuning_of(engine="postgres", version="16", memory="8Gi", storage="nvme", cpu=8)
    assert value(tuning, "shared_buffers") == 2 * GI
    assert value(tuning, "effective_cache_size") == 6 * GI
    assert value(tuning, "maintenance_work_mem") == 512 * MI
    assert value(tuning, "wal_buffers") == 16 * MI
    assert value(tuning, "work_mem") == (6 * GI) // (3 * (100 + 8)) // 1024 * 1024
    assert value(tuning, "random_page_cost") == 1.1 and value(tuning, "effective_io_concurrency") == 1000
    assert value(tuning, "max_worker_processes") == 8 and value(tuning, "max_parallel_workers_per_gather") == 4
    small = tuning_of(engine="postgres", version="14", memory="512Mi", storage="hdd")
    assert value(small, "work_mem") == 4 * MI and value(small, "random_page_cost") == 4
    assert not small.has("max_worker_processes")
    assert value(tuning_of(engine="postgres", version="17", memory="64Gi"), "maintenance_work_mem") == 2 * GI


def test_postgres_init_script_creates_the_application_user():
    plan = build_plan(blueprint(engine="postgres", version="15"))
    files = config_files(plan, "db")
    script = files["initdb/10-app-user.sh"]
    assert "app_user=web" in script and "app_db=web" in script and "/run/secrets/db-password" in script


def test_redis_role_sets_policy_and_persistence():
    cache = tuning_of(engine="redis", version="7", memory="1Gi", extra="role: cache")
    assert value(cache, "maxmemory") == int(GI * 0.85) // MI * MI and cache.get("maxmemory-policy").value == "allkeys-lru"
    assert cache.get("appendonly").value == "no"
    store = tuning_of(engine="redis", version="7", memory="1Gi", extra="role: store")
    assert value(store, "maxmemory") == GI // 2 and store.get("maxmemory-policy").value == "noeviction"
    assert store.get("appendonly").value == "yes"


# --- findings ----------------------------------------------------------------------------------


def _context_with(engine, version, replace_from, replace_to, **kwargs):
    """What `--deep` reads: every file the blueprint renders, with the datastore's config edited by hand."""
    bp = blueprint(engine=engine, version=version, **kwargs)
    plan = build_plan(bp)
    store = plan.datastore("db")
    files = {built.path: built for built in build_each(render_targets(plan, applicable(plan)))}
    path = f"datastores/db/{store.config_file}"
    text = files[path].text
    assert replace_from in text
    files[path] = edited(files[path], text.replace(replace_from, replace_to))
    return VerifyContext(bp, plan, files)


def _ids(context):
    return sorted(f.id for f in verify(context))


@pytest.mark.parametrize("memory", ["16Gi", "32Gi", "64Gi", "256Gi"])
def test_large_postgres_configs_verify_clean(memory):
    """maintenance_work_mem is capped at 2GB, which 64-bit PostgreSQL accepts (its limit is INT_MAX kB)."""
    context = _context_with("postgres", "16", "#", "#", memory=memory, cpu=8)
    assert _ids(context) == []


def test_examples_have_no_datastore_findings():
    for engine, lines in ENGINES.items():
        for line in lines:
            plan_context = _context_with(engine, line, "#", "#")
            assert _ids(plan_context) == [], (engine, line)


def test_unknown_or_foreign_options_are_findings():
    assert _ids(_context_with("mariadb", "10.11", "innodb_log_file_size", "innodb_redo_log_capacity")) == ["verify-datastore-option"]
    assert _ids(_context_with("mysql", "8.0", "key_buffer_size = 8M", "key_buffer_size = 8M\ninnodb_dedicated_server = ON")) == [
        "verify-datastore-option"
    ]
    assert _ids(_context_with("redis", "7", "maxmemory-samples", "maxmemory-sampels")) == ["verify-datastore-option"]


def test_out_of_range_values_are_findings():
    assert _ids(_context_with("mysql", "8.4", "innodb_flush_neighbors = 0", "innodb_flush_neighbors = 3", storage="ssd")) == [
        "verify-datastore-range"
    ]
    assert _ids(_context_with("postgres", "15", "effective_io_concurrency = 200", "effective_io_concurrency = 2000", storage="ssd")) == [
        "verify-datastore-range"
    ]
    assert _ids(_context_with("redis", "7", "allkeys-lru", "allkeys-lur", extra="role: cache")) == ["verify-datastore-range"]


def test_misaligned_pool_is_a_finding():
    context = _context_with("mysql", "8.0", "innodb_buffer_pool_size = 3584M", "innodb_buffer_pool_size = 3600M", memory="8Gi")
    assert _ids(context) == ["verify-datastore-pool-alignment"]


# --- properties ----------------------------------------------------------------------------------

sizes_mib = st.integers(min_value=512, max_value=128 * 1024)
storages = st.sampled_from(["nvme", "ssd", "hdd"])
innodb = st.sampled_from([("mysql", "8.0"), ("mysql", "8.4"), ("mariadb", "10.11"), ("mariadb", "11.4"), ("mariadb", "10.11.5")])


@settings(max_examples=150, deadline=None)
@given(sizes_mib, storages, innodb, st.integers(min_value=1, max_value=16), st.integers(min_value=10, max_value=1000))
def test_pool_is_aligned_nonzero_within_budget(mib, storage, engine_version, cpu, connections):
    engine, version = engine_version
    tuning = tuning_of(engine=engine, version=version, memory=f"{mib}Mi", storage=storage, cpu=cpu, extra=f"max_connections: {connections}")
    pool = value(tuning, "innodb_buffer_pool_size")
    assert pool > 0 and pool % tuning.pool_granule == 0
    if engine == "mysql":
        assert pool % (value(tuning, "innodb_buffer_pool_chunk_size") * value(tuning, "innodb_buffer_pool_instances")) == 0
    assert pool < mib * MI
    # the peak stays within the limit unless the finding says so
    findings = [
        f
        for f in datastore_checks._memory(build_plan(blueprint(engine=engine, version=version, memory=f"{mib}Mi")).datastore("db"), tuning)
    ]
    assert (tuning.peak > tuning.limit) == bool(findings)
    if tuning.peak > tuning.limit:
        assert pool == 128 * MI


@settings(max_examples=100, deadline=None)
@given(sizes_mib, st.integers(min_value=1, max_value=4096), storages, innodb, st.integers(min_value=10, max_value=500))
def test_pool_and_peak_are_monotone_in_memory(mib, step, storage, engine_version, connections):
    engine, version = engine_version
    extra = f"max_connections: {connections}"
    small = tuning_of(engine=engine, version=version, memory=f"{mib}Mi", storage=storage, extra=extra)
    large = tuning_of(engine=engine, version=version, memory=f"{mib + step}Mi", storage=storage, extra=extra)
    assert value(small, "innodb_buffer_pool_size") <= value(large, "innodb_buffer_pool_size")
    redo = "innodb_log_file_size" if engine == "mariadb" else "innodb_redo_log_capacity"
    assert value(small, redo) <= value(large, redo)


@settings(max_examples=60, deadline=None)
@given(sizes_mib, storages, st.sampled_from(["14", "15", "16", "17"]), st.integers(min_value=1, max_value=16))
def test_postgres_sizes_fit_the_limit(mib, storage, version, cpu):
    tuning = tuning_of(engine="postgres", version=version, memory=f"{mib}Mi", storage=storage, cpu=cpu)
    assert value(tuning, "shared_buffers") + value(tuning, "maintenance_work_mem") + value(tuning, "wal_buffers") < mib * MI
    assert value(tuning, "shared_buffers") % (8 * 1024) == 0


def test_plan_view_shows_value_and_reason(minimal_blueprint):
    from msgen.views import plan_sections

    plan = analyse(minimal_blueprint).plan
    section = next(s for s in plan_sections(plan) if s.title == "Datastore tuning")
    rows = {(row[0], row[1]): row for row in section.rows}
    row = rows[("web-db", "innodb_buffer_pool_size")]
    assert row[2] == plan.tuning["web-db"].get("innodb_buffer_pool_size").value and "75%" in row[3]


def test_every_starter_and_example_renders_all_engines():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    engines = set()
    for path in [*sorted((root / "blueprints").glob("*.yaml")), *sorted((root / "examples").glob("*/blueprint.yaml"))]:
        analysis = analyse(path, deep=True)  # deep: the rendered configs are verified too
        engines |= {store.engine for store in analysis.plan.datastores}
        found = [f.id for f in analysis.findings if f.id.startswith(("datastore-", "verify-datastore-")) and f.id != "datastore-shared"]
        assert not found, (path, found)
    assert engines == set(ENGINES)
