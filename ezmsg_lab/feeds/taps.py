"""A tap's subscription: a leaky ezmsg subscriber on the control loop feeding a TapBuffer.

Leaky (ezmsg-facts rough edge 10): a subscriber that falls behind must never throttle the
pipeline, so ezmsg drops the oldest unread notification instead, and the tap counts each
drop through :func:`~ezmsg_lab.runtime.compat.count_leaky_drops`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import Any

from ..model.tap_buffer import TapBuffer
from ..runtime import compat
from ..runtime._tap_agent import RateGate, TapSample
from ..runtime.connection import Connection
from ..runtime.tap_link import TapLink, TapWant

logger = logging.getLogger(__name__)

# Notifications ezmsg may queue for the tap before it drops the oldest. Kept below a
# publisher's num_buffers (32 by default): a leaky queue as deep as the publisher's
# buffers could hold them all and throttle it (ezmsg warns about exactly that).
DEFAULT_MAX_QUEUE = 8

# What ``tap.inspect()["via"]`` says of a sampled tap: in a pipeline this Lab launched, or
# through the agent of an attached graph's process (``ezmsg_lab.agent``).
LAUNCHED_VIA = "sampled in the unit process"
AGENT_VIA = "sampled in the unit process, by its ezmsg_lab.agent"


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
        self.via = "subscriber (leaky)"

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


class SampledTapFeed:
    """Receive one topic's messages from the unit process that publishes it (a pipeline
    the Lab launched), at most ``rate`` a second, through a :class:`TapLink`.

    The tapped topic gets no subscriber, so its publisher keeps ezmsg's local path (see
    ``runtime/_tap_agent``). Messages not forwarded are counted as dropped from the gaps
    in the publisher's running count.
    """

    def __init__(
        self,
        links: list[TapLink],
        topic: str,
        buffer: TapBuffer,
        rate: float,
        by: str = LAUNCHED_VIA,
    ) -> None:
        self._links = links
        self.topic = topic
        self.buffer = buffer
        self.rate = rate
        self._wants: list[tuple[TapLink, TapWant]] = []
        self._last_seq = 0
        # Half a second of burst: the samples' arrival is jittered by the pipe.
        self._gate = RateGate(rate, burst_s=0.5)
        self.drops_counted = True
        self.by = by
        self.via = by + ("" if math.isinf(rate) else f" (at most {rate:g} msg/s)")

    def _on_sample(self, sample: TapSample) -> None:
        # Called on the link's reader thread. The unit process forwards at the highest
        # rate any tap on the topic asked for; this tap keeps at most its own.
        # The first sample sets the baseline (another tap may have started the count);
        # a seq at or below the last one is a new unit process (a relaunch) counting
        # from 1 again.
        if self._last_seq and sample.seq > self._last_seq + 1:
            self.buffer.count_dropped(sample.seq - self._last_seq - 1)
        self._last_seq = sample.seq
        if self._gate.admit():
            self.buffer.add(sample.message, time.time())
        else:
            self.buffer.count_dropped()

    def budget(self) -> dict[str, float] | None:
        """When the sampling agent's CPU budget lowers this tap's rate: the factor, the
        rate it samples at, and the busy and agent shares of the unit process."""
        if math.isinf(self.rate):
            return None  # max_rate_hz=None: every message, the budget does not apply
        states = [b for link, _ in self._wants if (b := link.budget_of(self.topic)) is not None]
        if not states:
            return None
        b = min(states, key=lambda s: s.scale)
        return {
            "scale": round(b.scale, 4),
            "rate_hz": round(self.rate * b.scale, 1),
            "process_busy": round(b.busy, 3),
            "agent_cpu": round(b.cost, 4),
        }

    def add_link(self, link: TapLink) -> None:
        """Sample the topic in ``link``'s unit processes too (a pipeline launched later)."""
        if any(known is link for known, _ in self._wants):
            return
        self._wants.append(
            (link, link.want(self.topic, self.rate, self._on_sample, self.buffer.count_error))
        )

    async def start(self, wait_s: float = 1.0) -> bool:
        """Ask the unit processes to sample the topic; True once one of them does
        (within ``wait_s``); False (and nothing left asked) when none publishes it."""
        for link in self._links:
            self.add_link(link)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if any(
                link.wait_installed(self.topic, 0, want.gen)
                for link, want in self._wants
                if link in self._links
            ):
                return True
            await asyncio.sleep(0.01)
        await self.stop()
        return False

    async def stop(self) -> None:
        wants, self._wants = self._wants, []
        for link, want in wants:
            link.unwant(want)
