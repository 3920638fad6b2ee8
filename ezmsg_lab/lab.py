"""The Lab: the one object a notebook holds.

It owns (or attaches to) a GraphServer, a control loop thread with the Lab's one
GraphContext, the feeds that keep stores current, and the pipelines it launched. Every
call a cell makes is bounded by a timeout and fails with a :class:`LabError`.
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd

from .experiments.compare import CompareResult
from .experiments.optimize import OptimizeResult
from .feeds.profiling import DEFAULT_RATE_HZ, ProfilingPoller
from .feeds.settings import SettingsFeed
from .feeds.taps import DEFAULT_MAX_QUEUE
from .feeds.topology import TopologyFeed
from .feeds.traces import DEFAULT_BUDGET, DEFAULT_TTL_S, TraceFeed, TraceSettings
from .lab_taps import DEFAULT_MAX_BYTES, Tap
from .model.logs import LogStore
from .model.metrics import GONE_AFTER_S, MetricsStore
from .model.settings_store import SettingsStore
from .model.traces import TraceStore
from .runtime import compat
from .runtime.cleanup import register, unregister
from .runtime.connection import Connection
from .runtime.loop import ControlLoop
from .runtime.pipeline import Pipeline, check_start_method
from .runtime.server import (
    Address,
    EmbeddedServer,
    address_from_env,
    parse_address,
    warn_remote_attach,
)
from .services.experiments import ExperimentsService
from .services.graph_info import GraphInfo
from .services.pipelines import DEFAULT_START_TIMEOUT_S, PipelinesService
from .services.reconnect import ConnectionStatus, Reconnector
from .services.recorder import DEFAULT_INTERVAL_S, Recorder, RecorderSources
from .services.recording import RecordingService
from .services.session import Session, check_timeout
from .services.settings import SetResult, SettingsService
from .services.taps import DEFAULT_MAX_RATE_HZ, TapsService
from .services.views import Views
from .services.widgets import WidgetFactory, WidgetRegistry

if TYPE_CHECKING:
    import contextlib
    from pathlib import Path

    from .model.topology import Topology
    from .recording.loaded import Recording
    from .widgets.graph import GraphWidget
    from .widgets.settings_form import SettingsForm, SettingsPanel

logger = logging.getLogger(__name__)

# close(timeout): the pipelines' share of it (they stop in parallel), and the least the
# Lab's feeds get to say goodbye to the GraphServer after them.
_PIPELINES_SHARE = 0.75
_FEEDS_MIN_S = 0.3

DEFAULT_TIMEOUT_S = 5.0

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def _doc_of(source: Callable[..., Any]) -> Callable[[F], F]:
    """Give a delegating Lab method the docstring of the service method it calls."""

    def decorate(fn: F) -> F:
        fn.__doc__ = source.__doc__
        return fn

    return decorate


class Lab:
    """Observe and tune ezmsg graphs from a notebook.

    ``Lab()`` starts a GraphServer inside this kernel on 127.0.0.1 at a free port;
    :meth:`Lab.attach` joins one that is already running. Use it as a context manager or
    call :meth:`close`; whatever the Lab started is stopped on close, on ``with`` exit and at
    interpreter exit, and whatever it attached to is left running.

    Parameters
    ----------
    host, port : str, int
        Where the embedded GraphServer listens. Binding a non-loopback host warns: ezmsg's
        protocol unpickles what clients send.
    timeout : float
        Default timeout (seconds) of every call into ezmsg.
    poll_hz : float
        Profiling poll rate (default 1 Hz, up to 20 Hz); change it with ``lab.poll_hz``.
    history : int
        Rows of profiling history kept (one per endpoint per poll).
    trace_capacity : int
        Trace samples kept (30 bytes each).
    gone_after : float or None
        Seconds a process may stay silent (missing) before it is shown as ``gone``
        (default 10 s): a host cut off the network keeps its processes in ezmsg's table
        for minutes. If it answers again, its endpoints start new series. None: never.
    ezmsg_log_level : str or None
        Level for ezmsg's own logger in this kernel (default ``"WARNING"``: ezmsg logs
        every start and stop at INFO, which would fill cell outputs). Unit processes'
        records are collected by the Lab whatever this is. None leaves it alone.
    start_method : {None, "forkserver", "fork", "spawn"}
        How launched pipelines start their unit processes, unless ``launch()`` says
        otherwise. None (the default) lets the Lab choose per pipeline: ``"forkserver"``
        on Linux (``"spawn"`` elsewhere), and ``"fork"`` on Linux for pipelines that only
        a forked process can run (units or settings defined in the notebook).
        multiprocessing's global start method is neither read nor changed.

    Examples
    --------
    >>> from ezmsg_lab import Lab
    >>> from ezmsg_lab.demo import DemoPipeline
    >>> lab = Lab()
    >>> demo = lab.launch(DemoPipeline(), name="DEMO")
    >>> lab.close()
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        timeout: float = DEFAULT_TIMEOUT_S,
        poll_hz: float = DEFAULT_RATE_HZ,
        history: int = 200_000,
        trace_capacity: int = 2_000_000,
        gone_after: float | None = GONE_AFTER_S,
        ezmsg_log_level: str | None = "WARNING",
        start_method: str | None = None,
        _attach: Address | None = None,
    ) -> None:
        self._session = Session(timeout)
        start_method = check_start_method(start_method)
        # Publishers in this process and in unit processes it forks (see compat).
        compat.guard_publisher_leases()
        if ezmsg_log_level is not None:
            logging.getLogger("ezmsg").setLevel(ezmsg_log_level)
        self._server: EmbeddedServer | None = None
        self._widgets = WidgetRegistry()
        self._feeds_made = False  # whether close has feeds to stop
        try:
            if _attach is None:
                self._server = EmbeddedServer(host, port)
                self._address = self._server.address
            else:
                self._address = _attach
            self._session.loop = ControlLoop()
            self._conn = Connection(self._address)
            self._topology = TopologyFeed(self._conn)
            self._settings = SettingsStore()
            self._settings_feed = SettingsFeed(self._conn, self._settings)
            self._metrics = MetricsStore(capacity=history, gone_after_s=gone_after)
            self._poller = ProfilingPoller(self._conn, self._topology, self._metrics, poll_hz)
            self._traces = TraceStore(capacity=trace_capacity)
            self._trace_feed = TraceFeed(
                self._conn,
                self._topology,
                self._metrics,
                self._traces,
                self._poller.offset_of,
                self._poller,
            )
            self._logs = LogStore()
            self._make_services(start_method)
            self._feeds_made = True
            self._session.run(self._start_feeds(), None, "connecting to the GraphServer")
        except BaseException:
            self._teardown(timeout=2.0)
            with self._session.close_lock:
                self._session.mark_closed()
            raise
        register(self)
        self.aio = AsyncLab(self, self._session, self._conn)
        """The async twin of this Lab (:class:`AsyncLab`), for ``await lab.aio.snapshot()``."""

    def _make_services(self, start_method: str | None) -> None:
        session = self._session
        self._graph = GraphInfo(self._topology)
        self._settings_service = SettingsService(
            session,
            self._conn,
            self._settings,
            self._graph,
            self._poller,
            self._metrics,
            self._logs,
        )
        self._pipeline_service = PipelinesService(
            session,
            self._address,
            self._conn,
            self._topology,
            self._logs,
            self._server,
            start_method,
            is_watched=self._settings_service.watching,
        )
        self._views = Views(
            session,
            self._topology,
            self._graph,
            self._settings,
            self._settings_service,
            self._poller,
            self._metrics,
            self._logs,
            self._traces,
            self._trace_feed,
        )
        self._experiments = ExperimentsService(
            session, self._settings_service, self._pipeline_service, self._views, self._metrics
        )
        self._tap_service = TapsService(
            session, self._conn, self._topology, self._graph, self._widgets, self._pipeline_service
        )
        self._recording_service = RecordingService(
            session,
            self._conn,
            self._graph,
            self._tap_service,
            RecorderSources(self._views, self._traces, self._logs),
            self._experiments,
        )
        self._reconnector = Reconnector(
            session,
            self._conn,
            self._topology,
            self._settings_feed,
            self._poller,
            self._metrics,
            self._trace_feed,
            auto=self._server is None,
            before_reconnect=(
                self._tap_service.close_all,
                self._settings_service.forget_connection,
            ),
        )
        self._widget_factory = WidgetFactory(
            session,
            self._topology,
            self._poller,
            self._logs,
            self._views,
            self._settings_service,
            self._tap_service.unit_scope,
            self._widgets,
        )

    @classmethod
    def attach(
        cls,
        address: str | tuple[str, int] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        ezmsg_log_level: str | None = "WARNING",
        **options: Any,
    ) -> Lab:
        """Join a running GraphServer (``"host:port"``) without owning it.

        A non-loopback address works (a graph spread over machines) and warns once what
        ezmsg's protocol trusts and how to keep it on a private network.

        With no address, ``EZMSG_GRAPHSERVER_ADDR`` is used. Closing the Lab stops what it
        launched and leaves the server running. Other keyword options (``poll_hz``,
        ``history``, ``trace_capacity``, ``gone_after``, ``start_method``) are as for
        ``Lab()``.
        """
        unknown = set(options) - {
            "poll_hz",
            "history",
            "trace_capacity",
            "gone_after",
            "start_method",
        }
        if unknown:
            raise TypeError(f"Lab.attach() got unexpected keyword argument(s) {sorted(unknown)}")
        if address is None:
            resolved = address_from_env()
            if resolved is None:
                raise ValueError(
                    "Lab.attach() needs an address such as '127.0.0.1:25978', or the "
                    "EZMSG_GRAPHSERVER_ADDR environment variable; use Lab() to embed a "
                    "GraphServer in this kernel instead."
                )
        else:
            resolved = parse_address(address)
        warn_remote_attach(resolved)
        return cls(timeout=timeout, ezmsg_log_level=ezmsg_log_level, _attach=resolved, **options)

    async def _start_feeds(self) -> None:
        await self._conn.open(self._session.timeout)
        await self._topology.start()
        await self._settings_feed.start()
        await self._poller.start()
        await self._reconnector.start()

    # ------------------------------------------------------------------ properties
    @property
    def address(self) -> Address:
        """The GraphServer's (host, port)."""
        return self._address

    @property
    def owned(self) -> bool:
        """True when this Lab started the GraphServer (and will stop it on close)."""
        return self._server is not None

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran (or the Lab failed to start); calls then raise
        :class:`LabClosedError`."""
        return self._session.closed

    @property
    def timeout(self) -> float:
        """Default timeout (seconds) of every call into ezmsg; assign to change it."""
        return self._session.timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        check_timeout(seconds)
        self._session.timeout = float(seconds)

    @property
    def _closed(self) -> bool:
        return self._session.closed

    @property
    def _loop(self) -> ControlLoop | None:
        return self._session.loop

    @property
    def pipelines(self) -> list[Pipeline]:
        """Pipelines this Lab launched: the running ones and the last 100 stopped ones."""
        return self._pipeline_service.pipelines

    @property
    def start_method(self) -> str | None:
        """How launched pipelines start their unit processes unless ``launch()`` says
        otherwise (None: the Lab chooses per pipeline); assign to change it."""
        return self._pipeline_service.start_method

    @start_method.setter
    def start_method(self, method: str | None) -> None:
        self._pipeline_service.start_method = check_start_method(method)

    # ------------------------------------------------------------------ pipelines (PipelinesService)
    @_doc_of(PipelinesService.launch)
    def launch(
        self,
        components: Any,
        name: str | None = None,
        *,
        mode: str = "processes",
        connections: Iterable[tuple[Any, Any]] | None = None,
        process_components: Iterable[Any] | None = None,
        start_timeout: float = DEFAULT_START_TIMEOUT_S,
        unit_stderr: bool = False,
        start_method: str | None = None,
    ) -> Pipeline:
        return self._pipeline_service.launch(
            components,
            name,
            mode=mode,
            connections=connections,
            process_components=process_components,
            start_timeout=start_timeout,
            unit_stderr=unit_stderr,
            start_method=start_method,
        )

    @_doc_of(PipelinesService.on_unit_error)
    def on_unit_error(self, fn: Any) -> None:
        self._pipeline_service.on_unit_error(fn)

    @_doc_of(PipelinesService.stop_all)
    def stop_all(self, timeout: float = 10.0) -> None:
        self._pipeline_service.stop_all(timeout)

    # ------------------------------------------------------------------ calls
    def _timeout(self, timeout: float | None) -> float:
        return self._session.timeout_for(timeout)

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None, what: str) -> T:
        return self._session.run(coro, timeout, what)

    def snapshot(self, *, timeout: float | None = None) -> Any:
        """A fresh ``GraphSnapshot`` from the GraphServer (ezmsg's own object)."""
        return self._run(self._conn.call(lambda ctx: ctx.snapshot()), timeout, "snapshot()")

    def ping(self, *, timeout: float | None = None) -> float:
        """Round-trip time to the GraphServer in seconds; raises if it is unreachable."""

        async def go() -> float:
            t0 = time.perf_counter()
            await self._conn.call(lambda ctx: ctx.snapshot())
            return time.perf_counter() - t0

        return self._run(go(), timeout, "ping()")

    # ------------------------------------------------------------------ connection (Reconnector)
    def reconnect(self, *, timeout: float | None = None) -> ConnectionStatus:
        """Open a new session with the GraphServer at the same address and resume the
        topology, settings and profiling feeds.

        An attached Lab does this by itself once a server answers again at its address
        (checked every 0.5 s); call it to reconnect at once, or for a Lab whose embedded
        server was restarted. The gap stays marked: ``disconnected`` rows in
        :meth:`metrics`, ``DISCONNECTED``/``RECONNECTED`` rows in :meth:`topology_events`.
        Taps and tracing are closed by the loss (open them again); unit processes that
        were connected to the old server are left stuck by ezmsg (stop and launch them
        again). Raises :class:`LabConnectionError` if no server answers.

        Examples
        --------
        >>> lab = Lab.attach("127.0.0.1:25978")  # doctest: +SKIP
        >>> # ... the server is restarted ...
        >>> lab.reconnect().state  # doctest: +SKIP
        'connected'
        """
        return self._reconnector.reconnect(timeout)

    @property
    def connection(self) -> ConnectionStatus:
        """The connection's state (connected, disconnected, closed), how many times the
        Lab reconnected, and when it last lost and regained the server."""
        return self._reconnector.status()

    # ------------------------------------------------------------------ views (Views)
    @_doc_of(Views.topology)
    def topology(self) -> Topology:
        return self._views.topology()

    @_doc_of(Views.topology_events)
    def topology_events(self) -> pd.DataFrame:
        return self._views.topology_events()

    @property
    def topology_gaps(self) -> int:
        """Topology events ezmsg dropped (healed by re-reading the snapshot)."""
        return self._views.topology_gaps

    @_doc_of(Views.settings)
    def settings(self, unit: str | None = None) -> pd.DataFrame:
        return self._views.settings(unit)

    @_doc_of(Views.settings_history)
    def settings_history(self, unit: str | None = None, since: Any = None) -> pd.DataFrame:
        return self._views.settings_history(unit, since)

    @property
    def poll_hz(self) -> float:
        """Profiling poll rate in Hz (0 < rate <= 20). Assign to change it."""
        return self._views.poll_hz

    @poll_hz.setter
    def poll_hz(self, hz: float) -> None:
        self._views.poll_hz = hz

    @_doc_of(Views.profile)
    def profile(self, include_gone: bool = True) -> pd.DataFrame:
        return self._views.profile(include_gone)

    @_doc_of(Views.clocks)
    def clocks(self) -> pd.DataFrame:
        return self._views.clocks()

    @_doc_of(Views.host_time)
    def host_time(self, host: str, perf_ns: Any) -> Any:
        return self._views.host_time(host, perf_ns)

    @_doc_of(Views.metrics)
    def metrics(self, since: Any = None, topics: Iterable[str] | None = None) -> pd.DataFrame:
        return self._views.metrics(since, topics)

    @_doc_of(Views.wait_for_profile)
    def wait_for_profile(self, timeout: float = 10.0) -> pd.DataFrame:
        return self._views.wait_for_profile(timeout)

    @_doc_of(Views.trace)
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
        return self._views.trace(
            topics, metrics, duration, budget=budget, ttl=ttl, timeout=timeout, wait=wait
        )

    @_doc_of(Views.untrace)
    def untrace(self, *, timeout: float | None = None) -> None:
        self._views.untrace(timeout=timeout)

    @property
    def tracing(self) -> TraceSettings | None:
        """The active trace settings, or None."""
        return self._views.tracing

    @_doc_of(Views.latency)
    def latency(
        self,
        since: Any = None,
        topics: Iterable[str] | None = None,
        metrics: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        return self._views.latency(since, topics, metrics)

    @_doc_of(Views.trace_samples)
    def trace_samples(
        self,
        since: Any = None,
        topics: Iterable[str] | None = None,
        metrics: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        return self._views.trace_samples(since, topics, metrics)

    @_doc_of(Views.logs)
    def logs(
        self, unit: str | None = None, level: str | None = None, since: Any = None
    ) -> pd.DataFrame:
        return self._views.logs(unit, level, since)

    # ------------------------------------------------------------------ settings (SettingsService)
    @_doc_of(SettingsService.set)
    def set(
        self,
        address: str,
        fields: Mapping[str, Any] | None = None,
        /,
        *,
        check: bool = False,
        timeout: float | None = None,
        watch: bool | float = True,
        **kw: Any,
    ) -> SetResult:
        return self._settings_service.set(
            address, fields, check=check, timeout=timeout, watch=watch, **kw
        )

    @_doc_of(SettingsService.undo)
    def undo(
        self, *, timeout: float | None = None, watch: bool | float = True, check: bool = False
    ) -> SetResult:
        return self._settings_service.undo(timeout=timeout, watch=watch, check=check)

    @_doc_of(SettingsService.revert)
    def revert(
        self, address: str, *, timeout: float | None = None, watch: bool | float = True
    ) -> SetResult:
        return self._settings_service.revert(address, timeout=timeout, watch=watch)

    @_doc_of(SettingsService.temporarily)
    def temporarily(
        self,
        address: str,
        fields: Mapping[str, Any] | None = None,
        /,
        *,
        check: bool = False,
        timeout: float | None = None,
        watch: bool | float = True,
        **kw: Any,
    ) -> contextlib.AbstractContextManager[SetResult]:
        return self._settings_service.temporarily(
            address, fields, check=check, timeout=timeout, watch=watch, **kw
        )

    @property
    def settings_changes(self) -> list[SetResult]:
        """The changes :meth:`undo` can take back, oldest first."""
        return self._settings_service.settings_changes

    @_doc_of(SettingsService.settings_form)
    def settings_form(
        self,
        address: str,
        policy: str = "live",
        *,
        debounce_s: float = 0.15,
        watch: bool | float = True,
    ) -> SettingsForm:
        return self._settings_service.settings_form(
            address, policy, debounce_s=debounce_s, watch=watch
        )

    @_doc_of(SettingsService.settings_panel)
    def settings_panel(self, policy: str = "live", **options: Any) -> SettingsPanel:
        return self._settings_service.settings_panel(policy, **options)

    # ------------------------------------------------------------------ experiments
    @_doc_of(ExperimentsService.sweep)
    def sweep(
        self,
        address: str,
        spec: Mapping[str, Iterable[Any]],
        *,
        settle: float = 1.0,
        measure: float = 2.0,
        repeats: int = 1,
        order: str = "random",
        topics: Iterable[str] | None = None,
        relaunch: bool = False,
        trace: bool | None = None,
    ) -> pd.DataFrame:
        return self._experiments.sweep(
            address,
            spec,
            settle=settle,
            measure=measure,
            repeats=repeats,
            order=order,
            topics=topics,
            relaunch=relaunch,
            trace=trace,
        )

    @_doc_of(ExperimentsService.compare)
    def compare(
        self,
        address: str,
        a: Mapping[str, Any],
        b: Mapping[str, Any],
        *,
        repeats: int = 8,
        settle: float = 1.0,
        measure: float = 2.0,
        metric: str | None = None,
        relaunch: bool = False,
        trace: bool | None = None,
    ) -> CompareResult:
        return self._experiments.compare(
            address,
            a,
            b,
            repeats=repeats,
            settle=settle,
            measure=measure,
            metric=metric,
            relaunch=relaunch,
            trace=trace,
        )

    @_doc_of(ExperimentsService.optimize)
    def optimize(
        self,
        address: str,
        space: Mapping[str, Any],
        objective: str | Callable[[pd.DataFrame], float],
        *,
        n_trials: int = 20,
        direction: str = "minimize",
        settle: float = 1.0,
        measure: float = 2.0,
        relaunch: bool = False,
        trace: bool | None = None,
    ) -> OptimizeResult:
        return self._experiments.optimize(
            address,
            space,
            objective,
            n_trials=n_trials,
            direction=direction,
            settle=settle,
            measure=measure,
            relaunch=relaunch,
            trace=trace,
        )

    @_doc_of(ExperimentsService.expect_rate)
    def expect_rate(self, topic: str, hz: float, *, tol: float = 0.1, window: float = 2.0) -> float:
        return self._experiments.expect_rate(topic, hz, tol=tol, window=window)

    @_doc_of(ExperimentsService.expect_latency)
    def expect_latency(
        self,
        topic: str,
        *,
        p95_ms: float | None = None,
        p50_ms: float | None = None,
        p99_ms: float | None = None,
        mean_ms: float | None = None,
        min_ms: float | None = None,
        metric: str = "user_span_ns",
        window: float = 2.0,
    ) -> dict[str, float]:
        return self._experiments.expect_latency(
            topic,
            p95_ms=p95_ms,
            p50_ms=p50_ms,
            p99_ms=p99_ms,
            mean_ms=mean_ms,
            min_ms=min_ms,
            metric=metric,
            window=window,
        )

    @property
    def experiments(self) -> ExperimentsService:
        """The experiments service: ``lab.experiments.subscribe(fn)`` calls
        ``fn(kind, frame)`` after each finished sweep, comparison or search."""
        return self._experiments

    # ------------------------------------------------------------------ taps (TapsService)
    @_doc_of(TapsService.tap)
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
        return self._tap_service.tap(
            topic,
            window,
            max_bytes=max_bytes,
            max_queue=max_queue,
            max_rate_hz=max_rate_hz,
            via=via,
            timeout=timeout,
        )

    @property
    def taps(self) -> list[Tap]:
        """The open taps."""
        return self._tap_service.taps

    @_doc_of(TapsService.taps_frame)
    def taps_frame(self) -> pd.DataFrame:
        return self._tap_service.taps_frame()

    # ------------------------------------------------------------------ recordings (RecordingService)
    @_doc_of(RecordingService.record)
    def record(
        self,
        path: str | Path,
        taps: Iterable[str | Tap] = (),
        *,
        interval: float = DEFAULT_INTERVAL_S,
        overwrite: bool = False,
    ) -> Recorder:
        return self._recording_service.record(path, taps, interval=interval, overwrite=overwrite)

    @_doc_of(RecordingService.replay)
    def replay(
        self,
        recording: Recording | str | Path,
        topic: str,
        into: str,
        *,
        pace: str = "recorded",
        count: int | None = None,
        timeout: float | None = None,
    ) -> int:
        return self._recording_service.replay(
            recording, topic, into, pace=pace, count=count, timeout=timeout
        )

    @_doc_of(RecordingService.export_trace)
    def export_trace(self, path: str | Path) -> Path:
        return self._recording_service.export_trace(path)

    # ------------------------------------------------------------------ widgets (WidgetFactory)
    @_doc_of(WidgetFactory.graph)
    def graph(self, *, height: int = 0, max_rate_hz: float = 2.0) -> GraphWidget:
        return self._widget_factory.graph(height=height, max_rate_hz=max_rate_hz)

    @_doc_of(WidgetFactory.dashboard)
    def dashboard(self, *, height: int = 0) -> Any:
        return self._widget_factory.dashboard(height=height)

    # ------------------------------------------------------------------ lifecycle
    def _check_open(self) -> None:
        self._session.check_open()

    def close(self, timeout: float = 10.0) -> None:
        """Stop every pipeline, feed and server this Lab started. Idempotent."""
        with self._session.close_lock:
            if not self._session.mark_closed():
                return
        unregister(self)
        self._teardown(timeout)

    def _teardown(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        # First, so no widget asks the closing Lab for anything (a click, a poll).
        self._widgets.mark_closed()
        # While the stores and taps are still there: the last flush and final.json.
        if self._feeds_made:
            self._recording_service.stop_all()
        # In parallel, within most of the time; the feeds' goodbyes get the rest. A kernel
        # shutdown gives the whole close 2 s (cleanup.py).
        if self._feeds_made:
            self._pipeline_service.stop_all(_PIPELINES_SHARE * timeout)
        if self._loop is not None:
            if self._loop.alive and self._feeds_made:
                left = min(5.0, max(_FEEDS_MIN_S, deadline - time.monotonic()))
                try:
                    self._loop.run(self._stop_feeds(), left, "closing the Lab")
                except Exception as exc:
                    logger.warning("closing the Lab's GraphContext failed: %r", exc)
            self._loop.stop()
        if self._server is not None:
            self._server.stop()

    async def _stop_feeds(self) -> None:
        await self._reconnector.stop()
        await self._tap_service.close_all()
        # Tracing first: it tells each process to stop tracing while they still answer.
        await self._trace_feed.close()
        await self._settings_service.close()
        await self._poller.stop()
        await self._settings_feed.stop()
        await self._topology.stop()
        await self._conn.close(2.0)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ display
    def _summary(self) -> tuple[str, str]:
        kind = "embedded" if self.owned else "attached"
        if self._closed:
            return kind, "closed"
        status = self._reconnector.status()
        state = status.state
        if status.state == "disconnected" and self._reconnector.auto:
            state = "disconnected, reconnecting"
        if status.reconnects:
            state += f"; reconnected {status.reconnects}x"
        return kind, state

    def __repr__(self) -> str:
        kind, state = self._summary()
        running = [
            f"{p.name} ({p.mode}, {len(p.processes)} process(es))"
            for p in self.pipelines
            if p.running
        ]
        pipelines = "; ".join(running) if running else "none running"
        return f"<Lab {kind} GraphServer {self._address} ({state}); pipelines: {pipelines}>"

    def _repr_html_(self) -> str:
        kind, state = self._summary()
        rows = "".join(
            f"<tr><td>{html.escape(p.name)}</td><td>{p.mode}</td>"
            f"<td>{'running' if p.running else 'stopped'}</td>"
            f"<td>{len(p.units)}</td><td>{html.escape(', '.join(map(str, p.pids)))}</td></tr>"
            for p in self.pipelines
        )
        table = (
            "<table><tr><th>pipeline</th><th>mode</th><th>state</th><th>units</th>"
            f"<th>pids</th></tr>{rows}</table>"
            if rows
            else "<i>no pipelines launched</i>"
        )
        return (
            f"<div><b>ezmsg Lab</b>: {kind} GraphServer at "
            f"<code>{html.escape(str(self._address))}</code> ({state}){table}</div>"
        )


class AsyncLab:
    """The Lab's async twin, for ``await`` in cells: ``await lab.aio.snapshot()``."""

    def __init__(self, lab: Lab, session: Session, conn: Connection) -> None:
        self._lab = lab
        self._session = session
        self._conn = conn

    async def snapshot(self, *, timeout: float | None = None) -> Any:
        return await self._session.arun(
            self._conn.call(lambda ctx: ctx.snapshot()), timeout, "snapshot()"
        )

    async def ping(self, *, timeout: float | None = None) -> float:
        return await asyncio.to_thread(self._lab.ping, timeout=timeout)

    async def trace(self, *args: Any, **kwargs: Any) -> Any:
        """Like :meth:`Lab.trace`, without blocking the kernel's event loop."""
        return await asyncio.to_thread(self._lab.trace, *args, **kwargs)

    async def untrace(self, *, timeout: float | None = None) -> None:
        await asyncio.to_thread(self._lab.untrace, timeout=timeout)

    async def set(self, address: str, fields: Any = None, /, **kwargs: Any) -> Any:
        """Like :meth:`Lab.set`, without blocking the kernel's event loop."""
        return await asyncio.to_thread(self._lab.set, address, fields, **kwargs)

    async def undo(self, **kwargs: Any) -> Any:
        return await asyncio.to_thread(self._lab.undo, **kwargs)

    async def revert(self, address: str, **kwargs: Any) -> Any:
        return await asyncio.to_thread(self._lab.revert, address, **kwargs)

    async def launch(self, components: Any, name: str | None = None, **kwargs: Any) -> Pipeline:
        """Like :meth:`Lab.launch`, without blocking the kernel's event loop."""
        return await asyncio.to_thread(self._lab.launch, components, name, **kwargs)

    async def sweep(self, address: str, spec: Any, **kwargs: Any) -> pd.DataFrame:
        """Like :meth:`Lab.sweep`, without blocking the kernel's event loop."""
        return await asyncio.to_thread(self._lab.sweep, address, spec, **kwargs)

    async def compare(self, address: str, a: Any, b: Any, **kwargs: Any) -> CompareResult:
        """Like :meth:`Lab.compare`, without blocking the kernel's event loop."""
        return await asyncio.to_thread(self._lab.compare, address, a, b, **kwargs)

    async def close(self, timeout: float = 10.0) -> None:
        await asyncio.to_thread(self._lab.close, timeout)
