"""Unit-process side of a sampled tap: the messages a tapped publisher sends, handed to
the Lab without subscribing to its topic.

Why: once a subscriber in another process (the kernel's tap) joins a topic, ezmsg's
publisher serializes every message and notifies that process of each one, whether the
tap keeps it or not. On a fast topic whose subscribers share its process (the local
path, no serialization) that alone cost a free-running pipeline more than half its
throughput. In a unit process the Lab launched, a tap instead replaces the tapped
publisher's ``broadcast`` (on that one object, for as long as the tap is open) by a
sampler that notes each message, passes it on unchanged, and forwards at most
``rate`` messages a second to the Lab over this process's tap pipe. The pipeline's own
path is untouched: the sampler adds a function call and a counter per message (a clock
read only on the messages it looks at).

Every message the sampler does not forward (over the rate, over the agent's CPU budget,
or the pipe's queue full) is counted: each forwarded message carries the publisher's
running message count, and the Lab counts the gaps as dropped.

What the agent costs a busy unit, and how it is kept small:
- Samples are written by the publishing task itself, in one non-blocking write every
  ``SEND_PERIOD_S`` (the scope's frame time), not handed to a thread: every time another
  thread takes the GIL from a unit that never idles, the unit pays for the hand-over
  (measured here: a thread waking 20 times a second beside a busy one used 0.5 % of a
  core in GIL hand-overs; in a flooding ezmsg process, 1.5-4 %). The sender thread only
  writes what did not fit (the Lab reading slowly) and what waits when the publisher
  went quiet, waking 4 times a second.
- Samples travel as plain tuples (pickling a dataclass cost twenty times as much).
- A CPU budget (:class:`_Budget`) keeps the agent's own time, timed where it is spent,
  within ``BUDGET_FRACTION`` of a busy process by lowering every finite tap rate by one
  factor, reported to the Lab (``tap.inspect()["budget"]``).

This module is imported in unit processes (also under the spawn start method): keep it
free of heavy imports.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

# Messages waiting for the sender thread before new ones are dropped (and counted), and
# the bytes of their arrays: the queue holds references to messages the unit already
# sent, which stay alive until they are pickled.
QUEUE_CAPACITY = 256
QUEUE_MAX_BYTES = 64 << 20
# How often what was sampled is written: batching keeps the cost per sampled message to a
# deque append and one write per period, made by the publishing task when it next takes
# a sample. The period is the scope's frame time (20 frames/s).
SEND_PERIOD_S = 0.05
# How often the sender thread looks for samples still waiting (a publisher that went
# quiet, a write that did not fit). Each wake-up takes the GIL from a busy unit: at 100 a
# second (10 ms) that alone cost a flooding pipeline about 20 µs of CPU a message.
SENDER_PERIOD_S = 0.25
# The same while the budget holds the rates down: the process is busy, its publishers
# keep writing, and what a quiet one left waits at most this long.
SENDER_BUSY_PERIOD_S = 1.0
# Most messages a sampler lets pass between two looks at the clock (see _Sampler).
MAX_STRIDE = 16
_RATE_WINDOW_S = 0.02
# The agent's CPU budget: this share of the wall clock in a busy process, more in an idle
# one (see _Budget: a paced pipeline idle 85 % of the time is not slowed by a tap taking
# every message, and such a tap is not held back).
BUDGET_FRACTION = 0.01
BUDGET_HEADROOM = 0.5
BUDGET_WINDOW_S = 0.5
# The lowest factor the budget sets a tap's rate to, and the most it raises it by in one
# window (it lowers it as far as the cost asks at once: a flood is reined in within a
# window).
MIN_SCALE = 1 / 256
MAX_RISE = 2.0
# How often the agent looks for publishers it was asked to sample that appeared since
# (a control message may arrive before the process has made its publishers).
_RESCAN_S = 0.2
# How long the control thread waits for the Lab when nothing needs a rescan (each
# wake-up takes the GIL from a busy unit; close() wakes it at once).
_CONTROL_POLL_S = 1.0


@dataclass
class TapControl:
    """Lab -> unit process: the topics to sample now, each with its rate (messages/s,
    ``math.inf`` for every message). Topics absent from ``rates`` are not sampled."""

    rates: dict[str, float] = field(default_factory=dict)
    gen: int = 0  # the Lab's count of controls it sent; the reply carries it back


@dataclass
class TapInstalled:
    """Unit process -> Lab: the topics this process samples now, after the control
    numbered ``gen``."""

    pid: int
    topics: list[str]
    gen: int = 0


@dataclass
class TapBudget:
    """Unit process -> Lab: the factor the agent's CPU budget applies to every finite
    tap rate in this process now (1.0: none), with the process's and the agent's CPU
    time per wall second over the last window. Sent when the factor changes."""

    pid: int
    scale: float
    busy: float
    cost: float


@dataclass
class TapSample:
    """Unit process -> Lab: one message of a sampled topic. On the wire it travels as
    the tuple ``(topic, seq, time, message)``; the Lab makes it a ``TapSample`` with
    :func:`as_sample`."""

    topic: str
    seq: int  # the publisher's messages counted since sampling began, this one included
    time: float  # time.time() when the unit published it
    message: Any


def as_sample(item: Any) -> Any:
    """A sample tuple from the wire as a :class:`TapSample` (anything else unchanged)."""
    if type(item) is tuple and len(item) == 4:
        return TapSample(*item)
    return item


def _array_bytes(msg: Any) -> int:
    """The bytes of a message's array (an AxisArray's ``data``, an ndarray, bytes)."""
    data = getattr(msg, "data", msg)
    nbytes = getattr(data, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    return len(data) if isinstance(data, (bytes, bytearray)) else 0


class RateGate:
    """A token bucket: :meth:`admit` is true for at most ``rate`` calls a second.

    A burst of ``burst_s`` seconds (at least 8 calls) rides out a paced source's jitter.
    """

    def __init__(self, rate: float, burst_s: float = 0.1) -> None:
        self._burst_s = burst_s
        self.set_rate(rate)

    def set_rate(self, rate: float) -> None:
        self.rate = rate
        self._burst = math.inf if math.isinf(rate) else max(8.0, rate * self._burst_s)
        self._tokens = self._burst
        self._last = time.monotonic()

    def change_rate(self, rate: float) -> None:
        """Another finite rate, keeping the tokens saved up (within the new burst)."""
        self.rate = rate
        self._burst = max(8.0, rate * self._burst_s)
        self._tokens = min(self._tokens, self._burst)

    def admit(self) -> bool:
        return self.admit_at(time.monotonic())

    def admit_at(self, now: float) -> bool:
        """:meth:`admit` with the clock already read (``time.monotonic()``)."""
        if self.rate == math.inf:
            return True
        tokens = min(self._burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True


class _Sampler:
    """Stands in for one publisher's ``broadcast``: forward at most ``rate``/s, pass on all.

    ``call`` (what replaces ``broadcast``) is a closure: per message it counts and
    compares, and only on the messages due for a look does it read the clock and ask the
    rate gate. Due is every ``stride``-th message, with ``stride`` the messages that arrive
    per token of the gate (a little under, so nearly every look is admitted), from the
    publisher's rate measured over at least ``_RATE_WINDOW_S`` (a burst of a slow source
    is not a fast source: each of its messages is looked at), at most ``MAX_STRIDE`` (a
    source that slows down is looked at again within that many of its messages). A
    publisher at 25k msg/s sampled at 2,000/s thus pays about 0.1 µs a message instead of
    the 0.6 µs a clock read and a gate on every one cost (measured). Every message still
    counts in ``seq``: the Lab counts the gaps as dropped.
    """

    def __init__(
        self, pub: Any, topic: str, rate: float, offer: Callable[[Any, float], bool]
    ) -> None:
        broadcast = type(pub).broadcast.__get__(pub)  # the publisher's own method
        self.topic = topic
        self.rate = rate  # as asked; the gate's is this times the budget's factor
        self.gate = gate = RateGate(rate)
        seq = 0
        due = 1
        stride = 1
        last_seq = 0
        last_t = math.nan  # the rate window opens at the first message, not at install

        def call(obj: Any) -> Any:
            nonlocal seq, due, stride, last_seq, last_t
            seq += 1
            if seq >= due:
                now = time.monotonic()
                if gate.admit_at(now):
                    offer((topic, seq, time.time(), obj), now)
                dt = now - last_t
                if dt != dt:  # the first look: idle time before it is not a rate
                    last_seq, last_t = seq, now
                elif dt >= _RATE_WINDOW_S:  # the publisher's rate, over a window at least
                    if gate.rate != math.inf:
                        per_token = (seq - last_seq) / (dt * gate.rate)
                        stride = min(MAX_STRIDE, max(1, int(0.9 * per_token)))
                    last_seq, last_t = seq, now
                due = seq + stride
            return broadcast(obj)

        def count() -> int:
            return seq

        def set_rate(new: float, scale: float = 1.0) -> None:
            nonlocal due, stride, last_t
            self.rate = new
            gate.set_rate(new if math.isinf(new) else new * scale)
            due = stride = 1  # look at every message until the rate is measured again
            last_t = math.nan

        def set_scale(scale: float) -> None:
            # The budget's factor: the gate's rate only (its tokens are kept; the stride
            # follows at the next rate window). A tap of every message is left so.
            if not math.isinf(self.rate):
                gate.change_rate(self.rate * scale)

        self.call = call
        self.count = count
        self.set_rate = set_rate
        self.set_scale = set_scale


class _Budget:
    """The agent's CPU budget in one process.

    Every ``BUDGET_WINDOW_S`` it compares the agent's own time (the sender thread's CPU
    time, and the time the publishing task spent on the messages it sampled, from its
    look at the clock to the end of the offer and any write, as timed there) with what
    the budget allows: ``BUDGET_FRACTION`` of the wall clock in a busy process, more in
    an idle one (``BUDGET_HEADROOM`` times the square of the share the rest of the
    process left idle: half idle gives an eighth, 90 % idle 40 %). ``scale``, the factor
    for every finite tap rate, follows their ratio: down at once, up by at most
    ``MAX_RISE`` a window, never above 1.

    Timed in place rather than measured once: the same sampling costs a busy ezmsg unit
    about four times what it costs in a tight loop (5 µs against 1.2 µs a sample here).
    """

    def __init__(self) -> None:
        self.busy = 0.0  # the process's CPU time per wall second, last window
        self.cost = 0.0  # the agent's, last window
        self.reset(0.0)

    def reset(self, spent_s: float) -> None:
        """A new window and no factor; ``spent_s``: the publishing task's total time on
        samples now. Call from the sender thread."""
        self.scale = 1.0
        self._start(time.monotonic(), spent_s)

    def _start(self, now: float, spent_s: float) -> None:
        self._t, self._cpu, self._own = now, time.process_time(), time.thread_time()
        self._spent_s = spent_s

    def update(self, spent_s: float) -> bool:
        """Close the window if it is over and set ``scale``; true when it changed by
        more than a tenth or came back to 1. Call from the sender thread."""
        now = time.monotonic()
        wall = now - self._t
        if wall < BUDGET_WINDOW_S:
            return False
        cpu, own = time.process_time(), time.thread_time()
        agent = (own - self._own) + (spent_s - self._spent_s)
        self.busy, self.cost = (cpu - self._cpu) / wall, agent / wall
        self._start(now, spent_s)
        old, self.scale = self.scale, budget_scale(self.scale, self.busy, self.cost)
        return abs(self.scale - old) > 0.1 * old or (self.scale == 1.0 and old < 1.0)


def budget_scale(scale: float, busy: float, cost: float) -> float:
    """The budget's next factor for every finite tap rate, from the last one (``scale``)
    and the process's (``busy``) and the agent's (``cost``) CPU time per wall second
    over the window that ran at it. See :class:`_Budget`."""
    idle = max(0.0, 1.0 - max(0.0, busy - cost))
    allowed = max(BUDGET_FRACTION, BUDGET_HEADROOM * idle * idle)
    new = scale * MAX_RISE if cost <= 0 else min(scale * MAX_RISE, scale * allowed / cost)
    return min(1.0, max(MIN_SCALE, new))


def _header(n: int) -> bytes:
    """The header ``Connection.send_bytes`` puts before ``n`` bytes (``recv_bytes`` reads
    it): their length, in 4 bytes, or -1 and 8 bytes past 2 GiB."""
    if n > 0x7FFFFFFF:
        return struct.pack("!i", -1) + struct.pack("!Q", n)
    return struct.pack("!i", n)


class TapAgent:
    """Runs in a unit process: reads :class:`TapControl` from the Lab, installs and
    removes samplers; the publishing task writes what they take, the sender thread
    writes replies and what is left over."""

    def __init__(self, conn: Connection, publishers: Callable[[], list[Any]]) -> None:
        self._conn = conn
        self._publishers = publishers
        self._rates: dict[str, float] = {}
        self._samplers: dict[str, tuple[Any, _Sampler]] = {}  # topic -> (publisher, sampler)
        # (item, its array bytes). Only the publishing task appends; whoever holds
        # _write_lock pops. Each side keeps its own byte count.
        self._outbox: deque[tuple[Any, int]] = deque()
        self._replies: deque[Any] = deque()  # sent before the samples
        self._wake = threading.Event()  # a reply or a left-over write waits
        self._gen = 0
        self._offered_bytes = 0  # written by the publishing task only
        self._sent_bytes = 0  # written under _write_lock only
        self._spent_s = 0.0  # the publishing task's time on samples, ever (it alone writes)
        # One writer at a time: the publishing task tries the lock and leaves its
        # samples for later if it is taken; the sender waits for it.
        self._write_lock = threading.Lock()
        self._next_write = 0.0  # time.monotonic() at which the publishing task writes
        self._rest: bytes | memoryview = b""  # what the publishing task could not write
        self._sock = _nonblocking_view(conn)
        self._budget: _Budget | None = None  # made by the sender when it first samples
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._control_loop, name="ezmsg-lab-tap-control", daemon=True),
            threading.Thread(target=self._send_loop, name="ezmsg-lab-tap-sender", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    @property
    def active(self) -> bool:
        """Whether the Lab is still connected (the control thread still reads)."""
        return self._threads[0].is_alive()

    @property
    def scale(self) -> float:
        """The budget's factor for every finite tap rate now (1.0: none)."""
        return 1.0 if self._budget is None else self._budget.scale

    def close(self) -> None:
        """Remove every sampler and stop both threads (bounded)."""
        self._stop.set()
        self._wake.set()
        self._apply({})
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)  # the control thread's poll returns
        for thread in self._threads:
            thread.join(1.0)
        with contextlib.suppress(OSError):
            self._conn.close()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()

    # -- from the publishing task (the unit's loop thread)
    def _offer(self, item: tuple[str, int, float, Any], now: float) -> bool:
        # ``now``: the sampler's look at the clock; the time from it to the end of this
        # call counts against the budget.
        size = _array_bytes(item[3])
        queued = self._offered_bytes - self._sent_bytes
        if len(self._outbox) >= QUEUE_CAPACITY or queued + size > QUEUE_MAX_BYTES:
            self._spent_s += time.monotonic() - now
            return False  # the Lab counts the gap in seq as dropped
        self._offered_bytes += size
        self._outbox.append((item, size))
        if now >= self._next_write and self._sock is not None:
            self._next_write = now + SEND_PERIOD_S
            self._write_now()
        self._spent_s += time.monotonic() - now
        return True

    def _write_now(self) -> None:
        """Write what waits without blocking; what does not fit is left to the sender."""
        if not self._write_lock.acquire(blocking=False):
            return  # the sender is writing: it takes these too, or the next period does
        try:
            if self._rest:
                return  # the sender finishes the last frame first
            data = self._take_batch()
            if data is None:
                return
            head = _header(len(data))
            try:
                # Header and data gathered by the kernel: a batch is not copied to frame it.
                sent = self._sock.sendmsg([head, data], [], socket.MSG_DONTWAIT)  # type: ignore[union-attr]
            except BlockingIOError:
                sent = 0
            except OSError:
                return  # the Lab is gone: the control thread stops us
            if sent < len(head) + len(data):
                self._rest = (
                    head[sent:] + data if sent < len(head) else memoryview(data)[sent - len(head) :]
                )
                self._wake.set()
        finally:
            self._write_lock.release()

    def _take_batch(self) -> bytes | None:
        """Replies then samples waiting, pickled as one list (under ``_write_lock``)."""
        batch: list[Any] = []
        sizes = 0
        while self._replies:
            batch.append(self._replies.popleft())
        while self._outbox:
            item, size = self._outbox.popleft()
            batch.append(item)
            sizes += size
        self._sent_bytes += sizes
        return _pickle_batch(batch) if batch else None

    # -- control thread
    def _control_loop(self) -> None:
        while not self._stop.is_set():
            try:
                missing = self._rates and set(self._rates) - set(self._samplers)
                ready = self._conn.poll(_RESCAN_S if missing else _CONTROL_POLL_S)
                msg = self._conn.recv() if ready else None
            except (EOFError, OSError):
                break  # the Lab is gone: stop sampling
            if isinstance(msg, TapControl):
                self._rates, self._gen = dict(msg.rates), msg.gen
                self._apply(self._rates, reply=True)
            elif self._rates and set(self._rates) - set(self._samplers):
                self._apply(self._rates)  # publishers made since the last control
        self._apply({})
        self._stop.set()  # and the sender: nobody reads any more
        self._wake.set()

    def _apply(self, rates: dict[str, float], reply: bool = False) -> None:
        changed = reply
        for topic in list(self._samplers):
            if topic not in rates:
                pub, _ = self._samplers.pop(topic)
                with contextlib.suppress(AttributeError):
                    del pub.broadcast  # back to the class's own method
                changed = True
        if rates:
            try:
                pubs = {getattr(p, "topic", None): p for p in self._publishers()}
            except RuntimeError:  # the dict changed while the unit made a publisher
                pubs = {}
            for topic, rate in rates.items():
                if topic in self._samplers:
                    self._samplers[topic][1].set_rate(rate, self.scale)
                elif topic in pubs:
                    sampler = _Sampler(pubs[topic], topic, rate, self._offer)
                    sampler.set_scale(self.scale)
                    pubs[topic].broadcast = sampler.call
                    self._samplers[topic] = (pubs[topic], sampler)
                    changed = True
        if changed and not self._stop.is_set():
            # Replies keep their order (the Lab takes the last one as the state).
            self._replies.append(TapInstalled(os.getpid(), sorted(self._samplers), self._gen))
            self._wake.set()

    # -- sender thread
    def _send_loop(self) -> None:
        # Every SENDER_PERIOD_S while something is sampled (the publishing task writes
        # its samples itself; this writes what it left), at once when a reply or a
        # left-over frame waits. With nothing sampled it sleeps until a reply waits.
        own_writes = self._sock is not None
        while not self._stop.is_set():
            budget = self._budget
            if self._samplers:
                if budget is None:
                    budget = self._budget = _Budget()
                    budget.reset(self._spent_s)
                if not own_writes:
                    self._wake.wait(SEND_PERIOD_S)
                else:
                    self._wake.wait(
                        SENDER_PERIOD_S if budget.scale >= 1.0 else SENDER_BUSY_PERIOD_S
                    )
            else:
                if budget is not None and budget.scale < 1.0:
                    self._replies.append(TapBudget(os.getpid(), 1.0, 0.0, 0.0))
                    self._wake.set()
                self._wake.wait(_CONTROL_POLL_S)  # a reply wakes it at once
                if budget is not None:
                    budget.reset(self._spent_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            if budget is not None and self._samplers:
                self._judge_budget(budget)
            with self._write_lock:
                try:
                    if self._rest:
                        rest, self._rest = self._rest, b""
                        self._sock.sendall(rest)  # type: ignore[union-attr]
                    data = self._take_batch()
                    if data is not None:
                        self._conn.send_bytes(data)
                except (OSError, ValueError):
                    return  # the Lab closed its end

    def _judge_budget(self, budget: _Budget) -> None:
        """At the end of the budget's window: set every sampler's factor, and tell the
        Lab when it changed."""
        if budget.update(self._spent_s):
            for _, sampler in list(self._samplers.values()):
                sampler.set_scale(budget.scale)
            self._replies.append(TapBudget(os.getpid(), budget.scale, budget.busy, budget.cost))


def _nonblocking_view(conn: Connection) -> socket.socket | None:
    """A socket on a duplicate of ``conn``'s descriptor, for writes that must not block
    (``MSG_DONTWAIT``); None when it is not a socket (the sender then writes all).

    The view must never change the descriptor's blocking mode, which it shares with
    ``conn``: a process-wide default socket timeout would, so then there is no view."""
    if socket.getdefaulttimeout() is not None:
        return None
    try:
        fd = os.dup(conn.fileno())
    except (OSError, ValueError):
        return None
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        os.close(fd)
        return None
    if sock.type != socket.SOCK_STREAM:
        sock.detach()
        os.close(fd)
        return None
    return sock


def _pickle_batch(batch: list[Any]) -> bytes:
    try:
        return pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        # One message that cannot be pickled: send the others (its seq gap counts it).
        kept = []
        for item in batch:
            with contextlib.suppress(Exception):
                pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
                kept.append(item)
        return pickle.dumps(kept, protocol=pickle.HIGHEST_PROTOCOL)
