"""Tracing on the paths users take: right after a launch, and when the trace stream or a
renewal fails."""

from __future__ import annotations

import os
import signal

import pandas as pd
import pytest

from ezmsg_lab import Lab
from ezmsg_lab.demo import ThroughputPipeline
from ezmsg_lab.feeds.traces import (
    DEFAULT_METRICS,
    TRACE_COST_S,
    choose_sample_mod,
    kernel_sample_mod,
)

from ..conftest import wait_until
from ._script_graph import ezmsg_serve

pytestmark = [pytest.mark.integration, pytest.mark.interpreter]


def test_trace_right_after_launch_stays_within_its_budget(lab):
    """No rate is known yet: the Lab must not trace every message of a free-running
    pipeline (20-70 k msg/s here), then it sets sampling from the measured rate."""
    lab.poll_hz = 5
    lab.launch(ThroughputPipeline(), name="TP")
    settings = lab.trace(budget=0.05)  # before the first poll has a rate
    assert settings.sample_mod, "tracing was set in no process"
    assert all(mod > 1 for mod in settings.sample_mod.values()), settings.sample_mod
    # Traced publish events per second, while tracing is on, stay near what the budget
    # allows: counted over the first window (tracing is on in windows at such a rate).
    allowed_per_s = 0.05 / TRACE_COST_S
    assert wait_until(lambda: len(lab.trace_samples()) > 0, 10)
    flood = next(p for p, m in lab.tracing.process_info.items() if "TP/FLOOD" in m.units)
    windows = lab.tracing.traced_windows
    first = windows[windows["process"] == flood].iloc[0]
    end = first["end"] + pd.Timedelta(seconds=0.1)  # the request's delivery
    assert wait_until(lambda: pd.Timestamp.now(tz="UTC") > end + pd.Timedelta(seconds=0.5), 10)
    samples = lab.trace_samples(metrics=["publish_delta_ns"])
    samples = samples[(samples["topic"] == "TP/FLOOD/OUTPUT") & (samples["time"] <= end)]
    on_s = (end - first["start"]).total_seconds()
    assert on_s > 0.3, first.to_dict()
    assert len(samples) / on_s < 1.5 * allowed_per_s, (len(samples), on_s)
    # Once the poller has the rate, sampling follows it.
    assert wait_until(lambda: all(lab.tracing.rate_known.values()), 10), lab.tracing
    # (every message a process handles costs: its publishers' and subscribers' rates;
    # the rate moves while tracing starts, and on a shared machine: a factor of 3)
    # The kernel's own cap (KERNEL_SAMPLES_PER_S over all processes) may raise it more.
    rates = lab.profile(include_gone=False).groupby("process")["rate_hz"].sum()
    n_metrics = len(lab.tracing.metrics or DEFAULT_METRICS)
    cap_high = kernel_sample_mod(float(rates.sum()) * 3, n_metrics)
    for process, mod in lab.tracing.sample_mod.items():
        rate = float(rates[process])
        low, high = choose_sample_mod(rate / 3, 0.05), choose_sample_mod(rate * 3, 0.05)
        assert low <= mod <= max(high, cap_high), (mod, rate, cap_high)
    assert lab.tracing.status == "tracing" and lab.tracing.reason is None


def test_renewal_failure_and_stream_end_show_in_tracing():
    with ezmsg_serve() as (server, port), Lab.attach(f"127.0.0.1:{port}") as lab:
        pipe = lab.launch(ThroughputPipeline(), name="TP")
        lab.trace(ttl=0.9)  # renewed every 0.3 s
        (pid,) = pipe.pids
        os.kill(pid, signal.SIGSTOP)  # the process cannot answer the renewal
        try:
            assert wait_until(lambda: lab.tracing.failed, 10), lab.tracing
            (reason,) = lab.tracing.failed.values()
            assert reason
        finally:
            os.kill(pid, signal.SIGCONT)
        assert wait_until(lambda: not lab.tracing.failed, 10), lab.tracing
        assert lab.tracing.status == "tracing"

        # The GraphServer goes away: the trace stream ends and lab.tracing says so.
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)
        assert wait_until(lambda: lab.tracing is not None and lab.tracing.status == "failed", 10)
        assert "trace stream" in lab.tracing.reason or "renewing" in lab.tracing.reason
