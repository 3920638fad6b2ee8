"""The profiling poller: one per Lab, at a fixed cadence, into the MetricsStore.

Each unit process is asked for its profiling snapshot through the Lab's one GraphContext;
a process that does not answer within its timeout is recorded as missing (ezmsg's own
``profiling_snapshot_all`` silently leaves it out). Processes come from the topology
feed's process table, so pid and host are the real ones. Each request is also a clock
round trip: the reply is stamped with the process's perf_counter between the Lab's send
and receive times, which keeps every host's monotonic -> UTC offset current
(:class:`~ezmsg_lab.model.clock.HostClocks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from operator import methodcaller
from typing import Any

from ..model.clock import HostClocks
from ..model.listeners import Listeners, Unsubscribe
from ..model.metrics import EndpointSample, MetricsStore
from ..model.topology import process_table
from ..runtime.connection import Connection
from .topology import TopologyFeed

logger = logging.getLogger(__name__)

MAX_RATE_HZ = 20.0
DEFAULT_RATE_HZ = 1.0
# When the process table changes the poller polls at once, then again after each of these
# gaps (seconds after the previous poll ended), then on its cadence: a rate needs two
# polls, so the first gap gives every new publisher a rate within a tick of its process
# appearing (a true count over a short window, so coarse for slow streams) and the second
# a steadier one soon after.
FOLLOW_UPS_S = (0.04, 0.25)


def check_rate(hz: float) -> float:
    if isinstance(hz, bool) or not isinstance(hz, (int, float)) or not 0 < hz <= MAX_RATE_HZ:
        raise ValueError(
            f"poll rate {hz!r} Hz must be a number in (0, {MAX_RATE_HZ:g}]; ezmsg asks each "
            "process in turn, so faster polling costs the pipeline more"
        )
    return float(hz)


def endpoint_samples(
    process_id: str, snap: Any, offset_ns: int | None = None
) -> list[EndpointSample]:
    """EndpointSamples from one ezmsg ProcessProfilingSnapshot; ``offset_ns`` (its host's
    ``epoch_ns - perf_ns``) stamps them in UTC when known."""

    def epoch(ts: float) -> int | None:
        return None if offset_ns is None else int(ts) + offset_ns

    out = [
        EndpointSample(
            process_id=process_id,
            endpoint_id=pub.endpoint_id,
            topic=pub.topic,
            kind="publisher",
            total=pub.messages_published_total,
            ts_ns=pub.timestamp,
            inflight=pub.inflight_messages_current,
            num_buffers=pub.num_buffers,
            epoch_ns=epoch(pub.timestamp),
        )
        for pub in snap.publishers.values()
    ]
    out.extend(
        EndpointSample(
            process_id=process_id,
            endpoint_id=sub.endpoint_id,
            topic=sub.topic,
            kind="subscriber",
            total=sub.messages_received_total,
            ts_ns=sub.timestamp,
            channel=getattr(sub.channel_kind_last, "value", str(sub.channel_kind_last)),
            epoch_ns=epoch(sub.timestamp),
        )
        for sub in snap.subscribers.values()
    )
    return out


class ProfilingPoller:
    def __init__(
        self,
        conn: Connection,
        topology: TopologyFeed,
        store: MetricsStore,
        rate_hz: float = DEFAULT_RATE_HZ,
        per_process_timeout: float = 0.5,
    ) -> None:
        self._conn = conn
        self._topology = topology
        self.store = store
        self.rate_hz = check_rate(rate_hz)
        self.per_process_timeout = per_process_timeout
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._follow_up = False  # set with _wake when the process table changed
        self._known_processes: frozenset[str] = frozenset()
        self.clocks = HostClocks()
        self.listeners: Listeners[[]] = Listeners("profiling poll")
        self.poll_seconds: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe_topology: Unsubscribe | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._unsubscribe_topology = self._topology.subscribe(self._on_topology)
        self._task = asyncio.create_task(self._run(), name="ezmsg-lab-profiling")

    def offset_of(self, process_id: str) -> int | None:
        """``epoch_ns - perf_ns`` for a process's host (None while it is unknown)."""
        snapshot = self._topology.snapshot
        proc = None if snapshot is None else process_table(snapshot).get(process_id)
        if proc is None:  # gone from the topology: its last known host
            meta = self.store.processes.get(process_id)
            return self.clocks.offset_ns(meta.host if meta is not None else None)
        return self.clocks.offset_ns(proc.host)

    def subscribe(self, fn: Callable[[], None]) -> Unsubscribe:
        """Call ``fn()`` on the control loop after each poll; returns the function that
        unsubscribes it."""
        return self.listeners.subscribe(fn)

    async def stop(self) -> None:
        if self._unsubscribe_topology is not None:
            self._unsubscribe_topology()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def set_rate(self, hz: float) -> None:
        """Change the poll rate (from any thread); the next poll happens now."""
        self.rate_hz = check_rate(hz)
        self.poll_soon()

    def poll_soon(self) -> None:
        """Poll now and restart the schedule (from any thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    def _on_topology(self, snapshot: Any) -> None:
        processes = frozenset(str(p) for p in snapshot.processes)
        if processes != self._known_processes:
            self._known_processes = processes
            self._follow_up = True
            self._wake.set()  # poll now, and twice more shortly after

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_t = loop.time()  # the next poll on the cadence
        follow_ups: list[float] = []
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._conn.lost is not None:
                    return
                logger.warning("profiling poll failed: %r", exc)
            now = loop.time()
            if now >= next_t:  # that was the poll on the cadence (a follow-up does not count)
                next_t += 1.0 / self.rate_hz
                if next_t < now:  # fell behind (slow poll): do not burst to catch up
                    next_t = now + 1.0 / self.rate_hz
            wake_at = min(next_t, now + follow_ups.pop(0)) if follow_ups else next_t
            try:
                await asyncio.wait_for(self._wake.wait(), max(0.0, wake_at - loop.time()))
            except asyncio.TimeoutError:
                continue
            self._wake.clear()
            if self._follow_up:
                self._follow_up = False
                follow_ups = list(FOLLOW_UPS_S)
            next_t = loop.time()  # woken: poll now, then on the (new) schedule

    async def poll_once(self) -> None:
        snapshot = self._topology.snapshot
        if snapshot is None:
            return
        expected = process_table(snapshot)
        samples: list[EndpointSample] = []
        t0 = time.perf_counter()
        for process_id, meta in expected.items():
            if not meta.units:
                continue
            route = meta.units[0]
            send_ns = time.time_ns()
            try:
                snap = await self._conn.call(
                    # ctx.process_profiling_snapshot(route, timeout=...), route bound now
                    methodcaller(
                        "process_profiling_snapshot", route, timeout=self.per_process_timeout
                    )
                )
            except RuntimeError as exc:  # ezmsg: the process did not answer
                logger.debug("no profiling snapshot from %s: %s", process_id, exc)
                continue
            if meta.host is not None:
                self.clocks.observe(meta.host, send_ns, time.time_ns(), snap.timestamp)
            offset = self.clocks.offset_ns(meta.host)
            samples.extend(endpoint_samples(process_id, snap, offset))
        poll_s = time.time()
        self.store.ingest(poll_s, samples, {k: v for k, v in expected.items() if v.units})
        self.poll_seconds = time.perf_counter() - t0
        self.listeners.emit()
