"""The Lab's one GraphContext, owned by the control loop.

Every call into ezmsg's async API goes through :meth:`Connection.call`, which races the
call against the GraphContext's session task: when the GraphServer goes away the session
ends, and ezmsg leaves the in-flight request waiting forever (its session loop fails only
the queued requests). Racing turns that into a prompt :class:`LabConnectionError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import LabConnectionError
from . import compat
from .server import Address, probe

if TYPE_CHECKING:
    from ezmsg.core.graphcontext import GraphContext

logger = logging.getLogger(__name__)

T = TypeVar("T")

_CONNECTION_ERRORS = (OSError, asyncio.IncompleteReadError, EOFError)


async def _ended(task: asyncio.Future[Any]) -> bool:
    """True if ezmsg's session task has ended. It fails the pending requests in its last
    step, so by the time a request sees the error the task is done; one more turn of the
    loop covers a request resumed in the same step."""
    if not task.done():
        await asyncio.sleep(0)
    return task.done()


class Connection:
    """A GraphContext session to one GraphServer. Use only on the control loop."""

    def __init__(self, address: Address) -> None:
        self.address = address
        self._ctx: GraphContext | None = None
        self._lost: str | None = None
        self.lost_at: float | None = None  # epoch seconds of the loss

    @property
    def context(self) -> GraphContext:
        if self._ctx is None:
            raise LabConnectionError("The Lab is not connected to a GraphServer.")
        return self._ctx

    @property
    def lost(self) -> str | None:
        """Why the connection was lost, or None while it is up."""
        return self._lost

    async def open(self, timeout: float) -> None:
        from ezmsg.core.graphcontext import GraphContext

        await probe(self.address, timeout)
        ctx = GraphContext(tuple(self.address), auto_start=False)
        try:
            await asyncio.wait_for(ctx.__aenter__(), timeout)
        except (*_CONNECTION_ERRORS, asyncio.TimeoutError) as exc:
            raise LabConnectionError(
                f"Could not open a session with the GraphServer at {self.address}: {exc!r}"
            ) from None
        self._ctx = ctx
        self._lost = None
        self.lost_at = None

    def mark_lost(self, reason: str) -> None:
        if self._lost is None:
            logger.warning("lost the GraphServer at %s: %s", self.address, reason)
            self._lost = reason
            self.lost_at = time.time()

    def _lost_error(self) -> LabConnectionError:
        return LabConnectionError(
            f"The GraphServer at {self.address} went away ({self._lost}). "
            "Pipelines on it are stopped or stuck. Once it runs again at that address, an "
            "attached Lab reconnects by itself; or call lab.reconnect(), or close this Lab "
            "and start a new one."
        )

    async def call(self, fn: Callable[[GraphContext], Awaitable[T]]) -> T:
        """Run ``fn(context)``; raise LabConnectionError if the server goes away."""
        if self._lost is not None:
            raise self._lost_error()
        ctx = self.context
        session = compat.session_task(ctx)  # ends when the server does
        if session is None or session.done():
            self.mark_lost("the GraphContext session ended")
            raise self._lost_error()
        op: asyncio.Future[T] = asyncio.ensure_future(fn(ctx))
        try:
            await asyncio.wait({op, session}, return_when=asyncio.FIRST_COMPLETED)
            if op.done():
                try:
                    return op.result()
                except _CONNECTION_ERRORS as exc:
                    self.mark_lost(f"{type(exc).__name__}: {exc}")
                    raise self._lost_error() from None
                except RuntimeError as exc:
                    # ezmsg fails pending requests with a RuntimeError as its session loop
                    # ends; the loss is then the session task ending, not the message text.
                    if await _ended(session):
                        self.mark_lost(f"the GraphContext session ended ({exc})")
                        raise self._lost_error() from None
                    raise
            self.mark_lost("the GraphContext session ended")
            raise self._lost_error()
        finally:
            if not op.done():
                op.cancel()
                with contextlib.suppress(BaseException):
                    await op
            elif not op.cancelled():
                # Done as this call was cancelled (the Lab closing mid-poll): its error was
                # not read, and asyncio would log "Task exception was never retrieved".
                op.exception()

    async def close(self, timeout: float) -> None:
        ctx, self._ctx = self._ctx, None
        if ctx is None:
            return
        if self._lost is not None:
            # The server is gone: only release local resources.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(compat.close_session(ctx), timeout)
            return
        try:
            await asyncio.wait_for(ctx.__aexit__(None, None, None), timeout)
        except (*_CONNECTION_ERRORS, asyncio.TimeoutError, RuntimeError) as exc:
            logger.warning("GraphContext did not close cleanly: %r", exc)
