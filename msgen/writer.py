"""Writes artifacts into the output folder: owned files only, atomically, with a manifest.

The manifest (.msgen-manifest.json) lists every file msgen wrote, its target and sha256.
Only files listed there are ever overwritten or pruned; pruning is limited to the targets
rendered now. All files are first written to temporary names beside their destinations
and renamed into place only when every one was written, so a failure leaves the folder
as it was.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from msgen import __version__
from msgen.errors import OutputError
from msgen.fork import Claims, can_fork, in_child
from msgen.jinja import to_json
from msgen.targets import Artifact

MANIFEST = ".msgen-manifest.json"
_TMP_SUFFIX = ".msgen-tmp"
# called with each artifact and its UTF-8 bytes before anything is written; raises to stop the render
Verify = Callable[[Artifact, bytes], None]
# what staging did to one file: its state, the sha256 of its bytes, and the temporary file
# written beside it (None when unchanged)
Staged = tuple[str, str, "str | None"]


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
        return to_json(data) + "\n"  # json.dumps(indent=2)'s bytes, faster (paths are ASCII)


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
    folders = _Folders(out_dir)
    compared = _in_chunks(artifacts, lambda chunks: _compare(folders, manifest, chunks, want_diffs, verify))
    changes = Changes()
    for artifact, (state, diff) in zip(artifacts, compared, strict=True):
        getattr(changes, state).append(artifact.path)
        if diff is not None:
            changes.diffs.append(diff)
    changes.pruned = _prunable(out_dir, manifest, artifacts, targets)
    if want_diffs:
        for path in changes.pruned:
            changes.diffs.append(_diff(path, (out_dir / path).read_text(encoding="utf-8", errors="replace"), ""))
    return changes


def _compare(folders: _Folders, manifest: Manifest, chunks: Chunks, want_diffs: bool, verify: Verify | None) -> dict[int, list]:
    """Chunk number -> (state, diff or None) for each of its artifacts."""
    compared: dict[int, list] = {}
    for number, chunk in chunks:
        done = compared[number] = []
        for artifact, data in _contents(chunk, verify):
            state = _state(folders, manifest, artifact, data)
            diff = None
            if want_diffs and state != "unchanged":
                before = (folders.out_dir / artifact.path).read_text(encoding="utf-8", errors="replace") if state == "changed" else ""
                diff = _diff(artifact.path, before, data.decode("utf-8"))
            done.append((state, diff))
    return compared


def _contents(artifacts: list[Artifact], verify: Verify | None) -> Iterator[tuple[Artifact, bytes]]:
    """Each artifact with its bytes, formatted one at a time (and checked by `verify`)."""
    for artifact in artifacts:
        data = artifact.text.encode("utf-8")
        if verify is not None:
            verify(artifact, data)
        yield artifact, data


def _state(folders: _Folders, manifest: Manifest, artifact: Artifact, data: bytes) -> str:
    """created, changed or unchanged; a file msgen did not write is refused."""
    _safe_destination(folders.out_dir, artifact.path)
    folder = artifact.path.rpartition("/")[0]
    if folder in folders.fresh or not folders.exists(folder):
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
        except FileExistsError:  # made a moment ago by the other process of a shared render
            self._is_folder(self.out_dir / folder)  # refuses a file
            self.present[folder] = True
            return made
        except OSError:  # the parents made for it are taken back: no empty folders are left
            for parent in reversed(made):
                parent.rmdir()
                self.present[str(parent.relative_to(self.out_dir))] = False
                self.fresh.discard(str(parent.relative_to(self.out_dir)))
            raise
        self.present[folder] = True
        self.fresh.add(folder)
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


# From this many files on, a second process (msgen/fork.py) formats, checks and stages about
# half of the files (_in_chunks): at 1000 services (5271 files, 33 MB) that is most of what
# `render` adds to `validate`.
WRITE_APART_FROM = 1000


def write(out_dir: Path, artifacts: list[Artifact], targets: list[str], blueprint_digest: str, verify: Verify | None = None) -> Changes:
    """Bring the output folder in line with `artifacts` for the rendered `targets`."""
    return stage(out_dir, artifacts, verify).commit(targets, blueprint_digest)


def stage(out_dir: Path, artifacts: list[Artifact], verify: Verify | None = None) -> Staging:
    """Format, check and compare every file and write the new and changed ones beside their
    destinations under temporary names. Nothing visible changes until `commit` renames them
    into place; `discard` (or a failure here: a foreign file, a full disk) removes them and
    the folders made for them, and leaves the output folder as it was.
    """
    manifest = Manifest.read(out_dir)
    folders = _Folders(out_dir)
    try:
        # a failing process takes back its own files and folders, and the other's (_in_chunks)
        shared = _in_chunks(artifacts, lambda chunks: _stage(folders, manifest, chunks, verify), lambda done: _undo(out_dir, done))
    except OSError as error:
        raise OutputError(f"cannot write {error.filename}: {error.strerror}; the output folder was left as it was") from None
    staged = [entry for entry, _ in shared]
    made = [folder for _, folders_made in shared for folder in folders_made]
    return Staging(out_dir, manifest, artifacts, staged, made)


@dataclass
class Staging:
    """Files staged for the output folder (`stage`), waiting to be committed or discarded."""

    out_dir: Path
    manifest: Manifest
    artifacts: list[Artifact]
    staged: list[Staged]
    made: list[Path]  # the folders staging made, outermost first

    def discard(self) -> None:
        _unstage(self.staged)
        _remove_folders(self.out_dir, self.made)

    def commit(self, targets: list[str], blueprint_digest: str) -> Changes:
        """Rename the staged files into place, prune what the rendered `targets` no longer
        produce, and write the manifest."""
        out_dir, manifest = self.out_dir, self.manifest
        changes = Changes()
        for artifact, (state, digest, temporary) in zip(self.artifacts, self.staged, strict=True):
            getattr(changes, state).append(artifact.path)
            manifest.files[artifact.path] = {"target": artifact.target, "sha256": digest}
            if temporary is not None:
                os.replace(temporary, out_dir / artifact.path)
        changes.pruned = _prunable(out_dir, manifest, self.artifacts, targets)
        for path in changes.pruned:
            (out_dir / path).unlink(missing_ok=True)
            _remove_empty_parents(out_dir, (out_dir / path).parent)
        produced = {artifact.path for artifact in self.artifacts}
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


def _remove_folders(out_dir: Path, made: list[Path]) -> None:
    for folder in sorted(made, key=lambda path: -len(path.parts)):  # deepest first
        _remove_empty_parents(out_dir, folder)


def _folder(artifact: Artifact) -> str:
    return artifact.path.rpartition("/")[0]


# a process's share of the work: (chunk number, its artifacts), in the order it claimed them
Chunks = Iterable[tuple[int, list[Artifact]]]
# files a process claims at a time when two share the work: small enough that both finish
# within a few milliseconds of each other, large enough that claiming costs nothing
CHUNK = 50


def _in_chunks(
    artifacts: list[Artifact], work: Callable[[Chunks], dict[int, list]], undo: Callable[[dict[int, list]], None] | None = None
) -> list:
    """`work`'s results for every artifact, in order. From WRITE_APART_FROM files on, two
    processes share the chunks, one from each end, each claiming its next chunk when it is
    ready (fork.Claims): files differ in cost (a new file more than an unchanged one, the
    compose file more than a config file, a new folder more than a file), so fixed halves
    left one core idle for up to 0.4 s at 1000 services. When either process fails, `undo`
    takes back what the other did, and the failure is raised."""
    chunks = [artifacts[start : start + CHUNK] for start in range(0, len(artifacts), CHUNK)]
    if len(artifacts) < WRITE_APART_FROM or not can_fork():
        done = work(enumerate(chunks))
    else:
        claims = Claims(len(chunks))
        try:
            done = _on_two_cores(lambda from_the_top: work((number, chunks[number]) for number in claims.take(from_the_top)), undo)
        finally:
            claims.close()
    return [result for number in sorted(done) for result in done[number]]


def _on_two_cores(work: Callable[[bool], dict[int, list]], undo: Callable[[dict[int, list]], None] | None) -> dict[int, list]:
    """`work` here from the first chunk on and in a second process from the last one back,
    until they meet."""
    collect = in_child(lambda: work(True))
    try:
        mine = work(False)
    except BaseException:
        with contextlib.suppress(Exception):  # if it failed too, it took back its own work
            theirs = collect()
            if undo is not None:
                undo(theirs)
        raise
    try:
        theirs = collect()
    except BaseException:
        if undo is not None:
            undo(mine)
        raise
    return {**mine, **theirs}


# what staging did to one file, and the folders it made for it (outermost first)
StagedFile = tuple[Staged, list[Path]]


def _stage(folders: _Folders, manifest: Manifest, chunks: Chunks, verify: Verify | None) -> dict[int, list[StagedFile]]:
    """Format, check, compare and (when new or changed) write each file of each chunk under a
    temporary name; on any failure, remove what this process wrote and made, and raise."""
    staged: dict[int, list[StagedFile]] = {}
    try:
        for number, chunk in chunks:
            done = staged[number] = []
            for artifact, data in _contents(chunk, verify):
                state = _state(folders, manifest, artifact, data)
                digest = hashlib.sha256(data).hexdigest()
                if state == "unchanged":
                    done.append(((state, digest, None), []))
                    continue
                made = folders.make(_folder(artifact))
                temporary = os.path.join(folders.out_dir, artifact.path + _TMP_SUFFIX)
                done.append(((state, digest, temporary), made))  # listed first: removed even if writing fails half-way
                _write_file(temporary, data)
    except BaseException:
        _undo(folders.out_dir, staged)
        raise
    return staged


def _undo(out_dir: Path, staged: dict[int, list[StagedFile]]) -> None:
    files = [item for chunk in staged.values() for item in chunk]
    _unstage([entry for entry, _ in files])
    _remove_folders(out_dir, [folder for _, made in files for folder in made])


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


def _unstage(staged: list[Staged]) -> None:
    for _, _, temporary in staged:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)


def _remove_empty_parents(out_dir: Path, folder: Path) -> None:
    root = out_dir.resolve()
    while folder.resolve() != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
