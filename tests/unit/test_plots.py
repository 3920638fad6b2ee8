"""Plots draw what the DataFrames hold (Agg backend, no display)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from ezmsg_lab import plots


def _metrics() -> pd.DataFrame:
    t = pd.date_range("2026-01-01", periods=5, freq="1s", tz="UTC")
    rows = []
    for topic, rate in (("G/A/OUT", 100.0), ("G/B/OUT", 50.0)):
        for i, ts in enumerate(t):
            rows.append((ts, topic, "publisher", "rate_hz", np.nan if i == 0 else rate))
            rows.append((ts, topic, "publisher", "messages_total", i * rate))
    return pd.DataFrame(rows, columns=["time", "topic", "kind", "metric", "value"])


def test_rates_draws_one_line_per_topic_with_gaps():
    ax = plots.rates(_metrics())
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"G/A/OUT", "G/B/OUT"}
    y = np.asarray(lines["G/A/OUT"].get_ydata(), dtype=float)
    assert np.isnan(y[0]) and (y[1:] == 100.0).all()


def test_latency_hist_marks_percentiles_per_topic():
    rng = np.random.default_rng(0)
    values = rng.uniform(1, 3, 500)
    df = pd.DataFrame(
        {"topic": ["G/B/IN"] * 500, "metric": ["user_span_ns"] * 500, "value_ms": values}
    )
    axes = plots.latency_hist(df)
    ax = np.ravel(axes)[0]
    assert ax.get_title() == "G/B/IN"
    marks = sorted(line.get_xdata()[0] for line in ax.get_lines())
    assert marks == pytest.approx(sorted(np.percentile(values, [50, 99])))


def test_latency_summary_and_column_errors():
    lat = pd.DataFrame(
        {
            "topic": ["a", "b"],
            "metric": ["user_span_ns"] * 2,
            "p50_ms": [1.0, 2.0],
            "p95_ms": [2.0, 3.0],
            "p99_ms": [3.0, 4.0],
        }
    )
    ax = plots.latency_summary(lat)
    assert len(ax.patches) == 6
    with pytest.raises(ValueError, match="lab.metrics"):
        plots.rates(pd.DataFrame({"x": [1]}))
