"""A tap's subscription: a leaky ezmsg subscriber on the control loop feeding a TapBuffer.

Leaky (ezmsg-facts rough edge 10): a subscriber that falls behind must never throttle the
pipeline, so ezmsg drops the oldest unread notification instead, and the tap counts each
drop through :func:`~ezmsg_lab.runtime.compat.count_leaky_drops`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from ..model.tap_buffer import TapBuffer
from ..runtime import compat
from ..runtime.connection import Connection

logger = logging.getLogger(__name__)

# Notifications ezmsg may queue for the tap before it drops the oldest. Kept below a
# publisher's num_buffers (32 by default): a leaky queue as deep as the publisher's
# buffers could hold them all and throttle it (ezmsg warns about exactly that).
DEFAULT_MAX_QUEUE = 8


class TapFeed:
    """Receive one topic's messages into ``buffer``. Use only on the control loop."""

    def __init__(
        self, conn: Connection, topic: str, buffer: TapBuffer, max_queue: int = DEFAULT_MAX_QUEUE
    ) -> None:
        self._conn = conn
        self.topic = topic
        self.buffer = buffer
        self.max_queue = max_queue
        self._sub: Any = None
        self._task: asyncio.Task[None] | None = None
        self.drops_counted = False

    async def start(self) -> None:
        self._sub = await self._conn.call(
            lambda ctx: ctx.subscriber(self.topic, leaky=True, max_queue=self.max_queue)
        )
        self.drops_counted = compat.count_leaky_drops(self._sub, self.buffer.count_dropped)
        if not self.drops_counted:
            logger.warning("tap on %s cannot count dropped messages with this ezmsg", self.topic)
        self._task = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        sub, buffer = self._sub, self.buffer
        while True:
            try:
                msg = await sub.recv()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one unreadable message must not end the tap
                buffer.count_error(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.01)
                continue
            buffer.add(msg, time.time())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        sub, self._sub = self._sub, None
        if sub is not None:
            # Before unsubscribing: ezmsg would drop these without acknowledging them.
            compat.release_unread(sub)
            sub.close()
            with contextlib.suppress(Exception, asyncio.TimeoutError):
                await asyncio.wait_for(sub.wait_closed(), 2.0)
            with contextlib.suppress(Exception):
                compat.forget_client(self._conn.context, sub)
