"""Writes generated files into the output folder: owned files only, atomically, with a manifest.

The manifest (.msgen-manifest.json) lists every file msgen wrote, its target and sha256.
Only files listed there are ever overwritten or pruned, pruning is limited to the targets
rendered now, and a listed file whose bytes no longer match its sha256 (a person edited it)
is neither without `--force`. Files are first written to temporary files beside their
destinations (`Staging.add`, as the one pass produces them). `commit` then records the
whole change in a journal, renames, prunes, writes the manifest and removes the journal:
a render interrupted at any moment leaves the old output or a journal from which the next
render finishes the new one. One render at a time holds the folder's lock; `Comparison`
(`render --check`) takes no lock and writes nothing. Every path goes through
msgen/folder.py, which never follows a symbolic link.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from msgen import __version__
from msgen.contract import MANIFEST_FILE
from msgen.errors import OutputError
from msgen.folder import LOCK, TMP_SUFFIX, OutputFolder, is_inside

MANIFEST = MANIFEST_FILE
JOURNAL = ".msgen-journal.json"
# the files msgen keeps in the output folder for itself (the generated .gitignore names them)
OWN_FILES = (MANIFEST, JOURNAL, LOCK)
# where each target may write: a manifest entry outside its target's paths is refused, so a
# manifest planted in a pull request cannot make msgen prune the user's own files
Owned = Mapping[str, tuple[str, ...]]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def owns(owned: Owned, target: str, path: str) -> bool:
    return any(path == prefix or (prefix.endswith("/") and path.startswith(prefix)) for prefix in owned.get(target, ()))


@dataclass
class Manifest:
    files: dict[str, dict[str, str]] = field(default_factory=dict)  # path -> {target, sha256}
    blueprint_digest: str = ""
    msgen_version: str = ""  # the msgen that wrote the folder (this one, once it writes)

    @classmethod
    def read(cls, folder: OutputFolder, owned: Owned) -> Manifest:
        data = folder.read(MANIFEST)
        return cls() if data is None else cls.parse(data, folder.shown(MANIFEST), owned)

    @classmethod
    def parse(cls, data: bytes, shown: Path, owned: Owned) -> Manifest:
        """A manifest's entries, each validated: a path below the folder, normalised, that its target may write."""
        try:
            document = json.loads(data)
            files = {str(k): {"target": str(v["target"]), "sha256": str(v["sha256"])} for k, v in document["files"].items()}
            digest = str(document.get("blueprint_digest", ""))
            version = str(document.get("msgen_version", ""))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise OutputError(f"{shown}: not a manifest msgen can read ({error}); move it away to start afresh") from None
        for path, entry in sorted(files.items()):
            if not is_inside(path) or not owns(owned, entry["target"], path):
                raise OutputError(
                    f"{shown}: lists {path!r} for target {entry['target']!r}, a path msgen never writes there; "
                    "move the manifest away to start afresh"
                )
        return cls(files, digest, version)

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
    """What a render does (or with `--check` would do) to the output folder."""

    created: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    edited: list[str] = field(default_factory=list)  # owned files a person changed since msgen wrote them
    leftovers: list[str] = field(default_factory=list)  # an interrupted render's journal or temporary files
    diffs: list[str] = field(default_factory=list)
    written_by: str = ""  # the msgen version the folder's manifest names ("" without one)

    @property
    def upgraded(self) -> bool:
        """Whether another msgen version wrote the folder: drift may come from the upgrade."""
        return bool(self.written_by) and self.written_by != __version__

    @property
    def drift(self) -> bool:
        return bool(self.created or self.changed or self.pruned or self.edited or self.leftovers)

    def pruned_datastores(self) -> list[str]:
        return sorted({path.split("/")[1] for path in self.pruned if path.startswith("datastores/") and path.count("/") >= 2})


class Comparison:
    """What writing the files would change, file by file, without writing anything (`--check`)."""

    def __init__(self, out_dir: Path, owned: Owned, want_diffs: bool = False) -> None:
        self.folder = OutputFolder(out_dir) if out_dir.is_dir() and not out_dir.is_symlink() else None
        self.owned = owned
        self.want_diffs = want_diffs
        self.changes = Changes()
        self.produced: set[str] = set()
        self.manifest = Manifest()
        self.pending: dict[str, dict[str, str]] = {}  # what a pending journal commits: msgen's own too
        if self.folder is not None:
            self.manifest = Manifest.read(self.folder, owned)
            self.changes.written_by = self.manifest.msgen_version
            journal = read_journal(self.folder, owned)
            if journal is not None:
                self.changes.leftovers.append(f"{JOURNAL} (an interrupted render: `msgen render` finishes it)")
                self.pending = Manifest.parse(journal["manifest"].encode("utf-8"), self.folder.shown(JOURNAL), owned).files
            self.changes.leftovers.extend(self.folder.temporaries())
        elif out_dir.is_symlink():
            raise OutputError(f"{out_dir}: is a symbolic link; msgen writes only into a real folder")

    def add(self, path: str, target: str, data: bytes) -> None:
        self.produced.add(path)
        before = self.folder.read(path) if self.folder is not None and _exists(self.folder, path) else None
        state = _state(self.folder, self.manifest, path, before, data, self.pending.get(path))
        getattr(self.changes, state).append(path)
        if self.want_diffs and state != "unchanged":
            self.changes.diffs.append(_diff(path, (before or b"").decode("utf-8", errors="replace"), data.decode("utf-8", errors="replace")))

    def finish(self, targets: list[str]) -> Changes:
        """The changes, with the files the rendered `targets` would no longer produce."""
        if self.folder is None:
            return self.changes
        for path in _prunable(self.manifest, self.produced, targets):
            before = self.folder.read(path)
            if before is None:
                continue
            self.changes.pruned.append(path)
            if sha256(before) != self.manifest.files[path]["sha256"]:
                self.changes.edited.append(path)
            if self.want_diffs:
                self.changes.diffs.append(_diff(path, before.decode("utf-8", errors="replace"), ""))
        self.changes.edited.sort()
        self.folder.close()
        return self.changes

    def discard(self) -> None:
        """Let go of the folder without a result (the render stopped)."""
        if self.folder is not None:
            self.folder.close()


class Staging:
    """Files staged for the output folder, waiting to be committed or discarded.

    Opening the staging makes the output folder (and its missing parents), takes its lock,
    finishes a commit an earlier render left in its journal, and removes leftover temporary
    files. `discard`, or a failure in `add`, takes back everything this staging did."""

    def __init__(self, out_dir: Path, owned: Owned, force: bool = False) -> None:
        self.owned = owned
        self.force = force
        self.made_root = _make_output_folder(out_dir)
        self.folder = OutputFolder(out_dir)
        self.lock: int | None = None
        try:
            self.lock = self.folder.lock()
            recover(self.folder, owned)
            self.manifest = Manifest.read(self.folder, owned)
        except BaseException:
            self._release()
            _unmake(out_dir, self.made_root)
            raise
        self.staged: list[tuple[str, str, str, str, str | None]] = []  # path, target, state, sha256, temporary
        self.edited: list[str] = []
        self.made: list[str] = []  # folders made inside the output folder, outermost first

    def add(self, path: str, target: str, data: bytes) -> None:
        try:
            self._add(path, target, data)
        except BaseException:
            self.discard()
            raise

    def _add(self, path: str, target: str, data: bytes) -> None:
        if not owns(self.owned, target, path):  # pragma: no cover - a bug in a target
            raise OutputError(f"internal error: target {target} renders {path}, outside its folders; please report it")
        before = self.folder.read(path) if _exists(self.folder, path) else None
        state = _state(self.folder, self.manifest, path, before, data)
        if state == "edited":
            self.edited.append(path)
            state = "changed"
        digest = sha256(data)
        temporary = None if state == "unchanged" else self.folder.write_temporary(path, data, self.made)
        self.staged.append((path, target, state, digest, temporary))

    def discard(self) -> None:
        if self.lock is None:
            return  # discarded already (or committed)
        for *_, temporary in self.staged:
            if temporary is not None:
                self.folder.unlink(temporary)
        self.staged = []
        for folder in sorted(self.made, key=lambda path: -path.count("/")):  # deepest first
            self.folder.remove_empty(folder)
        self._release()
        _unmake(self.folder.path, self.made_root)

    def _release(self) -> None:
        if self.lock is not None:
            self.folder.unlock(self.lock)
            self.lock = None
        self.folder.close()

    def commit(self, targets: list[str], blueprint_digest: str) -> Changes:
        """Rename the staged files into place, prune what the rendered `targets` no longer
        produce, and write the manifest, through a journal; a person's edits stop it first."""
        manifest = self.manifest
        produced = {path for path, *_ in self.staged}
        pruned = []
        for path in _prunable(manifest, produced, targets):
            before = self.folder.read(path)
            if before is None:
                continue
            pruned.append((path, sha256(before)))  # the bytes found now: with --force an edited file goes too
            if sha256(before) != manifest.files[path]["sha256"]:
                self.edited.append(path)
        if self.edited and not self.force:
            self.discard()
            raise OutputError(
                f"edited by hand since msgen wrote them: {', '.join(sorted(self.edited))}; "
                "move the change into the blueprint (or an escape hatch), or render with --force to overwrite them"
            )
        changes = Changes(pruned=[path for path, _ in pruned], edited=sorted(self.edited))
        for path, target, state, digest, _ in self.staged:
            getattr(changes, state).append(path)
            manifest.files[path] = {"target": target, "sha256": digest}
        for path in list(manifest.files):
            if manifest.files[path]["target"] in targets and path not in produced:
                manifest.files.pop(path)  # pruned now, or listed but already gone from disk
        manifest.blueprint_digest = blueprint_digest
        renames = [[temporary, path, digest] for path, _, _, digest, temporary in self.staged if temporary is not None]
        journal = {"renames": renames, "prunes": [[path, digest] for path, digest in pruned], "manifest": manifest.text()}
        try:
            _replace_with(self.folder, JOURNAL, json.dumps(journal).encode("utf-8"))
            self.staged = []  # the journal has them now: a failure from here on is finished by the next render
            _play(self.folder, journal)
        except OSError as error:
            raise OutputError(
                f"cannot write {self.folder.path}: {error.strerror}; the next `msgen render` finishes or undoes this one"
            ) from None
        finally:
            self._release()  # whatever happened: the lock never outlives the render
        return changes


def recover(folder: OutputFolder, owned: Owned) -> None:
    """Finish the commit an interrupted render recorded in its journal, then remove leftover
    temporary files. A file counts as msgen's only when its bytes are those the journal names."""
    journal = read_journal(folder, owned)
    if journal is not None:
        _play(folder, journal)
    for temporary in folder.temporaries():
        folder.unlink(temporary)


def read_journal(folder: OutputFolder, owned: Owned) -> dict | None:
    """A pending journal, validated as strictly as a manifest; None when there is none."""
    data = folder.read(JOURNAL)
    if data is None:
        return None
    try:
        journal = json.loads(data)
        renames = [(str(a), str(b), str(c)) for a, b, c in journal["renames"]]
        prunes = [(str(a), str(b)) for a, b in journal["prunes"]]
        manifest = str(journal["manifest"])
        Manifest.parse(manifest.encode("utf-8"), folder.shown(JOURNAL), owned)  # the same rules as any manifest
    except (ValueError, KeyError, TypeError) as error:
        raise OutputError(f"{folder.shown(JOURNAL)}: not a journal msgen can read ({error}); move it away") from None
    for temporary, path, _ in renames:
        if not temporary.endswith(TMP_SUFFIX) or temporary.rpartition("/")[0] != path.rpartition("/")[0]:
            raise OutputError(f"{folder.shown(JOURNAL)}: names {temporary!r}, not a temporary file beside {path!r}; move it away")
    for path in [path for _, path, _ in renames] + [path for path, _ in prunes]:
        if not is_inside(path) or not any(owns(owned, target, path) for target in owned):
            raise OutputError(f"{folder.shown(JOURNAL)}: names {path!r}, a path msgen never writes; move it away")
    return {"renames": renames, "prunes": prunes, "manifest": manifest}


def _play(folder: OutputFolder, journal: dict) -> None:
    """Carry out a journal; each step may already be done (a second run after an interruption)."""
    for temporary, path, digest in journal["renames"]:
        staged = folder.read(temporary)
        if staged is not None and sha256(staged) == digest:
            folder.replace(temporary, path)
            continue
        current = folder.read(path)
        if current is None or sha256(current) != digest:
            raise OutputError(
                f"{folder.shown(path)}: an interrupted render left it neither old nor new, and its staged copy is gone; "
                f"move {JOURNAL} away and render again"
            )
    for path, digest in journal["prunes"]:
        current = folder.read(path)
        if current is not None and sha256(current) == digest:
            folder.unlink(path)
            folder.remove_empty(path.rpartition("/")[0])
    manifest = journal["manifest"].encode("utf-8")
    if folder.read(MANIFEST) != manifest:
        _replace_with(folder, MANIFEST, manifest)
    folder.unlink(JOURNAL)


def _replace_with(folder: OutputFolder, path: str, data: bytes) -> None:
    folder.replace(folder.write_temporary(path, data), path)


def write(out_dir: Path, files: list[tuple[str, str, str]], targets: list[str], blueprint_digest: str, owned: Owned) -> Changes:
    """Bring the output folder in line with `files` ((path, target, text) each) for the rendered `targets`."""
    staging = Staging(out_dir, owned)
    for path, target, text in files:
        staging.add(path, target, text.encode("utf-8"))
    return staging.commit(targets, blueprint_digest)


def _exists(folder: OutputFolder, path: str) -> bool:
    kind = folder.kind(path)
    if kind == "a folder":
        raise OutputError(f"{folder.shown(path)}: is a folder where msgen writes a file; move it away")
    if kind == "link":
        raise OutputError(f"{folder.shown(path)}: is a symbolic link; msgen never writes, reads or deletes through one")
    return kind is not None


def _state(
    folder: OutputFolder | None, manifest: Manifest, path: str, before: bytes | None, data: bytes, pending: dict | None = None
) -> str:
    """created, changed, unchanged, or edited (an owned file a person changed); a file msgen
    did not write is refused. `pending`: the entry a pending journal commits for `path`."""
    if before is None:
        return "created"
    known = {entry["sha256"] for entry in (manifest.files.get(path), pending) if entry is not None}
    if not known:
        assert folder is not None
        raise OutputError(f"{folder.shown(path)}: exists and was not written by msgen; move it away or choose another output folder")
    if before == data:
        return "unchanged"
    return "changed" if sha256(before) in known else "edited"


def _prunable(manifest: Manifest, produced: set[str], targets: list[str]) -> list[str]:
    """Files msgen wrote for the rendered targets that they no longer produce."""
    return [path for path, entry in sorted(manifest.files.items()) if entry["target"] in targets and path not in produced]


def _diff(path: str, before: str, after: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), fromfile=f"a/{path}", tofile=f"b/{path}"
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def _make_output_folder(out_dir: Path) -> Path | None:
    """Create the output folder and its missing parents; the outermost one made, if any."""
    if out_dir.is_symlink():
        raise OutputError(f"{out_dir}: is a symbolic link; msgen writes only into a real folder")
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
