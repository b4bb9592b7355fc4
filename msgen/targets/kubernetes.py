"""The Kubernetes target: everything under `kubernetes/`, listed in `kubernetes/kustomization.yaml`.

Objects are plain dicts built from the plan (msgen/plan/kubernetes.py decides placement,
rollout, probes and wiring) and formatted by one template. One file per workload holds all
of its objects; the gateway's CRDs and the observability objects come from the traefik and
observability targets' `kubernetes_artifacts` and are listed here too.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from msgen import images
from msgen.contract import ADMIN_PASSWORD_SECRET, EXPORTER_PASSWORD_SECRET, PASSWORD_SECRET, POD_TEMPLATE_KINDS, SECRETS_DIR
from msgen.jinja import render_template
from msgen.model.blueprint import Egress
from msgen.plan import backup as backups
from msgen.plan import kubernetes as k8s
from msgen.plan.mounts import MountsPlan
from msgen.plan.observability import DEFAULT_SIZES, plan_exporter
from msgen.plan.services import DatastorePlan, ServicePlan
from msgen.plan.tuning import PG_HBA_FILE
from msgen.targets import Artifact, alerting, observability, templated, traefik
from msgen.targets.datastores import BACKUP_SCRIPT, PG_HBA, RESTORE_SCRIPT, SCRIPTS_MOUNT, USERS_SCRIPT, config_files
from msgen.units import format_bytes, format_millicores
from msgen.yamlout import dump

NAME = "kubernetes"
PATHS = ("kubernetes/",)  # where this target writes (a folder ends in /)
ROOT = "kubernetes"
KUSTOMIZATION = f"{ROOT}/kustomization.yaml"
NAMESPACE_FILE = f"{ROOT}/namespace.yaml"
DEFAULT_DENY_FILE = f"{ROOT}/default-deny.yaml"
ACME_SOLVER_FILE = f"{ROOT}/acme-solver.yaml"
SERVICES_DIR = f"{ROOT}/services"
DATASTORES_DIR = f"{ROOT}/datastores"
HTTP_PORT = "http"
METRICS_PORT = "metrics"
TMP_VOLUME = "tmp"
SECRETS_VOLUME = "secrets"
FILES_VOLUME = "config-files"  # a service's config files (the model keeps these three names from its volumes)
# files under /run/secrets are read by whatever non-root uid the image runs as
SECRET_FILE_MODE = 0o444
DB_PASSWORD_KEY = PASSWORD_SECRET
# the datastores target's initdb/ scripts, flattened into the ConfigMap under their base names
POSTGRES_SCRIPT = "10-app-user.sh"
USERS_SCRIPT_NAME = USERS_SCRIPT.rsplit("/", 1)[-1]


def applies(plan) -> bool:
    return plan.kubernetes is not None


def render(plan) -> list[Artifact]:
    """Every manifest, the gateway and observability objects, and the kustomization listing them."""
    artifacts = [_artifact(plan, path, build) for path, build in manifests(plan).items()]
    artifacts.extend(foreign_artifacts(plan))
    artifacts.append(_kustomization(plan, artifacts))
    return sorted(artifacts, key=lambda artifact: artifact.path)


def to_yaml(document: dict) -> str:
    """One object as block YAML, keys in the order built here (msgen's one emitter)."""
    return dump(document)


def _artifact(plan, path: str, build: Callable[[], tuple]) -> Artifact:
    def text(documents: tuple) -> str:
        return render_template("kubernetes/manifests.yaml.j2", project=plan.project, documents=[to_yaml(d) for d in documents])

    return Artifact(path, NAME, text, build)


def foreign_artifacts(plan) -> list[Artifact]:
    """Kubernetes files other targets contribute: the gateway's CRDs and Helm values, observability."""
    return [*traefik.kubernetes_artifacts(plan), *observability.kubernetes_artifacts(plan)]


def is_manifest(path: str) -> bool:
    """Whether the file at `path` holds Kubernetes objects (the Helm values file and the kustomization do not)."""
    return path.startswith(f"{ROOT}/") and path.endswith((".yaml", ".yml")) and path not in (traefik.HELM_VALUES, KUSTOMIZATION)


@dataclass(frozen=True)
class RenderedObject:
    """One object of a manifest, with the file it is in and the blueprint element behind it."""

    path: str  # the file under kubernetes/
    index: int  # its position among the file's documents
    document: dict
    at: tuple  # the blueprint key path that produced it

    def where(self) -> str:
        """`kubernetes/services/payment.yaml: Deployment/payment`, for messages (tolerates broken objects)."""
        metadata = self.document.get("metadata") if isinstance(self.document.get("metadata"), dict) else {}
        return f"{self.path}: {self.document.get('kind', '?')}/{metadata.get('name', '?')}"


def origin(path: str) -> tuple:
    """The blueprint element behind a file: `kubernetes/services/payment.yaml` -> services.payment."""
    parts = path.split("/")
    if len(parts) == 3 and parts[1] in ("services", "datastores"):
        return (parts[1], parts[2].rsplit(".", 1)[0])
    if len(parts) > 2 and parts[1] in ("gateway", "observability"):
        return (parts[1],)
    return ("kubernetes",)


def pod_template(document: dict) -> dict | None:
    """The pod template of a workload object (None for other kinds)."""
    if document.get("kind") not in POD_TEMPLATE_KINDS:
        return None
    spec = document.get("spec") or {}
    if document.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return spec.get("template") or {}


def objects_of(path: str, documents: tuple) -> list[RenderedObject]:
    """The objects of one manifest file."""
    at = origin(path)
    return [RenderedObject(path, index, document, at) for index, document in enumerate(documents)]


def _kustomization(plan, artifacts: list[Artifact]) -> Artifact:
    resources = sorted(artifact.path.removeprefix(f"{ROOT}/") for artifact in artifacts if is_manifest(artifact.path))
    document = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": resources}
    context = {
        "project": plan.project,
        "gateway_namespace": plan.kubernetes.gateway_namespace,
        "secrets_hint": secrets_hint(plan),
    }
    return templated(KUSTOMIZATION, NAME, "kubernetes/kustomization.yaml.j2", context, "document", lambda: document)


def secrets_hint(plan) -> str:
    """The Secrets the manifests read and msgen never writes, with the keys of the datastores'
    (`credential_keys`); the TLS ones only without cert-manager."""
    hint = "<service>-secrets"
    if plan.datastores:
        sql = [key for key in (ADMIN_PASSWORD_KEY, EXPORTER_PASSWORD_KEY) if any(key in credential_keys(store) for store in plan.datastores)]
        hint += f", <datastore>-credentials (key {PASSWORD_KEY}" + (f"; SQL engines also {' and '.join(sql)}" if sql else "") + ")"
    alerting_plan = plan.observability.alerting if plan.observability is not None else None
    if alerting_plan is not None and alerting_plan.secrets:
        hint += f", {alerting.SECRET_NAME} (keys {', '.join(alerting_plan.secrets)})"
    edge = plan.kubernetes.edge
    if edge is not None and not edge.cert_manager:
        hint += ", the TLS Secret each IngressRoute names"
    return hint


def manifests(plan) -> dict[str, Callable[[], tuple]]:
    """Relative path -> the function that builds the objects of that file, in apply order within the file."""
    files: dict[str, Callable[[], tuple]] = {
        NAMESPACE_FILE: lambda: (namespace_object(plan),),
        DEFAULT_DENY_FILE: lambda: (default_deny(plan),),
    }
    edge = plan.kubernetes.edge
    if edge is not None and edge.cert_manager:
        files[ACME_SOLVER_FILE] = lambda: (acme_solver_policy(plan),)
    for service in plan.services:
        files[f"{SERVICES_DIR}/{service.name}.yaml"] = lambda service=service: tuple(service_objects(plan, service))
    for store in plan.datastores:
        files[f"{DATASTORES_DIR}/{store.name}.yaml"] = lambda store=store: tuple(datastore_objects(plan, store))
    if plan.observability is not None and plan.observability.alerting is not None:
        files[ALERTMANAGER_FILE] = lambda: alertmanager_objects(plan)
    return files


# --- shared pieces ---------------------------------------------------------------------


def metadata(plan, name: str, labels: dict[str, str] | None = None) -> dict:
    kube = plan.kubernetes
    return {"name": name, "namespace": kube.namespace, "labels": dict(labels or k8s.recommended_labels(name, plan.project, "platform"))}


def quantity(cpu=None, memory=None) -> dict:
    amount = {}
    if cpu is not None:
        amount["cpu"] = format_millicores(cpu.millicores)
    if memory is not None:
        amount["memory"] = format_bytes(memory.bytes)
    return amount


def pod_security(run_as_root: bool = False, fs_group: int | None = None, user: int | None = None) -> dict:
    context: dict = {"runAsNonRoot": not run_as_root, "seccompProfile": {"type": "RuntimeDefault"}}
    if user is not None:
        context.update(runAsUser=user, runAsGroup=user)
    if fs_group is not None:
        # chown the volume once, not on every start
        context.update(fsGroup=fs_group, fsGroupChangePolicy="OnRootMismatch")
    return context


def container_security(run_as_root: bool = False) -> dict:
    """Locked down; `run_as_root` relaxes only the user and the capabilities (its warning says so)."""
    context: dict = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": not run_as_root,
        "capabilities": {"drop": ["ALL"]},
    }
    if run_as_root:
        context["capabilities"] = {}
    return context


def anti_affinity(workload: k8s.WorkloadPlan) -> dict:
    term = {"labelSelector": {"matchLabels": dict(workload.selector)}, "topologyKey": k8s.HOSTNAME_KEY}
    if workload.anti_affinity == "required":
        return {"requiredDuringSchedulingIgnoredDuringExecution": [term]}
    return {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": term}]}


def node_affinity(workload: k8s.WorkloadPlan) -> dict | None:
    """The nodes a workload may run on: its region's, when the hosts span several; a datastore's
    declared host, the one node whose disks its engine is tuned for (node name = host name)."""
    expressions = []
    if workload.region is not None:
        expressions.append({"key": k8s.REGION_KEY, "operator": "In", "values": [workload.region]})
    if workload.node is not None:
        expressions.append({"key": k8s.HOSTNAME_KEY, "operator": "In", "values": [workload.node]})
    if not expressions:
        return None
    return {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": expressions}]}}


def affinity(workload: k8s.WorkloadPlan) -> dict:
    result: dict = {}
    nodes = node_affinity(workload)
    if nodes is not None:
        result["nodeAffinity"] = nodes
    if workload.anti_affinity != "none":
        result["podAntiAffinity"] = anti_affinity(workload)
    return result


def spread(workload: k8s.WorkloadPlan, has_match_label_keys: bool, revision_label: str = "pod-template-hash") -> list[dict]:
    if not workload.spread_zones:
        return []
    # ScheduleAnyway: zones with fewer nodes than others must not leave replicas Pending
    return [
        {
            "maxSkew": 1,
            "topologyKey": k8s.ZONE_KEY,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": dict(workload.selector)},
            # only the pods of the current rollout count (a Deployment labels them with the hash, a
            # StatefulSet with its revision)
            **({"matchLabelKeys": [revision_label]} if workload.component == "service" and has_match_label_keys else {}),
        }
    ]


def scheduling(plan, workload: k8s.WorkloadPlan, revision_label: str = "pod-template-hash") -> dict:
    spec: dict = {}
    placement = affinity(workload)
    if placement:
        spec["affinity"] = placement
    constraints = spread(workload, plan.kubernetes.has("matchLabelKeys"), revision_label)
    if constraints:
        spec["topologySpreadConstraints"] = constraints
    if plan.kubernetes.image_pull_secret:
        spec["imagePullSecrets"] = [{"name": plan.kubernetes.image_pull_secret}]
    return spec


def service_account(plan, workload: k8s.WorkloadPlan) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(plan, workload.name, workload.selector),
        "automountServiceAccountToken": False,
    }


def disruption_budget(plan, workload: k8s.WorkloadPlan) -> dict:
    # maxUnavailable 1 always allows one eviction, so a drain never blocks, even at 1 replica
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(plan, workload.name, workload.selector),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": dict(workload.selector)},
            **({"unhealthyPodEvictionPolicy": "AlwaysAllow"} if plan.kubernetes.has("unhealthyPodEvictionPolicy") else {}),
        },
    }


def cluster_service(plan, workload: k8s.WorkloadPlan, port: int, target: str, headless: bool = False) -> dict:
    spec: dict = {"selector": dict(workload.selector), "ports": [{"name": target, "port": port, "targetPort": target, "protocol": "TCP"}]}
    if headless:
        spec = {"clusterIP": "None", **spec}
    else:
        spec = {"type": "ClusterIP", **spec}
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata(plan, workload.name, workload.selector), "spec": spec}


# --- namespace and network ---------------------------------------------------------------


def namespace_object(plan) -> dict:
    """The namespace, with Pod Security Admission enforcing what msgen renders anyway."""
    kube = plan.kubernetes
    level = "baseline" if any(service.run_as_root for service in plan.services) else "restricted"
    labels = k8s.recommended_labels(kube.namespace, plan.project, "platform")
    # pinned to the cluster's version, so an upgrade never tightens the policy under running pods
    version = f"v{kube.version}"
    for mode, mode_level in (("enforce", level), ("audit", "restricted"), ("warn", "restricted")):
        labels[f"pod-security.kubernetes.io/{mode}"] = mode_level
        labels[f"pod-security.kubernetes.io/{mode}-version"] = version
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": kube.namespace, "labels": labels}}


def default_deny(plan) -> dict:
    """No pod of the namespace accepts a connection that no other policy allows."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(plan, "default-deny-ingress"),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }


def acme_solver_policy(plan) -> dict:
    """cert-manager's HTTP-01 solver pods answer Let's Encrypt through Traefik: the default deny
    would keep the challenge from them, and no certificate would ever be issued."""
    ingress = {"from": [gateway_peer(plan.kubernetes)], "ports": [_port(k8s.ACME_SOLVER_PORT)]}
    spec = {"podSelector": {"matchLabels": dict(k8s.ACME_SOLVER_POD)}, "policyTypes": ["Ingress"], "ingress": [ingress]}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": metadata(plan, "acme-http01-solver"), "spec": spec}


def gateway_peer(kube: k8s.KubernetesPlan) -> dict:
    """Traefik's pods, in the namespace it is installed in."""
    return {
        "namespaceSelector": {"matchLabels": {k8s.NAMESPACE_KEY: kube.gateway_namespace}},
        "podSelector": {"matchLabels": dict(k8s.TRAEFIK_POD)},
    }


def _peer_of(workload: k8s.WorkloadPlan) -> dict:
    return {"podSelector": {"matchLabels": dict(workload.selector)}}


def _port(port: int | str, protocol: str = "TCP") -> dict:
    return {"protocol": protocol, "port": port}


def dns_egress() -> dict:
    peer = {
        "namespaceSelector": {"matchLabels": {k8s.NAMESPACE_KEY: k8s.DNS_NAMESPACE}},
        "podSelector": {"matchLabels": dict(k8s.DNS_POD)},
    }
    return {"to": [peer], "ports": [_port(53, "UDP"), _port(53, "TCP")]}


# a NetworkPolicy cannot name a host: egress to a DNS name opens its port to every public
# address, never to private, shared or link-local ones (the cluster, the cloud's metadata service)
NOT_PUBLIC = ("10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16")


def egress_rule(dependency: Egress) -> dict:
    """The egress of one declared external dependency: its address or block, else every public address."""
    block = {"cidr": dependency.block} if dependency.block is not None else {"cidr": "0.0.0.0/0", "except": list(NOT_PUBLIC)}
    return {"to": [{"ipBlock": block}], "ports": [_port(dependency.port)]}


def prometheus_ingress() -> dict:
    peer = {"namespaceSelector": {}, "podSelector": {"matchLabels": dict(k8s.PROMETHEUS_POD)}}
    return {"from": [peer], "ports": [_port(METRICS_PORT)]}


def service_policy(plan, service: ServicePlan) -> dict:
    """Who may reach this service (gateway, callers, Prometheus) and what it may reach."""
    kube = plan.kubernetes
    workload = kube.services[service.name]
    ingress = []
    if plan.gateway is not None and plan.gateway.route(service.name) is not None:
        ingress.append({"from": [gateway_peer(kube)], "ports": [_port(HTTP_PORT)]})
    callers = kube.callers[service.name]
    if callers:
        ingress.append({"from": [_peer_of(kube.services[name]) for name in callers], "ports": [_port(HTTP_PORT)]})
    if callers and service.service.ports:
        ingress.append({"from": [_peer_of(kube.services[name]) for name in callers], "ports": own_ports(service)})
    if service.metrics_port is not None:
        ingress.append(prometheus_ingress())
    egress = [dns_egress()]
    if service.calls:
        egress.append({"to": [_peer_of(kube.services[name]) for name in service.calls], "ports": [_port(HTTP_PORT)]})
    for callee in (plan.service(name) for name in service.calls):
        if callee.service.ports:
            egress.append({"to": [_peer_of(kube.services[callee.name])], "ports": own_ports(callee)})
    if service.datastore is not None:
        store = plan.datastore(service.datastore)
        egress.append({"to": [_peer_of(kube.datastores[store.name])], "ports": [_port(store.port)]})
    egress.extend(egress_rule(dependency) for dependency in service.service.egress)
    spec = {
        "podSelector": {"matchLabels": dict(workload.selector)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": ingress,
        "egress": egress,
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(plan, service.name, workload.selector),
        "spec": spec,
    }


def own_ports(service: ServicePlan) -> list[dict]:
    """The service's own ports in a policy rule, by number and protocol as declared."""
    return [_port(port.port, port.protocol.upper()) for port in service.service.ports]


def datastore_policy(plan, store: DatastorePlan) -> dict:
    """Only the owner and the datastore's backup pods reach the datastore; Prometheus reaches its
    exporter (when scraped); it reaches DNS only."""
    kube = plan.kubernetes
    workload = kube.datastores[store.name]
    ingress = []
    if store.owner is not None:
        ingress.append({"from": [_peer_of(kube.services[store.owner])], "ports": [_port(store.port)]})
    job = kube.backups.get(store.name)
    if job is not None:
        ingress.append({"from": [{"podSelector": {"matchLabels": dict(job.labels)}}], "ports": [_port(store.port)]})
    if store.scraped:
        ingress.append(prometheus_ingress())
    spec = {
        "podSelector": {"matchLabels": dict(workload.selector)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": ingress,
        "egress": [dns_egress()],
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(plan, store.name, workload.selector),
        "spec": spec,
    }


# --- services ----------------------------------------------------------------------------


def _http_probe(path: str, probe: k8s.ProbePlan, failures: int, initial_delay: int = 0) -> dict:
    result = {"httpGet": {"path": path, "port": HTTP_PORT}}
    if initial_delay:
        result["initialDelaySeconds"] = initial_delay
    result.update(periodSeconds=probe.period_s, timeoutSeconds=probe.timeout_s, failureThreshold=failures)
    return result


def secret_sources(service: ServicePlan) -> list[dict]:
    """The wiring contract's files: the service's own secrets and its datastore's password."""
    sources = []
    if service.secrets:
        items = [{"key": name, "path": name} for name in service.secrets]
        sources.append({"secret": {"name": f"{service.name}-secrets", "items": items}})
    if service.datastore is not None:
        sources.append({"secret": {"name": credentials_secret(service.datastore), "items": credential_items(PASSWORD_KEY)}})
    return sources


def credentials_secret(datastore: str) -> str:
    """The Secret a person creates for a datastore (`credential_keys` says which keys)."""
    return f"{datastore}-credentials"


# the keys of a datastore's credentials Secret, and the file each becomes under /run/secrets
# (the names the images, the exporters and the datastore scripts read)
PASSWORD_KEY, ADMIN_PASSWORD_KEY, EXPORTER_PASSWORD_KEY = "password", "admin-password", "exporter-password"
CREDENTIAL_FILES = {
    PASSWORD_KEY: DB_PASSWORD_KEY,
    ADMIN_PASSWORD_KEY: ADMIN_PASSWORD_SECRET,
    EXPORTER_PASSWORD_KEY: EXPORTER_PASSWORD_SECRET,
}


def has_exporter_user(store: DatastorePlan) -> bool:
    """SQL engines that Prometheus scrapes give their exporter a login of its own (as in compose)."""
    return store.scraped and store.is_sql


def credential_keys(store: DatastorePlan) -> list[str]:
    """Every key the datastore's Secret must hold: the application's password; for SQL engines
    the superuser's; for SQL engines that are scraped the exporter's."""
    keys = [PASSWORD_KEY]
    if store.is_sql:
        keys.append(ADMIN_PASSWORD_KEY)
    if has_exporter_user(store):
        keys.append(EXPORTER_PASSWORD_KEY)
    return keys


def credential_items(*keys: str) -> list[dict]:
    """Secret items: each key as the file the contract names."""
    return [{"key": key, "path": CREDENTIAL_FILES[key]} for key in keys]


def env_vars(pairs) -> list[dict]:
    """EnvVar entries whose values arrive as written: Kubernetes expands `$(NAME)` in a value
    and turns `$$` into `$`, so every `$` is doubled (compose gets the same literal)."""
    return [{"name": key, "value": value.replace("$", "$$")} for key, value in pairs]


def container_ports(service: ServicePlan) -> list[dict]:
    """msgen's named ports (http unless a worker, metrics when scraped), then the service's own."""
    ports = [] if service.port is None else [{"name": HTTP_PORT, "containerPort": service.port, "protocol": "TCP"}]
    if service.metrics_port is not None:
        ports.append({"name": METRICS_PORT, "containerPort": service.metrics_port, "protocol": "TCP"})
    ports.extend({"name": port.name, "containerPort": port.port, "protocol": port.protocol.upper()} for port in service.service.ports)
    return ports


def exec_command(health_command: tuple[str, ...] | None) -> list[str] | None:
    """health.command as an exec probe's command (compose's forms unwrapped; one string is a
    shell command line); None without a command or with NONE."""
    if health_command is None or health_command[0] == "NONE":
        return None
    if health_command[0] == "CMD":
        return list(health_command[1:])
    if health_command[0] == "CMD-SHELL":
        return ["sh", "-c", " ".join(health_command[1:])]
    if len(health_command) == 1:
        return ["sh", "-c", health_command[0]]
    return list(health_command)


def _exec_probe(command: list[str], probe: k8s.ProbePlan, failures: int, initial_delay: int = 0) -> dict:
    result: dict = {"exec": {"command": command}}
    if initial_delay:
        result["initialDelaySeconds"] = initial_delay
    result.update(periodSeconds=probe.period_s, timeoutSeconds=probe.timeout_s, failureThreshold=failures)
    return result


def service_probes(service: ServicePlan, probe: k8s.ProbePlan) -> dict:
    """HTTP probes on the service's port; a worker's from its health.command (exec), else none."""
    if service.port is not None:
        return {
            "startupProbe": _http_probe(service.health_path, probe, probe.startup_failures, probe.initial_delay_s),
            "readinessProbe": _http_probe(service.health_path, probe, k8s.READINESS_FAILURES),
            "livenessProbe": _http_probe(service.service.health.liveness_path or service.health_path, probe, k8s.LIVENESS_FAILURES),
        }
    command = exec_command(service.health_command)
    if command is None:
        return {}
    return {
        "startupProbe": _exec_probe(command, probe, probe.startup_failures, probe.initial_delay_s),
        "readinessProbe": _exec_probe(command, probe, k8s.READINESS_FAILURES),
        "livenessProbe": _exec_probe(command, probe, k8s.LIVENESS_FAILURES),
    }


def process_fields(service: ServicePlan) -> dict:
    """The container's command and args: Kubernetes expands `$(NAME)` in them and turns `$$`
    into `$`, so every `$` is doubled and the strings arrive as written."""
    own = service.service
    fields = {}
    if own.command is not None:
        fields["command"] = [part.replace("$", "$$") for part in own.command]
    if own.args is not None:
        fields["args"] = [part.replace("$", "$$") for part in own.args]
    return fields


def service_container(plan, service: ServicePlan) -> dict:
    probe = plan.kubernetes.probes[service.name]
    ports = container_ports(service)
    mounts = [{"name": TMP_VOLUME, "mountPath": "/tmp"}]
    if secret_sources(service):
        mounts.append({"name": SECRETS_VOLUME, "mountPath": SECRETS_DIR, "readOnly": True})
    container = {
        "name": service.name,
        "image": service.image,
        **process_fields(service),
        "ports": ports,
        "env": env_vars(plan.kubernetes.env[service.name]),
        "resources": {
            "requests": quantity(service.requests.cpu, service.requests.memory),
            "limits": quantity(service.limits.cpu, service.limits.memory),
        },
        **service_probes(service, probe),
        "securityContext": container_security(service.run_as_root),
        "volumeMounts": mounts,
    }
    if plan.kubernetes.has("preStop") and ports:
        # the sleep lets endpoints drop the pod before SIGTERM; a pod without ports has none
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": k8s.PRESTOP_SLEEP_S}}}
    if not container["env"]:
        del container["env"]
    if not container["ports"]:
        del container["ports"]
    return container


def service_volumes(service: ServicePlan) -> list[dict]:
    volumes = [{"name": TMP_VOLUME, "emptyDir": {}}]
    sources = secret_sources(service)
    if sources:
        volumes.append({"name": SECRETS_VOLUME, "projected": {"defaultMode": SECRET_FILE_MODE, "sources": sources}})
    return volumes


def grace_seconds(plan, name: str) -> int:
    """The workload's grace period (the same as compose's stop_grace_period), in whole seconds."""
    return plan.grace[name].period.whole_seconds


def service_pod_spec(plan, service: ServicePlan, revision_label: str = "pod-template-hash") -> dict:
    workload = plan.kubernetes.services[service.name]
    mounts = plan.mounts[service.name]
    # a claim's volume belongs to root: the group the pod runs as gets it (as the datastores' do)
    fs_group = service.uid if mounts.persistent else None
    pod_spec = {
        "serviceAccountName": service.name,
        "automountServiceAccountToken": False,
        "securityContext": pod_security(service.run_as_root, fs_group=fs_group, user=service.uid),
        "terminationGracePeriodSeconds": grace_seconds(plan, service.name),
        **scheduling(plan, workload, revision_label),
        "containers": [service_container(plan, service)],
        "volumes": service_volumes(service),
    }
    pod_spec["containers"][0]["volumeMounts"].extend(own_mounts(mounts))
    pod_spec["volumes"].extend(own_volumes(mounts))
    return pod_spec


def service_pod_metadata(plan, service: ServicePlan) -> dict:
    """The pod template's labels, and the config files' checksum when it has files."""
    pod: dict = {"labels": dict(plan.kubernetes.services[service.name].pod_labels)}
    mounts = plan.mounts[service.name]
    if mounts.files:
        pod["annotations"] = {CONFIG_CHECKSUM: mounts.checksum}
    return with_own_metadata(pod, service)


def own_mounts(mounts: MountsPlan) -> list[dict]:
    """The service's own volumes at their paths, and each config file by subPath, read-only."""
    result = [{"name": volume.name, "mountPath": volume.path} for volume in mounts.volumes]
    result += [{"name": FILES_VOLUME, "mountPath": file.path, "subPath": file.key, "readOnly": True} for file in mounts.files]
    return result


def own_volumes(mounts: MountsPlan) -> list[dict]:
    """Pod volumes of the service's own: scratch space (an emptyDir of its size) and the config
    files' ConfigMap; a persistent volume is the StatefulSet's claim template of the same name."""
    result = [
        {"name": volume.name, "emptyDir": {"sizeLimit": format_bytes(volume.size.bytes)}} for volume in mounts.volumes if not volume.persistent
    ]
    if mounts.files:
        result.append({"name": FILES_VOLUME, "configMap": {"name": mounts.config_map, "defaultMode": SECRET_FILE_MODE}})
    return result


def files_config_maps(plan, service: ServicePlan) -> list[dict]:
    """The ConfigMap of the service's config files (none without files): UTF-8 text as `data`,
    anything else as `binaryData`."""
    mounts = plan.mounts[service.name]
    if not mounts.files:
        return []
    text = {file.key: file.text for file in mounts.files if file.text is not None}
    binary = {file.key: base64.b64encode(file.data).decode("ascii") for file in mounts.files if file.text is None}
    workload = plan.kubernetes.services[service.name]
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(plan, mounts.config_map, workload.selector)}
    if text:
        config["data"] = text
    if binary:
        config["binaryData"] = binary
    return [config]


def service_workload(plan, service: ServicePlan) -> dict:
    """A Deployment; a StatefulSet for a service with a persistent volume, so that each replica has its own claim."""
    return statefulset_of(plan, service) if plan.kubernetes.is_stateful(service.name) else deployment(plan, service)


def statefulset_of(plan, service: ServicePlan) -> dict:
    workload = plan.kubernetes.services[service.name]
    storage = plan.kubernetes.service_volumes[service.name]
    claims = [
        {"metadata": {"name": volume.name, "labels": dict(workload.selector)}, "spec": _claim_spec(volume.size, storage.storage_class)}
        for volume in plan.mounts[service.name].persistent
    ]
    template = {"metadata": service_pod_metadata(plan, service), "spec": service_pod_spec(plan, service, "controller-revision-hash")}
    spec = {
        # the service's Service; a name without a Service is allowed too (it only governs the pods' own DNS names)
        "serviceName": service.name,
        **({"replicas": workload.replicas} if service.service.autoscale is None else {}),
        # the replicas start and stop together, as a Deployment's do; updates still go one pod at a time
        "podManagementPolicy": "Parallel",
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": dict(workload.selector)},
        "updateStrategy": {"type": "RollingUpdate"},
        "template": template,
        "volumeClaimTemplates": claims,
    }
    named = with_own_metadata(metadata(plan, service.name, workload.selector), service)
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": named, "spec": spec}


def deployment(plan, service: ServicePlan) -> dict:
    workload = plan.kubernetes.services[service.name]
    pod_spec = service_pod_spec(plan, service)
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": workload.max_surge, "maxUnavailable": workload.max_unavailable}}
    # an autoscaled Deployment names no replicas: every apply would reset the autoscaler's count
    spec = {
        **({"replicas": workload.replicas} if service.service.autoscale is None else {}),
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": dict(workload.selector)},
        "strategy": strategy,
        "template": {"metadata": service_pod_metadata(plan, service), "spec": pod_spec},
    }
    named = with_own_metadata(metadata(plan, service.name, workload.selector), service)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": named, "spec": spec}


def with_own_metadata(meta: dict, service: ServicePlan) -> dict:
    """`meta` with the service's own labels after msgen's (load keeps them from clashing) and its
    annotations; never in a selector, so changing them never orphans pods."""
    own = service.service
    if own.labels:
        meta["labels"] = {**meta["labels"], **dict(sorted(own.labels.items()))}
    if own.annotations:
        meta["annotations"] = {**dict(sorted(own.annotations.items())), **meta.get("annotations", {})}
    return meta


def service_service(plan, service: ServicePlan, workload: k8s.WorkloadPlan) -> dict | None:
    """The Service in front of the service's pods: its http port, then its own ports; None for
    a worker without ports of its own (nothing reaches it)."""
    named = [] if service.port is None else [(HTTP_PORT, service.port, "tcp")]
    named += [(port.name, port.port, port.protocol) for port in service.service.ports]
    if not named:
        return None
    document = cluster_service(plan, workload, named[0][1], named[0][0])
    document["spec"]["ports"] = [{"name": name, "port": port, "targetPort": name, "protocol": protocol.upper()} for name, port, protocol in named]
    with_own_metadata(document["metadata"], service)
    return document


def autoscaler(plan, service: ServicePlan) -> dict:
    workload = plan.kubernetes.services[service.name]
    target = {"type": "Utilization", "averageUtilization": service.service.autoscale.cpu_percent}
    spec = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet" if plan.kubernetes.is_stateful(service.name) else "Deployment", "name": service.name},
        "minReplicas": workload.replicas,
        "maxReplicas": workload.max_replicas,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": target}}],
    }
    named = metadata(plan, service.name, workload.selector)
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": named, "spec": spec}


def service_objects(plan, service: ServicePlan) -> list[dict]:
    workload = plan.kubernetes.services[service.name]
    objects = [
        service_account(plan, workload),
        service_service(plan, service, workload),
        *files_config_maps(plan, service),  # before the pods that mount them
        service_workload(plan, service),
        *([autoscaler(plan, service)] if service.service.autoscale is not None else []),
        disruption_budget(plan, workload),
        service_policy(plan, service),
    ]
    return [document for document in objects if document is not None]


# --- datastores --------------------------------------------------------------------------


# What Kubernetes needs beyond msgen/images.py (the one image facts table: image, uid,
# data dir, config path, credential variables). msgen runs each engine directly as the
# image's own non-root uid (the entrypoints then skip their chown/gosu step, so no
# capability is needed); the root filesystem is read-only, so the paths it writes besides
# the data volume get emptyDirs; exec probes use the client each image ships.
@dataclass(frozen=True)
class EngineRuntime:
    writable: tuple[str, ...]
    probe: tuple[str, ...]
    extra_env: tuple[tuple[str, str], ...] = ()


ENGINE_RUNTIME = {
    "mysql": EngineRuntime(("/var/run/mysqld", "/tmp"), ("mysqladmin", "ping", "-h", "127.0.0.1")),
    # MariaDB 11 images have no mysqladmin; mariadb-admin ships in 10.11 and 11.x
    "mariadb": EngineRuntime(("/run/mysqld", "/tmp"), ("mariadb-admin", "ping", "-h", "127.0.0.1")),
    # PGDATA one folder below the volume root, which holds lost+found on most volume types
    "postgres": EngineRuntime(
        ("/var/run/postgresql", "/tmp"),
        ("pg_isready", "-h", "127.0.0.1", "-U", "postgres"),
        (("PGDATA", "/var/lib/postgresql/data/pgdata"),),
    ),
    "redis": EngineRuntime(
        ("/tmp",), ("sh", "-c", f'REDISCLI_AUTH="$(cat {SECRETS_DIR}/{DB_PASSWORD_KEY})" redis-cli ping | grep -q PONG')
    ),
}


@dataclass(frozen=True)
class EngineFacts:
    """The image facts of an engine joined with its Kubernetes runtime needs."""

    uid: int
    data_dir: str
    config_mount: str
    writable: tuple[str, ...]
    probe: tuple[str, ...]
    env: tuple[tuple[str, str], ...]  # `{db_name}`/`{db_user}` are filled per datastore


def engine_facts(engine: str) -> EngineFacts:
    image = images.facts(engine)
    runtime = ENGINE_RUNTIME[engine]
    return EngineFacts(
        uid=image.uid,
        data_dir=image.data_dir or "/data",
        config_mount=image.config_path or "",
        writable=runtime.writable,
        probe=runtime.probe,
        env=(*image.credential_env, *runtime.extra_env),
    )


# the init script C writes for postgres, run once by the image's entrypoint on an empty volume
INITDB_MOUNT = "/docker-entrypoint-initdb.d"
CONFIG_VOLUME = "config"
DATA_VOLUME = "data"
EXPORTER_SECRETS_VOLUME = "exporter-secrets"
EXPORTER_TMP_VOLUME = "exporter-tmp"
# the exporter reaches the engine in its own pod: the Service's DNS name lists Ready pods only,
# so an engine that is not Ready, when its metrics matter most, would be out of the exporter's reach
LOOPBACK = "127.0.0.1"
SHM_VOLUME = "shm"
# the pod template annotation that changes with the datastore's config (config_checksum)
CONFIG_CHECKSUM = "msgen.dev/config-checksum"
SHM_MOUNT = "/dev/shm"


def engine_image(plan, store: DatastorePlan) -> str:
    """The official image pinned to the datastore's version (or the blueprint's override)."""
    return plan.images.ref(store.engine, store.version)


def config_data(plan, store: DatastorePlan) -> dict[str, str]:
    """The ConfigMap's data: the datastore target's files under their base names."""
    files = config_files(plan, store.name)
    return {name.rsplit("/", 1)[-1]: text for name, text in sorted(files.items())}


def config_map(plan, store: DatastorePlan, workload: k8s.WorkloadPlan, data: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(plan, store.name, workload.selector), "data": data}


def config_checksum(data: dict[str, str]) -> str:
    """The sha256 of the ConfigMap's data. The engine reads its config through a subPath mount,
    which never sees a changed ConfigMap: the checksum in the pod template makes a changed
    config roll the StatefulSet instead."""
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _datastore_mounts(store: DatastorePlan, facts: EngineFacts) -> list[dict]:
    mounts = [{"name": DATA_VOLUME, "mountPath": facts.data_dir}]
    mounts.append(_script_mount(store.config_file, facts.config_mount))
    if store.engine == "postgres":
        mounts.append(_script_mount(PG_HBA, PG_HBA_FILE))  # postgresql.conf's hba_file
    # the image's entrypoint runs these on an empty data directory, in name order
    if store.engine == "postgres":
        mounts.append(_script_mount(POSTGRES_SCRIPT, f"{INITDB_MOUNT}/{POSTGRES_SCRIPT}"))
    if store.is_sql:
        mounts.append(_script_mount(USERS_SCRIPT_NAME, f"{INITDB_MOUNT}/{USERS_SCRIPT_NAME}"))
    if store.backup is not None:
        mounts.append(_script_mount(RESTORE_SCRIPT, f"{SCRIPTS_MOUNT}/{RESTORE_SCRIPT}"))
    log_dir = k8s.archive_mount(store)
    if log_dir is not None:
        # the server writes its binary log / archives its WAL into the claim's root: the folder
        # is the mount point, so it exists before the server starts, and the pod's fsGroup makes
        # it writable for the engine's uid (no init container, no chown)
        mounts.append({"name": ARCHIVE_VOLUME, "mountPath": log_dir})
    mounts.append({"name": SECRETS_VOLUME, "mountPath": SECRETS_DIR, "readOnly": True})
    mounts.extend({"name": _writable_volume(path), "mountPath": path} for path in facts.writable)
    if store.shm_bytes is not None:
        mounts.append({"name": SHM_VOLUME, "mountPath": SHM_MOUNT})
    return mounts


def _script_mount(key: str, path: str) -> dict:
    """One file of the datastore's ConfigMap at `path` (a subPath: the folder around it stays the image's)."""
    return {"name": CONFIG_VOLUME, "mountPath": path, "subPath": key, "readOnly": True}


def _writable_volume(path: str) -> str:
    return "run" if path != "/tmp" else TMP_VOLUME


def engine_container(plan, store: DatastorePlan, facts: EngineFacts) -> dict:
    probe = {"exec": {"command": list(facts.probe)}, "periodSeconds": 10, "timeoutSeconds": 5}
    container: dict = {
        "name": store.engine,
        "image": engine_image(plan, store),
        "ports": [{"name": store.engine, "containerPort": store.port, "protocol": "TCP"}],
    }
    if store.engine == "postgres":
        container["args"] = ["-c", f"config_file={facts.config_mount}"]
    if store.engine == "redis":
        # the password reaches the server from the secret file, never through redis.conf
        start = f'exec redis-server {facts.config_mount} --requirepass "$(cat {SECRETS_DIR}/{DB_PASSWORD_KEY})"'
        container["command"] = ["sh", "-c", start]
    env = env_vars((key, value.format(db_name=store.db_name, db_user=store.db_user)) for key, value in facts.env)
    if env:
        container["env"] = env
    amount = quantity(store.cpu, store.memory)
    container.update(
        resources={"requests": dict(amount), "limits": dict(amount)},
        # first start initialises the data directory: give it five minutes before liveness counts
        startupProbe={**probe, "failureThreshold": 30},
        readinessProbe={**probe, "failureThreshold": 3},
        livenessProbe={**probe, "failureThreshold": 6},
        securityContext=container_security(),
        volumeMounts=_datastore_mounts(store, facts),
    )
    return container


def exporter_container(plan, store: DatastorePlan) -> dict:
    """The exporter sidecar (contract): the observability plan's exporter, reaching the engine in its own pod."""
    exporter = plan_exporter(store, LOOPBACK)
    cpu, memory, _ = DEFAULT_SIZES["exporter"]
    container: dict = {"name": "exporter", "image": plan.images.ref(exporter.image_key)}
    if exporter.entrypoint:
        container["command"] = list(exporter.entrypoint)
    container["args"] = list(exporter.command)
    if exporter.environment:
        container["env"] = env_vars(exporter.environment)
    amount = quantity(cpu, memory)
    container.update(
        ports=[{"name": METRICS_PORT, "containerPort": exporter.port, "protocol": "TCP"}],
        resources={"requests": dict(amount), "limits": dict(amount)},
        # no readinessProbe: a pod is Ready when all its containers are, and whether the datastore
        # is in its Service's DNS must depend on the engine alone
        livenessProbe={"tcpSocket": {"port": METRICS_PORT}, "periodSeconds": 10, "failureThreshold": 3},
        securityContext=container_security(),
        volumeMounts=[
            {"name": EXPORTER_SECRETS_VOLUME, "mountPath": SECRETS_DIR, "readOnly": True},
            {"name": EXPORTER_TMP_VOLUME, "mountPath": "/tmp"},
        ],
    )
    return container


def _credentials_volume(store: DatastorePlan, name: str, keys: list[str]) -> dict:
    secret = {"secretName": credentials_secret(store.name), "defaultMode": SECRET_FILE_MODE, "items": credential_items(*keys)}
    return {"name": name, "secret": secret}


def exporter_keys(store: DatastorePlan) -> list[str]:
    """What the exporter reads: its own user's password (SQL engines), redis's one password;
    never the application's or the superuser's password of an SQL engine."""
    return [EXPORTER_PASSWORD_KEY] if has_exporter_user(store) else [PASSWORD_KEY]


def _datastore_volumes(store: DatastorePlan, facts: EngineFacts, data: k8s.DataVolumePlan) -> list[dict]:
    volumes = [] if data.claim else [{"name": DATA_VOLUME, "emptyDir": {}}]
    volumes.append({"name": CONFIG_VOLUME, "configMap": {"name": store.name}})
    # the engine's entrypoint reads the application's and the superuser's passwords, 20-users.sh the exporter's
    volumes.append(_credentials_volume(store, SECRETS_VOLUME, credential_keys(store)))
    if store.scraped:
        volumes.append(_credentials_volume(store, EXPORTER_SECRETS_VOLUME, exporter_keys(store)))
        volumes.append({"name": EXPORTER_TMP_VOLUME, "emptyDir": {}})
    if k8s.archive_mount(store) is not None:
        volumes.append({"name": ARCHIVE_VOLUME, "persistentVolumeClaim": {"claimName": k8s.archive_claim(store.name)}})
    volumes.extend({"name": name, "emptyDir": {}} for name in sorted({_writable_volume(path) for path in facts.writable}))
    if store.shm_bytes is not None:
        volumes.append(shm_volume(store.shm_bytes))
    return volumes


def shm_volume(size: int) -> dict:
    """/dev/shm as compose sizes it: the runtime's default is 64 MiB here too. Its pages count
    against the engine's memory limit, as they do under Docker."""
    return {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": format_bytes(size)}}


def _claim_spec(size, storage_class: str | None) -> dict:
    spec: dict = {"accessModes": ["ReadWriteOnce"]}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    spec["resources"] = {"requests": {"storage": format_bytes(size.bytes)}}
    return spec


def data_claim(store: DatastorePlan, workload: k8s.WorkloadPlan, data: k8s.DataVolumePlan) -> dict:
    return {"metadata": {"name": DATA_VOLUME, "labels": dict(workload.selector)}, "spec": _claim_spec(store.storage, data.storage_class)}


def statefulset(plan, store: DatastorePlan, checksum: str) -> dict:
    workload = plan.kubernetes.datastores[store.name]
    data = plan.kubernetes.volumes[store.name]
    facts = engine_facts(store.engine)
    # the exporter runs where Prometheus scrapes it (as in compose); its SQL user exists only then
    containers = [engine_container(plan, store, facts)] + ([exporter_container(plan, store)] if store.scraped else [])
    pod_spec = {
        "serviceAccountName": store.name,
        "automountServiceAccountToken": False,
        "securityContext": pod_security(fs_group=facts.uid, user=facts.uid),
        # the lifecycle plan's time for a clean shutdown, where Kubernetes kills after 30s
        "terminationGracePeriodSeconds": grace_seconds(plan, store.name),
        **scheduling(plan, workload),
        "containers": containers,
        "volumes": _datastore_volumes(store, facts, data),
    }
    spec = {
        "serviceName": store.name,
        "replicas": 1,
        "selector": {"matchLabels": dict(workload.selector)},
        "updateStrategy": {"type": "RollingUpdate"},
        "template": {"metadata": {"labels": dict(workload.pod_labels), "annotations": {CONFIG_CHECKSUM: checksum}}, "spec": pod_spec},
    }
    if data.claim:
        spec["volumeClaimTemplates"] = [data_claim(store, workload, data)]
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": metadata(plan, store.name, workload.selector), "spec": spec}


# --- backups -------------------------------------------------------------------------------

BACKUP_VOLUME = "backup"
ARCHIVE_VOLUME = "archive"
SCRIPTS_VOLUME = "scripts"
# a GitOps tool that prunes what the manifests no longer list keeps these claims: a datastore
# removed from the blueprint keeps its backups until a person deletes them (Argo CD, Flux)
KEEP_ANNOTATIONS = {"argocd.argoproj.io/sync-options": "Delete=false", "kustomize.toolkit.fluxcd.io/prune": "disabled"}
# backups are taken at the blueprint's times, which are UTC
BACKUP_TIME_ZONE = "Etc/UTC"


def backup_claim(plan, store: DatastorePlan, name: str) -> dict:
    """A claim of the backup's size, of the StorageClass the datastore's data claim uses."""
    job = plan.kubernetes.backups[store.name]
    storage_class = plan.kubernetes.volumes[store.name].storage_class
    named = metadata(plan, name, job.labels)
    named["annotations"] = dict(KEEP_ANNOTATIONS)
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": named, "spec": _claim_spec(job.backup.size, storage_class)}


def backup_keys(store: DatastorePlan) -> list[str]:
    """backup.sh logs in as the superuser (SQL) or with redis's one password, from the file it expects."""
    return [ADMIN_PASSWORD_KEY] if store.is_sql else [PASSWORD_KEY]


def backup_container(plan, store: DatastorePlan, job: k8s.BackupJobPlan) -> dict:
    """The engine's image (its client tools, of the server's version) running one backup now."""
    mounts = [
        {"name": BACKUP_VOLUME, "mountPath": backups.BACKUP_MOUNT},
        {"name": SCRIPTS_VOLUME, "mountPath": SCRIPTS_MOUNT, "readOnly": True},
        {"name": SECRETS_VOLUME, "mountPath": SECRETS_DIR, "readOnly": True},
        {"name": TMP_VOLUME, "mountPath": "/tmp"},
    ]
    if job.archive_mount is not None:
        # backup.sh prunes the archived WAL; MySQL and MariaDB purge their binary log themselves
        read_only = {} if store.engine == "postgres" else {"readOnly": True}
        mounts.insert(1, {"name": ARCHIVE_VOLUME, "mountPath": job.archive_mount, **read_only})
    amount = quantity(backups.BACKUP_CPU, backups.BACKUP_MEMORY)
    return {
        "name": "backup",
        "image": engine_image(plan, store),
        "command": ["sh", f"{SCRIPTS_MOUNT}/{BACKUP_SCRIPT}", "now"],
        # the server as its owner reaches it, through the Service (the backup pod is not in its pod)
        "env": env_vars([("MSGEN_DB_HOST", job.db_host)]),
        "resources": {"requests": dict(amount), "limits": dict(amount)},
        "securityContext": container_security(),
        "volumeMounts": mounts,
    }


def backup_volumes(store: DatastorePlan, job: k8s.BackupJobPlan) -> list[dict]:
    volumes = [{"name": BACKUP_VOLUME, "persistentVolumeClaim": {"claimName": job.claim}}]
    if job.archive_claim is not None:
        volumes.append({"name": ARCHIVE_VOLUME, "persistentVolumeClaim": {"claimName": job.archive_claim}})
    scripts = [{"key": name, "path": name} for name in (BACKUP_SCRIPT, RESTORE_SCRIPT)]
    volumes += [
        {"name": SCRIPTS_VOLUME, "configMap": {"name": store.name, "items": scripts}},
        _credentials_volume(store, SECRETS_VOLUME, backup_keys(store)),
        {"name": TMP_VOLUME, "emptyDir": {}},
    ]
    return volumes


def backup_affinity(plan, store: DatastorePlan, job: k8s.BackupJobPlan) -> dict:
    """On the datastore's node when it mounts the archive claim (ReadWriteOnce: one node mounts
    it); else anywhere in the datastore's region, so that its copies stay where the data may be."""
    workload = plan.kubernetes.datastores[store.name]
    if job.co_located:
        term = {"labelSelector": {"matchLabels": dict(workload.selector)}, "topologyKey": k8s.HOSTNAME_KEY}
        return {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    if workload.region is None:
        return {}
    expression = {"key": k8s.REGION_KEY, "operator": "In", "values": [workload.region]}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [expression]}]}}}


def backup_cron_job(plan, store: DatastorePlan) -> dict:
    """The datastore's scheduled backups: one pod a run, dumping the server over the network."""
    kube = plan.kubernetes
    job = kube.backups[store.name]
    facts = engine_facts(store.engine)
    placement = backup_affinity(plan, store, job)
    pod_spec = {
        # the datastore's own account: no token, no permissions
        "serviceAccountName": store.name,
        "automountServiceAccountToken": False,
        # the engine's uid, as the datastore runs: the files it writes are the server's, and
        # fsGroup makes the claims writable for it
        "securityContext": pod_security(fs_group=facts.uid, user=facts.uid),
        # a failed run's pod stays (with its log) and the retry is a new pod
        "restartPolicy": "Never",
        **({"affinity": placement} if placement else {}),
        **({"imagePullSecrets": [{"name": kube.image_pull_secret}]} if kube.image_pull_secret else {}),
        "containers": [backup_container(plan, store, job)],
        "volumes": backup_volumes(store, job),
    }
    job_spec = {
        "backoffLimit": job.backoff_limit,
        "activeDeadlineSeconds": job.active_deadline_s,
        "template": {"metadata": {"labels": dict(job.labels)}, "spec": pod_spec},
    }
    spec: dict = {"schedule": job.backup.schedule.text}
    if kube.has("timeZone"):
        spec["timeZone"] = BACKUP_TIME_ZONE
    spec.update(
        # one backup at a time: a run still going when the next is due makes that one wait
        concurrencyPolicy="Forbid",
        startingDeadlineSeconds=job.starting_deadline_s,
        successfulJobsHistoryLimit=job.history,
        failedJobsHistoryLimit=job.history,
        jobTemplate={"metadata": {"labels": dict(job.labels)}, "spec": job_spec},
    )
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": metadata(plan, job.name, job.labels), "spec": spec}


def backup_policy(plan, store: DatastorePlan) -> dict:
    """The backup pod reaches its datastore's port and DNS, nothing else; nothing reaches it."""
    kube = plan.kubernetes
    job = kube.backups[store.name]
    egress = [dns_egress(), {"to": [_peer_of(kube.datastores[store.name])], "ports": [_port(store.port)]}]
    spec = {"podSelector": {"matchLabels": dict(job.labels)}, "policyTypes": ["Ingress", "Egress"], "ingress": [], "egress": egress}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": metadata(plan, job.name, job.labels), "spec": spec}


def datastore_objects(plan, store: DatastorePlan) -> list[dict]:
    """In apply order: a claim before the pods that mount it, the CronJob after its datastore."""
    workload = plan.kubernetes.datastores[store.name]
    data = config_data(plan, store)
    objects = [
        service_account(plan, workload),
        config_map(plan, store, workload, data),
        cluster_service(plan, workload, store.port, store.engine, headless=True),
    ]
    job = plan.kubernetes.backups.get(store.name)
    if job is not None:
        objects.append(backup_claim(plan, store, job.claim))
        if job.archive_claim is not None:
            objects.append(backup_claim(plan, store, job.archive_claim))
    objects += [statefulset(plan, store, config_checksum(data)), disruption_budget(plan, workload), datastore_policy(plan, store)]
    if job is not None:
        objects += [backup_cron_job(plan, store), backup_policy(plan, store)]
    return objects


# --- alertmanager --------------------------------------------------------------------------

ALERTMANAGER_FILE = f"{ROOT}/observability/alertmanager.yaml"
ALERTMANAGER = "alertmanager"
ALERTMANAGER_PORT_NAME = "web"  # the Prometheus Operator's `alerting.alertmanagers[].port` names it
CONFIG_VOLUME = "config"
DATA_VOLUME = "data"


def alertmanager_objects(plan) -> tuple[dict, ...]:
    """Alertmanager for the Prometheus in the cluster: its configuration, one pod, its Service,
    and who may reach it. Its state (silences, notification log) lives in an emptyDir: a
    restart forgets silences and may repeat a notification, nothing more."""
    labels = k8s.recommended_labels(ALERTMANAGER, plan.project, "monitoring")
    selector = {k8s.NAME_LABEL: ALERTMANAGER, k8s.PART_OF_LABEL: plan.project}
    text = render_template(
        "common/document.yaml.j2",
        project=plan.project,
        notes=alerting.config_notes(),
        document=alerting.alertmanager_config(plan.observability.alerting),
    )
    data = {"alertmanager.yml": text}
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(plan, "alertmanager-config", labels), "data": data}
    port = {"name": ALERTMANAGER_PORT_NAME, "port": images.port(ALERTMANAGER), "targetPort": ALERTMANAGER_PORT_NAME, "protocol": "TCP"}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(plan, ALERTMANAGER, labels),
        "spec": {"type": "ClusterIP", "selector": dict(selector), "ports": [port]},
    }
    return (config, alertmanager_deployment(plan, labels, selector, config_checksum(data)), service, alertmanager_policy(plan, labels, selector))


def alertmanager_container(plan) -> dict:
    facts = images.facts(ALERTMANAGER)
    cpu, memory, _ = DEFAULT_SIZES[ALERTMANAGER]
    mounts = [
        {"name": CONFIG_VOLUME, "mountPath": alerting.ALERTMANAGER_MOUNT, "readOnly": True},
        {"name": DATA_VOLUME, "mountPath": facts.data_dir},
    ]
    if plan.observability.alerting.secrets:
        mounts.append({"name": SECRETS_VOLUME, "mountPath": SECRETS_DIR, "readOnly": True})
    probe = {"httpGet": {"path": "/-/healthy", "port": ALERTMANAGER_PORT_NAME}, "periodSeconds": 10, "timeoutSeconds": 5}
    return {
        "name": ALERTMANAGER,
        "image": plan.images.ref(ALERTMANAGER),
        "args": alerting.command(facts.data_dir),
        "ports": [{"name": ALERTMANAGER_PORT_NAME, "containerPort": facts.port, "protocol": "TCP"}],
        "resources": {"requests": quantity(cpu, memory), "limits": quantity(cpu, memory)},
        "readinessProbe": {**probe, "httpGet": {"path": "/-/ready", "port": ALERTMANAGER_PORT_NAME}},
        "livenessProbe": {**probe, "failureThreshold": 3},
        "securityContext": container_security(),
        "volumeMounts": mounts,
    }


def alertmanager_deployment(plan, labels: dict, selector: dict, checksum: str) -> dict:
    alerting_plan = plan.observability.alerting
    volumes: list[dict] = [
        {"name": CONFIG_VOLUME, "configMap": {"name": "alertmanager-config"}},
        {"name": DATA_VOLUME, "emptyDir": {}},
    ]
    if alerting_plan.secrets:
        items = [{"key": name, "path": name} for name in alerting_plan.secrets]
        volumes.append({"name": SECRETS_VOLUME, "secret": {"secretName": alerting.SECRET_NAME, "defaultMode": SECRET_FILE_MODE, "items": items}})
    pod_spec = {
        "automountServiceAccountToken": False,
        "securityContext": pod_security(user=images.facts(ALERTMANAGER).uid),
        "terminationGracePeriodSeconds": grace_seconds(plan, ALERTMANAGER),
        "containers": [alertmanager_container(plan)],
        "volumes": volumes,
    }
    # one replica: without its cluster gossip, two would each send every notification
    spec = {
        "replicas": 1,
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": dict(selector)},
        "strategy": {"type": "Recreate"},
        "template": {"metadata": {"labels": dict(labels), "annotations": {CONFIG_CHECKSUM: checksum}}, "spec": pod_spec},
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(plan, ALERTMANAGER, labels), "spec": spec}


def alertmanager_policy(plan, labels: dict, selector: dict) -> dict:
    """Prometheus (any namespace) reaches its API. Egress stays open: the receivers are
    webhooks, SMTP relays and Slack wherever the blueprint says."""
    peer = {"namespaceSelector": {}, "podSelector": {"matchLabels": dict(k8s.PROMETHEUS_POD)}}
    spec = {
        "podSelector": {"matchLabels": dict(selector)},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [peer], "ports": [_port(ALERTMANAGER_PORT_NAME)]}],
    }
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": metadata(plan, ALERTMANAGER, labels), "spec": spec}
