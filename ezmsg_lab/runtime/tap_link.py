"""Lab side of sampled taps: one pipe to each unit process of a pipeline the Lab launched
(or one socket to each process of an attached graph that runs ``ezmsg_lab.agent``).

See ``_tap_agent`` for the unit-process side and why. A :class:`TapLink` belongs to one
pipeline (or to the attached graph's agents, see ``agent_link``): it gives each unit
process one end of a duplex pipe, tells every process which
topics to sample (:meth:`want`), and reads the samples of all of them from one thread,
handing each to the sinks that want its topic.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import pickle
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import cast

from ._tap_agent import TapBudget, TapControl, TapInstalled, TapSample, as_sample

logger = logging.getLogger(__name__)

# A sample bigger than this is refused as a corrupt stream (ezmsg messages are rarely
# above a few MB; an image of 4096 x 4096 float32 is 64 MB).
MAX_SAMPLE_BYTES = 256 << 20
_POLL_S = 0.1


@dataclass(eq=False)
class TapWant:
    """One tap's interest in a topic (made by :meth:`TapLink.want`)."""

    topic: str
    rate: float
    on_sample: Callable[[TapSample], None]
    on_error: Callable[[str], None]
    gen: int = 0  # the control that asked for it


class TapLink:
    """The Lab's pipes to one pipeline's unit processes, for sampled taps."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._conns: list[Connection] = []  # Lab ends
        self._child_ends: list[Connection] = []
        self._wants: list[TapWant] = []
        self._installed: dict[Connection, tuple[int, set[str]]] = {}  # (gen, topics)
        self._budgets: dict[Connection, TapBudget] = {}  # the last each process sent
        self._gen = 0  # controls sent
        self._changed = threading.Condition(self._lock)
        self._closed = False
        self._thread = threading.Thread(
            target=self._read_loop, name=f"ezmsg-lab-taps-{name}", daemon=True
        )
        self._thread.start()

    # -- pipeline side
    def new_conn(self) -> Connection:
        """The end a new unit process gets; it is told the current wants at once."""
        ours, theirs = multiprocessing.Pipe(duplex=True)
        with self._lock:
            self._child_ends.append(theirs)
        self.add_conn(ours)
        return theirs

    def add_conn(self, conn: Connection) -> None:
        """Read from ``conn`` too (a connected tap agent's end); it is told the current
        wants at once."""
        with self._lock:
            self._conns.append(conn)
            self._installed[conn] = (0, set())
            rates, gen = self._rates(), self._gen
        if rates:
            self._send(conn, TapControl(rates, gen))

    def close_child_copy(self, conn: Connection) -> None:
        """Close the Lab's copy of a unit's end once its process has started."""
        with self._lock:
            if conn in self._child_ends:
                self._child_ends.remove(conn)
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns = self._conns + self._child_ends
            self._conns, self._child_ends, self._wants = [], [], []
            self._changed.notify_all()
        self._thread.join(1.0)
        for conn in conns:
            conn.close()

    # -- taps side
    def want(
        self,
        topic: str,
        rate: float,
        on_sample: Callable[[TapSample], None],
        on_error: Callable[[str], None],
    ) -> TapWant:
        """Ask every unit process to sample ``topic`` (at the highest rate any tap wants)."""
        w = TapWant(topic, rate, on_sample, on_error)
        with self._lock:
            self._wants.append(w)
        w.gen = self._broadcast()
        return w

    def unwant(self, w: TapWant) -> None:
        with self._lock:
            if w not in self._wants:
                return
            self._wants.remove(w)
        self._broadcast()

    def installed_topics(self) -> set[str]:
        """The topics the unit processes report sampling now."""
        with self._lock:
            return set().union(*(topics for _, topics in self._installed.values()))

    def wait_installed(self, topic: str, timeout: float, gen: int = 0) -> bool:
        """True once some unit process reports that it samples ``topic``, in its answer
        to control ``gen`` or a later one (an earlier answer may be out of date)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not any(g >= gen and topic in topics for g, topics in self._installed.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return False
                self._changed.wait(remaining)
            return True

    def _rates(self) -> dict[str, float]:
        rates: dict[str, float] = {}
        for w in self._wants:
            rates[w.topic] = max(rates.get(w.topic, 0.0), w.rate)
        return rates

    def _broadcast(self) -> int:
        with self._lock:
            self._gen += 1
            rates, conns, gen = self._rates(), list(self._conns), self._gen
        for conn in conns:
            self._send(conn, TapControl(rates, gen))
        return gen

    def _send(self, conn: Connection, control: TapControl) -> None:
        # A process that is gone refuses; its reader then sees end of file.
        with contextlib.suppress(OSError, ValueError):
            conn.send(control)

    # -- reader thread
    def _read_loop(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                conns = list(self._conns)
            if not conns:
                time.sleep(_POLL_S)
                continue
            try:
                ready = cast("list[Connection]", wait(conns, _POLL_S))
            except (OSError, ValueError):
                ready = [c for c in conns if c.closed]
            for conn in ready:
                self._read_one(conn)

    def _read_one(self, conn: Connection) -> None:
        try:
            data = conn.recv_bytes(MAX_SAMPLE_BYTES)
        except (EOFError, OSError, ValueError):
            self._drop(conn)  # the process ended (or wrote garbage): nothing more to read
            return
        try:
            obj = pickle.loads(data)
        except Exception as exc:
            # The message's class cannot be imported here (or the bytes are bad): the
            # taps of every sampled topic count it as an error; the seq gap as a drop.
            with self._lock:
                wants = list(self._wants)
            for w in wants:
                w.on_error(f"{type(exc).__name__}: {exc}")
            return
        for item in obj if isinstance(obj, list) else [obj]:
            self._take(conn, as_sample(item))

    def budget_of(self, topic: str) -> TapBudget | None:
        """The CPU budget's state in the process that samples ``topic``, when it
        lowers the rate there (None when it does not, or no process said)."""
        with self._lock:
            found = [
                b
                for conn, b in self._budgets.items()
                if b.scale < 1.0 and topic in self._installed.get(conn, (0, set()))[1]
            ]
        return min(found, key=lambda b: b.scale) if found else None

    def _take(self, conn: Connection, obj: object) -> None:
        if isinstance(obj, TapSample):
            with self._lock:
                wants = [w for w in self._wants if w.topic == obj.topic]
            for w in wants:
                try:
                    w.on_sample(obj)
                except Exception:
                    logger.exception("a tap could not take a sample of %s", obj.topic)
        elif isinstance(obj, TapInstalled):
            with self._lock:
                if conn in self._installed and obj.gen >= self._installed[conn][0]:
                    self._installed[conn] = (obj.gen, set(obj.topics))
                self._changed.notify_all()
        elif isinstance(obj, TapBudget):
            with self._lock:
                if conn in self._installed:
                    self._budgets[conn] = obj

    def _drop(self, conn: Connection) -> None:
        with self._lock:
            if conn in self._conns:
                self._conns.remove(conn)
            self._installed.pop(conn, None)
            self._budgets.pop(conn, None)
            self._changed.notify_all()
        conn.close()


def rate_of(max_rate_hz: float | None) -> float:
    """The agent's rate for a tap's ``max_rate_hz`` (None: every message)."""
    return math.inf if max_rate_hz is None else float(max_rate_hz)
