"""Matplotlib figures from the Lab's DataFrames.

Each function takes the DataFrame a Lab method returns (so it also works on a saved one)
and returns the matplotlib ``Axes`` (or array of them), ready for further styling.

Examples
--------
>>> from ezmsg_lab import plots
>>> plots.rates(lab.metrics(), kind="publisher")            # doctest: +SKIP
>>> plots.latency_hist(lab.trace_samples(), metric="user_span_ns")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["latency_hist", "latency_summary", "rates", "sweep"]


def _axes(ax: Any, **kwargs: Any) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(**kwargs)
    return ax


def rates(
    metrics: pd.DataFrame,
    *,
    kind: str | None = "publisher",
    topics: list[str] | None = None,
    ax: Any = None,
) -> Any:
    """Message rate over time, one line per topic (from :meth:`Lab.metrics`).

    Gaps (a missing process, the first poll of a series) stay gaps: no line is drawn
    through a poll that had no rate.
    """
    _require(metrics, ["time", "topic", "kind", "metric", "value"], "lab.metrics()")
    df = metrics[metrics["metric"] == "rate_hz"]
    if kind is not None:
        df = df[df["kind"] == kind]
    if topics is not None:
        df = df[df["topic"].isin(topics)]
    ax = _axes(ax, figsize=(8, 3.5))
    for topic, group in df.groupby("topic", sort=True, observed=True):
        group = group.sort_values("time")
        ax.plot(group["time"], group["value"], label=topic, linewidth=1.4)
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]  # unannotated in matplotlib
    ax.xaxis.set_major_locator(locator)
    formatter = mdates.ConciseDateFormatter(locator)  # type: ignore[no-untyped-call]  # (same)
    ax.xaxis.set_major_formatter(formatter)
    ax.set_ylabel("messages / s")
    ax.set_xlabel("time (UTC)")
    ax.set_title(f"{kind or 'all'} rates" if kind else "rates")
    ax.grid(alpha=0.3)
    if len(df):
        ax.legend(fontsize="small", loc="best")
    return ax


def latency_hist(
    samples: pd.DataFrame,
    *,
    metric: str = "user_span_ns",
    topics: list[str] | None = None,
    bins: int = 40,
    log: bool = False,
    axes: Any = None,
) -> Any:
    """A latency histogram per topic (small multiples) from :meth:`Lab.trace_samples`,
    with p50 and p99 marked."""
    _require(samples, ["topic", "metric", "value_ms"], "lab.trace_samples()")
    df = samples[samples["metric"] == metric]
    if topics is not None:
        df = df[df["topic"].isin(topics)]
    names = sorted(df["topic"].dropna().unique())
    n = max(1, len(names))
    if axes is None:
        import matplotlib.pyplot as plt

        cols = min(3, n)
        rows = int(np.ceil(n / cols))
        _, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    flat = np.ravel(axes)
    for ax, topic in zip(flat, names, strict=False):
        values = df.loc[df["topic"] == topic, "value_ms"].to_numpy()
        edges = (
            np.logspace(np.log10(max(values.min(), 1e-6)), np.log10(values.max()), bins)
            if log and len(values)
            else bins
        )
        ax.hist(values, bins=edges, color="#4c72b0", alpha=0.85)
        if log:
            ax.set_xscale("log")
        p50, p99 = np.percentile(values, [50, 99])
        ax.axvline(p50, color="#222", linewidth=1, label=f"p50 {p50:.3g} ms")
        ax.axvline(p99, color="#c44e52", linewidth=1, linestyle="--", label=f"p99 {p99:.3g} ms")
        ax.set_title(topic, fontsize="medium")
        ax.set_xlabel(f"{metric.removesuffix('_ns')} (ms)")
        ax.legend(fontsize="small")
    for ax in flat[len(names) :]:
        ax.set_visible(False)
    if len(flat):
        flat[0].figure.tight_layout()
    return axes


def latency_summary(latency: pd.DataFrame, *, metric: str = "user_span_ns", ax: Any = None) -> Any:
    """p50 / p95 / p99 per topic as grouped horizontal bars (from :meth:`Lab.latency`)."""
    _require(latency, ["topic", "metric", "p50_ms", "p95_ms", "p99_ms"], "lab.latency()")
    df = latency[latency["metric"] == metric].set_index("topic")[["p50_ms", "p95_ms", "p99_ms"]]
    ax = _axes(ax, figsize=(7, 0.5 + 0.45 * max(1, len(df))))
    if len(df):
        df.sort_index(ascending=False).plot.barh(ax=ax, width=0.8)
    ax.set_xlabel("ms")
    ax.set_title(f"{metric.removesuffix('_ns')} percentiles")
    ax.grid(axis="x", alpha=0.3)
    return ax


def sweep(
    df: pd.DataFrame,
    *,
    metric: str = "rate_hz",
    topic: str | None = None,
    source: str | None = None,
    x: str | None = None,
    spread: str = "p5-p95",
    ax: Any = None,
) -> Any:
    """A metric against the swept value (from :meth:`Lab.sweep`): the median across
    repeats as a line, their spread as a band (``spread="p5-p95"`` or ``"min-max"``).

    ``topic`` picks one topic (default: every topic, a line each); ``source`` one trace
    metric for latency figures (default ``user_span_ns``); ``x`` the swept field (default:
    the first one the sweep recorded). Several swept fields: one line per combination of
    the others.
    """
    _require(df, ["topic", "metric", "source", "value", "repeat"], "lab.sweep()")
    fields = list(df.attrs.get("fields") or [])
    x = x or (fields[0] if fields else None)
    if x is None or x not in df.columns:
        raise ValueError(f"x={x!r}: name the swept field (a column of the sweep frame)")
    if spread not in ("p5-p95", "min-max"):
        raise ValueError(f"spread={spread!r} must be 'p5-p95' or 'min-max'")
    d = df[df["metric"] == metric]
    if metric != "rate_hz":
        d = d[d["source"] == (source or "user_span_ns")]
    if topic is not None:
        d = d[d["topic"] == topic]
    if d.empty:
        raise ValueError(
            f"no rows with metric={metric!r}"
            + (f" and topic={topic!r}" if topic else "")
            + f"; metrics here: {sorted(df['metric'].unique())}, topics: "
            + f"{sorted(df['topic'].unique())}"
        )
    lo_q, hi_q = (0.05, 0.95) if spread == "p5-p95" else (0.0, 1.0)
    others = [f for f in fields if f != x and f in d.columns]
    ax = _axes(ax, figsize=(6, 3.5))
    for key, g in d.groupby(["topic", *others], sort=True, observed=True):
        stats = g.groupby(x, sort=True)["value"].agg(
            median="median", lo=lambda v: v.quantile(lo_q), hi=lambda v: v.quantile(hi_q)
        )
        label = (
            key[0]
            if not others
            else f"{key[0]} " + ", ".join(f"{f}={v}" for f, v in zip(others, key[1:], strict=True))
        )
        xs = stats.index.to_numpy()
        (line,) = ax.plot(xs, stats["median"], marker="o", linewidth=1.4, label=label)
        ax.fill_between(xs, stats["lo"], stats["hi"], color=line.get_color(), alpha=0.2)
    ax.set_xlabel(x)
    unit = "messages / s" if metric == "rate_hz" else "ms"
    ax.set_ylabel(f"{metric} ({unit})")
    ax.set_title(f"{metric} vs {x} (median, {spread} across repeats)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    return ax


def _require(df: pd.DataFrame, columns: list[str], source: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"this plot needs the columns {columns} (as returned by {source}); missing {missing}"
        )
