"""Which view a scope draws a message with: the rules, and why a forced view cannot.
Pure and duck-typed, as :mod:`.tap_convert` (no ezmsg).

Views, chosen from the newest message (``view="auto"``) in this order:

- ``scatter``: points. An AxisArray with a dimension of length 2 named ``xy``, ``coords``,
  ``coord``, ``pos`` or ``position`` (or whose coordinate labels are ``x`` and ``y``);
  its points run along the time dim (else the first other dim) and any further dims are
  point sets. A numpy array of shape (N, 2) is N points.
- ``image``: a spectrogram for a time and a freq dim (time across the window left to
  right, frequency upwards, further dims as one image lane each); or the newest message
  (its newest time slice) when exactly two of its non-time dims are longer than 1 and
  none is freq: the first of them runs down the rows, the second across (as ``imshow``).
- ``sweep``: a time dim (1-D series per channel, other dims flattened to channels).
- ``spectrum``: a freq dim without a time dim.

A view can be forced: ``sweep`` needs a time dim, ``spectrum`` a freq dim (of a
spectrogram, its newest slice), ``image`` also draws a time dim with any other dim as a
raster (time across, the other dim's entries as rows), ``scatter`` takes any non-time dim
of length 2 as (x, y). :func:`check_view` says why a message cannot be drawn a given way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .tap_convert import axis_values, is_axisarray, time_dim

FREQ_DIMS = ("freq", "frequency", "f")
XY_DIMS = ("xy", "coords", "coord", "pos", "position")
VIEWS = ("auto", "sweep", "spectrum", "image", "scatter")


def dim_size(msg: Any, dim: str) -> int:
    return int(msg.data.shape[msg.dims.index(dim)])


def is_points_array(msg: Any) -> bool:
    return (
        isinstance(msg, np.ndarray)
        and msg.ndim == 2
        and msg.shape[1] == 2
        and msg.dtype.kind in "iuf"
    )


def freq_dim(msg: Any) -> str | None:
    return next((d for d in msg.dims if d in FREQ_DIMS), None)


def xy_dim(msg: Any, forced: bool = False) -> str | None:
    """The dim holding (x, y): length 2 and named like :data:`XY_DIMS` or labelled x, y;
    forced, any non-time dim of length 2 (the last one)."""
    tdim = time_dim(msg)
    pairs = [d for d in msg.dims if d != tdim and dim_size(msg, d) == 2]
    for d in pairs:
        values = axis_values(msg, d)
        if d in XY_DIMS or (values is not None and [str(v) for v in values] == ["x", "y"]):
            return str(d)
    return str(pairs[-1]) if forced and pairs else None


def image_plan(msg: Any, forced: bool = False) -> tuple[str, tuple[str, ...]] | None:
    """``("time", (rows_dim,))`` for a spectrogram (or, forced, a raster of any dim over
    time), ``("snapshot", (rows_dim, columns_dim))`` for the newest message, or None."""
    tdim = time_dim(msg)
    fdim = freq_dim(msg)
    others = [d for d in msg.dims if d != tdim]
    big = [d for d in others if dim_size(msg, d) > 1]
    if tdim is not None and fdim is not None and fdim != tdim:
        return ("time", (fdim,))
    if len(big) == 2 and (fdim is None or forced):
        return ("snapshot", (big[0], big[1]))
    if forced and tdim is not None and others:
        return ("time", ((big or others)[0],))
    return None


def choose_view(msg: Any) -> str:
    """The view ``auto`` picks for ``msg`` (see the module's docstring), or ``none``."""
    if is_points_array(msg):
        return "scatter"
    if not is_axisarray(msg):
        return "none"
    if xy_dim(msg) is not None:
        return "scatter"
    if image_plan(msg) is not None:
        return "image"
    if time_dim(msg) is not None:
        return "sweep"
    if freq_dim(msg) is not None:
        return "spectrum"
    return "none"


def cannot_draw(msg: Any, view: str) -> str:
    """Why ``msg`` cannot be drawn as ``view`` ('' if it can)."""
    if is_points_array(msg):
        return "" if view == "scatter" else "an (N, 2) array is drawn as points (scatter)"
    if not is_axisarray(msg):
        shape = getattr(msg, "shape", None)
        what = type(msg).__name__ + (f" of shape {shape}" if shape is not None else "")
        return f"a scope draws AxisArrays and (N, 2) arrays of points, not {what}"
    if view == "sweep" and time_dim(msg) is None:
        return f"it has no time dim (dims {msg.dims})"
    if view == "spectrum" and freq_dim(msg) is None:
        return f"it has no freq dim (dims {msg.dims})"
    if view == "image" and image_plan(msg, forced=True) is None:
        return f"it needs two dims longer than 1, or a time dim and another (dims {msg.dims})"
    if view == "scatter" and xy_dim(msg, forced=True) is None:
        return f"it has no non-time dim of length 2 to read as (x, y) (dims {msg.dims})"
    return ""


def check_view(msg: Any, view: str) -> None:
    """Raise ValueError if ``view`` is not a scope view, or ``msg`` cannot be drawn so
    (``msg`` None: no message yet, only the name is checked)."""
    check_view_name(view)
    if view == "auto" or msg is None:
        return
    reason = cannot_draw(msg, view)
    if reason:
        fits = [v for v in VIEWS[1:] if not cannot_draw(msg, v)]
        hint = f"it can be drawn as {', '.join(fits)}" if fits else "no view can draw it"
        raise ValueError(f"view={view!r} cannot draw this message: {reason}; {hint}")


def check_view_name(view: str) -> None:
    if view not in VIEWS:
        raise ValueError(f"view={view!r} is not a scope view; use one of {', '.join(VIEWS)}")
