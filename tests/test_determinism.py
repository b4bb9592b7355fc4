"""The same blueprint gives the same bytes: across runs, processes and PYTHONHASHSEED values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from msgen import api
from msgen.model.load import load_blueprint


def tree(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def render_in_process(blueprint: Path, out_dir: Path, env: str | None = None) -> dict[str, bytes]:
    outcome = api.render(api.RenderRequest(blueprint, out_dir, env))
    assert outcome.wrote, [f.id for f in outcome.analysis.findings]
    return tree(out_dir)


def render_in_subprocess(blueprint: Path, out_dir: Path, seed: str, cwd: Path) -> dict[str, bytes]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    command = [sys.executable, "-m", "msgen", "render", str(blueprint), "-o", str(out_dir)]
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return tree(out_dir)


@pytest.mark.parametrize("starter", ["reference", "minimal"])
def test_two_renders_give_identical_trees(tmp_path, starter):
    blueprint = Path(__file__).resolve().parent.parent / "blueprints" / f"{starter}.yaml"
    first = render_in_process(blueprint, tmp_path / "a")
    assert first == render_in_process(blueprint, tmp_path / "b")
    assert first == render_in_process(blueprint, tmp_path / "a"), "a render over its own output changes nothing"


def test_hash_seeds_and_working_folders_do_not_change_the_output(tmp_path, reference_blueprint):
    # a blueprint in another folder, rendered from different working folders: no absolute
    # paths may leak into the output
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    copy = tmp_path / "one" / "blueprint.yaml"
    copy.write_bytes(reference_blueprint.read_bytes())
    seed0 = render_in_subprocess(copy, tmp_path / "out0", "0", tmp_path / "one")
    seed1 = render_in_subprocess(copy, tmp_path / "out1", "1", tmp_path / "two")
    assert seed0 == seed1
    assert seed0 == render_in_process(reference_blueprint, tmp_path / "out2")
    for name, data in seed0.items():
        assert str(tmp_path).encode() not in data, f"{name} holds an absolute path"


def test_environments_render_deterministically(tmp_path, reference_blueprint):
    staging = render_in_process(reference_blueprint, tmp_path / "s1", "staging")
    assert staging == render_in_process(reference_blueprint, tmp_path / "s2", "staging")


def test_a_comment_edit_does_not_change_the_blueprint_digest(tmp_path, reference_blueprint):
    edited = tmp_path / "edited.yaml"
    edited.write_text("# a new comment\n" + reference_blueprint.read_text().replace("# KVM instances", "# virtual machines"))
    digest = api.blueprint_digest(load_blueprint(reference_blueprint))
    assert digest == api.blueprint_digest(load_blueprint(edited))
    changed = tmp_path / "changed.yaml"
    changed.write_text(reference_blueprint.read_text().replace("replicas: 3", "replicas: 4"))
    assert digest != api.blueprint_digest(load_blueprint(changed))


def test_a_field_left_at_its_default_does_not_change_the_blueprint_digest(tmp_path, reference_blueprint):
    """A new msgen field with a default must not make every committed manifest stale; writing
    the default out is the same blueprint, and any other value is not."""
    digest = api.blueprint_digest(load_blueprint(reference_blueprint))
    for value, same in (("[]", True), ("[{target: {kind: Service, name: payment}, merge_patch: {}}]", False)):
        spelled = tmp_path / "spelled.yaml"
        spelled.write_text(reference_blueprint.read_text().replace('  version: "1.30"\n', f'  version: "1.30"\n  patches: {value}\n'))
        assert (api.blueprint_digest(load_blueprint(spelled)) == digest) is same, value
