"""Duty-cycled tracing on a real pipeline: a fast process is traced in windows on a
schedule, its samples come from inside the windows only, and latency still arrives; a
slow one is traced continuously."""

from __future__ import annotations

import pandas as pd
import pytest

from ezmsg_lab.demo import ThroughputPipeline
from ezmsg_lab.feeds.traces import MIN_WINDOW_S, PERIOD_S

from ..conftest import wait_until
from ._units import BusyPipeline, TickerSettings

pytestmark = pytest.mark.integration


def test_a_fast_pipeline_is_traced_in_windows_and_only_inside_them(lab):
    lab.poll_hz = 5
    pipe = lab.launch(ThroughputPipeline(), name="TP")
    lab.wait_for_profile(10)
    assert wait_until(lambda: lab.profile()["rate_hz"].fillna(0).gt(1000).any(), 10)
    # At 0.1 % any rate above 1,000 endpoint events a second is traced in windows (at the
    # default 2 %, a rate slowed down by a loaded machine may fit continuous tracing).
    settings = lab.trace(budget=0.001)
    (pid,) = pipe.pids
    process = next(p for p, meta in settings.process_info.items() if meta.pid == pid)
    assert wait_until(lambda: settings.rate_known.get(process), 10), settings
    assert wait_until(lambda: settings.windows.get(process, 0) >= 4, 30), settings
    duty, window, period = (
        settings.duty[process],
        settings.window_s[process],
        settings.period_s[process],
    )
    assert 0 < duty < 1 and MIN_WINDOW_S <= window < period
    assert window / period == pytest.approx(duty)
    row = settings.processes.set_index("pid").loc[pid]
    assert row["duty"] == pytest.approx(duty) and row["windows"] >= 4
    assert f"on {duty:.0%}" in repr(settings)
    assert wait_until(lambda: len(lab.trace_samples()) > 0, 10)
    windows = settings.traced_windows
    windows = windows[windows["pid"] == pid].sort_values("start")
    lab.untrace()

    # On schedule: a new window no sooner than a period (never under PERIOD_S) after the
    # last (the Lab's schedule runs on the monotonic clock, these stamps on the wall clock).
    gaps = windows["start"].diff().dropna().dt.total_seconds()
    assert period >= PERIOD_S
    assert (gaps >= 0.9 * PERIOD_S).all(), (gaps.tolist(), period)
    # Samples only from inside the windows: ezmsg starts each one when the request
    # arrives (after ``start``) and ends it by itself ``window_s`` later. The slack
    # allows for delivery of the request on a loaded machine, and is far less than the
    # time tracing is off between windows.
    off_s = period - window
    slack = pd.Timedelta(seconds=min(0.5, off_s / 2))
    samples = lab.trace_samples()
    samples = samples[samples["pid"] == pid]
    assert len(samples) > 0
    inside = pd.Series(False, index=samples.index)
    for start, end in zip(windows["start"], windows["end"], strict=True):
        inside |= (samples["time"] >= start - pd.Timedelta(seconds=0.05)) & (
            samples["time"] <= end + slack
        )
    outside = samples[~inside]
    assert outside.empty, (outside["time"].tolist()[:5], windows.to_dict("records"))
    # Samples came from more than one window, and latency percentiles from them.
    hit = [
        ((samples["time"] >= s) & (samples["time"] <= e + slack)).any()
        for s, e in zip(windows["start"], windows["end"], strict=True)
    ]
    assert sum(hit) >= 2, hit
    lat = lab.latency(topics=["TP/COUNT/INPUT"], metrics=["lease_time_ns"])
    assert len(lat) == 1 and lat.iloc[0]["count"] > 0


def test_a_slow_pipeline_is_traced_continuously(lab):
    lab.poll_hz = 5
    lab.launch(BusyPipeline(TickerSettings(rate_hz=100.0)), name="BUSY")
    lab.wait_for_profile(10)
    settings = lab.trace(topics=["BUSY/BUSY/INPUT"], metrics=["user_span_ns"])
    assert wait_until(lambda: settings.rate_known and all(settings.rate_known.values()), 10)
    assert all(d == 1.0 for d in settings.duty.values()), settings.duty
    assert "on " not in repr(settings)
    assert wait_until(lambda: len(lab.trace_samples()) >= 50, 15)
