"""The output folder as a boundary: CI renders pull requests that strangers wrote, so the
folder may hold symbolic links planted to make msgen write, read or delete elsewhere.

Every path below the folder is reached component by component from the folder's own
descriptor (`dir_fd`), with `O_NOFOLLOW`: a symbolic link anywhere on the way is an error
that names it, never followed. Temporary files are created exclusively under names no other
process uses. One render at a time holds a lock on the folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import stat
import time
from pathlib import Path

from msgen.errors import OutputError

TMP_SUFFIX = ".msgen-tmp"
LOCK = ".msgen-lock"
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_READ = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
# how long a render waits for another one that holds the folder's lock
LOCK_WAIT_S = 60.0
_unique = itertools.count()


def is_inside(relative: str) -> bool:
    """Whether `relative` names a path below the folder: `a/b`, never `/a`, `../a`, `a//b`, `./a` or `a\\b`."""
    parts = relative.split("/")
    return bool(relative) and "\\" not in relative and "\0" not in relative and all(part not in ("", ".", "..") for part in parts)


class OutputFolder:
    """An existing output folder, opened once; paths are relative to it (`a/b/c.yml`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.fd = os.open(path, _DIRECTORY)
        except OSError as error:
            if os.path.islink(path):
                raise OutputError(f"{path}: is a symbolic link; msgen writes only into a real folder") from None
            raise OutputError(f"cannot open {path}: {error.strerror}") from None
        self._folders: dict[str, int] = {"": self.fd}

    def close(self) -> None:
        for descriptor in set(self._folders.values()):
            with contextlib.suppress(OSError):
                os.close(descriptor)
        self._folders = {}

    def shown(self, relative: str) -> Path:
        return self.path / relative

    # --- folders ---------------------------------------------------------------------------

    def folder(self, relative: str, create: bool = False, made: list[str] | None = None) -> int | None:
        """The descriptor of a folder below this one; None when it does not exist (and `create`
        is off). Each folder made is appended to `made`, outermost first."""
        if relative in self._folders:
            return self._folders[relative]
        if not relative:  # closed
            raise OutputError(f"{self.path}: used after it was closed")  # pragma: no cover - a bug in msgen
        parent_path, _, name = relative.rpartition("/")
        parent = self.folder(parent_path, create, made)
        if parent is None:
            return None
        try:
            descriptor = os.open(name, _DIRECTORY, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                return None
            self._mkdir(parent, name, relative)
            if made is not None:
                made.append(relative)
            descriptor = os.open(name, _DIRECTORY, dir_fd=parent)
        except OSError as error:
            raise self._refusal(parent, name, relative, "a folder", error) from None
        self._folders[relative] = descriptor
        return descriptor

    def _mkdir(self, parent: int, name: str, relative: str) -> None:
        try:
            os.mkdir(name, dir_fd=parent)
        except OSError as error:
            raise OutputError(f"cannot create {self.shown(relative)}: {error.strerror}") from None

    def _refusal(self, parent: int, name: str, relative: str, wanted: str, error: OSError) -> OutputError:
        found = self._kind(parent, name)
        if found == "link":
            return OutputError(f"{self.shown(relative)}: is a symbolic link; msgen never writes, reads or deletes through one")
        if found is not None:
            return OutputError(f"{self.shown(relative)}: is {found} where msgen needs {wanted}; move it away")
        return OutputError(f"cannot open {self.shown(relative)}: {error.strerror}")

    @staticmethod
    def _kind(parent: int, name: str) -> str | None:
        try:
            mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            return "link"
        return "a folder" if stat.S_ISDIR(mode) else ("a file" if stat.S_ISREG(mode) else "a special file")

    def _split(self, relative: str, create: bool = False, made: list[str] | None = None) -> tuple[int | None, str]:
        if not is_inside(relative):
            raise OutputError(f"refusing a path outside the output folder: {relative!r}")
        parent_path, _, name = relative.rpartition("/")
        return self.folder(parent_path, create, made), name

    # --- files -----------------------------------------------------------------------------

    def kind(self, relative: str) -> str | None:
        """None when nothing is at `relative`; else "a file", "a folder", "link" or "a special file"."""
        parent, name = self._split(relative)
        return None if parent is None else self._kind(parent, name)

    def read(self, relative: str) -> bytes | None:
        """The bytes of a regular file, or None when there is none; a link is refused."""
        parent, name = self._split(relative)
        if parent is None:
            return None
        try:
            descriptor = os.open(name, _READ, dir_fd=parent)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise self._refusal(parent, name, relative, "a file", error) from None
        with os.fdopen(descriptor, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise OutputError(f"{self.shown(relative)}: is not a regular file; move it away")
            return file.read()

    def write_temporary(self, relative: str, data: bytes, made: list[str] | None = None) -> str:
        """Write `data` to a new file beside `relative`, created exclusively under a unique
        name; returns that name (relative to the folder)."""
        parent, name = self._split(relative, create=True, made=made)
        assert parent is not None
        temporary = f".{name}.{os.getpid()}-{next(_unique)}{TMP_SUFFIX}"
        try:
            descriptor = os.open(temporary, _CREATE, 0o666, dir_fd=parent)
        except OSError as error:
            raise OutputError(f"cannot write {self.shown(relative)}: {error.strerror}") from None
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view) :]
        except OSError as error:
            os.close(descriptor)
            os.unlink(temporary, dir_fd=parent)
            raise OutputError(f"cannot write {self.shown(relative)}: {error.strerror}") from None
        os.close(descriptor)
        return relative.rpartition("/")[0] + "/" + temporary if "/" in relative else temporary

    def replace(self, temporary: str, relative: str) -> None:
        """Rename a temporary file over `relative` in the same folder (a link there is replaced, never followed)."""
        parent, name = self._split(relative)
        source_parent, source = self._split(temporary)
        assert parent is not None and parent == source_parent
        os.replace(source, name, src_dir_fd=parent, dst_dir_fd=parent)

    def unlink(self, relative: str) -> None:
        parent, name = self._split(relative)
        if parent is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=parent)

    def remove_empty(self, relative_folder: str) -> None:
        """Remove `relative_folder` and then each parent below the root, while they are empty."""
        while relative_folder:
            parent_path, _, name = relative_folder.rpartition("/")
            parent = self.folder(parent_path)
            if parent is None:
                return
            descriptor = self._folders.pop(relative_folder, None)
            if descriptor is not None:
                os.close(descriptor)
            try:
                os.rmdir(name, dir_fd=parent)
            except OSError:
                return  # not empty (or already gone): nothing further up can be empty
            relative_folder = parent_path

    def temporaries(self) -> list[str]:
        """Every leftover temporary file below the folder (links are not followed)."""
        found: list[str] = []
        self._collect(self.fd, "", found)
        return sorted(found)

    def _collect(self, descriptor: int, prefix: str, found: list[str]) -> None:
        for entry in os.scandir(descriptor):
            relative = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                child = os.open(entry.name, _DIRECTORY, dir_fd=descriptor)
                try:
                    self._collect(child, relative + "/", found)
                finally:
                    os.close(child)
            elif entry.name.endswith(TMP_SUFFIX):
                found.append(relative)

    # --- the lock --------------------------------------------------------------------------

    def lock(self) -> int:
        """Hold the folder's lock (waiting for another render to finish); returns its descriptor.

        The lock file exists only while a render holds it (`unlock` removes it), so a lock
        taken on a file another render has just removed is let go and taken again."""
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                descriptor = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o666, dir_fd=self.fd)
            except OSError as error:
                raise self._refusal(self.fd, LOCK, LOCK, "a lock file", error) from None
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if self._is_current(descriptor):
                    return descriptor
            except BlockingIOError:
                pass
            os.close(descriptor)
            if time.monotonic() > deadline:
                raise OutputError(
                    f"{self.path}: another msgen render has held its lock ({LOCK}) for {LOCK_WAIT_S:.0f} s; "
                    "try again when it has finished"
                )
            time.sleep(0.05)

    def _is_current(self, descriptor: int) -> bool:
        try:
            named = os.stat(LOCK, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        held = os.fstat(descriptor)
        return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)

    def unlock(self, descriptor: int) -> None:
        with contextlib.suppress(OSError):
            os.unlink(LOCK, dir_fd=self.fd)
        os.close(descriptor)  # closing releases the flock
