"""The Traefik gateway: `traefik/traefik.yml` (static) and `traefik/dynamic/<project>.yml`
(file provider), plus the Kubernetes flavour of the same plan (`kubernetes_artifacts`): the
IngressRoutes, the values of Traefik's official Helm chart, and cert-manager's objects.

Everything here is an envelope around msgen/plan/gateway.py: the routers, services and
middlewares are computed there once and only wrapped here; how Traefik runs on the cluster
and where its certificates come from is msgen/plan/kubernetes.py's EdgePlan.
"""

from __future__ import annotations

from functools import partial

from msgen import images
from msgen.plan import gateway as gw
from msgen.plan import kubernetes as k8s
from msgen.plan.images import ResolvedImage, split_registry
from msgen.plan.networks import edge_network
from msgen.targets import DOCUMENT_TEMPLATE, DOCUMENTS_TEMPLATE, Artifact, templated, templated_documents

NAME = "traefik"
PATHS = ("traefik/",)  # where this target writes (a folder ends in /)
KUBERNETES_DIR = "kubernetes/gateway"
HELM_VALUES = f"{KUBERNETES_DIR}/traefik-values.yaml"
CERT_MANAGER_FILE = f"{KUBERNETES_DIR}/cert-manager.yaml"
CRD_API = "traefik.io/v1alpha1"
CERT_MANAGER_API = "cert-manager.io/v1"
HELM_REPO = "https://traefik.github.io/charts"
# the Helm chart's defaults for the in-pod ports; Services (or the nodes' host ports) map them to 80/443
HELM_PORTS = {gw.WEB: 8000, gw.WEBSECURE: 8443}
DASHBOARD_USERS_K8S_SECRET = "traefik-dashboard-users"
# Traefik's Ingress provider reads the entrypoints of an Ingress's routers from this annotation
ENTRYPOINTS_ANNOTATION = "traefik.ingress.kubernetes.io/router.entrypoints"
# the entrypoint redirect's router outranks every other by default; the HTTP-01 solver's must win on `web`
REDIRECT_PRIORITY = 1


def applies(plan) -> bool:
    return plan.gateway is not None


def render(plan) -> list[Artifact]:
    gateway = plan.gateway
    context = {"gateway": gateway}
    return [
        templated(gw.STATIC_CONFIG, NAME, "traefik/traefik.yml.j2", context, "config", lambda: static_config(gateway)),
        # in docker mode the routes live on container labels; the file keeps the shared parts
        templated(
            gateway.dynamic_file,
            NAME,
            "traefik/dynamic.yml.j2",
            context,
            "config",
            lambda: dynamic_config(gateway, with_routes=gateway.provider == "file"),
        ),
    ]


def _metadata(plan, name: str, namespace: str | None) -> dict:
    """Labels and name; a namespace unless the object is cluster-scoped (None)."""
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": plan.project, "app.kubernetes.io/managed-by": "msgen"}
    place = {"namespace": namespace} if namespace is not None else {}
    return {"name": name, **place, "labels": labels}


def _manifest(plan, path: str, build, notes: tuple[str, ...] = ()) -> Artifact:
    return templated(path, "kubernetes", DOCUMENT_TEMPLATE, {"project": plan.project, "notes": notes}, "document", build)


def tls_secret(plan, namespace: str, host: str) -> dict:
    """An IngressRoute's `tls`: the Secret of its host's certificate (cert-manager's, or the user's)."""
    return {"secretName": plan.kubernetes.edge.certificate(namespace, host).secret}


def ingress_route(plan, route: gw.RoutePlan) -> dict:
    """The IngressRoute of one routed service: the file provider's router, as a CRD."""
    namespace = plan.kubernetes.namespace
    spec_route = {
        "kind": "Rule",
        "match": route.rule,
        "middlewares": [{"name": name} for name in route.middleware_names],
        "services": [{"name": route.name, "port": route.port, "serversTransport": route.transport}],
    }
    spec = {"entryPoints": [gw.WEBSECURE], "routes": [spec_route], "tls": tls_secret(plan, namespace, route.hosts[0])}
    return {
        "apiVersion": CRD_API,
        "kind": "IngressRoute",
        "metadata": _metadata(plan, route.name, namespace),
        "spec": spec,
    }


def middleware_object(plan, middleware: gw.Middleware, namespace: str) -> dict:
    options = middleware.options
    if middleware.kind == "basicAuth":
        # a CRD reads htpasswd lines from a Secret (key `users`), not from a file
        options = {"secret": DASHBOARD_USERS_K8S_SECRET, "removeHeader": True, "realm": "traefik"}
    metadata = _metadata(plan, middleware.name, namespace)
    return {"apiVersion": CRD_API, "kind": "Middleware", "metadata": metadata, "spec": {middleware.kind: options}}


def helm_image(traefik: ResolvedImage) -> dict:
    """The chart's image values (registry, repository, tag, digest): registry and repository only
    when the blueprint moved the image off the chart's own default (docker.io/traefik). The chart
    checks features against the tag, so a digest keeps msgen's version as tag; the digest is
    what is pulled."""
    values: dict = {}
    if traefik.name != images.IMAGES["traefik"].repository:
        values["registry"], values["repository"] = split_registry(traefik.name)
    values["tag"] = traefik.tag or images.TRAEFIK_VERSION
    if traefik.digest:
        values["digest"] = traefik.digest
    return values


def helm_values(plan) -> dict:
    """Values for Traefik's official Helm chart (traefik/traefik, TRAEFIK_CHART_VERSION): the same
    entrypoints as compose, stateless (certificates come from Secrets), on the nodes' ports or
    behind a load balancer (`kubernetes.ingress`)."""
    gateway = plan.gateway
    resources = plan.blueprint.gateway.resources
    amount = {"cpu": resources.cpu.text, "memory": resources.memory.text}
    return {
        "image": helm_image(plan.images["traefik"]),
        **workload_values(plan),
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "ports": helm_ports(plan),
        "metrics": prometheus_metrics(",".join(str(bucket) for bucket in gateway.buckets)),
        "log": {"format": "json", "level": "INFO"},
        "accessLog": {"enabled": True, "format": "json"},
        # safeNaming stays off: the alert rules match the routers by the names Traefik gives them then
        "providers": {
            "kubernetesCRD": {"enabled": True, "allowCrossNamespace": False, "safeNaming": False},
            "kubernetesIngress": ingress_provider(plan),
        },
        "ingressClass": solver_ingress_class(plan),
        "tlsOptions": {"default": {"minVersion": "VersionTLS12"}},
        "resources": {"requests": dict(amount), "limits": dict(amount)},
        "api": {"dashboard": gateway.dashboard},
        "ingressRoute": {"dashboard": _helm_dashboard(plan)},
    }


def workload_values(plan) -> dict:
    """A DaemonSet on every node's ports 80/443, or a Deployment spread over the nodes behind a
    LoadBalancer Service that keeps the client's address; either way a disruption budget."""
    edge = plan.kubernetes.edge
    grace = plan.grace["gateway"].period.whole_seconds
    rollout = {
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": edge.max_unavailable, "maxSurge": edge.max_surge}},
        # one pod at a time may go: a drain never blocks, and the others keep serving
        "podDisruptionBudget": {"enabled": True, "maxUnavailable": 1},
    }
    if edge.replicas is None:
        daemonset = {"kind": "DaemonSet", "terminationGracePeriodSeconds": grace}
        return {"deployment": daemonset, **rollout, "service": {"spec": {"type": "ClusterIP"}}}
    deployment = {"kind": "Deployment", "replicas": edge.replicas, "terminationGracePeriodSeconds": grace}
    return {
        "deployment": deployment,
        **rollout,
        # Local: only nodes running Traefik get traffic, and the client's address is not replaced by a node's
        "service": {"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local"}},
        "topologySpreadConstraints": [node_spread(plan)],
    }


def node_spread(plan) -> dict:
    """Traefik's replicas on different nodes when they can be (required) or when it costs nothing (preferred).
    A skew of one still lets a rollout's extra pod start beside an old one."""
    kube = plan.kubernetes
    spread = {
        "maxSkew": 1,
        "topologyKey": k8s.HOSTNAME_KEY,
        "whenUnsatisfiable": "DoNotSchedule" if kube.edge.anti_affinity == "required" else "ScheduleAnyway",
        "labelSelector": {"matchLabels": dict(k8s.TRAEFIK_POD)},
    }
    if kube.has("nodeTaintsPolicy"):
        # a node Traefik may not run on (a tainted control plane) must not count as an empty one
        spread["nodeTaintsPolicy"] = "Honor"
    return spread


def helm_ports(plan) -> dict:
    """The entrypoints; with host ports, web and websecure also on the node's 80 and 443 (the
    chart adds 443/udp for HTTP/3 on the same host port)."""
    gateway = plan.gateway
    edge = plan.kubernetes.edge
    redirect = {"to": gw.WEBSECURE, "scheme": "https", "permanent": True}
    if edge.cert_manager:
        redirect["priority"] = REDIRECT_PRIORITY
    web: dict = {"port": HELM_PORTS[gw.WEB], "exposedPort": gw.PORTS[gw.WEB]}
    websecure: dict = {"port": HELM_PORTS[gw.WEBSECURE], "exposedPort": gw.PORTS[gw.WEBSECURE]}
    if edge.ingress == k8s.HOST_PORTS:
        web["hostPort"], websecure["hostPort"] = gw.PORTS[gw.WEB], gw.PORTS[gw.WEBSECURE]
    http3: dict = {"enabled": gateway.http3}
    if gateway.http3:
        http3["advertisedPort"] = gw.PORTS[gw.WEBSECURE]
    web.update(http={"redirections": {"entryPoint": redirect}}, transport=lifecycle(gateway))
    websecure.update(http3=http3, http={"tls": {"enabled": True}}, transport=lifecycle(gateway))
    return {
        gw.PING: {"port": gw.PORTS[gw.PING], "expose": {"default": False}},
        gw.WEB: web,
        gw.WEBSECURE: websecure,
        gw.METRICS: {"port": gw.PORTS[gw.METRICS], "exposedPort": gw.PORTS[gw.METRICS], "expose": {"default": False}},
    }


def ingress_provider(plan) -> dict:
    """Traefik's Ingress provider serves cert-manager's HTTP-01 solver Ingresses, and only them:
    their class, in the namespaces that hold Certificates. Off without cert-manager."""
    edge = plan.kubernetes.edge
    if not edge.cert_manager:
        return {"enabled": False}
    namespaces = sorted({certificate.namespace for certificate in edge.certificates})
    return {"enabled": True, "ingressClass": edge.solver_class, "namespaces": namespaces}


def solver_ingress_class(plan) -> dict:
    """The solver's IngressClass, never the cluster's default: other Ingresses stay with their own controller."""
    edge = plan.kubernetes.edge
    if not edge.cert_manager:
        return {"enabled": False}
    return {"enabled": True, "isDefaultClass": False, "name": edge.solver_class}


def prometheus_metrics(buckets: str | list[float]) -> dict:
    """Traefik's Prometheus metrics on their own entrypoint, labelled by entrypoint, router and
    service (the chart's values want the buckets as one comma-separated string)."""
    labels = {"addEntryPointsLabels": True, "addRoutersLabels": True, "addServicesLabels": True}
    return {"prometheus": {"entryPoint": gw.METRICS, **labels, "buckets": buckets}}


def _helm_dashboard(plan) -> dict:
    gateway = plan.gateway
    if not gateway.dashboard:
        return {"enabled": False}
    return {
        "enabled": True,
        "matchRule": f"Host(`{gateway.dashboard_host}`)",
        "entryPoints": [gw.WEBSECURE],
        "middlewares": [{"name": gw.DASHBOARD_AUTH}],
        "tls": tls_secret(plan, plan.kubernetes.gateway_namespace, gateway.dashboard_host),
    }


def values_notes(plan) -> tuple[str, ...]:
    """The values file's header: the chart it is written for, and how to install it."""
    chart = images.TRAEFIK_CHART_VERSION
    return (
        f"Values for Traefik's official Helm chart traefik/traefik {chart}, running Traefik {images.TRAEFIK_VERSION}:",
        f"  helm repo add traefik {HELM_REPO}",
        f"  helm upgrade --install traefik traefik/traefik --version {chart} "
        f"--namespace {plan.kubernetes.gateway_namespace} --create-namespace --values {HELM_VALUES}",
    )


def cluster_issuer(plan) -> dict:
    """Let's Encrypt through cert-manager: HTTP-01 answered by a solver Ingress of the class only Traefik serves."""
    edge = plan.kubernetes.edge
    # the challenge is plain HTTP on port 80: the solver's routers belong on `web` alone
    template = {"metadata": {"annotations": {ENTRYPOINTS_ANNOTATION: gw.WEB}}}
    acme = {
        "server": k8s.LETSENCRYPT_SERVER,
        "email": plan.gateway.acme_email,
        "privateKeySecretRef": {"name": f"{edge.issuer}-account"},
        "solvers": [{"http01": {"ingress": {"ingressClassName": edge.solver_class, "ingressTemplate": template}}}],
    }
    return {"apiVersion": CERT_MANAGER_API, "kind": "ClusterIssuer", "metadata": _metadata(plan, edge.issuer, None), "spec": {"acme": acme}}


def certificate_object(plan, certificate: k8s.CertificatePlan) -> dict:
    issuer = {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": plan.kubernetes.edge.issuer}
    spec = {"secretName": certificate.secret, "dnsNames": [certificate.host], "issuerRef": issuer}
    metadata = _metadata(plan, certificate.name, certificate.namespace)
    return {"apiVersion": CERT_MANAGER_API, "kind": "Certificate", "metadata": metadata, "spec": spec}


def cert_manager_objects(plan) -> tuple[dict, ...]:
    """The issuer first, then one Certificate a host."""
    edge = plan.kubernetes.edge
    return (cluster_issuer(plan), *(certificate_object(plan, certificate) for certificate in edge.certificates))


def cert_manager_notes() -> tuple[str, ...]:
    return (f"For cert-manager {images.CERT_MANAGER_VERSION}, installed before this folder is applied.",)


def servers_transport(plan, route: gw.RoutePlan, namespace: str) -> dict:
    metadata = _metadata(plan, route.transport, namespace)
    return {"apiVersion": CRD_API, "kind": "ServersTransport", "metadata": metadata, "spec": gw.transport_options(route)}


def route_objects(plan, route: gw.RoutePlan, namespace: str) -> tuple[dict, ...]:
    """One file a route, as one a service: its transport and own middlewares first, then the route using them."""
    middlewares = (middleware_object(plan, middleware, namespace) for middleware in route.middlewares if not middleware.shared)
    return (servers_transport(plan, route, namespace), *middlewares, ingress_route(plan, route))


def _documents(plan, path: str, build, notes: tuple[str, ...] = ()) -> Artifact:
    context = {"project": plan.project, "notes": notes}
    return templated_documents(path, "kubernetes", DOCUMENTS_TEMPLATE, context, build)


def kubernetes_artifacts(plan) -> list[Artifact]:
    """IngressRoutes and Middlewares under kubernetes/gateway/, the Helm chart's values, and
    cert-manager's issuer and Certificates with `acme_email`."""
    gateway = plan.gateway
    kube = plan.kubernetes
    if gateway is None or kube is None:
        return []
    namespace = kube.namespace
    artifacts = []
    for middleware in gateway.shared_middlewares:
        # the dashboard's auth belongs beside Traefik; the shared headers beside the routes
        where = kube.gateway_namespace if middleware.kind == "basicAuth" else namespace
        build = partial(middleware_object, plan, middleware, where)
        artifacts.append(_manifest(plan, f"{KUBERNETES_DIR}/middleware-{middleware.name}.yaml", build))
    for route in gateway.routes:
        artifacts.append(_documents(plan, f"{KUBERNETES_DIR}/route-{route.name}.yaml", partial(route_objects, plan, route, namespace)))
    artifacts.append(_manifest(plan, HELM_VALUES, partial(helm_values, plan), values_notes(plan)))
    if kube.edge.cert_manager:
        artifacts.append(_documents(plan, CERT_MANAGER_FILE, partial(cert_manager_objects, plan), cert_manager_notes()))
    return sorted(artifacts, key=lambda artifact: artifact.path)


# --- the file provider's and the docker provider's shapes of the gateway plan -------------


def router_config(gateway: gw.GatewayPlan, route: gw.RoutePlan, middleware_refs: tuple[str, ...]) -> dict:
    """The router in Traefik's dynamic configuration shape."""
    return {
        "rule": route.rule,
        "entryPoints": [gw.WEBSECURE],
        "service": route.name,
        "middlewares": list(middleware_refs),
        "tls": dict(gateway.tls),
    }


def health_check_config(route: gw.RoutePlan) -> dict:
    return {"path": route.health_path, "interval": gw.go_duration(route.health_interval), "timeout": gw.go_duration(route.health_timeout)}


def dynamic_config(gateway: gw.GatewayPlan, with_routes: bool) -> dict:
    """The file provider's dynamic configuration: shared parts (the servers transports among
    them: labels cannot define one) always, routes in file mode."""
    routers: dict = {}
    services: dict = {}
    middlewares = {middleware.name: {middleware.kind: middleware.options} for middleware in gateway.shared_middlewares}
    transports = {route.transport: gw.transport_options(route) for route in gateway.routes}
    if with_routes:
        for route in gateway.routes:
            routers[route.name] = router_config(gateway, route, route.middleware_names)
            services[route.name] = {
                "loadBalancer": {
                    "servers": [{"url": url} for url in route.urls],
                    "healthCheck": health_check_config(route),
                    "passHostHeader": True,
                    "serversTransport": route.transport,
                }
            }
            middlewares.update({m.name: {m.kind: m.options} for m in route.middlewares if not m.shared})
    if gateway.dashboard:
        routers[gw.DASHBOARD_ROUTER] = {
            "rule": f"Host(`{gateway.dashboard_host}`)",
            "entryPoints": [gw.WEBSECURE],
            "service": "api@internal",
            "middlewares": [gw.SECURE_HEADERS, gw.DASHBOARD_AUTH],
            "tls": dict(gateway.tls),
        }
    http: dict = {}
    if routers:
        http["routers"] = dict(sorted(routers.items()))
    if services:
        http["services"] = dict(sorted(services.items()))
    http["middlewares"] = dict(sorted(middlewares.items()))
    if transports:
        http["serversTransports"] = dict(sorted(transports.items()))
    return {"http": http, "tls": {"options": {"default": {"minVersion": "VersionTLS12"}}}}


def _flatten(prefix: str, value, into: dict[str, str]) -> None:
    """Traefik's label form: nested keys joined by dots, lower-case; lists of scalars comma-joined."""
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key.lower()}", item, into)
    elif isinstance(value, list):
        into[prefix] = ",".join(str(item) for item in value)
    elif isinstance(value, bool):
        into[prefix] = "true" if value else "false"
    else:
        into[prefix] = str(value)


def compose_labels(plan, service_name: str) -> dict[str, str]:
    """The traefik.* labels of a routed service's container for `gateway.provider: docker`.

    The same router, service and middlewares as the file provider's; the shared middlewares
    stay in the dynamic file and are referenced as `<name>@file`. Empty in file mode.
    """
    gateway: gw.GatewayPlan | None = plan.gateway
    if gateway is None or gateway.provider != "docker":
        return {}
    route = gateway.route(service_name)
    if route is None:
        return {}
    refs = tuple(f"{m.name}@file" if m.shared else m.name for m in route.middlewares)
    # the network Docker names for the pair of the gateway and this service (compose prefixes the project)
    labels = {"traefik.enable": "true", "traefik.docker.network": f"{plan.project}_{edge_network(route.name)}"}
    router = router_config(gateway, route, refs)
    if not router["tls"]:
        router["tls"] = True  # a label router needs `tls=true` to serve on TLS without a resolver
    _flatten(f"traefik.http.routers.{route.name}", router, labels)
    service = {
        "loadBalancer": {
            "server": {"port": route.port},
            "healthCheck": health_check_config(route),
            "passHostHeader": True,
            "serversTransport": f"{route.transport}@file",
        }
    }
    _flatten(f"traefik.http.services.{route.name}", service, labels)
    for middleware in route.middlewares:
        if not middleware.shared:
            _flatten(f"traefik.http.middlewares.{middleware.name}", {middleware.kind: middleware.options}, labels)
    return dict(sorted(labels.items()))


def lifecycle(gateway: gw.GatewayPlan) -> dict:
    """On shutdown Traefik finishes in-flight requests for the longest route timeout (its default is 10s)."""
    return {"lifeCycle": {"graceTimeOut": gw.go_duration(gateway.drain)}}


def static_config(gateway: gw.GatewayPlan) -> dict:
    """Traefik's static configuration (traefik.yml) for the compose gateway."""
    websecure: dict = {"address": f":{gw.PORTS[gw.WEBSECURE]}", "http": {"tls": dict(gateway.tls)}, "transport": lifecycle(gateway)}
    if gateway.http3:
        websecure["http3"] = {"advertisedPort": gw.PORTS[gw.WEBSECURE]}
    config: dict = {
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "log": {"level": "INFO", "format": "json", "noColor": True},
        # headers are dropped from access logs: Authorization and cookies must not be logged
        "accessLog": {"format": "json", "fields": {"headers": {"defaultMode": "drop"}}},
        "ping": {"entryPoint": gw.PING},
        "entryPoints": {
            gw.WEB: {
                "address": f":{gw.PORTS[gw.WEB]}",
                "http": {"redirections": {"entryPoint": {"to": gw.WEBSECURE, "scheme": "https", "permanent": True}}},
                "transport": lifecycle(gateway),
            },
            gw.WEBSECURE: websecure,
            gw.METRICS: {"address": f":{gw.PORTS[gw.METRICS]}"},
            gw.PING: {"address": f":{gw.PORTS[gw.PING]}"},
        },
        "metrics": prometheus_metrics(list(gateway.buckets)),
        "providers": {"file": {"directory": gw.DYNAMIC_MOUNT, "watch": True}},
    }
    if gateway.acme_email:
        acme = {"email": gateway.acme_email, "storage": gw.ACME_STORAGE, "tlsChallenge": {}}
        config["certificatesResolvers"] = {gw.RESOLVER: {"acme": acme}}
    if gateway.provider == "docker":
        # no default network: each routed container's label names the network it shares with the gateway
        config["providers"]["docker"] = {"endpoint": f"unix://{gw.DOCKER_SOCKET}", "exposedByDefault": False, "watch": True}
    if gateway.dashboard:
        # served only by the `dashboard` router behind basic auth; never `insecure`
        config["api"] = {"dashboard": True, "insecure": False}
    return config
