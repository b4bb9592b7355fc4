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
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from msgen import __version__
from msgen.errors import OutputError
from msgen.targets import Artifact

MANIFEST = ".msgen-manifest.json"
_TMP_SUFFIX = ".msgen-tmp"
# called with each artifact and its text before anything is written; raises to stop the render
Verify = Callable[[Artifact, str], None]


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
    parts = relative.split("/")
    return bool(relative) and not relative.startswith("/") and ".." not in parts and "\\" not in relative


def _safe_destination(out_dir: Path, relative: str) -> Path:
    if not _is_inside(relative):  # pragma: no cover - targets make relative paths
        raise OutputError(f"refusing to write outside the output folder: {relative}")
    return out_dir / relative


def compare(
    out_dir: Path, artifacts: list[Artifact], targets: list[str], want_diffs: bool = False, verify: Verify | None = None
) -> Changes:
    """Compare what would be written with what is on disk, and refuse foreign files."""
    manifest = Manifest.read(out_dir)
    changes = Changes()
    folders = _Folders(out_dir)
    for artifact, data in _contents(artifacts, verify):
        state = _state(folders, manifest, artifact, data)
        getattr(changes, state).append(artifact.path)
        if want_diffs and state != "unchanged":
            before = (out_dir / artifact.path).read_text(encoding="utf-8", errors="replace") if state == "changed" else ""
            changes.diffs.append(_diff(artifact.path, before, data.decode("utf-8")))
    changes.pruned = _prunable(out_dir, manifest, artifacts, targets)
    if want_diffs:
        for path in changes.pruned:
            changes.diffs.append(_diff(path, (out_dir / path).read_text(encoding="utf-8", errors="replace"), ""))
    return changes


def _contents(artifacts: list[Artifact], verify: Verify | None) -> Iterator[tuple[Artifact, bytes]]:
    """Each artifact with its bytes, formatted one at a time (and checked by `verify`)."""
    for artifact in artifacts:
        text = artifact.text
        if verify is not None:
            verify(artifact, text)
        yield artifact, text.encode("utf-8")


def _state(folders: _Folders, manifest: Manifest, artifact: Artifact, data: bytes) -> str:
    """created, changed or unchanged; a file msgen did not write is refused."""
    _safe_destination(folders.out_dir, artifact.path)
    folder = artifact.path.rpartition("/")[0]
    if not folders.exists(folder):
        return "created"
    destination = folders.out_dir / artifact.path
    try:
        mode = os.stat(destination).st_mode
    except FileNotFoundError:
        return "created"
    if stat.S_ISDIR(mode):
        raise OutputError(f"{destination}: is a folder where msgen writes a file; move it away")
    if artifact.path not in manifest.files:
        raise OutputError(f"{destination}: exists and was not written by msgen; move it away or choose another output folder")
    return "unchanged" if destination.read_bytes() == data else "changed"


class _Folders:
    """The output folder's sub-folders (relative, `a/b`), each looked at once: thousands of
    files share a few hundred folders. A file where a folder belongs is refused."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.present: dict[str, bool] = {"": True}

    def exists(self, folder: str) -> bool:
        if folder not in self.present:
            parent = folder.rpartition("/")[0]
            self.present[folder] = self.exists(parent) and self._is_folder(self.out_dir / folder)
        return self.present[folder]

    @staticmethod
    def _is_folder(path: Path) -> bool:
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            return False
        if not stat.S_ISDIR(mode):
            raise OutputError(f"{path}: is a file where msgen needs a folder; move it away or choose another output folder")
        return True

    def make(self, folder: str) -> list[Path]:
        """Create `folder` and its missing parents; return the ones made, outermost first."""
        if self.exists(folder):
            return []
        made = self.make(folder.rpartition("/")[0])
        (self.out_dir / folder).mkdir()
        self.present[folder] = True
        return [*made, self.out_dir / folder]


def _prunable(out_dir: Path, manifest: Manifest, artifacts: list[Artifact], targets: list[str]) -> list[str]:
    """Files msgen wrote for the rendered targets that they no longer produce."""
    produced = {artifact.path for artifact in artifacts}
    return [
        path
        for path, entry in sorted(manifest.files.items())
        if entry["target"] in targets and path not in produced and (out_dir / path).exists()
    ]


def _diff(path: str, before: str, after: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), fromfile=f"a/{path}", tofile=f"b/{path}"
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def write(out_dir: Path, artifacts: list[Artifact], targets: list[str], blueprint_digest: str, verify: Verify | None = None) -> Changes:
    """Bring the output folder in line with `artifacts` for the rendered `targets`.

    One pass: each file is formatted, compared and, when new or changed, written beside its
    destination under a temporary name; only when every file is staged are they renamed into
    place. Until then nothing visible has changed, so a failure (a foreign file, a full disk)
    removes what was staged and leaves the output folder as it was.
    """
    manifest = Manifest.read(out_dir)
    changes = Changes()
    folders = _Folders(out_dir)
    staging = _Staging(folders)
    try:
        for artifact, data in _contents(artifacts, verify):
            state = _state(folders, manifest, artifact, data)
            getattr(changes, state).append(artifact.path)
            if state != "unchanged":
                staging.stage(artifact.path, data)
            manifest.files[artifact.path] = {"target": artifact.target, "sha256": hashlib.sha256(data).hexdigest()}
    except OSError as error:
        staging.discard()
        raise OutputError(f"cannot write {error.filename}: {error.strerror}; the output folder was left as it was") from None
    except BaseException:
        staging.discard()
        raise
    staging.commit()
    changes.pruned = _prunable(out_dir, manifest, artifacts, targets)
    for path in changes.pruned:
        (out_dir / path).unlink(missing_ok=True)
        _remove_empty_parents(out_dir, (out_dir / path).parent)
    produced = {artifact.path for artifact in artifacts}
    for path in list(manifest.files):
        if manifest.files[path]["target"] in targets and path not in produced:
            manifest.files.pop(path)  # pruned now, or listed but already gone from disk
    manifest.blueprint_digest = blueprint_digest
    manifest_path = out_dir / MANIFEST
    new_manifest = manifest.text()
    if not manifest_path.exists() or manifest_path.read_text(encoding="utf-8") != new_manifest:
        temporary = manifest_path.with_name(MANIFEST + _TMP_SUFFIX)
        temporary.write_text(new_manifest, encoding="utf-8")
        os.replace(temporary, manifest_path)
    return changes


class _Staging:
    """Files written beside their destinations under temporary names, and the folders made for them."""

    def __init__(self, folders: _Folders) -> None:
        self.folders = folders
        self.out_dir = folders.out_dir
        self.staged: list[tuple[Path, Path]] = []
        self.made: list[Path] = []

    def stage(self, relative: str, data: bytes) -> None:
        destination = _safe_destination(self.out_dir, relative)
        self.made.extend(self.folders.make(relative.rpartition("/")[0]))
        temporary = destination.with_name(destination.name + _TMP_SUFFIX)
        self.staged.append((temporary, destination))
        temporary.write_bytes(data)

    def discard(self) -> None:
        for temporary, _ in self.staged:
            temporary.unlink(missing_ok=True)
        for folder in reversed(self.made):
            _remove_empty_parents(self.out_dir, folder)

    def commit(self) -> None:
        for temporary, destination in self.staged:
            os.replace(temporary, destination)


def _remove_empty_parents(out_dir: Path, folder: Path) -> None:
    root = out_dir.resolve()
    while folder.resolve() != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
