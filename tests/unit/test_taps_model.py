"""Tap stores without ezmsg's runtime: decimation, the ring buffer, AxisArray -> xarray."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from ezmsg.util.messages.axisarray import AxisArray, CoordinateAxis, LinearAxis

from ezmsg_lab.model.decimate import minmax_decimate, sweep_decimate
from ezmsg_lab.model.scope_frame import build_frame
from ezmsg_lab.model.tap_buffer import TapBuffer, TapItem, message_nbytes
from ezmsg_lab.model.tap_convert import describe, to_data


def test_minmax_matches_a_plain_loop_and_keeps_a_single_sample_spike():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(10_007, 3))
    y[5_001, 2] = 50.0
    out = minmax_decimate(y, 800)
    assert out.shape == (800, 2, 3) and out.dtype == np.float32
    starts = (np.arange(800) * len(y)) // 800
    ends = np.append(starts[1:], len(y))
    for i in (0, 399, 799):
        np.testing.assert_allclose(out[i, 0], y[starts[i] : ends[i]].min(axis=0), rtol=1e-6)
        np.testing.assert_allclose(out[i, 1], y[starts[i] : ends[i]].max(axis=0), rtol=1e-6)
    assert out[:, 1, 2].max() == 50.0


def test_minmax_few_samples_nan_and_bad_columns():
    out = minmax_decimate(np.array([1.0, np.nan, 3.0]), 10)
    assert out.shape == (3, 2, 1)
    assert np.isnan(out[1]).all() and out[2, 0, 0] == 3.0
    mixed = minmax_decimate(np.array([1.0, np.nan, 3.0, 4.0]), 2)
    assert mixed[0, 0, 0] == 1.0 and mixed[0, 1, 0] == 1.0
    assert minmax_decimate(np.zeros((0, 2)), 5).shape == (0, 2, 2)
    with pytest.raises(ValueError, match="columns"):
        minmax_decimate(np.zeros(4), 0)


def chunk(n0: int, n: int = 4, fs: float = 100.0, ch: int = 2) -> AxisArray:
    data = np.arange(n0, n0 + n, dtype=float)[:, None] * np.ones(ch)
    return AxisArray(
        data,
        ["time", "ch"],
        axes={
            "time": LinearAxis(unit="s", gain=1 / fs, offset=n0 / fs),
            "ch": CoordinateAxis(data=np.array([f"c{i}" for i in range(ch)]), dims=["ch"]),
        },
        attrs={"unit": "uV"},
    )


def items(msgs: list, t0: float = 1000.0) -> list[TapItem]:
    return [TapItem(t0 + i * 0.04, m, message_nbytes(m)) for i, m in enumerate(msgs)]


def test_axisarrays_join_along_time_with_coordinates_attrs_and_received():
    x = to_data(items([chunk(0), chunk(4), chunk(8)]), "T")
    assert x.dims == ("time", "ch") and x.shape == (12, 2)
    np.testing.assert_array_equal(x.values[:, 0], np.arange(12))
    np.testing.assert_allclose(x["time"].values, np.arange(12) / 100.0)
    assert list(x["ch"].values) == ["c0", "c1"]
    assert x.attrs == {"unit": "uV", "topic": "T", "fs": 100.0}
    assert x["received"].dtype.kind == "M" and x["received"].dims == ("time",)


def test_a_channel_change_keeps_only_the_messages_since():
    x = to_data(items([chunk(0, ch=2), chunk(4, ch=3), chunk(8, ch=3)]))
    assert x.shape == (8, 3)


def test_messages_without_time_are_stacked():
    spec = AxisArray(np.ones((5, 2)), ["freq", "ch"], axes={"freq": LinearAxis(gain=2.0)})
    x = to_data(items([spec, spec]))
    assert x.dims == ("message", "freq", "ch") and x.shape == (2, 5, 2)
    np.testing.assert_allclose(x["freq"].values, np.arange(5) * 2.0)


@dataclass
class Event:
    n: int
    label: str


def test_dataclasses_become_a_frame_and_others_a_list():
    frame = to_data(items([Event(1, "a"), Event(2, "b")]))
    assert list(frame.columns) == ["received", "n", "label"]
    assert frame["n"].tolist() == [1, 2]
    assert to_data(items([1, 2])) == [1, 2]
    assert to_data([]) == []


def test_buffer_evicts_by_window_and_by_memory_and_keeps_the_newest():
    buf = TapBuffer(window_s=1.0, max_bytes=10_000)
    for i in range(30):
        buf.add(np.zeros(10), received=100.0 + i * 0.1)
    assert len(buf) == 11 and buf.received == 30 and buf.evicted == 19
    small = TapBuffer(window_s=100.0, max_bytes=1_000)
    for i in range(10):
        small.add(np.zeros(50), received=float(i))  # 400 bytes each
    assert len(small) == 2 and small.nbytes <= 1_000
    small.add(np.zeros(1_000), received=11.0)  # larger than the cap alone
    assert len(small) == 1
    with pytest.raises(ValueError, match="window_s"):
        TapBuffer(0, 10)


def test_describe_names_type_dims_axes_and_rate():
    info = describe(chunk(0))
    assert info["type"] == "AxisArray" and info["dims"] == ["time", "ch"]
    assert info["shape"] == (4, 2) and info["fs"] == 100.0
    assert "LinearAxis" in info["axes"]["time"]
    assert describe(Event(1, "a"))["fields"] == {"n": "int", "label": "str"}


def test_sweep_wraps_at_the_span_and_marks_the_cursor():
    t = np.arange(15) / 10  # 1.5 s at 10 Hz, on a 1 s sweep of 10 columns
    out, cursor = sweep_decimate(t, np.arange(15.0), span=1.0, columns=10)
    assert cursor == 4
    np.testing.assert_array_equal(out[:, 0, 0], [10, 11, 12, 13, 14, 5, 6, 7, 8, 9])
    empty, _ = sweep_decimate(np.array([0.05]), np.array([1.0]), span=1.0, columns=10)
    assert np.isnan(empty[1:]).all() and empty[0, 1, 0] == 1.0


def test_build_frame_chooses_the_view_and_selects_channels():
    items_ = items([chunk(k * 4, ch=3) for k in range(10)])
    frame = build_frame(items_, 16, 0.2)
    assert frame.view == "sweep" and frame.minmax.shape == (16, 2, 3)
    assert frame.all_channels == ["c0", "c1", "c2"] and frame.lo == 20.0 and frame.hi == 39.0
    picked = build_frame(items_, 16, 0.2, selected=[2])
    assert picked.channels == ["c2"] and picked.minmax.shape == (16, 2, 1)
    spec = AxisArray(np.arange(10.0)[:, None], ["freq", "ch"], axes={"freq": LinearAxis(gain=5.0)})
    sframe = build_frame(items([spec]), 5, 1.0)
    assert sframe.view == "spectrum" and (sframe.x0, sframe.x1) == (0.0, 45.0)
    np.testing.assert_array_equal(sframe.minmax[:, 1, 0], [1, 3, 5, 7, 9])
    none = build_frame(items([Event(1, "a")]), 5, 1.0)
    assert none.view == "none" and "Event" in none.note
