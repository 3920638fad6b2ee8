"""Data taps: ``lab.tap(topic)`` and ``lab.taps`` (the Lab's taps service).

The :class:`~ezmsg_lab.lab_taps.Tap` objects it opens hold the messages; this service
checks the topic, starts each tap's feed on the control loop, keeps the open taps and
stops their feeds when they close or the Lab does.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import LabError, TapError
from ..feeds.taps import AGENT_VIA, DEFAULT_MAX_QUEUE, SampledTapFeed, TapFeed
from ..lab_taps import DEFAULT_MAX_BYTES, Tap, _check_importable, _seconds
from ..model.tap_buffer import TapBuffer
from ..model.topology import parent_address
from ..runtime._agent_socket import AgentDirError
from ..runtime.agent_link import AgentLinks
from ..runtime.tap_link import TapLink, rate_of

if TYPE_CHECKING:
    from ..feeds.topology import TopologyFeed
    from ..runtime.connection import Connection
    from ..runtime.pipeline import Pipeline
    from .graph_info import GraphInfo
    from .pipelines import PipelinesService
    from .session import Session
    from .widgets import WidgetRegistry


# Messages a second a sampled tap forwards by default: every message of a typical
# chunked signal (30 kHz in chunks of 15 samples), and a bounded cost for a free-running
# one (each forwarded message is pickled once in the unit process).
DEFAULT_MAX_RATE_HZ = 2000.0
VIA = ("auto", "sampled", "subscriber")

# The columns of TapsService.taps_frame(), one row per open tap.
TAP_COLUMNS = (
    "topic",
    "type",
    "rate_hz",
    "received",
    "dropped",
    "buffered",
    "nbytes",
    "window_s",
    "held_to_hz",
)


class TapsService:
    """Opens and keeps the Lab's taps (``lab.tap()``, ``lab.taps``)."""

    def __init__(
        self,
        session: Session,
        conn: Connection,
        topology: TopologyFeed,
        graph: GraphInfo,
        widgets: WidgetRegistry,
        pipelines: PipelinesService,
    ) -> None:
        self._session = session
        self._pipelines = pipelines
        self._conn = conn
        self._topology = topology
        self._graph = graph
        self.widgets = widgets  # scopes of the taps register here
        # open taps (in opening order) -> their feeds
        self._open: dict[Tap, TapFeed | SampledTapFeed] = {}
        # Connections to the tap agents of attached graphs' processes (ezmsg_lab.agent).
        self._agents = AgentLinks()
        # A pipeline launched (or relaunched) later: its unit processes sample the topics
        # of the sampled taps that are open.
        pipelines.subscribe(self._on_launch)
        # An attached script restarted: the agents of its new processes sample them too.
        self._reaching: set[int] = set()  # pids being connected to
        self._unfollow_topology = topology.subscribe(self._on_topology)

    def tap(
        self,
        topic: str,
        window: Any = "10s",
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_queue: int = DEFAULT_MAX_QUEUE,
        max_rate_hz: float | None = DEFAULT_MAX_RATE_HZ,
        via: str = "auto",
        timeout: float | None = None,
    ) -> Tap:
        """Hold the last ``window`` of messages published on ``topic``.

        Parameters
        ----------
        topic : str
            A publisher's topic, e.g. ``"DEMO/FILTER/OUTPUT_SIGNAL"`` (see
            ``lab.topology().topics``).
        window : float or str
            Seconds of messages kept (``10``, ``"10s"``, ``"2min"``).
        max_bytes : int
            Memory cap of the buffer; the oldest messages go first.
        max_queue : int
            Unread messages ezmsg queues for the tap before dropping the oldest
            (counted in ``tap.dropped``); keep it below the publisher's num_buffers.
            Used where the tap subscribes (see Notes).
        max_rate_hz : float or None
            Where the tap is sampled (see Notes): the most messages a second the
            publisher's process forwards to the tap (None: every one it can).
            Messages over the rate are counted in ``tap.dropped``.
        via : {"auto", "sampled", "subscriber"}
            How the messages reach the tap (see Notes). ``"auto"`` samples where it can
            and subscribes elsewhere; ``"sampled"`` raises :class:`TapError` where it
            cannot.

        Notes
        -----
        How the messages reach the tap (``tap.inspect()["via"]``):

        - **sampled** (the publisher runs in a unit process this Lab launched, or in a
          process of an attached graph whose script runs
          ``ez.run(..., backend_process=ezmsg_lab.agent.BackendProcess)`` on this host):
          the unit process hands the tap the messages its publisher sends, up to
          ``max_rate_hz``, over the Lab's own pipe (or the agent's socket). Nothing
          subscribes to the topic, so the pipeline's path is unchanged (ezmsg's local
          delivery stays local).
        - **subscriber** (other attached graphs, in-kernel pipelines): a leaky ezmsg
          subscriber. It never blocks the publisher, but ezmsg then serializes every
          message of the topic for the kernel: on a fast topic whose subscribers share
          the publisher's process, that costs the pipeline throughput.

        Examples
        --------
        >>> tap = lab.tap("DEMO/FILTER/OUTPUT_SIGNAL", window="10s")  # doctest: +SKIP
        >>> tap.data()  # an xarray.DataArray (time × ch)  # doctest: +SKIP
        """
        self._session.check_open()
        if not isinstance(topic, str) or not topic:
            raise TypeError(
                f"topic must be a topic name such as 'DEMO/SOURCE/OUTPUT', not {topic!r}"
            )
        window_s = _seconds(window, "window")
        if not (isinstance(max_bytes, int) and max_bytes > 0):
            raise ValueError(f"max_bytes={max_bytes!r} must be a positive int")
        if not (isinstance(max_queue, int) and max_queue >= 1):
            raise ValueError(f"max_queue={max_queue!r} must be an int >= 1")
        msg_type = self._graph.topic_msg_type(topic)
        snap = self._topology.snapshot
        if snap is not None and topic not in snap.graph and msg_type is None:
            known = self._graph.output_topics()
            raise TapError(
                f"No topic {topic!r} in the graph. Publishers' topics: {known[:20]}"
                f"{' ...' if len(known) > 20 else ''}"
            )
        _check_importable(topic, msg_type)
        if max_rate_hz is not None and not (
            isinstance(max_rate_hz, (int, float)) and max_rate_hz > 0
        ):
            raise ValueError(f"max_rate_hz={max_rate_hz!r} must be a positive number or None")
        if via not in VIA:
            raise ValueError(f"via={via!r} must be one of {', '.join(map(repr, VIA))}")
        if self._conn.lost is not None:
            # Raises LabConnectionError with the reason: a sampled tap would not need the
            # server, but units on a server that is gone are stuck and send nothing.
            self._session.run(self._conn.call(lambda ctx: ctx.snapshot()), timeout, "tap()")
        buffer = TapBuffer(window_s, max_bytes)
        feed = self._start_feed(topic, buffer, max_queue, max_rate_hz, via, timeout)
        tap = Tap(self, topic, buffer, feed)
        with self._session.close_lock:
            closed = self._session.closed
            if not closed:
                self._open[tap] = feed
        if closed:
            tap.close()
            raise TapError("The Lab was closed while the tap opened; nothing is left open.")
        return tap

    def _start_feed(
        self,
        topic: str,
        buffer: TapBuffer,
        max_queue: int,
        max_rate_hz: float | None,
        via: str,
        timeout: float | None,
    ) -> TapFeed | SampledTapFeed:
        links = self._pipelines.tap_links() if via != "subscriber" else []
        if links:
            sampled = SampledTapFeed(links, topic, buffer, rate_of(max_rate_hz))
            if self._session.run(sampled.start(), timeout, f"tap({topic!r})"):
                return sampled
        why_not = ""
        if via != "subscriber":
            agent_link, why_not = self._agent_link(topic)
            if agent_link is not None:
                sampled = SampledTapFeed(
                    [agent_link], topic, buffer, rate_of(max_rate_hz), by=AGENT_VIA
                )
                if self._session.run(sampled.start(), timeout, f"tap({topic!r})"):
                    return sampled
                why_not = "its process's agent does not publish it (or serves another Lab)"
        if via == "sampled":
            raise TapError(
                f"{topic!r} cannot be sampled: no unit process this Lab launched publishes "
                f"it, and {why_not or 'no tap agent answers for its process'}. For a "
                "graph your own script runs, opt in with "
                "ez.run(..., backend_process=ezmsg_lab.agent.BackendProcess) (same host "
                "and user as this kernel); or use via='auto' to subscribe instead."
            )
        feed = TapFeed(self._conn, topic, buffer, max_queue)
        self._session.run(feed.start(), timeout, f"tap({topic!r})")
        return feed

    def _agent_link(self, topic: str) -> tuple[TapLink | None, str]:
        """The link to the tap agent of the process that publishes ``topic`` in an
        attached graph, or None and why not."""
        unit = parent_address(topic) or topic
        pid = self._graph.owner_pid(unit)
        if pid is None:
            return None, "the GraphServer's process table names no process for it"
        if pid == os.getpid():
            return None, "it is published in this kernel"
        if self._graph.runs_elsewhere(unit):
            return None, "its process runs on another host (agents serve their own host)"
        try:
            link = self._agents.link_for(pid)
        except AgentDirError as exc:
            return None, str(exc)
        if link is None:
            return None, f"no tap agent answers for its process (pid {pid})"
        return link, ""

    def _on_topology(self, snapshot: Any) -> None:
        """On the control loop, after each topology refresh: a topic an agent-sampled tap
        is open on, now published by a process this Lab is not connected to (the script
        restarted), gets that process's agent, which is told the open taps at once.
        Connecting may wait, so it runs in a thread of its own."""
        with self._session.close_lock:
            topics = {
                f.topic
                for f in self._open.values()
                if isinstance(f, SampledTapFeed) and f.by == AGENT_VIA
            }
        if not topics:
            return
        connected = set(self._agents.connected_pids())
        for topic in topics:
            pid = self._graph.owner_pid(parent_address(topic) or topic)
            if pid is None or pid in connected or pid in self._reaching or pid == os.getpid():
                continue
            self._reaching.add(pid)
            threading.Thread(
                target=self._reach, args=(pid,), name="ezmsg-lab-agent-connect", daemon=True
            ).start()

    def _reach(self, pid: int) -> None:
        try:
            with contextlib.suppress(AgentDirError):
                self._agents.link_for(pid)
        finally:
            self._reaching.discard(pid)

    def _on_launch(self, pipeline: Pipeline) -> None:
        link = pipeline.tap_link
        if link is None:
            return
        with self._session.close_lock:
            feeds = [f for f in self._open.values() if isinstance(f, SampledTapFeed)]
        for feed in feeds:
            feed.add_link(link)

    @property
    def taps(self) -> list[Tap]:
        """The open taps."""
        return list(self._open)

    def taps_frame(self) -> pd.DataFrame:
        """One row per open tap: topic, type, rate_hz, received, dropped, buffered,
        nbytes, window_s, and held_to_hz: the rate its unit process's CPU budget holds
        it to now (NaN when none does; see ``tap.inspect()["budget"]``)."""
        infos = [tap.inspect() for tap in self.taps]
        rows = []
        for info in infos:
            row = {k: info.get(k) for k in TAP_COLUMNS}
            budget = info.get("budget")
            row["held_to_hz"] = budget["rate_hz"] if budget else math.nan
            rows.append(row)
        return pd.DataFrame(rows, columns=list(TAP_COLUMNS))

    def unit_scope(self, unit: str) -> Any:
        """A scope of ``unit``'s first data output on a tap of its own (the dashboard's),
        or None when the unit publishes nothing."""
        outputs = sorted(
            s.address
            for s in self._graph.streams()
            if "Output" in type(s).__name__
            and s.address.startswith(unit + "/")
            and "/" not in s.address[len(unit) + 1 :]
        )
        if not outputs:
            return None
        tap = self.tap(outputs[0], window="10s")
        try:
            return tap.scope(owns_tap=True)
        except BaseException:
            tap.close()
            raise

    def topic_msg_type(self, topic: str) -> str | None:
        """The message type ezmsg's metadata gives for ``topic`` (None if unknown)."""
        return self._graph.topic_msg_type(topic)

    def close_tap(self, tap: Tap) -> None:
        """Stop ``tap``'s feed (called by :meth:`Tap.close`)."""
        with self._session.close_lock:
            feed = self._open.pop(tap, None)
        loop = self._session.loop
        if feed is not None and loop is not None and loop.alive and not self._session.closed:
            # A Lab closing or without its server: the feed then ends with the loop.
            with contextlib.suppress(LabError):
                loop.run(feed.stop(), 5.0, f"closing the tap on {tap.topic}")

    async def close_all(self) -> None:
        """On the control loop, as the Lab closes: stop every feed, close every tap."""
        with self._session.close_lock:
            open_taps = list(self._open.items())
            self._open.clear()
        for tap, feed in open_taps:
            await feed.stop()
            tap.close()
        self._unfollow_topology()  # a closed Lab's feeds keep no listener of ours
        self._agents.close()
