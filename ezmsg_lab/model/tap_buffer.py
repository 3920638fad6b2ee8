"""A tap's ring buffer: the last messages of one topic, bounded by time and by memory.

Pure (no ezmsg): the feed appends on the control loop, cells read from the kernel's
thread, so every access takes one lock. Each message is kept with the Lab's receive time
(``time.time()``), the one time base every tap shares.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections import deque
from typing import Any, NamedTuple

import numpy as np


class TapItem(NamedTuple):
    """One buffered message."""

    received: float  # time.time() when the Lab received it
    message: Any
    nbytes: int


def message_nbytes(msg: Any) -> int:
    """Bytes a message holds, counting its numpy arrays (and an AxisArray's axes).

    An estimate that never undercounts the arrays, which are what fills memory; other
    fields count ``sys.getsizeof``.
    """
    if isinstance(msg, np.ndarray):
        return int(msg.nbytes)
    if isinstance(msg, (bytes, bytearray, memoryview, str)):
        return sys.getsizeof(msg)
    if dataclasses.is_dataclass(msg) and not isinstance(msg, type):
        total = sys.getsizeof(msg)
        for f in dataclasses.fields(msg):
            value = getattr(msg, f.name, None)
            if isinstance(value, dict):
                total += sys.getsizeof(value) + sum(message_nbytes(v) for v in value.values())
            else:
                total += message_nbytes(value)
        return total
    if isinstance(msg, (list, tuple)):
        return sys.getsizeof(msg) + sum(message_nbytes(v) for v in msg)
    return sys.getsizeof(msg)


class TapBuffer:
    """The last ``window_s`` seconds of messages, never more than ``max_bytes``.

    Parameters
    ----------
    window_s : float
        Messages received longer ago than this (before the newest one) are evicted.
    max_bytes : int
        Memory cap: the oldest messages go first when the total exceeds it (the newest
        message is always kept, even when it alone is larger).
    """

    def __init__(self, window_s: float, max_bytes: int) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s={window_s!r} must be > 0")
        if not max_bytes > 0:
            raise ValueError(f"max_bytes={max_bytes!r} must be > 0")
        self.window_s = float(window_s)
        self.max_bytes = int(max_bytes)
        self._items: deque[TapItem] = deque()
        self._lock = threading.Lock()
        self._nbytes = 0
        self.received = 0  # messages the tap received
        self.dropped = 0  # messages ezmsg's leaky queue dropped before the tap read them
        self.evicted = 0  # messages that left the buffer (window or memory cap)
        self._first = 0  # the running number of the oldest buffered message
        self.errors = 0  # messages the tap could not read
        self.last_error: str | None = None

    def add(self, msg: Any, received: float, nbytes: int | None = None) -> None:
        size = message_nbytes(msg) if nbytes is None else int(nbytes)
        with self._lock:
            self._items.append(TapItem(received, msg, size))
            self._nbytes += size
            self.received += 1
            horizon = received - self.window_s
            while len(self._items) > 1 and (
                self._items[0].received < horizon or self._nbytes > self.max_bytes
            ):
                old = self._items.popleft()
                self._nbytes -= old.nbytes
                self.evicted += 1
                self._first += 1

    def count_dropped(self, n: int = 1) -> None:
        with self._lock:
            self.dropped += n

    def count_error(self, what: str) -> None:
        with self._lock:
            self.errors += 1
            self.last_error = what

    def items(self, since: float | None = None) -> list[TapItem]:
        """The buffered messages, oldest first (received at or after ``since``)."""
        with self._lock:
            items = list(self._items)
        if since is not None:
            items = [it for it in items if it.received >= since]
        return items

    def since(self, number: int) -> tuple[list[TapItem], int, int]:
        """The messages from running number ``number`` on (the first message received
        is 0), the number to ask for next time, and how many of those asked for had
        already left the buffer. A reader that keeps up (a recorder) gets every message
        once."""
        with self._lock:
            first = self._first
            items = list(self._items)
        start = max(number, first)
        return items[start - first :], first + len(items), start - number

    def latest(self) -> TapItem | None:
        with self._lock:
            return self._items[-1] if self._items else None

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._nbytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def rate_hz(self, span_s: float = 2.0) -> float:
        """Messages per second over the last ``span_s`` seconds of the buffer (NaN when
        fewer than two messages are there)."""
        with self._lock:
            if len(self._items) < 2:
                return float("nan")
            newest = self._items[-1].received
            times: list[float] = [
                it.received for it in reversed(self._items) if newest - it.received <= span_s
            ]
        if len(times) < 2 or times[0] == times[-1]:
            return float("nan")
        return (len(times) - 1) / (times[0] - times[-1])

    def clear(self) -> None:
        with self._lock:
            self._first += len(self._items)
            self._items.clear()
            self._nbytes = 0
