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
