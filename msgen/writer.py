"""Writes generated files into the output folder: owned files only, atomically, with a manifest.

The manifest (.msgen-manifest.json) lists every file msgen wrote, its target and sha256.
Only files listed there are ever overwritten or pruned; pruning is limited to the targets
rendered now. Files are first written to temporary names beside their destinations
(`Staging.add`, one at a time as the one pass produces them) and renamed into place by
`commit` only when every file was written and every check passed, so a failure leaves the
folder as it was. `Comparison` does the same reading without writing (`render --check`).
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from msgen import __version__
from msgen.errors import OutputError

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
    parts = relative.split("/")
    return bool(relative) and not relative.startswith("/") and ".." not in parts and "\\" not in relative


class Comparison:
    """What writing the files would change, file by file, without writing anything (`--check`)."""

    def __init__(self, out_dir: Path, want_diffs: bool = False) -> None:
        self.out_dir = out_dir
        self.want_diffs = want_diffs
        self.manifest = Manifest.read(out_dir)
        self.folders = _Folders(out_dir)
        self.changes = Changes()
        self.produced: set[str] = set()

    def add(self, path: str, target: str, data: bytes) -> None:
        state = _state(self.folders, self.manifest, path, data)
        self.produced.add(path)
        getattr(self.changes, state).append(path)
        if self.want_diffs and state != "unchanged":
            before = (self.out_dir / path).read_text(encoding="utf-8", errors="replace") if state == "changed" else ""
            self.changes.diffs.append(_diff(path, before, data.decode("utf-8")))

    def finish(self, targets: list[str]) -> Changes:
        """The changes, with the files the rendered `targets` would no longer produce."""
        self.changes.pruned = _prunable(self.out_dir, self.manifest, self.produced, targets)
        if self.want_diffs:
            for path in self.changes.pruned:
                self.changes.diffs.append(_diff(path, (self.out_dir / path).read_text(encoding="utf-8", errors="replace"), ""))
        return self.changes


class Staging:
    """Files staged for the output folder, waiting to be committed or discarded.

    The output folder (and its missing parents) is made when staging starts; `discard`, or a
    failure in `add` (a foreign file, a full disk), takes back everything staging did."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.made_root = _make_output_folder(out_dir)
        try:
            self.manifest = Manifest.read(out_dir)
        except BaseException:
            _unmake(out_dir, self.made_root)
            raise
        self.folders = _Folders(out_dir)
        self.staged: list[tuple[str, str, str, str, str | None]] = []  # path, target, state, sha256, temporary
        self.made: list[Path] = []  # folders made inside the output folder, outermost first

    def add(self, path: str, target: str, data: bytes) -> None:
        try:
            self._add(path, target, data)
        except OSError as error:
            self.discard()
            raise OutputError(f"cannot write {error.filename}: {error.strerror}; the output folder was left as it was") from None
        except BaseException:
            self.discard()
            raise

    def _add(self, path: str, target: str, data: bytes) -> None:
        state = _state(self.folders, self.manifest, path, data)
        digest = hashlib.sha256(data).hexdigest()
        if state == "unchanged":
            self.staged.append((path, target, state, digest, None))
            return
        self.made.extend(self.folders.make(path.rpartition("/")[0]))
        temporary = os.path.join(self.out_dir, path + _TMP_SUFFIX)
        self.staged.append((path, target, state, digest, temporary))  # listed first: removed even if writing fails half-way
        _write_file(temporary, data)

    def discard(self) -> None:
        for *_, temporary in self.staged:
            if temporary is not None:
                Path(temporary).unlink(missing_ok=True)
        for folder in sorted(self.made, key=lambda path: -len(path.parts)):  # deepest first
            _remove_empty_parents(self.out_dir, folder)
        _unmake(self.out_dir, self.made_root)

    def commit(self, targets: list[str], blueprint_digest: str) -> Changes:
        """Rename the staged files into place, prune what the rendered `targets` no longer
        produce, and write the manifest."""
        out_dir, manifest = self.out_dir, self.manifest
        changes = Changes()
        for path, target, state, digest, temporary in self.staged:
            getattr(changes, state).append(path)
            manifest.files[path] = {"target": target, "sha256": digest}
            if temporary is not None:
                os.replace(temporary, out_dir / path)
        produced = {path for path, *_ in self.staged}
        changes.pruned = _prunable(out_dir, manifest, produced, targets)
        for path in changes.pruned:
            (out_dir / path).unlink(missing_ok=True)
            _remove_empty_parents(out_dir, (out_dir / path).parent)
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


def write(out_dir: Path, files: list[tuple[str, str, str]], targets: list[str], blueprint_digest: str) -> Changes:
    """Bring the output folder in line with `files` ((path, target, text) each) for the rendered `targets`."""
    staging = Staging(out_dir)
    for path, target, text in files:
        staging.add(path, target, text.encode("utf-8"))
    return staging.commit(targets, blueprint_digest)


def _state(folders: _Folders, manifest: Manifest, path: str, data: bytes) -> str:
    """created, changed or unchanged; a file msgen did not write is refused."""
    if not _is_inside(path):  # pragma: no cover - targets make relative paths
        raise OutputError(f"refusing to write outside the output folder: {path}")
    folder = path.rpartition("/")[0]
    if folder in folders.fresh or not folders.exists(folder):
        return "created"
    destination = folders.out_dir / path
    try:
        mode = os.stat(destination).st_mode
    except FileNotFoundError:
        return "created"
    if stat.S_ISDIR(mode):
        raise OutputError(f"{destination}: is a folder where msgen writes a file; move it away")
    if path not in manifest.files:
        raise OutputError(f"{destination}: exists and was not written by msgen; move it away or choose another output folder")
    return "unchanged" if destination.read_bytes() == data else "changed"


class _Folders:
    """The output folder's sub-folders (relative, `a/b`), each looked at once: thousands of
    files share a few hundred folders. A file where a folder belongs is refused."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.present: dict[str, bool] = {"": True}
        self.fresh: set[str] = set()  # made by this run: every file in them is new

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
        try:
            (self.out_dir / folder).mkdir()
        except OSError:  # the parents made for it are taken back: no empty folders are left
            for parent in reversed(made):
                parent.rmdir()
                self.present[str(parent.relative_to(self.out_dir))] = False
                self.fresh.discard(str(parent.relative_to(self.out_dir)))
            raise
        self.present[folder] = True
        self.fresh.add(folder)
        return [*made, self.out_dir / folder]


def _prunable(out_dir: Path, manifest: Manifest, produced: set[str], targets: list[str]) -> list[str]:
    """Files msgen wrote for the rendered targets that they no longer produce."""
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


def _write_file(path: str, data: bytes) -> None:
    """open, write, close: Python's buffered open() adds three system calls a file (fstat,
    ioctl, lseek), which thousands of files feel."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)  # less the umask, as open() does
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
    finally:
        os.close(descriptor)


def _make_output_folder(out_dir: Path) -> Path | None:
    """Create the output folder and its missing parents; the outermost one made, if any."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: exists and is not a folder")
    outermost = None
    folder = out_dir.absolute()
    while not folder.exists():
        outermost, folder = folder, folder.parent
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create {out_dir}: {error.strerror}") from None
    return outermost


def _unmake(out_dir: Path, made: Path | None) -> None:
    """Remove the output folder and the parents made for it, those that are empty."""
    if made is None:
        return
    folder = out_dir.absolute()
    while True:
        with contextlib.suppress(OSError):  # rmdir never removes a folder that holds anything
            folder.rmdir()
        if folder == made or folder == folder.parent:
            return
        folder = folder.parent


def _remove_empty_parents(out_dir: Path, folder: Path) -> None:
    root = out_dir.resolve()
    while folder.resolve() != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
