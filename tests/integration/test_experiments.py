"""Sweeps, comparisons, searches and expectations on a real pipeline (BusyPipeline:
source -> Busy -> Tally in three processes, 50 messages/s; Busy spins busy_ms per message)."""

from __future__ import annotations

import signal
import threading
import time

import numpy as np
import psutil
import pytest

from ezmsg_lab import (
    ExpectationError,
    Lab,
    LabError,
    SettingsRefusedError,
    SettingsValidationError,
)
from ezmsg_lab.demo import BusyPipeline
from ezmsg_lab.experiments.stats import slope

from ..conftest import live_children, wait_until

pytestmark = pytest.mark.integration

SPAN = "BUSY/BUSY/INPUT"  # Busy's handler: its user span is keyed to its input stream
SOURCE = "BUSY/SOURCE/OUTPUT_SIGNAL"


@pytest.fixture(scope="module")
def busy_lab():
    lab = Lab()
    try:
        lab.launch(BusyPipeline(), name="BUSY")
        lab.wait_for_profile()
        yield lab
    finally:
        lab.close()


def busy_ms(lab: Lab) -> float:
    s = lab.settings("BUSY/BUSY")
    return float(s.loc[s["field"] == "busy_ms", "value"].iloc[0])


@pytest.fixture
def sigint_raises():
    """SIGINT raises KeyboardInterrupt, as in a kernel (see test_failures.py)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_sweep_measures_the_known_slope_and_restores(busy_lab):
    lab = busy_lab
    seen = []
    unsubscribe = lab.experiments.subscribe(lambda kind, frame: seen.append((kind, len(frame))))
    try:
        df = lab.sweep("BUSY/BUSY", {"busy_ms": [0, 1, 2, 3]}, settle=0.3, measure=1.0, trace=True)
    finally:
        unsubscribe()
    assert list(df.columns) == [
        "busy_ms", "point", "repeat", "topic", "metric", "source", "value", "n", "start", "end",
    ]  # fmt: skip
    assert sorted(df["busy_ms"].unique()) == [0, 1, 2, 3]
    assert not df["topic"].str.endswith("INPUT_SETTINGS").any()
    rates = df[(df["metric"] == "rate_hz") & (df["topic"] == SOURCE)]
    assert len(rates) == 4 and (rates["n"] > 0).all()
    assert rates["value"].between(35, 65).all(), rates
    # The span a message costs when nothing preempts it: the minimum of each window.
    span = df[(df["metric"] == "min_ms") & (df["topic"] == SPAN) & (df["source"] == "user_span_ns")]
    assert len(span) == 4 and (span["n"] >= 10).all(), span
    k, _ = slope(span["busy_ms"], span["value"])
    assert k == pytest.approx(1.0, rel=0.1), span[["busy_ms", "value", "n"]]
    assert busy_ms(lab) == 0.0  # put back
    assert lab.tracing is None  # the sweep turned tracing on, and off again
    assert lab.poll_hz == 1.0
    assert seen == [("sweep", len(df))]


def test_sweep_checks_the_whole_spec_before_changing_anything(busy_lab):
    lab = busy_lab
    history = len(lab.settings_history())
    with pytest.raises(LabError, match="No unit 'BUSY/BUZY'"):
        lab.sweep("BUSY/BUZY", {"busy_ms": [1]}, settle=0, measure=0.1)
    with pytest.raises(SettingsValidationError, match="busy_mss"):
        lab.sweep("BUSY/BUSY", {"busy_mss": [1]}, settle=0, measure=0.1)
    with pytest.raises(SettingsValidationError, match="-1"):
        lab.sweep("BUSY/BUSY", {"busy_ms": [1, 2, -1]}, settle=0, measure=0.1)
    with pytest.raises(SettingsRefusedError, match="relaunch=True"):
        lab.sweep("BUSY/SINK", {"keep_last": [1, 2]}, settle=0, measure=0.1)
    with pytest.raises(LabError, match="order"):
        lab.sweep("BUSY/BUSY", {"busy_ms": [1]}, settle=0, measure=0.1, order="up")
    assert len(lab.settings_history()) == history  # nothing was sent
    assert busy_ms(lab) == 0.0


def test_sweep_restores_after_an_exception(busy_lab, monkeypatch):
    lab = busy_lab
    measure = lab.experiments.measure
    calls = []

    def failing(*args, **kwargs):
        calls.append(busy_ms(lab))
        if len(calls) == 2:
            raise RuntimeError("measurement failed")
        return measure(*args, **kwargs)

    monkeypatch.setattr(lab.experiments, "measure", failing)
    with pytest.raises(RuntimeError, match="measurement failed"):
        lab.sweep("BUSY/BUSY", {"busy_ms": [1, 3]}, settle=0, measure=0.2, order="grid")
    assert calls == [1.0, 3.0]  # the second point was in effect when it failed
    assert busy_ms(lab) == 0.0


def test_sweep_restores_after_an_interrupt(busy_lab, sigint_raises):
    lab = busy_lab

    def interrupt_once_set() -> None:
        if wait_until(lambda: busy_ms(lab) == 3.0, 20):
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    thread = threading.Thread(target=interrupt_once_set, daemon=True)
    thread.start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        lab.sweep("BUSY/BUSY", {"busy_ms": [3]}, settle=30, measure=1, repeats=1)
    thread.join(5)
    assert time.monotonic() - t0 < 20  # interrupted in its settle, not run out
    assert busy_ms(lab) == 0.0


def test_compare_gives_a_verdict_only_when_the_pairs_allow(busy_lab):
    lab = busy_lab
    res = lab.compare(
        "BUSY/BUSY",
        a={"busy_ms": 0},
        b={"busy_ms": 3},
        repeats=6,
        settle=0.2,
        measure=0.5,
        metric=f"min:{SPAN}",
        trace=True,
    )
    assert res.verdict == "b slower", res
    assert len(res.ratios) == 6 and res.ci[0] > 1
    runs = res.frame.drop_duplicates(["pair", "arm"])
    assert list(runs["arm"]) == ["a", "b"] * 6  # interleaved: A B A B ...
    assert list(res.frame.columns[:2]) == ["arm", "pair"]
    assert "b slower" in repr(res)
    assert busy_ms(lab) == 0.0
    few = lab.compare(
        "BUSY/BUSY", a={"busy_ms": 0}, b={"busy_ms": 3}, repeats=2, settle=0.1, measure=0.3,
        metric=f"rate:{SOURCE}",
    )  # fmt: skip
    assert few.verdict == "no verdict" and np.isnan(few.ci[0])


def test_optimize_drives_optuna_and_restores(busy_lab):
    lab = busy_lab
    res = lab.optimize(
        "BUSY/BUSY",
        {"busy_ms": (0.0, 5.0)},
        f"min:{SPAN}",
        n_trials=3,
        settle=0.2,
        measure=0.5,
        trace=True,
    )
    assert list(res.trials.columns) == ["trial", "busy_ms", "value", "state"]
    assert len(res.trials) == 3
    done = res.trials[res.trials["state"] == "COMPLETE"]
    assert res.best_value == pytest.approx(done["value"].min())
    best = done.loc[done["value"].idxmin()]
    assert res.best_params["busy_ms"] == pytest.approx(best["busy_ms"])
    assert set(res.frame["trial"]) == {0, 1, 2}
    assert busy_ms(lab) == 0.0


def test_expectations(busy_lab):
    lab = busy_lab
    rate = lab.expect_rate(SOURCE, 50, tol=0.25, window=1.0)
    assert 37 < rate < 63
    with pytest.raises(ExpectationError) as info:
        lab.expect_rate(SOURCE, 500, tol=0.1, window=1.0)
    assert isinstance(info.value, AssertionError)
    assert "expected 500 Hz" in str(info.value) and "messages" in str(info.value)
    assert info.value.n > 10 and info.value.window == 1.0
    figures = lab.expect_latency(SPAN, p95_ms=1000.0, window=1.0)
    assert figures["p50_ms"] < 1000
    with pytest.raises(ExpectationError, match=r"p50_ms .* > 1e-06 ms.*trace samples"):
        lab.expect_latency(SPAN, p50_ms=1e-6, window=1.0)
    assert lab.tracing is None


def test_relaunch_sweep_rebuilds_the_pipeline_and_leaves_nothing_behind():
    with Lab() as lab:
        first = lab.launch(BusyPipeline(), name="BUSY")
        with pytest.raises(LabError, match=r"configure\(\).*'busy.busy_ms'"):
            lab.sweep("BUSY/BUSY", {"busy_ms": [1]}, settle=0, measure=0.1, relaunch=True)
        assert first.running  # refused before anything changed
        df = lab.sweep(
            "BUSY",
            {"rate_hz": [25.0, 40.0]},
            settle=1.0,
            measure=1.0,
            relaunch=True,
            topics=[SOURCE],
            order="grid",
        )
        rates = df[df["metric"] == "rate_hz"].set_index("rate_hz")["value"]
        # Fresh processes on a loaded machine: within 20 % of what each launch set.
        assert rates[25.0] == pytest.approx(25, rel=0.2), rates
        assert rates[40.0] == pytest.approx(40, rel=0.2), rates
        running = [p for p in lab.pipelines if p.running]
        assert [p.name for p in running] == ["BUSY"] and running[0] is not first
        src = lab.settings("BUSY/SOURCE")
        assert src.loc[src["field"] == "fs", "value"].iloc[0] == 500.0  # launched as before
        # Every pipeline of the sweep (the first, one per point, the restored one) left
        # no process behind but the running one's (unit processes may be the fork
        # server's children, which live_children() counts as its own).
        pids = {pid for p in lab.pipelines for pid in p.pids}
        assert len(lab.pipelines) == 4 and len(pids) == 12
        current = set(running[0].pids)
        assert wait_until(lambda: {p for p in pids if _alive(p)} == current, 10)
    assert wait_until(lambda: not any(_alive(p) for p in pids), 10)
    assert wait_until(lambda: not live_children(), 10), live_children()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_the_async_twin_sweeps_without_blocking_the_event_loop(busy_lab):
    import asyncio

    async def main():
        ticks = 0

        async def tick():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.05)

        ticker = asyncio.create_task(tick())
        df = await busy_lab.aio.sweep("BUSY/BUSY", {"busy_ms": [1]}, settle=0, measure=0.4)
        ticker.cancel()
        return df, ticks

    df, ticks = asyncio.run(main())
    assert list(df["busy_ms"].unique()) == [1] and ticks >= 5
    assert busy_ms(busy_lab) == 0.0
