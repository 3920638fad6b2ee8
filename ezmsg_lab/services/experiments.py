"""Tuning experiments on a Lab: sweeps, A/B comparisons, searches, expectations.

The drivers and their statistics live in :mod:`ezmsg_lab.experiments` (no ezmsg); this
service is their bench: it checks every point before changing anything, sets points
through the settings service (or relaunches the pipeline), measures windows from the
Lab's own profiling counters and traces, and puts the settings back on every exit.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import LabError, SettingsRefusedError
from ..experiments.compare import CompareResult, run_compare
from ..experiments.expect import judge_latency, judge_rate
from ..experiments.optimize import OptimizeResult, run_optimize
from ..experiments.plan import Conditions, check_times
from ..experiments.stats import (
    DEFAULT_TRACE,
    LATENCY_STATS,
    MetricSpec,
    window_frame,
    window_latency,
    window_rates,
)
from ..experiments.sweep import run_sweep
from ..model.listeners import Listeners, Unsubscribe

if TYPE_CHECKING:
    from ..model.metrics import MetricsStore
    from .pipelines import PipelinesService
    from .session import Session
    from .settings import SettingsService
    from .views import Views

# Profiling polls at least this often while an experiment measures: a 0.5 s window then
# rests on about five polls (the user's rate comes back afterwards).
MEASURE_POLL_HZ = 10.0
# How long a window waits for the polls and trace samples of its last moments to arrive.
FLUSH_S = 1.0


class ExperimentsService:
    """The Lab's experiments (the Lab delegates :meth:`Lab.sweep` and co. here).

    ``subscribe(fn)`` calls ``fn(kind, frame)`` after each finished sweep, comparison or
    search (``kind`` is ``"sweep"``, ``"compare"`` or ``"optimize"``).
    """

    def __init__(
        self,
        session: Session,
        settings: SettingsService,
        pipelines: PipelinesService,
        views: Views,
        metrics: MetricsStore,
    ) -> None:
        self._session = session
        self._settings = settings
        self._pipelines = pipelines
        self._views = views
        self._metrics = metrics
        self._listeners: Listeners[[str, pd.DataFrame]] = Listeners("experiment results")
        self._use_traces = True
        self._changed = False  # whether the running experiment changed a setting yet

    def subscribe(self, fn: Callable[[str, pd.DataFrame], Any]) -> Unsubscribe:
        """Call ``fn(kind, frame)`` after each finished experiment; returns the function
        that unsubscribes it."""
        return self._listeners.subscribe(fn)

    # ------------------------------------------------------------------ the bench
    @contextlib.contextmanager
    def experiment(
        self, address: str, points: list[dict[str, Any]], relaunch: bool, trace: bool | None
    ) -> Iterator[None]:
        """See :class:`ezmsg_lab.experiments.bench.Bench`."""
        self._session.check_open()
        saved = self._prepare(address, points, relaunch)
        with self._measuring(trace):
            self._changed = False
            try:
                yield
            finally:
                if self._changed and not self._session.closed:
                    if relaunch:
                        self._pipelines.relaunch(address, None)
                    else:
                        self._settings.apply(address, saved)

    def _prepare(
        self, address: str, points: list[dict[str, Any]], relaunch: bool
    ) -> dict[str, Any]:
        if relaunch:
            self._pipelines.check_rebuild(address, points)
            return {}
        for point in points:
            try:
                self._settings.check(address, point)
            except SettingsRefusedError as err:
                if err.code == "NOT_DYNAMIC":
                    raise SettingsRefusedError(
                        f"{err} Or sweep it with relaunch=True: the pipeline is then "
                        "relaunched for each point.",
                        unit=err.unit,
                        code=err.code,
                    ) from None
                raise
        fields = list(dict.fromkeys(f for point in points for f in point))
        return self._settings.values(address, fields)

    @contextlib.contextmanager
    def _measuring(self, trace: bool | None) -> Iterator[None]:
        """Polls fast enough for short windows; tracing on when asked (and off after)."""
        poll_hz = self._views.poll_hz
        started_trace = False
        try:
            if poll_hz < MEASURE_POLL_HZ:
                self._views.poll_hz = MEASURE_POLL_HZ
            if trace and self._views.tracing is None:
                self._views.trace()
                started_trace = True
            self._use_traces = trace is not False
            yield
        finally:
            self._use_traces = True
            if not self._session.closed:
                try:
                    if started_trace:
                        self._views.untrace()
                finally:
                    self._views.poll_hz = poll_hz

    def apply(self, address: str, point: Mapping[str, Any], relaunch: bool) -> None:
        self._changed = True
        if relaunch:
            self._pipelines.relaunch(address, dict(point))
        else:
            self._settings.apply(address, point)

    def measure(
        self, address: str, settle: float, measure: float, topics: Iterable[str] | None
    ) -> pd.DataFrame:
        self._sleep(settle)
        start = time.time()
        self._sleep(measure)
        end = time.time()
        return self._window(start, end, topics, address.split("/")[0])

    def progress(self, total: int, desc: str) -> Any:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit="run")

    # ------------------------------------------------------------------ windows
    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._session.check_open()
            time.sleep(min(left, 0.05))

    def _window(
        self, start: float, end: float, topics: Iterable[str] | None, root: str | None
    ) -> pd.DataFrame:
        """The tidy rows of ``[start, end]`` once its last polls and samples are in."""
        chosen = None if topics is None else list(topics)
        flush_by = time.monotonic() + FLUSH_S
        while (self._metrics.last_poll_s or 0.0) < end and time.monotonic() < flush_by:
            time.sleep(0.01)
        since = pd.Timestamp(start, unit="s", tz="UTC")
        rates = window_rates(self._views.metrics(since=since), start, end, chosen)
        latency = None
        if self._use_traces and self._views.tracing is not None:
            after = pd.Timestamp(end, unit="s", tz="UTC")
            while self._views.trace_samples(since=after).empty and time.monotonic() < flush_by:
                time.sleep(0.02)
            latency = window_latency(self._views.trace_samples(since=since), start, end, chosen)
        frame = window_frame(rates, latency if latency is not None else _NO_LATENCY, start, end)
        if chosen is None and root:
            topic = frame["topic"].astype(str)
            keep = topic.str.startswith(root + "/") & ~topic.str.endswith("/INPUT_SETTINGS")
            frame = frame[keep].reset_index(drop=True)
        frame.attrs["topics"] = sorted(set(rates["topic"]))
        return frame

    # ------------------------------------------------------------------ experiments
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
        """Measure a unit at each point of a grid of settings.

        Each point is set (through ``lab.set``'s validated path, or by relaunching the
        pipeline), given ``settle`` seconds, then measured for ``measure`` seconds.
        Every point is checked before anything changes; the original settings come back
        afterwards, also after an exception or an interrupt.

        Parameters
        ----------
        address : str
            The unit (``"DEMO/FILTER"``), or with ``relaunch=True`` any component of a
            pipeline this Lab launched (a collection's own settings too: ``"DEMO"``,
            ``{"filter.cutoff_hz": [...]}``).
        spec : dict
            ``{field path: values}``; several fields make a grid (every combination).
        settle, measure : float
            Seconds to wait after setting a point, and to measure it.
        repeats : int
            Measurements of each point.
        order : {"random", "interleaved", "grid"}
            ``"random"`` (default): each repeat is a round over all points in a fresh
            random order, so drift does not follow the swept value;
            ``"interleaved"``: rounds in grid order; ``"grid"``: repeats back to back.
        topics : list of str, optional
            Topics to measure (default: every topic of the address's pipeline but the
            settings inputs).
        relaunch : bool
            Set each point by stopping the pipeline and launching a fresh copy with the
            point's settings (for settings that cannot change live: a collection's, a
            unit's without ``INPUT_SETTINGS``). The pipeline is relaunched as it was
            launched at the end; ``lab.pipelines`` then holds the new one.
        trace : bool, optional
            None (default): latency rows when tracing is on (``lab.trace()``); True:
            trace during the sweep (and stop after); False: rates only.

        Returns
        -------
        DataFrame
            One row per point x repeat x topic x metric: the swept fields, ``point``,
            ``repeat``, ``topic``, ``metric`` (``rate_hz`` from the Lab's profiling
            counters; ``mean_ms``, ``min_ms``, ``p50_ms``, ``p95_ms``, ``p99_ms`` per trace
            metric),
            ``source`` (``profiling`` or the trace metric, e.g. ``user_span_ns``),
            ``value``, ``n`` (messages counted for a rate, trace samples for a latency),
            ``start``, ``end`` (the window, UTC).

        Examples
        --------
        >>> df = lab.sweep("DEMO/FILTER", {"taps": [15, 63, 255]}, settle=0.5,
        ...                measure=1.0, repeats=3, trace=True)  # doctest: +SKIP
        >>> plots.sweep(df, metric="p50_ms", topic="DEMO/FILTER/INPUT_SIGNAL")  # doctest: +SKIP
        """
        cond = Conditions.make(settle, measure, topics, relaunch, trace)
        frame = run_sweep(self, address, spec, cond, repeats=repeats, order=order)
        self._listeners.emit("sweep", frame)
        return frame

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
        """A/B: run settings ``a`` and ``b`` alternately (A B A B ...), ``repeats`` pairs.

        Each pair gives a ratio B/A of one figure (``metric``, e.g. ``"p50:TOPIC"``;
        default: the median user span of the unit's busiest traced topic, else its
        busiest rate). The verdict comes from a distribution-free interval of the median
        ratio (the sign test's, at 95 %): ``"b faster"``/``"b slower"`` (latency) or
        ``"b higher"``/``"b lower"`` (rate) only when it excludes 1, else
        ``"no verdict"``; at 95 % that takes at least 6 pairs. Pairs cancel slow drift.
        Settings are checked first and put back afterwards, as in :meth:`sweep`.

        Returns
        -------
        CompareResult
            ``.frame`` (every row, with ``arm`` and ``pair``), ``.ratios``, ``.ratio``,
            ``.ci``, ``.confidence``, ``.verdict``.

        Examples
        --------
        >>> lab.compare("DEMO/FILTER", a={"taps": 31}, b={"taps": 255}, repeats=6,
        ...             settle=0.5, measure=1.0, trace=True)  # doctest: +SKIP
        """
        topics = None if metric is None else [MetricSpec.parse(metric).topic]
        cond = Conditions.make(settle, measure, topics, relaunch, trace)
        result = run_compare(self, address, a, b, cond, repeats=repeats, metric=metric)
        self._listeners.emit("compare", result.frame)
        return result

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
        """Search settings with Optuna (``pip install 'ezmsg-lab[optuna]'``).

        Each trial Optuna asks for is set, settled and measured like a sweep point, and
        its objective told back; the original settings come back at the end, also after
        an exception or an interrupt (``lab.set(address, **result.best_params)`` keeps
        the best).

        Parameters
        ----------
        space : dict
            ``{field: (low, high)}`` a range (ints when both ends are ints), ``{field:
            [choices]}``, or ``{field: {"low": .., "high": .., "log": True, "step": ..}}``.
            Both ends and every choice are checked before the search starts.
        objective : str or callable
            ``"p95:TOPIC"``, ``"rate:TOPIC"`` (``METRIC:TOPIC``, METRIC one of rate,
            mean, min, p50, p95, p99; latency from ``user_span_ns`` unless written
            ``"p95[publish_delta_ns]:TOPIC"``): that figure in the trial's window. Or a
            function taking the trial's measured rows (the sweep columns, with
            ``repeat``) and returning a number. A NaN (nothing measured) marks the trial
            failed.
        direction : {"minimize", "maximize"}

        Returns
        -------
        OptimizeResult
            ``.trials`` (trial, each field, value, state), ``.best_params``,
            ``.best_value``, ``.frame`` (every measured row) and ``.study``.

        Examples
        --------
        >>> res = lab.optimize("DEMO/FILTER", {"taps": (3, 255)}, "p95:DEMO/FILTER/INPUT_SIGNAL",
        ...                    n_trials=10, trace=True)  # doctest: +SKIP
        >>> res.trials  # doctest: +SKIP
        """
        topics = [MetricSpec.parse(objective).topic] if isinstance(objective, str) else None
        cond = Conditions.make(settle, measure, topics, relaunch, trace)
        result = run_optimize(
            self, address, space, objective, cond, n_trials=n_trials, direction=direction
        )
        self._listeners.emit("optimize", result.trials)
        return result

    # ------------------------------------------------------------------ expectations
    def expect_rate(self, topic: str, hz: float, *, tol: float = 0.1, window: float = 2.0) -> float:
        """Assert that ``topic`` runs at ``hz`` (within ``tol``, a fraction) over the next
        ``window`` seconds; returns the measured rate.

        Raises
        ------
        ExpectationError
            (an ``AssertionError`` and a ``LabError``) with the measured rate, the window
            and the number of messages it rests on.

        Examples
        --------
        >>> lab.expect_rate("DEMO/SOURCE/OUTPUT_SIGNAL", 100, tol=0.1)  # doctest: +SKIP
        """
        check_times(window=window)
        if not 0 <= tol < 1:
            raise LabError(f"tol={tol!r} must be a fraction between 0 and 1 (0.1 for 10 %)")
        rows = self._fresh_window(topic, window, trace=False)
        return judge_rate(rows, topic, float(hz), float(tol), window)

    def expect_latency(
        self,
        topic: str,
        *,
        p95_ms: float | None = None,
        p50_ms: float | None = None,
        p99_ms: float | None = None,
        mean_ms: float | None = None,
        min_ms: float | None = None,
        metric: str = DEFAULT_TRACE,
        window: float = 2.0,
    ) -> dict[str, float]:
        """Assert that ``topic``'s latency (``metric``, the user span by default) stays
        within each limit given over the next ``window`` seconds; tracing is turned on
        for the window when it is off. Returns the measured figures (ms).

        Raises
        ------
        ExpectationError
            Naming each figure over its limit, with all figures, the window and the
            number of trace samples they rest on.

        Examples
        --------
        >>> lab.expect_latency("DEMO/FILTER/INPUT_SIGNAL", p95_ms=5.0)  # doctest: +SKIP
        """
        check_times(window=window)
        limits = {
            k: float(v)
            for k, v in (
                ("p95_ms", p95_ms),
                ("p50_ms", p50_ms),
                ("p99_ms", p99_ms),
                ("mean_ms", mean_ms),
                ("min_ms", min_ms),
            )
            if v is not None
        }
        if not limits:
            raise LabError("expect_latency() needs a limit, e.g. p95_ms=5.0")
        rows = self._fresh_window(topic, window, trace=True)
        return judge_latency(rows, topic, limits, metric, window)

    def _fresh_window(self, topic: str, window: float, trace: bool) -> pd.DataFrame:
        self._session.check_open()
        with self._measuring(trace):
            start = time.time()
            self._sleep(window)
            return self._window(start, time.time(), [topic], None)


_NO_LATENCY = pd.DataFrame(columns=["topic", "source", *LATENCY_STATS, "n"])
