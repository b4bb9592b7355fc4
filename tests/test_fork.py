"""msgen/fork.py: a share of the work in a second process, with the same result or error."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from msgen import fork
from msgen.errors import OutputError


def test_the_child_computes_the_result_in_another_process():
    collect = fork.in_child(lambda: (os.getpid(), [1, "two", {"three": 3}]))
    pid, value = collect()
    assert pid != os.getpid()
    assert value == [1, "two", {"three": 3}]


def test_an_error_in_the_child_is_raised_in_the_parent():
    def fail():
        raise OutputError("disk full")

    collect = fork.in_child(fail)
    with pytest.raises(OutputError, match="disk full"):
        collect()


def test_an_error_that_does_not_pickle_arrives_as_its_text():
    class Local(Exception):
        """A local class: pickle cannot find it by name, so it cannot be sent back."""

    def fail():
        raise Local("no way back")

    with pytest.raises(RuntimeError, match="Local: no way back"):
        fork.in_child(fail)()


def children() -> set[str]:
    """This process's children (zombies included), from Linux's /proc."""
    return set((Path("/proc/self/task") / str(os.getpid()) / "children").read_text().split())


def test_the_child_is_waited_for(tmp_path):
    before = children()
    marker = tmp_path / "done"
    collect = fork.in_child(lambda: marker.write_text("x"))
    assert children() - before  # it runs beside this process
    collect()
    assert marker.read_text() == "x"
    assert children() == before  # and is gone after, not even a zombie


def test_with_other_threads_running_the_work_runs_here():
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    try:
        assert not fork.can_fork()
        assert fork.in_child(os.getpid)() == os.getpid()
    finally:
        stop.set()
        worker.join()


def test_single_process_when_asked(monkeypatch):
    monkeypatch.setenv("MSGEN_SINGLE_PROCESS", "1")
    assert not fork.can_fork()
    assert fork.in_child(os.getpid)() == os.getpid()


def test_an_interrupted_parent_still_waits_for_the_child_and_raises_its_own(monkeypatch):
    """A failure in the parent's share of the checks: the Kubernetes models' child is
    reaped and the parent's own exception (not the child's) is what the caller sees."""
    from msgen import api
    from msgen.checks import kubernetes

    monkeypatch.setattr(kubernetes, "MODELS_APART_FROM", 0)
    analysis = api.prepare(Path(__file__).resolve().parent.parent / "blueprints" / "reference.yaml")

    def interrupted(context):
        raise KeyboardInterrupt

    monkeypatch.setattr(kubernetes, "check", interrupted)
    before = children()
    with pytest.raises(KeyboardInterrupt):
        api.judge(analysis)
    assert children() == before


def test_a_child_killed_before_it_answers_is_a_clear_error():
    """Out of memory or a signal: the caller gets an MsgenError (exit 2, no traceback)."""
    from msgen.errors import MsgenError

    collect = fork.in_child(lambda: os.kill(os.getpid(), 9))
    with pytest.raises(MsgenError, match=r"second process ended without a result.*MSGEN_SINGLE_PROCESS=1"):
        collect()
