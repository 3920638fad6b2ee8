"""A/B comparisons: interleaved runs of two settings, judged pair by pair."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import LabError
from .bench import Bench
from .plan import Conditions
from .stats import DEFAULT_TRACE, LATENCY_STATS, RATE, MetricSpec, median_ci, verdict
from .sweep import run_points


@dataclass
class CompareResult:
    """What :meth:`Lab.compare` found.

    Attributes
    ----------
    frame : DataFrame
        Every measured row, with ``arm`` ("a"/"b") and ``pair`` in front.
    metric : str
        The figure judged (``"p50:DEMO/BUSY/INPUT"``).
    ratios : numpy array
        B/A of that figure, one per pair (in run order).
    ratio : float
        Their median.
    ci : (float, float)
        A distribution-free interval of the median ratio (sign test), at
        ``confidence``; (NaN, NaN) with too few pairs (fewer than 6 at 95 %).
    verdict : str
        ``"b faster"``/``"b slower"`` for a latency, ``"b higher"``/``"b lower"`` for a
        rate, only when ``ci`` excludes 1; else ``"no verdict"``.
    """

    address: str
    a: dict[str, Any]
    b: dict[str, Any]
    metric: str
    frame: pd.DataFrame = field(repr=False)
    ratios: np.ndarray = field(repr=False)
    ratio: float
    ci: tuple[float, float]
    confidence: float
    verdict: str

    def __repr__(self) -> str:
        lo, hi = self.ci
        ci = f"[{lo:.3g}, {hi:.3g}] at {self.confidence:.0%}" if lo == lo else "none"
        return (
            f"<CompareResult {self.address} a={self.a} b={self.b}: {self.metric} B/A "
            f"{self.ratio:.3g} over {len(self.ratios)} pairs, CI {ci}: {self.verdict}>"
        )

    def _repr_html_(self) -> str:
        lo, hi = self.ci
        ci = f"{lo:.3g} – {hi:.3g} ({self.confidence:.0%})" if lo == lo else "none (too few pairs)"
        pairs = ", ".join(f"{r:.3g}" for r in self.ratios)
        rows = [
            ("unit", self.address),
            ("a", self.a),
            ("b", self.b),
            ("figure", self.metric),
            ("B/A per pair", pairs),
            ("median B/A", f"{self.ratio:.3g}"),
            ("CI of the median", ci),
            ("verdict", self.verdict),
        ]
        body = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>"
            f"{html.escape(str(v))}</td></tr>"
            for k, v in rows
        )
        return f"<div><b>A/B comparison</b><table>{body}</table></div>"


def default_metric(frame: pd.DataFrame, address: str) -> MetricSpec:
    """The figure a comparison judges when none is given: the median user span of the
    unit's busiest traced topic, else the rate of its busiest topic."""
    mine = frame[frame["topic"].astype(str).str.startswith(address + "/")]
    spans = mine[(mine["metric"] == "p50_ms") & (mine["source"] == DEFAULT_TRACE)]
    if len(spans):
        topic = spans.groupby("topic")["n"].sum().idxmax()
        return MetricSpec("p50_ms", str(topic), DEFAULT_TRACE)
    rates = mine[mine["metric"] == RATE]
    if len(rates):
        topic = rates.groupby("topic")["value"].median().idxmax()
        return MetricSpec(RATE, str(topic), "profiling")
    raise LabError(
        f"Nothing was measured on {address}'s topics (no rate, no trace): pass metric= "
        "naming a topic, e.g. metric='rate:DEMO/SOURCE/OUTPUT_SIGNAL'."
    )


def judge(
    frame: pd.DataFrame, spec: MetricSpec, alpha: float
) -> tuple[np.ndarray, float, tuple[float, float], float, str]:
    """(ratios per pair, median ratio, CI, its confidence, verdict) of B/A for ``spec``."""
    rows = spec.select(frame)
    wide = rows.pivot_table(index="pair", columns="arm", values="value", aggfunc="median")
    if not {"a", "b"} <= set(wide.columns):
        raise LabError(
            f"{spec} was not measured in both arms (found {sorted(map(str, wide.columns))}); "
            "check the topic name in lab.profile() and that tracing is on for latencies."
        )
    wide = wide.dropna()
    ratios = (wide["b"] / wide["a"]).replace([np.inf, -np.inf], np.nan).dropna().to_numpy()
    if not len(ratios):
        return ratios, math.nan, (math.nan, math.nan), 0.0, "no verdict"
    lo, hi, confidence = median_ci(ratios, alpha)
    return (
        ratios,
        float(np.median(ratios)),
        (lo, hi),
        confidence,
        verdict(lo, hi, spec.metric in LATENCY_STATS),
    )


def run_compare(
    bench: Bench,
    address: str,
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    cond: Conditions,
    *,
    repeats: int,
    metric: str | None,
    alpha: float = 0.05,
) -> CompareResult:
    """See :meth:`ExperimentsService.compare`."""
    if not isinstance(a, Mapping) or not isinstance(b, Mapping) or not a or not b:
        raise LabError(
            "compare() needs two settings dicts, e.g. a={'cutoff_hz': 20}, b={'cutoff_hz': 40}"
        )
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise LabError(f"repeats={repeats!r} must be a whole number >= 1 (pairs of runs)")
    if not 0 < alpha < 1:
        raise LabError(f"alpha={alpha!r} must be between 0 and 1 (0.05 for 95 %)")
    spec = MetricSpec.parse(metric) if metric is not None else None
    points = [dict(a), dict(b)]
    runs = [(arm, pair) for pair in range(repeats) for arm in (0, 1)]
    frame = run_points(
        bench,
        address,
        points,
        runs,
        cond,
        f"compare {address}",
        lambda p, r: {"arm": "ab"[p], "pair": r},
    )
    spec = spec or default_metric(frame, address)
    ratios, ratio, ci, confidence, word = judge(frame, spec, alpha)
    return CompareResult(
        address, dict(a), dict(b), str(spec), frame, ratios, ratio, ci, confidence, word
    )
