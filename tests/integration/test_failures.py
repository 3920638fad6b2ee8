"""Failures are clear and bounded: start errors name the unit, nothing hangs."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from ezmsg_lab import LabTimeoutError, PipelineStartError
from ezmsg_lab.demo import DemoPipeline

from ..conftest import live_children, wait_until
from ._units import FaultSettings, FaultyPair

pytestmark = [pytest.mark.integration, pytest.mark.interpreter]


@pytest.fixture
def sigint_raises():
    """SIGINT raises KeyboardInterrupt, as in a kernel. A process started in the
    background by a non-interactive shell (nohup, ``cmd &``) starts with SIGINT ignored,
    and Python then installs no handler: the interrupt would vanish."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt_main() -> None:
    """What Jupyter's interrupt button does: SIGINT to the kernel, whose main thread runs
    the cell. Sent to the main thread itself: from a Timer thread, os.kill lets Linux hand
    the signal to any thread, and under heavy load the main thread's wait was then not
    woken (two CI failures)."""
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)


@pytest.mark.parametrize("mode", ["processes", "in-kernel"])
def test_unit_raising_in_initialize_is_named(lab, mode):
    t0 = time.monotonic()
    with pytest.raises(PipelineStartError) as info:
        lab.launch(FaultyPair(FaultSettings(when="initialize")), name="PAIR", mode=mode)
    elapsed = time.monotonic() - t0
    err = info.value
    assert err.unit == "PAIR/FAULTY"
    assert "sensor not found on /dev/fake0" in str(err)
    assert "PAIR/FAULTY" in str(err)
    assert "initialize" in (err.traceback or "")
    assert elapsed < 10, f"start failure took {elapsed:.1f} s"
    assert wait_until(lambda: not live_children(), 10), live_children()
    # The Lab is still usable, and the failed pipeline's units are gone from the server.
    assert wait_until(lambda: lab.snapshot().processes == {}, 5)
    demo = lab.launch(DemoPipeline(), name="DEMO")
    assert demo.running


def test_unit_hanging_in_initialize_times_out_naming_it(lab):
    t0 = time.monotonic()
    with pytest.raises(PipelineStartError) as info:
        lab.launch(FaultyPair(FaultSettings(when="hang")), name="PAIR", start_timeout=2.0)
    elapsed = time.monotonic() - t0
    assert info.value.unit == "PAIR/FAULTY"
    assert "did not finish initialize()" in str(info.value)
    assert "start_timeout" in str(info.value)
    assert elapsed < 2.0 + 5.0, f"took {elapsed:.1f} s"
    assert wait_until(lambda: not live_children(), 10), live_children()


SPAWN_SCRIPT = textwrap.dedent(
    """
    import multiprocessing as mp
    import ezmsg.core as ez
    from ezmsg_lab import Lab, PipelineStartError
    from ezmsg_lab.demo import DemoPipeline

    class NotebookUnit(ez.Unit):  # defined in __main__, as in a notebook
        pass

    if __name__ == "__main__":
        mp.set_start_method("fork", force=True)  # the Lab's choice does not depend on it
        with Lab(start_method="spawn") as lab:
            try:
                lab.launch(NotebookUnit(), name="NB")
            except PipelineStartError as exc:
                print("REFUSED", exc.unit, "|", exc)
            demo = lab.launch(DemoPipeline(), name="DEMO")
            print("DEMO", demo.running, len(demo.pids))
    """
)


def test_spawn_with_notebook_units_is_refused_not_hung(tmp_path):
    script = tmp_path / "spawn_check.py"
    script.write_text(SPAWN_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    refused = next(line for line in lines if line.startswith("REFUSED"))
    assert "REFUSED NB |" in refused
    assert "__main__" in refused and "mode='in-kernel'" in refused
    # Importable units (the demo) start fine under spawn.
    assert "DEMO True 4" in lines


def test_interrupted_launch_leaves_the_lab_usable(lab, sigint_raises):
    timer = threading.Timer(1.0, _interrupt_main)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            lab.launch(FaultyPair(FaultSettings(when="hang")), name="PAIR", start_timeout=60)
    finally:
        timer.cancel()
    assert wait_until(lambda: not live_children(), 10), live_children()
    assert lab.snapshot() is not None
    demo = lab.launch(DemoPipeline(), name="DEMO")
    assert demo.running


def _slow_call() -> tuple[threading.Event, object]:
    """A coroutine that sleeps 30 s, and an event set when it is cancelled."""
    cancelled = threading.Event()

    async def slow():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    return cancelled, slow()


def test_interrupted_call_is_cancelled_and_lab_stays_usable(lab, sigint_raises):
    cancelled, slow = _slow_call()
    timer = threading.Timer(0.3, _interrupt_main)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        lab._run(slow, 60, "slow call")
    assert cancelled.wait(5)
    assert lab.ping() < 1.0


def test_call_timeout_cancels_and_says_what_to_do(lab):
    cancelled, slow = _slow_call()
    with pytest.raises(LabTimeoutError, match="timeout="):
        lab._run(slow, 0.3, "slow call")
    assert cancelled.wait(5)
    lab.snapshot()


def test_feeds_keep_running_while_a_cell_blocks(lab):
    """The topology feed sees a change made while the main thread sleeps."""
    version0 = lab._topology.version
    seen_during_sleep = threading.Event()
    sleep_started = threading.Event()

    def change_topology_elsewhere():
        sleep_started.wait(5)
        demo = lab._topology  # read-only view from another thread
        # Another client (its own loop, its own GraphContext) connects two topics.
        from ezmsg.core.graphcontext import GraphContext

        async def go():
            async with GraphContext(tuple(lab.address), auto_start=False) as ctx:
                await ctx.connect("EXTERNAL/A", "EXTERNAL/B")
                deadline = time.monotonic() + 3
                while time.monotonic() < deadline:
                    snap = demo.snapshot
                    if "EXTERNAL/A" in snap.graph:
                        seen_during_sleep.set()
                        return
                    await asyncio.sleep(0.01)

        asyncio.run(go())

    worker = threading.Thread(target=change_topology_elsewhere)
    worker.start()
    sleep_started.set()
    time.sleep(2.0)  # the "cell" blocks
    assert seen_during_sleep.is_set(), "the topology feed stalled while the cell blocked"
    worker.join(10)
    assert lab._topology.version > version0


def test_async_twin_works_from_a_running_loop(lab):
    """`await lab.aio...` in a cell runs on the kernel's loop, not the Lab's."""

    async def cell():
        snap = await lab.aio.snapshot()
        demo = await lab.aio.launch(DemoPipeline(), name="DEMO")
        rtt = await lab.aio.ping()
        settings = await lab.aio.trace(duration=0.5, budget=0.05)
        await lab.aio.untrace()
        return snap, demo, rtt, settings

    snap, demo, rtt, settings = asyncio.run(cell())
    assert snap.processes == {}
    assert demo.running and rtt < 1.0
    assert settings.budget == 0.05 and lab.tracing is None
