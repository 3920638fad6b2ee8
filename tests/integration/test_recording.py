"""Recordings with real ezmsg: round trip, a recording process killed mid-run, replay
through the demo filter, and the trace export of a real run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ezmsg_lab import Lab, RecordingError, load
from ezmsg_lab.demo import DemoPipeline, Filter, FilterSettings, design_fir
from ezmsg_lab.model.tap_convert import to_data
from ezmsg_lab.recording.chrome_trace import track_order_ok
from ezmsg_lab.recording.tables import from_parquet_bytes, to_parquet_bytes

from ..conftest import wait_until

pytestmark = pytest.mark.integration

SOURCE = "DEMO/SOURCE/OUTPUT_SIGNAL"
FILTERED = "DEMO/FILTER/OUTPUT_SIGNAL"
EVENTS = "DEMO/DETECTOR/OUTPUT_EVENTS"


def stored(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as a recording keeps it (values that are not plain data as JSON data)."""
    return from_parquet_bytes(to_parquet_bytes(frame), "live")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    path = tmp_path_factory.mktemp("rec") / "run.ezrec"
    lab = Lab(poll_hz=10)
    try:
        lab.launch(DemoPipeline(), name="DEMO")
        lab.wait_for_profile()
        lab.trace(duration=1.0, wait=True)  # finished: the store holds no more samples later
        tap = lab.tap(FILTERED, window=300)
        with lab.record(path, taps=[tap, SOURCE, EVENTS], interval=0.3) as rec:
            lab.set("DEMO/FILTER", cutoff_hz=40.0)
            assert wait_until(lambda: rec.chunks >= 4 and tap.received >= 100, 20), rec
            rec.add_result("sweep", pd.DataFrame({"cutoff_hz": [20.0, 40.0], "p99_ms": [1.0, 2.0]}))
        yield lab, load(path), tap
    finally:
        lab.close()


def test_every_frame_comes_back_equal(recorded):
    lab, rec, _ = recorded
    assert rec.complete and rec.chunks >= 4
    metrics = rec.metrics()
    live = lab.metrics()
    live = live[live["time"] <= metrics["time"].max()].reset_index(drop=True)
    pd.testing.assert_frame_equal(metrics, live)
    pd.testing.assert_frame_equal(rec.trace_samples(), lab.trace_samples())
    pd.testing.assert_frame_equal(rec.latency(), lab.latency())
    assert len(rec.latency()) > 0
    pd.testing.assert_frame_equal(rec.logs(), lab.logs())
    pd.testing.assert_frame_equal(rec.settings_history(), stored(lab.settings_history()))
    assert (rec.settings_history()["new"] == 40.0).any()
    pd.testing.assert_frame_equal(rec.settings(), stored(lab.settings()))
    pd.testing.assert_frame_equal(rec.topology_events(), stored(lab.topology_events()))
    topo, live_topo = rec.topology(), lab.topology()
    for name in ("units", "collections", "topics", "edges", "processes"):
        pd.testing.assert_frame_equal(getattr(topo, name), stored(getattr(live_topo, name)))
    assert list(rec.profile().columns) == list(lab.profile().columns)
    assert set(rec.profile()["topic"]) == set(lab.profile()["topic"])
    assert list(rec.results("sweep")["cutoff_hz"]) == [20.0, 40.0]
    env = rec.environment
    assert env["ezmsg"] and env["python"] and env["hosts"]


def test_tapped_messages_come_back_as_the_same_xarray(recorded):
    _, rec, tap = recorded
    data = rec.tap_data(FILTERED)
    n = len(rec.tap_items(FILTERED))
    xr.testing.assert_identical(data, to_data(tap.buffered_items()[:n], FILTERED))
    assert data.sizes["time"] >= 100 * 10
    assert rec.tap_data(SOURCE).dims == ("time", "ch")
    events = rec.tap_data(EVENTS)
    assert {"received", "label", "seq"} <= set(events.columns) and len(events)


def test_the_static_graph_draws_the_recorded_topology(recorded):
    _, rec, _ = recorded
    graph = rec.graph()
    assert "DEMO/FILTER" in graph.state["units"]
    graph.close()


def test_trace_export_of_a_real_run_is_valid_and_has_flows(recorded, tmp_path):
    lab, rec, _ = recorded
    for path in (rec.export_trace(tmp_path / "rec.json"), lab.export_trace(tmp_path / "lab.json")):
        doc = json.loads(Path(path).read_text())
        events = doc["traceEvents"]
        assert track_order_ok(events)
        spans = [e for e in events if e["ph"] == "X"]
        assert spans and all(e["dur"] >= 0 and e["ts"] >= 0 for e in spans)
        assert {e["name"] for e in events if e["ph"] == "M"} == {"process_name", "thread_name"}
        assert doc["otherData"]["flows"] > 0


def test_replay_refuses_what_it_cannot_send(recorded):
    lab, rec, _ = recorded
    with pytest.raises(RecordingError, match="not an input stream"):
        lab.replay(rec, SOURCE, into="DEMO/NOPE/INPUT")
    with pytest.raises(RecordingError, match="not AxisArrays"):
        lab.replay(rec, EVENTS, into="DEMO/FILTER/INPUT_SIGNAL")
    with pytest.raises(ValueError, match="pace"):
        lab.replay(rec, SOURCE, into="DEMO/FILTER/INPUT_SIGNAL", pace="slow")
    with pytest.raises(RecordingError, match="exists"):
        lab.record(rec.path)


def test_replay_through_the_filter_twice_gives_identical_outputs(recorded):
    lab, rec, user_tap = recorded
    # Less load on the 2 shared cores: the kernel's taps are leaky and must not drop here.
    user_tap.close()
    lab.pipelines[0].stop()
    inputs = [it.message for it in rec.tap_items(SOURCE)][:150]
    outputs = []
    for run in range(2):
        name = f"REPLAY{run}"
        pipeline = lab.launch({"FILTER": Filter(FilterSettings())}, name=name)
        try:
            tap = lab.tap(f"{name}/FILTER/OUTPUT_SIGNAL", window=300, max_queue=24)
            into = f"{name}/FILTER/INPUT_SIGNAL"
            sent = lab.replay(rec, SOURCE, into=into, pace="recorded", count=len(inputs))
            assert sent == len(inputs)
            assert wait_until(lambda tap=tap, sent=sent: tap.received >= sent, 20), tap
            assert tap.dropped == 0
            outputs.append(tap.messages())
            tap.close()
        finally:
            pipeline.stop()
    a, b = outputs
    assert len(a) == len(b) == len(inputs)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.data, y.data)
        assert x.axes["time"].offset == y.axes["time"].offset
    # And what the filter computes offline from the recorded input.
    s = FilterSettings()
    h = design_fir(s.cutoff_hz, 1000.0, s.taps, s.window, s.kind)
    x = np.concatenate([np.zeros(len(h) - 1)] + [m.data[:, 0] for m in inputs])
    expected = np.convolve(x, h, mode="valid")
    np.testing.assert_allclose(np.concatenate([m.data[:, 0] for m in a]), expected, rtol=1e-12)


SCRIPT = textwrap.dedent(
    """
    import sys, time
    from ezmsg_lab import Lab
    from ezmsg_lab.demo import DemoPipeline

    if __name__ == "__main__":
        lab = Lab(poll_hz=10)
        lab.launch(DemoPipeline(), name="DEMO")
        lab.record(sys.argv[1], taps=["DEMO/FILTER/OUTPUT_SIGNAL"], interval=0.2)
        print("recording", flush=True)
        time.sleep(300)
    """
)


def test_a_recording_killed_mid_run_keeps_what_was_flushed(tmp_path):
    script = tmp_path / "recorder.py"
    script.write_text(SCRIPT)
    path = tmp_path / "cut.ezrec"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path)],
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    seen = 0

    def flushed() -> bool:
        nonlocal seen
        try:
            seen = load(path).chunks
        except RecordingError:
            return False
        return seen >= 5

    try:
        assert wait_until(flushed, 60, interval=0.1), f"only {seen} chunks"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    rec = load(path)
    assert not rec.complete and rec.chunks >= seen
    assert len(rec.metrics()) and len(rec.topology().units) == 4
    data = rec.tap_data(FILTERED)
    assert data.sizes["time"] > 0
    seqs = [it.message.attrs["seq"] for it in rec.tap_items(FILTERED)]
    assert seqs == sorted(seqs)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the unit processes end with their kernel
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
