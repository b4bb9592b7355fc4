"""Pipes: a blueprint from stdin (`-`), the Kubernetes objects as one YAML stream on stdout
(`render --target kubernetes -o -`), and no PNG bytes on a terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from msgen.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "blueprints" / "reference.yaml"
JOB_QUEUE = ROOT / "examples" / "job-queue"
NOT_MANIFESTS = {"kustomization.yaml", "gateway/traefik-values.yaml"}


def run(*arguments, input: str | None = None):
    return runner.invoke(app, [str(argument) for argument in arguments], input=input)


def files(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_validate_reads_stdin_and_reports_against_it():
    broken = "version: 1\nproject: shop\nservices: {web: {image: 'a:1', port: 80, colour: red}}\n"
    result = run("validate", "-", input=broken)
    assert result.exit_code == 2 and result.stderr.startswith("error: <stdin>:3:42: services.web.colour: unknown key 'colour'")
    piped = json.loads(run("validate", "-", "--format", "json", input=REFERENCE.read_text()).stdout)
    named = json.loads(run("validate", REFERENCE, "--format", "json").stdout)
    assert {item["file"] for item in piped} == {"<stdin>"} and len(piped) == len(named) >= 5
    drop_file = [{key: value for key, value in item.items() if key != "file"} for item in named]
    assert [{key: value for key, value in item.items() if key != "file"} for item in piped] == drop_file


def test_render_from_stdin_resolves_config_files_from_the_current_directory(tmp_path, monkeypatch):
    """job-queue names `config/worker.toml`: read from stdin, the blueprint's folder is the current one."""
    text = (JOB_QUEUE / "blueprint.yaml").read_text()
    named = run("render", JOB_QUEUE / "blueprint.yaml", "-o", tmp_path / "named")
    assert named.exit_code == 0, named.output
    monkeypatch.chdir(tmp_path)
    elsewhere = run("render", "-", "-o", tmp_path / "elsewhere", input=text)
    assert elsewhere.exit_code == 2 and "error: <stdin>:52:10: services.worker.files[0].source: config does not exist" in elsewhere.stderr
    monkeypatch.chdir(JOB_QUEUE)
    piped = run("render", "-", "-o", tmp_path / "piped", input=text)
    assert piped.exit_code == 0, piped.output
    assert files(tmp_path / "piped") == files(tmp_path / "named")


def test_the_kubernetes_stream_holds_the_objects_of_the_files(tmp_path):
    streamed = run("render", REFERENCE, "--target", "kubernetes", "-o", "-")
    assert streamed.exit_code == 0, streamed.stderr
    assert "traefik-breaker-min-requests" in streamed.stderr and "traefik-breaker-min-requests" not in streamed.stdout
    documents = list(yaml.safe_load_all(streamed.stdout))
    assert run("render", REFERENCE, "--target", "kubernetes", "-o", tmp_path).exit_code == 0
    folder = tmp_path / "kubernetes"
    listed = yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"]
    assert sorted(set(listed)) == sorted(str(p.relative_to(folder)) for p in folder.rglob("*.yaml") if str(p.relative_to(folder)) not in NOT_MANIFESTS)
    from_files = [document for resource in listed for document in yaml.safe_load_all((folder / resource).read_text()) if document]
    assert documents == from_files and len(documents) > 40
    assert not any(document.get("kind") == "Kustomization" for document in documents)
    assert run("render", REFERENCE, "--target", "kubernetes", "-o", "-").stdout == streamed.stdout, "same blueprint, same bytes"


@pytest.mark.realtool
def test_the_kubernetes_stream_names_what_kubectl_kustomize_builds(tmp_path):
    from tests import realtools

    assert run("render", REFERENCE, "--target", "kubernetes", "-o", tmp_path).exit_code == 0
    built = subprocess.run([str(realtools.kubectl()), "kustomize", str(tmp_path / "kubernetes")], capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr

    def names(text: str) -> list[tuple[str, str, str]]:
        return sorted(
            (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]) for doc in yaml.safe_load_all(text) if doc
        )

    streamed = names(run("render", REFERENCE, "--target", "kubernetes", "-o", "-").stdout)
    assert streamed == names(built.stdout) and len(streamed) > 40


def test_a_failing_stream_prints_nothing(tmp_path):
    failing = tmp_path / "b.yaml"
    failing.write_text(REFERENCE.read_text().replace("payment:v1.4.2", "payment:latest"))
    result = run("render", failing, "--target", "kubernetes", "-o", "-")
    assert result.exit_code == 1 and result.stdout == "" and "image-latest" in result.stderr


@pytest.mark.parametrize(
    "extra", [[], ["--target", "compose"], ["--target", "kubernetes", "--target", "compose"], ["--target", "kubernetes", "--check"]]
)
def test_the_stream_is_kubernetes_only(extra):
    result = run("render", REFERENCE, "-o", "-", *extra)
    assert result.exit_code == 2 and result.stdout == "" and "use it with --target kubernetes alone" in result.stderr


def test_graph_refuses_png_on_a_terminal(tmp_path):
    """stdout a real terminal (a pseudo-terminal): no PNG bytes on it, exit 2 and a hint."""
    leader, follower = os.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "msgen", "graph", str(REFERENCE), "--format", "png"],
            stdout=follower,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
        os.close(follower)
        follower = -1
        printed = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal is closed on the other side: all read
                break
            if not chunk:
                break
            printed += chunk
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)
    assert done.returncode == 2 and printed == b""
    assert "--format png writes binary: use -o FILE, or pipe it" in done.stderr
    piped = run("graph", REFERENCE, "--format", "dot")
    assert piped.exit_code == 0 and piped.stdout.startswith("digraph")
