"""Unit log records and uncaught exceptions, forwarded from the processes the Lab launched.

A unit's traceback goes to its process's stderr, which a notebook never shows; the Lab's
backend process forwards records here. Error bursts are detected per unit so the notebook
is told once when a unit starts raising, not once per message.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .clock import to_utc

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# A unit's error starts a new burst when it follows at least this long without errors.
BURST_QUIET_S = 5.0


@dataclass(frozen=True)
class LogRecord:
    time: float  # epoch seconds
    unit: str | None
    pipeline: str | None
    process: str | None
    pid: int | None
    level: str
    logger: str
    message: str
    traceback: str | None
    # "log", "error" (a task raised), "fatal" (the process died) or "dropped" (the Lab's
    # note that a unit process dropped records it could not send fast enough)
    kind: str


class LogStore:
    """Bounded log records with per-unit error counts. Thread-safe."""

    def __init__(self, capacity: int = 20_000, burst_quiet_s: float = BURST_QUIET_S) -> None:
        self._records: deque[LogRecord] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.error_counts: Counter[str] = Counter()
        self._last_error: dict[str, float] = {}
        self._burst_quiet_s = burst_quiet_s
        self.total = 0

    def add(self, record: LogRecord) -> bool:
        """Store a record; True when it is the first error of a new burst for its unit."""
        with self._lock:
            self._records.append(record)
            self.total += 1
            if record.kind not in ("error", "fatal") or record.unit is None:
                return False
            self.error_counts[record.unit] += 1
            last = self._last_error.get(record.unit)
            self._last_error[record.unit] = record.time
            return last is None or record.time - last >= self._burst_quiet_s

    def since(self, number: int) -> tuple[list[LogRecord], int]:
        """The records from running number ``number`` on (those still kept) and the
        number to ask for next time."""
        with self._lock:
            kept = list(self._records)
            total = self.total
        first = total - len(kept)
        return kept[max(0, number - first) :], total

    def errors_since(self, unit: str, since_s: float) -> int:
        with self._lock:
            return sum(
                1
                for r in self._records
                if r.unit == unit and r.kind in ("error", "fatal") and r.time >= since_s
            )

    def last_error(self, unit: str) -> LogRecord | None:
        with self._lock:
            for r in reversed(self._records):
                if r.unit == unit and r.kind in ("error", "fatal"):
                    return r
        return None

    def frame(
        self,
        unit: str | None = None,
        level: str | None = None,
        since_s: float | None = None,
    ) -> pd.DataFrame:
        """Records as a DataFrame: time, unit, pipeline, process, pid, level, logger,
        message, traceback, kind. ``level`` keeps that level and above."""
        if level is not None:
            level = level.upper()
            if level not in LEVELS:
                raise ValueError(f"level={level!r} must be one of {LEVELS}")
            min_level = LEVELS.index(level)
        with self._lock:
            records = list(self._records)
        rows = [
            r
            for r in records
            if (unit is None or r.unit == unit)
            and (level is None or _level_index(r.level) >= min_level)
            and (since_s is None or r.time >= since_s)
        ]
        return pd.DataFrame(
            {
                "time": to_utc(np.array([r.time for r in rows], dtype=np.float64)),
                "unit": [r.unit for r in rows],
                "pipeline": [r.pipeline for r in rows],
                "process": [r.process for r in rows],
                "pid": pd.array([r.pid for r in rows], dtype="Int64"),
                "level": pd.Categorical([r.level for r in rows], categories=LEVELS),
                "logger": [r.logger for r in rows],
                "message": [r.message for r in rows],
                "traceback": [r.traceback for r in rows],
                "kind": [r.kind for r in rows],
            }
        )


def _level_index(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else 0
