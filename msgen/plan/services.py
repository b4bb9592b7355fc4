"""Services and datastores as the targets see them: defaults applied, wiring derived."""

from __future__ import annotations

from dataclasses import dataclass
from graphlib import TopologicalSorter

from msgen import images
from msgen.contract import PASSWORD_FILE
from msgen.model.blueprint import Blueprint, Datastore, Host, Route, Service
from msgen.model.references import datastore_region, service_region
from msgen.model.versions import release_line
from msgen.plan.backup import BackupPlan, plan_backup
from msgen.units import KI, MI, Cpu, Duration, Memory

DEFAULT_REQUESTS = (Cpu(100, "100m"), Memory(128 * 1024**2, "128Mi"))
DEFAULT_LIMITS = (Cpu(500, "500m"), Memory(256 * 1024**2, "256Mi"))
# the non-root id services run as unless the blueprint says otherwise (distroless images' `nonroot`)
DEFAULT_UID = 65532
DEFAULT_MAX_CONNECTIONS = {"mysql": 151, "mariadb": 151, "postgres": 100}
# Redis: a sixteenth of the memory limit for client buffers, at 64 KiB a client, at most its default
REDIS_CLIENT_BUFFER, REDIS_MAX_CLIENTS = 64 * KI, 10_000
# the exporter's own user may hold this many connections (mysqld_exporter's documented cap)
EXPORTER_CONNECTIONS = 3
# a statement of a service without a timeout of its own: longer than any web request should wait
DEFAULT_STATEMENT_TIMEOUT_MS = 30_000
# a dump holds one connection while it runs (pg_basebackup uses a WAL sender, not counted)
DUMP_CONNECTIONS = {"mysql": 1, "mariadb": 1}
CONFIG_FILES = {"mysql": "my.cnf", "mariadb": "my.cnf", "postgres": "postgresql.conf", "redis": "redis.conf"}
# where a service finds its datastore password and its own secrets (wiring contract)
STORAGE_SPEED = {"hdd": 0, "ssd": 1, "nvme": 2}
# the /dev/shm Docker gives a container unless told otherwise
DOCKER_SHM = 64 * MI


@dataclass(frozen=True)
class Defaulted:
    """A value the blueprint left out, with what msgen chose and why (shown by `plan`)."""

    field: str
    value: str
    why: str


@dataclass(frozen=True)
class Amount:
    cpu: Cpu
    memory: Memory


@dataclass(frozen=True)
class ServicePlan:
    name: str
    service: Service  # the blueprint's own entry, for fields used as they are
    image: str
    port: int | None  # None: a worker, which serves no HTTP
    replicas: int
    region: str | None
    route: Route | None
    requests: Amount
    limits: Amount
    health_path: str
    health_command: tuple[str, ...] | None
    initial_delay: Duration
    period: Duration
    timeout: Duration
    metrics_path: str | None
    metrics_port: int | None
    calls: tuple[str, ...]
    datastore: str | None
    env: tuple[tuple[str, str], ...]  # user env and wiring, sorted by name; values as text
    secrets: tuple[str, ...]  # secret names, each mounted at /run/secrets/<NAME>
    personal_data: bool  # declared, or reached through its calls (personal_data_from says which)
    personal_data_from: str
    run_as_root: bool
    uid: int | None  # the user and group id it runs as; None with run_as_root
    defaulted: tuple[Defaulted, ...]


@dataclass(frozen=True)
class DatastorePlan:
    name: str
    datastore: Datastore
    engine: str
    version: str
    line: str  # the supported release line, e.g. "8.0" for "8.0.40"
    owner: str | None  # the service that uses it (several owners are a finding)
    memory: Memory
    cpu: Cpu
    storage: Memory
    host: str | None  # the host whose storage class tunes it
    storage_class: str
    iops: int | None
    iops_sharers: tuple[int, int]  # (datastores, monitoring volumes) tuned for the same host
    region: str | None
    personal_data: bool
    app_connections: int  # what the application may use: the blueprint's max_connections or the default
    connections_why: str
    reserved_connections: tuple[tuple[str, int], ...]  # (who, how many) on top: exporter, backup
    scraped: bool  # an exporter reads it (with its own user)
    statement_timeout_ms: int | None  # SQL engines: how long one statement of the application user may run
    statement_timeout_why: str
    backup: BackupPlan | None
    role: str | None  # redis only: cache or store
    port: int
    config_file: str  # file name under datastores/<name>/
    db_name: str | None  # the application database (None for redis)
    db_user: str | None

    @property
    def max_connections(self) -> int:
        return self.app_connections + sum(count for _, count in self.reserved_connections)

    @property
    def storage_origin(self) -> str:
        """The disk class it is tuned for and where that class comes from, for reasons: `nvme (host osl-1)`."""
        host = f"host {self.host}" if self.host else "no host declared, assumed"
        return f"{self.storage_class} ({host})"

    @property
    def shm_bytes(self) -> int | None:
        """PostgreSQL's /dev/shm, where parallel queries exchange their rows: a quarter of the
        memory limit in whole MiB, never below Docker's default; None for the other engines.
        Compose's shm_size and the Kubernetes in-memory volume both read it."""
        if self.engine != "postgres":
            return None
        return max(self.memory.bytes // 4, DOCKER_SHM) // MI * MI

    @property
    def is_sql(self) -> bool:
        return self.engine != "redis"


def env_prefix(name: str) -> str:
    """`fraud-check` -> `FRAUD_CHECK` (wiring contract)."""
    return name.upper().replace("-", "_")


def db_identifier(owner: str) -> str:
    """Database and user name for an owner: `-` becomes `_`, at most 32 characters (MySQL's user limit)."""
    return owner.replace("-", "_")[:32]


def env_text(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def plan_services(blueprint: Blueprint, datastores: dict[str, DatastorePlan], personal: dict[str, tuple[bool, str]]) -> tuple[ServicePlan, ...]:
    return tuple(_plan_service(blueprint, name, datastores, personal[name]) for name in sorted(blueprint.services))


def personal_data_flow(blueprint: Blueprint) -> dict[str, tuple[bool, str]]:
    """Service -> (handles personal data, why). Personal data flows up the call graph: a
    service that calls one handling it handles it too, unless it says `personal_data: false`
    with a reason (then it also stops the flow to its own callers)."""
    services = blueprint.services
    flow: dict[str, tuple[bool, str]] = {}
    for name in TopologicalSorter({name: services[name].calls for name in sorted(services)}).static_order():
        service = services[name]
        if service.personal_data:
            flow[name] = (True, "declared")
            continue
        if "personal_data" in service.model_fields_set and service.personal_data_reason:
            flow[name] = (False, f"declared false: {service.personal_data_reason}")
            continue
        carrier = next((callee for callee in service.calls if flow[callee][0]), None)
        if carrier is not None:
            flow[name] = (True, f"calls {carrier}, which handles personal data")
        else:
            flow[name] = (False, "declared false" if "personal_data" in service.model_fields_set else "default")
    return flow


def _resolved(amount, defaults: tuple[Cpu, Memory], field: str, notes: list[Defaulted]) -> Amount:
    cpu, memory = amount.cpu, amount.memory
    if cpu is None:
        cpu = defaults[0]
        notes.append(Defaulted(f"{field}.cpu", cpu.text, "msgen's default"))
    if memory is None:
        memory = defaults[1]
        notes.append(Defaulted(f"{field}.memory", memory.text, "msgen's default"))
    return Amount(cpu, memory)


def _plan_service(blueprint: Blueprint, name: str, datastores: dict[str, DatastorePlan], personal: tuple[bool, str]) -> ServicePlan:
    service = blueprint.services[name]
    notes: list[Defaulted] = []
    fields_set = service.model_fields_set
    if "replicas" not in fields_set:
        notes.append(Defaulted("replicas", str(service.replicas), "default 2: one replica can be lost"))
    if "latency" not in fields_set:
        notes.append(Defaulted("latency.p99", service.latency.p99.text, "assumed: no p99 declared"))
    if "health" not in fields_set and service.port is not None:
        notes.append(Defaulted("health.path", service.health.path, "msgen's default health path"))
    region = service_region(blueprint, name)
    if service.region is None and region is not None:
        notes.append(Defaulted("region", region, "the only region"))
    requests = _resolved(service.resources.requests, DEFAULT_REQUESTS, "resources.requests", notes)
    limits = _resolved(service.resources.limits, DEFAULT_LIMITS, "resources.limits", notes)
    env = {key: env_text(value) for key, value in service.env.items()}
    env.update(_wiring(blueprint, service, datastores))
    metrics = service.metrics
    return ServicePlan(
        name=name,
        service=service,
        image=service.image,
        port=service.port,
        replicas=service.replicas,
        region=region,
        route=service.route,
        requests=requests,
        limits=limits,
        health_path=service.health.path,
        health_command=tuple(service.health.command) if service.health.command else None,
        initial_delay=service.health.initial_delay,
        period=service.health.period,
        timeout=service.health.timeout,
        metrics_path=metrics.path if metrics else None,
        metrics_port=(metrics.port or service.port) if metrics else None,
        calls=tuple(service.calls),
        datastore=service.datastore,
        env=tuple(sorted(env.items())),
        secrets=tuple(sorted(service.secrets)),
        personal_data=personal[0],
        personal_data_from=personal[1],
        run_as_root=service.run_as_root,
        uid=None if service.run_as_root else (service.run_as_user or DEFAULT_UID),
        defaulted=tuple(notes),
    )


def _wiring(blueprint: Blueprint, service: Service, datastores: dict[str, DatastorePlan]) -> dict[str, str]:
    """The variables of the wiring contract (docs/blueprint.md); they win over user env of the same name."""
    wiring: dict[str, str] = {}
    if service.datastore is not None:
        store = datastores[service.datastore]
        wiring["DB_HOST"] = store.name
        wiring["DB_PORT"] = str(store.port)
        wiring["DB_PASSWORD_FILE"] = PASSWORD_FILE
        if store.db_name is not None:
            wiring["DB_NAME"] = store.db_name
            wiring["DB_USER"] = store.db_user or ""
    for callee in service.calls:
        target = blueprint.services[callee]
        wiring[f"{env_prefix(callee)}_URL"] = f"http://{callee}:{target.port}"
        wiring.update(client_contract(env_prefix(callee), service, target))
    return wiring


def client_contract(prefix: str, caller: Service, callee: Service) -> dict[str, str]:
    """How `caller` should call `callee`, for its own HTTP client: only what the blueprint sets
    (the caller's timeout, the callee's retry and circuit breaker), so that east-west calls
    follow the same bounds the gateway applies north-south."""
    contract: dict[str, str] = {}
    if caller.timeout is not None:
        contract[f"{prefix}_TIMEOUT_MS"] = str(caller.timeout.ms)
    if callee.retry is not None:
        contract[f"{prefix}_RETRY_ATTEMPTS"] = str(callee.retry.attempts)
        contract[f"{prefix}_RETRY_BACKOFF_MS"] = str(callee.retry.initial_interval.ms)
    breaker = callee.circuit_breaker
    if breaker is not None:
        if breaker.failure_ratio is not None:
            contract[f"{prefix}_BREAKER_FAILURE_RATIO"] = repr(float(breaker.failure_ratio))
        if breaker.min_requests is not None:
            contract[f"{prefix}_BREAKER_MIN_REQUESTS"] = str(breaker.min_requests)
        contract[f"{prefix}_BREAKER_OPEN_MS"] = str(breaker.open_for.ms)
    return contract


def owners_of(blueprint: Blueprint) -> dict[str, list[str]]:
    """Datastore name -> the services naming it, sorted."""
    owners: dict[str, list[str]] = {name: [] for name in blueprint.datastores}
    for name in sorted(blueprint.services):
        store = blueprint.services[name].datastore
        if store is not None:
            owners[store].append(name)
    return owners


def _storage_of(blueprint: Blueprint, datastore: Datastore, compose_host: Host | None) -> Host | None:
    """The host whose storage tunes a datastore (docs/tuning.md): its own, the compose host, else the slowest."""
    if datastore.host is not None:
        return next(host for host in blueprint.hosts if host.name == datastore.host)
    if compose_host is not None:
        return compose_host
    if blueprint.hosts:
        return min(blueprint.hosts, key=lambda host: (STORAGE_SPEED[host.storage], host.iops or 0, host.name))
    return None


def _app_connections(datastore: Datastore) -> tuple[int, str]:
    if datastore.max_connections:
        return datastore.max_connections, "the blueprint's max_connections"
    if datastore.engine == "redis":
        clients = min(REDIS_MAX_CLIENTS, datastore.memory.bytes // 16 // REDIS_CLIENT_BUFFER)
        return clients, f"a sixteenth of the {datastore.memory} limit at 64 KiB per client, at most {REDIS_MAX_CLIENTS}"
    return DEFAULT_MAX_CONNECTIONS[datastore.engine], f"the server's default, {DEFAULT_MAX_CONNECTIONS[datastore.engine]}"


def _statement_timeout(blueprint: Blueprint, datastore: Datastore, owner: str | None) -> tuple[int | None, str]:
    """The owner's request timeout bounds its statements: a query outliving the request only holds locks."""
    if datastore.engine == "redis":
        return None, ""
    timeout = blueprint.services[owner].timeout if owner else None
    if timeout is not None:
        return timeout.ms, f"the timeout {timeout} of {owner}, its owner: a statement outliving the request only holds locks"
    return DEFAULT_STATEMENT_TIMEOUT_MS, f"{DEFAULT_STATEMENT_TIMEOUT_MS // 1000}s: " + (
        f"{owner}, its owner, has no timeout" if owner else "it has no owner"
    )


def _reserved_connections(datastore: Datastore, scraped: bool, backup: BackupPlan | None) -> tuple[tuple[str, int], ...]:
    if datastore.engine == "redis":
        return ()
    reserved = [("exporter", EXPORTER_CONNECTIONS)] if scraped else []
    if backup is not None and datastore.engine in DUMP_CONNECTIONS:
        reserved.append(("backup", DUMP_CONNECTIONS[datastore.engine]))
    return tuple(reserved)


def _sharers(blueprint: Blueprint, hosts: dict[str, Host | None], compose_host: Host | None) -> dict[str, tuple[int, int]]:
    """Host name -> (datastores tuned for it, monitoring volumes on it): who shares its IOPS."""
    stores: dict[str, int] = {}
    for host in hosts.values():
        if host is not None:
            stores[host.name] = stores.get(host.name, 0) + 1
    observability = blueprint.observability
    volumes = 0
    if observability is not None and observability.prometheus is not None:
        volumes = 1 + int(observability.loki)
    return {name: (count, volumes if compose_host is not None and name == compose_host.name else 0) for name, count in stores.items()}


def plan_datastores(blueprint: Blueprint, compose_host: Host | None, personal: dict[str, tuple[bool, str]]) -> tuple[DatastorePlan, ...]:
    owners = owners_of(blueprint)
    hosts = {name: _storage_of(blueprint, blueprint.datastores[name], compose_host) for name in blueprint.datastores}
    sharers = _sharers(blueprint, hosts, compose_host)
    scraped = blueprint.observability is not None and blueprint.observability.prometheus is not None
    return tuple(
        _plan_datastore(blueprint, name, owners[name], hosts[name], sharers, scraped, any(personal[o][0] for o in owners[name]))
        for name in sorted(blueprint.datastores)
    )


def _plan_datastore(
    blueprint: Blueprint, name: str, owners: list[str], host: Host | None, sharers, scraped: bool, personal: bool
) -> DatastorePlan:
    datastore = blueprint.datastores[name]
    owner = owners[0] if owners else None
    region = datastore_region(blueprint, name, owner)
    engine = datastore.engine
    backup = plan_backup(name, datastore)
    connections, connections_why = _app_connections(datastore)
    statement_ms, statement_why = _statement_timeout(blueprint, datastore, owner)
    return DatastorePlan(
        name=name,
        datastore=datastore,
        engine=engine,
        version=datastore.version,
        line=release_line(engine, datastore.version) or datastore.version,
        owner=owner,
        memory=datastore.memory,
        cpu=datastore.cpu,
        storage=datastore.storage,
        host=host.name if host else None,
        storage_class=host.storage if host else "ssd",
        iops=host.iops if host else None,
        iops_sharers=sharers[host.name] if host else (1, 0),
        region=region,
        personal_data=personal,
        app_connections=connections,
        connections_why=connections_why,
        reserved_connections=_reserved_connections(datastore, scraped, backup),
        scraped=scraped,
        statement_timeout_ms=statement_ms,
        statement_timeout_why=statement_why,
        backup=backup,
        role=(datastore.role or "store") if engine == "redis" else None,
        port=images.port(engine),
        config_file=CONFIG_FILES[engine],
        db_name=db_identifier(owner or name) if engine != "redis" else None,
        db_user=db_identifier(owner or name) if engine != "redis" else None,
    )
