"""Tap stores without ezmsg's runtime: decimation, the ring buffer, AxisArray -> xarray."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from ezmsg.util.messages.axisarray import AxisArray, CoordinateAxis, LinearAxis

from ezmsg_lab.model.decimate import block_mean, minmax_decimate, sweep_decimate
from ezmsg_lab.model.scope_frame import MAX_POINTS, build_frame, check_view, choose_view
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


def arr(data: np.ndarray, dims: list[str], fs: float | None = None, **axes) -> AxisArray:
    if fs is not None:
        axes["time"] = LinearAxis(unit="s", gain=1 / fs, offset=0.0)
    return AxisArray(np.asarray(data, dtype=float), dims, axes=axes)


def test_view_rules_for_each_kind_of_message():
    xy = CoordinateAxis(np.array(["x", "y"]), ["xy"])
    cases = {
        "sweep": [arr(np.zeros((10, 2)), ["time", "ch"], 100.0)],  # 2 channels: not points
        "spectrum": [arr(np.zeros((5, 3)), ["freq", "ch"])],
        "image": [
            arr(np.zeros((4, 5)), ["y", "x"]),
            arr(np.zeros((3, 4, 5)), ["time", "y", "x"], 100.0),  # its newest slice
            arr(np.zeros((1, 6, 2)), ["time", "freq", "ch"], 10.0),  # a spectrogram
            arr(np.zeros((4, 1, 5)), ["y", "ch", "x"]),  # length-1 dims do not count
        ],
        "scatter": [
            arr(np.zeros((10, 2)), ["point", "xy"]),
            arr(np.zeros((10, 2)), ["time", "pos"], 100.0),
            arr(
                np.zeros((10, 2)),
                ["time", "axis"],
                100.0,
                axis=CoordinateAxis(np.array(["x", "y"]), ["axis"]),
            ),
            arr(np.zeros((10, 3, 2)), ["time", "ch", "xy"], 100.0, xy=xy),
            np.zeros((7, 2)),
        ],
        "none": [
            arr(np.zeros((2, 3, 4)), ["a", "b", "c"]),  # three image dims: which two?
            arr(np.zeros(5), ["ch"]),
            np.zeros((7, 3)),
            "text",
        ],
    }
    for view, msgs in cases.items():
        for msg in msgs:
            assert choose_view(msg) == view, (view, getattr(msg, "dims", msg))


def test_a_forced_view_says_what_it_cannot_draw_and_what_can():
    series = arr(np.zeros((10, 2)), ["time", "ch"], 100.0)
    for view in ("sweep", "image", "scatter"):  # image: a raster; scatter: ch0 vs ch1
        check_view(series, view)
    with pytest.raises(ValueError, match=r"view='spectrum'.*no freq dim.*sweep, image, scatter"):
        check_view(series, "spectrum")
    with pytest.raises(ValueError, match=r"view='scope'.*auto, sweep, spectrum, image, scatter"):
        check_view(series, "scope")
    with pytest.raises(ValueError, match=r"\(N, 2\) array.*scatter"):
        check_view(np.zeros((5, 2)), "image")
    with pytest.raises(ValueError, match="no view can draw it"):
        check_view("text", "sweep")
    check_view(None, "image")  # no message yet: the name alone is checked
    with pytest.raises(ValueError, match="not a scope view"):
        build_frame(items([series]), 10, 1.0, view="imag")
    three = arr(np.zeros((10, 3)), ["time", "ch"], 100.0)
    frame = build_frame(items([three]), 10, 1.0, view="scatter")
    assert frame.view == "none" and "length 2" in frame.note


def test_block_mean_equals_numpy_block_means_and_keeps_small_images():
    gradient = np.tile(np.arange(800.0), (300, 1)) + 1000 * np.arange(300)[:, None]
    out = block_mean(gradient, 100, 200)
    assert out.shape == (100, 200) and out.dtype == np.float32
    want = gradient.reshape(100, 3, 200, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(out, want, rtol=1e-6)
    board = (np.indices((6, 6)).sum(axis=0) % 2).astype(float)  # a checkerboard
    np.testing.assert_array_equal(block_mean(board, 3, 3), np.full((3, 3), 0.5))
    uneven = np.arange(7.0)[None]  # 7 columns into 3: blocks of 2, 2, 3
    np.testing.assert_allclose(block_mean(uneven, 1, 3), [[0.5, 2.5, 5.0]])
    assert block_mean(board, 10, 10) is not None and block_mean(board, 10, 10).shape == (6, 6)
    with_nan = np.array([[1.0, np.nan, np.nan, np.nan]])
    np.testing.assert_array_equal(block_mean(with_nan, 1, 2), [[1.0, np.nan]])
    with pytest.raises(ValueError, match="rows"):
        block_mean(board, 0, 3)


def test_image_frame_of_the_newest_slice_is_reduced_to_the_canvas():
    old = arr(np.zeros((1, 40, 60)), ["time", "y", "x"], 10.0)
    img = np.arange(40 * 60, dtype=float).reshape(40, 60)
    new = arr(img[None], ["time", "y", "x"], 10.0, x=LinearAxis(gain=0.5, offset=1.0))
    frame = build_frame(items([old, new]), 30, 1.0, rows=20)
    assert frame.view == "image" and frame.values.shape == (1, 20, 30)
    np.testing.assert_allclose(frame.values[0], img.reshape(20, 2, 30, 2).mean(axis=(1, 3)))
    assert (frame.x0, frame.x1, frame.y0, frame.y1) == (1.0, 30.5, 0.0, 39.0)
    head = frame.header()
    assert head | {"note": ""} == {
        "view": "image",
        "channels": 1,
        "rows": 20,
        "columns": 30,
        "x0": 1.0,
        "x1": 30.5,
        "y0": 0.0,
        "y1": 39.0,
        "xdim": "x",
        "ydim": "y",
        "lo": float(frame.values.min()),
        "hi": float(frame.values.max()),
        "note": "",
    }
    assert len(frame.values.tobytes()) == 20 * 30 * 4
    assert frame.all_channels == []  # nothing to choose: no channel boxes


def test_spectrogram_runs_time_across_and_frequency_upwards_one_lane_a_channel():
    msgs = []
    for k in range(8):  # (time=1, freq=4, ch=2) per message, value = 10 k + freq index
        data = (10.0 * k + np.arange(4))[None, :, None] * np.array([1.0, -1.0])
        msgs.append(
            AxisArray(
                data,
                ["time", "freq", "ch"],
                axes={
                    "time": LinearAxis(unit="s", gain=0.1, offset=0.1 * k),
                    "freq": LinearAxis(gain=5.0),
                    "ch": CoordinateAxis(np.array(["a", "b"]), ["ch"]),
                },
            )
        )
    frame = build_frame(items(msgs), 100, 10.0, rows=100)
    assert frame.view == "image" and frame.values.shape == (2, 4, 8)
    assert frame.all_channels == ["a", "b"] and (frame.xdim, frame.ydim) == ("time", "freq")
    np.testing.assert_allclose(frame.values[0, -1], 10.0 * np.arange(8))  # 0 Hz at the bottom
    np.testing.assert_allclose(frame.values[0, :, -1], [73, 72, 71, 70])  # newest at right
    np.testing.assert_allclose(frame.values[1], -frame.values[0])
    assert (frame.y0, frame.y1) == (15.0, 0.0)
    assert frame.x0 == pytest.approx(-0.7) and frame.x1 == 0.0
    only_b = build_frame(items(msgs), 4, 10.0, selected=[1], rows=100)
    assert only_b.channels == ["b"] and only_b.values.shape == (1, 4, 4)
    np.testing.assert_allclose(only_b.values[0, -1], -10.0 * np.array([0.5, 2.5, 4.5, 6.5]))


def test_scatter_keeps_the_newest_points_in_order_and_counts_the_rest():
    rng = np.random.default_rng(1)
    clouds = [rng.normal(size=(300, 2)) for _ in range(10)]  # 3,000 points in the window
    frame = build_frame(items(clouds), 800, 10.0)
    assert frame.view == "scatter" and frame.values.shape == (1, MAX_POINTS, 2)
    np.testing.assert_array_equal(
        frame.values[0], np.concatenate(clouds)[-MAX_POINTS:].astype(np.float32)
    )
    assert frame.dropped == 1000
    head = frame.header()
    assert head["points"] == MAX_POINTS and head["dropped"] == 1000 and head["channels"] == 1
    assert head["x0"] == pytest.approx(frame.values[0, :, 0].min())
    assert head["hi"] == pytest.approx(frame.values[0, :, 1].max())
    assert len(frame.values.tobytes()) == MAX_POINTS * 2 * 4
    recent = build_frame(items(clouds), 800, 0.1)  # messages 0.04 s apart: the last 3
    assert recent.values.shape == (1, 900, 2) and recent.dropped == 0


def test_scatter_of_point_sets_over_time_selects_sets():
    msgs = []
    for k in range(3):  # (time=2, ch=2, xy): x = sample number, y = channel
        n = np.arange(2 * k, 2 * k + 2, dtype=float)
        data = np.stack([np.stack([n, np.full(2, c)], -1) for c in (0.0, 1.0)], 1)
        msgs.append(
            AxisArray(
                data,
                ["time", "ch", "xy"],
                axes={
                    "time": LinearAxis(unit="s", gain=0.01, offset=0.02 * k),
                    "ch": CoordinateAxis(np.array(["L", "R"]), ["ch"]),
                },
            )
        )
    frame = build_frame(items(msgs), 800, 10.0)
    assert frame.view == "scatter" and frame.values.shape == (2, 6, 2)
    np.testing.assert_array_equal(frame.values[1, :, 0], np.arange(6))
    np.testing.assert_array_equal(frame.values[1, :, 1], np.ones(6))
    assert frame.all_channels == ["L", "R"]
    right = build_frame(items(msgs), 800, 10.0, selected=[1])
    assert right.channels == ["R"] and (right.lo, right.hi) == (1.0, 1.0)


def test_a_scopes_kept_sweep_equals_a_fresh_one_frame_after_frame():
    # A scope keeps what its last frame read (SweepCache) and reads only the messages
    # that arrived since. Whatever the buffer does between frames (a few new messages,
    # none, a burst longer than the look-back, its oldest dropped, the channel count
    # changing, a message of another kind), each frame equals one computed from scratch.
    from ezmsg_lab.model.scope_frame import SweepCache

    rng = np.random.default_rng(1)
    stream = []
    n0 = 0
    for k in range(2400):
        ch = 3 if 1950 <= k < 2050 else 2  # a channel change, and back
        msg = chunk(n0, n=4, ch=ch)
        msg.data[:] = rng.normal(size=msg.data.shape)
        stream.append(msg)
        n0 += 4
    stream[2100] = Event(1, "not a sweep")  # another kind in between
    all_items = items(stream)
    cache, start, end = SweepCache(), 0, 1
    steps = [5] * 40 + [0, 0] + [700] + [3] * 30 + [1] * 20 + [300] * 3 + [4] * 100 + [100]
    for step in steps:
        end = min(len(all_items), end + step)
        # the buffer's window: some shorter than the span (its oldest dropped first)
        start = max(start, end - int(rng.choice([12, 20, 400])) + int(rng.integers(0, 5)))
        window = all_items[start:end]
        if isinstance(window[-1].message, Event):
            continue
        kept = build_frame(window, 64, 1.0, cache=cache)
        fresh = build_frame(window, 64, 1.0)
        assert kept.view == fresh.view == "sweep"
        np.testing.assert_array_equal(kept.values, fresh.values)
        assert (kept.cursor, kept.channels) == (fresh.cursor, fresh.channels)
    assert end == len(all_items)
    assert cache.items and cache.flat is not None
    assert cache.flat.shape[0] == sum(cache.counts)
