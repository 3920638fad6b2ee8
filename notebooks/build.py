"""Write the tour notebooks from their cell sources, then execute them in place.

Usage: ``python notebooks/build.py [name ...]`` (default: all). Notebooks are committed
executed, so nbval compares real outputs; re-run this after changing a notebook here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).parent
NOTEBOOKS: dict[str, list[tuple[str, str]]] = {}


def notebook(name: str):
    def register(fn):
        NOTEBOOKS[name] = fn()
        return fn

    return register


def md(text: str) -> tuple[str, str]:
    return ("markdown", text.strip())


def code(text: str) -> tuple[str, str]:
    return ("code", text.strip())


@notebook("quickstart")
def _quickstart():
    return [
        md(
            """
# ezmsg-lab quickstart

This notebook starts an ezmsg GraphServer inside the kernel, launches the demo signal chain
(source → filter → detector → sink, each unit in its own process), draws it live and tunes
it. Everything the Lab starts is stopped by `lab.close()` (or when the kernel shuts down).
"""
        ),
        code(
            """
from ezmsg_lab import Lab
from ezmsg_lab.demo import DemoPipeline

lab = Lab()  # an embedded GraphServer on 127.0.0.1, at a free port
demo = lab.launch(DemoPipeline(), name="DEMO")  # returns once the unit processes run
lab
"""
        ),
        md(
            """
The live graph: units grouped by collection, one colour per process, message rates on the
edges. Click a unit: its settings form and live metrics appear on the right.
"""
        ),
        code(
            """
dashboard = lab.dashboard()
dashboard
"""
        ),
        md("Tune from a cell: the value is checked against the unit's settings first."),
        code(
            """
lab.set("DEMO/FILTER", cutoff_hz=40.0)
"""
        ),
        code(
            """
try:
    lab.set("DEMO/FILTER", cutoff_hz="forty")
except Exception as err:
    print(type(err).__name__, "-", err)
"""
        ),
        md("What is running, as DataFrames (see the profiling notebook for more):"),
        code(
            """
profile = lab.wait_for_profile()
profile[["topic", "kind", "unit", "channel_kind", "status"]]
"""
        ),
        code(
            """
# NBVAL_IGNORE_OUTPUT
profile[["topic", "kind", "pid", "rate_hz", "messages_total"]]
"""
        ),
        md(
            """
A pipeline can also run inside the kernel, so you can look at live unit objects:
"""
        ),
        code(
            """
import time

live = lab.launch(DemoPipeline(), name="LIVE", mode="in-kernel")
sink = live.unit_objects["LIVE/SINK"]
deadline = time.monotonic() + 10
while sink.STATE.received == 0 and time.monotonic() < deadline:
    time.sleep(0.05)
sink.STATE.received > 0
"""
        ),
        code(
            """
lab.close()
lab
"""
        ),
    ]


@notebook("profiling")
def _profiling():
    return [
        md(
            """
# Profiling a live pipeline

Rates, backlogs and latencies of the demo chain as pandas DataFrames. Every number here
comes from this Lab's own polls (deltas of ezmsg's monotonic counters), so another tool
polling the same graph does not change them; every time column is UTC.
"""
        ),
        code(
            """
import pandas as pd
from ezmsg_lab import Lab, plots
from ezmsg_lab.demo import DemoPipeline, FilterSettings

lab = Lab(poll_hz=5)  # profiling polls at 5 Hz (default 1 Hz, up to 20 Hz)
demo = lab.launch(DemoPipeline(), name="DEMO")
profile = lab.wait_for_profile()
profile[["topic", "kind", "unit", "channel_kind", "status"]]
"""
        ),
        md("The live numbers (they change every run):"),
        code(
            """
# NBVAL_IGNORE_OUTPUT
profile[["topic", "kind", "pid", "rate_hz", "messages_total", "inflight", "num_buffers"]]
"""
        ),
        code(
            """
profile.dtypes
"""
        ),
        md("The topology, with the real pid and host of each unit process:"),
        code(
            """
topo = lab.topology()
topo.units[["address", "collection", "component_type", "dynamic_settings"]]
"""
        ),
        code(
            """
bool(topo.units["pid"].isin(demo.pids).all()), topo.edges[["from", "to"]]
"""
        ),
        md("Rates over time, from the profiling history (long format):"),
        code(
            """
import time
deadline = time.monotonic() + 10
while lab.metrics(since="60s")["time"].nunique() < 15 and time.monotonic() < deadline:
    time.sleep(0.1)
history = lab.metrics(since="60s")
list(history.columns), sorted(history["metric"].unique())
"""
        ),
        code(
            """
# NBVAL_IGNORE_OUTPUT
plots.rates(history, kind="publisher");
"""
        ),
        md(
            """
## Latency traces

`lab.trace()` turns ezmsg's tracing on with a time-to-live (a crashed kernel cannot leave it
on) and a sampling budget: the Lab picks `sample_mod` per process so that tracing costs at
most 5 % of its time. `duration=` stops it by itself.
"""
        ),
        code(
            """
# NBVAL_IGNORE_OUTPUT
tracing = lab.trace(duration=3.0, wait=True)  # a progress bar while it traces
tracing.sample_mod
"""
        ),
        code(
            """
latency = lab.latency()
latency[["topic", "metric"]]
"""
        ),
        code(
            """
# NBVAL_IGNORE_OUTPUT
latency.round(3)
"""
        ),
        code(
            """
# NBVAL_IGNORE_OUTPUT
plots.latency_hist(lab.trace_samples(), metric="user_span_ns");
"""
        ),
        md(
            """
## When a unit raises

A unit's traceback goes to its process's stderr, which a notebook never shows. The Lab
collects the log records and exceptions of the units it launched, counts errors per unit,
and says once (per burst) when a unit starts raising. Here a filter is launched with its
cutoff above the Nyquist frequency: it raises on every message.
"""
        ),
        code(
            """
broken = lab.launch(DemoPipeline(filter=FilterSettings(cutoff_hz=600.0)), name="BROKEN")
deadline = time.monotonic() + 10
while lab.logs(unit="BROKEN/FILTER").empty and time.monotonic() < deadline:
    time.sleep(0.05)
errors = lab.logs(unit="BROKEN/FILTER", level="ERROR")
print(errors["message"].iloc[0])
"""
        ),
        code(
            """
print(errors["traceback"].iloc[0].strip().splitlines()[-1])
"""
        ),
        code(
            """
def filter_errors():
    p = lab.profile()
    return p.loc[p["unit"] == "BROKEN/FILTER", "errors"].max()  # NaN until polled


deadline = time.monotonic() + 10
while not filter_errors() >= 5 and time.monotonic() < deadline:
    time.sleep(0.05)
p = lab.profile()
raising = p[p["unit"].isin(["BROKEN/FILTER", "BROKEN/SOURCE"])].groupby("unit")["errors"].max() > 0
raising.rename("raising")
"""
        ),
        code(
            """
lab.close()
"""
        ),
    ]


@notebook("tuning")
def _tuning():
    return [
        md(
            """
# Tuning a running pipeline

`lab.set` changes a unit's settings while it runs. The Lab checks every value against the
unit's own settings class first (types, bounds, choices, enums), sends all the fields of one
call as one message, and returns once ezmsg's settings event confirms it. Then it watches
the unit for a moment: a value of the right type can still break it.
"""
        ),
        code(
            """
from ezmsg_lab import Lab, SettingsValidationError
from ezmsg_lab.demo import DemoPipeline, Window

lab = Lab()
demo = lab.launch(DemoPipeline(), name="DEMO")
lab.wait_for_profile()
lab.settings("DEMO/FILTER")[["field", "value", "type", "min", "max", "choices"]]
"""
        ),
        md("## From a cell"),
        code(
            """
lab.set("DEMO/FILTER", cutoff_hz=30)
"""
        ),
        md(
            """
Several fields change together (one settings object, never half of it). Enums are given by
name, by value or as members; the unit receives a member of its own class. Dotted paths
reach nested settings.
"""
        ),
        code(
            """
result = lab.set("DEMO/FILTER", window="HANN", taps=63)
result.requested, result.applied, result.method
"""
        ),
        code(
            """
lab.set("DEMO/SOURCE", {"tone.freq_hz": 8, "noise_std": 0.1})
"""
        ),
        md("## Refused before anything is sent"),
        code(
            """
try:
    lab.set("DEMO/FILTER", cutoff_hz="fast", taps=2)
except SettingsValidationError as err:
    print(err)
"""
        ),
        code(
            """
try:
    lab.set("DEMO/FILTER", cutof_hz=40)
except SettingsValidationError as err:
    print(err)
"""
        ),
        md(
            """
## The closed loop

The filter declares its cutoff below 499 Hz, honest for the demo's 1 kHz sample rate. But a
field's bounds cannot follow another unit's settings: at 200 Hz, a cutoff of 150 Hz is
inside the bounds and above Nyquist. The filter then raises on every message while ezmsg
reports success. The Lab sees the unit raising and says so in the cell, naming the change
and how to undo it (`check=True` raises instead).
"""
        ),
        code(
            """
lab.set("DEMO/SOURCE", fs=200.0, watch=False)
"""
        ),
        code(
            """
# NBVAL_IGNORE_OUTPUT
broken = lab.set("DEMO/FILTER", cutoff_hz=150)
"""
        ),
        code(
            """
broken.health.status, broken.health.detail
"""
        ),
        code(
            """
lab.undo()
"""
        ),
        code(
            """
lab.revert("DEMO/SOURCE", watch=False)
"""
        ),
        md(
            """
## Forms

`lab.settings_form(unit)` builds an ipywidgets form from the settings class: a slider for
a number whose bounds are narrow around its value, else a number box (any value; a bad one
is explained, never clamped) with a slider over a window around the value, so one drag
never jumps orders of magnitude; dropdowns for enums and `Literal`s, a None toggle for
`Optional` fields. Edits are validated in the form and sent after a short debounce; changes
made elsewhere show up in it. A form sends only what you did: drawing it, or following a
change made elsewhere, sends nothing.
"""
        ),
        code(
            """
# NBVAL_IGNORE_OUTPUT
form = lab.settings_form("DEMO/FILTER")
form
"""
        ),
        md(
            """
What a user does with the keyboard, done from code: type a cutoff in its box (`flush()`
sends now instead of after the debounce).
"""
        ),
        code(
            """
form.control("cutoff_hz").value = 45.0
form.flush()
lab.settings("DEMO/FILTER").set_index("field").loc["cutoff_hz", "value"]
"""
        ),
        code(
            """
import asyncio

lab.set("DEMO/FILTER", taps=41)
await asyncio.sleep(0.2)  # the form updates on the kernel's loop, between cells
form.control("taps").value
"""
        ),
        md(
            """
`lab.settings_panel()` puts every unit's form in one searchable panel (not shown here, to
keep this notebook small).
"""
        ),
        md("## Trying something, and going back"),
        code(
            """
with lab.temporarily("DEMO/FILTER", bypass=True):
    print("inside:", lab.settings("DEMO/FILTER").set_index("field").loc["bypass", "value"])
print("after:", lab.settings("DEMO/FILTER").set_index("field").loc["bypass", "value"])
"""
        ),
        code(
            """
lab.revert("DEMO/FILTER")
"""
        ),
        md(
            """
Closing the Lab stops the pipeline; the form stays on the page (closing a widget would
blank its output), no longer following a unit.
"""
        ),
        code(
            """
lab.close()
"""
        ),
    ]


@notebook("topology")
def _topology():
    return [
        md(
            """
# The live topology

`lab.graph()` draws the running graph and keeps it current from ezmsg's topology events:
pipelines that start or stop appear and disappear within a second, nodes that stay keep
their place. Edges carry message rates and channel kinds; publishers are coloured by how
many of their buffers are in flight; units that raise are marked.
"""
        ),
        code(
            """
import time

from ezmsg_lab import Lab
from ezmsg_lab.demo import DemoPipeline

lab = Lab(poll_hz=2)
demo = lab.launch(DemoPipeline(), name="DEMO")
lab
"""
        ),
        code(
            """
graph = lab.graph()
graph
"""
        ),
        md(
            """
Clicking a unit sets `graph.selected`; `observe` it like any ipywidget:
"""
        ),
        code(
            """
clicked = []
graph.observe(lambda change: clicked.append(change["new"]), names="selected")
sorted(graph.state["units"])
"""
        ),
        md("Start a second pipeline while the graph shows it, then stop it again:"),
        code(
            """
def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


extra = lab.launch(DemoPipeline(), name="EXTRA")
wait_for(lambda: "EXTRA/FILTER" in graph.state["units"]), sorted(graph.state["units"])
"""
        ),
        code(
            """
extra.stop()
wait_for(lambda: "EXTRA/FILTER" not in graph.state["units"]), sorted(graph.state["units"])
"""
        ),
        md(
            """
## The dashboard

The graph, the settings form of the selected unit and a live metrics table of it, in one
widget. Click a unit in the graph to swap the form.
"""
        ),
        code(
            """
dashboard = lab.dashboard()
dashboard
"""
        ),
        md("Selecting from Python works too:"),
        code(
            """
dashboard.graph.selected = "DEMO/FILTER"
dashboard.selected, type(dashboard.form).__name__, dashboard.table.value.count("<tr>") > 1
"""
        ),
        md(
            """
The Lab keeps running while this notebook is open; `lab.close()` (or shutting the kernel
down) stops the pipelines and the GraphServer.
"""
        ),
    ]


@notebook("dashboard")
def _dashboard():
    # Served as a standalone page by `make dashboard` (Voila): the cells' code is hidden
    # there, only the outputs show.
    return [
        md(
            """
# ezmsg-lab dashboard

The demo signal chain, live: click a unit to tune its settings and see its metrics.
"""
        ),
        code(
            """
from ezmsg_lab import Lab
from ezmsg_lab.demo import DemoPipeline

lab = Lab()  # stopped, with its pipeline, when this page's kernel shuts down
demo = lab.launch(DemoPipeline(), name="DEMO")
dashboard = lab.dashboard()
dashboard
"""
        ),
    ]


@notebook("data")
def _data():
    return [
        md(
            """
# Data taps: the messages themselves

`lab.tap(topic)` holds the last seconds of a topic's messages in this kernel. The
subscription is leaky: a busy kernel drops (and counts) messages, it never slows the
pipeline. Here: tap the demo filter's output, watch it in a scope while changing the
cutoff, then take ten seconds into xarray and compute a spectrum.
"""
        ),
        code(
            """
import time

import numpy as np

from ezmsg_lab import Lab
from ezmsg_lab.demo import DemoPipeline

lab = Lab()
demo = lab.launch(DemoPipeline(), name="DEMO")  # a 5 Hz sine plus noise at 1 kHz


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()
"""
        ),
        md("A tap on the filter's output keeps its last ten seconds:"),
        code(
            """
tap = lab.tap("DEMO/FILTER/OUTPUT_SIGNAL", window="10s")
wait_for(lambda: tap.received > 10)
info = tap.inspect()
{k: info[k] for k in ("type", "module", "dims", "shape", "dtype", "fs")}
"""
        ),
        md(
            """
The scope draws it live: a sweep of time × channels, min/max decimated to the pixel
columns in the kernel. Pause it, pick channels, autoscale or fix the range.
"""
        ),
        code(
            """
scope = tap.scope()
scope
"""
        ),
        md("Change the cutoff and watch the noise go (or come back):"),
        code(
            """
lab.set("DEMO/FILTER", cutoff_hz=8.0)
"""
        ),
        md(
            """
## Ten seconds as an array

`tap.data()` joins the AxisArray messages into one `xarray.DataArray`: `time` from the
messages' own time axis, `received` (the Lab's clock, shared by every tap) and the
channel labels as coordinates.
"""
        ),
        code(
            """
# Ten seconds after the change: the window then holds only filtered-at-8-Hz data.
received = tap.received
wait_for(lambda: tap.received >= received + 1000)
x = tap.data()
x.dims, x.sizes["time"] >= 9_900, x["ch"].values.tolist(), x.attrs["fs"]
"""
        ),
        code(
            """
# NBVAL_IGNORE_OUTPUT
x
"""
        ),
        md("The spectrum peaks at the source's 5 Hz tone:"),
        code(
            """
y = x.sel(ch="ch0").values
power = np.abs(np.fft.rfft(y - y.mean())) ** 2
freqs = np.fft.rfftfreq(len(y), 1 / x.attrs["fs"])
peak_hz = freqs[power.argmax()]
round(float(peak_hz), 1)
"""
        ),
        md("Every message is counted: received, and dropped if the kernel fell behind."),
        code(
            """
frame = lab.taps_frame()
list(frame.columns), len(frame), bool((frame["received"] > 0).all())
"""
        ),
        md("Closing the Lab closes its taps and stops the pipeline."),
        code(
            """
lab.close()
tap.closed, lab.taps
"""
        ),
    ]


@notebook("experiment")
def _experiment():
    return [
        md(
            """
# Tuning experiments

Sweep a setting, compare two settings A/B, and turn what you learnt into an expectation a
test can assert. Every run sets the point through `lab.set`'s validated path, waits for it
to settle and measures a window: rates from the Lab's own profiling counters, latencies
from ezmsg's traces. The original settings come back afterwards, also after an error or an
interrupt.
"""
        ),
        code(
            """
from ezmsg_lab import ExpectationError, Lab, plots
from ezmsg_lab.demo import DemoPipeline

lab = Lab()
demo = lab.launch(DemoPipeline(), name="DEMO")  # 100 chunks/s through a FIR filter
lab.wait_for_profile()
lab.settings("DEMO/FILTER")[["field", "value", "min", "max"]]
"""
        ),
        md(
            """
## A sweep

The filter's length (`taps`) at three values, each measured twice in a random order per
round; `trace=True` traces during the sweep, so each window also has latency figures.
"""
        ),
        code(
            """
# NBVAL_IGNORE_OUTPUT
df = lab.sweep(
    "DEMO/FILTER", {"taps": [15, 63, 255]}, settle=0.5, measure=1.0, repeats=2, trace=True
)
"""
        ),
        md(
            """
One tidy row per point × repeat × topic × metric, each with `n`, the messages or trace
samples it rests on:
"""
        ),
        code(
            """
list(df.columns), sorted(df["taps"].unique().tolist()), sorted(df["metric"].unique())
"""
        ),
        code(
            """
span = df[(df["topic"] == "DEMO/FILTER/INPUT_SIGNAL") & (df["source"] == "user_span_ns")]
span.groupby("taps")["repeat"].nunique().to_dict()
"""
        ),
        code(
            """
# NBVAL_IGNORE_OUTPUT
span[span["metric"] == "p50_ms"][["taps", "repeat", "value", "n"]]
"""
        ),
        code(
            """
# NBVAL_IGNORE_OUTPUT
plots.sweep(df, metric="p50_ms", topic="DEMO/FILTER/INPUT_SIGNAL");
"""
        ),
        md("The filter is back at its launch settings:"),
        code(
            """
s = lab.settings("DEMO/FILTER")
int(s.loc[s["field"] == "taps", "value"].iloc[0])
"""
        ),
        md(
            """
## A/B

`lab.compare` runs A and B alternately (A B A B ...) and takes the ratio B/A pair by pair,
which cancels slow drift. It gives a verdict only when a distribution-free interval of the
median ratio excludes 1 (at 95 %, that takes at least 6 pairs); otherwise it says so.
"""
        ),
        code(
            """
# NBVAL_IGNORE_OUTPUT
ab = lab.compare(
    "DEMO/FILTER", a={"taps": 31}, b={"taps": 255}, repeats=6, settle=0.3, measure=0.8,
    trace=True,
)
ab
"""
        ),
        code(
            """
ab.metric, len(ab.ratios), ab.verdict in ("b slower", "b faster", "no verdict"), list(ab.frame.columns[:2])
"""
        ),
        md(
            """
## Expectations

What the experiments showed, as assertions: `lab.expect_rate` and `lab.expect_latency`
measure a fresh window and raise an `ExpectationError` (an `AssertionError`) naming the
figures, the window and the counts they rest on. With the pytest plugin (installed with
ezmsg-lab), a test gets a `lab` fixture and asserts the same in CI.
"""
        ),
        code(
            """
rate = lab.expect_rate("DEMO/SOURCE/OUTPUT_SIGNAL", 100, tol=0.2, window=1.0)
80 <= rate <= 120
"""
        ),
        code(
            """
try:
    lab.expect_latency("DEMO/FILTER/INPUT_SIGNAL", p95_ms=0.000001, window=1.0)
except ExpectationError as err:
    print(type(err).__name__, isinstance(err, AssertionError), "trace samples" in str(err))
"""
        ),
        md(
            """
## Record

`lab.record` writes one data-only file: topology, settings and their history, metrics,
trace samples, logs, the messages of the topics given in `taps`, and every experiment
that finishes while it runs. `ezmsg_lab.load` reads it back with the Lab's DataFrame API,
with no pipeline.
"""
        ),
        code(
            """
import tempfile
from pathlib import Path

import ezmsg_lab

path = Path(tempfile.mkdtemp()) / "experiment.ezrec"
with lab.record(path, taps=["DEMO/FILTER/OUTPUT_SIGNAL"], interval=0.5):
    short = lab.sweep("DEMO/FILTER", {"taps": [15, 63]}, settle=0.3, measure=0.6)
rec = ezmsg_lab.load(path)
sorted(rec.results()), rec.results("sweep").shape == short.shape
"""
        ),
        code(
            """
x = rec.tap_data("DEMO/FILTER/OUTPUT_SIGNAL")
x.dims, len(rec.settings_history("DEMO/FILTER")) >= 4, "rate_hz" in set(rec.metrics()["metric"])
"""
        ),
        code(
            """
lab.close()
"""
        ),
    ]


@notebook("analysis")
def _analysis():
    from analysis_cells import cells  # notebooks/ is this script's folder

    return cells(md, code)


def build(name: str, execute: bool = True) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for kind, src in NOTEBOOKS[name]:
        cell = (
            nbformat.v4.new_markdown_cell(src)
            if kind == "markdown"
            else nbformat.v4.new_code_cell(src)
        )
        nb.cells.append(cell)
    path = HERE / f"{name}.ipynb"
    nbformat.write(nb, path)
    if execute:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "jupyter",
                "nbconvert",
                "--to",
                "notebook",
                "--execute",
                "--inplace",
                "--ExecutePreprocessor.timeout=300",
                # Widget state would embed the graph bundle (1.5 MB) per widget.
                "--ExecutePreprocessor.store_widget_state=False",
                str(path),
            ],
            check=True,
            cwd=HERE,
        )
    return path


if __name__ == "__main__":
    for name in sys.argv[1:] or list(NOTEBOOKS):
        print("built", build(name))
