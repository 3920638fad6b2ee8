"""What a tap's messages become in a cell: xarray, DataFrames, lists and descriptions.

Pure and duck-typed (no ezmsg import): an ``AxisArray`` is anything with an ndarray
``data``, a list of ``dims`` and a dict of ``axes`` whose values are linear axes
(``gain``, ``offset``) or coordinate axes (``data``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .tap_buffer import TapItem

if TYPE_CHECKING:
    import xarray as xr


def is_axisarray(msg: Any) -> bool:
    return (
        isinstance(getattr(msg, "data", None), np.ndarray)
        and isinstance(getattr(msg, "dims", None), list)
        and isinstance(getattr(msg, "axes", None), dict)
    )


def time_dim(msg: Any) -> str | None:
    """The dimension messages follow each other along: ``"time"`` if present, else the
    first dimension with a linear axis in seconds."""
    if "time" in msg.dims:
        return "time"
    for dim in msg.dims:
        axis = msg.axes.get(dim)
        if hasattr(axis, "gain") and getattr(axis, "unit", "") == "s":
            return str(dim)
    return None


def axis_values(msg: Any, dim: str) -> np.ndarray | None:
    """Coordinate values of ``dim`` (None when the message has no axis for it)."""
    axis = msg.axes.get(dim)
    n = msg.data.shape[msg.dims.index(dim)]
    if axis is None:
        return None
    if hasattr(axis, "gain") and hasattr(axis, "offset"):
        return np.arange(n) * float(axis.gain) + float(axis.offset)
    values = getattr(axis, "data", None)
    if isinstance(values, np.ndarray) and values.ndim == 1 and len(values) == n:
        return values
    return None


def sample_rate(msg: Any) -> float | None:
    dim = time_dim(msg)
    axis = msg.axes.get(dim) if dim else None
    gain = getattr(axis, "gain", None)
    return 1.0 / float(gain) if gain else None


def _utc(seconds: np.ndarray) -> np.ndarray:
    return pd.to_datetime(seconds, unit="s", utc=True).tz_localize(None).values


def axisarrays_to_xarray(items: list[TapItem], topic: str = "") -> xr.DataArray:
    """Join a tap's AxisArray messages into one ``xarray.DataArray``.

    Messages are concatenated along their time dimension (``time`` or the first linear
    axis in seconds), with its coordinate from each message's own axis, plus a
    ``received`` coordinate on the same dimension: the Lab's receive time of each
    sample's message (UTC, naive ``datetime64``), the time base all taps share. Other
    dimensions take their coordinates from the newest message. When the other
    dimensions' shape changes (a channel added), only the messages since the change are
    joined. Without a time dimension, messages are stacked along a new ``message``
    dimension. ``attrs`` are the newest message's, plus ``topic`` and ``fs``.
    """
    import xarray as xr

    if not items:
        raise ValueError("no messages to join")
    last = items[-1].message
    tdim = time_dim(last)
    dims = list(last.dims)
    if tdim is None:
        run = [it for it in items if list(it.message.dims) == dims]
        run = _trailing_same_shape(run, lambda m: m.data.shape)
        data = np.stack([it.message.data for it in run])
        coords: dict[str, Any] = {"received": ("message", _utc(_received(run)))}
        for dim in dims:
            values = axis_values(last, dim)
            if values is not None:
                coords[dim] = (dim, values)
        return xr.DataArray(data, dims=["message", *dims], coords=coords, attrs=_attrs(last, topic))
    axis = dims.index(tdim)

    def other_shape(m: Any) -> tuple[int, ...]:
        shape = list(m.data.shape)
        shape.pop(axis)
        return tuple(shape)

    run = [it for it in items if list(it.message.dims) == dims]
    run = _trailing_same_shape(run, other_shape)
    data = np.concatenate([it.message.data for it in run], axis=axis)
    times = []
    received = []
    for it in run:
        n = it.message.data.shape[axis]
        values = axis_values(it.message, tdim)
        times.append(values if values is not None else np.full(n, np.nan))
        received.append(np.full(n, it.received))
    coords = {
        tdim: (tdim, np.concatenate(times)),
        "received": (tdim, _utc(np.concatenate(received))),
    }
    for dim in dims:
        if dim != tdim:
            values = axis_values(last, dim)
            if values is not None:
                coords[dim] = (dim, values)
    return xr.DataArray(data, dims=dims, coords=coords, attrs=_attrs(last, topic))


def _received(items: list[TapItem]) -> np.ndarray:
    return np.fromiter((it.received for it in items), dtype=float)


def _trailing_same_shape(items: list[TapItem], key: Any) -> list[TapItem]:
    if not items:
        return items
    want = key(items[-1].message)
    start = len(items)
    while start > 0 and key(items[start - 1].message) == want:
        start -= 1
    return items[start:]


def _attrs(msg: Any, topic: str) -> dict[str, Any]:
    attrs = dict(getattr(msg, "attrs", {}) or {})
    if topic:
        attrs["topic"] = topic
    fs = sample_rate(msg)
    if fs is not None:
        attrs["fs"] = fs
    key = getattr(msg, "key", "")
    if key:
        attrs["key"] = key
    return attrs


def dataclasses_to_frame(items: list[TapItem]) -> pd.DataFrame:
    """One row per message: ``received`` (UTC) then the dataclass's fields as columns
    (values as they are: arrays stay arrays)."""
    rows = []
    for it in items:
        row: dict[str, Any] = {"received": it.received}
        for f in dataclasses.fields(it.message):
            row[f.name] = getattr(it.message, f.name)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["received"] = pd.to_datetime(frame["received"], unit="s", utc=True)
    return frame


def to_data(items: list[TapItem], topic: str = "") -> Any:
    """``xarray.DataArray`` for AxisArrays, a DataFrame for dataclasses, else a list."""
    if not items:
        return []
    last = items[-1].message
    if is_axisarray(last):
        return axisarrays_to_xarray(items, topic)
    if dataclasses.is_dataclass(last) and not isinstance(last, type):
        same = [it for it in items if type(it.message) is type(last)]
        return dataclasses_to_frame(same)
    return [it.message for it in items]


def short_repr(msg: Any, limit: int = 200) -> str:
    with np.printoptions(threshold=8, edgeitems=2, precision=4):
        text = repr(msg)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(msg: Any) -> dict[str, Any]:
    """What a message is: type, module, dims, shape, dtype, axes, attrs, a short repr."""
    cls = type(msg)
    out: dict[str, Any] = {"type": cls.__qualname__, "module": cls.__module__}
    if is_axisarray(msg):
        out["dims"] = list(msg.dims)
        out["shape"] = tuple(msg.data.shape)
        out["dtype"] = str(msg.data.dtype)
        axes = {}
        for name, axis in msg.axes.items():
            if hasattr(axis, "gain"):
                axes[name] = (
                    f"{type(axis).__name__}(gain={axis.gain:g}, offset={axis.offset:g}, "
                    f"unit={getattr(axis, 'unit', '')!r})"
                )
            else:
                values = getattr(axis, "data", None)
                shape = getattr(values, "shape", None)
                axes[name] = f"{type(axis).__name__}(shape={shape})"
        out["axes"] = axes
        out["attrs"] = dict(getattr(msg, "attrs", {}) or {})
        fs = sample_rate(msg)
        if fs is not None and math.isfinite(fs):
            out["fs"] = fs
    elif isinstance(msg, np.ndarray):
        out["shape"] = tuple(msg.shape)
        out["dtype"] = str(msg.dtype)
    elif dataclasses.is_dataclass(msg) and not isinstance(msg, type):
        fields = {}
        for f in dataclasses.fields(msg):
            value = getattr(msg, f.name)
            if isinstance(value, np.ndarray):
                fields[f.name] = f"ndarray{tuple(value.shape)} {value.dtype}"
            else:
                fields[f.name] = type(value).__name__
        out["fields"] = fields
    out["repr"] = short_repr(msg)
    return out
