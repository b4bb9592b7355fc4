"""The blueprint, format v1 (a contract: fields are added, never renamed or dropped): frozen, strict, no unknown keys."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from msgen.contract import MSGEN_MOUNTS
from msgen.cron import Schedule
from msgen.model.types import (
    CpuField,
    CronField,
    DurationField,
    EnvName,
    LabelValue,
    MemoryField,
    MetadataKey,
    Name,
    ObjectName,
    PortName,
    PositiveDurationField,
    SizeField,
    TraefikText,
    VersionText,
)
from msgen.model.versions import KUBERNETES_VERSIONS, check_engine_version
from msgen.units import Cpu, Duration, Memory

# a key of this prefix is the blueprint author's, not msgen's: accepted and ignored wherever
# msgen's own keys are (as compose does), so that YAML anchors have a place to live
EXTENSION_PREFIX = "x-"


class Model(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", strict=True, json_schema_extra={"patternProperties": {f"^{EXTENSION_PREFIX}": {}}}
    )

    @model_validator(mode="before")
    @classmethod
    def _without_extensions(cls, data):
        if not isinstance(data, dict):
            return data
        return {key: value for key, value in data.items() if not (isinstance(key, str) and key.startswith(EXTENSION_PREFIX))}


# the classes of disk a host declares; the tuning and the Kubernetes volume claims read them
DiskClass = Literal["nvme", "ssd", "hdd"]


class Region(Model):
    """A place where hosts stand and services run, and the law that applies there."""

    jurisdiction: str = Field(
        pattern=r"^[A-Z]{2}$",
        description="The country whose law applies to data kept in this region: an ISO 3166 alpha-2 code in upper case "
        "(NO, DE, US). The residency checks compare it with policy.personal_data_in. Required.",
    )
    operator_jurisdiction: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{2}$",
        description="The country whose law binds the provider operating this region, when it differs from the "
        "region's own (a US-owned cloud's Frankfurt region: US). Personal data in a region whose operator's "
        "jurisdiction is outside policy.personal_data_in is the warning residency-operator. Optional.",
    )


class Host(Model):
    """A machine (a KVM instance): the compose host or a Kubernetes node."""

    name: Name = Field(
        description="The host's name, unique among the hosts: the Kubernetes node name, and what compose.host and a "
        "datastore's host refer to. Required."
    )
    region: Name = Field(description="The declared region the host stands in. Required.")
    vcpu: int = Field(
        gt=0,
        description="Virtual CPU cores, an integer greater than 0. Required. The capacity checks compare CPU reservations "
        "with it; a Kubernetes node keeps 100m of it for the kubelet and the container runtime.",
    )
    memory: MemoryField = Field(
        description="The host's memory. Required. The capacity checks keep 10% of it, at least 512Mi, for the operating "
        "system (and on a Kubernetes node another 100Mi for the kubelet's eviction threshold)."
    )
    storage: DiskClass = Field(
        description="The class of the host's disks. Required. The datastore tuning reads it: InnoDB's I/O capacity and "
        "neighbour flushing, PostgreSQL's random_page_cost and effective_io_concurrency."
    )
    disk: SizeField | None = Field(
        default=None,
        description="The disk space for volumes (data, backups, monitoring). Optional: when declared, the capacity "
        "checks add up what is placed on the host (the compose host, or the Kubernetes nodes together) against it.",
    )
    iops: int | None = Field(
        default=None,
        gt=0,
        description="Random I/O operations per second the disks sustain, an integer greater than 0. Optional; only nvme "
        "hosts use it (InnoDB's io capacity is half of it, at most 10000; without it, 4000).",
    )
    zone: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="The availability zone, a DNS label (lowercase letters, digits and '-'). Optional. When hosts declare "
        "zones, Kubernetes spreads each service's replicas over them.",
    )


class Policy(Model):
    """The rules the architecture is checked against."""

    latency_budget: PositiveDurationField = Field(
        default=Duration(200, "200ms"),
        description="The end-to-end p99 budget of a request entering through the gateway: the service's own p99 plus "
        "every call it waits for. Default 200ms. A route's budget overrides it; a routed service over its budget is "
        "the error finding latency-budget.",
    )
    personal_data_in: list[str] | None = Field(
        default=None,
        description="Where personal data may live: ISO 3166 alpha-2 codes in upper case, or EEA (the 27 EU member "
        "states plus IS, LI and NO). Default none: nothing is checked for residency.",
    )
    max_retry_amplification: int = Field(
        default=10,
        ge=1,
        description="The largest product of retry attempts allowed along a call path, the gateway's included; an "
        "integer >= 1. Default 10. A path above it is the error finding retry-amplification.",
    )

    @field_validator("personal_data_in")
    @classmethod
    def _codes(cls, codes: list[str] | None) -> list[str] | None:
        for code in codes or []:
            if code != "EEA" and not re.fullmatch(r"[A-Z]{2}", code):
                raise ValueError(f"{code!r} is neither an ISO 3166 alpha-2 code nor the group EEA")
        return codes


class SourceCriterion(Model):
    """Whom a rate limit counts separately: exactly one criterion (Traefik's sourceCriterion)."""

    ip_depth: int | None = Field(
        default=None,
        ge=0,
        description="Count clients by the address at this position from the right of X-Forwarded-For (Traefik's "
        "ipStrategy.depth); an integer >= 0. Optional.",
    )
    request_header: TraefikText | None = Field(
        default=None,
        description="Count clients by the value of this request header (Traefik's requestHeaderName), without '{{' or "
        "'}}' (Traefik reads its dynamic configuration file as a Go template). Optional.",
    )
    request_host: bool | None = Field(
        default=None,
        description="true: count clients by the requested host name (Traefik's requestHost). Optional.",
    )


class RateLimit(Model):
    """How many requests the gateway lets through; over the limit it answers 429 with Retry-After."""

    average: int | None = Field(
        default=None,
        ge=0,
        description="Requests allowed per period on average, an integer >= 0. Optional: unset, it comes from the "
        "gateway's rate limit, else 100. Below 1 is the error finding traefik-rate-limit (0 switches Traefik's limiter off).",
    )
    burst: int | None = Field(
        default=None,
        ge=0,
        description="Requests allowed at once above the average, an integer >= 0. Optional: unset, it comes from the "
        "gateway's rate limit, else 50. Below 1 is the error finding traefik-rate-limit (it would reject everything).",
    )
    period: PositiveDurationField | None = Field(
        default=None,
        description="The time average is counted over. Optional: unset, it comes from the gateway's rate limit, else 1s.",
    )
    source: SourceCriterion | None = Field(
        default=None,
        description="Whom to count separately, by exactly one criterion (more than one is the error finding "
        "traefik-source-criterion). Optional: unset, each client address is counted on its own.",
    )


class GatewayResources(Model):
    """The gateway container's CPU and memory: compose limits, and requests and limits in the Helm chart's values."""

    cpu: CpuField = Field(
        default=Cpu(1000, "1"),
        description="The gateway's CPU. Default 1 core: Traefik terminates TLS for every route.",
    )
    memory: MemoryField = Field(
        default=Memory(256 * 1024**2, "256Mi"),
        description="The gateway's memory. Default 256Mi.",
    )


class Gateway(Model):
    """The Traefik v3 gateway in front of the routed services."""

    domain: str = Field(
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        max_length=253,
        description="The public DNS name of the routes that give only a path_prefix (lowercase labels joined by dots, at "
        "most 253 characters). Required. The dashboard, when enabled, is at traefik.<domain>.",
    )
    acme_email: str | None = Field(
        default=None,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="The e-mail address of the Let's Encrypt account that issues the certificates: compose through "
        "Traefik's own ACME (TLS challenge), Kubernetes through a cert-manager ClusterIssuer (HTTP-01) and one "
        "Certificate a host. Default none: you provide the certificates; on Kubernetes as the TLS Secrets `msgen plan` "
        "names, one a host (Traefik serves its self-signed one until then).",
    )
    http3: bool = Field(
        default=False,
        description="HTTP/3 on the TLS entrypoint, publishing 443/udp. Default false.",
    )
    dashboard: bool = Field(
        default=False,
        description="Traefik's dashboard at traefik.<domain>, always behind basic auth whose users come from a secret "
        "file msgen never writes. Default false.",
    )
    provider: Literal["file", "docker"] = Field(
        default="file",
        description="Where Traefik reads the routes from. file (default): a generated file. docker (compose only): the "
        "containers' labels, with the docker socket mounted read-only into the gateway (warning compose-docker-socket).",
    )
    rate_limit: RateLimit = Field(
        default=RateLimit(average=100, burst=50, period=Duration(1000, "1s")),
        description="The rate limit of every routed service; a service's rate_limit overrides it field by field. "
        "Default {average: 100, burst: 50, period: 1s}.",
    )
    resources: GatewayResources = Field(
        default=GatewayResources(),
        description="The gateway container's CPU and memory. Default {cpu: 1, memory: 256Mi}.",
    )
    max_request_body: SizeField = Field(
        default=Memory(1024**2, "1Mi"),
        description="The largest request body a route with a retry accepts (Traefik holds the body in memory to replay "
        "it; a larger one is answered 413). Default 1Mi.",
    )
    clients_region: Name | None = Field(
        default=None,
        description="The declared region the platform's clients are in: the round trip from there to the gateway's "
        "region is the first leg of every route's latency (a route may name its own). Default none: the clients' leg "
        "is not counted, and msgen plan says so.",
    )


class Route(Model):
    """How the gateway reaches a service from outside: path_prefix, host, or both."""

    path_prefix: str | None = Field(
        default=None,
        pattern=r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$",
        description="Requests whose path starts with this go to the service (a URL path starting with /), on "
        "gateway.domain unless host is given. A route needs path_prefix, host, or both.",
    )
    host: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        description="The DNS name the route answers on instead of gateway.domain (lowercase labels joined by dots). "
        "A route needs path_prefix, host, or both.",
    )
    budget: PositiveDurationField | None = Field(
        default=None,
        description="The p99 budget of requests entering here. Optional: unset, policy.latency_budget applies.",
    )
    timeout: PositiveDurationField | None = Field(
        default=None,
        description="How long the gateway waits for the service to start answering, per try, and how long it keeps "
        "retrying (the client then gets 504). Optional: unset, the longest wait the service's own timeouts and its "
        "callees' retries allow, and at least 15s; without a timeout on every call below, 15s. Shorter than that "
        "wait, or than the route's p99 latency, is the warning timeout-route.",
    )

    clients_region: Name | None = Field(
        default=None,
        description="The declared region this route's clients are in, instead of gateway.clients_region. Optional.",
    )
    availability: float = Field(
        default=99.9,
        ge=95,
        le=99.999,
        allow_inf_nan=False,
        description="The route's availability objective in percent: the share of its requests the gateway answers "
        "without a 5xx over 30 days. The service's 5xx, the gateway's 502 and 504 and the circuit breaker's 503 count "
        "against it; a 429 from the rate limit counts neither way. 95 <= availability <= 99.999 (below 95 the fast "
        "burn rate would need most requests to fail). Default 99.9. It sets the error-budget alerts at the gateway: "
        "RouteErrorBudgetBurnFast (14.4 times the budget over 1h and 5m) and RouteErrorBudgetBurnSlow (6 times over "
        "6h and 30m).",
    )

    @model_validator(mode="after")
    def _needs_a_match(self) -> Route:
        if self.path_prefix is None and self.host is None:
            raise ValueError("a route needs path_prefix, host, or both")
        return self


class Health(Model):
    """The service's health check: compose's healthcheck, the gateway's health check and the Kubernetes probes."""

    path: TraefikText = Field(
        default="/health",
        pattern=r"^/\S*$",
        description="The HTTP path that answers 2xx while the service is healthy (starts with /, no spaces, no '{{' or "
        "'}}': the gateway's health check is written into Traefik's dynamic configuration, which Traefik reads as a Go "
        "template). Default /health.",
    )
    initial_delay: DurationField = Field(
        default=Duration(5000, "5s"),
        description="How long the service may take to start before a failed check counts (compose's start period, the "
        "Kubernetes startup probe's delay). Default 5s.",
    )
    period: PositiveDurationField = Field(
        default=Duration(10000, "10s"),
        description="The time between two checks. Default 10s.",
    )
    timeout: PositiveDurationField = Field(
        default=Duration(3000, "3s"),
        description="How long one check may take before it counts as failed. Default 3s.",
    )
    liveness_path: TraefikText | None = Field(
        default=None,
        pattern=r"^/\S*$",
        description="The HTTP path of the Kubernetes liveness probe, when it should differ from path (a check of the "
        "process alone, not its dependencies: a dependency's blip must not restart every replica). Default: path; "
        "liveness then tolerates twice as many failures as readiness.",
    )
    command: list[str] | None = Field(
        default=None,
        min_length=1,
        description="A command that replaces compose's HTTP healthcheck (for images without curl or wget), at least one "
        "string: a list starting with CMD, CMD-SHELL or NONE is compose's own form, one string is a shell command line, "
        "several strings are a command and its arguments. NONE disables the check (warning compose-no-healthcheck); a "
        "password or token written into it is the error finding env-credential. On a worker (no port) it is also the "
        "Kubernetes exec probes (startup, readiness, liveness). Default none: curl, else wget, on path (a worker: no check).",
    )


class Metrics(Model):
    """Where Prometheus scrapes the service's metrics."""

    path: str = Field(
        default="/metrics",
        pattern=r"^/\S*$",
        description="The HTTP path of the metrics in Prometheus' text format (starts with /, no spaces). Default /metrics.",
    )
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="The port the metrics are served on, 1..65535. Default: the service's port (a worker has none: "
        "its metrics need this, a load error without).",
    )


class Amount(Model):
    """A CPU and memory amount, both given."""

    cpu: CpuField = Field(description="CPU in cores (0.5, 2) or millicores (250m), greater than 0. Required.")
    memory: MemoryField = Field(description="Memory, e.g. 256Mi. Required.")


class PartialAmount(Model):
    """A CPU and memory amount in which each value may be left to msgen's default."""

    cpu: CpuField | None = Field(
        default=None,
        description="CPU in cores (0.5, 2) or millicores (250m), greater than 0. Optional: unset, 100m as a request and 500m as a limit.",
    )
    memory: MemoryField | None = Field(
        default=None,
        description="Memory, e.g. 256Mi. Optional: unset, 128Mi as a request and 256Mi as a limit.",
    )


class Resources(Model):
    """A service container's CPU and memory; each of the four values defaults on its own."""

    requests: PartialAmount = Field(
        default=PartialAmount(),
        description="What each replica is guaranteed: Kubernetes requests, compose reservations; the capacity checks "
        "add them up. Default {cpu: 100m, memory: 128Mi}.",
    )
    limits: PartialAmount = Field(
        default=PartialAmount(),
        description="The most each replica may use: Kubernetes and compose limits. Default {cpu: 500m, memory: 256Mi}. "
        "A request above its limit is an error finding.",
    )


class CircuitBreaker(Model):
    """The gateway's circuit breaker in front of a routed service: failure_ratio (with min_requests) or expression."""

    failure_ratio: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Open the breaker when failures / requests reach this share, 0 < ratio <= 1; a failure is a "
        "network error or a 5xx answer. Give either failure_ratio or expression.",
    )
    min_requests: int | None = Field(
        default=None,
        ge=1,
        description="With failure_ratio only: the requests needed before the ratio counts, an integer >= 1. Traefik "
        "has no request count, so the rendered breaker keeps the ratio and drops this (msgen plan says so). Optional.",
    )
    open_for: PositiveDurationField = Field(
        default=Duration(10000, "10s"),
        description="How long the open breaker answers 503 without calling the service (Traefik's fallbackDuration); "
        "traffic then ramps back over min(open_for, 10s). Default 10s.",
    )
    expression: TraefikText | None = Field(
        default=None,
        min_length=1,
        description="A breaker condition in Traefik's own language, e.g. NetworkErrorRatio() > 0.30, instead of "
        "failure_ratio; its grammar is checked (error finding traefik-breaker-expression), and '{{' or '}}' is a load "
        "error (Traefik reads its dynamic configuration file as a Go template).",
    )

    @model_validator(mode="after")
    def _ratio_or_expression(self) -> CircuitBreaker:
        if (self.failure_ratio is None) == (self.expression is None):
            raise ValueError("give either failure_ratio (with min_requests) or expression, not both and not neither")
        if self.expression is not None and self.min_requests is not None:
            raise ValueError("min_requests goes with failure_ratio, not with expression")
        return self


class Retry(Model):
    """How callers, the gateway included, retry a call to this service."""

    attempts: int = Field(
        ge=0,
        description="The number of tries of one call, the first included (2 = one retry), an integer >= 0; 0 counts as "
        "one try and gives a routed service no retry at the gateway (warning traefik-retry-attempts). Required.",
    )
    initial_interval: DurationField = Field(
        default=Duration(100, "100ms"),
        description="The wait before the first retry; later waits grow exponentially. Default 100ms.",
    )


class Egress(Model):
    """A dependency outside the platform that a service calls (a payment provider, a mail relay)."""

    host: str = Field(
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*|[0-9]{1,3}(\.[0-9]{1,3}){3}(/[0-9]{1,2})?)$",
        max_length=253,
        description="The DNS name (lowercase) or the IPv4 address or CIDR block it is reached at. Required. A "
        "NetworkPolicy cannot name a host: for a DNS name the Kubernetes rule opens the port to every public address "
        "(private ranges excepted); an address or block opens exactly that.",
    )
    port: int = Field(ge=1, le=65535, description="The TCP port, 1..65535. Required.")
    jurisdiction: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{2}$",
        description="The country whose law applies where the dependency keeps data (ISO 3166 alpha-2). Optional: a "
        "personal-data service's egress outside policy.personal_data_in, or of unknown jurisdiction under that "
        "policy, is the warning residency-transfer.",
    )

    @field_validator("host")
    @classmethod
    def _address(cls, host: str) -> str:
        if _looks_numeric(host):
            ipv4_block(host, "an IPv4 address or CIDR block")
        return host

    @property
    def block(self) -> str | None:
        """The address or CIDR block as a block (`1.2.3.4/32`); None for a DNS name."""
        return str(ipaddress.IPv4Network(self.host)) if _looks_numeric(self.host) else None


def _looks_numeric(host: str) -> bool:
    return host.replace(".", "").replace("/", "").isdigit()


def ipv4_block(text: str, what: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(text)
    except ValueError as error:
        raise ValueError(f"{text!r} is not {what} ({error})") from None


class Autoscale(Model):
    """A HorizontalPodAutoscaler on Kubernetes; compose runs `replicas`."""

    min_replicas: int | None = Field(
        default=None,
        ge=1,
        description="The fewest replicas the autoscaler keeps, an integer >= 1. Default: the service's replicas.",
    )
    max_replicas: int = Field(
        ge=1,
        description="The most replicas it may run, at least min_replicas. Required. The capacity and anti-affinity "
        "checks count this many.",
    )
    cpu_percent: int = Field(
        default=70,
        ge=1,
        le=1000,
        description="The average CPU use, as a percentage of the CPU request, the autoscaler keeps replicas at. Default 70.",
    )


class Latency(Model):
    """The service's own processing time, without the calls it makes."""

    p99: DurationField = Field(
        default=Duration(10, "10ms"),
        description="The service's own processing time at the 99th percentile, without its calls. Default 10ms, an "
        "assumption msgen plan shows as such: give the measured value.",
    )


# the label keys msgen sets on every Kubernetes object it renders, and the port names it gives
# containers: a service's own labels and ports may not take them
MSGEN_LABEL_KEYS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/component",
    "msgen.dev/scrape",
)
MSGEN_PORT_NAMES = ("http", "metrics")
# labels of this prefix configure Traefik's docker provider, which reads every container's labels
TRAEFIK_LABEL_PREFIX = "traefik."
COMPOSE_LABEL_PREFIX = "com.docker.compose."


class ExtraPort(Model):
    """A further port a service listens on, by name."""

    name: PortName = Field(
        description="The port's name, as Kubernetes names ports: at most 15 lowercase letters, digits and '-', with "
        "a letter (IANA_SVC_NAME). Required."
    )
    port: int = Field(ge=1, le=65535, description="The port number, 1..65535. Required.")
    protocol: Literal["tcp", "udp"] = Field(default="tcp", description="tcp or udp. Default tcp.")
# a path in a container or below the blueprint's folder: components of letters, digits and
# ._@+- (never `.` or `..`), so that it reads the same in a compose file, a Kubernetes
# ConfigMap key and a shell
_PATH_PART = r"[A-Za-z0-9._@+-]+"
MOUNT_PATH_PATTERN = rf"^(/{_PATH_PART})+$"
SOURCE_PATTERN = rf"^{_PATH_PART}(/{_PATH_PART})*$"
# the pod volumes msgen names itself in a service's pod: a service's volume may not take them
RESERVED_VOLUME_NAMES = ("tmp", "secrets", "config-files")


def _no_dot_parts(path: str) -> str:
    if any(part in (".", "..") for part in path.split("/")):
        raise ValueError(f"{path!r} has a '.' or '..' component; write the path without them")
    return path


def _mount_path(path: str) -> str:
    _no_dot_parts(path)
    for taken in MSGEN_MOUNTS:
        if path == taken or path.startswith(taken + "/"):
            raise ValueError(f"{path!r} is where msgen mounts {taken} in every service container; choose another path")
    return path


class ServiceVolume(Model):
    """A volume of the service's own (data, a cache, an upload folder), mounted into its container."""

    path: str = Field(
        pattern=MOUNT_PATH_PATTERN,
        max_length=1024,
        description="The absolute path it is mounted at in the container: components of letters, digits and ._@+- "
        "(no '.' or '..'), not /tmp or /run/secrets or below (msgen mounts those), unique among the service's volumes "
        "and files. Required.",
    )
    size: SizeField = Field(
        description="Its size, e.g. 10Gi. Required. Kubernetes: each replica's claim requests it (persistent) or the "
        "emptyDir's sizeLimit; compose: the tmpfs's size (not persistent), while a named volume is not limited by "
        "Docker. The capacity checks count persistent volumes against the hosts' disk: once per compose named volume, "
        "replicas x size for the Kubernetes claims.",
    )
    persistent: bool = Field(
        default=True,
        description="true (default): kept across restarts and upgrades. Kubernetes: the service runs as a StatefulSet "
        "with one volumeClaimTemplate per persistent volume, so each replica has its own claim (of "
        "kubernetes.storage_classes' StorageClass for the disk class of the service's hosts); compose: the named volume "
        "<service>-<name>, which every replica on the host shares (the warning compose-volume-shared); Docker gives a "
        "new named volume the owner of the image's folder at the path, root's when the image has no such folder, so "
        "create it in the image for the service's user (on Kubernetes the pod's fsGroup makes the claims its). false: scratch "
        "space that goes with the container: an emptyDir with this sizeLimit on Kubernetes, a tmpfs (in memory, counted "
        "against the memory limit) of this size in compose.",
    )

    @field_validator("path")
    @classmethod
    def _path(cls, path: str) -> str:
        return _mount_path(path)


class ConfigFile(Model):
    """A file of the blueprint's folder mounted read-only into the service's container."""

    source: str = Field(
        pattern=SOURCE_PATTERN,
        max_length=200,
        description="The file's path relative to the blueprint's folder: components of letters, digits and ._@+- "
        "separated by '/', no '.' or '..', not absolute. Required. It must be a regular file reached without a symbolic "
        "link anywhere along the path (a link is never followed: CI renders blueprints strangers wrote), and a "
        "service's files together hold at most 1 MiB (what one ConfigMap holds); otherwise a load error. msgen copies "
        "it into the output (compose/files/<service>/<source>, and the ConfigMap <service>-files), so the output "
        "depends only on the blueprint's folder, and render --check sees a changed file.",
    )
    path: str = Field(
        pattern=MOUNT_PATH_PATTERN,
        max_length=1024,
        description="The absolute path of the file in the container, read-only: components of letters, digits and "
        "._@+- (no '.' or '..'), not /tmp or /run/secrets or below, unique among the service's files and volumes. "
        "Required.",
    )

    @field_validator("source")
    @classmethod
    def _source(cls, source: str) -> str:
        return _no_dot_parts(source)

    @field_validator("path")
    @classmethod
    def _path(cls, path: str) -> str:
        return _mount_path(path)



class Service(Model):
    """One microservice: its container, how it is reached, what it calls and what it owns."""

    image: str = Field(
        min_length=1,
        pattern=r"^[^\s]+$",
        description="The container image with an explicit tag or an @sha256: digest, no spaces. Required. An untagged "
        "image or :latest is the error finding image-latest.",
    )
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="The HTTP port the service listens on, 1..65535. Default none: a worker (a queue consumer, say), "
        "which nothing calls: it has no route, no callers, no Kubernetes Service for this port and no HTTP health "
        "check (health.command gives it one; without it, the warnings compose-no-healthcheck and k8s-no-probe).",
    )
    command: list[str] | None = Field(
        default=None,
        min_length=1,
        description="The program the container runs instead of the image's ENTRYPOINT: the Kubernetes container's "
        "command, compose's entrypoint. Each string is passed as it is (a `$VAR` reaches the program unexpanded). "
        "Default none: the image's.",
    )
    args: list[str] | None = Field(
        default=None,
        min_length=1,
        description="The arguments instead of the image's CMD, at least one string: the Kubernetes container's args, "
        "compose's command. Each string is passed as it is (a `$VAR` reaches the program unexpanded). Default none: "
        "the image's.",
    )
    ports: list[ExtraPort] = Field(
        default=[],
        description="Further ports the service listens on besides port, each {name, port, protocol}. Kubernetes: "
        "container ports and ports of the service's Service (a worker with ports gets a Service for them), which its "
        "callers may reach; compose: `expose` (never published). Names and numbers are unique; a name is not msgen's "
        "own (http, metrics) and a number is neither port nor metrics.port. Default [].",
    )
    labels: dict[MetadataKey, LabelValue] = Field(
        default={},
        description="Labels of the service's own: Kubernetes labels on its Deployment, its pods and its Service (never "
        "in selectors), compose labels on its containers. Keys are Kubernetes label keys and values label values; "
        "keys starting with x- are labels like any other here. The keys msgen sets (app.kubernetes.io/name, part-of, "
        "managed-by, component, msgen.dev/scrape), traefik.* keys (they would reconfigure the gateway's docker "
        "provider) and com.docker.compose.* keys (compose's own) are load errors. Default {}.",
    )
    annotations: dict[MetadataKey, str] = Field(
        default={},
        description="Kubernetes only: annotations on the service's Deployment, its pods and its Service (compose has "
        "none). Keys are Kubernetes annotation keys; keys starting with x- are annotations like any other here. "
        "Default {}.",
    )
    replicas: int = Field(
        default=2,
        ge=1,
        description="How many instances run, an integer >= 1. Default 2: one can fail or be replaced while the other "
        "serves (a routed service with 1 is the warning ha-replicas).",
    )
    region: Name | None = Field(
        default=None,
        description="The declared region the service runs in. Default: the only region; required when several are declared.",
    )
    route: Route | None = Field(
        default=None,
        description="How the gateway reaches the service from outside. Default none: internal only.",
    )
    health: Health = Field(
        default=Health(),
        description="The health check. Default {path: /health, initial_delay: 5s, period: 10s, timeout: 3s}.",
    )
    metrics: Metrics | None = Field(
        default=None,
        description="Where Prometheus scrapes the service. Default none: not scraped (info finding "
        "observability-no-metrics; a routed service is still seen through the gateway's metrics).",
    )
    resources: Resources = Field(
        default=Resources(),
        description="CPU and memory of each replica. Default requests {cpu: 100m, memory: 128Mi}, limits {cpu: 500m, "
        "memory: 256Mi}, each value on its own.",
    )
    rate_limit: RateLimit | None = Field(
        default=None,
        description="The gateway's rate limit for this routed service; the fields left unset come from gateway.rate_limit. "
        "Default none: the gateway's.",
    )
    circuit_breaker: CircuitBreaker | None = Field(
        default=None,
        description="The gateway's circuit breaker in front of this routed service. Default none.",
    )
    retry: Retry | None = Field(
        default=None,
        description="How callers, the gateway included, retry calls to this service. Default none: one try.",
    )
    timeout: PositiveDurationField | None = Field(
        default=None,
        description="How long the service waits for each call it makes. Default none: no timeout is checked. Shorter "
        "than a callee's round trip plus cost is the warning timeout-short.",
    )
    latency: Latency = Field(
        default=Latency(),
        description="The service's own processing time. Default {p99: 10ms}.",
    )
    calls: list[Name] = Field(
        default=[],
        description="The services it calls synchronously, each named once. No self-calls and no cycles (load errors). Default [].",
    )
    parallel_calls: bool = Field(
        default=False,
        description="true: the calls are made at once and only the slowest counts for latency. Default false: one "
        "after another, their latencies summed.",
    )
    datastore: Name | None = Field(
        default=None,
        description="The one datastore the service owns (a database per service; two owners of one datastore is the "
        "error finding datastore-shared). Default none.",
    )
    queries_per_request: int = Field(
        default=1,
        ge=0,
        le=10_000,
        description="How many datastore round trips one request makes, one after another (0..10000): each costs the "
        "round trip between the service's region and its datastore's. Default 1.",
    )
    personal_data: bool = Field(
        default=False,
        description="The service handles personal data: its region and its datastore's must be in policy.personal_data_in. "
        "Default false, but a service that calls a personal-data service (directly or through others) handles it too, "
        "unless it says personal_data: false with a personal_data_reason.",
    )
    personal_data_reason: str | None = Field(
        default=None,
        min_length=1,
        description="Why a service that calls a personal-data service handles none itself (it passes only opaque ids, "
        "say); with personal_data: false it stops personal data flowing up to it, and msgen plan shows it. Optional.",
    )
    env: dict[EnvName, str | int | bool] = Field(
        default={},
        description="Plain environment variables: name -> string, integer or boolean; names are letters, digits and '_', "
        "not starting with a digit. Default {}. A variable whose name or value looks like a credential (a password, a "
        "token, a URL with a password) is the error finding env-credential: use secrets.",
    )
    secrets: list[EnvName] = Field(
        default=[],
        description="Names of secret files mounted at /run/secrets/<NAME>, each named once; the values never enter the "
        "blueprint or the output. Default [].",
    )
    run_as_root: bool = Field(
        default=False,
        description="Keep the container's root user and its capabilities. Default false (true is the warning run-as-root).",
    )
    run_as_user: int | None = Field(
        default=None,
        ge=1,
        le=2**31 - 1,
        description="The user and group id the container runs as in compose and Kubernetes, 1..2147483647 (not with "
        "run_as_root). Default 65532 (the usual non-root id of distroless images): the image's own USER is overridden "
        "so that an image that works in compose works on Kubernetes, where root is refused. The secret files must be "
        "readable by it.",
    )
    autoscale: Autoscale | None = Field(
        default=None,
        description="Kubernetes scales the service between min_replicas and max_replicas by CPU. Default none: "
        "replicas, fixed.",
    )
    egress: list[Egress] = Field(
        default=[],
        description="The dependencies outside the platform it calls. Default []: it reaches nothing outside (compose "
        "gives it no route out; Kubernetes allows only DNS and its calls).",
    )
    volumes: dict[Name, ServiceVolume] = Field(
        default={},
        description="Its own volumes: name -> volume. The names are DNS labels other than tmp, secrets and "
        "config-files (msgen's own). Default {}: nothing but /tmp is writable.",
    )
    files: list[ConfigFile] = Field(
        default=[],
        description="Config files from the blueprint's folder, each mounted read-only at its path (compose: a "
        "read-only bind mount of the copy under compose/files/<service>/; Kubernetes: a key of the ConfigMap "
        "<service>-files mounted by subPath, the pod template annotated with the files' checksum so that a changed "
        "file rolls the pods; client-side `kubectl apply` keeps a copy of the ConfigMap in an annotation of at most "
        "256 KiB, so apply larger files with --server-side). Default [].",
    )

    @model_validator(mode="after")
    def _one_user(self) -> Service:
        if self.run_as_root and self.run_as_user is not None:
            raise ValueError("give run_as_root or run_as_user, not both")
        return self

    @model_validator(mode="after")
    def _autoscale_range(self) -> Service:
        if self.autoscale is not None and self.autoscale.max_replicas < (self.autoscale.min_replicas or self.replicas):
            raise ValueError("autoscale.max_replicas is below min_replicas (default: replicas)")
        return self

    @field_validator("labels")
    @classmethod
    def _own_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for key in labels:
            if key in MSGEN_LABEL_KEYS:
                raise ValueError(f"the label {key} is msgen's own (it selects and describes the service's objects)")
            if key.lower().startswith(TRAEFIK_LABEL_PREFIX):
                raise ValueError(f"the label {key} would configure the gateway: Traefik's docker provider reads traefik.* labels")
            if key.startswith(COMPOSE_LABEL_PREFIX):
                raise ValueError(f"the label {key} is compose's own (it finds its containers, and the logs are named, by them)")
        return labels

    @field_validator("ports")
    @classmethod
    def _distinct_ports(cls, ports: list[ExtraPort]) -> list[ExtraPort]:
        names = [port.name for port in ports]
        taken = sorted({name for name in names if names.count(name) > 1 or name in MSGEN_PORT_NAMES})
        if taken:
            raise ValueError(f"port names must be unique and not msgen's own ({', '.join(MSGEN_PORT_NAMES)}): {', '.join(taken)}")
        numbers = [(port.port, port.protocol) for port in ports]
        repeated = sorted({f"{number}/{protocol}" for number, protocol in numbers if numbers.count((number, protocol)) > 1})
        if repeated:
            raise ValueError(f"a port number is listed more than once: {', '.join(repeated)}")
        return ports

    @field_validator("calls", "secrets")
    @classmethod
    def _unique(cls, items: list[str]) -> list[str]:
        repeated = sorted({item for item in items if items.count(item) > 1})
        if repeated:
            raise ValueError(f"listed more than once: {', '.join(repeated)}")
        return items

    @field_validator("volumes")
    @classmethod
    def _volume_names(cls, volumes: dict[str, ServiceVolume]) -> dict[str, ServiceVolume]:
        for name in volumes:
            if name in RESERVED_VOLUME_NAMES:
                raise ValueError(f"the volume name {name!r} is msgen's own in the service's pod; choose another name")
        return volumes


class Backup(Model):
    """Scheduled backups of a datastore and, for SQL engines, the log that recovers any point since."""

    enabled: bool | None = Field(
        default=None,
        description="Whether it is backed up. Default: on for mysql, mariadb, postgres and a redis store; off for a "
        "redis cache (it is rebuilt from its source).",
    )
    schedule: CronField = Field(
        default=Schedule.parse("0 3 * * *"),
        description="When a backup is taken, a cron schedule in UTC (Kubernetes CronJob syntax: five fields or "
        "@hourly, @daily, @weekly, @monthly, @yearly). Default '0 3 * * *', daily at 03:00.",
    )
    retention: PositiveDurationField = Field(
        default=Duration(7 * 86_400_000, "7d"),
        description="How long backups (and the logs that roll them forward) are kept. Default 7d.",
    )
    point_in_time: bool | None = Field(
        default=None,
        description="SQL engines only: keep the binary log (mysql, mariadb) or archive the WAL (postgres) on the "
        "backup location, so that any point since the oldest kept backup can be restored. Default on for SQL engines.",
    )
    size: SizeField | None = Field(
        default=None,
        description="The size of the backup volume (compose) or of each backup claim (Kubernetes). Default: the "
        "datastore's storage.",
    )
    path: str | None = Field(
        default=None,
        pattern=r"^/[A-Za-z0-9._/-]*$",
        description="Compose only: an absolute directory on the compose host (a mounted NAS, say) bind-mounted instead "
        "of the named volume <datastore>-backup. Kubernetes always uses claims. Default: the named volume.",
    )

    @field_validator("path")
    @classmethod
    def _plain_path(cls, path: str | None) -> str | None:
        if path is not None and (".." in path.split("/") or path.rstrip("/") == ""):
            raise ValueError("a backup path is an absolute directory without '..', not /")
        return path


class Datastore(Model):
    """A database or cache owned by one service, tuned from its limits and its host's storage."""

    engine: Literal["mysql", "mariadb", "postgres", "redis"] = Field(description="The server. Required.")
    version: VersionText = Field(
        description='The release line as a quoted string: mysql "8.0" or "8.4", mariadb "10.11" or "11.4", postgres '
        '"14" to "17", redis "7"; a patch version such as "8.0.40" pins the image. Required.'
    )
    memory: MemoryField = Field(
        default=Memory(1024**3, "1Gi"),
        description="The container's memory limit; every tuned size is computed from it. Default 1Gi.",
    )
    cpu: CpuField = Field(
        default=Cpu(1000, "1"),
        description="The container's CPU limit; it bounds MySQL's buffer pool instances and gives PostgreSQL parallel "
        "workers from 4 cores on. Default 1 core.",
    )
    storage: MemoryField = Field(
        default=Memory(10 * 1024**3, "10Gi"),
        description="The size of the data volume. Default 10Gi.",
    )
    max_connections: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="The connection limit, 1..100000. Default: the server's own, 151 for MySQL and MariaDB, 100 for "
        "PostgreSQL, 10000 for Redis. MySQL's and MariaDB's per-connection buffers are sized to fit it.",
    )
    role: Literal["cache", "store"] | None = Field(
        default=None,
        description="Redis only. cache: may evict (maxmemory 85% of memory, allkeys-lru, no persistence); store: keeps "
        "its data (maxmemory 50% of memory, noeviction, append-only file and snapshots). Default store.",
    )
    backup: Backup = Field(
        default=Backup(),
        description="Scheduled backups, their retention and location, and point-in-time recovery. Default: on for SQL "
        "engines and a redis store, daily at 03:00 UTC, kept 7 days.",
    )
    host: Name | None = Field(
        default=None,
        description="The declared host it runs on: its storage class tunes the engine and its region is the datastore's "
        "region. Default none: tuned for the compose host, else the slowest host, else ssd; the region is the owner's.",
    )

    @model_validator(mode="after")
    def _version_and_role(self) -> Datastore:
        check_engine_version(self.engine, self.version)
        if self.role is not None and self.engine != "redis":
            raise ValueError("role applies to redis only (cache or store)")
        if self.engine == "redis" and self.backup.point_in_time:
            raise ValueError("backup.point_in_time applies to SQL engines: redis keeps no log to roll a backup forward")
        return self


class Prometheus(Model):
    """The Prometheus server that scrapes the platform and evaluates its alerts."""

    scrape_interval: PositiveDurationField = Field(
        default=Duration(15000, "15s"),
        description="How often every target is scraped; also how often the rules are evaluated. Default 15s.",
    )
    scrape_timeout: PositiveDurationField | None = Field(
        default=None,
        description="How long one scrape may take, at most scrape_interval (longer is the error finding "
        "prometheus-timeout). Default: Prometheus' 10s, lowered to the interval when that is shorter.",
    )
    retention: PositiveDurationField = Field(
        default=Duration(15 * 86_400_000, "15d"),
        description="How long Prometheus, and Loki when enabled, keep their data. Default 15d.",
    )
    operator: bool = Field(
        default=False,
        description="On Kubernetes: PodMonitors and a PrometheusRule for the Prometheus Operator instead of ConfigMaps. Default false.",
    )


class WebhookReceiver(Model):
    """An HTTP endpoint that gets each notification as Alertmanager's JSON payload (POST)."""

    url: Annotated[str, Field(pattern=r"^https?://[^\s/]+(/\S*)?$")] = Field(
        description="Where Alertmanager POSTs the notifications, http:// or https://. It is written into the "
        "configuration as it is: keep tokens out of it and use credentials_secret. Required.",
    )
    credentials_secret: Name | None = Field(
        default=None,
        description="The name of a secret file (secrets/alertmanager/<NAME>, mounted at /run/secrets/<NAME>) whose "
        "content is sent as `Authorization: Bearer <content>`. Default none: no Authorization header.",
    )


class EmailReceiver(Model):
    """Mail through an SMTP relay."""

    to: Annotated[str, Field(min_length=3, pattern=r"@")] = Field(description="The address notifications go to. Required.")
    from_: Annotated[str, Field(min_length=3, pattern=r"@")] = Field(
        alias="from", description="The sender address (the From header and the SMTP envelope). Required."
    )
    smarthost: Annotated[str, Field(pattern=r"^[^\s:]+:[0-9]{1,5}$")] = Field(
        description="The SMTP relay as host:port, e.g. smtp.example.com:587. Required.",
    )
    username: str | None = Field(default=None, description="The SMTP login; needs password_secret. Default none: no login.")
    password_secret: Name | None = Field(
        default=None,
        description="The name of the secret file (secrets/alertmanager/<NAME>, mounted at /run/secrets/<NAME>) that "
        "holds the SMTP password. Required with username, not allowed without it.",
    )
    require_tls: bool = Field(default=True, description="Refuse a relay that does not offer STARTTLS. Default true.")

    @model_validator(mode="after")
    def _login(self) -> EmailReceiver:
        if (self.username is None) != (self.password_secret is None):
            raise ValueError("username and password_secret go together: set both for a login, or neither")
        return self


class SlackReceiver(Model):
    """A Slack channel through an incoming webhook."""

    channel: Annotated[str, Field(min_length=1)] = Field(description="The channel, e.g. '#alerts'. Required.")
    api_url_secret: Name = Field(
        description="The name of the secret file (secrets/alertmanager/<NAME>, mounted at /run/secrets/<NAME>) that "
        "holds the incoming webhook's URL (the URL is the credential). Required.",
    )


class Receiver(Model):
    """Where a notification goes: one or more of webhook, email and slack."""

    webhook: WebhookReceiver | None = Field(default=None, description="An HTTP endpoint. Optional.")
    email: EmailReceiver | None = Field(default=None, description="Mail through an SMTP relay. Optional.")
    slack: SlackReceiver | None = Field(default=None, description="A Slack channel. Optional.")

    @model_validator(mode="after")
    def _some(self) -> Receiver:
        if self.webhook is None and self.email is None and self.slack is None:
            raise ValueError("a receiver needs at least one of webhook, email, slack")
        return self


class AlertRoute(Model):
    """Which receiver gets an alert, by the severity label msgen's rules carry."""

    receiver: Name = Field(description="The receiver of every alert no severity entry claims. Required.")
    critical: Name | None = Field(default=None, description="The receiver of severity critical alerts. Default: receiver.")
    warning: Name | None = Field(default=None, description="The receiver of severity warning alerts. Default: receiver.")
    repeat_interval: PositiveDurationField = Field(
        default=Duration(4 * 3_600_000, "4h"),
        description="How long before a notification that is still firing is sent again. Default 4h (Alertmanager's).",
    )


class Alertmanager(Model):
    """Alertmanager (0.25): receives the alerts from Prometheus and notifies people."""

    receivers: dict[Name, Receiver] = Field(min_length=1, description="Name -> receiver, at least one. Required.")
    route: AlertRoute = Field(description="Which receiver gets which alerts. Required.")


class Observability(Model):
    """Monitoring: Prometheus, Grafana, Loki and the alert rules."""

    prometheus: Prometheus | None = Field(
        default=Prometheus(),
        description="The Prometheus server; null turns it off. Default {scrape_interval: 15s, retention: 15d}.",
    )
    grafana: bool = Field(
        default=False,
        description="Grafana with provisioned data sources and dashboards (the admin password from a secret file). Default false.",
    )
    loki: bool = Field(default=False, description="Loki for logs, with Alloy shipping the containers' logs. Default false.")
    alerts: bool = Field(default=True, description="Alert rules for targets, routes, datastores and memory. Default true.")
    alertmanager: Alertmanager | None = Field(
        default=None,
        description="Alertmanager, with Prometheus sending it the alerts (needs prometheus and alerts). Default none: "
        "alerts show in Prometheus and Grafana and notify no one.",
    )



class PatchTarget(Model):
    """The Kubernetes objects a patch applies to: every rendered object of this kind and name."""

    kind: str = Field(
        pattern=r"^[A-Z][A-Za-z0-9]*$",
        description="The object's kind as rendered, e.g. Deployment, StatefulSet, Service, NetworkPolicy. Required.",
    )
    name: str = Field(min_length=1, description="The object's metadata.name. Required.")
    namespace: str | None = Field(
        default=None,
        min_length=1,
        description="The object's namespace, when objects of one kind and name live in several. Default: any.",
    )


class JsonPatchOperation(Model):
    """One RFC 6902 operation."""

    op: Literal["add", "remove", "replace", "move", "copy", "test"] = Field(description="The operation. Required.")
    path: str = Field(
        pattern=r"^(/.*)?$",
        description="A JSON pointer (RFC 6901) into the object, e.g. /spec/template/spec/priorityClassName; ~1 stands "
        "for / and ~0 for ~ inside a key, - for the end of an array. Required.",
    )
    value: object = Field(default=None, description="The value of add, replace and test (required with them).")
    from_: str | None = Field(
        default=None,
        alias="from",
        pattern=r"^(/.*)?$",
        description="The JSON pointer move and copy take the value from (required with them).",
    )

    @model_validator(mode="after")
    def _operands(self) -> JsonPatchOperation:
        if self.op in ("add", "replace", "test") and "value" not in self.model_fields_set:
            raise ValueError(f"{self.op} needs a value")
        if self.op in ("move", "copy") and self.from_ is None:
            raise ValueError(f"{self.op} needs from")
        return self

    def as_operation(self) -> dict:
        """The operation as RFC 6902 writes it."""
        operation: dict = {"op": self.op, "path": self.path}
        if "value" in self.model_fields_set:
            operation["value"] = self.value
        if self.from_ is not None:
            operation["from"] = self.from_
        return operation


class KubernetesPatch(Model):
    """A change to rendered Kubernetes objects that the blueprint has no field for."""

    target: PatchTarget = Field(description="The objects to patch, by kind and name. Required.")
    json_patch: list[JsonPatchOperation] | None = Field(
        default=None,
        min_length=1,
        description="RFC 6902 operations applied in order (as kubectl patch --type json). Give this or merge_patch.",
    )
    merge_patch: dict[str, object] | None = Field(
        default=None,
        description="An RFC 7386 merge patch (as kubectl patch --type merge): mappings merge, null removes a key, lists "
        "and other values replace. Give this or json_patch.",
    )
    reason: str | None = Field(default=None, min_length=1, description="Why the patch is needed. Optional.")

    @model_validator(mode="after")
    def _one_kind(self) -> KubernetesPatch:
        if (self.json_patch is None) == (self.merge_patch is None):
            raise ValueError("give json_patch or merge_patch (one of them)")
        return self


class Kubernetes(Model):
    """The Kubernetes target: the hosts are the cluster's nodes."""

    namespace: Name | None = Field(
        default=None,
        description="The namespace of the services and datastores. Default: the project's name.",
    )
    version: VersionText = Field(
        description='The cluster\'s Kubernetes minor version as a quoted string, "1.25" to "1.37"; the objects are '
        "checked against that version's schema. Required."
    )
    anti_affinity: Literal["required", "preferred"] | None = Field(
        default=None,
        description="required: never two replicas of one service on one node (a replica beyond the node count stays "
        "Pending: the warning anti-affinity); preferred: spread them when possible. Default: required for a service "
        "whose replicas fit its nodes (losing a node loses at most one replica), preferred for one with more replicas "
        "than nodes.",
    )
    image_pull_secret: Name | None = Field(
        default=None,
        description="The Secret the pods pull their images with. Default none.",
    )
    storage_classes: dict[DiskClass, ObjectName] = Field(
        default={},
        description="The cluster's StorageClass for each class of disk: nvme, ssd or hdd -> a StorageClass name. A "
        "datastore's volume claim gets the StorageClass of the class its engine is tuned for (its host's storage; "
        "datastores.host says what a datastore without a host is tuned for). A class without an entry gets no "
        "storageClassName: the cluster's default StorageClass provisions the volume, whatever its disks (msgen plan "
        "shows each datastore's). A service's persistent volumes get the StorageClass of its nodes' disk class when "
        "they all have the same one. A Redis cache has no claim. Default {}: the cluster's default for every datastore.",
    )
    gateway_namespace: Name = Field(
        default="traefik",
        description="The namespace Traefik runs in (installed from its Helm chart). Default traefik.",
    )
    monitoring_namespace: Name = Field(
        default="monitoring",
        description="The namespace the cluster's Grafana and Grafana Alloy run in. With observability.grafana the "
        "dashboards go there as ConfigMaps labelled grafana_dashboard: \"1\" (for Grafana's dashboard sidecar, which "
        "reads its own namespace unless told otherwise), and with observability.loki the ConfigMap <project>-alloy with "
        "the Alloy configuration that ships the pod logs of `namespace` to Loki. Default monitoring.",
    )
    ingress: Literal["host_ports", "load_balancer"] = Field(
        default="host_ports",
        description="How traffic from outside reaches Traefik. host_ports (default): a DaemonSet, one Traefik on every "
        "node, listening on the node's ports 80 and 443 (and 443/udp with gateway.http3), with a ClusterIP Service: for "
        "nodes without a cloud load balancer (bare KVM), where a LoadBalancer Service stays pending; point DNS at the "
        "nodes, and keep the gateway namespace's Pod Security at privileged (host ports). The client's address reaches "
        "Traefik as it is. load_balancer: a Deployment of 2 replicas spread over the nodes, behind a LoadBalancer Service "
        "with externalTrafficPolicy Local: the load balancer sends traffic only to nodes that run Traefik and the "
        "client's address is kept (with Cluster a node would forward it under its own address, and the rate limit would "
        "count every client behind that node as one).",
    )
    patches: list[KubernetesPatch] = Field(
        default=[],
        description="Changes to the rendered objects for what the blueprint does not model, applied in order after msgen "
        "builds them and before its checks and the writer: the findings and render --check see the patched objects. A "
        "patch whose target matches no object, or an operation that cannot apply, is a load error. Default [].",
    )

    @field_validator("version")
    @classmethod
    def _supported(cls, version: str) -> str:
        if version not in KUBERNETES_VERSIONS:
            raise ValueError(f"Kubernetes {version!r} is not supported; use one of {KUBERNETES_VERSIONS[0]}..{KUBERNETES_VERSIONS[-1]}")
        return version


class Compose(Model):
    """The single-host docker-compose target."""

    host: Name | None = Field(
        default=None,
        description="The declared host that runs the stack; its memory and vCPUs bound the capacity checks. Default: the "
        "first host; required when several hosts are declared.",
    )
    subnet_pool: str = Field(
        default="10.201.0.0/16",
        description="The IPv4 block the stack's networks take their subnets from (one small subnet each, at least /29; "
        "Docker's own pools hold about 30 networks). Default 10.201.0.0/16; choose one that overlaps no network the host "
        "reaches (LAN, VPN). Too small for the networks is the error finding compose-subnet-pool.",
    )
    overrides: dict[str, dict[str, object]] = Field(
        default={},
        description="Per container of the compose file (a service, or one of msgen's own: gateway, <datastore>, "
        "<datastore>-exporter, prometheus, ...): attributes merged over what msgen writes by compose's rules for "
        "override files (mappings merge, lists append, command, entrypoint and healthcheck.test replace, ports, "
        "volumes, secrets and configs replace the entry with the same target; a null changes nothing, as in compose). "
        "Applied before msgen's checks and the "
        "writer: the findings and render --check see the result. '$' is written as '$$': values reach the container "
        "as written. A name that is not a container of the file is a load error. Default {}.",
    )

    @field_validator("subnet_pool")
    @classmethod
    def _pool(cls, pool: str) -> str:
        network = ipv4_block(pool, "an IPv4 CIDR block such as 10.201.0.0/16")
        if network.prefixlen > 29:
            raise ValueError(f"{pool!r} is smaller than one /29 subnet")
        return pool


class Suppression(Model):
    """Silences one finding at one place."""

    id: str = Field(
        pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$",
        description="The id of the finding to silence (lowercase words joined by '-'), e.g. run-as-root. Required.",
    )
    at: str = Field(
        min_length=1,
        description="The finding's key path as validate prints it, e.g. services.payment.image. Required.",
    )
    reason: str = Field(
        min_length=1,
        description="Why the finding does not apply here; validate shows it. Required.",
    )


class ImageOverride(Model):
    """How one of msgen's own images is pulled instead of msgen's pin."""

    tag: Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")] | None = Field(
        default=None,
        description="The tag to pull instead of msgen's (for a datastore engine: instead of the datastore's version). "
        "A tag `latest` is the error finding image-latest. Default: msgen's tag.",
    )
    digest: Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")] | None = Field(
        default=None,
        description="A content digest, sha256:<64 lowercase hex>: the image is pulled as `name@sha256:...` (with a tag "
        "too, `name:tag@sha256:...`; the digest is what is verified). Default none.",
    )
    image: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._/:-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?(@sha256:[0-9a-f]{64})?$")] | None = Field(
        default=None,
        description="A full image reference (registry/name:tag or registry/name@sha256:...) used as written: "
        "images.registry does not apply to it (a datastore engine's reference without a tag or digest takes the "
        "datastore's version as its tag). Not together with tag or digest. Default none.",
    )

    @model_validator(mode="after")
    def _one_way(self) -> ImageOverride:
        if self.image is not None and (self.tag is not None or self.digest is not None):
            raise ValueError("give either image, or tag and/or digest, not both")
        if self.image is None and self.tag is None and self.digest is None:
            raise ValueError("an override needs a tag, a digest or an image")
        return self


class Images(Model):
    """Where msgen's own images (gateway, datastore engines, exporters, monitoring, backups) are pulled from."""

    registry: Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9][a-z0-9._-]*)*$")] | None = (
        Field(
            default=None,
            description="A registry mirror prefix such as registry.internal.example/mirror that replaces the registry "
            "part of every image msgen chooses, the way pull-through mirrors (a Harbor proxy cache, a Docker Hub "
            "mirror) lay images out: a Docker Hub official image traefik:v3.7.15 becomes "
            "<registry>/library/traefik:v3.7.15, prom/prometheus becomes <registry>/prom/prometheus, and an image of "
            "another registry keeps its path without its host (quay.io/prometheuscommunity/postgres-exporter becomes "
            "<registry>/prometheuscommunity/postgres-exporter). Services' own images are not changed. Default none: "
            "the upstream registries.",
        )
    )
    overrides: dict[str, ImageOverride] = Field(
        default={},
        description="msgen's image key -> its tag, digest or full reference. The keys: traefik, prometheus, grafana, "
        "loki, alloy, alertmanager, node-exporter, cadvisor, mysqld-exporter, postgres-exporter, redis-exporter and "
        "the datastore engines mysql, mariadb, postgres, redis (an engine's override also applies to its backups). "
        "An unknown key is a load error. Default {}.",
    )


# the top-level key naming the oldest msgen a blueprint works with, and the form of a version
MIN_VERSION_KEY = "min_msgen_version"
VERSION_PATTERN = r"^[0-9]+(\.[0-9]+){0,2}$"


def version_tuple(text: str) -> tuple[int, ...]:
    """`0.2` -> (0, 2, 0): versions compare part by part, a missing part counting as 0."""
    parts = [int(part) for part in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


class Blueprint(Model):
    """The whole platform in one file."""

    version: Literal[1] = Field(description="The blueprint format's version; only 1. Required.")
    min_msgen_version: str | None = Field(
        default=None,
        pattern=VERSION_PATTERN,
        description="The oldest msgen release this blueprint works with, e.g. \"0.2\" (quoted: a version is a "
        "string). An older msgen refuses the blueprint with a message naming both versions, before it reports the "
        "newer fields it does not know. Default none.",
    )
    project: Name = Field(
        description="The platform's name: the compose project name, the app.kubernetes.io/part-of label and the default "
        "Kubernetes namespace. Required."
    )
    description: str | None = Field(default=None, description="Free text about the platform. Optional.")
    regions: dict[Name, Region] = Field(
        default={},
        description="Where things run: region name -> its jurisdiction. Default {}.",
    )
    rtt_ms: dict[str, Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(
        default={},
        description="Round-trip times in milliseconds between two declared regions, keyed 'region-a/region-b' (the same "
        "as 'region-b/region-a': declare each pair once), each a finite number greater than 0. A call within one region "
        "counts 2 ms unless 'region-a/region-a' declares its own; a call between regions whose pair is not declared is "
        "a load error. Default {}.",
    )
    hosts: list[Host] = Field(
        default=[],
        description="The machines: the compose host and the Kubernetes nodes. Default []: capacity is not checked.",
    )
    policy: Policy = Field(
        default=Policy(),
        description="The architecture rules: latency budget, residency, retry amplification. Default: the policy's defaults.",
    )
    gateway: Gateway | None = Field(
        default=None,
        description="The Traefik gateway. Default none; required when a service has a route.",
    )
    services: dict[Name, Service] = Field(
        min_length=1,
        description="The microservices: name -> service, at least one. Required.",
    )
    datastores: dict[Name, Datastore] = Field(
        default={},
        description="Databases and caches: name -> datastore, each owned by one service. Default {}.",
    )
    observability: Observability | None = Field(
        default=None,
        description="Monitoring. Default none: no monitoring output.",
    )
    kubernetes: Kubernetes | None = Field(
        default=None,
        description="The Kubernetes target. Default none: no Kubernetes output.",
    )
    compose: Compose | None = Field(
        default=None,
        description="The docker-compose target. Default none: no compose output.",
    )
    images: Images = Field(
        default=Images(),
        description="Where msgen's own images are pulled from: a registry mirror and per-image tags or digests. "
        "Default: msgen's pinned upstream images.",
    )
    environments: dict[Name, dict] = Field(
        default={},
        description="Overlays for --env NAME: name -> a partial blueprint merged over this one (maps key by key; lists "
        "and scalars replace). An overlay may not set version or environments, nor name a service or datastore the base "
        "lacks; every overlay is validated on every run. Default {}.",
    )
    suppress: list[Suppression] = Field(
        default=[],
        description="Findings silenced at one place each; an entry that matches no finding is the info finding "
        "suppress-unused. Default [].",
    )

    @field_validator("rtt_ms")
    @classmethod
    def _rtt_keys(cls, rtt: dict[str, float]) -> dict[str, float]:
        for pair in rtt:
            if not re.fullmatch(r"[a-z][-a-z0-9]*/[a-z][-a-z0-9]*", pair):
                raise ValueError(f"{pair!r} is not a region pair; write 'region-a/region-b'")
        return rtt
