"""Losing and regaining the GraphServer: mark the gap, reconnect, resume the feeds.

When the GraphServer goes away (killed, restarted, its host rebooted) the feeds end and
every call fails fast with :class:`~ezmsg_lab.errors.LabConnectionError`. This service
watches for that on the control loop. It marks the gap where the numbers live (one
``disconnected`` row per endpoint in ``lab.metrics()``, a ``DISCONNECTED`` row in
``lab.topology_events()``), says so in the notebook, and, for a Lab attached to a server
it does not own, probes the address until a server answers there again; then it opens a
new session and starts the topology, settings and profiling feeds afresh (a
``RECONNECTED`` row marks where they resume). ``lab.reconnect()`` does the same on
demand, for any Lab.

What does not come back by itself: taps and tracing (they are closed at the loss: open
them again), and unit processes that were connected to the old server (ezmsg leaves them
stuck: stop and launch them again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from ..errors import LabConnectionError
from ..feeds.profiling import ProfilingPoller
from ..feeds.settings import SettingsFeed
from ..feeds.topology import TopologyFeed
from ..feeds.traces import TraceFeed
from ..model.metrics import MetricsStore
from ..runtime.connection import Connection
from ..runtime.server import probe
from .session import Session

logger = logging.getLogger(__name__)

# How often an attached Lab checks its connection and, once lost, probes the address.
WATCH_INTERVAL_S = 0.5
# How long one probe may take (a server that accepts but does not answer is not back).
PROBE_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class ConnectionStatus:
    """The Lab's connection to its GraphServer.

    Attributes
    ----------
    state : str
        ``"connected"``, ``"disconnected"`` (lost; an attached Lab is probing) or
        ``"closed"``.
    reconnects : int
        How many times the Lab reconnected.
    lost_at, reconnected_at : float or None
        Epoch seconds of the last loss and of the last reconnect.
    reason : str or None
        Why the connection was lost, while it is.
    """

    state: str
    reconnects: int
    lost_at: float | None
    reconnected_at: float | None
    reason: str | None


class Reconnector:
    """Runs on the control loop; :meth:`reconnect` is called from cells."""

    def __init__(
        self,
        session: Session,
        conn: Connection,
        topology: TopologyFeed,
        settings_feed: SettingsFeed,
        poller: ProfilingPoller,
        metrics: MetricsStore,
        trace_feed: TraceFeed,
        *,
        auto: bool,
        before_reconnect: Sequence[Callable[[], Awaitable[None]]],
    ) -> None:
        self._session = session
        self._conn = conn
        self._topology = topology
        self._settings_feed = settings_feed
        self._poller = poller
        self._metrics = metrics
        self._trace_feed = trace_feed
        self._before = tuple(before_reconnect)  # close taps, drop settings publishers
        self.auto = auto
        self.reconnects = 0
        self.reconnected_at: float | None = None
        self._marked_loss: float | None = None
        # True from reconnecting until the feeds run and the count is up: the connection
        # itself is back before then, and a status read in between said "connected"
        # with reconnects still 0.
        self._in_progress = False
        self._task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None

    def status(self) -> ConnectionStatus:
        if self._session.closed:
            state = "closed"
        elif self._conn.lost is not None or self._in_progress:
            state = "disconnected"
        else:
            state = "connected"
        return ConnectionStatus(
            state, self.reconnects, self._conn.lost_at, self.reconnected_at, self._conn.lost
        )

    async def start(self) -> None:
        self._lock = asyncio.Lock()
        self._task = asyncio.create_task(self._watch(), name="ezmsg-lab-reconnect")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def reconnect(self, timeout: float | None = None) -> ConnectionStatus:
        """Reconnect now (see :meth:`Lab.reconnect`)."""
        seconds = self._session.timeout_for(timeout)
        self._session.run(self._reconnect(seconds), seconds + 5.0, "reconnect()")
        return self.status()

    # ------------------------------------------------------------------ on the loop
    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            if self._conn.lost is None:
                continue
            self._mark_loss()
            if not self.auto:
                continue
            try:
                await probe(self._conn.address, PROBE_TIMEOUT_S)
            except LabConnectionError:
                continue
            try:
                await self._reconnect(max(self._session.timeout, 2.0))
            except Exception as exc:  # the server went again meanwhile: keep probing
                logger.warning("reconnecting to %s failed: %r", self._conn.address, exc)

    def _mark_loss(self) -> None:
        lost_at = self._conn.lost_at
        if lost_at is None or self._marked_loss == lost_at:
            return
        self._marked_loss = lost_at
        endpoints = self._metrics.mark_disconnected(lost_at)
        self._topology.mark("DISCONNECTED", lost_at)
        what = "probing it to reconnect" if self.auto else "call lab.reconnect() once it is back"
        _notice(
            f"ezmsg-lab: lost the GraphServer at {self._conn.address} ({self._conn.lost}); "
            f"{endpoints} endpoint(s) marked 'disconnected' in lab.metrics(); {what}."
        )

    async def _reconnect(self, timeout: float) -> None:
        assert self._lock is not None
        async with self._lock:
            self._in_progress = True
            try:
                await self._reconnect_locked(timeout)
            finally:
                self._in_progress = False

    async def _reconnect_locked(self, timeout: float) -> None:
        if self._conn.lost is None:
            # Connected: the user asks to reconnect anyway; mark the gap it makes.
            self._conn.mark_lost("lab.reconnect() was called")
        self._mark_loss()
        lost_at = self._conn.lost_at or time.time()
        await self._stop_feeds()
        await self._conn.close(2.0)
        await self._conn.open(timeout)  # raises LabConnectionError if nobody answers
        self._topology.new_server()
        self._settings_feed.new_server()
        await self._topology.start()
        await self._settings_feed.start()
        await self._poller.start()
        now = time.time()
        self._topology.mark("RECONNECTED", now)
        self.reconnects += 1
        self.reconnected_at = now
        _notice(
            f"ezmsg-lab: reconnected to the GraphServer at {self._conn.address} after "
            f"{now - lost_at:.1f} s; topology, settings and profiling resume (taps and "
            "tracing were closed: open them again)."
        )

    async def _stop_feeds(self) -> None:
        # Each is bounded: the old session is gone and must not hold the reconnect up.
        for stop in (
            *self._before,
            self._trace_feed.stop,
            self._poller.stop,
            self._settings_feed.stop,
            self._topology.stop,
        ):
            try:
                await asyncio.wait_for(stop(), 2.0)
            except Exception as exc:
                logger.debug("stopping %r before reconnecting: %r", stop, exc)


def _notice(message: str) -> None:
    """Said in the notebook (a background event, like a unit starting to raise)."""
    logger.warning(message)
    print(message, file=sys.stderr, flush=True)
