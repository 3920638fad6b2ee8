"""The bounded channel that carries unit records (logs, task errors) to the Lab.

A unit that raises on every message produces thousands of records a second. Nothing on
this path may grow without bound, block the unit, or delay a stop:

- in a unit process, :class:`EventSender` keeps at most ``capacity`` records waiting and
  sends them from its own thread; when the Lab does not keep up, new records are dropped
  and counted in a shared-memory counter the Lab reads (so the count arrives even when
  the records cannot);
- each unit process writes to its own pipe, so a process killed in the middle of a write
  corrupts only its own stream (the Lab sees end-of-file and closes it) and no lock can
  be left held by a dead process;
- in the Lab, :class:`PipeChannel` reads every pipe of a pipeline from one thread, refuses
  oversized records, and counts records it cannot decode instead of dying on them;
- in-kernel pipelines use :class:`LocalChannel`, a bounded in-process queue with the same
  accounting.

This module is imported in unit processes (also under the spawn start method): keep it
free of heavy imports.
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from typing import Any, cast

logger = logging.getLogger(__name__)

# Records a unit process keeps waiting for the Lab before it drops new ones; about 2 kB
# each (a traceback), so at most a few MB per process.
SENDER_CAPACITY = 1_000
# Records an in-kernel pipeline keeps waiting for the Lab's reader thread.
LOCAL_CAPACITY = 10_000
# Longest text kept per field; a record longer than MAX_RECORD_BYTES on the wire means a
# corrupt stream, and the Lab stops reading that pipe.
MAX_TEXT_CHARS = 20_000
MAX_RECORD_BYTES = 1 << 20
# How often the Lab looks at the unit processes' drop counters.
DROP_REPORT_S = 0.25
# How long a unit process waits, on exit, for its last records to reach the Lab.
FLUSH_S = 1.0
_POLL_S = 0.1


def _clip(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_TEXT_CHARS:
        return text
    half = MAX_TEXT_CHARS // 2
    return f"{text[:half]}\n... [{len(text) - MAX_TEXT_CHARS} characters cut] ...\n{text[-half:]}"


def clip_event(event: Any) -> Any:
    """The event with its message and traceback cut to MAX_TEXT_CHARS."""
    message, tb = getattr(event, "message", None), getattr(event, "traceback", None)
    if (message is None or len(message) <= MAX_TEXT_CHARS) and (
        tb is None or len(tb) <= MAX_TEXT_CHARS
    ):
        return event
    return replace(event, message=_clip(message), traceback=_clip(tb))


class EventSender:
    """Unit-process end of a pipe: :meth:`put` never blocks and never grows memory.

    Parameters
    ----------
    conn : multiprocessing.connection.Connection
        The write end of this process's pipe to the Lab.
    drop_counter : multiprocessing.sharedctypes.Synchronized or None
        A shared ``RawValue("q")`` where the count of dropped records is kept for the Lab.
    capacity : int
        Records kept waiting before new ones are dropped (and counted).
    """

    def __init__(
        self, conn: Connection, drop_counter: Any = None, capacity: int = SENDER_CAPACITY
    ) -> None:
        self._conn = conn
        self._counter = drop_counter
        self._capacity = capacity
        self._pending: deque[Any] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._busy = False
        self._closing = False
        self._broken = False
        self.dropped = 0

    def _drop(self, n: int = 1) -> None:
        # Called with the condition held. Only this process writes its counter.
        self.dropped += n
        if self._counter is not None:
            self._counter.value = self.dropped

    def put(self, event: Any) -> None:
        with self._cond:
            if self._broken or self._closing or len(self._pending) >= self._capacity:
                self._drop()
                return
            self._pending.append(event)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="ezmsg-lab-sender", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return  # closing, and everything was sent
                event = self._pending.popleft()
                self._busy = True
            try:
                self._conn.send_bytes(
                    pickle.dumps(clip_event(event), protocol=pickle.HIGHEST_PROTOCOL)
                )
            except (OSError, ValueError):
                # The Lab closed its end: nobody will read what is left.
                with self._cond:
                    self._broken = True
                    self._drop(len(self._pending) + 1)
                    self._pending.clear()
                    self._busy = False
                    self._cond.notify_all()
                return
            except Exception:
                with self._cond:
                    self._drop()  # a record that cannot be pickled
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def close(self, timeout: float = FLUSH_S) -> None:
        """Send what is waiting within ``timeout``, then stop.

        Records still waiting after ``timeout`` (the Lab is not reading) are abandoned
        and counted as dropped: the sender thread is a daemon and cannot hold up the
        process's exit.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            while (
                (self._pending or self._busy)
                and not self._broken
                and self._thread is not None
                and self._thread.is_alive()
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._drop(len(self._pending) + self._busy)
                    break
                self._cond.wait(remaining)


@dataclass
class ChannelCounts:
    """What a pipeline's channel received, dropped and could not read."""

    received: int = 0
    dropped: int = 0  # records the unit processes (or the in-kernel queue) dropped
    corrupt: int = 0  # records the Lab could not decode


class _Channel:
    """Lab end shared by both kinds: one reader thread, counters, a bounded finish."""

    def __init__(
        self,
        name: str,
        on_event: Callable[[Any], None],
        on_drops: Callable[[int], None] | None = None,
    ) -> None:
        self.name = name
        self.counts = ChannelCounts()
        self._on_event = on_event
        self._on_drops = on_drops
        self._finishing = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._read_loop, name=f"ezmsg-lab-events-{self.name}", daemon=True
        )
        self._thread.start()

    @property
    def reading(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def finish(self, timeout: float) -> None:
        """Read what is already sent (bounded by ``timeout``), then release everything."""
        self._finishing.set()
        if self._thread is not None:
            self._thread.join(max(0.0, timeout))
            if self._thread.is_alive():
                logger.warning("the event reader of pipeline %s did not finish", self.name)
        self._release()

    def _release(self) -> None:
        pass

    def _read_loop(self) -> None:
        raise NotImplementedError

    def _deliver(self, obj: Any) -> None:
        if not _looks_like_event(obj):
            self._corrupt(f"a {type(obj).__name__} instead of a unit record")
            return
        self.counts.received += 1
        try:
            self._on_event(obj)
        except Exception:
            logger.exception("handling a unit record failed")

    def _add_drops(self, new: int) -> None:
        if new <= 0:
            return
        self.counts.dropped += new
        if self._on_drops is not None:
            try:
                self._on_drops(new)
            except Exception:
                logger.exception("reporting dropped unit records failed")

    def _corrupt(self, why: str) -> None:
        self.counts.corrupt += 1
        # Once per pipeline at WARNING: a stream that corrupts once tends to keep doing so.
        level = logging.WARNING if self.counts.corrupt == 1 else logging.DEBUG
        logger.log(level, "pipeline %s: skipped an unreadable unit record (%s)", self.name, why)


def _looks_like_event(obj: Any) -> bool:
    return all(hasattr(obj, f) for f in ("kind", "time", "pid", "unit", "level", "message"))


class PipeChannel(_Channel):
    """Lab end for unit processes: one pipe per process, all read by one thread."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._readers: list[Connection] = []
        self._writers: list[Connection] = []
        self._counters: list[Any] = []

    def new_writer(self) -> tuple[Connection, Any]:
        """A pipe and a drop counter for one unit process, which gets both."""
        reader, writer = multiprocessing.Pipe(duplex=False)
        counter = multiprocessing.RawValue("q", 0)
        with self._lock:
            self._readers.append(reader)
            self._writers.append(writer)
            self._counters.append(counter)
        return writer, counter

    def check_drops(self) -> None:
        """Pick up what the unit processes dropped since the last look."""
        with self._lock:
            total = sum(c.value for c in self._counters)
        self._add_drops(total - self.counts.dropped)

    def _read_loop(self) -> None:
        checked_at = time.monotonic()
        while True:
            if time.monotonic() - checked_at >= DROP_REPORT_S:
                checked_at = time.monotonic()
                self.check_drops()
            with self._lock:
                readers = list(self._readers)
            if not readers and self._finishing.is_set():
                return
            try:
                # wait() returns the very Connections it was given
                ready = cast("list[Connection]", wait(readers, _POLL_S)) if readers else []
            except (OSError, ValueError):
                ready = [r for r in readers if r.closed]
            if not readers:
                self._finishing.wait(_POLL_S)
            if not ready and self._finishing.is_set():
                return  # everything sent before the processes stopped has been read
            for reader in ready:
                self._read_one(reader)

    def _read_one(self, reader: Connection) -> None:
        try:
            data = reader.recv_bytes(MAX_RECORD_BYTES)
        except (EOFError, OSError, ValueError) as exc:
            # End of file (every copy of the write end closed), a process killed in
            # the middle of a write, or a length that cannot be a record: this pipe
            # has nothing more to give.
            if not isinstance(exc, EOFError):
                self._corrupt(f"{type(exc).__name__}: {exc}")
            self._drop_reader(reader)
            return
        try:
            obj = pickle.loads(data)
        except Exception as exc:
            self._corrupt(f"{type(exc).__name__}: {exc}")
            return
        self._deliver(obj)

    def _drop_reader(self, reader: Connection) -> None:
        with self._lock:
            if reader in self._readers:
                self._readers.remove(reader)
        reader.close()

    def _release(self) -> None:
        self.check_drops()
        with self._lock:
            conns = self._readers + self._writers
            self._readers, self._writers, self._counters = [], [], []
        for conn in conns:
            conn.close()

    def close_writer_copy(self, writer: Connection) -> None:
        """Close the Lab's copy of a write end once its process has started.

        Processes forked later then do not inherit it, and the pipe reaches end-of-file
        when its own process exits.
        """
        with self._lock:
            if writer in self._writers:
                self._writers.remove(writer)
        writer.close()


class LocalChannel(_Channel):
    """Lab end for in-kernel pipelines: a bounded queue that never blocks a unit."""

    def __init__(self, *args: Any, capacity: int = LOCAL_CAPACITY, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queue: queue.Queue[Any] = queue.Queue(capacity)
        self._dropped = 0
        self._dropped_lock = threading.Lock()

    def put(self, event: Any) -> None:
        """Called by in-kernel units' task wrappers (any thread)."""
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            with self._dropped_lock:
                self._dropped += 1

    def _take_drops(self) -> int:
        with self._dropped_lock:
            n, self._dropped = self._dropped, 0
        return n

    def _read_loop(self) -> None:
        reported_at = time.monotonic()
        while True:
            try:
                obj = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                self._add_drops(self._take_drops())
                if self._finishing.is_set():
                    return
                continue
            self._deliver(clip_event(obj))
            if time.monotonic() - reported_at >= DROP_REPORT_S:
                reported_at = time.monotonic()
                self._add_drops(self._take_drops())

    def _release(self) -> None:
        self._add_drops(self._take_drops())
        # Records queued after the reader finished are not read any more.
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return
