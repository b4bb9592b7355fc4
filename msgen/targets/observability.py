"""Observability: `prometheus/**`, `grafana/provisioning/**` and `loki/**` for the compose stack,
the monitoring containers A merges into the compose file (`compose_services`), and the
Kubernetes flavour under `kubernetes/observability/` (`kubernetes_artifacts`).

Every job, rule and query comes from msgen/plan/observability.py; here they are only
wrapped in each consumer's envelope.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from msgen import images
from msgen.contract import compose_secret, hardened
from msgen.jinja import render_template
from msgen.plan import observability as obs
from msgen.plan.disk import prometheus_bytes
from msgen.targets import DOCUMENT_TEMPLATE, DOCUMENTS_TEMPLATE, Artifact, alerting, grafana, templated, templated_documents, text_file
from msgen.units import compose_cpus, compose_memory

NAME = "observability"
PATHS = ("prometheus/", "grafana/", "loki/", "alertmanager/")  # where this target writes (a folder ends in /)
PROMETHEUS_DIR = "prometheus"
PROMETHEUS_CONFIG = f"{PROMETHEUS_DIR}/prometheus.yml"
RULES_DIR = "rules"  # relative to prometheus.yml: Prometheus resolves rule_files from the config's folder
GRAFANA_DIR = "grafana/provisioning"
GRAFANA_DATASOURCES = f"{GRAFANA_DIR}/datasources/datasources.yml"
GRAFANA_PROVIDERS = f"{GRAFANA_DIR}/dashboards/dashboards.yml"
GRAFANA_DASHBOARDS = f"{GRAFANA_DIR}/dashboards/msgen"
LOKI_CONFIG = "loki/loki.yml"
ALLOY_CONFIG = "loki/config.alloy"
KUBERNETES_DIR = "kubernetes/observability"
# where the compose containers see the files (mounted read-only from the output folder)
PROMETHEUS_MOUNT = "/etc/prometheus"
GRAFANA_MOUNT = "/etc/grafana/provisioning"
LOKI_MOUNT = "/etc/loki"
ALLOY_MOUNT = "/etc/alloy"
DOCKER_LOGS = "/var/lib/docker/containers"
GRAFANA_ADMIN_SECRET = "grafana-admin-password"
DATASOURCE_UIDS = grafana.DATASOURCE_UIDS
# the pod label the Kubernetes workloads carry when they are to be scraped, and the port name
SCRAPE_LABEL = "msgen.dev/scrape"
METRICS_PORT_NAME = "metrics"
TRAEFIK_POD_NAME = "traefik"  # the Traefik Helm chart's app.kubernetes.io/name


def applies(plan) -> bool:
    return plan.observability is not None


def render(plan) -> list[Artifact]:
    observability: obs.ObservabilityPlan = plan.observability
    artifacts: list[Artifact] = []
    if observability.prometheus:
        artifacts.append(_yaml_artifact(plan, PROMETHEUS_CONFIG, partial(prometheus_config, observability)))
        for group in observability.rule_groups:
            artifacts.append(_yaml_artifact(plan, rule_file(group), lambda group=group: {"groups": [group.to_dict()]}))
    if observability.grafana:
        artifacts.extend(grafana_artifacts(plan))
    if observability.loki:
        artifacts.append(_yaml_artifact(plan, LOKI_CONFIG, partial(loki_config, observability)))
        alloy = partial(render_template, "observability/config.alloy.j2", plan=plan, logs=DOCKER_LOGS, loki=LOKI_PUSH)
        artifacts.append(text_file(ALLOY_CONFIG, NAME, alloy))
    if observability.alerting is not None:
        artifacts.append(alertmanager_artifact(plan))
    return artifacts


LOKI_PUSH = f"http://loki:{obs.LOKI_PORT}/loki/api/v1/push"


def alertmanager_artifact(plan) -> Artifact:
    context = {"project": plan.project, "notes": alerting.config_notes()}
    build = partial(alerting.alertmanager_config, plan.observability.alerting)
    return templated(alerting.ALERTMANAGER_CONFIG, NAME, DOCUMENT_TEMPLATE, context, "document", build)


def _yaml_artifact(plan, path: str, build: Callable[[], dict], target: str = NAME) -> Artifact:
    return templated(path, target, DOCUMENT_TEMPLATE, {"project": plan.project}, "document", build)


def rule_file(group: obs.RuleGroup) -> str:
    return f"{PROMETHEUS_DIR}/{RULES_DIR}/{group.name}.yml"


def _global(observability: obs.ObservabilityPlan) -> dict:
    return {
        "scrape_interval": obs.prom_duration(observability.scrape_interval.ms),
        "scrape_timeout": obs.prom_duration(observability.scrape_timeout.ms),
        "evaluation_interval": observability.evaluation_interval,
        "external_labels": {"project": observability.project},
    }


def compose_scrape_config(job: obs.ScrapeJob) -> dict:
    """A job of the compose flavour: services by DNS (every replica), the rest by name."""
    config: dict = {"job_name": job.name, "metrics_path": job.metrics_path}
    if job.dns_sd:
        config["dns_sd_configs"] = [{"names": [job.host], "type": "A", "port": job.port}]
    else:
        config["static_configs"] = [{"targets": [job.target]}]
    return config


def prometheus_config(observability: obs.ObservabilityPlan) -> dict:
    """prometheus.yml of the compose stack."""
    config: dict = {"global": _global(observability)}
    if observability.rule_groups:
        config["rule_files"] = [f"{RULES_DIR}/{group.name}.yml" for group in observability.rule_groups]
    if observability.alerting is not None:
        config["alerting"] = alerting.prometheus_alerting(alerting.compose_target())
    config["scrape_configs"] = [compose_scrape_config(job) for job in observability.jobs]
    return config


# --- Grafana -------------------------------------------------------------------------------


def grafana_artifacts(plan) -> list[Artifact]:
    observability: obs.ObservabilityPlan = plan.observability
    artifacts = [
        _yaml_artifact(plan, GRAFANA_DATASOURCES, partial(grafana_datasources, observability)),
        _yaml_artifact(plan, GRAFANA_PROVIDERS, partial(grafana_providers, plan)),
    ]
    for _uid, path, build in grafana.boards(plan, kubernetes=False):
        artifacts.append(_json_artifact(f"{GRAFANA_DASHBOARDS}/{path}", build))
    return artifacts


def _json_artifact(path: str, build: Callable[[], dict]) -> Artifact:
    return templated(path, NAME, "observability/document.json.j2", {}, "document", build)


def grafana_datasources(observability: obs.ObservabilityPlan) -> dict:
    datasources = []
    if observability.prometheus:
        datasources.append(
            {
                "name": "Prometheus",
                "uid": DATASOURCE_UIDS["prometheus"],
                "type": "prometheus",
                "access": "proxy",
                "url": f"http://prometheus:{obs.PROMETHEUS_PORT}",
                "isDefault": True,
                "editable": False,
                "jsonData": {"timeInterval": obs.prom_duration(observability.scrape_interval.ms)},
            }
        )
    if observability.loki:
        datasources.append(
            {
                "name": "Loki",
                "uid": DATASOURCE_UIDS["loki"],
                "type": "loki",
                "access": "proxy",
                "url": f"http://loki:{obs.LOKI_PORT}",
                "isDefault": not observability.prometheus,
                "editable": False,
            }
        )
    return {"apiVersion": 1, "datasources": datasources}


def grafana_providers(plan) -> dict:
    provider = {
        "name": "msgen",
        "folder": plan.project,
        "type": "file",
        "disableDeletion": True,
        "allowUiUpdates": False,
        "options": {"path": f"{GRAFANA_MOUNT}/dashboards/msgen", "foldersFromFilesStructure": False},
    }
    return {"apiVersion": 1, "providers": [provider]}


# --- Loki ----------------------------------------------------------------------------------


def loki_config(observability: obs.ObservabilityPlan) -> dict:
    """Single-binary Loki 3 with filesystem storage; logs kept as long as the metrics."""
    return {
        "auth_enabled": False,
        "server": {"http_listen_port": obs.LOKI_PORT, "log_level": "warn"},
        "common": {
            "instance_addr": "127.0.0.1",
            "path_prefix": "/loki",
            "storage": {"filesystem": {"chunks_directory": "/loki/chunks", "rules_directory": "/loki/rules"}},
            "replication_factor": 1,
            "ring": {"kvstore": {"store": "inmemory"}},
        },
        "schema_config": {
            "configs": [
                {
                    "from": "2024-04-01",
                    "store": "tsdb",
                    "object_store": "filesystem",
                    "schema": "v13",
                    "index": {"prefix": "index_", "period": "24h"},
                }
            ]
        },
        "limits_config": {"retention_period": obs.prom_duration(observability.retention.ms)},
        "compactor": {"working_directory": "/loki/compactor", "retention_enabled": True, "delete_request_store": "filesystem"},
        "analytics": {"reporting_enabled": False},
    }


def compose_logging() -> dict:
    """The json-file options that put the compose service name into each log line (Alloy reads `attrs`)."""
    return {"driver": "json-file", "options": {"labels": "com.docker.compose.service", "max-size": "10m", "max-file": "3"}}


# --- compose containers (merged into the compose file by the compose target) ----------------


def _image(observability: obs.ObservabilityPlan, key: str) -> str:
    return observability.images.ref(key)


def _as_user(key: str) -> dict:
    """The image's documented non-root user, made explicit (the uid alone: the image's own
    passwd entry keeps its primary group); nothing for an image that must run as root."""
    uid = images.facts(key).uid
    return {"user": str(uid)} if uid else {}


def _limits(observability: obs.ObservabilityPlan, name: str) -> dict:
    size = observability.size(name)
    return {"resources": {"limits": {"cpus": compose_cpus(size.cpu.millicores), "memory": compose_memory(size.memory.bytes)}}}


def _http_check(url: str) -> dict:
    return {"test": ["CMD", "wget", "-q", "-O", "/dev/null", url], "interval": "30s", "timeout": "5s", "retries": 3, "start_period": "30s"}


def compose_services(plan) -> dict[str, Callable[[], dict]]:
    """The compose entries of prometheus, grafana, loki, alloy and each `<datastore>-exporter`,
    by name, each as the function that builds it (the compose target builds one at a time)."""
    observability: obs.ObservabilityPlan | None = plan.observability
    if observability is None:
        return {}
    services: dict[str, Callable[[], dict]] = {}
    if observability.prometheus:
        services["prometheus"] = partial(_prometheus_service, observability)
        for exporter in observability.exporters:
            services[exporter.name] = partial(_exporter_service, observability, exporter)
        services["node-exporter"] = partial(_node_exporter_service, observability)
        services["cadvisor"] = partial(_cadvisor_service, observability)
    if observability.grafana:
        services["grafana"] = partial(_grafana_service, observability)
    if observability.loki:
        services["loki"] = partial(_loki_service, observability)
        services["alloy"] = partial(_alloy_service, observability)
    if observability.alerting is not None:
        services["alertmanager"] = partial(alerting.compose_service, observability)
    return services


def compose_volumes(plan) -> list[str]:
    """Named volumes of the monitoring containers (their data outlives the containers)."""
    observability: obs.ObservabilityPlan | None = plan.observability
    if observability is None:
        return []
    wanted = [("prometheus-data", observability.prometheus), ("grafana-data", observability.grafana)]
    wanted += [("loki-data", observability.loki), ("alloy-data", observability.loki)]
    wanted += [(alerting.DATA_VOLUME, observability.alerting is not None)]
    return sorted(name for name, enabled in wanted if enabled)


def _prometheus_service(observability: obs.ObservabilityPlan) -> dict:
    command = [
        f"--config.file={PROMETHEUS_MOUNT}/prometheus.yml",
        "--storage.tsdb.path=/prometheus",
        f"--storage.tsdb.retention.time={obs.prom_duration(observability.retention.ms)}",
        f"--storage.tsdb.retention.size={retention_size(observability)}",
    ]
    return hardened(
        {
            "image": _image(observability, "prometheus"),
            **_as_user("prometheus"),
            "command": command,
            "volumes": [f"../{PROMETHEUS_DIR}:{PROMETHEUS_MOUNT}:ro", "prometheus-data:/prometheus"],
            "healthcheck": _http_check(f"http://localhost:{obs.PROMETHEUS_PORT}/-/healthy"),
            "deploy": _limits(observability, "prometheus"),
        }
    )


def _exporter_service(observability: obs.ObservabilityPlan, exporter: obs.ExporterPlan) -> dict:
    entry: dict = {"image": _image(observability, exporter.image_key), **_as_user(exporter.image_key)}
    if exporter.entrypoint is not None:
        entry["entrypoint"] = list(exporter.entrypoint)
    entry["command"] = list(exporter.command)
    if exporter.environment:
        entry["environment"] = dict(exporter.environment)
    entry["secrets"] = [{"source": compose_secret(exporter.datastore, exporter.password_secret), "target": exporter.password_secret}]
    entry["depends_on"] = {exporter.datastore: {"condition": "service_healthy"}}
    entry["healthcheck"] = _http_check(f"http://localhost:{exporter.port}/")
    entry["deploy"] = _limits(observability, exporter.name)
    if exporter.entrypoint is not None:
        entry["tmpfs"] = ["/tmp"]  # the assembled credentials file lives in memory only
    entry["read_only"] = True
    return hardened(entry)


def _grafana_service(observability: obs.ObservabilityPlan) -> dict:
    environment = {
        "GF_SECURITY_ADMIN_PASSWORD__FILE": f"/run/secrets/{GRAFANA_ADMIN_SECRET}",
        "GF_ANALYTICS_REPORTING_ENABLED": "false",
        "GF_USERS_ALLOW_SIGN_UP": "false",
    }
    depends = {
        name: {"condition": "service_healthy"}
        for name, on in (("prometheus", observability.prometheus), ("loki", observability.loki))
        if on
    }
    entry = {
        "image": _image(observability, "grafana"),
        **_as_user("grafana"),
        "environment": environment,
        "secrets": [GRAFANA_ADMIN_SECRET],
        "volumes": [f"../{GRAFANA_DIR}:{GRAFANA_MOUNT}:ro", "grafana-data:/var/lib/grafana"],
        "healthcheck": _http_check(f"http://localhost:{obs.GRAFANA_PORT}/api/health"),
        "deploy": _limits(observability, "grafana"),
    }
    if depends:
        entry["depends_on"] = depends
    return hardened(entry)


def _loki_service(observability: obs.ObservabilityPlan) -> dict:
    return hardened(
        {
            "image": _image(observability, "loki"),
            **_as_user("loki"),
            "command": [f"-config.file={LOKI_MOUNT}/loki.yml"],
            "volumes": [f"../loki/loki.yml:{LOKI_MOUNT}/loki.yml:ro", "loki-data:/loki"],
            "healthcheck": _http_check(f"http://localhost:{obs.LOKI_PORT}/ready"),
            "deploy": _limits(observability, "loki"),
        }
    )


ALLOY_PORT = 12345


def alloy_health_script(port: int) -> str:
    """Alloy's readiness check for an image without wget or curl (an Ubuntu base with bash and
    coreutils; alloy has no health subcommand): bash's /dev/tcp sends one HTTP/1.0 request,
    and the check passes only on a 200 status line. No `$`, which compose would interpolate."""
    request = "GET /-/ready HTTP/1.0\\r\\n\\r\\n"
    return f"exec 3<>/dev/tcp/127.0.0.1/{port} && printf '{request}' >&3 && head -n 1 <&3 | grep -q ' 200 '"


def retention_size(observability: obs.ObservabilityPlan) -> str:
    """The disk estimate capacity counts for prometheus-data, in Prometheus' units (MB is MiB)."""
    return f"{prometheus_bytes(observability) // 1024**2}MB"


# --- host agents: the one exception to "no host access" (msgen/checks/compose.py) ------------------
# Each gets exactly the read-only host mounts its documentation lists, no privileged mode (which
# cAdvisor's example command adds) and no host namespaces. node_exporter without the host's
# network and pid namespaces reports what is the same from any namespace (CPU, memory, disks,
# filesystems, pressure): its network and process collectors, which would report the
# container's own, stay off. cAdvisor's /var/run holds the docker socket, where it reads each
# container's name and compose labels: read-only stops file writes, not API calls, so cadvisor
# is as trusted as the docker daemon; it publishes no port and only Prometheus reaches it.
HOST_AGENT_MOUNTS = {
    "node-exporter": ("/:/host:ro,rslave",),
    "cadvisor": ("/:/rootfs:ro", "/var/run:/var/run:ro", "/sys:/sys:ro", "/var/lib/docker/:/var/lib/docker:ro", "/dev/disk/:/dev/disk:ro"),
}
# cAdvisor reads OOM kills from the kernel log; where kernel.dmesg_restrict is 1 it cannot
# (no CAP_SYSLOG) and runs without OOM events
HOST_AGENT_DEVICES = {"cadvisor": ("/dev/kmsg",)}
ALLOY_LOGS_MOUNT = f"{DOCKER_LOGS}:{DOCKER_LOGS}:ro"  # Alloy tails the json-file logs, read-only
NODE_COLLECTORS = ("cpu", "diskstats", "filesystem", "loadavg", "meminfo", "pressure", "vmstat")


def node_exporter_command(port: int) -> list[str]:
    collectors = [f"--collector.{name}" for name in NODE_COLLECTORS]
    return ["--path.rootfs=/host", "--collector.disable-defaults", *collectors, f"--web.listen-address=:{port}"]


def _image_check(key: str) -> dict:
    return {**_http_check(""), "test": ["CMD", *images.facts(key).healthcheck]}


def _node_exporter_service(observability: obs.ObservabilityPlan) -> dict:
    return hardened(
        {
            "image": _image(observability, "node-exporter"),
            **_as_user("node-exporter"),
            "command": node_exporter_command(images.port("node-exporter")),
            "volumes": list(HOST_AGENT_MOUNTS["node-exporter"]),
            "read_only": True,
            "healthcheck": _image_check("node-exporter"),
            "deploy": _limits(observability, "node-exporter"),
        }
    )


def _cadvisor_service(observability: obs.ObservabilityPlan) -> dict:
    # docker containers only (not every systemd cgroup), statistics refreshed once a scrape
    housekeeping = obs.prom_duration(observability.scrape_interval.ms)
    return hardened(
        {
            "image": _image(observability, "cadvisor"),
            "command": ["--docker_only=true", f"--housekeeping_interval={housekeeping}"],
            "volumes": list(HOST_AGENT_MOUNTS["cadvisor"]),
            "devices": list(HOST_AGENT_DEVICES["cadvisor"]),
            "healthcheck": _image_check("cadvisor"),
            "deploy": _limits(observability, "cadvisor"),
        }
    )


def _alloy_service(observability: obs.ObservabilityPlan) -> dict:
    # reads the json-file logs of every container read-only; never the docker socket (root on the host)
    return hardened(
        {
            "image": _image(observability, "alloy"),
            "command": [
                "run",
                "--storage.path=/var/lib/alloy/data",
                f"--server.http.listen-addr=0.0.0.0:{ALLOY_PORT}",
                f"{ALLOY_MOUNT}/config.alloy",
            ],
            "volumes": [
                f"../{ALLOY_CONFIG}:{ALLOY_MOUNT}/config.alloy:ro",
                ALLOY_LOGS_MOUNT,
                "alloy-data:/var/lib/alloy/data",
            ],
            "depends_on": {"loki": {"condition": "service_healthy"}},
            "healthcheck": {**_http_check(""), "test": ["CMD", "bash", "-c", alloy_health_script(ALLOY_PORT)]},
            "deploy": _limits(observability, "alloy"),
        }
    )


# --- Kubernetes ----------------------------------------------------------------------------


def _namespace(plan) -> str:
    kubernetes = plan.blueprint.kubernetes
    return (kubernetes.namespace if kubernetes is not None else None) or plan.project


def _gateway_namespace(plan) -> str:
    kubernetes = plan.blueprint.kubernetes
    return kubernetes.gateway_namespace if kubernetes is not None else "traefik"


def _metadata(plan, name: str, namespace: str) -> dict:
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": plan.project, "app.kubernetes.io/managed-by": "msgen"}
    return {"name": name, "namespace": namespace, "labels": labels}


def _meta_label(label: str) -> str:
    """A pod label as kubernetes_sd exposes it: every character outside [a-zA-Z0-9_] becomes `_`."""
    return "__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() or c == "_" else "_" for c in label)


def _keep(source: str, regex: str) -> dict:
    return {"source_labels": [source], "action": "keep", "regex": regex}


def relabel_literal(text: str) -> str:
    """`text` as a relabel `replacement` that Prometheus keeps as it is: it expands `$1`,
    `${name}` and `$name` there, and `$$` is its escape for one `$`."""
    return text.replace("$", "$$")


def kubernetes_prometheus_config(plan) -> dict:
    """prometheus.yml for a Prometheus in the cluster: pods found by kubernetes_sd_configs.

    Kept are exactly the pods E labels `msgen.dev/scrape: "true"`, on their port named
    `metrics`; the job label is the workload's name, so the rules match both flavours.
    """
    observability: obs.ObservabilityPlan = plan.observability
    name_label = _meta_label("app.kubernetes.io/name")
    pods = {
        "job_name": "pods",
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [_namespace(plan)]}}],
        "relabel_configs": [
            _keep(_meta_label(SCRAPE_LABEL), "true"),
            _keep("__meta_kubernetes_pod_container_port_name", METRICS_PORT_NAME),
            {"source_labels": [name_label], "target_label": "job"},
            *(
                {"source_labels": [name_label], "regex": job.name, "target_label": "__metrics_path__", "replacement": relabel_literal(job.metrics_path)}
                for job in observability.jobs
                if job.kind == "service" and job.metrics_path != "/metrics"
            ),
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        ],
    }
    jobs: list[dict] = [{"job_name": "prometheus", "static_configs": [{"targets": [f"localhost:{obs.PROMETHEUS_PORT}"]}]}]
    if plan.gateway is not None:
        jobs.append(
            {
                "job_name": "gateway",
                "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [_gateway_namespace(plan)]}}],
                "relabel_configs": [
                    _keep(name_label, TRAEFIK_POD_NAME),
                    _keep("__meta_kubernetes_pod_container_port_name", METRICS_PORT_NAME),
                ],
            }
        )
    jobs.append(pods)
    jobs.extend(kubernetes_host_jobs())
    config: dict = {"global": _global(observability)}
    if observability.kubernetes_rule_groups:
        config["rule_files"] = [f"{PROMETHEUS_MOUNT}/{RULES_DIR}/{group.name}.yml" for group in observability.kubernetes_rule_groups]
    if observability.alerting is not None:
        config["alerting"] = alerting.prometheus_alerting(alerting.kubernetes_target(_namespace(plan)))
    config["scrape_configs"] = jobs
    return config


def kubernetes_artifacts(plan) -> list[Artifact]:
    """ConfigMaps for a plain Prometheus, or PodMonitors and a PrometheusRule for the operator;
    the dashboards and the log collection for the cluster's Grafana and Alloy."""
    observability: obs.ObservabilityPlan | None = plan.observability
    if observability is None or plan.blueprint.kubernetes is None:
        return []
    monitoring = [*kubernetes_dashboards(plan), *kubernetes_logs(plan)]
    if not observability.prometheus:
        return monitoring
    if observability.operator:
        path, template, documents = f"{KUBERNETES_DIR}/monitoring.yaml", DOCUMENTS_TEMPLATE, lambda: _operator_objects(plan)
    else:
        path, template, documents = f"{KUBERNETES_DIR}/prometheus-config.yaml", DOCUMENTS_TEMPLATE, lambda: _config_maps(plan)
    return [templated_documents(path, "kubernetes", template, {"project": plan.project}, documents), *monitoring]


def _config_maps(plan) -> tuple[dict, ...]:
    """Prometheus's configuration and its rule files, for a Prometheus without the operator."""
    observability: obs.ObservabilityPlan = plan.observability
    namespace = _namespace(plan)
    config_text = render_template(DOCUMENT_TEMPLATE, project=plan.project, document=kubernetes_prometheus_config(plan))
    config_maps = [_config_map(plan, "prometheus-config", namespace, {"prometheus.yml": config_text})]
    if observability.kubernetes_rule_groups:
        rules = {
            f"{group.name}.yml": render_template(DOCUMENT_TEMPLATE, project=plan.project, document={"groups": [group.to_dict()]})
            for group in observability.kubernetes_rule_groups
        }
        config_maps.append(_config_map(plan, "prometheus-rules", namespace, rules))
    return tuple(config_maps)


def _config_map(plan, name: str, namespace: str, files: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _metadata(plan, name, namespace), "data": dict(sorted(files.items()))}


def _pod_monitor(plan, job: obs.ScrapeJob, namespace: str) -> dict:
    observability: obs.ObservabilityPlan = plan.observability
    endpoint: dict = {
        "port": METRICS_PORT_NAME,
        "path": job.metrics_path,
        "interval": obs.prom_duration(observability.scrape_interval.ms),
        "scrapeTimeout": obs.prom_duration(observability.scrape_timeout.ms),
    }
    if job.kind == "gateway":
        selector = {"matchLabels": {"app.kubernetes.io/name": TRAEFIK_POD_NAME}}
        endpoint["relabelings"] = [{"action": "replace", "targetLabel": "job", "replacement": "gateway"}]
        namespaces = [_gateway_namespace(plan)]
    else:
        selector = {"matchLabels": {"app.kubernetes.io/name": job.name, SCRAPE_LABEL: "true"}}
        namespaces = [namespace]
    spec = {
        "jobLabel": "app.kubernetes.io/name",
        "namespaceSelector": {"matchNames": namespaces},
        "selector": selector,
        "podMetricsEndpoints": [endpoint],
    }
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor", "metadata": _metadata(plan, job.name, namespace), "spec": spec}


def _operator_objects(plan) -> tuple[dict, ...]:
    """PodMonitors and one PrometheusRule, for the Prometheus operator."""
    observability: obs.ObservabilityPlan = plan.observability
    namespace = _namespace(plan)
    documents = [_pod_monitor(plan, job, namespace) for job in observability.jobs if job.kind not in ("prometheus", "host")]
    documents.extend(host_service_monitors(plan, namespace))
    if observability.kubernetes_rule_groups:
        rule = {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": _metadata(plan, f"{plan.project}-alerts", namespace),
            "spec": {"groups": [group.to_dict() for group in observability.kubernetes_rule_groups]},
        }
        documents.append(rule)
    return tuple(documents)


# --- Kubernetes: the cluster's own host and container metrics ------------------------------------
# The app namespace is `restricted`: msgen runs no privileged DaemonSet there. It scrapes what
# the cluster runs (README: host metrics): node_exporter and kube-state-metrics behind the
# Services the prometheus-community charts create (app.kubernetes.io/name, port name), and
# every kubelet's cAdvisor endpoint.
NODE_EXPORTER_SERVICE = ("prometheus-node-exporter", "metrics")
KUBE_STATE_METRICS_SERVICE = ("kube-state-metrics", "http")
KUBE_STATE_METRICS_JOB = "kube-state-metrics"
KUBELET_JOB = "kubelet"
KUBELET_CADVISOR_PATH = "/metrics/cadvisor"
# the Service the Prometheus operator keeps for the kubelets (its --kubelet-service flag)
KUBELET_SERVICE = ("kube-system", {"k8s-app": "kubelet"}, "https-metrics")
SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
# kubelets serve a self-signed certificate unless the cluster bootstraps serving certificates
KUBELET_TLS = {"insecure_skip_verify": True}
NAME_LABEL = "__meta_kubernetes_service_label_app_kubernetes_io_name"


def _service_job(job: str, service: tuple[str, str]) -> dict:
    name, port = service
    return {
        "job_name": job,
        "kubernetes_sd_configs": [{"role": "endpoints"}],
        "relabel_configs": [_keep(NAME_LABEL, name), _keep("__meta_kubernetes_endpoint_port_name", port)],
    }


def kubernetes_host_jobs() -> list[dict]:
    """node_exporter (instance: the node's name), kube-state-metrics and the kubelets' cAdvisor,
    for a Prometheus in the cluster allowed to list endpoints and nodes and get nodes/metrics."""
    node = _service_job(obs.NODE_JOB, NODE_EXPORTER_SERVICE)
    node["relabel_configs"].append({"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "instance"})
    state = {**_service_job(KUBE_STATE_METRICS_JOB, KUBE_STATE_METRICS_SERVICE), "honor_labels": True}
    kubelet = {
        "job_name": KUBELET_JOB,
        "scheme": "https",
        "metrics_path": KUBELET_CADVISOR_PATH,
        "honor_labels": True,  # cAdvisor's namespace, pod and container labels are the containers'
        "authorization": {"credentials_file": SERVICE_ACCOUNT_TOKEN},
        "tls_config": dict(KUBELET_TLS),
        "kubernetes_sd_configs": [{"role": "node"}],
        "relabel_configs": [{"source_labels": ["__meta_kubernetes_node_name"], "target_label": "instance"}],
    }
    return [node, state, kubelet]


def _service_monitor(plan, name: str, namespace: str, spec: dict) -> dict:
    metadata = _metadata(plan, name, namespace)
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": metadata, "spec": spec}


def _job_label(job: str) -> dict:
    return {"action": "replace", "targetLabel": "job", "replacement": job}


def host_service_monitors(plan, namespace: str) -> list[dict]:
    """ServiceMonitors for the same three, for the Prometheus operator."""
    observability: obs.ObservabilityPlan = plan.observability
    timing = {
        "interval": obs.prom_duration(observability.scrape_interval.ms),
        "scrapeTimeout": obs.prom_duration(observability.scrape_timeout.ms),
    }
    node_instance = {"action": "replace", "sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "instance"}
    node = {
        "namespaceSelector": {"any": True},
        "selector": {"matchLabels": {"app.kubernetes.io/name": NODE_EXPORTER_SERVICE[0]}},
        "endpoints": [{"port": NODE_EXPORTER_SERVICE[1], **timing, "relabelings": [_job_label(obs.NODE_JOB), node_instance]}],
    }
    state = {
        "namespaceSelector": {"any": True},
        "selector": {"matchLabels": {"app.kubernetes.io/name": KUBE_STATE_METRICS_SERVICE[0]}},
        "endpoints": [
            {"port": KUBE_STATE_METRICS_SERVICE[1], **timing, "honorLabels": True, "relabelings": [_job_label(KUBE_STATE_METRICS_JOB)]}
        ],
    }
    kubelet_namespace, kubelet_labels, kubelet_port = KUBELET_SERVICE
    kubelet_endpoint = {
        "port": kubelet_port,
        "path": KUBELET_CADVISOR_PATH,
        "scheme": "https",
        **timing,
        "honorLabels": True,
        "bearerTokenFile": SERVICE_ACCOUNT_TOKEN,
        "tlsConfig": {"insecureSkipVerify": KUBELET_TLS["insecure_skip_verify"]},
        "relabelings": [_job_label(KUBELET_JOB)],
    }
    kubelet = {
        "namespaceSelector": {"matchNames": [kubelet_namespace]},
        "selector": {"matchLabels": dict(kubelet_labels)},
        "endpoints": [kubelet_endpoint],
    }
    return [
        _service_monitor(plan, "node-exporter", namespace, node),
        _service_monitor(plan, KUBE_STATE_METRICS_JOB, namespace, state),
        _service_monitor(plan, "kubelet-cadvisor", namespace, kubelet),
    ]


# --- Kubernetes: the cluster's Grafana and Alloy --------------------------------------------

# Grafana's dashboard sidecar (Grafana and kube-prometheus-stack Helm charts) loads the
# ConfigMaps with this label; kube-prometheus-stack asks for the value "1", Grafana's chart any
DASHBOARD_LABEL = ("grafana_dashboard", "1")
# read by the sidecar when its folderAnnotation is set to it: the Grafana folder of the dashboard
FOLDER_ANNOTATION = "grafana_folder"
ALLOY_CONFIG_KEY = "config.alloy"
# the Loki Helm chart's gateway, when the release is called loki (LOKI_PUSH_URL overrides it)
KUBERNETES_LOKI_PUSH = "http://loki-gateway.{namespace}.svc/loki/api/v1/push"


def _monitoring_namespace(plan) -> str:
    return plan.blueprint.kubernetes.monitoring_namespace


def dashboard_config_map_name(uid: str) -> str:
    """`_` separates a board's parts in its uid and never occurs in a name; a ConfigMap name
    allows `.` instead."""
    return f"grafana-dashboard-{uid.replace('_', '.')}"


def _dashboard_config_map(plan, uid: str, build: Callable[[], dict]) -> tuple[dict, ...]:
    metadata = _metadata(plan, dashboard_config_map_name(uid), _monitoring_namespace(plan))
    metadata["labels"][DASHBOARD_LABEL[0]] = DASHBOARD_LABEL[1]
    metadata["annotations"] = {FOLDER_ANNOTATION: plan.project}
    text = render_template("observability/document.json.j2", document=build())
    # the key is the file name the sidecar writes: unique across every project's dashboards
    return ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {f"{uid}.json": text}},)


def kubernetes_dashboards(plan) -> list[Artifact]:
    """One file per dashboard (a ConfigMap holds at most 1 MiB), the same boards as compose's
    with Traefik's Kubernetes service names."""
    if not plan.observability.grafana:
        return []
    artifacts = []
    for uid, path, build in grafana.boards(plan, kubernetes=True):
        documents = partial(_dashboard_config_map, plan, uid, build)
        target_path = f"{KUBERNETES_DIR}/dashboards/{path.removesuffix('.json')}.yaml"
        artifacts.append(templated_documents(target_path, "kubernetes", DOCUMENTS_TEMPLATE, {"project": plan.project}, documents))
    return artifacts


def alloy_label(project: str) -> str:
    """An Alloy component label (an identifier) naming the project's components."""
    return "msgen_" + project.replace("-", "_")


def kubernetes_alloy_config(plan) -> str:
    monitoring = _monitoring_namespace(plan)
    return render_template(
        "observability/kubernetes.alloy.j2",
        project=plan.project,
        namespace=_namespace(plan),
        label=alloy_label(plan.project),
        name_label=_meta_label("app.kubernetes.io/name"),
        loki=KUBERNETES_LOKI_PUSH.format(namespace=monitoring),
    )


def _alloy_config_map(plan) -> tuple[dict, ...]:
    files = {ALLOY_CONFIG_KEY: kubernetes_alloy_config(plan)}
    return (_config_map(plan, f"{plan.project}-alloy", _monitoring_namespace(plan), files),)


def kubernetes_logs(plan) -> list[Artifact]:
    """The Alloy configuration for the cluster's Alloy (its Helm chart's alloy.configMap.name)."""
    if not plan.observability.loki:
        return []
    documents = partial(_alloy_config_map, plan)
    return [templated_documents(f"{KUBERNETES_DIR}/alloy.yaml", "kubernetes", DOCUMENTS_TEMPLATE, {"project": plan.project}, documents)]
