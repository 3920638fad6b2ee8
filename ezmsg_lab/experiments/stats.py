"""Statistics of measurement windows and of paired comparisons (pure: pandas and numpy).

One measurement window gives, per topic, a rate from the Lab's own profiling counters
and latency figures from trace samples; :func:`window_frame` turns both into the tidy
rows every experiment returns. :func:`pair_ratios` and :func:`median_ci` judge A/B runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import LabError

# The tidy measurement columns (an experiment adds its own in front: the point, repeat...).
MEASURE_COLUMNS = ["topic", "metric", "source", "value", "n", "start", "end"]
RATE = "rate_hz"
LATENCY_STATS = ("mean_ms", "min_ms", "p50_ms", "p95_ms", "p99_ms")
METRICS = (RATE, *LATENCY_STATS)
PROFILING = "profiling"  # the source of rate rows: the Lab's profiling counters
DEFAULT_TRACE = "user_span_ns"  # the source latency specs mean unless they name one
_ALIASES = {
    "rate": RATE,
    "mean": "mean_ms",
    "min": "min_ms",
    "p50": "p50_ms",
    "p95": "p95_ms",
    "p99": "p99_ms",
}


def window_rates(
    history: pd.DataFrame,
    start_s: float,
    end_s: float,
    topics: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Rate per topic over ``[start_s, end_s]`` from a :meth:`Lab.metrics` frame.

    Per endpoint: the messages its monotonic counter gained between its first and last
    ok poll inside the window, over the time between those polls; summed per topic.
    Columns: topic, value (Hz), n (messages counted). A topic with fewer than two polls
    of any endpoint in the window has no row.
    """
    lo = pd.Timestamp(start_s, unit="s", tz="UTC")
    hi = pd.Timestamp(end_s, unit="s", tz="UTC")
    h = history[
        (history["metric"] == "messages_total")
        & (history["status"].astype(str) == "ok")
        & (history["time"] >= lo)
        & (history["time"] <= hi)
    ]
    if topics is not None:
        h = h[h["topic"].isin(list(topics))]
    rows: dict[str, list[float]] = {}
    for (topic, _), g in h.groupby(["topic", "endpoint"], sort=True):
        if len(g) < 2:
            continue
        g = g.sort_values("time")
        dt = (g["time"].iloc[-1] - g["time"].iloc[0]).total_seconds()
        count = float(g["value"].iloc[-1] - g["value"].iloc[0])
        if dt <= 0:
            continue
        acc = rows.setdefault(str(topic), [0.0, 0.0])
        acc[0] += count / dt
        acc[1] += count
    return pd.DataFrame(
        [(t, v, int(n)) for t, (v, n) in sorted(rows.items())], columns=["topic", "value", "n"]
    )


def window_latency(
    samples: pd.DataFrame,
    start_s: float,
    end_s: float,
    topics: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Latency figures per topic and trace metric over ``[start_s, end_s]`` from a
    :meth:`Lab.trace_samples` frame: columns topic, source (the trace metric), mean_ms,
    min_ms, p50_ms, p95_ms, p99_ms, n (samples). The minimum is what a message costs
    when nothing else got in its way (on a loaded machine the percentiles include the
    time a process waited for a core)."""
    lo = pd.Timestamp(start_s, unit="s", tz="UTC")
    hi = pd.Timestamp(end_s, unit="s", tz="UTC")
    s = samples[(samples["time"] >= lo) & (samples["time"] <= hi)]
    if topics is not None:
        s = s[s["topic"].isin(list(topics))]
    out = []
    for (topic, metric), g in s.groupby(["topic", "metric"], observed=True, sort=True):
        v = g["value_ms"].to_numpy(dtype=np.float64)
        if not len(v):
            continue
        p50, p95, p99 = np.percentile(v, [50, 95, 99])
        out.append(
            (str(topic), str(metric), float(v.mean()), float(v.min()), p50, p95, p99, len(v))
        )
    return pd.DataFrame(out, columns=["topic", "source", *LATENCY_STATS, "n"])


def window_frame(
    rates: pd.DataFrame, latency: pd.DataFrame, start_s: float, end_s: float
) -> pd.DataFrame:
    """The tidy rows of one window: one row per topic x metric (rate_hz from profiling,
    mean/min/p50/p95/p99_ms per trace metric), each with ``n``, the count it rests on."""
    rows: list[tuple[Any, ...]] = [
        (t, RATE, PROFILING, float(v), int(n))
        for t, v, n in zip(rates["topic"], rates["value"], rates["n"], strict=True)
    ]
    for rec in latency.to_dict("records"):
        for stat in LATENCY_STATS:
            rows.append((rec["topic"], stat, rec["source"], float(rec[stat]), int(rec["n"])))
    frame = pd.DataFrame(rows, columns=MEASURE_COLUMNS[:5])
    frame["n"] = frame["n"].astype(np.int64)
    frame["start"] = pd.Timestamp(start_s, unit="s", tz="UTC")
    frame["end"] = pd.Timestamp(end_s, unit="s", tz="UTC")
    return frame


@dataclass(frozen=True)
class MetricSpec:
    """Which figure of a measured frame an objective or a comparison uses.

    Written ``"METRIC:TOPIC"`` (``"p95:DEMO/BUSY/INPUT"``, ``"rate:DEMO/SOURCE/OUTPUT"``);
    ``METRIC`` is rate, mean, min, p50, p95 or p99 (with or without ``_ms``/``_hz``), latency
    coming from ``user_span_ns`` unless written ``"p95[publish_delta_ns]:TOPIC"``.
    """

    metric: str
    topic: str
    source: str

    @classmethod
    def parse(cls, text: str) -> MetricSpec:
        head, sep, topic = str(text).partition(":")
        source = None
        if "[" in head and head.endswith("]"):
            head, _, source = head[:-1].partition("[")
        metric = _ALIASES.get(head, head)
        if not sep or not topic or metric not in METRICS:
            raise LabError(
                f"metric spec {text!r} is not 'METRIC:TOPIC' with METRIC one of rate, mean, "
                "min, p50, p95, p99 (e.g. 'p95:DEMO/FILTER/INPUT_SIGNAL'); pass a callable taking "
                "the measured frame for anything else."
            )
        if source is None:
            source = PROFILING if metric == RATE else DEFAULT_TRACE
        return cls(metric, topic, source)

    @property
    def lower_is_faster(self) -> bool:
        return self.metric != RATE

    def __str__(self) -> str:
        short = self.metric.removesuffix("_ms").removesuffix("_hz")
        extra = "" if self.source in (PROFILING, DEFAULT_TRACE) else f"[{self.source}]"
        return f"{short}{extra}:{self.topic}"

    def select(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The frame's rows for this figure."""
        return frame[
            (frame["metric"] == self.metric)
            & (frame["topic"] == self.topic)
            & (frame["source"] == self.source)
        ]

    def value(self, frame: pd.DataFrame) -> float:
        """The median over the frame's rows for this figure (NaN when none)."""
        rows = self.select(frame)
        return float(rows["value"].median()) if len(rows) else math.nan


def median_ci(values: Iterable[float], alpha: float = 0.05) -> tuple[float, float, float]:
    """A distribution-free CI of the median (from the sign test's binomial order
    statistics): ``(low, high, confidence)``, with the smallest interval whose confidence
    is at least ``1 - alpha``. With too few values for that (fewer than 6 at 95 %) the
    interval is (NaN, NaN) and the confidence 0."""
    v = np.sort(np.asarray([x for x in values if x == x], dtype=np.float64))
    n = len(v)
    best: tuple[float, float, float] = (math.nan, math.nan, 0.0)
    # Interval [v(k), v(n-1-k)] (0-based) covers the median with 1 - 2 P(B <= k), B~Bin(n,.5).
    cdf = 0.0
    for k in range(n // 2):
        cdf += math.comb(n, k) / 2**n
        confidence = 1.0 - 2.0 * cdf
        if confidence < 1.0 - alpha:
            break
        best = (float(v[k]), float(v[n - 1 - k]), confidence)
    return best


def verdict(low: float, high: float, lower_is_faster: bool) -> str:
    """ "b faster" / "b slower" (latency) or "b higher" / "b lower" (rate) when the CI of
    the B/A ratio excludes 1, else "no verdict"."""
    if not (low == low and high == high):
        return "no verdict"
    if high < 1.0:
        return "b faster" if lower_is_faster else "b lower"
    if low > 1.0:
        return "b slower" if lower_is_faster else "b higher"
    return "no verdict"


def slope(x: Iterable[float], y: Iterable[float]) -> tuple[float, float]:
    """Least-squares slope and intercept of y over x."""
    xs = np.asarray(list(x), dtype=np.float64)
    ys = np.asarray(list(y), dtype=np.float64)
    k, c = np.polyfit(xs, ys, 1)
    return float(k), float(c)
