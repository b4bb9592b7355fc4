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
    parts = Path(relative).parts
    return bool(parts) and not Path(relative).is_absolute() and ".." not in parts and "\\" not in relative


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
    for artifact, data in _contents(artifacts, verify):
        state = _state(out_dir, manifest, artifact, data)
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


def _state(out_dir: Path, manifest: Manifest, artifact: Artifact, data: bytes) -> str:
    """created, changed or unchanged; a file msgen did not write is refused."""
    destination = _safe_destination(out_dir, artifact.path)
    _refuse_foreign_parents(out_dir, destination)
    if destination.is_dir():
        raise OutputError(f"{destination}: is a folder where msgen writes a file; move it away")
    if not destination.exists():
        return "created"
    if artifact.path not in manifest.files:
        raise OutputError(f"{destination}: exists and was not written by msgen; move it away or choose another output folder")
    return "unchanged" if destination.read_bytes() == data else "changed"


def _prunable(out_dir: Path, manifest: Manifest, artifacts: list[Artifact], targets: list[str]) -> list[str]:
    """Files msgen wrote for the rendered targets that they no longer produce."""
    produced = {artifact.path for artifact in artifacts}
    return [
        path
        for path, entry in sorted(manifest.files.items())
        if entry["target"] in targets and path not in produced and (out_dir / path).exists()
    ]


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


def write(out_dir: Path, artifacts: list[Artifact], targets: list[str], blueprint_digest: str, verify: Verify | None = None) -> Changes:
    """Bring the output folder in line with `artifacts` for the rendered `targets`.

    One pass: each file is formatted, compared and, when new or changed, written beside its
    destination under a temporary name; only when every file is staged are they renamed into
    place. Until then nothing visible has changed, so a failure (a foreign file, a full disk)
    removes what was staged and leaves the output folder as it was.
    """
    manifest = Manifest.read(out_dir)
    changes = Changes()
    staging = _Staging(out_dir)
    try:
        for artifact, data in _contents(artifacts, verify):
            state = _state(out_dir, manifest, artifact, data)
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

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.staged: list[tuple[Path, Path]] = []
        self.made: list[Path] = []

    def stage(self, relative: str, data: bytes) -> None:
        destination = _safe_destination(self.out_dir, relative)
        self.made.extend(_make_parents(self.out_dir, destination.parent))
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
