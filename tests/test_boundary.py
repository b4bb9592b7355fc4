"""The output folder as a boundary: symbolic links planted in it, interrupted and concurrent
renders. Each test reproduces the attack or the accident and asserts that nothing outside
the folder was touched or read, and that the folder ends entirely old or entirely new."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from msgen import folder as folder_module
from msgen import writer
from msgen.cli import app
from msgen.errors import OutputError
from tests.test_writer import OWNED, File, tree
from tests.test_writer import write as write_files

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = ROOT / "blueprints" / "minimal.yaml"
REFERENCE = ROOT / "blueprints" / "reference.yaml"
runner = CliRunner()

sys.path.insert(0, str(ROOT / "benchmarks"))
from generate import blueprint_text  # noqa: E402


def render(*arguments: str):
    return runner.invoke(app, ["render", *arguments])


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder beside the output folder, standing for anything the user (or CI) can reach."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("CI_TOKEN=do-not-print\n")
    (folder / "docker-compose.yml").write_text("precious\n")
    return folder


# --- symbolic links ---------------------------------------------------------------------------


def test_a_symlinked_sub_folder_is_never_written_through(tmp_path, outside):
    out = tmp_path / "out"
    out.mkdir()
    (out / "compose").symlink_to(outside)
    before = tree(outside)
    result = render(str(REFERENCE), "-o", str(out))
    assert result.exit_code == 2 and "compose: is a symbolic link" in result.stderr
    assert tree(outside) == before
    assert sorted(path.name for path in out.iterdir()) == ["compose"], "nothing else was written"


def test_prune_never_follows_a_symlinked_folder(tmp_path, outside):
    out = tmp_path / "out"
    write_files(out, [File("datastores/orders-db/my.cnf", "precious\n", "datastores")], ["datastores"], "d")
    # the pull request replaces the folder by a link to one holding a file of the same bytes
    (out / "datastores" / "orders-db" / "my.cnf").unlink()
    (out / "datastores" / "orders-db").rmdir()
    (outside / "my.cnf").write_text("precious\n")
    (out / "datastores" / "orders-db").symlink_to(outside)
    with pytest.raises(OutputError, match="orders-db: is a symbolic link"):
        write_files(out, [], ["datastores"], "d")
    assert (outside / "my.cnf").read_text() == "precious\n"


def test_diff_never_reads_through_a_symlink(tmp_path, outside):
    out = tmp_path / "out"
    assert render(str(MINIMAL), "-o", str(out)).exit_code == 0
    (out / "traefik" / "traefik.yml").unlink()
    (out / "traefik" / "traefik.yml").symlink_to(outside / "secret.txt")
    result = render(str(MINIMAL), "-o", str(out), "--diff")
    assert result.exit_code == 2 and "traefik.yml: is a symbolic link" in result.stderr
    assert "do-not-print" not in result.stdout + result.stderr


def test_planted_temporary_symlinks_are_removed_not_followed(tmp_path, outside):
    """Links under the names temporary files had (and the manifest's): removed as leftovers,
    and what they point at stays as it was."""
    out = tmp_path / "out"
    assert render(str(MINIMAL), "-o", str(out)).exit_code == 0
    (out / "compose" / "docker-compose.yml.msgen-tmp").symlink_to(outside / "docker-compose.yml")
    (out / ".msgen-manifest.json.msgen-tmp").symlink_to(outside / "secret.txt")
    check = render(str(MINIMAL), "-o", str(out), "--check")
    assert check.exit_code == 1 and "left by an interrupted render: compose/docker-compose.yml.msgen-tmp" in check.stdout
    assert render(str(MINIMAL), "-o", str(out)).exit_code == 0
    assert not list(out.rglob("*.msgen-tmp"))
    assert (outside / "docker-compose.yml").read_text() == "precious\n"
    assert (outside / "secret.txt").read_text() == "CI_TOKEN=do-not-print\n"
    assert render(str(MINIMAL), "-o", str(out), "--check").exit_code == 0


def test_the_output_folder_itself_may_not_be_a_symlink(tmp_path, outside):
    link = tmp_path / "out"
    link.symlink_to(outside)
    for arguments in ([], ["--check"]):
        result = render(str(MINIMAL), "-o", str(link), *arguments)
        assert result.exit_code == 2 and "is a symbolic link" in result.stderr
    assert sorted(path.name for path in outside.iterdir()) == ["docker-compose.yml", "secret.txt"]


def test_a_planted_lock_symlink_is_refused(tmp_path, outside):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".msgen-lock").symlink_to(outside / "secret.txt")
    result = render(str(MINIMAL), "-o", str(out))
    assert result.exit_code == 2 and ".msgen-lock: is a symbolic link" in result.stderr
    assert (outside / "secret.txt").read_text() == "CI_TOKEN=do-not-print\n"


def test_a_planted_journal_cannot_reach_a_users_file(tmp_path):
    out = tmp_path / "out"
    assert render(str(MINIMAL), "-o", str(out)).exit_code == 0
    (out / "NOTES.md").write_text("mine\n")
    journal = {"renames": [], "prunes": [["NOTES.md", writer.sha256(b"mine\n")]], "manifest": (out / writer.MANIFEST).read_text()}
    (out / writer.JOURNAL).write_text(json.dumps(journal))
    result = render(str(MINIMAL), "-o", str(out))
    assert result.exit_code == 2 and "names 'NOTES.md', a path msgen never writes" in result.stderr
    assert (out / "NOTES.md").read_text() == "mine\n"


# --- interrupted commits ------------------------------------------------------------------------

OLD = [File("alpha/one.yml", "one: 1\n", "alpha"), File("alpha/deep/two.yml", "two: 2\n", "alpha"), File("beta/b.yml", "b: 1\n", "beta")]
NEW = [File("alpha/one.yml", "one: 2\n", "alpha"), File("alpha/new/three.yml", "three: 3\n", "alpha"), File("beta/b.yml", "b: 2\n", "beta")]


def interrupted_at(tmp_path: Path, step: int, monkeypatch) -> Path:
    """The folder after a render of NEW over OLD that fails at its `step`-th rename or removal."""
    out = tmp_path / f"out-{step}"
    write_files(out, OLD, ["alpha", "beta"], "old")
    done = {"count": 0}
    for name in ("replace", "unlink"):
        real = getattr(folder_module.OutputFolder, name)

        def failing(self, *arguments, real=real):
            done["count"] += 1
            if done["count"] == step:
                raise OSError(5, "Input/output error")
            return real(self, *arguments)

        monkeypatch.setattr(folder_module.OutputFolder, name, failing)
    with contextlib.suppress(OutputError):  # the interruption, as a crash would leave it
        write_files(out, NEW, ["alpha", "beta"], "new")
    monkeypatch.undo()
    return out


def expected(tmp_path: Path, files: list[File], digest: str) -> dict[str, bytes]:
    clean = tmp_path / f"clean-{digest}"
    write_files(clean, files, ["alpha", "beta"], digest)
    return tree(clean)


def test_an_interrupted_commit_is_finished_by_the_next_render(tmp_path, monkeypatch):
    old, new = expected(tmp_path, OLD, "old"), expected(tmp_path, NEW, "new")
    steps = 0
    for step in range(1, 40):
        out = interrupted_at(tmp_path, step, monkeypatch)
        state = tree(out)
        if state == new:
            break  # the step count ran past the commit: nothing failed
        steps += 1
        # right after the interruption: old as it was, or reported as drift, never "up to date" over a mix
        check = writer.Comparison(out, OWNED)
        for file in NEW:
            check.add(file.path, file.target, file.text.encode())
        assert state == old or check.finish(["alpha", "beta"]).drift, step
        write_files(out, NEW, ["alpha", "beta"], "new")
        assert tree(out) == new, step
    assert steps >= 4, "the commit has several steps, each interrupted once"


# --- two renders at once ------------------------------------------------------------------------


def test_two_renders_at_once_end_consistent(tmp_path):
    out = tmp_path / "out"
    blueprints = []
    for count in (30, 31):
        path = tmp_path / f"b{count}.yaml"
        path.write_text(blueprint_text(count))
        blueprints.append(path)
    processes = [
        subprocess.Popen([sys.executable, "-m", "msgen", "render", str(path), "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for path in blueprints
    ]
    results = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], results
    matching = [path for path in blueprints if render(str(path), "-o", str(out), "--check").exit_code == 0]
    assert len(matching) == 1, "the folder is exactly one blueprint's output"
    assert not list(out.rglob("*.msgen-tmp")) and not (out / ".msgen-lock").exists()


def test_a_held_lock_makes_the_second_render_wait_then_fail_clearly(tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert render(str(MINIMAL), "-o", str(out)).exit_code == 0
    descriptor = os.open(out / ".msgen-lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    monkeypatch.setattr(folder_module, "LOCK_WAIT_S", 0.3)
    try:
        result = render(str(MINIMAL), "-o", str(out))
        check = render(str(MINIMAL), "-o", str(out), "--check")  # takes no lock, writes nothing
    finally:
        os.close(descriptor)
    assert result.exit_code == 2 and "another msgen render has held its lock" in result.stderr
    assert check.exit_code == 0


# --- killed renders ---------------------------------------------------------------------------


# each round renders three times: enough rounds that kills land in every phase of a render
ROUNDS = 24


def test_a_render_killed_at_random_moments_never_leaves_a_mix(tmp_path, outside):
    """SIGKILL at random moments of renders that turn one blueprint's output into another's
    (and back): after each kill `--check` never says "up to date" unless the folder is that
    render's whole output, and the next render finishes it with no temporary file left and
    nothing outside the folder touched."""
    before_outside = tree(outside)
    blueprints = [tmp_path / "a.yaml", tmp_path / "b.yaml"]
    blueprints[0].write_text(blueprint_text(60))
    blueprints[1].write_text(blueprint_text(54))  # other names and six services fewer: files change and go
    out = tmp_path / "out"
    command = [sys.executable, "-m", "msgen", "render"]
    trees, durations = [], []
    for path in blueprints:
        started = time.monotonic()
        subprocess.run([*command, str(path), "-o", str(out)], capture_output=True, timeout=120, check=True)
        durations.append(time.monotonic() - started)
        trees.append(tree(out))
    chance = random.Random(20261207)
    killed = 0
    for round_ in range(ROUNDS):
        goal = round_ % 2  # the folder holds the other blueprint's output now
        process = subprocess.Popen([*command, str(blueprints[goal]), "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(chance.uniform(0.05, max(durations) * 1.1))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        killed += process.returncode == -signal.SIGKILL
        check = subprocess.run([*command, str(blueprints[goal]), "-o", str(out), "--check"], capture_output=True, text=True, timeout=120)
        if check.returncode == 0:
            assert tree(out) == trees[goal], "up to date means exactly that render's output"
        else:
            assert check.returncode == 1 and "drift:" in check.stdout, check.stderr
        finish = subprocess.run([*command, str(blueprints[goal]), "-o", str(out)], capture_output=True, text=True, timeout=120)
        assert finish.returncode == 0, finish.stderr
        assert tree(out) == trees[goal]
        assert not list(out.rglob("*.msgen-tmp")) and not (out / writer.JOURNAL).exists()
    assert tree(outside) == before_outside
    assert killed >= ROUNDS // 2, f"only {killed} of {ROUNDS} renders were killed before they finished"
