"""The control loop without ezmsg: timeouts cancel, errors propagate, stop is clean."""

from __future__ import annotations

import asyncio
import threading

import pytest

from ezmsg_lab.errors import LabClosedError, LabError, LabTimeoutError
from ezmsg_lab.runtime.loop import ControlLoop


@pytest.fixture
def loop():
    loop = ControlLoop()
    yield loop
    loop.stop()


def test_runs_on_its_own_thread(loop):
    async def where():
        return threading.current_thread().name

    assert loop.run(where(), 1.0) == "ezmsg-lab-control"


def test_timeout_cancels_the_coroutine(loop):
    cancelled = threading.Event()

    async def slow():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(LabTimeoutError) as info:
        loop.run(slow(), 0.1, "slow()")
    assert "slow() did not finish within 0.1 s" in str(info.value)
    assert isinstance(info.value, LabError) and isinstance(info.value, TimeoutError)
    assert cancelled.wait(2)


def test_exceptions_propagate_unchanged(loop):
    async def boom():
        raise KeyError("x")

    with pytest.raises(KeyError):
        loop.run(boom(), 1.0)
    assert loop.run(asyncio.sleep(0, result=7), 1.0) == 7


def test_async_twin_from_another_loop(loop):
    async def on_control_loop():
        return threading.current_thread().name

    async def cell():
        return await loop.arun(on_control_loop(), 1.0)

    assert asyncio.run(cell()) == "ezmsg-lab-control"


def test_async_twin_timeout(loop):
    async def cell():
        return await loop.arun(asyncio.sleep(10), 0.1, "slow")

    with pytest.raises(LabTimeoutError):
        asyncio.run(cell())


def test_stop_cancels_tasks_and_refuses_new_calls():
    loop = ControlLoop()
    cancelled = threading.Event()

    async def forever():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    loop.submit(forever())
    loop.stop()
    assert cancelled.is_set()
    assert not loop.alive
    coro = asyncio.sleep(0)
    with pytest.raises(LabClosedError):
        loop.run(coro, 1.0)
    loop.stop()  # idempotent


def test_blocking_call_from_the_loop_itself_is_refused(loop):
    async def inner():
        return 1

    async def outer():
        coro = inner()
        try:
            loop.run(coro, 1.0)
        except RuntimeError as exc:
            return str(exc)

    assert "async API" in loop.run(outer(), 1.0)


def test_a_call_that_timed_out_before_starting_never_runs(loop):
    """The loop is busy (a feed blocking it) past the call's timeout: the call is reported
    as not started, and when the loop frees up it must not run after all."""
    ran = threading.Event()
    busy = threading.Event()

    async def block_the_loop():
        busy.set()
        import time

        time.sleep(1.0)  # a feed stuck in a blocking call

    async def side_effect():
        ran.set()

    loop.submit(block_the_loop())
    assert busy.wait(2)
    with pytest.raises(LabTimeoutError, match="did not start within 0.1 s"):
        loop.run(side_effect(), 0.1, "lab.set(...)")
    # Once the loop is free again, anything still queued runs; the abandoned call must not.
    assert loop.run(asyncio.sleep(0.05, result="free"), 5.0) == "free"
    assert not ran.is_set()


def test_async_call_that_timed_out_before_starting_never_runs(loop):
    ran = threading.Event()
    busy = threading.Event()

    async def block_the_loop():
        busy.set()
        import time

        time.sleep(1.0)

    async def side_effect():
        ran.set()

    async def cell():
        return await loop.arun(side_effect(), 0.1, "set")

    loop.submit(block_the_loop())
    assert busy.wait(2)
    with pytest.raises(LabTimeoutError, match="did not start"):
        asyncio.run(cell())
    assert loop.run(asyncio.sleep(0.05, result="free"), 5.0) == "free"
    assert not ran.is_set()
