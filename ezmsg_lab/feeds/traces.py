"""Latency tracing: switch ezmsg's tracing on with a budget, consume its stream.

- Tracing is set per process (one setting per process in ezmsg: a new request replaces the
  previous one) with ``ttl_seconds``, and renewed while the Lab traces, so a kernel that
  dies leaves tracing on for at most one ttl.
- Tracing costs a process two things while it is on: ezmsg's hooks on *every* message
  (a counter per endpoint, two clock reads per received message), which no ``sample_mod``
  skips, about ``HOOK_COST_S`` per message an endpoint handles; and each traced message,
  about ``TRACE_COST_S`` (the sample made, pickled and sent to the GraphServer). Measured
  on a flooding Flood -> Relay -> Count pipeline (4 endpoint events a message, 36.7 µs of
  CPU a message untraced): hooks alone +1.5 µs (+4 %), ``sample_mod=30`` +3.8 µs (+10 %).
  So the budget cannot be kept by ``sample_mod`` alone: a fast process is traced in
  windows (duty cycling). Per process, ``sample_mod`` keeps the sampled part within the
  budget while tracing is on (``rate * TRACE_COST_S / sample_mod <= budget``), and the
  duty (the share of time tracing is on) keeps the whole cost, hooks included, within it:
  ``duty * rate * (HOOK_COST_S + TRACE_COST_S / sample_mod) <= budget``. A process slow
  enough for ``duty == 1`` is traced continuously, renewed every ``ttl / 3``; a faster one
  gets a window of ``window_s`` every ``period_s`` (see :func:`plan_tracing`), each window
  a setting of its own whose ``ttl_seconds`` is the window, so ezmsg ends every window by
  itself (a dead kernel leaves tracing on for at most one window, never more than ttl).
  Samples come only from the windows: ``lab.tracing`` shows each process's duty, window
  and period and how many windows it had, and ``lab.tracing.traced_windows`` when each
  one was on. A window gives about ``window_s * rate / sample_mod`` traced endpoint
  events (one to two samples each with the default metrics): the flooding pipeline above
  (about 100k events/s) at 2 % gets ``sample_mod`` 75 and a 0.67 s window every 2 s
  (duty 33 %), about 900 events a window. ezmsg drops the samples still buffered when a
  window expires (at most its last 20 ms, one push interval).
- The rates above are messages each process's endpoints handle (publishers' and
  subscribers' rates summed, from the poller); the fraction is of one core's time, so a
  process starved of CPU by others pays a larger share of what it gets.
- Samples come from ``subscribe_profiling_trace`` (pulling batches returns almost nothing
  in ezmsg 3.9.0: a push loop drains the buffers every 20 ms).
- A process whose rate is not known yet (tracing started right after a launch) is traced
  as if it ran at ``ASSUMED_RATE_HZ`` (about the fastest ezmsg path measured here), so the
  budget holds from the first message; its plan is made from its real rate as soon as
  the poller has one (set at once if that plan is continuous, else from its next window).
  A process that has a rate but no endpoint on the traced topics counts as rate 0.
- A trace stream that ends or fails, and a process whose tracing could not be set, show in
  ``lab.tracing`` (``status``, ``reason``, ``failed``) as well as in the log.
- ``backpressure_wait_ns`` is traced only when asked for: ezmsg records it on every wait,
  ignoring ``sample_mod``, so it cannot be kept within a budget (a flooding publisher waits
  on every message; tracing it cost the throughput benchmark about 10 %).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import methodcaller
from typing import TYPE_CHECKING

from ..model.listeners import Subscribable
from ..model.metrics import MetricsStore, ProcessMeta
from ..model.topology import process_table
from ..model.traces import METRICS, TraceStore
from ..runtime.connection import Connection
from .topology import TopologyFeed

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

# CPU seconds per traced endpoint event, and per endpoint event while tracing is on at
# all (see the module docstring for the measurement).
TRACE_COST_S = 15e-6
HOOK_COST_S = 0.4e-6
UNSAMPLED_METRICS = ("backpressure_wait_ns",)
DEFAULT_METRICS = tuple(m for m in METRICS if m not in UNSAMPLED_METRICS)
DEFAULT_BUDGET = 0.02
DEFAULT_TTL_S = 10.0
# The GraphServer sends the stream's batches this often. Each batch scans the server's
# whole trace buffer per process (ezmsg 3.9.0 keeps up to 200,000 samples a process, the
# Lab's embedded server 10,000): every 50 ms, that scan took up to 0.15 s of CPU a second
# in the server while tracing (measured with py-spy in bench_throughput). Samples keep
# their own timestamps; they only arrive up to this much later.
STREAM_INTERVAL_S = 0.2
STREAM_MAX_SAMPLES = 20_000
# Trace samples a second the kernel takes in, from all processes together: the embedded
# GraphServer relays each one and the Lab unpickles and stores it, all in the kernel. A
# load of 50 publishers (7,350 msg/s, each message traced within the per-process budget)
# sent about 25k samples a second: the control loop's polls fell to 2 a second and the
# server's queue for the stream grew the kernel by 300 MB in 30 s.
KERNEL_SAMPLES_PER_S = 5_000.0
# Rate assumed for a process the poller has no rate for yet (ezmsg's local path measured
# 77.6k msg/s on these machines): a guess on the safe side of the budget.
ASSUMED_RATE_HZ = 100_000.0
# Duty cycling: a window starts every PERIOD_S and lasts duty * PERIOD_S, but never less
# than MIN_WINDOW_S (ezmsg checks a trace's ttl every 20 ms, its push interval, and drops
# what is buffered when it expires: shorter windows would lose a larger share of their
# samples); a lower duty then stretches the period.
PERIOD_S = 2.0
MIN_WINDOW_S = 0.1
# How many window starts ``TraceSettings.traced_windows`` keeps.
WINDOWS_KEPT = 2_000
# Longest wait between two looks at the schedule (new processes, new rates).
RESCHEDULE_S = 0.5


# TraceSettings' dicts keyed by process id, in the order of ``processes``' columns.
_PER_PROCESS = ("sample_mod", "rate_known", "duty", "window_s", "period_s", "windows", "failed")


@dataclass(frozen=True)
class TracePlan:
    """How one process is traced: ``sample_mod``; ``duty``, the share of time tracing is
    on; a window of ``window_s`` (the ``ttl_seconds`` ezmsg gets) starting every
    ``period_s``. ``duty == 1``: continuous, ``window_s`` is the ttl, renewed every
    ``period_s`` (a third of it)."""

    sample_mod: int
    duty: float
    window_s: float
    period_s: float

    @property
    def continuous(self) -> bool:
        return self.duty >= 1.0


def plan_tracing(
    rate_hz: float,
    budget: float,
    ttl_s: float,
    floor_mod: int = 1,
    hook_cost_s: float = HOOK_COST_S,
    cost_s: float = TRACE_COST_S,
) -> TracePlan:
    """The plan keeping tracing's whole cost in a process handling ``rate_hz`` endpoint
    events a second within ``budget``: ``duty * rate * (hook + cost / sample_mod) <=
    budget``, with ``sample_mod`` at least ``floor_mod`` and chosen as for continuous
    tracing (the sampled part alone within the budget while on)."""
    mod = max(int(floor_mod), choose_sample_mod(rate_hz, budget, cost_s))
    if ttl_s <= 0:
        raise ValueError(f"ttl={ttl_s!r} must be a positive number of seconds")
    if not math.isfinite(rate_hz) or rate_hz <= 0:
        return TracePlan(mod, 1.0, ttl_s, ttl_s / 3)
    on_cost = rate_hz * (hook_cost_s + cost_s / mod)
    if on_cost <= budget:
        return TracePlan(mod, 1.0, ttl_s, ttl_s / 3)
    duty = budget / on_cost
    window = min(ttl_s, max(MIN_WINDOW_S, duty * PERIOD_S))
    return TracePlan(mod, duty, window, window / duty)


def choose_sample_mod(rate_hz: float, budget: float, cost_s: float = TRACE_COST_S) -> int:
    """Smallest ``sample_mod`` keeping ``rate * cost / sample_mod <= budget``."""
    if not 0 < budget <= 1:
        raise ValueError(f"budget={budget!r} must be a fraction in (0, 1], e.g. 0.05 for 5 %")
    if not math.isfinite(rate_hz) or rate_hz <= 0:
        return 1
    return max(1, math.ceil(rate_hz * cost_s / budget))


def kernel_sample_mod(
    total_rate_hz: float, n_metrics: int, max_samples_s: float = KERNEL_SAMPLES_PER_S
) -> int:
    """Smallest ``sample_mod`` for every process that keeps the samples reaching the
    kernel (about ``total_rate * n_metrics / sample_mod`` a second) within
    ``max_samples_s``."""
    if not math.isfinite(total_rate_hz) or total_rate_hz <= 0:
        return 1
    return max(1, math.ceil(total_rate_hz * max(1, n_metrics) / max_samples_s))


@dataclass
class TraceSettings:
    """What the Lab traces, and how it is going.

    ``status`` is ``"tracing"``, or ``"failed"`` when the trace stream ended or broke
    (``reason`` says why; samples received before are kept). ``failed`` maps a process to
    why tracing could not be set in it at the last renewal; ``sample_mod`` maps each traced
    process to ezmsg's sampling (``rate_known`` False while it rests on the assumed rate),
    ``duty`` to the share of time it is traced (1: continuously; less: in windows of
    ``window_s`` every ``period_s``), and ``windows`` to how many windows it was traced in.
    Latency percentiles come from the traced windows only.
    """

    topics: list[str] | None
    metrics: list[str] | None
    budget: float
    ttl_s: float
    until: float | None  # monotonic deadline, or None
    sample_mod: dict[str, int] = field(default_factory=dict)
    rate_known: dict[str, bool] = field(default_factory=dict)
    duty: dict[str, float] = field(default_factory=dict)
    window_s: dict[str, float] = field(default_factory=dict)
    period_s: dict[str, float] = field(default_factory=dict)
    windows: dict[str, int] = field(default_factory=dict)
    # (process id, epoch start s, window s) of the latest window starts, oldest first.
    _window_log: deque[tuple[str, float, float]] = field(
        default_factory=lambda: deque(maxlen=WINDOWS_KEPT), repr=False
    )
    started_at: float = field(default_factory=time.time)
    status: str = "tracing"
    reason: str | None = None
    failed: dict[str, str] = field(default_factory=dict)
    # pid, host and units of every process tracing was set in (or failed in), by id.
    process_info: dict[str, ProcessMeta] = field(default_factory=dict, repr=False)

    def record_window(
        self, process_id: str, plan: TracePlan, known: bool, started: float | None = None
    ) -> None:
        """(The feed) a window started, or continuous tracing was renewed, with ``plan``;
        ``started`` is the epoch time the request was sent (the window starts after it)."""
        self.sample_mod[process_id] = plan.sample_mod
        self.rate_known[process_id] = known
        self.duty[process_id] = plan.duty
        self.window_s[process_id] = plan.window_s
        self.period_s[process_id] = plan.period_s
        self.windows[process_id] = self.windows.get(process_id, 0) + 1
        start = time.time() if started is None else started
        self._window_log.append((process_id, start, plan.window_s))

    def forget(self, process_id: str) -> None:
        for name in _PER_PROCESS:
            getattr(self, name).pop(process_id, None)
        self.process_info.pop(process_id, None)

    @property
    def traced_windows(self) -> pd.DataFrame:
        """The latest windows tracing was on (at most ``WINDOWS_KEPT``): process, pid,
        start and end (UTC). ``start`` is when the Lab sent the request; ezmsg starts the
        window on receipt and ends it by itself ``window_s`` later, so ``end`` is late by
        the request's delivery time. A continuous process has one row per renewal, each
        ``ttl`` long, overlapping."""
        import pandas as pd

        rows = [
            {
                "process": p,
                "pid": self.process_info[p].pid if p in self.process_info else None,
                "start": start,
                "end": start + length,
            }
            for p, start, length in self._window_log
        ]
        frame = pd.DataFrame(rows, columns=["process", "pid", "start", "end"])
        for col in ("start", "end"):
            frame[col] = pd.to_datetime(frame[col], unit="s", utc=True)
        return frame.astype({"pid": "Int64"})

    @property
    def processes(self) -> pd.DataFrame:
        """One row per process: pid, host, units, ``sample_mod``, ``rate_known``, ``duty``,
        ``window_s``, ``period_s``, ``windows`` and why tracing failed there (if it did).
        ``sample_mod`` itself stays keyed by process id."""
        import pandas as pd

        rows = []
        for pid in sorted(set(self.sample_mod) | set(self.failed), key=self._order):
            meta = self.process_info.get(pid)
            rows.append(
                {
                    "process": pid,
                    "pid": meta.pid if meta else None,
                    "host": meta.host if meta else None,
                    "units": ", ".join(meta.units) if meta else "",
                    **{name: getattr(self, name).get(pid) for name in _PER_PROCESS},
                }
            )
        frame = pd.DataFrame(rows, columns=["process", "pid", "host", "units", *_PER_PROCESS])
        return frame.astype(
            {
                "pid": "Int64",
                "sample_mod": "Int64",
                "rate_known": "boolean",
                "duty": "Float64",
                "window_s": "Float64",
                "period_s": "Float64",
                "windows": "Int64",
            }
        )

    def _order(self, process_id: str) -> tuple[tuple[str, ...], str]:
        meta = self.process_info.get(process_id)
        return (meta.units[:1] if meta else (), process_id)

    def _label(self, process_id: str) -> str:
        meta = self.process_info.get(process_id)
        if meta is None:
            return process_id[:8]
        first = meta.units[0].split("/")[-1] if meta.units else process_id[:8]
        more = f"+{len(meta.units) - 1}" if len(meta.units) > 1 else ""
        return f"{first}{more} (pid {meta.pid})"

    def _summary(self) -> str:
        what = "all topics" if not self.topics else ", ".join(self.topics)
        state = self.status if self.reason is None else f"{self.status}: {self.reason}"
        metrics = ", ".join(self.metrics or [])
        return f"{state}; {what}; metrics {metrics}; budget {self.budget:.0%}"

    def __repr__(self) -> str:
        procs = ", ".join(
            f"{self._label(p)} 1/{m}{'' if self.rate_known.get(p) else '?'}{self._duty_text(p)}"
            for p, m in sorted(self.sample_mod.items(), key=lambda kv: self._order(kv[0]))
        )
        failed = ", ".join(f"{self._label(p)}: {why}" for p, why in self.failed.items())
        text = f"<TraceSettings {self._summary()}; sampling {procs or 'no process yet'}"
        return text + (f"; failed {failed}>" if failed else ">")

    def _duty_text(self, process_id: str) -> str:
        duty = self.duty.get(process_id, 1.0)
        if duty >= 1.0:
            return ""
        window, period = self.window_s[process_id], self.period_s[process_id]
        return f" on {duty:.0%} ({window:.2g} s every {period:.2g} s)"

    def _repr_html_(self) -> str:
        import html

        table = self.processes.to_html(index=False, na_rep="", border=0)
        return (
            f"<div><b>Tracing</b>: {html.escape(self._summary())}<br><small>sample_mod "
            "n: one message in n is traced (rate_known False: sampled on an assumed rate "
            "until the next poll); duty: the share of time tracing is on, in windows of "
            f"window_s every period_s</small>{table}</div>"
        )


class TraceFeed:
    def __init__(
        self,
        conn: Connection,
        topology: TopologyFeed,
        metrics: MetricsStore,
        store: TraceStore,
        offset_of: Callable[[str], int | None],
        polls: Subscribable[[]],
    ) -> None:
        self._conn = conn
        self._topology = topology
        self._metrics = metrics
        self.store = store
        self._offset_of = offset_of
        self.active: TraceSettings | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.received = 0
        self.dropped_unmapped = 0  # samples from hosts whose clock was not yet mapped
        # Loop time each process's next window (or continuous renewal) is due.
        self._next_on: dict[str, float] = {}
        self._rates: tuple[object, dict[str, float]] | None = None
        self._adjusting = False
        self._unsubscribe_polls = polls.subscribe(self._on_poll)

    async def start(
        self,
        topics: Iterable[str] | None,
        metrics: Iterable[str] | None,
        duration: float | None,
        budget: float,
        ttl_s: float,
    ) -> TraceSettings:
        topics_l = [topics] if isinstance(topics, str) else (list(topics) if topics else None)
        metrics_l = [metrics] if isinstance(metrics, str) else (list(metrics) if metrics else None)
        if metrics_l:
            unknown = sorted(set(metrics_l) - set(METRICS))
            if unknown:
                raise ValueError(f"unknown trace metric(s) {unknown}; choose from {list(METRICS)}")
            unsampled = sorted(set(metrics_l) & set(UNSAMPLED_METRICS))
            if unsampled:
                warnings.warn(
                    f"{unsampled} is recorded by ezmsg on every backpressure wait, whatever "
                    "the sampling: the budget does not bound its cost.",
                    stacklevel=3,
                )
        else:
            metrics_l = list(DEFAULT_METRICS)
        choose_sample_mod(1.0, budget)  # validates budget
        if ttl_s <= 0:
            raise ValueError(f"ttl={ttl_s!r} must be a positive number of seconds")
        if duration is not None and duration <= 0:
            raise ValueError(f"duration={duration!r} must be a positive number of seconds")
        await self.stop()
        loop = asyncio.get_running_loop()
        self._next_on = {}
        self.active = TraceSettings(
            topics=topics_l,
            metrics=metrics_l,
            budget=budget,
            ttl_s=ttl_s,
            until=None if duration is None else loop.time() + duration,
        )
        await self._apply()
        self._tasks = [
            asyncio.create_task(self._stream(), name="ezmsg-lab-trace-stream"),
            asyncio.create_task(self._renew(), name="ezmsg-lab-trace-renew"),
        ]
        return self.active

    def _process_rates(self) -> dict[str, float]:
        """Messages per second each process handles on the traced topics (latest poll).

        Computed once a poll: it builds the profile DataFrame, which at every window
        start of every process was a third of the kernel's CPU while tracing."""
        topics = self.active.topics if self.active and self.active.topics else None
        key = (self._metrics.last_poll_s, tuple(topics) if topics else None)
        if self._rates is not None and self._rates[0] == key:
            return self._rates[1]
        if topics is None:
            rates = self._metrics.process_rates(None)
        else:
            # A process with a rate but none on the traced topics handles 0 traced messages.
            rates = dict.fromkeys(self._metrics.process_rates(None), 0.0)
            rates.update(self._metrics.process_rates(topics))
        self._rates = (key, rates)
        return rates

    async def _apply(self, replan: bool = False) -> float:
        """Start the windows that are due (and renew continuous tracing); with
        ``replan``, also re-plan the others from the latest rates (a continuous plan is
        set at once). Returns the loop time of the next one due."""
        from ezmsg.core.graphmeta import ProfilingTraceControl

        loop = asyncio.get_running_loop()
        settings = self.active
        if settings is None or self._topology.snapshot is None:
            return loop.time() + RESCHEDULE_S
        table = process_table(self._topology.snapshot)
        for gone in (set(settings.sample_mod) | set(settings.failed)) - set(table):
            settings.forget(gone)
            self._next_on.pop(gone, None)
        live = [p for p, meta in table.items() if meta.units]
        now = loop.time()
        if not replan and not any(
            now >= self._next_on.get(p, 0.0) or p in settings.failed for p in live
        ):
            return min([*(self._next_on[p] for p in live), now + RESCHEDULE_S])
        rates = self._process_rates()
        floor = kernel_sample_mod(sum(rates.values()), len(settings.metrics or DEFAULT_METRICS))
        for process_id in live:
            meta = table[process_id]
            known = process_id in rates
            plan = plan_tracing(
                rates.get(process_id, ASSUMED_RATE_HZ), settings.budget, settings.ttl_s, floor
            )
            now = loop.time()
            due = now >= self._next_on.get(process_id, 0.0) or process_id in settings.failed
            changed = (
                settings.sample_mod.get(process_id) != plan.sample_mod
                or settings.rate_known.get(process_id) != known
            )
            # A plan that traces continuously is set at once; a window keeps its plan to
            # its end (a new one now would stretch it past its duty).
            if not due and not (changed and plan.continuous):
                continue
            control = ProfilingTraceControl(
                enabled=True,
                sample_mod=plan.sample_mod,
                publisher_topics=settings.topics,
                subscriber_topics=settings.topics,
                metrics=settings.metrics,
                ttl_seconds=plan.window_s,
            )
            # ezmsg answers a failed request (a process that does not answer in time, one
            # that left) with ok=False rather than raising.
            timeout = max(0.2, min(2.0, settings.ttl_s / 3))
            sent = time.time()
            try:
                response = await self._conn.call(
                    methodcaller(
                        "process_set_profiling_trace", meta.units[0], control, timeout=timeout
                    )
                )
                why = None if getattr(response, "ok", True) else _response_error(response)
            except RuntimeError as exc:
                why = str(exc).splitlines()[0] if str(exc) else repr(exc)
            settings.process_info[process_id] = meta
            if why is not None:
                logger.warning("could not set tracing in %s: %s", process_id, why)
                settings.failed[process_id] = why
                self._next_on[process_id] = loop.time() + min(plan.period_s, settings.ttl_s / 3)
                continue
            settings.failed.pop(process_id, None)
            settings.record_window(process_id, plan, known, sent)
            self.store.sample_mod[process_id] = plan.sample_mod
            self._next_on[process_id] = now + plan.period_s
        upcoming = [t for p, t in self._next_on.items() if p in table]
        return min([*upcoming, loop.time() + RESCHEDULE_S])

    def _on_poll(self) -> None:
        """After a poll (control loop): re-set processes traced on an assumed rate."""
        settings = self.active
        if settings is None or settings.status != "tracing" or self._adjusting:
            return
        if not any(not k for k in settings.rate_known.values()):
            return
        rates = self._process_rates()
        if any(p in rates for p, k in settings.rate_known.items() if not k):
            self._adjusting = True
            task = asyncio.create_task(self._adjust(), name="ezmsg-lab-trace-adjust")
            self._tasks.append(task)

    async def _adjust(self) -> None:
        try:
            await self._apply(replan=True)
        except Exception as exc:
            logger.warning("adjusting trace sampling failed: %r", exc)
        finally:
            self._adjusting = False
            task = asyncio.current_task()
            if task in self._tasks:
                self._tasks.remove(task)

    def _fail(self, settings: TraceSettings, reason: str) -> None:
        if self.active is not settings or settings.status != "tracing":
            return
        settings.status = "failed"
        settings.reason = reason
        logger.warning("tracing stopped: %s", reason)

    async def _renew(self) -> None:
        """Start each process's windows on schedule (and renew continuous tracing every
        ttl / 3) until ``duration`` ends or tracing stops."""
        loop = asyncio.get_running_loop()
        next_due = loop.time()
        while self.active is not None:
            settings = self.active
            wait = max(0.0, next_due - loop.time())
            if settings.until is not None:
                wait = min(wait, max(0.0, settings.until - loop.time()))
            await asyncio.sleep(wait)
            if settings.until is not None and loop.time() >= settings.until:
                await self._disable()
                self.active = None
                for task in self._tasks:
                    if task is not asyncio.current_task():
                        task.cancel()
                return
            if settings.status != "tracing":
                return
            try:
                next_due = await self._apply()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the GraphServer went away, most likely
                self._fail(settings, f"renewing tracing failed: {exc}")
                return

    async def _stream(self) -> None:
        from ezmsg.core.graphmeta import ProfilingStreamControl

        settings = self.active
        assert settings is not None
        ctx = self._conn.context
        control = ProfilingStreamControl(interval=STREAM_INTERVAL_S, max_samples=STREAM_MAX_SAMPLES)
        self.store.update_processes(process_table(self._topology.snapshot))
        try:
            async for batch in ctx.subscribe_profiling_trace(control):
                for process_id, proc_batch in batch.batches.items():
                    if proc_batch.samples:
                        offset = self._offset_of(str(process_id))
                        if offset is None:
                            # A host whose clock has no round trip yet: stamping its
                            # samples with another host's offset would be hours off.
                            self.dropped_unmapped += len(proc_batch.samples)
                            continue
                        self.received += self.store.ingest(
                            str(process_id), proc_batch.samples, offset
                        )
                self.store.update_processes(process_table(self._topology.snapshot))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(settings, f"the trace stream failed: {exc!r}")
            return
        self._fail(settings, "the trace stream ended (the GraphServer closed it)")

    async def _disable(self) -> None:
        from ezmsg.core.graphmeta import ProfilingTraceControl

        snapshot = self._topology.snapshot
        if snapshot is None or self._conn.lost is not None:
            return

        async def disable(route: str) -> None:
            with contextlib.suppress(Exception):
                await self._conn.call(
                    methodcaller(
                        "process_set_profiling_trace",
                        route,
                        ProfilingTraceControl(enabled=False),
                        timeout=_DISABLE_TIMEOUT_S,
                    )
                )

        # All at once, each briefly: one process stuck in a blocking call would otherwise
        # hold untrace() for ezmsg's 2 s per process. One that does not answer stops
        # tracing by itself when the trace's ttl runs out.
        await asyncio.gather(
            *(disable(m.units[0]) for m in process_table(snapshot).values() if m.units)
        )

    async def close(self) -> None:
        """Stop tracing and stop following the poller (the Lab is closing)."""
        self._unsubscribe_polls()
        await self.stop()

    async def stop(self) -> None:
        was_active = self.active is not None
        self.active = None
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        for task in self._tasks:
            if task is not current:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._tasks = []
        if was_active:
            await self._disable()


# How long untrace() waits for each process to confirm (they are asked in parallel).
_DISABLE_TIMEOUT_S = 0.5


def _response_error(response: object) -> str:
    code = getattr(response, "error_code", None)
    code = getattr(code, "value", code)
    return f"{code or 'failed'}: {getattr(response, 'error', None) or 'no reason given'}"
