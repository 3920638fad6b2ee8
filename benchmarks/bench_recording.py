"""Recordings (issue 13): what recording costs the pipeline, and saving and loading an
hour of metrics and a million trace samples beside CSV and pickle.

``python -m benchmarks bench_recording``
"""

from __future__ import annotations

import argparse
import io
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ._common import Result, median, report, write_json
from .bench_live_data import _throughput


def bench_overhead(seconds: float = 3.0, rounds: int = 3) -> Result:
    """The throughput demo's rate with a Lab attached (10 Hz polls), unrecorded and
    recorded (flushing every second), alternating in the same run."""
    import ezmsg.core as ez
    from ezmsg.core.graphserver import GraphServer

    from ezmsg_lab import Lab
    from ezmsg_lab.demo import ThroughputPipeline

    server = GraphServer()
    server.start(("127.0.0.1", 0))
    runner = ez.GraphRunner(
        components={"BENCH": ThroughputPipeline()}, graph_address=server.address
    )
    runner.start()
    address = server.address
    plain, recorded = [], []
    try:
        with (
            Lab.attach(f"{address[0]}:{address[1]}", poll_hz=10) as lab,
            tempfile.TemporaryDirectory() as tmp,
        ):
            _throughput(address, 1.0)  # warm up
            for i in range(rounds):
                plain.append(_throughput(address, seconds))
                with lab.record(Path(tmp) / f"r{i}.ezrec", interval=1.0):
                    recorded.append(_throughput(address, seconds))
    finally:
        runner.stop()
        server.stop()
    base, ours = median(plain), median(recorded)
    return report(
        Result(
            "pipeline throughput while recording",
            ours,
            base,
            "msg/s",
            ">= 98 %",
            ours / base >= 0.98,
            f"unrecorded (Lab attached, 10 Hz polls) {base:.0f} msg/s, medians of {rounds}",
        )
    )


def _hour_of_metrics(endpoints: int = 10, hz: float = 10.0) -> pd.DataFrame:
    """``lab.metrics()`` of one hour at ``hz`` polls: long format, 3 metrics per row."""
    n = int(3600 * hz)
    t = pd.to_datetime(1.7e18 + np.repeat(np.arange(n), endpoints) * (1e9 / hz), utc=True)
    topics = np.tile([f"DEMO/U{i}/OUTPUT" for i in range(endpoints)], n)
    rows = len(t)
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "time": np.tile(t, 3),
            "topic": np.tile(topics, 3),
            "endpoint": np.tile(topics, 3),
            "kind": "publisher",
            "unit": np.tile(topics, 3),
            "status": pd.Categorical(["ok"] * rows * 3, categories=["ok", "missing", "gone"]),
            "metric": pd.Categorical(
                np.repeat(["rate_hz", "messages_total", "inflight"], rows),
                categories=["rate_hz", "messages_total", "inflight"],
            ),
            "value": rng.normal(100, 5, rows * 3),
        }
    )


def _million_trace_samples() -> pd.DataFrame:
    """The raw trace columns a recording stores (as ``TraceStore.since`` gives them)."""
    rng = np.random.default_rng(1)
    n = 1_000_000
    return pd.DataFrame(
        {
            "t_ns": np.arange(n, dtype=np.int64) * 1000 + 1_700_000_000_000_000_000,
            "value": rng.uniform(1e4, 1e6, n),
            "seq": np.arange(n, dtype=np.int64),
            "key": rng.integers(0, 40, n).astype(np.int32),
            "metric": rng.integers(0, 4, n).astype(np.int8),
            "channel": rng.integers(0, 3, n).astype(np.int8),
        }
    )


def _timed(fn, rounds: int = 3) -> tuple[float, object]:
    times, out = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return median(times), out


def bench_save_load(name: str, frame: pd.DataFrame, chunks: int) -> list[Result]:
    """Save ``frame`` as a recording does (``chunks`` flushes), load it back; CSV and
    pickle of the same frame as references."""
    from ezmsg_lab.recording.container import FORMAT_NAME, FORMAT_VERSION, ContainerWriter
    from ezmsg_lab.recording.loaded import load
    from ezmsg_lab.recording.tables import to_parquet_bytes

    member = "metrics" if "metric" in frame.columns and "topic" in frame.columns else "trace"
    parts = np.array_split(np.arange(len(frame)), chunks)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.ezrec"

        def save() -> None:
            writer = ContainerWriter(
                path, {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "started_s": 0.0}
            )
            for i, idx in enumerate(parts, start=1):
                data = to_parquet_bytes(frame.iloc[idx[0] : idx[-1] + 1])
                writer.write_chunk(i, [(f"{member}.parquet", data)], {"time_s": float(i)})

        save_s, _ = _timed(save, rounds=1)
        size = path.stat().st_size
        if member == "metrics":
            load_s, back = _timed(lambda: load(path).metrics())
        else:
            load_s, back = _timed(lambda: load(path)._appended("trace"))
        assert len(back) == len(frame)
        csv_save, text = _timed(lambda: frame.to_csv(index=False), rounds=1)
        csv_load, _ = _timed(lambda: pd.read_csv(io.StringIO(text)), rounds=1)
        pkl_save, blob = _timed(lambda: pickle.dumps(frame, protocol=5))
        pkl_load, _ = _timed(lambda: pickle.loads(blob))
    note = f"{len(frame):,} rows in {chunks} flushes; CSV {len(text) / 1e6:.1f} MB"
    return [
        report(
            Result(
                f"{name}: save",
                save_s,
                pkl_save,
                "s",
                "-",
                None,
                f"vs pickle; CSV {csv_save:.2f} s; {note}",
            )
        ),
        report(
            Result(
                f"{name}: load",
                load_s,
                pkl_load,
                "s",
                "-",
                None,
                f"vs pickle; CSV {csv_load:.2f} s",
            )
        ),
        report(
            Result(f"{name}: file size", size / 1e6, len(blob) / 1e6, "MB", "-", None, "vs pickle")
        ),
    ]


def main(json_path: str | None = None) -> list[Result]:
    import logging

    logging.getLogger("ezmsg").setLevel(logging.ERROR)
    print("== recordings (issue 13)")
    results = [bench_overhead()]
    results += bench_save_load("1 h of metrics at 10 Hz", _hour_of_metrics(), chunks=360)
    results += bench_save_load("1 M trace samples", _million_trace_samples(), chunks=100)
    write_json(results, json_path)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", help="write results as JSON to this file")
    main(parser.parse_args().json)
