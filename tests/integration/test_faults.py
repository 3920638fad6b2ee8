"""Faults with real processes: a unit SIGKILLed, a unit stuck in a blocking call, the
GraphServer killed, and the GraphServer restarted at the same address.

Each test records what it tried for the reliability table (``make reliability``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import psutil
import pytest

from ezmsg_lab import Lab, LabConnectionError, LabError, LabTimeoutError
from ezmsg_lab.demo import DemoPipeline

from ..conftest import live_children, port_is_listening, wait_until
from ._units import BusyPipeline, StuckPipeline, TickerSettings

pytestmark = [pytest.mark.integration, pytest.mark.interpreter]

# What "no call hangs" means here: the call's own timeout plus a margin for a loaded
# machine (the margin is the scheduler's, not the Lab's).
MARGIN_S = 3.0


def _bounded(fn, limit: float) -> tuple[object, float]:
    """Call ``fn``; return (its result or the LabError it raised, seconds taken) and
    fail if it took longer than ``limit``."""
    t0 = time.monotonic()
    try:
        out: object = fn()
    except LabError as exc:
        out = exc
    elapsed = time.monotonic() - t0
    assert elapsed < limit, f"{fn} took {elapsed:.1f} s (bound {limit:.1f} s)"
    return out, elapsed


def _published(lab: Lab, unit: str) -> int:
    prof = lab.profile(include_gone=False)
    rows = prof[(prof["unit"] == unit) & (prof["kind"] == "publisher")]
    return int(rows["messages_total"].max()) if len(rows) else -1


def _pid_of(pipeline, unit: str) -> int:
    return next(p.pid for p in pipeline.processes if unit in p.units)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# ---------------------------------------------------------------- a unit process killed
def test_unit_process_sigkilled_leaves_the_profile_within_two_polls(figures):
    with Lab(poll_hz=2, timeout=3.0) as lab:
        victim = lab.launch(BusyPipeline(TickerSettings(rate_hz=200)), name="VICTIM")
        other = lab.launch(DemoPipeline(), name="OTHER")
        assert wait_until(lambda: _published(lab, "OTHER/SOURCE") > 0, 20)
        assert wait_until(lambda: _published(lab, "VICTIM/TICKER") > 0, 20)
        pid = _pid_of(victim, "VICTIM/BUSY")
        endpoints = set(lab.profile().query(f"pid == {pid}")["endpoint"])
        assert endpoints
        killed_at = time.time()
        os.kill(pid, signal.SIGKILL)

        def gone() -> bool:
            prof = lab.profile()
            rows = prof[prof["pid"] == pid]
            return len(rows) > 0 and set(rows["status"].astype(str)) == {"gone"}

        assert wait_until(gone, 10), lab.profile()
        # Polls that still listed it (missing) after the kill; then it is gone. (Polls
        # the Lab adds itself on a topology change count too.)
        history = lab.metrics(since=pd.Timestamp(killed_at, unit="s", tz="UTC"))
        listed = history[history["endpoint"].isin(endpoints)]
        polls = listed["time"].nunique()
        assert polls <= 2, f"the killed process stayed listed for {polls} polls: {listed}"
        assert pid not in {p.pid for p in lab.snapshot().processes.values()}
        # Everything else carries on: rates, settings, calls, the victim's own publisher.
        before = {u: _published(lab, u) for u in ("OTHER/SOURCE", "VICTIM/TICKER")}
        assert wait_until(lambda: all(_published(lab, u) > n for u, n in before.items()), 10), (
            before
        )
        result, _ = _bounded(lambda: lab.set("OTHER/FILTER", cutoff_hz=30.0), 3.0 + MARGIN_S)
        assert not isinstance(result, Exception), result
        cutoff = lab.settings("OTHER/FILTER").set_index("field").loc["cutoff_hz", "value"]
        assert cutoff == 30.0
        _bounded(lab.ping, 3.0 + MARGIN_S)
        exit_codes = {p.pid: p.exitcode for p in victim.processes}
        assert exit_codes[pid] == -signal.SIGKILL
        _bounded(lambda: victim.stop(timeout=5.0), 5.0 + MARGIN_S)
        assert other.running
    assert wait_until(lambda: not live_children(), 10), live_children()
    figures(what="unit process SIGKILLed mid-run", tried=1, polls_to_gone=polls)


# ---------------------------------------------------------------- a unit stuck in a call
def test_unit_stuck_in_time_sleep_keeps_calls_bounded_and_stops(figures):
    with Lab(poll_hz=5, timeout=2.0) as lab:
        stuck = lab.launch(StuckPipeline(TickerSettings(rate_hz=50)), name="STUCK")
        demo = lab.launch(DemoPipeline(), name="DEMO")
        sleeper = _pid_of(stuck, "STUCK/SLEEPER")
        # Its process answers nothing once the handler sleeps: shown as missing, not 0 Hz.
        assert wait_until(
            lambda: (
                "missing" in set(lab.profile().query(f"pid == {sleeper}")["status"].astype(str))
            ),
            15,
        ), lab.profile()
        calls = {
            "snapshot": lab.snapshot,
            "ping": lab.ping,
            "profile": lab.profile,
            "settings": lab.settings,
            "set": lambda: lab.set("DEMO/FILTER", cutoff_hz=30.0),
            "trace": lambda: lab.trace(duration=0.5),
        }
        worst = 0.0
        for name, call in calls.items():
            out, elapsed = _bounded(call, 2.0 + MARGIN_S)
            worst = max(worst, elapsed)
            assert not isinstance(out, Exception) or isinstance(out, LabTimeoutError), (name, out)
        lab.untrace()
        t0 = time.monotonic()
        stuck.stop(timeout=3.0)
        stop_s = time.monotonic() - t0
        assert stop_s < 3.0 + MARGIN_S, stop_s
        assert not _alive(sleeper)
        assert demo.running
    assert wait_until(lambda: not live_children(), 10), live_children()
    figures(
        what="unit stuck in time.sleep",
        tried=len(calls) + 1,
        worst_call_s=round(worst, 2),
        stop_s=round(stop_s, 2),
    )


# ---------------------------------------------------------------- the GraphServer
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(port: int) -> subprocess.Popen:
    exe = os.path.join(os.path.dirname(sys.executable), "ezmsg")
    proc = subprocess.Popen(
        [exe, "serve", "--address", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if not wait_until(lambda: port_is_listening(port), 20):
        proc.kill()
        raise AssertionError("ezmsg serve did not start")
    return proc


@pytest.fixture
def server_port():
    """A free port, and every `ezmsg serve` the test started on it killed at the end."""
    port = _free_port()
    started: list[subprocess.Popen] = []
    yield port, started
    for proc in started:
        proc.kill()
        proc.wait(10)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_killed_graphserver_fails_every_call_and_close_still_stops_everything(server_port, figures):
    port, started = server_port
    started.append(_serve(port))
    lab = Lab.attach(f"127.0.0.1:{port}", timeout=2.0, poll_hz=5)
    try:
        demo = lab.launch(DemoPipeline(), name="DEMO")
        pids = demo.pids
        lab.wait_for_profile(15)
        started[0].send_signal(signal.SIGKILL)
        started[0].wait(10)
        assert wait_until(lambda: lab.connection.state == "disconnected", 5)
        calls = {
            "snapshot": lab.snapshot,
            "ping": lab.ping,
            "set": lambda: lab.set("DEMO/FILTER", cutoff_hz=20.0),
            "tap": lambda: lab.tap("DEMO/SOURCE/OUTPUT_SIGNAL"),
            "trace": lambda: lab.trace(duration=1.0),
            "untrace": lab.untrace,
            "launch": lambda: lab.launch(DemoPipeline(), name="DEMO2"),
            "reconnect": lab.reconnect,
        }
        for name, call in calls.items():
            out, _ = _bounded(call, 2.0 + MARGIN_S)
            if name == "untrace":  # nothing traced: nothing to do, no call made
                continue
            assert isinstance(out, LabConnectionError), (name, out)
            assert str(port) in str(out), (name, out)
        # The feeds stopped by themselves, and the gap is marked.
        for task in (lab._poller._task, *lab._topology._tasks, lab._settings_feed._task):
            assert task is not None and wait_until(task.done, 5), task
        assert set(lab.profile()["status"].astype(str)) == {"disconnected"}
        events = lab.topology_events()
        assert events["event"].iloc[-1] == "DISCONNECTED"
        assert "disconnected" in repr(lab)
        t0 = time.monotonic()
        lab.close(timeout=5.0)
        close_s = time.monotonic() - t0
    finally:
        lab.close()
    assert close_s < 5.0 + MARGIN_S + 5.0, close_s
    assert wait_until(lambda: not any(_alive(p) for p in pids), 10)
    assert wait_until(lambda: not live_children(), 10), live_children()
    figures(what="GraphServer SIGKILLed", tried=len(calls), close_s=round(close_s, 2))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_restarted_graphserver_reconnects_and_marks_the_gap(server_port, figures, capfd):
    port, started = server_port
    started.append(_serve(port))
    lab = Lab.attach(f"127.0.0.1:{port}", timeout=2.0, poll_hz=5)
    try:
        first = lab.launch(DemoPipeline(), name="DEMO")
        lab.wait_for_profile(15)
        started[0].send_signal(signal.SIGKILL)
        started[0].wait(10)
        assert wait_until(lambda: lab.connection.state == "disconnected", 5)
        restarted_at = time.time()
        started.append(_serve(port))
        assert wait_until(lambda: lab.connection.state == "connected", 15), lab.connection
        status = lab.connection
        assert status.reconnects == 1 and status.reconnected_at >= restarted_at
        assert "reconnected 1x" in repr(lab)
        err = capfd.readouterr().err
        assert "lost the GraphServer" in err and "reconnected to the GraphServer" in err
        # The old units are stuck on the dead server (ezmsg): stopping them still works.
        first.stop(timeout=5.0)
        # The feeds resume: a pipeline launched now gets rates and settings.
        second = lab.launch(DemoPipeline(), name="DEMO2")
        assert wait_until(lambda: _published(lab, "DEMO2/SOURCE") > 0, 20), lab.profile()
        lab.set("DEMO2/FILTER", cutoff_hz=25.0)
        hist = lab.settings_history("DEMO2/FILTER")
        assert (hist["field"] == "cutoff_hz").any() and 25.0 in set(hist["new"])
        # The gap is in the history: disconnected rows, then new series.
        metrics = lab.metrics()
        gap = metrics[metrics["status"].astype(str) == "disconnected"]
        assert len(gap) and gap["time"].max() < metrics["time"].max()
        events = list(lab.topology_events()["event"])
        assert events.index("DISCONNECTED") < events.index("RECONNECTED") < len(events) - 1
        # A second restart, reconnected on demand this time.
        lab._reconnector.auto = False
        started[1].send_signal(signal.SIGKILL)
        started[1].wait(10)
        second.stop(timeout=5.0)
        assert wait_until(lambda: lab.connection.state == "disconnected", 5)
        started.append(_serve(port))
        assert lab.reconnect().state == "connected"
        assert lab.connection.reconnects == 2
        lab.snapshot()
    finally:
        lab.close()
    servers = {p.pid for p in started}
    assert wait_until(lambda: not [p for p in live_children() if p.pid not in servers], 10)
    figures(what="GraphServer restarted at the same address", tried=2, reconnected=2)
