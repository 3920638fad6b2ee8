"""What ``lab.set`` returns and how it judges a unit after a change (pure, no ezmsg).

A change ezmsg confirmed is not proof that the unit works with it: a filter cutoff above
Nyquist is a valid float, and the unit then raises on every message while ezmsg reports
success. After each change the Lab watches the unit for a short window and judges it with
:func:`judge` from two kinds of evidence: errors the unit raised since the change (from
the unit logs) and whether its message counters moved in polls that *started* after the
change was confirmed (a poll that began earlier may count messages made with the old
settings).
"""

from __future__ import annotations

import dataclasses
import enum
import reprlib
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import SettingsEffectError

__all__ = [
    "Health",
    "PollSample",
    "SetResult",
    "SettingsEffectError",
    "UnitQueue",
    "change_call",
    "changed_paths",
    "effect_message",
    "judge",
    "settings_equal",
]

_repr = reprlib.Repr()
_repr.maxstring = 40
_repr.maxother = 40
_repr.maxlist = 4

HealthStatus = Literal["ok", "raising", "stalled", "quiet", "unwatched"]

# A unit counts as stalled only when, at its rate before the change, it would have
# published at least this many messages in the time watched.
MIN_EXPECTED_MESSAGES = 3.0
# Messages that prove a unit works after a change. One is not enough: a unit finishes the
# message it was on with the old settings (the demo source publishes one more chunk after
# it is disabled).
MIN_PROGRESS = 2
# ezmsg confirms a change once the owning process took the request; the unit applies it
# when its settings subscriber gets the message, a little later (up to ~100 ms on a busy
# machine). Errors raised within this grace after the confirmation may come from messages
# still processed with the old value (undoing a breaking change shows it): they count
# only if the unit does not work after the grace.
ERROR_GRACE_S = 0.25


def show(value: Any) -> str:
    """A short repr for messages (enum members as ``Window.HANN``)."""
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    return _repr.repr(value)


def settings_equal(a: Any, b: Any) -> bool:
    """Deep equality that copes with numpy arrays inside settings."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        try:
            return bool(np.array_equal(np.asarray(a), np.asarray(b)))
        except (TypeError, ValueError):
            return False
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        if type(a) is not type(b):
            return False
        return all(
            settings_equal(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(settings_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(settings_equal, a, b))
    if isinstance(a, (bool, np.bool_)) != isinstance(b, (bool, np.bool_)):
        return False  # True == 1, but a bool field set to 1 is not what was asked
    try:
        return bool(a == b)
    except Exception:  # an odd __eq__: not provably equal
        return False


def changed_paths(a: Any, b: Any, prefix: str = "") -> list[str]:
    """The dotted paths where settings objects ``a`` and ``b`` differ, going into nested
    dataclasses of the same type (a field holding anything else is one path).

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Tone:
    ...     hz: float = 1.0
    ...     amp: float = 1.0
    >>> @dataclass
    ... class S:
    ...     tone: Tone
    ...     n: int = 0
    >>> changed_paths(S(Tone()), S(Tone(amp=2.0), n=1))
    ['tone.amp', 'n']
    """
    both_dc = dataclasses.is_dataclass(a) and not isinstance(a, type)
    if not both_dc or type(a) is not type(b):
        return [] if settings_equal(a, b) else [prefix]
    out: list[str] = []
    for f in dataclasses.fields(a):
        out += changed_paths(getattr(a, f.name), getattr(b, f.name), f"{prefix}{f.name}.")
    return [p.rstrip(".") for p in out]


@dataclass(frozen=True)
class Health:
    """The unit's state in the window after a change.

    ``status`` is ``"ok"`` (it processed messages after the change without raising),
    ``"raising"``, ``"stalled"`` (it was publishing and stopped), ``"quiet"`` (no traffic
    reached it, so nothing can be said) or ``"unwatched"`` (``watch=False``).
    """

    status: HealthStatus
    detail: str = ""
    watched_s: float = 0.0

    @property
    def problem(self) -> bool:
        return self.status in ("raising", "stalled")


UNWATCHED = Health("unwatched")


@dataclass(frozen=True)
class SetResult:
    """One confirmed settings change.

    Attributes
    ----------
    unit : str
        Address of the unit.
    requested : dict
        ``{dotted path: value}`` as sent (after the Lab's coercion: enum members of the
        unit's own class, floats for float fields...).
    applied : dict
        The same paths read back from the settings event that confirmed the change.
    previous : dict
        The same paths before the change (what :meth:`Lab.undo` restores).
    seq : int
        ezmsg's settings event sequence number of the confirmation.
    elapsed_s : float
        From the call to the confirmation (validation included, watching excluded).
    method : {"update_setting", "publish"}
        ``"publish"``: one whole settings object was published to the unit's
        ``INPUT_SETTINGS`` (the direct path, for any unit whose class is importable here);
        ``"update_setting"``: ezmsg's field update patched the fields in the owning
        process (a class not importable here, or a unit no running process owns).
    health : Health
        What the closed-loop watch saw after the change.
    """

    unit: str
    requested: Mapping[str, Any]
    applied: Mapping[str, Any]
    previous: Mapping[str, Any]
    seq: int
    elapsed_s: float
    method: str
    health: Health = field(default=UNWATCHED)
    value: Any = field(default=None, repr=False, compare=False)  # the applied object
    sent_at: float = field(default=0.0, repr=False, compare=False)  # epoch s
    confirmed_at: float = field(default=0.0, repr=False, compare=False)  # epoch s

    @property
    def differs(self) -> list[str]:
        """Paths where what the unit applied is not what was requested."""
        return [p for p, v in self.requested.items() if not settings_equal(v, self.applied.get(p))]

    @property
    def ok(self) -> bool:
        """Applied as requested, and the unit did not break (as far as was watched)."""
        return not self.differs and not self.health.problem

    def __repr__(self) -> str:
        # Stable text (no seq, no timings) so notebooks can show it under nbval.
        if not self.requested:
            return f"<SetResult {self.unit}: nothing to change>"
        parts = ", ".join(
            f"{p} {show(self.previous.get(p))} -> {show(self.applied.get(p))}"
            for p in self.requested
        )
        state = "applied" if not self.differs else f"NOT as requested: {self.differs}"
        if self.health.status not in ("unwatched", "ok", "quiet"):
            state += f"; unit {self.health.status}"
        return f"<SetResult {self.unit}: {parts} ({state})>"


def change_call(unit: str, requested: Mapping[str, Any]) -> str:
    """``lab.set('DEMO/FILTER', cutoff_hz=600.0)`` for messages (dotted paths as a dict)."""
    if all(p.isidentifier() for p in requested):
        args = ", ".join(f"{p}={show(v)}" for p, v in requested.items())
    else:
        args = "{" + ", ".join(f"{p!r}: {show(v)}" for p, v in requested.items()) + "}"
    return f"lab.set({unit!r}, {args})"


@dataclass(frozen=True)
class PollSample:
    """The unit's counters in one poll: summed over its data publishers / subscribers."""

    started_s: float  # epoch seconds when the poll began
    out_total: int | None  # None: the unit has no publishers (or none answered)
    in_total: int | None


def judge(
    samples: list[PollSample],
    *,
    confirmed_s: float,
    errors: int,
    last_error: str | None,
    rate_before_hz: float | None,
    elapsed_s: float,
    window_s: float,
    has_inputs: bool,
    early_errors: int = 0,
) -> Health | None:
    """Verdict so far, or None to keep watching.

    Parameters
    ----------
    samples : list of PollSample
        Polls in order; only those started after ``confirmed_s`` count.
    errors, last_error
        Errors the unit raised later than :data:`ERROR_GRACE_S` after the change, and the
        first line of the last error.
    early_errors : int
        Errors within the grace: the change's doing only if the unit does not work after
        the grace (no progress counted before it), or nothing else is known by the end.
    rate_before_hz : float or None
        The unit's publishing rate before the change (None: unknown or no publishers).
    elapsed_s, window_s
        Time watched so far, and the window.
    has_inputs : bool
        Whether the unit subscribes to data (a source does not).
    """
    if errors:
        return Health("raising", last_error or "it raised an exception", elapsed_s)
    since = confirmed_s + (ERROR_GRACE_S if early_errors else 0.0)
    after = [s for s in samples if s.started_s >= since]
    moved_out = moved_in = False
    if len(after) >= 2:
        first, last = after[0], after[-1]
        if first.out_total is not None and last.out_total is not None:
            moved_out = last.out_total - first.out_total >= MIN_PROGRESS
        if first.in_total is not None and last.in_total is not None:
            moved_in = last.in_total - first.in_total >= MIN_PROGRESS
    publishing_before = rate_before_hz is not None and rate_before_hz > 0
    if moved_out:
        return Health("ok", "it published after the change", elapsed_s)
    if moved_in and not publishing_before:
        # A sink, or a unit that publishes rarely: it took messages and raised nothing.
        return Health("ok", "it processed messages after the change", elapsed_s)
    if elapsed_s < window_s:
        return None
    if early_errors:
        return Health("raising", last_error or "it raised an exception", elapsed_s)
    expected = (rate_before_hz or 0.0) * elapsed_s
    if publishing_before and expected >= MIN_EXPECTED_MESSAGES and (moved_in or not has_inputs):
        return Health(
            "stalled",
            f"it was publishing before and published nothing in the {window_s:g} s since",
            elapsed_s,
        )
    return Health("quiet", "no messages reached it while watched", elapsed_s)


def effect_message(result: SetResult) -> str:
    """The notice printed in the cell when a change broke the unit."""
    was = ", ".join(f"{p}={show(v)}" for p, v in result.previous.items())
    verb = "started raising" if result.health.status == "raising" else "stopped publishing"
    return (
        f"ezmsg-lab: {result.unit} {verb} after {change_call(result.unit, result.requested)} "
        f"(was {was}): {result.health.detail}\n"
        "  The change is in effect; undo it with lab.undo()."
    )


class UnitQueue:
    """A FIFO lock: callers get the unit in the order they asked (threading.Lock is unfair)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy = False
        self._waiting: deque[threading.Event] = deque()

    def acquire(self, timeout: float) -> bool:
        with self._lock:
            if not self._busy:
                self._busy = True
                return True
            turn = threading.Event()
            self._waiting.append(turn)
        if turn.wait(timeout):
            return True
        with self._lock:
            if turn.is_set():  # handed over just as we gave up: it is ours
                return True
            self._waiting.remove(turn)
            return False

    def release(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()  # stays busy: ownership passes on
            else:
                self._busy = False
