"""One clock: everything the Lab shows is a timezone-aware UTC timestamp.

ezmsg's profiling snapshots and trace samples are stamped with each process's
``time.perf_counter_ns()``; its events with ``time.time()``. On Linux perf_counter is
CLOCK_MONOTONIC, shared by every process of a host, so a sample from this host converts
to wall time with one offset measured here. Samples from another host cannot be converted
that way; they are stamped with the time this Lab received them.
"""

from __future__ import annotations

import socket
import time

import numpy as np
import pandas as pd

HOSTNAME = socket.gethostname()


def perf_offset_ns() -> int:
    """``time_ns() - perf_counter_ns()``, measured as the tightest of a few tries."""
    best: tuple[int, int] | None = None
    for _ in range(5):
        a = time.perf_counter_ns()
        wall = time.time_ns()
        b = time.perf_counter_ns()
        if best is None or b - a < best[0]:
            best = (b - a, wall - (a + b) // 2)
    assert best is not None
    return best[1]


def perf_to_epoch_s(perf_ns: np.ndarray | float, offset_ns: int) -> np.ndarray:
    """Seconds since the epoch (float64) for perf_counter nanoseconds."""
    return (np.asarray(perf_ns, dtype=np.float64) + offset_ns) / 1e9


def to_utc(epoch_s: np.ndarray | list[float] | float) -> pd.DatetimeIndex | pd.Timestamp:
    """Timezone-aware UTC timestamps from seconds since the epoch."""
    if np.isscalar(epoch_s):
        return pd.Timestamp(float(epoch_s), unit="s", tz="UTC")
    return pd.to_datetime(np.asarray(epoch_s, dtype=np.float64), unit="s", utc=True)


def since_to_epoch_s(since: object) -> float | None:
    """Normalise a ``since=`` argument: None, seconds ago (number), a Timedelta/str
    duration ago, or an absolute datetime/Timestamp (naive means UTC)."""
    if since is None:
        return None
    if isinstance(since, bool):
        raise TypeError("since= must be a number of seconds, a duration or a time, not a bool")
    if isinstance(since, (int, float)):
        if since < 0:
            raise ValueError(f"since={since} must be >= 0 seconds ago")
        return time.time() - float(since)
    if isinstance(since, (pd.Timedelta,)) or (isinstance(since, str) and _is_duration(since)):
        return time.time() - pd.Timedelta(since).total_seconds()
    ts = pd.Timestamp(since)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.timestamp()


def _is_duration(text: str) -> bool:
    try:
        pd.Timedelta(text)
    except ValueError:
        return False
    return True
