"""A second process for a share of a large run: the machine's other core.

`in_child(work)` forks; the child computes `work()` and sends the result back pickled
through a pipe, while the parent goes on with its own share and then calls the returned
function to collect the child's result (or exception). The child shares the parent's
memory copy-on-write, so nothing is pickled on the way in.

Where fork is missing (Windows), other threads run (fork copies only the calling thread,
so a lock another thread holds would stay held in the child), or MSGEN_SINGLE_PROCESS=1 is
set, `work` runs at once in this process: the same result on one core.
"""

from __future__ import annotations

import os
import pickle
import struct
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from msgen.errors import MsgenError

T = TypeVar("T")


# set in a child: a process that exits when its work is done may skip imports' side work
IN_CHILD = False


def can_fork() -> bool:
    """Whether a second process may be forked; MSGEN_SINGLE_PROCESS=1 says never."""
    return hasattr(os, "fork") and threading.active_count() == 1 and os.environ.get("MSGEN_SINGLE_PROCESS") != "1"


def in_child(work: Callable[[], T]) -> Callable[[], T]:
    """Start `work` in a child process; the returned function waits for it and gives its
    result, or raises what it raised. Call it exactly once, also when the parent's own
    share failed: the child may be writing files the caller has to clean up."""
    if not can_fork():
        outcome = _outcome(work)
        return lambda: _unwrap(outcome)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; coverage does not follow it
        _child(work, read_end, write_end)
    os.close(write_end)

    def collect() -> T:
        with os.fdopen(read_end, "rb") as pipe:
            payload = pipe.read()
        _, status = os.waitpid(pid, 0)
        if not payload:  # killed (out of memory, a signal) before it could answer
            raise MsgenError(
                f"msgen's second process ended without a result (wait status {status}); "
                "run again with MSGEN_SINGLE_PROCESS=1, and report it if that works"
            )
        return _unwrap(pickle.loads(payload))

    return collect


def _child(work: Callable[[], object], read_end: int, write_end: int) -> None:  # pragma: no cover - runs in the child
    """Run `work`, send its outcome, and leave without running the parent's exit handlers."""
    global IN_CHILD
    IN_CHILD = True
    status = 0
    try:
        os.close(read_end)
        outcome = _outcome(work)
        try:
            payload = pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
            pickle.loads(payload)  # some exceptions pickle but do not unpickle
        except Exception as error:  # send what can be said in words
            kind, value = outcome
            text = f"{type(value).__name__}: {value}" if kind == "error" else f"its result could not be sent back ({error})"
            payload = pickle.dumps(("error", RuntimeError(text)))
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(payload)
    except BaseException:
        status = 1
    finally:
        os._exit(status)


def _outcome(work: Callable[[], T]) -> tuple[str, object]:
    try:
        return ("ok", work())
    except Exception as error:
        return ("error", error)


def _unwrap(outcome: tuple[str, object]):
    kind, value = outcome
    if kind == "error":
        raise value  # type: ignore[misc]
    return value


class Claims:
    """The numbers 0..count-1, claimed by two processes from opposite ends: one takes the
    lowest number left, the other the highest, until they meet. Each process so works on one
    run of neighbours (its own folders, templates and caches), and both finish together
    however uneven the work is. The two ends are kept in an unnamed temporary file, under a
    POSIX record lock: per process, so it excludes a forked child too, and released by the
    kernel if a process dies holding it."""

    _ENDS = struct.Struct("<qq")

    def __init__(self, count: int) -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 - open as long as the claims, closed by close()
        os.pwrite(self._file.fileno(), self._ENDS.pack(0, count), 0)

    def take(self, from_the_top: bool = False) -> Iterator[int]:
        """Numbers from the bottom (or the top), one at a time, until none is left."""
        import fcntl  # POSIX only, as fork is: msgen.fork itself imports everywhere

        descriptor = self._file.fileno()
        while True:
            fcntl.lockf(descriptor, fcntl.LOCK_EX)
            try:
                low, high = self._ENDS.unpack(os.pread(descriptor, self._ENDS.size, 0))
                if low >= high:
                    return
                number = high - 1 if from_the_top else low
                ends = (low, number) if from_the_top else (number + 1, high)
                os.pwrite(descriptor, self._ENDS.pack(*ends), 0)
            finally:
                fcntl.lockf(descriptor, fcntl.LOCK_UN)
            yield number

    def close(self) -> None:
        self._file.close()
