"""The writer: owned files only, atomic, pruning per target, and --check/--diff drift."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from msgen import writer
from msgen.cli import app
from msgen.errors import OutputError
from msgen.targets import text_file
from msgen.writer import MANIFEST, Changes, Comparison


@dataclass(frozen=True)
class File:
    path: str
    text: str
    target: str


A1 = File("alpha/one.yml", "one: 1\n", "alpha")
A2 = File("alpha/deep/two.yml", "two: 2\n", "alpha")
B1 = File("beta/three.yml", "three: 3\n", "beta")
D1 = File("datastores/orders-db/my.cnf", "[mysqld]\n", "datastores")


# where the test targets write, as the real targets declare it
OWNED = {"alpha": ("alpha/",), "beta": ("beta/",), "datastores": ("datastores/",)}


def write(out_dir: Path, files: list[File], targets: list[str], digest: str) -> Changes:
    return writer.write(out_dir, [(file.path, file.target, file.text) for file in files], targets, digest, OWNED)


def compare(out_dir: Path, files: list[File], targets: list[str], want_diffs: bool = False) -> Changes:
    comparison = Comparison(out_dir, OWNED, want_diffs)
    for file in files:
        comparison.add(file.path, file.target, file.text.encode())
    return comparison.finish(targets)


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes (temporary leftovers included)."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_first_write_creates_files_and_manifest(tmp_path):
    changes = write(tmp_path, [A1, A2, B1], ["alpha", "beta"], "digest-1")
    assert sorted(changes.created) == ["alpha/deep/two.yml", "alpha/one.yml", "beta/three.yml"]
    assert (tmp_path / "alpha/deep/two.yml").read_text() == "two: 2\n"
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["blueprint_digest"] == "digest-1"
    assert list(manifest["files"]) == sorted(manifest["files"])
    assert manifest["files"]["beta/three.yml"] == {"target": "beta", "sha256": writer.sha256(b"three: 3\n")}
    assert not [path for path in tree(tmp_path) if path.endswith(".msgen-tmp")]


def test_second_write_changes_nothing(tmp_path):
    write(tmp_path, [A1, B1], ["alpha", "beta"], "d")
    before = {path: os.stat(tmp_path / path).st_mtime_ns for path in tree(tmp_path)}
    changes = write(tmp_path, [A1, B1], ["alpha", "beta"], "d")
    assert changes.unchanged == ["alpha/one.yml", "beta/three.yml"] and not changes.drift
    assert {path: os.stat(tmp_path / path).st_mtime_ns for path in tree(tmp_path)} == before


def test_never_touches_files_it_did_not_write(tmp_path):
    (tmp_path / "alpha").mkdir()
    (tmp_path / "alpha" / "notes.txt").write_text("mine")
    (tmp_path / "README.md").write_text("mine too")
    write(tmp_path, [A1, A2], ["alpha"], "d")
    write(tmp_path, [], ["alpha"], "d")  # prunes every alpha file msgen wrote
    assert tree(tmp_path) == {"README.md": b"mine too", "alpha/notes.txt": b"mine", MANIFEST: (tmp_path / MANIFEST).read_bytes()}


def test_refuses_to_overwrite_a_foreign_file(tmp_path):
    (tmp_path / "alpha").mkdir()
    (tmp_path / "alpha" / "one.yml").write_text("hand written\n")
    before = tree(tmp_path)
    with pytest.raises(OutputError, match=r"alpha/one.yml: exists and was not written by msgen"):
        write(tmp_path, [A2, A1], ["alpha"], "d")
    assert tree(tmp_path) == before


def test_refuses_a_foreign_file_where_a_folder_must_be(tmp_path):
    (tmp_path / "alpha").write_text("a file")
    with pytest.raises(OutputError, match="is a file where msgen needs a folder"):
        write(tmp_path, [A1], ["alpha"], "d")
    assert tree(tmp_path) == {"alpha": b"a file"}


def test_a_file_a_person_edited_is_kept_without_force(tmp_path):
    write(tmp_path, [A1, A2], ["alpha"], "d")
    (tmp_path / "alpha/one.yml").write_text("edited\n")
    (tmp_path / "alpha/deep/two.yml").write_text("edited too\n")
    before = tree(tmp_path)
    # overwritten (one.yml) or pruned (two.yml): either loses the edit
    with pytest.raises(OutputError, match=r"edited by hand since msgen wrote them: alpha/deep/two.yml, alpha/one.yml;.*--force"):
        write(tmp_path, [A1], ["alpha"], "d")
    assert tree(tmp_path) == before
    changes = compare(tmp_path, [A1], ["alpha"])
    assert changes.edited == ["alpha/deep/two.yml", "alpha/one.yml"] and changes.drift
    staging = writer.Staging(tmp_path, OWNED, force=True)
    staging.add(A1.path, A1.target, A1.text.encode())
    changes = staging.commit(["alpha"], "d")
    assert changes.edited == ["alpha/deep/two.yml", "alpha/one.yml"] and changes.pruned == ["alpha/deep/two.yml"]
    assert (tmp_path / "alpha/one.yml").read_text() == "one: 1\n" and not (tmp_path / "alpha/deep").exists()


def test_pruning_is_limited_to_the_rendered_targets(tmp_path):
    write(tmp_path, [A1, A2, B1], ["alpha", "beta"], "d")
    changes = write(tmp_path, [A1], ["alpha"], "d")  # like `--target alpha`, where alpha no longer makes two.yml
    assert changes.pruned == ["alpha/deep/two.yml"]
    assert not (tmp_path / "alpha/deep").exists(), "emptied folders go with their files"
    assert (tmp_path / "beta/three.yml").read_text() == "three: 3\n"
    files = json.loads((tmp_path / MANIFEST).read_text())["files"]
    assert sorted(files) == ["alpha/one.yml", "beta/three.yml"], "beta stays owned"
    changes = write(tmp_path, [A1], ["alpha", "beta"], "d")
    assert changes.pruned == ["beta/three.yml"] and not (tmp_path / "beta").exists()


def test_pruned_datastore_files_are_named(tmp_path):
    write(tmp_path, [A1, D1], ["alpha", "datastores"], "d")
    changes = write(tmp_path, [A1], ["alpha", "datastores"], "d")
    assert changes.pruned_datastores() == ["orders-db"]


def test_a_failure_half_way_leaves_the_old_output_intact(tmp_path, monkeypatch):
    write(tmp_path, [A1, B1], ["alpha", "beta"], "old")
    before = tree(tmp_path)
    new = [
        File(A1.path, "one: changed\n", "alpha"),
        File("alpha/new/x.yml", "x: 1\n", "alpha"),
        File(B1.path, "b: 2\n", "beta"),
    ]
    real_write = os.write
    calls = []

    def failing_write(descriptor, data):
        calls.append(descriptor)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_write(descriptor, data)

    monkeypatch.setattr(os, "write", failing_write)
    with pytest.raises(OutputError, match="No space left on device"):
        write(tmp_path, new, ["alpha", "beta"], "new")
    monkeypatch.undo()
    assert len(calls) == 2
    assert tree(tmp_path) == before
    assert not (tmp_path / "alpha/new").exists()


def test_a_failed_render_via_the_cli_keeps_the_old_output(tmp_path, monkeypatch, minimal_blueprint):
    out_dir = tmp_path / "out"
    assert CliRunner().invoke(app, ["render", str(minimal_blueprint), "-o", str(out_dir), "--target", "base"]).exit_code == 0
    before = tree(out_dir)

    def failing_write(descriptor, data):
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(os, "write", failing_write)
    result = CliRunner().invoke(app, ["render", str(minimal_blueprint), "-o", str(out_dir)])
    monkeypatch.undo()
    assert result.exit_code == 2 and "Permission denied" in result.output and "Traceback" not in result.output
    assert tree(out_dir) == before


def test_check_on_clean_edited_missing_and_prunable_files(tmp_path):
    write(tmp_path, [A1, A2, B1], ["alpha", "beta"], "d")
    before = tree(tmp_path)
    assert not compare(tmp_path, [A1, A2, B1], ["alpha", "beta"]).drift
    (tmp_path / "alpha/one.yml").write_text("edited\n")
    (tmp_path / "beta/three.yml").unlink()
    edited = tree(tmp_path)
    extra = File("alpha/extra.yml", "e: 1\n", "alpha")
    changes = compare(tmp_path, [A1, extra, B1], ["alpha", "beta"], want_diffs=True)
    assert changes.edited == ["alpha/one.yml"], "a person changed it since msgen wrote it"
    assert changes.created == ["alpha/extra.yml", "beta/three.yml"]
    assert changes.pruned == ["alpha/deep/two.yml"]
    diffs = "".join(changes.diffs)
    assert "--- a/alpha/one.yml\n+++ b/alpha/one.yml\n" in diffs and "-edited\n+one: 1\n" in diffs
    assert "+++ b/alpha/extra.yml" in diffs and "-two: 2\n" in diffs
    assert tree(tmp_path) == edited != before, "--check writes nothing"


def test_check_does_not_compare_the_manifest_bytes(tmp_path):
    write(tmp_path, [A1], ["alpha"], "d")
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    manifest["msgen_version"] = "0.0.0-older"
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    assert not compare(tmp_path, [A1], ["alpha"]).drift


def test_an_unreadable_manifest_is_an_output_error(tmp_path):
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(OutputError, match="not a manifest msgen can read"):
        write(tmp_path, [A1], ["alpha"], "d")


def test_cli_check_and_diff(tmp_path, minimal_blueprint):
    out_dir = tmp_path / "out"
    runner = CliRunner()
    missing = runner.invoke(app, ["render", str(minimal_blueprint), "-o", str(out_dir), "--check"])
    assert missing.exit_code == 1 and "drift: missing: .gitignore" in missing.stdout
    assert not out_dir.exists()
    assert runner.invoke(app, ["render", str(minimal_blueprint), "-o", str(out_dir)]).exit_code == 0
    clean = runner.invoke(app, ["render", str(minimal_blueprint), "-o", str(out_dir), "--check"])
    assert clean.exit_code == 0 and "up to date" in clean.stdout
    (out_dir / ".gitignore").write_text("/secrets/\nedited\n")
    edited = runner.invoke(app, ["render", str(minimal_blueprint), "-o", str(out_dir), "--diff"])
    assert edited.exit_code == 1
    assert "drift: edited by hand: .gitignore" in edited.stdout and "-edited\n" in edited.stdout
    assert (out_dir / ".gitignore").read_text() == "/secrets/\nedited\n"
    refused = runner.invoke(app, ["render", str(minimal_blueprint), "-o", str(out_dir)])
    assert refused.exit_code == 2 and "edited by hand since msgen wrote them: .gitignore" in refused.stderr
    forced = runner.invoke(app, ["render", str(minimal_blueprint), "-o", str(out_dir), "--force"])
    assert forced.exit_code == 0 and "overwrote or pruned files edited by hand: .gitignore" in forced.stderr
    assert "edited" not in (out_dir / ".gitignore").read_text()


def test_cli_check_reports_files_that_would_be_pruned(tmp_path, minimal_blueprint):
    out_dir = tmp_path / "out"
    assert CliRunner().invoke(app, ["render", str(minimal_blueprint), "-o", str(out_dir)]).exit_code == 0
    manifest = json.loads((out_dir / MANIFEST).read_text())
    manifest["files"]["datastores/old-db/my.cnf"] = {"target": "datastores", "sha256": writer.sha256(b"x")}
    (out_dir / MANIFEST).write_text(json.dumps(manifest))
    (out_dir / "datastores/old-db").mkdir(parents=True)
    (out_dir / "datastores/old-db/my.cnf").write_text("x")
    result = CliRunner().invoke(app, ["render", str(minimal_blueprint), "-o", str(out_dir), "--check"])
    assert result.exit_code == 1 and "drift: would be pruned: datastores/old-db/my.cnf" in result.stdout
    assert CliRunner().invoke(app, ["render", str(minimal_blueprint), "-o", str(out_dir)]).exit_code == 0
    assert not (out_dir / "datastores/old-db").exists()


def test_cli_render_into_a_file_is_an_error(tmp_path, minimal_blueprint):
    target = tmp_path / "file"
    target.write_text("x")
    result = CliRunner().invoke(app, ["render", str(minimal_blueprint), "-o", str(target)])
    assert result.exit_code == 2 and "is not a folder" in result.output


def test_a_manifest_naming_paths_outside_the_folder_is_refused(tmp_path):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    write(out_dir, [A1], ["alpha"], "d")
    manifest = json.loads((out_dir / MANIFEST).read_text())
    for entry, target in (("../precious.txt", "alpha"), ("alpha/../../precious.txt", "alpha"), ("/tmp/x", "alpha"), ("./alpha/one.yml", "alpha")):
        manifest["files"] = {entry: {"target": target, "sha256": writer.sha256(b"keep me")}}
        (out_dir / MANIFEST).write_text(json.dumps(manifest))
        with pytest.raises(OutputError, match="a path msgen never writes there"):
            write(out_dir, [A1], ["alpha"], "d")
    assert outside.read_text() == "keep me"


def test_a_manifest_naming_a_users_file_cannot_prune_it(tmp_path):
    """A manifest planted in a pull request lists the user's NOTES.md under a target: refused,
    because no target writes there; the file stays."""
    write(tmp_path, [A1], ["alpha"], "d")
    (tmp_path / "NOTES.md").write_text("mine\n")
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    manifest["files"]["NOTES.md"] = {"target": "alpha", "sha256": writer.sha256(b"mine\n")}
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(OutputError, match=r"lists 'NOTES\.md' for target 'alpha', a path msgen never writes there"):
        write(tmp_path, [], ["alpha"], "d")
    assert (tmp_path / "NOTES.md").read_text() == "mine\n"


def test_malformed_yaml_never_reaches_the_disk(tmp_path):
    from msgen.api import check_well_formed
    from msgen.errors import MsgenError

    check_well_formed(A1.path, A1.text.encode())
    with pytest.raises(MsgenError, match=r"rendered broken.yml is not well formed"):
        check_well_formed("broken.yml", b"a: [1, 2\nb: 3\n")
    with pytest.raises(MsgenError, match=r"rendered broken.json is not well formed"):
        check_well_formed("broken.json", b"{")


def test_a_malformed_file_from_a_target_leaves_nothing_written(tmp_path, monkeypatch, minimal_blueprint):
    """Found after good files were staged: those are removed again and nothing is written."""
    from msgen.targets import base

    monkeypatch.setattr(base, "render", lambda plan: [text_file("broken.yml", "base", lambda: "a: [1, 2\nb: 3\n")])
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["render", str(minimal_blueprint), "-o", str(out)])
    assert result.exit_code == 3 and "rendered broken.yml is not well formed" in result.stderr
    assert not out.exists()


def test_cli_target_renders_and_prunes_only_that_target(tmp_path, reference_blueprint):
    out_dir = tmp_path / "out"
    assert CliRunner().invoke(app, ["render", str(reference_blueprint), "-o", str(out_dir)]).exit_code == 0
    owned = json.loads((out_dir / MANIFEST).read_text())["files"]
    others = sorted(path for path, entry in owned.items() if entry["target"] != "base")
    assert others, "the reference blueprint renders more than the base target"
    before = tree(out_dir)
    result = CliRunner().invoke(app, ["render", str(reference_blueprint), "-o", str(out_dir), "--target", "base"])
    assert result.exit_code == 0 and "not rendered now: " in result.stderr
    assert tree(out_dir) == before
    assert sorted(json.loads((out_dir / MANIFEST).read_text())["files"]) == sorted(owned)


def test_a_folder_that_cannot_be_made_leaves_no_empty_parents(tmp_path, monkeypatch):
    """A write that fails making a deep folder takes back the parents it made for it."""
    real_mkdir = os.mkdir

    def mkdir(path, *args, **kwargs):
        if path == "deepest":
            raise PermissionError(13, "Permission denied")
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    with pytest.raises(OutputError, match="Permission denied"):
        write(tmp_path, [File("alpha/deeper/deepest/x.yml", "x: 1\n", "alpha")], ["alpha"], "d")
    assert list(tmp_path.iterdir()) == []
