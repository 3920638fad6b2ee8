"""The Lab's live data as pandas DataFrames: topology, settings, profile, traces, logs.

Views read the Lab's stores, never the GraphServer: the feeds keep the stores current
(one profiling poller per Lab). Every time column is a timezone-aware UTC timestamp.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import LabError
from ..feeds.traces import DEFAULT_BUDGET, DEFAULT_TTL_S, TraceSettings
from ..model.clock import perf_to_epoch_s, since_to_epoch_s, to_utc
from ..model.metrics import publisher_channels
from ..model.topology import Topology, build_topology, events_frame
from .graph_info import check_unit

if TYPE_CHECKING:
    from ..feeds.profiling import ProfilingPoller
    from ..feeds.topology import TopologyFeed
    from ..feeds.traces import TraceFeed
    from ..model.logs import LogStore
    from ..model.metrics import MetricsStore
    from ..model.settings_store import SettingsStore
    from ..model.traces import TraceStore
    from .graph_info import GraphInfo
    from .session import Session
    from .settings import SettingsService


class Views:
    """DataFrame views of a Lab's stores (the Lab delegates its views here)."""

    def __init__(
        self,
        session: Session,
        topology: TopologyFeed,
        graph: GraphInfo,
        settings_store: SettingsStore,
        settings: SettingsService,
        poller: ProfilingPoller,
        metrics: MetricsStore,
        logs: LogStore,
        traces: TraceStore,
        trace_feed: TraceFeed,
    ) -> None:
        self._session = session
        self._topology = topology
        self._graph = graph
        self._settings = settings_store
        self._settings_service = settings
        self._poller = poller
        self._metrics = metrics
        self._logs = logs
        self._traces = traces
        self._trace_feed = trace_feed

    # ------------------------------------------------------------------ topology
    def topology(self) -> Topology:
        """The running graph: ``.units``, ``.topics``, ``.edges``, ``.processes``,
        ``.collections`` DataFrames, kept current from ezmsg's topology events.

        Examples
        --------
        >>> lab.topology().units[["address", "pid", "host"]]  # doctest: +SKIP
        """
        self._session.check_open()
        snap = self._topology.snapshot
        if snap is None:
            raise LabError("No topology yet: the Lab has not read a snapshot.")
        return build_topology(snap, self._topology.refreshed_at or time.time())

    def topology_events(self) -> pd.DataFrame:
        """ezmsg's topology events seen by this Lab: seq, time, event, changed_topics,
        source_session, source_process. ``lab.topology_gaps`` counts events ezmsg dropped
        (healed by re-reading the snapshot)."""
        return events_frame(list(self._topology.events))

    @property
    def topology_gaps(self) -> int:
        return self._topology.gaps

    # ------------------------------------------------------------------ settings
    def settings(self, unit: str | None = None) -> pd.DataFrame:
        """Every unit's settings, one row per unit and field: value, type, default,
        min, max, choices, description, dynamic (can be changed live). Enum values show
        as members (``Window.HANN``, as ``lab.set`` results do); choices are listed for
        Enum and Literal fields."""
        dynamic = {
            address: bool(comp.dynamic_settings.enabled)
            for address, comp in self._graph.components().items()
        }
        frame = self._settings.frame(dynamic, specs=self._settings_service.specs())
        if unit is not None:
            check_unit(unit, frame["unit"].unique())
            frame = frame[frame["unit"] == unit].reset_index(drop=True)
        return frame

    def settings_history(self, unit: str | None = None, since: Any = None) -> pd.DataFrame:
        """Every settings change seen (initial values included): seq, time, unit, field,
        old, new, event, by, source_session, source_process.

        ``by`` says who made the change: ``"this Lab"`` (confirmed one of this Lab's own
        changes), ``"another client"`` or ``"launch"`` (a unit's initial settings).
        ezmsg stamps every change with the session of the process that applied it, so
        ``source_session`` alone cannot tell clients apart."""
        return self._settings.history(
            unit=unit, since_s=since_to_epoch_s(since), specs=self._settings_service.specs()
        )

    # ------------------------------------------------------------------ profiling
    @property
    def poll_hz(self) -> float:
        """Profiling poll rate in Hz (0 < rate <= 20). Assign to change it."""
        return self._poller.rate_hz

    @poll_hz.setter
    def poll_hz(self, hz: float) -> None:
        self._poller.set_rate(hz)

    def profile(self, include_gone: bool = True) -> pd.DataFrame:
        """Publishers and subscribers now: topic, endpoint, kind, unit, process, pid,
        host, rate_hz, messages_total, inflight, num_buffers, channel_kind, errors, status.

        ``channel_kind`` is how messages travel (LOCAL, SHM, TCP): a subscriber's last
        channel, a publisher's from the subscribers it reaches (``"SHM+TCP"`` when they
        differ); missing (NaN) where ezmsg cannot tell, e.g. nothing received yet.
        Rates come from this Lab's own polls (deltas of ezmsg's monotonic totals), so
        other clients polling ezmsg do not change them. ``status`` is ``ok``, ``missing``
        (the process did not answer: rate NaN, not zero) or ``gone`` (left the graph).
        """
        self._session.check_open()
        frame = self._metrics.profile(
            errors=dict(self._logs.error_counts), now_s=time.time(), include_gone=include_gone
        )
        snap = self._topology.snapshot
        return publisher_channels(frame, snap.graph) if snap is not None else frame

    def clocks(self) -> pd.DataFrame:
        """Each host's monotonic -> UTC mapping, as the Lab's round trips estimate it.

        Columns: host, offset_s (``utc = perf_counter + offset_s`` on that host),
        uncertainty_ms (the true offset is within ``offset_s +- uncertainty_ms``),
        round_trips, updated (UTC), consistent (False if a clock stepped). Every profiling
        poll refreshes it; trace samples and metrics of a host's processes are stamped
        with its own row, so a host whose monotonic clock is hours off still shows the
        right UTC times. Latencies between two hosts carry both uncertainties.
        """
        self._session.check_open()
        rows = [
            {
                "host": host,
                "offset_s": est.offset_ns / 1e9,
                "uncertainty_ms": est.uncertainty_ns / 1e6,
                "round_trips": est.samples,
                "updated": pd.Timestamp(est.updated_ns, unit="ns", tz="UTC"),
                "consistent": est.consistent,
            }
            for host, est in sorted(self._poller.clocks.estimates().items())
        ]
        columns = ["host", "offset_s", "uncertainty_ms", "round_trips", "updated", "consistent"]
        return pd.DataFrame(rows, columns=columns)

    def host_time(self, host: str, perf_ns: Any) -> Any:
        """UTC timestamp(s) for ``time.perf_counter_ns()`` values read on ``host``.

        For stamps a unit puts in its own messages: ``lab.host_time("host-c", ns)``.
        Raises :class:`LabError` for a host with no round trip yet (see :meth:`clocks`).
        """
        self._session.check_open()
        offset = self._poller.clocks.offset_ns(host)
        if offset is None:
            known = sorted(self._poller.clocks.estimates())
            raise LabError(
                f"No clock mapping for host {host!r} yet (known: {known}); a host is mapped "
                "after the first profiling poll of one of its processes: wait a poll."
            )
        return to_utc(perf_to_epoch_s(perf_ns, offset))

    def metrics(self, since: Any = None, topics: Iterable[str] | None = None) -> pd.DataFrame:
        """Profiling history in long format: time, topic, endpoint, kind, unit, status,
        metric (rate_hz, messages_total, inflight), value. ``since``: seconds ago, a
        duration string (``"30s"``) or a time."""
        return self._metrics.metrics(since_s=since_to_epoch_s(since), topics=topics)

    def wait_for_profile(self, timeout: float = 10.0) -> pd.DataFrame:
        """Block until every publisher of every unit process has a rate; return profile()."""
        deadline = time.monotonic() + timeout
        polled = threading.Event()
        # Checked again after each poll (the profile only changes then), and at least
        # every 0.1 s for a topology change (a process that left) without a poll.
        unsubscribe = self._poller.subscribe(polled.set)
        try:
            while True:
                polled.clear()
                frame = self.profile(include_gone=False)
                pubs = frame[frame["kind"] == "publisher"]
                snap = self._topology.snapshot
                procs = (
                    {str(p) for p, meta in snap.processes.items() if meta.units} if snap else set()
                )
                if (
                    procs
                    and procs <= set(frame["process"])
                    and len(pubs)
                    and pubs["rate_hz"].notna().all()
                ):
                    return frame
                left = deadline - time.monotonic()
                if left < 0:
                    raise LabError(
                        f"The profile was not complete within {timeout:g} s (processes "
                        f"{sorted(procs - set(frame['process']))} had not answered); check "
                        "lab.profile() and that the pipeline is running."
                    )
                polled.wait(min(0.1, left))
        finally:
            unsubscribe()

    # ------------------------------------------------------------------ traces
    def trace(
        self,
        topics: str | Iterable[str] | None = None,
        metrics: str | Iterable[str] | None = None,
        duration: float | None = None,
        *,
        budget: float = DEFAULT_BUDGET,
        ttl: float = DEFAULT_TTL_S,
        timeout: float | None = None,
        wait: bool = False,
    ) -> TraceSettings:
        """Start latency tracing (all topics by default).

        Parameters
        ----------
        topics, metrics : optional
            Limit tracing. Metrics: ``publish_delta_ns``, ``lease_time_ns``,
            ``user_span_ns`` (the default), and ``backpressure_wait_ns``, which ezmsg records
            on every wait whatever the sampling, so it is traced only when asked for.
        duration : float, optional
            Stop by itself after this many seconds.
        budget : float
            Fraction of each process's time tracing may cost (default 0.02), ezmsg's
            per-message hooks included; the Lab picks ezmsg's ``sample_mod`` per process
            from its message rate and, for a process too fast to trace continuously
            within the budget, traces it in windows (``lab.tracing`` shows the duty).
        ttl : float
            ezmsg turns tracing off by itself this long after the Lab stops renewing it
            (a crashed kernel does not leave tracing on).
        wait : bool
            With ``duration``: block until tracing ends, with a progress bar (an interrupt
            stops tracing and propagates).

        Returns
        -------
        TraceSettings
            The settings in effect, with the ``sample_mod`` chosen per process.

        Examples
        --------
        >>> lab.trace(duration=5, wait=True)  # doctest: +SKIP
        >>> lab.latency()                      # doctest: +SKIP
        """
        self._session.check_open()
        if wait and duration is None:
            raise ValueError("trace(wait=True) needs a duration= to wait for")
        settings = self._session.run(
            self._trace_feed.start(topics, metrics, duration, budget, ttl),
            timeout,
            "trace()",
        )
        if wait:
            assert duration is not None  # checked above
            self._wait_for_trace(float(duration))
        return settings

    def _wait_for_trace(self, duration: float) -> None:
        from tqdm.auto import tqdm

        t0 = time.monotonic()
        settings = self._trace_feed.active
        with tqdm(total=round(duration, 1), unit="s", desc="tracing", leave=False) as bar:
            try:
                while (
                    self._trace_feed.active is settings
                    and settings is not None
                    and settings.status == "tracing"
                    and not self._session.closed
                ):
                    elapsed = min(duration, time.monotonic() - t0)
                    bar.n = round(elapsed, 1)
                    bar.set_postfix(samples=self._trace_feed.received, refresh=False)
                    bar.refresh()
                    if elapsed >= duration + 5.0:  # the feed stops itself; do not hang
                        break
                    time.sleep(0.1)
            except KeyboardInterrupt:
                self.untrace()
                raise
            if settings is not None and settings.status != "tracing":
                raise LabError(
                    f"Tracing stopped before its {duration:g} s: {settings.reason}. The "
                    "samples received so far are in lab.trace_samples()."
                )
            # Done as asked: a full bar (tqdm draws an unfinished one red in notebooks).
            bar.n = bar.total
            bar.set_postfix(samples=self._trace_feed.received, refresh=False)
            bar.refresh()

    def untrace(self, *, timeout: float | None = None) -> None:
        """Stop tracing (samples already received are kept)."""
        self._session.check_open()
        self._session.run(self._trace_feed.stop(), timeout, "untrace()")

    @property
    def tracing(self) -> TraceSettings | None:
        """The active trace settings, or None."""
        return self._trace_feed.active

    def latency(
        self,
        since: Any = None,
        topics: Iterable[str] | None = None,
        metrics: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """Per topic and trace metric: count, mean, p50, p95, p99, max in milliseconds."""
        return self._traces.latency(since_to_epoch_s(since), topics, metrics)

    def trace_samples(
        self,
        since: Any = None,
        topics: Iterable[str] | None = None,
        metrics: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """Raw trace samples: time, process, pid, host, endpoint, topic, task, metric,
        value_ms, channel_kind, seq (the message's sequence number: a publisher's
        sample and its subscribers' samples of one message share it)."""
        return self._traces.frame(since_to_epoch_s(since), topics, metrics)

    # ------------------------------------------------------------------ logs
    def logs(
        self, unit: str | None = None, level: str | None = None, since: Any = None
    ) -> pd.DataFrame:
        """Log records and uncaught exceptions of the units this Lab launched: time,
        unit, pipeline, process, pid, level, logger, message, traceback, kind.
        ``level`` keeps that level and above."""
        return self._logs.frame(unit=unit, level=level, since_s=since_to_epoch_s(since))
