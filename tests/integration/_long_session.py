"""Launch and stop a small pipeline many times in one Lab; print what that cost as JSON.

Run as a script (``python -m tests.integration._long_session CYCLES WARMUP MID``) so ezmsg's
GraphServer reads the history bounds set in its environment, and tracemalloc sees only
this session.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import threading
import time
import tracemalloc
from collections import deque

import psutil

from ezmsg_lab import Lab
from tests.integration._units import BusyPipeline, TickerSettings


def figures(t0: float) -> dict[str, float]:
    gc.collect()
    return {
        "fds": len(os.listdir("/proc/self/fd")),
        "threads": threading.active_count(),
        "rss_mb": psutil.Process().memory_info().rss / 1e6,
        "traced_mb": tracemalloc.get_traced_memory()[0] / 1e6,
        "elapsed_s": time.monotonic() - t0,
    }


def main(cycles: int, warmup: int, mid: int) -> None:
    tracemalloc.start()
    lab = Lab()
    # Histories that are bounded but take thousands of launches to fill are kept short
    # here, so that they are full within the run: whatever still grows is a leak.
    lab._topology.events = deque(maxlen=50)
    lab._settings._max_history = 50
    t0 = time.monotonic()
    out = {"cycles": cycles, "warmup": warmup}
    pids: set[int] = set()
    for i in range(cycles):
        if i == warmup:
            out["warm"] = figures(t0)
        if i == mid:
            out["mid"] = figures(t0)
        pipeline = lab.launch(BusyPipeline(TickerSettings(rate_hz=200)), name="SWEEP")
        pids.update(pipeline.pids)
        pipeline.stop()
    out["end"] = figures(t0)
    out["pipelines_kept"] = len(lab.pipelines)
    out["last"] = {
        "processes": [[p.pid, p.exitcode] for p in pipeline.processes],
        "started": pipeline.started_at is not None,
        "stopped": pipeline.stopped_at is not None,
    }
    lab.close()
    out["pids"] = sorted(pids)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
