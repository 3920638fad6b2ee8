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
        shape = _other_shape(last, tdim)
        run = []
        horizon = None
        for it in reversed(items):
            m = it.message
            if not is_axisarray(m) or list(m.dims) != list(last.dims):
                break
            if _other_shape(m, tdim) != shape:
                break
            t = axis_values(m, tdim)
            if t is None:
                break
            if horizon is None:
                horizon = t[-1] - span_s if len(t) else None
            run.append((t, m))
            if horizon is not None and len(t) and t[-1] < horizon:
                break
        run.reverse()
        t = np.concatenate([r[0] for r in run])
        y, every = _as_2d_many([r[1] for r in run], tdim)
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
