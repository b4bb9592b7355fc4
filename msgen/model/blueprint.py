"""The blueprint, format v1 (BLUEPRINT.md is the contract): frozen, strict, no unknown keys."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from msgen.model.types import CpuField, DurationField, EnvName, MemoryField, Name, VersionText
from msgen.units import Cpu, Duration, Memory


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class Region(Model):
    jurisdiction: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166 alpha-2 code")


class Host(Model):
    name: Name
    region: Name
    vcpu: int = Field(gt=0)
    memory: MemoryField
    storage: Literal["nvme", "ssd", "hdd"]
    iops: int | None = Field(default=None, gt=0)
    zone: str | None = Field(default=None, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class Policy(Model):
    latency_budget: DurationField = Duration(200, "200ms")
    personal_data_in: list[str] | None = None
    max_retry_amplification: int = Field(default=10, ge=1)

    @field_validator("personal_data_in")
    @classmethod
    def _codes(cls, codes: list[str] | None) -> list[str] | None:
        for code in codes or []:
            if code != "EEA" and not re.fullmatch(r"[A-Z]{2}", code):
                raise ValueError(f"{code!r} is neither an ISO 3166 alpha-2 code nor the group EEA")
        return codes


class SourceCriterion(Model):
    """Whom a rate limit counts separately: exactly one criterion (Traefik's sourceCriterion)."""

    ip_depth: int | None = Field(default=None, ge=0)
    request_header: str | None = None
    request_host: bool | None = None


class RateLimit(Model):
    average: int | None = Field(default=None, ge=0)
    burst: int | None = Field(default=None, ge=0)
    period: DurationField | None = None
    source: SourceCriterion | None = None


class GatewayResources(Model):
    cpu: CpuField = Cpu(1000, "1")
    memory: MemoryField = Memory(256 * 1024**2, "256Mi")


class Gateway(Model):
    domain: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", max_length=253)
    acme_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    http3: bool = False
    dashboard: bool = False
    provider: Literal["file", "docker"] = "file"
    rate_limit: RateLimit = RateLimit(average=100, burst=50, period=Duration(1000, "1s"))
    resources: GatewayResources = GatewayResources()


class Route(Model):
    path_prefix: str | None = Field(default=None, pattern=r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")
    host: str | None = Field(default=None, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    budget: DurationField | None = None

    @model_validator(mode="after")
    def _needs_a_match(self) -> Route:
        if self.path_prefix is None and self.host is None:
            raise ValueError("a route needs path_prefix, host, or both")
        return self


class Health(Model):
    path: str = Field(default="/health", pattern=r"^/\S*$")
    initial_delay: DurationField = Duration(5000, "5s")
    period: DurationField = Duration(10000, "10s")
    timeout: DurationField = Duration(3000, "3s")
    command: list[str] | None = Field(default=None, min_length=1)


class Metrics(Model):
    path: str = Field(default="/metrics", pattern=r"^/\S*$")
    port: int | None = Field(default=None, ge=1, le=65535)


class Amount(Model):
    cpu: CpuField
    memory: MemoryField


class PartialAmount(Model):
    cpu: CpuField | None = None
    memory: MemoryField | None = None


class Resources(Model):
    requests: PartialAmount = PartialAmount()
    limits: PartialAmount = PartialAmount()


class CircuitBreaker(Model):
    failure_ratio: float | None = Field(default=None, gt=0, le=1)
    min_requests: int | None = Field(default=None, ge=1)
    open_for: DurationField = Duration(10000, "10s")
    expression: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _ratio_or_expression(self) -> CircuitBreaker:
        if (self.failure_ratio is None) == (self.expression is None):
            raise ValueError("give either failure_ratio (with min_requests) or expression, not both and not neither")
        if self.expression is not None and self.min_requests is not None:
            raise ValueError("min_requests goes with failure_ratio, not with expression")
        return self


class Retry(Model):
    attempts: int = Field(ge=0)
    initial_interval: DurationField = Duration(100, "100ms")


class Latency(Model):
    p99: DurationField = Duration(10, "10ms")


class Service(Model):
    image: str = Field(min_length=1, pattern=r"^[^\s]+$")
    port: int = Field(ge=1, le=65535)
    replicas: int = Field(default=2, ge=1)
    region: Name | None = None
    route: Route | None = None
    health: Health = Health()
    metrics: Metrics | None = None
    resources: Resources = Resources()
    rate_limit: RateLimit | None = None
    circuit_breaker: CircuitBreaker | None = None
    retry: Retry | None = None
    timeout: DurationField | None = None
    latency: Latency = Latency()
    calls: list[Name] = []
    parallel_calls: bool = False
    datastore: Name | None = None
    personal_data: bool = False
    env: dict[EnvName, str | int | bool] = {}
    secrets: list[EnvName] = []
    run_as_root: bool = False

    @field_validator("calls", "secrets")
    @classmethod
    def _unique(cls, items: list[str]) -> list[str]:
        repeated = sorted({item for item in items if items.count(item) > 1})
        if repeated:
            raise ValueError(f"listed more than once: {', '.join(repeated)}")
        return items


class Datastore(Model):
    engine: Literal["mysql", "mariadb", "postgres", "redis"]
    version: VersionText
    memory: MemoryField = Memory(1024**3, "1Gi")
    cpu: CpuField = Cpu(1000, "1")
    storage: MemoryField = Memory(10 * 1024**3, "10Gi")
    max_connections: int | None = Field(default=None, ge=1, le=100_000)
    role: Literal["cache", "store"] | None = None
    host: Name | None = None

    @model_validator(mode="after")
    def _version_and_role(self) -> Datastore:
        from msgen.model.versions import check_engine_version

        check_engine_version(self.engine, self.version)
        if self.role is not None and self.engine != "redis":
            raise ValueError("role applies to redis only (cache or store)")
        return self


class Prometheus(Model):
    scrape_interval: DurationField = Duration(15000, "15s")
    scrape_timeout: DurationField | None = None
    retention: DurationField = Duration(15 * 86_400_000, "15d")
    operator: bool = False


class Observability(Model):
    prometheus: Prometheus | None = Prometheus()
    grafana: bool = False
    loki: bool = False
    alerts: bool = True


class Kubernetes(Model):
    namespace: Name | None = None
    version: VersionText
    anti_affinity: Literal["required", "preferred"] = "required"
    image_pull_secret: Name | None = None
    gateway_namespace: Name = "traefik"

    @field_validator("version")
    @classmethod
    def _supported(cls, version: str) -> str:
        from msgen.model.versions import KUBERNETES_VERSIONS

        if version not in KUBERNETES_VERSIONS:
            raise ValueError(f"Kubernetes {version!r} is not supported; use one of {KUBERNETES_VERSIONS[0]}..{KUBERNETES_VERSIONS[-1]}")
        return version


class Compose(Model):
    host: Name | None = None


class Suppression(Model):
    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    at: str = Field(min_length=1)
    reason: str = Field(min_length=1)


class Blueprint(Model):
    version: Literal[1]
    project: Name
    description: str | None = None
    regions: dict[Name, Region] = {}
    rtt_ms: dict[str, float] = {}
    hosts: list[Host] = []
    policy: Policy = Policy()
    gateway: Gateway | None = None
    services: dict[Name, Service] = Field(min_length=1)
    datastores: dict[Name, Datastore] = {}
    observability: Observability | None = None
    kubernetes: Kubernetes | None = None
    compose: Compose | None = None
    environments: dict[Name, dict] = {}
    suppress: list[Suppression] = []

    @field_validator("rtt_ms")
    @classmethod
    def _rtt_keys(cls, rtt: dict[str, float]) -> dict[str, float]:
        for pair, ms in rtt.items():
            if not re.fullmatch(r"[a-z][-a-z0-9]*/[a-z][-a-z0-9]*", pair):
                raise ValueError(f"{pair!r} is not a region pair; write 'region-a/region-b'")
            if ms <= 0:
                raise ValueError(f"{pair}: a round-trip time must be greater than 0")
        return rtt
