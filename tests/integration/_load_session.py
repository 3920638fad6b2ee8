"""The load session: 50 paced publishers in 5 processes, the Lab polling at 10 Hz and
tracing at its default budget, for DURATION seconds; prints what it measured as JSON.

Run as a script (``python -m tests.integration._load_session DURATION OUT_DIR``) so the
RSS measured is this "kernel" process's alone.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import psutil

from ezmsg_lab import Lab
from ezmsg_lab.model.traces import BYTES_PER_SAMPLE
from ezmsg_lab.runtime.server import SERVER_TRACE_BUFFER
from tests.integration._load_units import LoadPipeline, LoadSettings, expected_rates

POLL_HZ = 10.0
# Bounds the Lab is configured with here: small enough that both rings fill within a
# 30 s run, so whatever still grows after that is not the stores.
HISTORY_ROWS = 50_000
TRACE_SAMPLES = 200_000


def checker_counts(out_dir: Path) -> dict[str, list[int]]:
    counts: dict[str, list[int]] = {}
    for path in out_dir.glob("G*.json"):
        counts.update(json.loads(path.read_text())["counts"])
    return counts


def main(duration: float, out_dir: Path) -> None:
    proc = psutil.Process()
    peak = {"rss": 0}
    stop = threading.Event()

    def sample_rss() -> None:
        while not stop.wait(0.2):
            peak["rss"] = max(peak["rss"], proc.memory_info().rss)

    threading.Thread(target=sample_rss, daemon=True).start()
    lab = Lab(poll_hz=POLL_HZ, history=HISTORY_ROWS, trace_capacity=TRACE_SAMPLES)
    out: dict[str, object] = {"duration_s": duration}
    try:
        lab.launch(LoadPipeline(LoadSettings(out_dir=str(out_dir))), name="LOAD")
        lab.wait_for_profile(30)
        trace = lab.trace()  # default budget, until untrace
        out["trace_budget"] = trace.budget
        time.sleep(3.0)  # warm up: every endpoint has rates, the trace stream runs
        rss_start = proc.memory_info().rss
        t_start = time.time()
        start_profile = lab.profile(include_gone=False)
        start_counts = checker_counts(out_dir)
        slow_polls = 0
        polls0 = lab._metrics.polls
        rss_mid = None
        while time.time() - t_start < duration:
            time.sleep(0.5)
            if lab._poller.poll_seconds and lab._poller.poll_seconds > 1.0 / POLL_HZ:
                slow_polls += 1
            if rss_mid is None and time.time() - t_start >= duration / 2:
                rss_mid = proc.memory_info().rss
        t_end = time.time()
        end_profile = lab.profile(include_gone=False)
        end_counts = checker_counts(out_dir)
        out["polls"] = lab._metrics.polls - polls0
        out["slow_polls"] = slow_polls
        out["trace_samples"] = len(lab._traces) if hasattr(lab._traces, "__len__") else None
        out["rss_start_mb"] = rss_start / 1e6
        out["rss_mid_mb"] = (rss_mid or rss_start) / 1e6
        out["rss_end_mb"] = proc.memory_info().rss / 1e6
        out["rss_peak_mb"] = peak["rss"] / 1e6
        # The Lab's stores, and what the embedded server keeps per traced process for
        # its stream (about 450 bytes a sample, measured with tracemalloc).
        processes = len(lab.pipelines[0].pids)
        out["bounds_mb"] = (
            HISTORY_ROWS * 34
            + TRACE_SAMPLES * BYTES_PER_SAMPLE
            + SERVER_TRACE_BUFFER * processes * 450
        ) / 1e6
        out["rates"] = _rates(start_profile, end_profile, t_end - t_start)
        out["statuses"] = sorted(set(end_profile["status"].astype(str)))
        out["checker"] = {
            name: {
                "received": c[0] - start_counts.get(name, [0, 0, 0])[0],
                "gaps": c[1],
            }
            for name, c in end_counts.items()
        }
        out["expected"] = expected_rates()
        try:
            lab.untrace()
            out["untrace_error"] = None
        except Exception as exc:  # reported (and asserted) by the test
            out["untrace_error"] = repr(exc)
    finally:
        stop.set()
        lab.close()
    print(json.dumps(out), flush=True)


def _rates(start, end, seconds: float) -> dict[str, float]:
    """Each publisher's rate as the Lab measured it over the run: the delta of its
    ``messages_total`` (from the Lab's polls) over the delta of the poll times."""
    pubs0 = start[start["kind"] == "publisher"].set_index("topic")
    pubs1 = end[end["kind"] == "publisher"].set_index("topic")
    rates = {}
    for topic in pubs1.index:
        if topic not in pubs0.index:
            continue
        dn = pubs1.loc[topic, "messages_total"] - pubs0.loc[topic, "messages_total"]
        dt = (pubs1.loc[topic, "time"] - pubs0.loc[topic, "time"]).total_seconds()
        rates[str(topic)] = float(dn / dt) if dt > 0 else float("nan")
    return rates


if __name__ == "__main__":
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main(float(sys.argv[1]), out)
