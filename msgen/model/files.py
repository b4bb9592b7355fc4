"""The services' config files, read from the blueprint's folder as confined as msgen's output
folder is: CI renders blueprints strangers wrote, and a symbolic link planted in their folder
must not make msgen copy a file from elsewhere (a key, /etc/shadow) into the output.

Every path is reached component by component from the folder's own descriptor (`dir_fd`),
with `O_NOFOLLOW`: a link anywhere on the way is a load error that names it, never followed.
Each file is read once, here, so the output is a function of the folder's contents.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from msgen.contract import CONFIG_FILES_MAX_BYTES
from msgen.errors import BlueprintError, LoadIssue
from msgen.loader import SourceMap
from msgen.model.blueprint import Blueprint

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
# O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused right after, by its type)
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
LIMIT_TEXT = "1 MiB"


class _Refused(Exception):
    """A source that cannot be read as a regular file inside the folder; the message says why."""


def read_config_files(blueprint: Blueprint, source: SourceMap, folder: Path) -> dict[str, bytes]:
    """Source path -> its bytes, for every service's files; a load error for each source that is
    not a regular file reached without a link, and for a service whose files exceed a ConfigMap."""
    contents: dict[str, bytes] = {}
    issues: list[LoadIssue] = []
    for name in sorted(blueprint.services):
        total = 0
        for index, file in enumerate(blueprint.services[name].files):
            at = ("services", name, "files", index, "source")
            if file.source not in contents:
                try:
                    contents[file.source] = read_confined(folder, file.source)
                except _Refused as error:
                    issues.append(source.issue(at, str(error)))
                    continue
            total += len(contents[file.source])
            if total > CONFIG_FILES_MAX_BYTES:
                message = f"{name}'s files add up to {total} bytes with this one, more than a ConfigMap holds ({LIMIT_TEXT})"
                issues.append(source.issue(at, message, "mount large files from the image or a volume instead"))
                break
    if issues:
        raise BlueprintError(sorted(issues, key=lambda issue: (issue.line, issue.column)))
    return contents


def read_confined(folder: Path, relative: str) -> bytes:
    """The bytes of the regular file `relative` below `folder`, no link followed on the way."""
    try:
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise _Refused(f"cannot open the blueprint's folder {folder}: {error.strerror}") from None
    parts = relative.split("/")
    try:
        for depth, part in enumerate(parts[:-1]):
            shown = "/".join(parts[: depth + 1])
            _expect(descriptor, part, shown, stat.S_ISDIR, "a folder")
            child = os.open(part, _DIRECTORY, dir_fd=descriptor)
            os.close(descriptor)
            descriptor = child
        _expect(descriptor, parts[-1], relative, stat.S_ISREG, "a regular file")
        return _read(descriptor, parts[-1], relative)
    except OSError as error:
        raise _Refused(f"{relative}: {error.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            os.close(descriptor)


def _expect(parent: int, name: str, shown: str, is_kind, wanted: str) -> None:
    try:
        mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
    except FileNotFoundError:
        raise _Refused(f"{shown} does not exist in the blueprint's folder") from None
    if stat.S_ISLNK(mode):
        raise _Refused(f"{shown} is a symbolic link; msgen reads config files only from the blueprint's folder itself, never through a link")
    if not is_kind(mode):
        raise _Refused(f"{shown} is {_kind(mode)}, not {wanted}")


def _kind(mode: int) -> str:
    return "a folder" if stat.S_ISDIR(mode) else ("a file" if stat.S_ISREG(mode) else "a special file")


def _read(parent: int, name: str, shown: str) -> bytes:
    descriptor = os.open(name, _READ, dir_fd=parent)
    try:
        # checked again on what was opened: the name may have changed since it was looked at
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise _Refused(f"{shown} is not a regular file")
        chunks = []
        left = CONFIG_FILES_MAX_BYTES + 1  # one byte more tells a file over the limit
        while left > 0:
            chunk = os.read(descriptor, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(descriptor)
    data = b"".join(chunks)
    if len(data) > CONFIG_FILES_MAX_BYTES:
        raise _Refused(f"{shown} is larger than a ConfigMap holds ({LIMIT_TEXT})")
    return data
