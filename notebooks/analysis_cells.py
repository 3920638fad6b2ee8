"""Cells of ``analysis.ipynb`` (registered in build.py): a recording analysed offline."""

from __future__ import annotations


def cells(md, code):
    return [
        md(
            """
# Offline analysis of a recording

`lab.record(path, taps=[...])` saved a run of the demo pipeline into one file
(`data/demo.ezrec`, made by `data/make_recording.py`): topology, settings and their
history, profiling metrics, trace samples, logs, the filter's output messages and a
result table. `ezmsg_lab.load` opens it with the Lab's own DataFrame API; no pipeline
runs here, and nothing in the file is unpickled or executed.
"""
        ),
        code(
            """
import pandas as pd

from ezmsg_lab import load, plots

pd.set_option("display.width", 120)
rec = load("data/demo.ezrec")
rec
"""
        ),
        code(
            """
env = rec.environment
{k: env[k] for k in ("python", "ezmsg", "ezmsg_lab", "hosts")}
"""
        ),
        md("The graph as it ran, and the settings change made during the run:"),
        code(
            """
rec.topology().units[["address", "component_type", "dynamic_settings"]]
"""
        ),
        code(
            """
changes = rec.settings_history()
changes[changes["event"] == "SETTINGS_UPDATED"][["unit", "field", "old", "new"]]
"""
        ),
        md("Message counts per publisher over the recording, from the profiling history:"),
        code(
            """
m = rec.metrics()
totals = m[(m["metric"] == "messages_total") & (m["kind"] == "publisher")]
totals.groupby("topic")["value"].agg(["min", "max"]).astype(int)
"""
        ),
        code(
            """
ax = plots.rates(rec.metrics(), kind="publisher")
"""
        ),
        md(
            """
Latency percentiles per topic, computed from the recorded trace samples by the same code
`lab.latency()` uses:
"""
        ),
        code(
            """
lat = rec.latency(metrics=["user_span_ns"])
lat[["topic", "count", "p50_ms", "p99_ms"]].round(3)
"""
        ),
        code(
            """
axes = plots.latency_hist(rec.trace_samples(), metric="user_span_ns")
"""
        ),
        md("The tapped filter output comes back as xarray, as `tap.data()` gives it:"),
        code(
            """
x = rec.tap_data("DEMO/FILTER/OUTPUT_SIGNAL")
x.dims, x.sizes["time"], x.attrs["fs"], round(float(x.std()), 4)
"""
        ),
        code(
            """
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(8, 2.5))
lines = x.isel(time=slice(0, 2000)).sel(ch="ch0").plot(ax=ax)
"""
        ),
        md("Results added during the run with `recorder.add_result(kind, frame)`:"),
        code(
            """
rec.results("check").round(3)
"""
        ),
        md(
            """
The trace samples as a Chrome trace-event file: open it in https://ui.perfetto.dev to see
each process's user spans and leases on a timeline, with arrows from a publish to the
subscribers of the same message.
"""
        ),
        code(
            """
import json, os, tempfile

path = rec.export_trace(os.path.join(tempfile.mkdtemp(), "demo-trace.json"))
doc = json.loads(path.read_text())
doc["otherData"]["samples"], doc["otherData"]["flows"]
"""
        ),
    ]
