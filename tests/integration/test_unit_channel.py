"""The channel from unit processes to the Lab is bounded and robust; launch options."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest

from ..conftest import live_children, wait_until
from ._units import CorruptRecords, Listener, RaisingPipeline, Ticker

pytestmark = [pytest.mark.integration, pytest.mark.interpreter]


def _rss_mb(proc: psutil.Process) -> float:
    return proc.memory_info().rss / 1e6


def test_flooding_units_stay_bounded_and_stop_promptly(lab):
    """Three units raising on every message of a free-running publisher, while the Lab
    does not read (its reader is stuck in a slow on_unit_error callback, as in a kernel
    too busy to keep up): their memory stays flat, stop() does not wait for a backlog,
    and what was dropped is counted and said."""
    stuck = threading.Event()
    release = threading.Event()

    def slow_callback(record) -> None:
        stuck.set()
        release.wait(60)

    lab.on_unit_error(slow_callback)
    try:
        pipeline = lab.launch(RaisingPipeline(), name="FLOOD")
        raisers = [
            psutil.Process(p.pid) for p in pipeline.processes if any("RAISER" in u for u in p.units)
        ]
        assert len(raisers) == 3
        assert stuck.wait(20)
        # Measurement windows, not waits for a condition: 1 s for the channel to fill,
        # then 5 s over which the units' memory must not grow.
        time.sleep(1.0)
        before = [_rss_mb(p) for p in raisers]
        time.sleep(5.0)
        after = [_rss_mb(p) for p in raisers]
        t0 = time.monotonic()
        pipeline.stop(timeout=10.0)
        stop_s = time.monotonic() - t0
        exitcodes = [p.exitcode for p in pipeline.processes]
    finally:
        release.set()
    growth = [a - b for a, b in zip(after, before, strict=True)]
    print(
        f"\nflood: unit RSS growth over 5 s without the Lab reading {growth} MB; stop() "
        f"{stop_s:.2f} s; received {pipeline.events_received}, dropped "
        f"{pipeline.events_dropped}"
    )
    # Before: each unit process buffered every record (about 0.8 MB/s here) and could not
    # exit until the Lab read them all: stop() waited 10 s, then terminated them.
    assert max(growth) < 2.0, growth
    assert stop_s < 5.0
    assert exitcodes == [0, 0, 0, 0], "the unit processes were terminated, not stopped"
    assert not pipeline.running
    assert wait_until(lambda: not live_children(), 10), live_children()
    assert pipeline.events_dropped > 0
    logs = lab.logs()
    dropped = logs[logs["kind"] == "dropped"]
    assert len(dropped) >= 1
    assert "FLOOD" in dropped["message"].iloc[0]
    assert set(dropped["level"]) == {"WARNING"}
    assert "events_dropped" in dropped["message"].iloc[0]


def test_lab_memory_is_flat_while_units_flood_it(lab):
    """With the Lab reading, its memory grows only until its log store is full."""
    pipeline = lab.launch(RaisingPipeline(), name="FLOOD")
    capacity = lab._logs._records.maxlen
    assert wait_until(lambda: lab._logs.total > capacity + 1000, 60)
    me = psutil.Process()
    before = _rss_mb(me)
    received = pipeline.events_received
    assert wait_until(lambda: pipeline.events_received > received + 5000, 30)
    growth = _rss_mb(me) - before
    print(f"\nflood: Lab RSS growth while reading 5000 more records: {growth:.1f} MB")
    assert growth < 5.0
    t0 = time.monotonic()
    pipeline.stop()
    assert time.monotonic() - t0 < 5.0
    assert [p.exitcode for p in pipeline.processes] == [0, 0, 0, 0]


def test_corrupt_records_do_not_kill_the_reader(lab):
    pipeline = lab.launch(CorruptRecords(), name="BAD")

    def reported() -> bool:
        return any("still reporting" in m for m in lab.logs()["message"])

    assert wait_until(reported, 10)
    assert pipeline.events_corrupt == 2
    pipeline.stop()
    assert pipeline.events_corrupt == 2


def test_dict_launch_with_name_prefixes_addresses(lab):
    source, sink = Ticker(), Listener()
    pipeline = lab.launch(
        {"SRC": source, "SINK": sink},
        name="PIPE",
        connections=[(source.OUTPUT, sink.INPUT)],
    )
    assert pipeline.name == "PIPE"
    assert pipeline.units == ["PIPE/SINK", "PIPE/SRC"]
    registered = {u for p in lab.snapshot().processes.values() for u in p.units}
    assert {"PIPE/SINK", "PIPE/SRC"} <= registered
    assert "PIPE/SINK/INPUT" in lab.snapshot().graph.get("PIPE/SRC/OUTPUT", [])
    assert wait_until(
        lambda: (
            (p := lab.profile()).loc[p["topic"] == "PIPE/SINK/INPUT", "messages_total"].sum() > 0
        ),
        10,
    )
    # The same units under another name do not collide.
    source2, sink2 = Ticker(), Listener()
    other = lab.launch(
        {"SRC": source2, "SINK": sink2},
        name="PIPE2",
        connections=[(source2.OUTPUT, sink2.INPUT)],
    )
    assert other.units == ["PIPE2/SINK", "PIPE2/SRC"]


STDERR_SCRIPT = textwrap.dedent(
    """
    import sys
    import time
    from ezmsg_lab import Lab
    from tests.integration._units import Chatty

    with Lab() as lab:
        lab.launch(Chatty(), name="CHATTY", unit_stderr=sys.argv[1] == "on")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if any("says hello" in m for m in lab.logs()["message"]):
                break
            time.sleep(0.02)
        print("RECORDS", sum("says hello" in m for m in lab.logs()["message"]), flush=True)
    """
)


@pytest.mark.parametrize("unit_stderr", ["on", "off"])
def test_unit_stderr(unit_stderr):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run(
        [sys.executable, "-c", STDERR_SCRIPT, unit_stderr],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "RECORDS 1" in proc.stdout, (proc.stdout, proc.stderr[-2000:])
    on_stderr = proc.stderr.count("chatty CHATTY says hello")
    assert on_stderr == (1 if unit_stderr == "on" else 0), proc.stderr[-2000:]
