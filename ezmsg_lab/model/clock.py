"""One clock: everything the Lab shows is a timezone-aware UTC timestamp.

ezmsg's profiling snapshots and trace samples are stamped with each process's
``time.perf_counter_ns()``; its events with ``time.time()``. perf_counter is the host's
CLOCK_MONOTONIC, and hosts' monotonic clocks differ by hours (boot times, or a time
namespace), so each host's clock is mapped to UTC on its own: :class:`HostClocks`
estimates ``wall_ns - perf_ns`` per host from the Lab's round trips (a profiling snapshot
is stamped in the remote process between the Lab's send and receive times) and keeps the
uncertainty that those round trips leave.
"""

from __future__ import annotations

import datetime
import math
import socket
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import cast, overload

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


@overload
def to_utc(epoch_s: float) -> pd.Timestamp: ...
@overload
def to_utc(epoch_s: np.ndarray | list[float]) -> pd.DatetimeIndex: ...
def to_utc(epoch_s: np.ndarray | list[float] | float) -> pd.DatetimeIndex | pd.Timestamp:
    """Timezone-aware UTC timestamps from seconds since the epoch."""
    if np.isscalar(epoch_s):
        return pd.Timestamp(float(cast(float, epoch_s)), unit="s", tz="UTC")
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
    if not isinstance(since, (str, datetime.date, np.datetime64)):
        raise TypeError(
            f"since= must be a number of seconds, a duration or a time, not {type(since).__name__}"
        )
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


# Round trips an estimate is made from: the last few (a host's monotonic clock and the
# Lab's wall clock drift apart by parts per million, so old round trips would only widen
# the estimate), and at most this old.
CLOCK_WINDOW = 64
CLOCK_MAX_AGE_S = 120.0


@dataclass(frozen=True)
class ClockEstimate:
    """One host's monotonic -> UTC mapping: ``epoch_ns = perf_ns + offset_ns``.

    Attributes
    ----------
    offset_ns : int
        The estimate (midpoint of what the round trips allow).
    uncertainty_ns : int
        Half the width of that interval: the true offset is within
        ``offset_ns +- uncertainty_ns`` (assuming the Lab's wall clock did not step).
    samples : int
        Round trips the estimate is made from.
    updated_ns : int
        The Lab's wall time of the newest of them.
    consistent : bool
        False for a while after the round trips contradicted each other (the host's
        clock stepped, or it drifted more than they allow); the older ones were dropped.
    """

    offset_ns: int
    uncertainty_ns: int
    samples: int
    updated_ns: int
    consistent: bool = True


def consistent_suffix(trips: Sequence[tuple[int, int, int]]) -> int:
    """How many of the newest round trips agree on one offset (at least 1 if any)."""
    lo, hi = -math.inf, math.inf
    n = 0
    for send, recv, remote in reversed(trips):
        lo2, hi2 = max(lo, send - remote), min(hi, recv - remote)
        if lo2 > hi2:
            break
        lo, hi, n = lo2, hi2, n + 1
    return n


def estimate_offset(trips: Sequence[tuple[int, int, int]]) -> ClockEstimate | None:
    """The offset that every round trip allows, from ``(send_ns, recv_ns, remote_ns)``.

    The remote stamp was taken between the Lab's send and receive, so each round trip
    bounds the offset to ``[send - remote, recv - remote]``; the intersection of those
    intervals holds the true offset, whatever the jitter of each trip (jitter only widens
    one interval). Only the newest round trips that agree are used: older ones that
    contradict them belong to a clock that has since stepped (a reboot, a new namespace).
    """
    if not trips:
        return None
    n = consistent_suffix(trips)
    used = list(trips)[-n:]
    lo = max(send - remote for send, _, remote in used)
    hi = min(recv - remote for _, recv, remote in used)
    newest = max(recv for _, recv, _ in used)
    return ClockEstimate((lo + hi) // 2, (hi - lo + 1) // 2, n, newest, n == len(trips))


class HostClocks:
    """Per-host monotonic -> UTC offsets, refreshed from the Lab's round trips.

    Pure: the poller feeds it ``observe(host, send_ns, recv_ns, remote_ns)`` with the
    Lab's ``time.time_ns()`` around each profiling request and the ``perf_counter_ns``
    stamp of the reply. Thread-safe enough for one writer (the control loop) and readers
    that take a consistent copy of a dict.

    Parameters
    ----------
    local_host : str
        This machine's hostname. A process that reports it is converted with the offset
        measured in this process (``local_offset_ns``, sub-microsecond) once the round
        trips confirm it: a time namespace can give a process the same hostname and
        another monotonic clock, so the name alone is not trusted.
    local_offset_ns : int
        ``time_ns() - perf_counter_ns()`` measured here.
    """

    def __init__(
        self,
        local_host: str = HOSTNAME,
        local_offset_ns: int | None = None,
        window: int = CLOCK_WINDOW,
        max_age_s: float = CLOCK_MAX_AGE_S,
    ) -> None:
        self.local_host = local_host
        self.local_offset_ns = perf_offset_ns() if local_offset_ns is None else local_offset_ns
        self._window = window
        self._max_age_ns = int(max_age_s * 1e9)
        self._trips: dict[str, deque[tuple[int, int, int]]] = {}
        self._estimates: dict[str, ClockEstimate] = {}
        self._stepped: dict[str, int] = {}  # host -> round trips left to flag a step

    def observe(self, host: str, send_ns: int, recv_ns: int, remote_ns: float) -> None:
        """Record one round trip to a process on ``host``."""
        if recv_ns < send_ns or not math.isfinite(remote_ns):
            return  # the Lab's wall clock stepped back mid-trip: says nothing
        trips = self._trips.setdefault(host, deque(maxlen=self._window))
        trips.append((int(send_ns), int(recv_ns), int(remote_ns)))
        while trips and recv_ns - trips[0][1] > self._max_age_ns:
            trips.popleft()
        est = estimate_offset(trips)
        assert est is not None
        if not est.consistent:
            # The clock stepped: forget its old round trips, and say so for a window.
            for _ in range(len(trips) - est.samples):
                trips.popleft()
            self._stepped[host] = self._window
        left = self._stepped.get(host, 0)
        if left:
            self._stepped[host] = left - 1
            est = replace(est, consistent=False)
        if host == self.local_host and (
            abs(est.offset_ns - self.local_offset_ns) <= est.uncertainty_ns
        ):
            est = ClockEstimate(self.local_offset_ns, 1_000, est.samples, est.updated_ns)
        self._estimates = {**self._estimates, host: est}

    def estimate(self, host: str | None) -> ClockEstimate | None:
        """The current estimate for ``host`` (None before its first round trip)."""
        if host is None:
            return None
        return self._estimates.get(host)

    def offset_ns(self, host: str | None) -> int | None:
        """``epoch_ns - perf_ns`` for ``host``; for a host not yet measured, this
        machine's offset if it is this machine, else None."""
        est = self.estimate(host)
        if est is not None:
            return est.offset_ns
        return self.local_offset_ns if host == self.local_host else None

    def estimates(self) -> dict[str, ClockEstimate]:
        """Every host's current estimate."""
        return dict(self._estimates)
