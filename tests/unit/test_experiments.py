"""Experiment drivers and statistics without ezmsg: a fake bench stands in for the Lab."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pandas as pd
import pytest

from ezmsg_lab import LabError
from ezmsg_lab.experiments.compare import judge, run_compare
from ezmsg_lab.experiments.expect import ExpectationError, judge_latency, judge_rate
from ezmsg_lab.experiments.optimize import parse_space, run_optimize
from ezmsg_lab.experiments.plan import Conditions, grid, schedule
from ezmsg_lab.experiments.stats import (
    MetricSpec,
    median_ci,
    slope,
    verdict,
    window_frame,
    window_latency,
    window_rates,
)
from ezmsg_lab.experiments.sweep import run_sweep

T0 = 1_700_000_000.0
TOPIC = "P/U/INPUT"


def _history(rows):
    """A lab.metrics()-shaped frame of messages_total rows (t offset s, endpoint, total)."""
    return pd.DataFrame(
        {
            "time": pd.to_datetime([T0 + t for t, _, _, _ in rows], unit="s", utc=True),
            "topic": [topic for _, topic, _, _ in rows],
            "endpoint": [ep for _, _, ep, _ in rows],
            "status": ["ok"] * len(rows),
            "metric": ["messages_total"] * len(rows),
            "value": [float(v) for *_, v in rows],
        }
    )


def test_window_rates_are_counter_deltas_inside_the_window_only() -> None:
    rows = [(t / 10, TOPIC, "e1", 100 + 5 * t) for t in range(0, 31)]  # 50 Hz
    rows += [(t / 10, TOPIC, "e2", 7 * t) for t in range(0, 31)]  # 70 Hz, same topic
    rows += [(0.5, "P/U/OTHER", "e3", 10)]  # one poll only: no rate
    rates = window_rates(_history(rows), T0 + 1.0, T0 + 2.0)
    assert list(rates["topic"]) == [TOPIC]
    assert rates["value"].iloc[0] == pytest.approx(120.0)
    assert rates["n"].iloc[0] == 50 + 70  # messages counted in the window
    # Outside the window: nothing.
    assert window_rates(_history(rows), T0 + 10, T0 + 11).empty


def test_window_latency_and_the_tidy_frame() -> None:
    values = np.arange(1, 101, dtype=float)
    samples = pd.DataFrame(
        {
            "time": pd.to_datetime(T0 + values / 100, unit="s", utc=True),
            "topic": TOPIC,
            "metric": pd.Categorical(["user_span_ns"] * 100),
            "value_ms": values,
        }
    )
    lat = window_latency(samples, T0, T0 + 0.505)  # the first 50 samples
    assert lat["n"].iloc[0] == 50
    assert lat["min_ms"].iloc[0] == 1.0
    assert lat["p50_ms"].iloc[0] == pytest.approx(25.5)
    rates = pd.DataFrame({"topic": [TOPIC], "value": [50.0], "n": [25]})
    frame = window_frame(rates, lat, T0, T0 + 0.5)
    assert list(frame.columns) == ["topic", "metric", "source", "value", "n", "start", "end"]
    assert set(frame["metric"]) == {"rate_hz", "mean_ms", "min_ms", "p50_ms", "p95_ms", "p99_ms"}
    assert set(frame["source"]) == {"profiling", "user_span_ns"}
    assert frame.loc[frame["metric"] == "rate_hz", "n"].iloc[0] == 25


def test_metric_specs() -> None:
    spec = MetricSpec.parse("p95:DEMO/FILTER/INPUT_SIGNAL")
    assert (spec.metric, spec.topic, spec.source) == (
        "p95_ms",
        "DEMO/FILTER/INPUT_SIGNAL",
        "user_span_ns",
    )
    assert MetricSpec.parse("rate:X/Y").source == "profiling"
    assert MetricSpec.parse("p50[publish_delta_ns]:X/Y").source == "publish_delta_ns"
    assert str(MetricSpec.parse("p50[publish_delta_ns]:X/Y")) == "p50[publish_delta_ns]:X/Y"
    for bad in ("p95", "p42:X", "fast:X/Y", ":X"):
        with pytest.raises(LabError, match="METRIC:TOPIC"):
            MetricSpec.parse(bad)


def test_median_ci_is_the_sign_test_interval() -> None:
    assert math.isnan(median_ci([1.1] * 5)[0])  # 5 pairs cannot reach 95 %
    lo, hi, conf = median_ci([1.5, 1.2, 1.3, 1.4, 1.1, 1.25])
    assert (lo, hi) == (1.1, 1.5) and conf == pytest.approx(1 - 2 / 64)
    lo, hi, conf = median_ci(list(range(1, 21)))
    assert conf >= 0.95 and lo > 1 and hi < 20  # narrower than min..max with 20 values
    assert verdict(1.1, 1.5, lower_is_faster=True) == "b slower"
    assert verdict(0.5, 0.9, lower_is_faster=True) == "b faster"
    assert verdict(1.1, 1.5, lower_is_faster=False) == "b higher"
    assert verdict(0.9, 1.1, lower_is_faster=True) == "no verdict"
    assert verdict(math.nan, math.nan, lower_is_faster=True) == "no verdict"


def test_grid_and_schedule() -> None:
    points = grid({"a": [1, 2], "b": ["x", "y", "z"]})
    assert len(points) == 6 and points[0] == {"a": 1, "b": "x"} and points[-1] == {"a": 2, "b": "z"}
    for bad in ({}, {"a": 5}, {"a": "abc"}, {"a": []}):
        with pytest.raises(LabError):
            grid(bad)
    runs = schedule(4, 3, "random", seed=1)
    assert len(runs) == 12
    for r in range(3):  # each round covers every point once
        assert sorted(p for p, rep in runs if rep == r) == [0, 1, 2, 3]
    assert [p for p, _ in runs] != [0, 1, 2, 3] * 3  # shuffled (seed 1)
    assert schedule(4, 3, "random", seed=1) == runs  # and reproducible
    assert schedule(2, 2, "grid") == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert schedule(2, 2, "interleaved") == [(0, 0), (1, 0), (0, 1), (1, 1)]
    with pytest.raises(LabError, match="order"):
        schedule(2, 2, "sideways")
    with pytest.raises(LabError, match="repeats"):
        schedule(2, 0, "grid")
    with pytest.raises(LabError, match="measure"):
        Conditions.make(settle=0.1, measure=0)


class FakeBench:
    """A unit whose latency is 2 ms + 1 ms per unit of ``x``; records what was done."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.x = 0.0
        self.log: list[str] = []
        self.fail_at = fail_at
        self.measured = 0

    @contextlib.contextmanager
    def experiment(self, address, points, relaunch, trace):
        for p in points:
            if p.get("x", 0) < 0:
                raise LabError(f"x={p['x']} refused")
        saved = self.x
        self.log.append("start")
        try:
            yield
        finally:
            self.x = saved
            self.log.append("restored")

    def apply(self, address, point, relaunch):
        self.x = float(point["x"])
        self.log.append(f"x={self.x:g}")

    def measure(self, address, settle, measure, topics):
        self.measured += 1
        if self.fail_at is not None and self.measured == self.fail_at:
            raise RuntimeError("boom")
        lat = pd.DataFrame(
            [(TOPIC, "user_span_ns", *(2.0 + self.x,) * 5, 40)],
            columns=["topic", "source", "mean_ms", "min_ms", "p50_ms", "p95_ms", "p99_ms", "n"],
        )
        rates = pd.DataFrame({"topic": [TOPIC], "value": [50.0], "n": [50]})
        return window_frame(rates, lat, T0, T0 + measure)

    def progress(self, total, desc):
        class Bar:
            def update(self, n): ...
            def set_postfix_str(self, s, refresh=True): ...
            def close(self): ...

        return Bar()


COND = Conditions.make(settle=0, measure=0.5)


def test_sweep_frame_and_restore() -> None:
    bench = FakeBench()
    df = run_sweep(bench, "P/U", {"x": [0, 2, 4]}, COND, repeats=2, order="random", seed=3)
    assert list(df.columns)[:3] == ["x", "point", "repeat"]
    assert len(df) == 3 * 2 * 6  # points x repeats x (rate + 5 latency figures)
    assert bench.log[0] == "start" and bench.log[-1] == "restored" and bench.x == 0.0
    p50 = df[df["metric"] == "p50_ms"]
    k, _ = slope(p50["x"], p50["value"])
    assert k == pytest.approx(1.0)
    assert df.attrs["fields"] == ["x"]


def test_sweep_restores_after_an_error_and_checks_first() -> None:
    bench = FakeBench(fail_at=2)
    with pytest.raises(RuntimeError, match="boom"):
        run_sweep(bench, "P/U", {"x": [3, 5]}, COND, repeats=1, order="grid")
    assert bench.log[-1] == "restored" and bench.x == 0.0
    bench = FakeBench()
    with pytest.raises(LabError, match="refused"):
        run_sweep(bench, "P/U", {"x": [1, -1]}, COND, repeats=1, order="grid")
    assert bench.log == []  # nothing was applied


def test_compare_verdicts() -> None:
    res = run_compare(FakeBench(), "P/U", {"x": 0}, {"x": 3}, COND, repeats=6, metric=None)
    assert res.metric == f"p50:{TOPIC}"
    assert res.ratio == pytest.approx(5 / 2)
    assert res.verdict == "b slower" and res.ci[0] > 1
    assert set(res.frame["arm"]) == {"a", "b"} and res.frame["pair"].nunique() == 6
    assert "b slower" in repr(res) and "<table>" in res._repr_html_()
    few = run_compare(
        FakeBench(), "P/U", {"x": 0}, {"x": 3}, COND, repeats=3, metric="p95:" + TOPIC
    )
    assert few.verdict == "no verdict" and math.isnan(few.ci[0])
    same = run_compare(FakeBench(), "P/U", {"x": 1}, {"x": 1}, COND, repeats=6, metric=None)
    assert same.verdict == "no verdict"
    with pytest.raises(LabError, match="both arms"):
        judge(res.frame, MetricSpec.parse("p50:NOPE/X"), 0.05)


def test_optimize_with_optuna() -> None:
    bench = FakeBench()
    res = run_optimize(
        bench,
        "P/U",
        {"x": (0.0, 10.0)},
        f"p50:{TOPIC}",
        COND,
        n_trials=8,
        direction="minimize",
        seed=0,
    )
    assert list(res.trials.columns) == ["trial", "x", "value", "state"]
    assert len(res.trials) == 8 and (res.trials["state"] == "COMPLETE").all()
    assert res.best_value == pytest.approx(res.trials["value"].min())
    assert res.best_value == pytest.approx(2.0 + res.best_params["x"])
    assert bench.x == 0.0 and bench.log[-1] == "restored"
    # Both ends of the range were checked before the search.
    with pytest.raises(LabError, match="refused"):
        run_optimize(
            bench, "P/U", {"x": (-1.0, 1.0)}, f"p50:{TOPIC}", COND, n_trials=2, direction="minimize"
        )
    assert parse_space({"n": (1, 9)})[0].integer
    assert parse_space({"w": ["A", "B"]})[0].choices == ("A", "B")
    for bad in ({}, {"x": (2, 1)}, {"x": []}, {"x": "abc"}):
        with pytest.raises(LabError):
            parse_space(bad)


def test_expectations_name_the_figures_and_counts() -> None:
    rates = pd.DataFrame({"topic": [TOPIC], "value": [48.0], "n": [96]})
    lat = pd.DataFrame(
        [(TOPIC, "user_span_ns", 3.0, 1.0, 2.5, 6.0, 9.0, 120)],
        columns=["topic", "source", "mean_ms", "min_ms", "p50_ms", "p95_ms", "p99_ms", "n"],
    )
    rows = window_frame(rates, lat, T0, T0 + 2)
    assert judge_rate(rows, TOPIC, 50, 0.1, 2.0) == 48.0
    with pytest.raises(ExpectationError) as info:
        judge_rate(rows, TOPIC, 100, 0.1, 2.0)
    err = info.value
    assert isinstance(err, AssertionError) and isinstance(err, LabError)
    assert (
        "48 Hz" in str(err)
        and "100 Hz" in str(err)
        and "96 messages" in str(err)
        and "2 s" in str(err)
    )
    assert judge_latency(rows, TOPIC, {"p95_ms": 10}, "user_span_ns", 2.0)["p95_ms"] == 6.0
    with pytest.raises(ExpectationError, match=r"p95_ms 6 ms > 5 ms.*120 trace samples"):
        judge_latency(rows, TOPIC, {"p95_ms": 5, "p50_ms": 10}, "user_span_ns", 2.0)
    with pytest.raises(ExpectationError, match="no rate measured"):
        judge_rate(rows, "OTHER/TOPIC", 50, 0.1, 2.0)


def test_plots_sweep_draws_the_median_and_the_spread() -> None:
    import matplotlib

    matplotlib.use("Agg")
    from ezmsg_lab import plots

    df = run_sweep(FakeBench(), "P/U", {"x": [0, 2, 4]}, COND, repeats=3, order="random")
    ax = plots.sweep(df, metric="p50_ms", topic=TOPIC)
    (line,) = ax.get_lines()
    assert list(line.get_xdata()) == [0, 2, 4]
    assert list(line.get_ydata()) == [2.0, 4.0, 6.0]
    assert len(ax.collections) == 1  # the band
    assert ax.get_xlabel() == "x"
    with pytest.raises(ValueError, match="no rows"):
        plots.sweep(df, metric="p50_ms", topic="NOPE")
    with pytest.raises(ValueError, match="spread"):
        plots.sweep(df, spread="iqr")
