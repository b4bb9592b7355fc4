"""Writes artifacts into the output folder: owned files only, atomically, with a manifest.

The manifest (.msgen-manifest.json) lists every file msgen wrote, its target and sha256.
Only files listed there are ever overwritten or pruned; pruning is limited to the targets
rendered now. All files are first written to temporary names beside their destinations
and renamed into place only when every one was written, so a failure leaves the folder
as it was.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from msgen import __version__
from msgen.errors import OutputError
from msgen.targets import Artifact

MANIFEST = ".msgen-manifest.json"
_TMP_SUFFIX = ".msgen-tmp"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Manifest:
    files: dict[str, dict[str, str]] = field(default_factory=dict)  # path -> {target, sha256}
    blueprint_digest: str = ""

    @classmethod
    def read(cls, out_dir: Path) -> Manifest:
        path = out_dir / MANIFEST
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            files = {str(k): {"target": str(v["target"]), "sha256": str(v["sha256"])} for k, v in data["files"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise OutputError(f"{path}: not a manifest msgen can read ({error}); move it away to start afresh") from None
        outside = sorted(name for name in files if not _is_inside(name))
        if outside:  # pruning follows the manifest: it must never reach outside the folder
            raise OutputError(f"{path}: lists {outside[0]!r}, outside the output folder; move the manifest away to start afresh")
        return cls(files, str(data.get("blueprint_digest", "")))

    def text(self) -> str:
        data = {
            "generator": "msgen",
            "msgen_version": __version__,
            "blueprint_digest": self.blueprint_digest,
            "files": {path: self.files[path] for path in sorted(self.files)},
        }
        return json.dumps(data, indent=2) + "\n"


@dataclass
class Changes:
    """What a render would do to the output folder."""

    created: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    diffs: list[str] = field(default_factory=list)

    @property
    def drift(self) -> bool:
        return bool(self.created or self.changed or self.pruned)

    def pruned_datastores(self) -> list[str]:
        return sorted({path.split("/")[1] for path in self.pruned if path.startswith("datastores/") and path.count("/") >= 2})


def _is_inside(relative: str) -> bool:
    parts = Path(relative).parts
    return bool(parts) and not Path(relative).is_absolute() and ".." not in parts and "\\" not in relative


def _safe_destination(out_dir: Path, relative: str) -> Path:
    if not _is_inside(relative):  # pragma: no cover - targets make relative paths
        raise OutputError(f"refusing to write outside the output folder: {relative}")
    return out_dir / relative


def compare(out_dir: Path, artifacts: list[Artifact], targets: list[str], want_diffs: bool = False) -> Changes:
    """Compare what would be written with what is on disk, and refuse foreign files."""
    manifest = Manifest.read(out_dir)
    changes = Changes()
    produced = {artifact.path for artifact in artifacts}
    for artifact in artifacts:
        destination = _safe_destination(out_dir, artifact.path)
        _refuse_foreign_parents(out_dir, destination)
        if destination.is_dir():
            raise OutputError(f"{destination}: is a folder where msgen writes a file; move it away")
        if not destination.exists():
            changes.created.append(artifact.path)
            if want_diffs:
                changes.diffs.append(_diff(artifact.path, "", artifact.text))
            continue
        if artifact.path not in manifest.files:
            raise OutputError(f"{destination}: exists and was not written by msgen; move it away or choose another output folder")
        current = destination.read_bytes()
        if current == artifact.text.encode("utf-8"):
            changes.unchanged.append(artifact.path)
        else:
            changes.changed.append(artifact.path)
            if want_diffs:
                changes.diffs.append(_diff(artifact.path, current.decode("utf-8", "replace"), artifact.text))
    for path, entry in sorted(manifest.files.items()):
        if entry["target"] in targets and path not in produced and (out_dir / path).exists():
            changes.pruned.append(path)
            if want_diffs:
                changes.diffs.append(_diff(path, (out_dir / path).read_text(encoding="utf-8", errors="replace"), ""))
    return changes


def _refuse_foreign_parents(out_dir: Path, destination: Path) -> None:
    folder = destination.parent
    while folder != out_dir:
        if folder.exists() and not folder.is_dir():
            raise OutputError(f"{folder}: is a file where msgen needs a folder; move it away or choose another output folder")
        folder = folder.parent


def _diff(path: str, before: str, after: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), fromfile=f"a/{path}", tofile=f"b/{path}"
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def write(out_dir: Path, artifacts: list[Artifact], targets: list[str], blueprint_digest: str) -> Changes:
    """Bring the output folder in line with `artifacts` for the rendered `targets`."""
    changes = compare(out_dir, artifacts, targets)
    manifest = Manifest.read(out_dir)
    to_write = set(changes.created) | set(changes.changed)
    pending = [a for a in artifacts if a.path in to_write]
    _stage_and_replace(out_dir, pending)
    for path in changes.pruned:
        (out_dir / path).unlink(missing_ok=True)
        _remove_empty_parents(out_dir, (out_dir / path).parent)
        manifest.files.pop(path, None)
    produced = {artifact.path for artifact in artifacts}
    for path in list(manifest.files):
        if manifest.files[path]["target"] in targets and path not in produced:
            manifest.files.pop(path)  # listed but already gone from disk
    for artifact in artifacts:
        manifest.files[artifact.path] = {"target": artifact.target, "sha256": sha256(artifact.text)}
    manifest.blueprint_digest = blueprint_digest
    manifest_path = out_dir / MANIFEST
    new_manifest = manifest.text()
    if not manifest_path.exists() or manifest_path.read_text(encoding="utf-8") != new_manifest:
        temporary = manifest_path.with_name(MANIFEST + _TMP_SUFFIX)
        temporary.write_text(new_manifest, encoding="utf-8")
        os.replace(temporary, manifest_path)
    return changes


def _stage_and_replace(out_dir: Path, pending: list[Artifact]) -> None:
    """Write every file beside its destination, then rename them all into place.

    Until every temporary file is written nothing visible has changed, so a failure (a full
    disk, a permission) removes the temporary files and the folders made for them and
    leaves the output folder as it was.
    """
    staged: list[tuple[Path, Path]] = []
    made: list[Path] = []
    try:
        for artifact in pending:
            destination = _safe_destination(out_dir, artifact.path)
            made.extend(_make_parents(out_dir, destination.parent))
            temporary = destination.with_name(destination.name + _TMP_SUFFIX)
            staged.append((temporary, destination))
            temporary.write_bytes(artifact.text.encode("utf-8"))
    except OSError as error:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
        for folder in reversed(made):
            _remove_empty_parents(out_dir, folder)
        raise OutputError(f"cannot write {error.filename}: {error.strerror}; the output folder was left as it was") from None
    for temporary, destination in staged:
        os.replace(temporary, destination)


def _make_parents(out_dir: Path, folder: Path) -> list[Path]:
    """Create `folder` and its missing parents inside `out_dir`; return the ones made, outermost first."""
    missing = []
    while not folder.is_dir() and folder != out_dir:
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir()
    return list(reversed(missing))


def _remove_empty_parents(out_dir: Path, folder: Path) -> None:
    root = out_dir.resolve()
    while folder.resolve() != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
