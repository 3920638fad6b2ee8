"""The control loop: one background thread running one asyncio loop.

Every GraphContext, subscription and feed of a Lab lives on this loop and nowhere else
(ezmsg's GraphContext hangs when used from another loop). Synchronous callers go through
:meth:`ControlLoop.run`, which applies a timeout and cancels the coroutine on expiry or on
KeyboardInterrupt; async callers (``await`` in a cell, which runs on the kernel's own loop)
go through :meth:`ControlLoop.arun`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from ..errors import LabClosedError, LabTimeoutError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# How much longer than the coroutine's own timeout the caller waits for the loop to
# report back: covers a loop that is momentarily busy with a feed.
_GRACE_S = 0.5


class ControlLoop:
    """A daemon thread that runs an asyncio loop until :meth:`stop`."""

    def __init__(self, name: str = "ezmsg-lab-control") -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._ready.set)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    @property
    def alive(self) -> bool:
        return not self._stopped and self._thread.is_alive()

    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def _check(self) -> None:
        if not self.alive:
            raise LabClosedError("This Lab is closed; create a new one with Lab().")
        if self.in_loop_thread():
            raise RuntimeError(
                "Blocking Lab call made from the Lab's own control loop; use the async API."
            )

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop without waiting (for long-lived feeds)."""
        if not self.alive:
            coro.close()
            raise LabClosedError("This Lab is closed; create a new one with Lab().")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float, what: str = "call") -> T:
        """Run ``coro`` on the loop and wait for its result for at most ``timeout`` s.

        On timeout the coroutine is cancelled and :class:`LabTimeoutError` raised. A call
        that had not started by then (the loop was busy) is abandoned: it never runs
        later. A KeyboardInterrupt while waiting cancels the coroutine and propagates,
        leaving the loop usable.
        """
        try:
            self._check()
        except BaseException:
            coro.close()
            raise
        call = _Call(coro, timeout, what)
        fut = asyncio.run_coroutine_threadsafe(call.run(), self._loop)
        try:
            return fut.result(timeout + _GRACE_S)
        except concurrent.futures.TimeoutError:
            if call.abandon():
                fut.cancel()
                raise _not_started_error(what, timeout) from None
            # It started late: its own timeout bounds it from when it started.
            try:
                return fut.result(call.remaining() + _GRACE_S)
            except concurrent.futures.TimeoutError:
                self._cancel(call)
                raise _timeout_error(what, timeout) from None
            except BaseException:
                self._cancel(call)
                raise
        except BaseException:
            # KeyboardInterrupt (an interrupted cell) or anything raised by the coroutine.
            call.abandon()
            self._cancel(call)
            raise

    def _cancel(self, call: _Call[Any]) -> None:
        # Future.cancel() does nothing once the loop started running the coroutine;
        # cancel the task itself, on its loop.
        if self.alive:
            self._loop.call_soon_threadsafe(call.cancel)

    async def arun(self, coro: Coroutine[Any, Any, T], timeout: float, what: str = "call") -> T:
        """Async twin of :meth:`run` for callers on another event loop."""
        try:
            self._check()
        except BaseException:
            coro.close()
            raise
        call = _Call(coro, timeout, what)
        fut = asyncio.run_coroutine_threadsafe(call.run(), self._loop)
        wrapped = asyncio.wrap_future(fut)
        try:
            return await asyncio.wait_for(asyncio.shield(wrapped), timeout + _GRACE_S)
        except asyncio.TimeoutError:
            if call.abandon():
                fut.cancel()
                raise _not_started_error(what, timeout) from None
            try:
                return await asyncio.wait_for(wrapped, call.remaining() + _GRACE_S)
            except asyncio.TimeoutError:
                self._cancel(call)
                raise _timeout_error(what, timeout) from None
            except BaseException:
                self._cancel(call)
                raise
        except BaseException:
            call.abandon()
            self._cancel(call)
            raise

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        if self.alive:
            self._loop.call_soon_threadsafe(fn, *args)

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel every task on the loop, stop it and join the thread."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread.is_alive() and not self.in_loop_thread():
            fut = asyncio.run_coroutine_threadsafe(_cancel_all(), self._loop)
            try:
                fut.result(timeout)
            except (concurrent.futures.TimeoutError, RuntimeError) as exc:
                logger.warning("control loop tasks did not finish cancelling: %r", exc)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)


class _Call(Generic[T]):
    """One call into the loop, shared by the caller's thread and the loop.

    A call starts at most once: the caller abandons it on timeout or interrupt, and an
    abandoned call that the loop reaches late is closed without running.
    """

    def __init__(self, coro: Coroutine[Any, Any, T], timeout: float, what: str) -> None:
        self._coro = coro
        self._timeout = timeout
        self._what = what
        self._lock = threading.Lock()
        self._state = "pending"  # -> "running" (on the loop) or "abandoned" (by the caller)
        self._started_at: float | None = None
        self._task: asyncio.Task[Any] | None = None

    def abandon(self) -> bool:
        """Mark the call abandoned if it has not started; True if it never will."""
        with self._lock:
            if self._state == "pending":
                self._state = "abandoned"
            return self._state == "abandoned"

    def remaining(self) -> float:
        """Seconds left of the call's own timeout, counted from when it started."""
        started = self._started_at if self._started_at is not None else time.monotonic()
        return max(0.0, started + self._timeout - time.monotonic())

    def cancel(self) -> None:
        """On the loop: cancel the running call."""
        if self._task is not None:
            self._task.cancel()

    async def run(self) -> T:
        with self._lock:
            if self._state == "abandoned":
                self._coro.close()
                raise asyncio.CancelledError
            self._state = "running"
            self._started_at = time.monotonic()
        self._task = asyncio.current_task()
        try:
            return await asyncio.wait_for(self._coro, self._timeout)
        except asyncio.TimeoutError:
            raise _timeout_error(self._what, self._timeout) from None


def _not_started_error(what: str, timeout: float) -> LabTimeoutError:
    return LabTimeoutError(
        f"{what} did not start within {timeout:g} s because the Lab's control loop was "
        "busy; it was not sent and will not run. Try again, or pass a larger timeout=."
    )


def _timeout_error(what: str, timeout: float) -> LabTimeoutError:
    return LabTimeoutError(
        f"{what} did not finish within {timeout:g} s and was cancelled; "
        "pass a larger timeout= or check that the GraphServer is responsive."
    )


async def _cancel_all() -> None:
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=2.0)
