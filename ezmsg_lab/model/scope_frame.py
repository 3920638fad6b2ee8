"""What a scope draws, computed in the kernel: a view chosen from the message's dims and
min/max per pixel column, as float32 bytes for the browser. Pure numpy (no ezmsg).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .decimate import minmax_decimate, sweep_decimate
from .tap_buffer import TapItem
from .tap_convert import axis_values, is_axisarray, time_dim

FREQ_DIMS = ("freq", "frequency", "f")


@dataclass
class ScopeFrame:
    """One frame: ``minmax`` (columns × 2 × channels, float32) and how to read it."""

    view: str  # "sweep", "spectrum" or "none"
    minmax: np.ndarray
    channels: list[str]
    x0: float = 0.0  # x axis at the first and last column (s for sweep, Hz for spectrum)
    x1: float = 0.0
    cursor: int = -1  # sweep: the column of the newest sample
    lo: float = float("nan")  # range of the finite values drawn
    hi: float = float("nan")
    note: str = ""  # why nothing is drawn
    all_channels: list[str] = field(default_factory=list)  # before selection

    def header(self) -> dict[str, Any]:
        """The JSON half of a frame (the bytes travel separately)."""
        columns, _, channels = self.minmax.shape
        return {
            "view": self.view,
            "columns": int(columns),
            "channels": int(channels),
            "x0": float(self.x0),
            "x1": float(self.x1),
            "cursor": int(self.cursor),
            "lo": None if not np.isfinite(self.lo) else float(self.lo),
            "hi": None if not np.isfinite(self.hi) else float(self.hi),
            "note": self.note,
        }


def choose_view(msg: Any) -> str:
    """``sweep`` for a time dimension, ``spectrum`` for a frequency one, else ``none``."""
    if not is_axisarray(msg):
        return "none"
    if time_dim(msg) is not None:
        return "sweep"
    if any(d in FREQ_DIMS for d in msg.dims):
        return "spectrum"
    return "none"


def _as_2d(msg: Any, along: str) -> tuple[np.ndarray, list[str]]:
    """``data`` as (samples along ``along``) × channels, other dims flattened, with
    channel labels from their coordinates."""
    axis = msg.dims.index(along)
    data = np.moveaxis(msg.data, axis, 0)
    rest = [d for d in msg.dims if d != along]
    flat = data.reshape(data.shape[0], -1)
    if not rest:
        return flat, ["0"]
    labels: list[str] = []
    grids = [axis_values(msg, d) for d in rest]
    sizes = [msg.data.shape[msg.dims.index(d)] for d in rest]
    for idx in np.ndindex(*sizes):
        parts = []
        for k, i in enumerate(idx):
            values = grids[k]
            parts.append(str(values[i]) if values is not None else str(i))
        labels.append("|".join(parts))
    return flat, labels


def build_frame(
    items: list[TapItem], columns: int, span_s: float, selected: list[int] | None = None
) -> ScopeFrame:
    """The frame for the newest ``span_s`` of ``items`` at ``columns`` pixel columns.

    ``selected`` keeps those channel indices (None or empty: all).
    """
    if not items:
        return ScopeFrame("none", np.zeros((0, 2, 0), np.float32), [], note="no data yet")
    last = items[-1].message
    view = choose_view(last)
    if view == "none":
        kind = type(last).__name__
        return ScopeFrame(
            "none",
            np.zeros((0, 2, 0), np.float32),
            [],
            note=f"a scope draws AxisArray messages with a time or freq dim, not {kind}",
        )
    if view == "sweep":
        tdim = time_dim(last)
        msgs, t = _sweep_run(items, tdim, span_s)
        if t is None:
            return ScopeFrame(
                "none",
                np.zeros((0, 2, 0), np.float32),
                [],
                note=f"the {tdim!r} axis has no sample period (gain) to draw a sweep",
            )
        y, every = _as_2d_many(msgs, tdim)
        y, labels = _select(y, every, selected)
        minmax, cursor = sweep_decimate(t, y, span_s, columns)
        frame = ScopeFrame("sweep", minmax, labels, 0.0, span_s, cursor, all_channels=every)
    else:
        fdim = next(d for d in last.dims if d in FREQ_DIMS)
        y, every = _as_2d(last, fdim)
        y, labels = _select(y, every, selected)
        f = axis_values(last, fdim)
        f = np.arange(y.shape[0], dtype=float) if f is None else f
        frame = ScopeFrame(
            "spectrum", minmax_decimate(y, columns), labels, f[0], f[-1], all_channels=every
        )
    finite = frame.minmax[np.isfinite(frame.minmax)]
    if finite.size:
        frame.lo, frame.hi = float(finite.min()), float(finite.max())
    return frame


def _sweep_run(items: list[TapItem], tdim: str, span_s: float) -> tuple[list[Any], Any]:
    """The newest messages like the last one (same dims and non-time shape) covering
    ``span_s``, oldest first, and their sample times.

    A frame looks at ~1,000 messages 20 times a second: the per-message work is kept to
    attribute reads, and the times are computed for all samples at once.
    """
    last = items[-1].message
    dims = list(last.dims)
    axis = dims.index(tdim)
    other = _other_shape(last, tdim)
    msgs: list[Any] = []
    offsets: list[float] = []
    gains: list[float] = []
    counts: list[int] = []
    horizon = None
    cls = type(last)
    for it in reversed(items):
        m = it.message
        if (type(m) is not cls and not is_axisarray(m)) or m.dims != dims:
            break
        shape = m.data.shape
        if shape[:axis] + shape[axis + 1 :] != other:
            break
        ax = m.axes.get(tdim)
        gain = getattr(ax, "gain", None)
        if not gain:
            break
        n = shape[axis]
        end = float(ax.offset) + float(gain) * (n - 1)
        if horizon is None:
            horizon = end - span_s
        msgs.append(m)
        offsets.append(float(ax.offset))
        gains.append(float(gain))
        counts.append(n)
        if end < horizon:
            break
    if not msgs:
        return [], None
    msgs.reverse()
    counts_a = np.asarray(counts[::-1])
    starts = np.repeat(np.cumsum(counts_a) - counts_a, counts_a)
    index = np.arange(int(counts_a.sum())) - starts
    t = np.repeat(np.asarray(offsets[::-1]), counts_a) + index * np.repeat(
        np.asarray(gains[::-1]), counts_a
    )
    return msgs, t


def _other_shape(msg: Any, dim: str) -> tuple[int, ...]:
    shape = list(msg.data.shape)
    shape.pop(msg.dims.index(dim))
    return tuple(shape)


def _as_2d_many(msgs: list[Any], along: str) -> tuple[np.ndarray, list[str]]:
    _, labels = _as_2d(msgs[-1], along)
    axis = msgs[-1].dims.index(along)
    data = np.concatenate([m.data for m in msgs], axis=axis)
    flat = np.moveaxis(data, axis, 0).reshape(data.shape[axis], -1)
    return flat, labels


def _select(
    y: np.ndarray, labels: list[str], selected: list[int] | None
) -> tuple[np.ndarray, list[str]]:
    if not selected:
        return y, labels
    keep = [i for i in selected if 0 <= i < y.shape[1]]
    return y[:, keep], [labels[i] for i in keep]
