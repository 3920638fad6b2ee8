"""Topology feed: keeps the latest GraphSnapshot current from ezmsg's topology events.

ezmsg's events carry no diff, so each event (or burst of events) triggers one re-read of
``snapshot()``. A gap in ``seq`` means the server dropped events for us (it keeps 1,024
per subscriber); the next re-read heals it, and the gap is counted. When the event stream
ends while the Lab is open, the GraphServer went away: the connection is marked lost so the
next call fails fast with LabConnectionError.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..model.listeners import Listeners, Unsubscribe
from ..model.topology import ConnectionMark
from ..runtime.connection import Connection

logger = logging.getLogger(__name__)

# Seconds without a topology event after which the feed re-reads the snapshot anyway.
RESYNC_S = 1.0


def _shape(snap: Any) -> Any:
    """What a topology view shows of a snapshot: edges, sessions with components, and
    processes with their units."""
    if snap is None:
        return None
    return (
        {k: sorted(v) for k, v in snap.graph.items()},
        sorted(str(k) for k, s in snap.sessions.items() if s.metadata is not None),
        sorted((str(k), tuple(sorted(p.units))) for k, p in snap.processes.items()),
    )


# Events arriving within this window are coalesced into one snapshot re-read.
COALESCE_S = 0.02


class TopologyFeed:
    """Runs on the control loop; read its attributes from any thread."""

    def __init__(self, conn: Connection, max_events: int = 10_000) -> None:
        self._conn = conn
        self.snapshot: Any = None
        self.version = 0
        self.refreshed_at: float | None = None
        self.events: deque[Any] = deque(maxlen=max_events)
        self.last_seq = 0
        self.gaps = 0
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.listeners: Listeners[[Any]] = Listeners("topology")
        self._changed = threading.Condition()
        self._closing = False

    def subscribe(self, fn: Callable[[Any], None]) -> Unsubscribe:
        """Call ``fn(snapshot)`` on the control loop after each refresh; returns the
        function that unsubscribes it."""
        return self.listeners.subscribe(fn)

    def mark(self, kind: str, time_s: float) -> None:
        """Add the Lab's own ``DISCONNECTED`` / ``RECONNECTED`` row to the events."""
        self.events.append(ConnectionMark(seq=self.last_seq, timestamp=time_s, event_type=kind))

    def new_server(self) -> None:
        """Before :meth:`start` on a reconnected (possibly restarted) server: its event
        numbers start again from 1."""
        self.last_seq = 0
        self._closing = False
        self._dirty = asyncio.Event()

    async def start(self) -> None:
        await self._refresh()
        self._tasks = [
            asyncio.create_task(self._listen(), name="ezmsg-lab-topology-events"),
            asyncio.create_task(self._refresher(), name="ezmsg-lab-topology-refresh"),
        ]

    async def stop(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def refresh(self) -> Any:
        """Re-read the snapshot now and return it."""
        await self._refresh()
        return self.snapshot

    async def _refresh(self) -> None:
        self._publish(await self._conn.call(lambda ctx: ctx.snapshot()))

    def _publish(self, snap: Any) -> None:
        self.snapshot = snap
        self.refreshed_at = time.time()
        with self._changed:
            self.version += 1
            self._changed.notify_all()
        self.listeners.emit(snap)

    async def _resync(self) -> None:
        # ezmsg emits no topology event when a session that owned no edges goes (a
        # pipeline of unconnected units stopping): its components would stay in the
        # Lab's view for good. A quiet feed re-reads the snapshot, and tells its
        # listeners only when something they show changed.
        snap = await self._conn.call(lambda ctx: ctx.snapshot())
        if _shape(snap) != _shape(self.snapshot):
            self._publish(snap)

    def wait_for(self, predicate: Callable[[Any], bool], timeout: float) -> bool:
        """Block (not on the loop) until ``predicate(snapshot)`` holds; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                if self.snapshot is not None and predicate(self.snapshot):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.1))

    async def _listen(self) -> None:
        ctx = self._conn.context
        try:
            async for event in ctx.subscribe_topology_events(after_seq=self.last_seq):
                if self.last_seq and event.seq > self.last_seq + 1:
                    self.gaps += event.seq - self.last_seq - 1
                self.last_seq = max(self.last_seq, event.seq)
                self.events.append(event)
                self._dirty.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not self._closing:
                self._conn.mark_lost(f"topology event stream failed: {exc!r}")
            return
        if not self._closing:
            self._conn.mark_lost("the topology event stream ended")

    async def _refresher(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._dirty.wait(), RESYNC_S)
            except asyncio.TimeoutError:
                try:
                    await self._resync()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if self._conn.lost is not None:
                        return
                    logger.debug("topology resync failed: %r", exc)
                continue
            await asyncio.sleep(COALESCE_S)
            self._dirty.clear()
            try:
                await self._refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._conn.lost is not None:
                    return
                logger.warning("topology refresh failed: %r", exc)
