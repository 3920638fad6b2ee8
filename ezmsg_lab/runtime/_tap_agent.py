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

Every message the sampler does not forward (over the rate, or the pipe's queue full) is
counted: each forwarded message carries the publisher's running message count, and the
Lab counts the gaps as dropped.

This module is imported in unit processes (also under the spawn start method): keep it
free of heavy imports.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
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
# How often the sender sends what waits: batching keeps the cost per sampled message to a
# deque append in the publishing task (no lock, no wake-up) and one write per period. The
# period is the scope's frame time (20 frames/s): each wake-up of this thread takes the
# GIL from a busy unit, and at 100 a second (10 ms) that alone cost a flooding pipeline
# about 20 µs of CPU a message (measured: 63 -> 83 µs; 200 ms brought it back to 63).
SEND_PERIOD_S = 0.05
# Most messages a sampler lets pass between two looks at the clock (see _Sampler).
MAX_STRIDE = 16
_RATE_WINDOW_S = 0.02
# How often the agent looks for publishers it was asked to sample that appeared since
# (a control message may arrive before the process has made its publishers).
_RESCAN_S = 0.2


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
class TapSample:
    """Unit process -> Lab: one message of a sampled topic."""

    topic: str
    seq: int  # the publisher's messages counted since sampling began, this one included
    time: float  # time.time() when the unit published it
    message: Any


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

    def __init__(self, pub: Any, topic: str, rate: float, offer: Callable[[Any], bool]) -> None:
        broadcast = type(pub).broadcast.__get__(pub)  # the publisher's own method
        self.topic = topic
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
                    offer(TapSample(topic, seq, time.time(), obj))
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

        def set_rate(new: float) -> None:
            nonlocal due, stride, last_t
            gate.set_rate(new)
            due = stride = 1  # look at every message until the rate is measured again
            last_t = math.nan

        self.call = call
        self.count = count
        self.set_rate = set_rate


class TapAgent:
    """Runs in a unit process: reads :class:`TapControl` from the Lab, installs and
    removes samplers, and sends samples and replies from one sender thread."""

    def __init__(self, conn: Connection, publishers: Callable[[], list[Any]]) -> None:
        self._conn = conn
        self._publishers = publishers
        self._rates: dict[str, float] = {}
        self._samplers: dict[str, tuple[Any, _Sampler]] = {}  # topic -> (publisher, sampler)
        # (item, its array bytes). The publishing task only appends (deque appends are
        # atomic) and the sender only pops, so the hot path takes no lock and wakes no
        # thread; each side keeps its own byte count.
        self._outbox: deque[tuple[Any, int]] = deque()
        self._replies: deque[TapInstalled] = deque()  # sent before the samples
        self._wake = threading.Event()  # a reply waits (for a sender with nothing sampled)
        self._gen = 0
        self._offered_bytes = 0  # written by the publishing task only
        self._sent_bytes = 0  # written by the sender only
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

    def close(self) -> None:
        """Remove every sampler and stop both threads (bounded)."""
        self._stop.set()
        self._wake.set()
        self._apply({})
        for thread in self._threads:
            thread.join(1.0)
        with contextlib.suppress(OSError):
            self._conn.close()

    # -- from the publishing task (the unit's loop thread)
    def _offer(self, item: TapSample) -> bool:
        size = _array_bytes(item.message)
        queued = self._offered_bytes - self._sent_bytes
        if len(self._outbox) >= QUEUE_CAPACITY or queued + size > QUEUE_MAX_BYTES:
            return False  # the Lab counts the gap in seq as dropped
        self._offered_bytes += size
        self._outbox.append((item, size))
        return True

    # -- control thread
    def _control_loop(self) -> None:
        while not self._stop.is_set():
            try:
                ready = self._conn.poll(_RESCAN_S)
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
                    self._samplers[topic][1].set_rate(rate)
                elif topic in pubs:
                    sampler = _Sampler(pubs[topic], topic, rate, self._offer)
                    pubs[topic].broadcast = sampler.call
                    self._samplers[topic] = (pubs[topic], sampler)
                    changed = True
        if changed and not self._stop.is_set():
            # Replies keep their order (the Lab takes the last one as the state).
            self._replies.append(TapInstalled(os.getpid(), sorted(self._samplers), self._gen))
            self._wake.set()

    # -- sender thread
    def _send_loop(self) -> None:
        # Every SEND_PERIOD_S while something is sampled: everything waiting, pickled as
        # one list, in one write. With nothing sampled the thread sleeps until a reply
        # waits: a thread waking 100 times a second costs a busy unit its GIL.
        while not self._stop.is_set():
            if self._samplers:
                self._stop.wait(SEND_PERIOD_S)
            else:
                self._wake.wait(_RESCAN_S)
                self._wake.clear()
            batch: list[Any] = []
            sizes = 0
            while self._replies:
                batch.append(self._replies.popleft())
            while self._outbox:
                item, size = self._outbox.popleft()
                batch.append(item)
                sizes += size
            if not batch:
                continue
            data = _pickle_batch(batch)
            self._sent_bytes += sizes
            try:
                self._conn.send_bytes(data)
            except (OSError, ValueError):
                return  # the Lab closed its end


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
