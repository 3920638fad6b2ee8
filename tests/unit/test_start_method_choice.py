"""Choosing a start method per launch, and the lifeline unit processes watch (no GraphServer)."""

from __future__ import annotations

import enum
import os
import subprocess
import sys
import threading
import time

import ezmsg.core as ez
import pytest

from ezmsg_lab import Lab, PipelineStartError
from ezmsg_lab.demo import DemoPipeline, SinkSettings
from ezmsg_lab.runtime._backend import KernelLifeline, _proc_start_time
from ezmsg_lab.runtime.pipeline import (
    Pipeline,
    _spawn_blocker,
    check_start_method,
    choose_start_method,
    default_start_method,
)

from ..conftest import live_children, wait_until

LINUX = sys.platform.startswith("linux")


class Colour(enum.Enum):
    RED = 1


# As if typed in a notebook: pickle then refers to __main__.Colour, which a process that
# did not fork from the notebook cannot import.
Colour.__module__ = "__main__"


class HoldsLock(ez.Unit):
    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()  # unit state made in the constructor: not picklable


def test_importable_pipeline_has_no_blocker_and_gets_the_default():
    assert _spawn_blocker({"DEMO": DemoPipeline()}) is None
    assert choose_start_method(None, None) == default_start_method()
    if LINUX:
        assert default_start_method() == "forkserver"


def test_a_notebook_class_in_settings_is_found_and_named():
    blocker = _spawn_blocker({"DEMO": DemoPipeline(sink=SinkSettings(name=Colour.RED))})
    assert blocker is not None
    assert blocker.unit == "DEMO"  # the collection whose settings hand it to DEMO/SINK
    assert blocker.main_object is Colour
    err = blocker.error("spawn")
    assert isinstance(err, PipelineStartError) and err.unit == "DEMO"
    text = str(err)
    assert "Colour" in text and "__main__" in text and "'spawn' start method" in text
    assert "mode='in-kernel'" in text and "module" in text
    # Forked on Linux, as ezmsg always did there; refused up front elsewhere.
    assert choose_start_method(None, blocker) == ("fork" if LINUX else default_start_method())


def test_an_unpicklable_unit_is_found_and_named():
    blocker = _spawn_blocker({"LOCKED": HoldsLock()})
    assert blocker is not None and blocker.unit == "LOCKED" and blocker.main_object is None
    text = str(blocker.error("forkserver"))
    assert "cannot be pickled" in text and "initialize()" in text and "lock" in text


def test_requested_method_wins_and_bad_ones_are_refused():
    blocker = _spawn_blocker({"LOCKED": HoldsLock()})
    assert choose_start_method("spawn", blocker) == "spawn"
    assert check_start_method(None) is None
    with pytest.raises(ValueError, match=r"start_method='thread'.*one of"):
        check_start_method("thread")
    with pytest.raises(ValueError, match="start_method"):
        Pipeline(DemoPipeline(), ("127.0.0.1", 1), start_method="thread")


def test_refused_before_anything_starts():
    pipe = Pipeline({"LOCKED": HoldsLock()}, ("127.0.0.1", 1), start_method="spawn")
    with pytest.raises(PipelineStartError, match="cannot be pickled"):
        pipe.start(5.0)
    assert pipe._runner is None and not pipe.running
    assert live_children() == []


def test_lab_refuses_an_unknown_start_method_before_starting_anything():
    threads = threading.active_count()
    with pytest.raises(ValueError, match="start_method"):
        Lab(start_method="threads")
    assert threading.active_count() == threads  # no control loop, no server


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="no /proc here")
def test_proc_start_time_tells_live_dead_and_zombie_processes():
    mine = _proc_start_time(os.getpid())
    assert mine is not None and mine.isdigit() and mine == _proc_start_time(os.getpid())
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        assert wait_until(lambda: _proc_start_time(child.pid) is not None, 10)
    finally:
        child.stdin.close()  # type: ignore[union-attr]
    # Exited, not yet reaped: a zombie, listed in /proc, counts as dead.
    assert wait_until(lambda: _proc_start_time(child.pid) is None, 30)
    assert os.path.exists(f"/proc/{child.pid}/stat")
    child.wait()
    assert _proc_start_time(child.pid) is None


def test_lifeline_reports_the_kernel_alive_until_its_end_closes():
    kernel = KernelLifeline()
    lifeline = kernel.lifeline
    t0 = time.monotonic()
    assert lifeline.kernel_alive(0.05)
    assert time.monotonic() - t0 >= 0.04  # it waited for news rather than spinning
    writer = kernel._writer
    assert writer is not None
    writer.close()  # what the OS does when the kernel dies
    assert not lifeline.kernel_alive(5.0)
    kernel.close()
    kernel.close()  # idempotent


def test_lifeline_sees_a_reused_pid_as_a_dead_kernel():
    kernel = KernelLifeline()
    try:
        if kernel.lifeline.start_time is None:
            pytest.skip("no /proc here")
        kernel.lifeline.start_time = "0"  # the same pid, started at another time
        assert not kernel.lifeline.kernel_alive(0.01)
    finally:
        kernel.close()
