"""One way to subscribe: ``unsubscribe = source.subscribe(fn)``.

Every feed and store that tells widgets, forms and watchers about changes (the topology
feed, the profiling poller, the settings store) has ``subscribe(fn)`` returning a function
that unsubscribes ``fn`` (a :class:`Subscribable`), backed by a :class:`Listeners`. A listener that raises is logged and skipped for that event only: it
never stops the feed that called it, never reaches the other listeners, and never looks
like a lost GraphServer. A listener that is a method of an object that may go away (a
widget) is held through :func:`subscribe_weak`, which unsubscribes itself once the object
is garbage-collected.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, Protocol

logger = logging.getLogger(__name__)

P = ParamSpec("P")

Unsubscribe = Callable[[], None]


class Subscribable(Protocol[P]):
    """Anything with ``subscribe(fn) -> unsubscribe``: a feed, a store, a Listeners."""

    def subscribe(self, fn: Callable[P, Any], /) -> Unsubscribe: ...


class Listeners(Generic[P]):
    """A thread-safe set of callbacks, called in subscription order by :meth:`emit`.

    Parameters
    ----------
    name : str
        Used in the log message when a listener raises.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._fns: list[Callable[P, Any]] = []
        self._lock = threading.Lock()
        self.failures = 0  # listener calls that raised, over the object's life

    def subscribe(self, fn: Callable[P, Any]) -> Unsubscribe:
        """Call ``fn`` on every :meth:`emit`; returns a function that unsubscribes it.

        Unsubscribing twice (or after :meth:`clear`) does nothing.
        """
        with self._lock:
            self._fns.append(fn)

        def unsubscribe() -> None:
            with self._lock:
                if fn in self._fns:
                    self._fns.remove(fn)

        return unsubscribe

    def remove(self, fn: Callable[P, Any]) -> None:
        """Unsubscribe ``fn`` (all its subscriptions); nothing happens if it is absent."""
        with self._lock:
            self._fns[:] = [f for f in self._fns if f != fn]

    def emit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """Call every listener; one that raises is logged and skipped."""
        with self._lock:
            fns = list(self._fns)
        for fn in fns:
            try:
                fn(*args, **kwargs)
            except Exception:
                self.failures += 1
                logger.exception("a %s listener raised; skipped for this event", self.name)

    def clear(self) -> None:
        with self._lock:
            self._fns.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._fns)


def subscribe_weak(source: Subscribable[P], method: Callable[P, Any]) -> Unsubscribe:
    """Subscribe a bound method without keeping its object alive.

    Once the object is garbage-collected, the next event unsubscribes the listener instead
    of calling it (a widget a user dropped never costs the feed anything again).
    """
    ref = weakref.WeakMethod(method)
    unsubscribe: Unsubscribe | None = None

    def call(*args: Any, **kwargs: Any) -> None:
        target = ref()
        if target is None:
            if unsubscribe is not None:
                unsubscribe()
            return
        target(*args, **kwargs)

    unsubscribe = source.subscribe(call)
    return unsubscribe
