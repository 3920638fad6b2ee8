"""Min/max decimation: many samples to one (min, max) pair per pixel column.

A scope cannot draw 10,000 samples per channel into 800 pixels, and dropping samples
would hide spikes; min/max per column keeps every extreme visible. Pure numpy.
"""

from __future__ import annotations

import numpy as np


def minmax_decimate(y: np.ndarray, columns: int) -> np.ndarray:
    """Min and max of ``y`` (samples × channels) over ``columns`` equal bins.

    Parameters
    ----------
    y : ndarray, shape (n,) or (n, channels)
        Samples along the first axis.
    columns : int
        Bins (pixel columns), >= 1. With fewer samples than columns, each sample gets
        its own bin (min == max) and the result has ``n`` bins.

    Returns
    -------
    ndarray, float32, shape (bins, 2, channels)
        ``[:, 0]`` the minima and ``[:, 1]`` the maxima; NaN samples are ignored (a bin
        of only NaN gives NaN).
    """
    if columns < 1:
        raise ValueError(f"columns={columns!r} must be >= 1")
    y = np.asarray(y)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise ValueError(f"y must be 1-D or 2-D (samples × channels), not shape {y.shape}")
    n, ch = y.shape
    if n == 0:
        return np.zeros((0, 2, ch), dtype=np.float32)
    bins = min(columns, n)
    starts = (np.arange(bins) * n) // bins
    y = y.astype(np.float32, copy=False)
    out = np.empty((bins, 2, ch), dtype=np.float32)
    nan = np.isnan(y)
    if nan.any():
        out[:, 0] = np.minimum.reduceat(np.where(nan, np.inf, y), starts, axis=0)
        out[:, 1] = np.maximum.reduceat(np.where(nan, -np.inf, y), starts, axis=0)
        all_nan = np.logical_and.reduceat(nan, starts, axis=0)
        out[:, 0][all_nan] = np.nan
        out[:, 1][all_nan] = np.nan
    else:
        out[:, 0] = np.minimum.reduceat(y, starts, axis=0)
        out[:, 1] = np.maximum.reduceat(y, starts, axis=0)
    return out


def sweep_decimate(
    t: np.ndarray, y: np.ndarray, span: float, columns: int
) -> tuple[np.ndarray, int]:
    """A sweep display: min/max per pixel column with time wrapping every ``span``.

    Column ``c`` shows the samples whose time falls in ``[c, c + 1) * span / columns``
    modulo ``span``; the newest ``span`` seconds are drawn, the newest sweep overwriting
    the previous one up to the cursor.

    Parameters
    ----------
    t : ndarray, shape (n,)
        Sample times in seconds, in order (small backward jitter between messages is
        tolerated).
    y : ndarray, shape (n, channels)
    span, columns
        Seconds across the display, and its pixel columns.

    Returns
    -------
    (ndarray float32 (columns, 2, channels), int)
        Minima and maxima per column (NaN where no sample falls), and the cursor column
        (where the newest sample is drawn).
    """
    if not span > 0:
        raise ValueError(f"span={span!r} must be > 0")
    if columns < 1:
        raise ValueError(f"columns={columns!r} must be >= 1")
    y = np.asarray(y)
    if y.ndim == 1:
        y = y[:, None]
    ch = y.shape[1]
    out = np.full((columns, 2, ch), np.nan, dtype=np.float32)
    if len(t) == 0:
        return out, 0
    dt_col = span / columns
    # The tiny nudge keeps samples that sit exactly on a column edge (0.3 / 0.1) there.
    absolute = np.floor(np.asarray(t, dtype=float) / dt_col + 1e-9).astype(np.int64)
    absolute = np.maximum.accumulate(absolute)  # jitter between messages: keep order
    newest = int(absolute[-1])
    # The columns' last sweep: a suffix (the columns only grow), so a view, not a copy.
    first = int(np.searchsorted(absolute, newest - columns, side="right"))
    absolute, y = absolute[first:], y[first:]
    starts = np.flatnonzero(np.r_[True, absolute[1:] != absolute[:-1]])
    col = absolute[starts] % columns
    dec = np.empty((len(starts), 2, ch), dtype=np.float32)
    yf = y.astype(np.float32, copy=False)
    dec[:, 0] = np.fmin.reduceat(yf, starts, axis=0)
    dec[:, 1] = np.fmax.reduceat(yf, starts, axis=0)
    out[col] = dec
    return out, int(newest % columns)


def _bin_starts(n: int, bins: int) -> np.ndarray:
    return (np.arange(bins) * n) // bins


def block_mean(a: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Mean of ``a`` (rows × columns, or a stack: lanes × rows × columns) over at most
    ``rows`` × ``columns`` blocks: an image reduced to the pixels that show it.

    Blocks split each axis as :func:`minmax_decimate` does (``(arange(bins) * n) //
    bins``), so they differ in size by at most one; an axis already small enough is kept.
    NaN values are ignored (a block of only NaN gives NaN).

    Returns
    -------
    ndarray, float32, shape (..., min(rows, n_rows), min(columns, n_columns))
    """
    if rows < 1 or columns < 1:
        raise ValueError(f"rows={rows!r} and columns={columns!r} must be >= 1")
    a = np.asarray(a, dtype=np.float32)
    if a.ndim < 2:
        raise ValueError(f"an image needs 2 dims (rows × columns), not shape {a.shape}")
    n_r, n_c = a.shape[-2:]
    if n_r == 0 or n_c == 0:
        return np.zeros(a.shape, np.float32)
    if n_r <= rows and n_c <= columns:
        return a
    nan = np.isnan(a)
    has_nan = bool(nan.any())
    total, count = (
        (np.where(nan, np.float32(0), a), (~nan).astype(np.float32)) if has_nan else (a, None)
    )
    sizes = []
    for axis, n, bins in ((-2, n_r, rows), (-1, n_c, columns)):
        if n > bins:
            starts = _bin_starts(n, bins)
            total = np.add.reduceat(total, starts, axis=axis)
            if count is not None:
                count = np.add.reduceat(count, starts, axis=axis)
            sizes.append(np.diff(np.append(starts, n)).astype(np.float32))
        else:
            sizes.append(np.ones(n, np.float32))
    if count is None:  # no NaN: a block's count is its size
        count = sizes[0][:, None] * sizes[1][None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        out: np.ndarray = total / count
    return out.astype(np.float32, copy=False)
