"""What a scope draws, computed in the kernel: the view chosen from the message's dims
(:mod:`.scope_views` has the rules) and its data reduced to the pixels that show it, as
float32 bytes for the browser. Pure numpy (no ezmsg).

- sweep and spectrum: a (min, max) pair per pixel column;
- image: block means to at most the canvas' pixels (a spectrogram's lanes share its
  height);
- scatter: the newest ``MAX_POINTS`` points per set of the messages received in the last
  ``span`` seconds, and how many older ones were left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .decimate import block_mean, minmax_decimate, sweep_decimate
from .scope_views import (
    FREQ_DIMS,
    VIEWS,
    cannot_draw,
    check_view,
    check_view_name,
    choose_view,
    dim_size,
    freq_dim,
    image_plan,
    is_points_array,
    xy_dim,
)
from .tap_buffer import TapItem
from .tap_convert import axis_values, is_axisarray, time_dim

__all__ = [
    "MAX_POINTS",
    "VIEWS",
    "ScopeFrame",
    "SweepCache",
    "build_frame",
    "check_view",
    "choose_view",
]

MAX_POINTS = 2000  # per point set and frame


@dataclass
class ScopeFrame:
    """One frame: ``values`` (float32) and how to read it.

    ``values`` is, by view: sweep and spectrum, columns × 2 (min, max) × channels; image,
    lanes × rows × columns (rows top to bottom); scatter, sets × points × 2 (x, y).
    """

    view: str  # "sweep", "spectrum", "image", "scatter" or "none"
    values: np.ndarray
    channels: list[str]
    x0: float = 0.0  # x axis at the first and last column (s, Hz, a dim's values)
    x1: float = 0.0
    cursor: int = -1  # sweep: the column of the newest sample
    lo: float = float("nan")  # range of the finite values drawn (scatter: y)
    hi: float = float("nan")
    note: str = ""  # why nothing is drawn
    all_channels: list[str] = field(default_factory=list)  # before selection
    y0: float = 0.0  # image: the top and bottom rows' axis values
    y1: float = 0.0
    xdim: str = ""  # image: the dims across and down
    ydim: str = ""
    dropped: int = 0  # scatter: points in the window not drawn (over MAX_POINTS)

    @property
    def minmax(self) -> np.ndarray:
        """``values`` of a sweep or spectrum (columns × 2 × channels)."""
        return self.values

    def header(self) -> dict[str, Any]:
        """The JSON half of a frame (the bytes travel separately)."""
        shape = self.values.shape
        head: dict[str, Any] = {
            "view": self.view,
            "x0": float(self.x0),
            "x1": float(self.x1),
            "lo": None if not np.isfinite(self.lo) else float(self.lo),
            "hi": None if not np.isfinite(self.hi) else float(self.hi),
            "note": self.note,
        }
        if self.view == "image":
            lanes, rows, columns = shape
            head |= {"channels": lanes, "rows": rows, "columns": columns, "y0": self.y0}
            head |= {"y1": self.y1, "xdim": self.xdim, "ydim": self.ydim}
        elif self.view == "scatter":
            sets, points, _ = shape
            head |= {"channels": sets, "points": points, "dropped": self.dropped}
        else:
            columns, _, channels = shape
            head |= {"channels": channels, "columns": columns, "cursor": self.cursor}
        return {k: (int(v) if isinstance(v, (int, np.integer)) else v) for k, v in head.items()}


def _labels(msg: Any, dims: list[str]) -> list[str]:
    """One label per entry of ``dims`` flattened (C order), from their coordinates."""
    if not dims:
        return ["0"]
    labels: list[str] = []
    grids = [axis_values(msg, d) for d in dims]
    for idx in np.ndindex(*[dim_size(msg, d) for d in dims]):
        parts = []
        for k, i in enumerate(idx):
            values = grids[k]
            parts.append(str(values[i]) if values is not None else str(i))
        labels.append("|".join(parts))
    return labels


def _as_2d(msg: Any, along: str) -> tuple[np.ndarray, list[str]]:
    """``data`` as (samples along ``along``) × channels, other dims flattened, with
    channel labels from their coordinates."""
    axis = msg.dims.index(along)
    data = np.moveaxis(msg.data, axis, 0)
    flat = data.reshape(data.shape[0], -1)
    return flat, _labels(msg, [d for d in msg.dims if d != along])


def _none(note: str) -> ScopeFrame:
    return ScopeFrame("none", np.zeros((0, 2, 0), np.float32), [], note=note)


def _coords(msg: Any, dim: str) -> np.ndarray:
    values = axis_values(msg, dim)
    if values is None or values.dtype.kind not in "iuf":
        return np.arange(dim_size(msg, dim), dtype=float)
    return values


def build_frame(
    items: list[TapItem],
    columns: int,
    span_s: float,
    selected: list[int] | None = None,
    view: str = "auto",
    rows: int | None = None,
    cache: SweepCache | None = None,
) -> ScopeFrame:
    """The frame for the newest ``span_s`` of ``items`` at ``columns`` × ``rows`` pixels.

    ``selected`` keeps those channel indices (image lanes, point sets; None or empty:
    all). ``view`` forces a view; a message it cannot draw gives a ``none`` frame whose
    note says why. ``rows`` (default ``columns``) bounds an image's height. ``cache``:
    a :class:`SweepCache` the caller keeps from one frame to the next (a scope's), so a
    sweep reads only the messages that arrived since the last frame.
    """
    if not items:
        return _none("no data yet")
    last = items[-1].message
    if view == "auto":
        view = choose_view(last)
        if view == "none":
            kind = type(last).__name__
            return _none(
                "a scope draws AxisArrays with a time or freq dim, two dims longer than 1, "
                f"or an (x, y) dim, and (N, 2) arrays of points; not this {kind}"
            )
        forced = False
    else:
        check_view_name(view)
        reason = cannot_draw(last, view)
        if reason:
            return _none(f"cannot draw this message as a {view}: {reason}")
        forced = True
    if view == "scatter":
        frame = _scatter_frame(items, span_s, selected, forced)
    elif view == "image":
        frame = _image_frame(items, columns, rows or columns, span_s, selected, forced)
    elif view == "sweep":
        frame = _sweep_frame(items, columns, span_s, selected, cache)
    else:
        frame = _spectrum_frame(last, columns, selected)
    if frame.view in ("sweep", "spectrum", "image"):
        finite = frame.values[np.isfinite(frame.values)]
        if finite.size:
            frame.lo, frame.hi = float(finite.min()), float(finite.max())
    return frame


def _sweep_frame(
    items: list[TapItem],
    columns: int,
    span_s: float,
    selected: list[int] | None,
    cache: SweepCache | None = None,
) -> ScopeFrame:
    tdim = time_dim(items[-1].message)
    assert tdim is not None  # choose_view / cannot_draw only pick a sweep with one
    msgs, t, y = _sweep_run(items, tdim, span_s, cache)
    if t is None:
        return _none(f"the {tdim!r} axis has no sample period (gain) to draw a sweep")
    _, every = _as_2d(msgs[-1], tdim)
    y, labels = _select(y, every, selected)
    minmax, cursor = sweep_decimate(t, y, span_s, columns)
    return ScopeFrame("sweep", minmax, labels, 0.0, span_s, cursor, all_channels=every)


def _spectrum_frame(last: Any, columns: int, selected: list[int] | None) -> ScopeFrame:
    fdim = freq_dim(last)
    assert fdim is not None  # choose_view / cannot_draw only pick a spectrum with one
    tdim = time_dim(last)
    if tdim is not None and tdim != fdim:  # forced on a spectrogram: its newest slice
        last = _newest_slice(last, tdim)
    y, every = _as_2d(last, fdim)
    y, labels = _select(y, every, selected)
    f = _coords(last, fdim)
    return ScopeFrame(
        "spectrum", minmax_decimate(y, columns), labels, f[0], f[-1], all_channels=every
    )


@dataclass
class _Slice:
    data: np.ndarray
    dims: list[str]
    axes: dict[str, Any]


def _newest_slice(msg: Any, tdim: str) -> _Slice:
    """``msg`` at its newest ``tdim`` sample, without that dim."""
    axis = msg.dims.index(tdim)
    data = np.take(msg.data, -1, axis=axis)
    dims = [d for d in msg.dims if d != tdim]
    return _Slice(data, dims, {k: v for k, v in msg.axes.items() if k != tdim})


def _image_frame(
    items: list[TapItem],
    columns: int,
    rows: int,
    span_s: float,
    selected: list[int] | None,
    forced: bool,
) -> ScopeFrame:
    last = items[-1].message
    planned = image_plan(last, forced)
    assert planned is not None  # choose_view / cannot_draw checked it
    kind, plan = planned
    tdim = time_dim(last)
    if kind == "snapshot":
        rdim, cdim = plan
        msg = _newest_slice(last, tdim) if tdim is not None else last
        data = np.moveaxis(msg.data, [msg.dims.index(rdim), msg.dims.index(cdim)], [0, 1])
        image = data.reshape(dim_size(msg, rdim), dim_size(msg, cdim))[None]
        xv, yv = _coords(msg, cdim), _coords(msg, rdim)
        values = block_mean(image, rows, columns)
        return ScopeFrame(
            "image",
            values,
            [f"{rdim} × {cdim}"],
            float(xv[0]),
            float(xv[-1]),
            y0=float(yv[0]),
            y1=float(yv[-1]),
            xdim=cdim,
            ydim=rdim,
        )
    (rdim,) = plan
    assert tdim is not None  # a "time" plan has a time dim
    msgs, t, _ = _sweep_run(items, tdim, span_s, samples=False)
    if t is None:
        return _none(f"the {tdim!r} axis has no sample period (gain) to draw over time")
    rest = [d for d in last.dims if d not in (tdim, rdim)]
    every = _labels(last, rest)
    axis = last.dims.index(tdim)
    data = np.concatenate([m.data for m in msgs], axis=axis)
    data = np.moveaxis(data, [axis, last.dims.index(rdim)], [0, 1])
    data = data.reshape(data.shape[0], data.shape[1], -1)  # time × rows × lanes
    if selected:
        keep = [i for i in selected if 0 <= i < data.shape[2]]
        data, labels = data[:, :, keep], [every[i] for i in keep]
    else:
        labels = every
    image = np.transpose(data, (2, 1, 0))  # lanes × rows × time
    yv = _coords(last, rdim)
    y0, y1 = float(yv[0]), float(yv[-1])
    if rdim in FREQ_DIMS:  # frequency upwards
        image, y0, y1 = image[:, ::-1], y1, y0
    lane_rows = max(1, rows // max(1, image.shape[0]))
    values = block_mean(image, lane_rows, columns)
    return ScopeFrame(
        "image",
        values,
        labels,
        float(t[0] - t[-1]),
        0.0,
        all_channels=every if len(every) > 1 else [],
        y0=y0,
        y1=y1,
        xdim=tdim,
        ydim=rdim,
    )


def _points(msg: Any, xy: str | None, tdim: str | None) -> np.ndarray:
    """``msg`` as points × sets × 2."""
    if xy is None:
        return np.asarray(msg)[:, None, :]
    dims = msg.dims
    pdim = tdim if tdim is not None else next((d for d in dims if d != xy), None)
    if pdim is None:
        return np.asarray(msg.data).reshape(1, 1, 2)
    data = np.moveaxis(msg.data, [dims.index(pdim), dims.index(xy)], [0, -1])
    return np.reshape(data, (data.shape[0], -1, 2))


def _scatter_frame(
    items: list[TapItem], span_s: float, selected: list[int] | None, forced: bool
) -> ScopeFrame:
    last = items[-1].message
    if is_points_array(last):
        xy = tdim = None
        every = ["0"]

        def same(m: Any) -> bool:
            return is_points_array(m)
    else:
        xy = xy_dim(last, forced)
        tdim = time_dim(last)
        pdim = tdim if tdim is not None else next((d for d in last.dims if d != xy), None)
        every = _labels(last, [d for d in last.dims if d not in (pdim, xy)])
        shape = _points(last, xy, tdim).shape[1:]

        def same(m: Any) -> bool:
            return (
                is_axisarray(m) and m.dims == last.dims and _points(m, xy, tdim).shape[1:] == shape
            )

    horizon = items[-1].received - span_s
    chunks: list[np.ndarray] = []
    taken = total = 0
    for it in reversed(items):
        if it.received < horizon or not same(it.message):
            break
        pts = _points(it.message, xy, tdim)
        total += pts.shape[0]
        if taken < MAX_POINTS:
            chunks.append(pts)
            taken += pts.shape[0]
    points = np.concatenate(chunks[::-1], axis=0)[-MAX_POINTS:]
    labels = every
    if selected:
        keep = [i for i in selected if 0 <= i < points.shape[1]]
        points, labels = points[:, keep], [every[i] for i in keep]
    values = np.ascontiguousarray(np.transpose(points, (1, 0, 2)), dtype=np.float32)
    frame = ScopeFrame(
        "scatter",
        values,
        labels,
        all_channels=every if len(every) > 1 else [],
        dropped=total - points.shape[0],
    )
    x, y = values[..., 0], values[..., 1]
    if np.isfinite(x).any() and np.isfinite(y).any():
        frame.x0, frame.x1 = float(np.nanmin(x)), float(np.nanmax(x))
        frame.lo, frame.hi = float(np.nanmin(y)), float(np.nanmax(y))
    return frame


class SweepCache:
    """What a sweep read of the messages in its last frame, kept by a scope for the next:
    the run of messages it drew (oldest first) with each one's time offset, sample period
    and number of samples, and what they share (time dim, class, dims, non-time shape).
    A frame then reads only the messages that arrived since (a few, at 20 frames/s)."""

    def __init__(self) -> None:
        self.key: tuple[Any, ...] | None = None
        self.items: list[TapItem] = []
        self.offsets: list[float] = []
        self.gains: list[float] = []
        self.counts: list[int] = []
        # The run's samples as one (samples, channels) array, oldest first.
        self.flat: np.ndarray | None = None


# How far back from the newest message a frame looks for the last frame's newest one.
_CACHE_LOOKBACK = 512


def _run_entry(m: Any, key: tuple[Any, ...]) -> tuple[float, float, int] | None:
    """(time offset, sample period, samples) of a message that continues a sweep run
    of ``key`` (time dim, class, dims, non-time shape); None if it does not."""
    tdim, cls, dims, other = key
    if (type(m) is not cls and not is_axisarray(m)) or tuple(m.dims) != dims:
        return None
    shape = m.data.shape
    axis = dims.index(tdim)
    if shape[:axis] + shape[axis + 1 :] != other:
        return None
    ax = m.axes.get(tdim)
    gain = getattr(ax, "gain", None)
    if not gain:
        return None
    return float(ax.offset), float(gain), shape[axis]


def _sweep_run(
    items: list[TapItem],
    tdim: str,
    span_s: float,
    cache: SweepCache | None = None,
    samples: bool = True,
) -> tuple[list[Any], Any, Any]:
    """The newest messages like the last one (same dims and non-time shape) covering
    ``span_s``, oldest first, their sample times, and their samples as one (samples,
    channels) array (None with ``samples=False``).

    A frame looks at ~1,000 messages 20 times a second: with a scope's ``cache`` it
    reads only those that arrived since the last frame (the buffer only appends at its
    end and drops from its start) and copies only their samples; the times are computed
    for all samples at once.
    """
    last = items[-1].message
    key = (tdim, type(last), tuple(last.dims), _other_shape(last, tdim))
    run = cache if cache is not None else SweepCache()
    found = None  # where the last frame's newest message is in items now
    if run.key == key and run.items:
        newest = run.items[-1]
        for j in range(len(items) - 1, max(-1, len(items) - 1 - _CACHE_LOOKBACK), -1):
            if items[j] is newest:
                found = j
                break
    if found is not None:
        # The buffer dropped from its start: the run's oldest messages may be gone too.
        _drop_front(run, len(run.items) - (found + 1))
    # Read back from the newest: to the last frame's newest, or (none kept) until the
    # run ends or reaches back past the span.
    reset = found is None
    new: list[tuple[TapItem, tuple[float, float, int]]] = []
    for j in range(len(items) - 1, -1 if found is None else found, -1):
        entry = _run_entry(items[j].message, key)
        if entry is None:
            reset = True  # the run starts after this message
            break
        new.append((items[j], entry))
        if found is None and _end(entry) < _end(new[0][1]) - span_s:
            break
    if reset or run.key != key:
        run.key = key
        run.items, run.offsets, run.gains, run.counts = [], [], [], []
        run.flat = None
    axis = key[2].index(tdim)
    for it, (offset, gain, n) in reversed(new):
        run.items.append(it)
        run.offsets.append(offset)
        run.gains.append(gain)
        run.counts.append(n)
    if not run.items:
        return [], None, None
    if new and samples:
        added = _flat([it.message for it, _ in reversed(new)], axis)
        run.flat = added if run.flat is None else np.concatenate([run.flat, added])
    offsets, gains = np.asarray(run.offsets), np.asarray(run.gains)
    counts_a = np.asarray(run.counts)
    ends = offsets + gains * (counts_a - 1)
    # The newest span, and the one message before it that reaches back past its start.
    before = np.flatnonzero(ends < ends[-1] - span_s)
    if before.size:
        k = int(before[-1])
        _drop_front(run, k)
        offsets, gains, counts_a = offsets[k:], gains[k:], counts_a[k:]
    msgs = [it.message for it in run.items]
    starts = np.repeat(np.cumsum(counts_a) - counts_a, counts_a)
    index = np.arange(int(counts_a.sum())) - starts
    t = np.repeat(offsets, counts_a) + index * np.repeat(gains, counts_a)
    return msgs, t, run.flat


def _flat(msgs: list[Any], axis: int) -> np.ndarray:
    """Messages' samples as one (samples, channels) array: time first, the rest flat."""
    data = np.concatenate([m.data for m in msgs], axis=axis)
    return np.moveaxis(data, axis, 0).reshape(data.shape[axis], -1)


def _drop_front(run: SweepCache, k: int) -> None:
    """Forget the run's ``k`` oldest messages (and their samples)."""
    if k <= 0:
        return
    samples = sum(run.counts[:k])
    del run.items[:k], run.offsets[:k], run.gains[:k], run.counts[:k]
    if run.flat is not None:
        run.flat = run.flat[samples:]


def _end(entry: tuple[float, float, int]) -> float:
    offset, gain, n = entry
    return offset + gain * (n - 1)


def _other_shape(msg: Any, dim: str) -> tuple[int, ...]:
    shape = list(msg.data.shape)
    shape.pop(msg.dims.index(dim))
    return tuple(shape)


def _select(
    y: np.ndarray, labels: list[str], selected: list[int] | None
) -> tuple[np.ndarray, list[str]]:
    if not selected:
        return y, labels
    keep = [i for i in selected if 0 <= i < y.shape[1]]
    return y[:, keep], [labels[i] for i in keep]
