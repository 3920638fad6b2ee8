"""Sending settings to units and waiting for ezmsg's settings event that confirms them.

Runs on the control loop (the Lab's one GraphContext). Two ways to send, chosen per
update by :class:`~ezmsg_lab.services.settings.SettingsService`:

- the direct path, for any number of fields of a unit whose settings class is importable
  here: one whole settings object (the unit's current one with the changed fields
  replaced), published on the unit's ``INPUT_SETTINGS`` by a publisher the Lab keeps open
  per unit, so the unit sees all fields change at once. It is faster than ezmsg's field
  update (no request/reply through the GraphServer to the owning process). ezmsg's own
  ``update_settings`` opens a publisher per call and broadcasts before the unit's
  subscriber has connected: on ezmsg 3.9.0 it delivered 2 of 5 updates (measured), and
  every call churns the topology. The kept publisher waits once for the connection.
- field by field, ``GraphContext.update_setting``: for a class not importable here (a
  script's ``__main__`` units), and for a unit no running process owns (ezmsg's refusal
  says so). The owning process patches its *current* value; ezmsg 3.10 also coerces the
  value there.

A whole object carries every field, so one built from a stale value would undo another
client's change to a different field. :meth:`SettingsControl.send_object` prevents that:
the object is rebuilt on the settings store's value at the moment it is sent (the store is
kept live by ezmsg's events, on this same loop), and a change whose event arrives while
ours is in flight (sent before ours reached the unit) is put back right after ours is
confirmed. What remains: a third client's change landing during that put-back, and a
client that changes the same field as ours (the later one wins, as with field updates).

In both cases the call returns the ``SettingsSnapshotValue`` of the first settings event
for the unit whose value equals what was sent: the proof that the unit's process received
it (ezmsg reports a settings message before the unit's own handler runs). The value is
compared as a settings object when its class is importable here, else as ezmsg's
structured value (:func:`structured_matcher`), which needs no class at all.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import pickle
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from ..errors import LabTimeoutError, SettingsRefusedError
from ..model.logs import LogStore
from ..model.metrics import MetricsStore
from ..model.paths import get_path
from ..model.settings_changes import (
    ERROR_GRACE_S,
    UNWATCHED,
    Health,
    PollSample,
    SetResult,
    changed_paths,
    judge,
)
from ..model.settings_changes import settings_equal as _equal
from ..model.settings_store import SettingsStore, as_structured, structured
from ..model.settings_validate import rebuild
from ..runtime import compat
from ..runtime.connection import Connection
from ..runtime.loop import ControlLoop
from .profiling import ProfilingPoller

logger = logging.getLogger(__name__)

__all__ = [
    "ChangeWatcher",
    "Counters",
    "DEFAULT_WATCH_S",
    "SettingsControl",
    "SettingsRefusedError",
    "field_matcher",
    "object_matcher",
    "structured_matcher",
    "unpickled",
]

# A publisher of settings carries a handful of small objects: few, small buffers (ezmsg
# grows a buffer when a message does not fit).
_PUB_BUFFERS = 4
_PUB_BUF_SIZE = 1 << 14

DEFAULT_WATCH_S = 0.75
# Poll rate while watching a change: two polls 50 ms apart judge a unit that publishes at
# 100 Hz in about 0.1 s, instead of waiting seconds at the default 1 Hz.
WATCH_POLL_HZ = 20.0
# Errors from messages processed just before the unit applied a change are not the
# change's doing (it matters when undoing a breaking change).
_ERROR_MARGIN_S = 0.005

Counters = tuple[int | None, int | None, float | None]


def _short_pydantic(detail: str) -> str:
    """The first human line of a pydantic message, without its ``[type=...]`` tail."""
    lines = [ln.strip() for ln in detail.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith(("Input should", "Value error", "Assertion failed")) or "should" in ln:
            return re.sub(r"\s*\[type=.*$", "", ln)
    return re.sub(r"\s*\[type=.*$", "", lines[-1]) if lines else detail


def refusal(unit: str, what: str, exc: RuntimeError) -> SettingsRefusedError:
    """Map ezmsg's ``RuntimeError("Process request failed (CODE): ...")`` to a Lab error."""
    code, detail = compat.process_error(exc) or ("UNKNOWN", str(exc))
    if code in ("UNROUTABLE_UNIT", "PROCESS_DISCONNECTED", "ROUTE_WRITE_FAILED"):
        msg = (
            f"{unit}: {what} was not applied: no running process owns this unit ({code}). "
            "Is its pipeline still running? See lab.pipelines and lab.logs()."
        )
    elif code == "TIMEOUT":
        msg = (
            f"{unit}: {what} was not applied: the unit's process did not answer in time. "
            "It may be blocked in a long computation; see lab.logs(unit=...)."
        )
    elif code == "UNSUPPORTED_OPERATION":
        msg = f"{unit}: {what} was not applied: the unit has no INPUT_SETTINGS ({detail})."
    elif code == "HANDLER_ERROR" and compat.is_coercion_refusal(detail):
        # ezmsg 3.10 coerces in the owning process and refuses with pydantic's message.
        msg = f"{unit}: ezmsg refused {what}: {_short_pydantic(detail)}. Nothing changed."
    elif code == "HANDLER_ERROR" and compat.is_loopback_settings_publisher(detail):
        msg = (
            f"{unit}: ezmsg refused {what} ({code}): {detail.splitlines()[0]}. Nothing "
            "changed. The unit runs on another host: ezmsg applies the change through a "
            "settings publisher in the unit's process that listens on 127.0.0.1 only, "
            "while the GraphServer tells subscribers that host's address. In the script "
            "that runs those units, before ez.run (at the top, so every unit process "
            "applies it): import ezmsg.core.netprotocol; "
            'ezmsg.core.netprotocol.DEFAULT_HOST = "0.0.0.0" (see README, "A graph '
            'across machines").'
        )
    elif code == "INVALID_RESPONSE" and "Invalid settings field update payload" in detail:
        # The unit's process could not load the value: for an enum sent by value (its
        # class is not importable here), a value that is not one of its members.
        why = detail.partition("payload:")[2].strip() or detail
        msg = (
            f"{unit}: the unit's process refused {what}: {why}. Nothing changed; "
            "give one of its values, as lab.settings() shows them."
        )
    else:
        first = detail.splitlines()[0] if detail else code
        msg = f"{unit}: ezmsg refused {what} ({code}): {first}"
    return SettingsRefusedError(msg, unit=unit, code=code, detail=detail)


def unpickled(value: Any) -> Any:
    """The settings object inside a ``SettingsSnapshotValue``, or None."""
    raw = getattr(value, "serialized", None)
    if raw is None:
        return None
    try:
        return pickle.loads(raw)
    except Exception:  # a class not importable here: cannot be one the Lab built
        return None


# A matcher gets the event's snapshot value and a function returning its unpickled
# settings object (None when the class is not importable here), unpickled at most once.
Matcher = Callable[[Any, Callable[[], Any]], bool]


def field_matcher(path: str, value: Any) -> Matcher:
    """Match a settings object whose ``path`` holds ``value`` (other fields may differ)."""

    def match(_snap: Any, obj: Callable[[], Any]) -> bool:
        o = obj()
        return o is not None and _equal(get_path(o, path), value)

    return match


def object_matcher(expected: Any) -> Matcher:
    """Match a settings object equal to ``expected`` in every field."""

    def match(_snap: Any, obj: Callable[[], Any]) -> bool:
        o = obj()
        return o is not None and _equal(o, expected)

    return match


def structured_matcher(path: str, value: Any) -> Matcher:
    """Match a snapshot whose structured value holds ``value`` at ``path``, compared as
    ezmsg's structured form (an enum as its value): no class needed."""
    want = as_structured(value)
    return lambda snap, _obj: _equal(get_path(structured(snap), path), want)


class _ObjectMatch:
    """:func:`object_matcher` whose expected object can still be replaced before sending."""

    __slots__ = ("expected",)

    def __init__(self, expected: Any) -> None:
        self.expected = expected

    def __call__(self, _snap: Any, obj: Callable[[], Any]) -> bool:
        o = obj()
        return o is not None and _equal(o, self.expected)


def _undone(before_value: Any, sent: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """{path: value} of the fields another client had set (shown by the event before ours,
    ``before_value``) that our whole object ``sent`` put back to older values; our own
    ``fields`` (and paths inside or around them) are ours to set."""
    before = unpickled(before_value)
    if before is None or sent is None or type(before) is not type(sent):
        return {}

    def ours(path: str) -> bool:
        return any(
            path == f or path.startswith(f + ".") or f.startswith(path + ".") for f in fields
        )

    return {p: get_path(before, p) for p in changed_paths(before, sent) if p and not ours(p)}


class _Waiter:
    __slots__ = ("address", "match", "future", "seen", "last")

    def __init__(
        self, address: str, match: Matcher, future: asyncio.Future[tuple[Any, Any, int]]
    ) -> None:
        self.address, self.match, self.future = address, match, future
        self.seen = 0  # events for the unit that did not match, for the timeout message
        self.last: Any = None


class SettingsControl:
    """Sends settings for the Lab and resolves confirmations from the settings store.

    Use only on the control loop, except :meth:`on_event` (a store listener, called on the
    control loop by the settings feed).
    """

    def __init__(self, conn: Connection, store: SettingsStore) -> None:
        self._conn = conn
        self._store = store
        self._waiters: list[_Waiter] = []
        self._pubs: dict[str, Any] = {}  # settings topic -> ezmsg Publisher
        self._pub_locks: dict[str, asyncio.Lock] = {}
        self._unsubscribe = store.subscribe(self.on_event)

    def detach(self) -> None:
        self._unsubscribe()

    # ------------------------------------------------------------------ confirmation
    def on_event(self, address: str, value: Any, event: Any) -> None:
        waiters = [w for w in self._waiters if w.address == address and not w.future.done()]
        if not waiters:
            return
        cache: list[Any] = []

        def obj() -> Any:  # unpickled once per event, and only if a matcher asks
            if not cache:
                cache.append(unpickled(value))
            return cache[0]

        for w in waiters:
            if w.match(value, obj):
                w.future.set_result((value, obj(), int(event.seq)))
            else:
                w.seen += 1
                w.last = value

    async def _confirmed(
        self,
        address: str,
        match: Matcher,
        send: Callable[[], Any],
        timeout: float,
        what: str,
        missed: list[Any] | None = None,
    ) -> tuple[Any, Any, int]:
        """Register a waiter, run ``send()``, then wait for the matching event.

        The waiter exists before sending: the event can arrive before ezmsg's reply does.
        Returns ``(snapshot value, settings object, seq)`` of the confirming event; the
        last other event for the unit before it, if any, is appended to ``missed``.
        """
        loop = asyncio.get_running_loop()
        waiter = _Waiter(address, match, loop.create_future())
        self._waiters.append(waiter)
        try:
            try:
                await send()
                found = await asyncio.wait_for(asyncio.shield(waiter.future), timeout)
                if missed is not None and waiter.seen:
                    missed.append(waiter.last)
                return found
            except asyncio.TimeoutError:
                if waiter.seen:
                    # Events came, so the server and the unit answer: say what they showed.
                    shown = structured(waiter.last)
                    cause = (
                        f"{waiter.seen} settings event(s) for the unit arrived, none with "
                        f"the value sent; the last shows {shown!r}. Another client may have "
                        "changed it at the same time, or the unit replaced it"
                    )
                else:
                    cause = "The unit may be stuck or its pipeline stopped"
                raise LabTimeoutError(
                    f"{address}: {what} was sent, but no settings event confirmed it within "
                    f"{timeout:g} s. {cause}; check lab.settings_history({address!r}) and "
                    f"lab.logs(unit={address!r})."
                ) from None
        finally:
            self._waiters.remove(waiter)

    # ------------------------------------------------------------------ sending
    async def send_field(
        self,
        address: str,
        path: str,
        value: Any,
        timeout: float,
        what: str,
        match: Matcher | None = None,
    ) -> tuple[Any, Any, int]:
        """Patch one (dotted) field in the owning process; wait for its event.

        ``match`` confirms the event (default: the settings object holds ``value`` at
        ``path``); ``value`` is sent as given, so it may be a wire form of the value.
        """

        async def send() -> Any:
            async def op(ctx: Any) -> Any:
                try:
                    return await ctx.update_setting(
                        address, path, value, timeout=max(0.1, timeout * 0.9)
                    )
                except RuntimeError as exc:
                    # A refusal is an answer, not a lost connection: hand it back as a value
                    # so Connection.call does not judge it by its text.
                    if compat.process_error(exc) is not None:
                        return exc
                    raise

            reply = await self._conn.call(op)
            if isinstance(reply, RuntimeError):
                raise refusal(address, what, reply)
            return reply

        if match is None:
            match = field_matcher(path, value)
        return await self._confirmed(address, match, send, timeout, what)

    async def send_object(
        self,
        address: str,
        topic: str,
        obj: Any,
        timeout: float,
        what: str,
        owner_pid: int | None = None,
        bind_all: bool = False,
        fields: dict[str, Any] | None = None,
        built_from: Any = None,
    ) -> tuple[Any, Any, int]:
        """Publish a whole settings object on the unit's settings topic; wait for its event.

        ``owner_pid`` is the pid of the unit's process: the message goes out once that
        process's channel is connected (a broadcast before is lost). ``bind_all``: the
        unit runs on another host, so the Lab's publisher listens on every interface
        (ezmsg binds 127.0.0.1 by default, which another host cannot reach).

        ``fields`` (the changed paths and their validated values) and ``built_from`` (the
        snapshot value ``obj`` was built from) keep other clients' changes: if the store
        holds a newer value when the object goes out, the fields are applied to that one
        instead; and other fields that a change confirmed while ours was in flight had set,
        and ours undid, are put back with one more object (see the module's docstring).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pub = await self._publisher(topic, timeout, bind_all)
        missed: list[Any] = []

        def left() -> float:
            return max(0.05, deadline - loop.time())

        async def publish(message: Any) -> None:
            await self._wait_connected(pub, topic, owner_pid, left())
            if fields is not None and message is obj:
                message = self._fresh(address, obj, fields, built_from)
                matcher.expected = message
            await pub.broadcast(message)

        matcher = _ObjectMatch(obj)
        found = await self._confirmed(
            address, matcher, lambda: publish(obj), left(), what, missed if fields else None
        )
        undone = _undone(missed[0], found[1], fields) if fields and missed else {}
        if not undone:
            return found
        logger.info("%s: putting back %s, changed by another client meanwhile", address, undone)
        again = rebuild(found[1], undone)
        return await self._confirmed(
            address, object_matcher(again), lambda: publish(again), left(), what
        )

    def _fresh(self, address: str, obj: Any, fields: dict[str, Any], built_from: Any) -> Any:
        """``obj``, or the same fields applied to the store's newer value for the unit
        (read on the control loop, which also applies the events: nothing slips between)."""
        latest = self._store.current.get(address)
        if latest is None or latest is built_from:
            return obj
        base = unpickled(latest)
        if base is None or type(base) is not type(obj):
            return obj
        try:
            return rebuild(base, fields)
        except Exception:  # the class refused the combination with the newer fields
            return obj

    async def _publisher(self, topic: str, timeout: float, bind_all: bool = False) -> Any:
        pub = self._pubs.get(topic)
        if pub is not None:
            return pub
        lock = self._pub_locks.setdefault(topic, asyncio.Lock())
        async with lock:
            pub = self._pubs.get(topic)
            if pub is None:
                host = "0.0.0.0" if bind_all else None
                pub = await self._conn.call(
                    lambda ctx: ctx.publisher(
                        topic, num_buffers=_PUB_BUFFERS, buf_size=_PUB_BUF_SIZE, host=host
                    )
                )
                self._pubs[topic] = pub
        return pub

    @staticmethod
    async def _wait_connected(pub: Any, topic: str, pid: int | None, timeout: float) -> None:
        # ezmsg tells the subscribers about a new publisher and they connect on their own
        # time; a message broadcast before that is lost. The channel table always holds
        # this process, so wait for the unit's own process (unknown pid or a future ezmsg
        # that hides the table: just go on).
        pids = compat.publisher_channel_pids(pub)
        if pids is None or pid is None or pid in pids:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while pid not in (compat.publisher_channel_pids(pub) or {pid}):
            if loop.time() > deadline:
                raise LabTimeoutError(
                    f"The unit's process (pid {pid}) did not connect to {topic} within "
                    f"{timeout:g} s, so nothing was sent. Is the unit's pipeline running?"
                )
            await asyncio.sleep(0.002)

    async def close(self) -> None:
        """Close the publishers (ezmsg also closes them with the GraphContext)."""
        self.detach()
        await self.drop_publishers()

    async def drop_publishers(self) -> None:
        """Close the publishers (they belonged to a GraphContext that is gone, after a
        reconnect); the next send makes new ones."""
        pubs, self._pubs = list(self._pubs.values()), {}
        for pub in pubs:
            with contextlib.suppress(Exception):
                pub.close()
                await asyncio.wait_for(pub.wait_closed(), 1.0)


class ChangeWatcher:
    """Watches a unit right after a settings change: did it keep working?

    Evidence comes from the Lab's own stores (the one profiling poller, the unit logs);
    while any change is watched the poller runs at :data:`WATCH_POLL_HZ`, then goes back
    to the user's rate. Called from the caller's thread, never the control loop.
    """

    def __init__(
        self, loop: ControlLoop, poller: ProfilingPoller, metrics: MetricsStore, logs: LogStore
    ) -> None:
        self._loop, self._poller, self._metrics, self._logs = loop, poller, metrics, logs
        self._lock = threading.Lock()
        self._boosts = 0
        # Units under watch: the Lab's generic "started raising" notice stays quiet for
        # them, since the watch reports the same errors naming the change and the undo.
        self.watching: collections.Counter[str] = collections.Counter()
        self._saved_hz: float | None = None

    def counters(self, address: str) -> Counters:
        """(messages published, messages received, publish rate) of a unit's data streams
        at the latest poll. Settings topics are left out: the Lab's own settings publisher
        and ezmsg's in-process one carry the unit's address too."""
        frame = self._metrics.profile(include_gone=False)
        rows = frame[(frame["unit"] == address) & ~frame["topic"].str.endswith("/INPUT_SETTINGS")]
        pubs = rows[rows["kind"] == "publisher"]
        subs = rows[rows["kind"] == "subscriber"]
        out = int(pubs["messages_total"].sum()) if len(pubs) else None
        inn = int(subs["messages_total"].sum()) if len(subs) else None
        rate = _recent_rate(self._metrics, pubs)
        return out, inn, rate

    def watch(
        self,
        result: SetResult,
        window: float,
        before: Counters | None,
        closed: Callable[[], bool],
    ) -> Health:
        """Watch ``result.unit`` for at most ``window`` seconds; return as soon as judged."""
        address = result.unit
        wake = threading.Condition()
        starts: list[float] = []

        def on_poll() -> None:  # on the control loop, after each poll
            with wake:
                starts.append(time.time() - (self._poller.poll_seconds or 0.0))
                wake.notify_all()

        errors_from = result.confirmed_at + _ERROR_MARGIN_S
        errors_late_from = result.confirmed_at + ERROR_GRACE_S
        samples: list[PollSample] = []
        has_inputs = before is not None and before[1] is not None
        period = 1.0 / WATCH_POLL_HZ
        unsubscribe = self._poller.subscribe(on_poll)
        self._boost(True)
        with self._lock:
            self.watching[address] += 1
        t0 = last_poll = time.monotonic()
        try:
            while True:
                with wake:
                    if not starts:
                        wake.wait(period)
                    latest = starts[-1] if starts else None
                    starts.clear()
                now = time.monotonic()
                if latest is not None:
                    last_poll = now
                    out, inn, _ = self.counters(address)
                    has_inputs = has_inputs or inn is not None
                    samples.append(PollSample(latest, out, inn))
                elif now - last_poll >= period:
                    # After a rate change the poller keeps its old schedule for a while (up
                    # to 0.25 s); waking it (set_rate does) polls now.
                    self._loop.call_soon(self._poller.set_rate, WATCH_POLL_HZ)
                    last_poll = now
                late = self._logs.errors_since(address, errors_late_from)
                early = self._logs.errors_since(address, errors_from) - late
                last = self._logs.last_error(address) if late or early else None
                verdict = judge(
                    samples,
                    confirmed_s=result.confirmed_at,
                    errors=late,
                    early_errors=early,
                    last_error=_last_line(last.message) if last else None,
                    rate_before_hz=before[2] if before else None,
                    elapsed_s=time.monotonic() - t0,
                    window_s=window,
                    has_inputs=has_inputs,
                )
                if verdict is not None or closed():
                    return verdict or UNWATCHED
        finally:
            unsubscribe()
            with self._lock:
                self.watching[address] -= 1
                if self.watching[address] <= 0:
                    del self.watching[address]
            self._boost(False)

    def _boost(self, on: bool) -> None:
        # set_rate wakes an asyncio.Event: call it on the control loop only.
        with self._lock:
            self._boosts += 1 if on else -1
            if on and self._boosts == 1:
                self._saved_hz = self._poller.rate_hz
                if self._saved_hz < WATCH_POLL_HZ:
                    self._loop.call_soon(self._poller.set_rate, WATCH_POLL_HZ)
            elif not on and self._boosts == 0 and self._saved_hz is not None:
                saved, self._saved_hz = self._saved_hz, None
                if saved < WATCH_POLL_HZ:
                    self._loop.call_soon(self._unboost, saved)

    def _unboost(self, saved: float) -> None:
        if self._poller.rate_hz == WATCH_POLL_HZ:  # unless the user set a rate meanwhile
            self._poller.set_rate(saved)


def _recent_rate(metrics: MetricsStore, pubs: pd.DataFrame, window_s: float = 2.0) -> float | None:
    """The publishers' summed rate over the last ``window_s`` (see
    :meth:`MetricsStore.recent_rate`), else their latest polled rates."""
    if not len(pubs):
        return None
    rate = metrics.recent_rate(pubs["endpoint"], window_s)
    if rate is not None:
        return rate
    rates = pubs["rate_hz"].dropna()
    return float(rates.sum()) if len(rates) else None


def _last_line(text: str | None) -> str | None:
    return text.strip().splitlines()[-1] if text and text.strip() else text
