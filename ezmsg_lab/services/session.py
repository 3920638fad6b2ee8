"""The Lab's session: its control loop, its default timeout and whether it is closed."""

from __future__ import annotations

import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from ..errors import LabClosedError
from ..runtime.loop import ControlLoop

T = TypeVar("T")

CLOSED_MESSAGE = "This Lab is closed; create a new one with Lab()."


def check_timeout(timeout: float) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout={timeout!r} must be a positive number of seconds")


class Session:
    """Every call a service makes into ezmsg goes through :meth:`run`: on the Lab's one
    control loop, bounded by a timeout, refused once the Lab is closed."""

    def __init__(self, timeout: float) -> None:
        check_timeout(timeout)
        self.timeout = float(timeout)
        self.loop: ControlLoop | None = None
        # Held while the Lab registers what it starts (pipelines, taps) and while it
        # closes: a close() from another thread either refuses a start or stops it.
        self.close_lock = threading.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def mark_closed(self) -> bool:
        """Mark the session closed (call with :attr:`close_lock` held); False if it was."""
        if self._closed:
            return False
        self._closed = True
        return True

    def check_open(self) -> None:
        if self._closed:
            raise LabClosedError(CLOSED_MESSAGE)

    def timeout_for(self, timeout: float | None) -> float:
        """``timeout``, checked, or the Lab's default."""
        if timeout is None:
            return self.timeout
        check_timeout(timeout)
        return float(timeout)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None, what: str) -> T:
        """Run ``coro`` on the control loop and wait for it (at most ``timeout``)."""
        if self._closed or self.loop is None:
            coro.close()
            raise LabClosedError(CLOSED_MESSAGE)
        return self.loop.run(coro, self.timeout_for(timeout), what)

    async def arun(self, coro: Coroutine[Any, Any, T], timeout: float | None, what: str) -> T:
        """:meth:`run` for ``await`` on another event loop (the kernel's)."""
        if self._closed or self.loop is None:
            coro.close()
            raise LabClosedError(CLOSED_MESSAGE)
        return await self.loop.arun(coro, self.timeout_for(timeout), what)
