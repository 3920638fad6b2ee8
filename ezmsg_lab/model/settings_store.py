"""Settings store: every unit's current settings and the history of every field change.

Fed by ezmsg's settings snapshot and event stream (INITIAL_SETTINGS, SETTINGS_UPDATED).
Field changes are computed from the structured values, with dotted paths for nested
dataclasses; the initial values are part of the history.

Tables show a value the way ``lab.set`` results do: given the unit's field specs, an enum
field's structured value (``"hann"``) becomes its member (``Window.HANN``), and the
choices of enum fields are listed as well as those of ``Literal`` ones.
"""

from __future__ import annotations

import dataclasses
import enum
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .clock import to_utc
from .listeners import Listeners, Unsubscribe
from .paths import get_path

if TYPE_CHECKING:
    from .settings_schema import FieldSpec, SettingsSpec

_MISSING = object()


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{dotted path: leaf} for nested dicts (ezmsg's structured settings values)."""
    if not isinstance(value, dict):
        return {prefix: value} if prefix else {}
    out: dict[str, Any] = {}
    for key, item in value.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(item, dict) and item:
            out.update(flatten(item, path))
        else:
            out[path] = item
    return out


def structured(value: Any) -> dict[str, Any] | None:
    """The structured (dict) form of an ezmsg SettingsSnapshotValue, if it has one."""
    sv = getattr(value, "structured_value", None)
    if isinstance(sv, dict):
        return sv
    rv = getattr(value, "repr_value", None)
    return rv if isinstance(rv, dict) else None


def as_structured(value: Any) -> Any:
    """A value as ezmsg's structured settings value shows it: enums as their values,
    tuples and sets as lists, dataclasses as dicts (what ezmsg's ``_sanitize`` does)."""
    plain = isinstance(value, (bool, int, float, str)) and not isinstance(value, enum.Enum)
    if value is None or plain:
        return value
    if isinstance(value, enum.Enum):
        return as_structured(value.value)
    if isinstance(value, Mapping):
        return {str(k): as_structured(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [as_structured(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_structured(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return repr(value)


def _field_spec(spec: SettingsSpec | None, path: str) -> FieldSpec | None:
    """The spec of a dotted path, through ``Optional[...]`` (None when unknown)."""
    if spec is None:
        return None
    try:
        found = spec.field(path)
    except KeyError:
        return None
    if found.kind == "optional" and found.children:
        return found.children[0]
    return found


def shown(field: FieldSpec | None, leaf: Any) -> Any:
    """A structured leaf as tables show it: an enum member for an enum field's value
    (matched by value), numpy scalars as plain Python ones, anything else unchanged."""
    if isinstance(leaf, np.generic):
        leaf = leaf.item()
    if field is None or field.kind != "enum" or isinstance(leaf, enum.Enum):
        return leaf
    for choice in field.choices:
        member = choice.value
        if (
            isinstance(member, enum.Enum)
            and type(member.value) is type(leaf)
            and member.value == leaf
        ):
            return member
    return leaf


def choices_of(field: FieldSpec | None, listed: Any) -> list[Any] | None:
    """The values a field accepts: enum members (or values, when the class is not
    importable) and Literal values; ``listed`` is what ezmsg's metadata lists."""
    if field is not None and field.kind in ("enum", "literal") and field.choices:
        return [c.value for c in field.choices]
    return list(listed) if listed else None


@dataclass(frozen=True)
class SettingsChange:
    seq: int
    time: float
    unit: str
    field: str
    old: Any
    new: Any
    event: str
    source_session: str | None
    source_process: str | None


class SettingsStore:
    """Current settings per unit and the change history. Thread-safe reads."""

    def __init__(self, max_history: int = 100_000) -> None:
        self.current: dict[str, Any] = {}  # address -> ezmsg SettingsSnapshotValue
        self.updated_at: dict[str, float] = {}
        self.last_seq = 0
        self.gaps = 0
        self._history: list[SettingsChange] = []
        self._max_history = max_history
        # Events that confirmed this Lab's own changes. ezmsg stamps every change with
        # the session of the process that applied it, whoever asked for it, so this is
        # how the history tells this Lab's changes from other clients'.
        self._own: set[int] = set()
        self._lock = threading.Lock()
        self.listeners: Listeners[[str, Any, Any]] = Listeners("settings")

    def subscribe(self, fn: Callable[[str, Any, Any], None]) -> Unsubscribe:
        """``fn(address, value, event)`` after each change (on the control loop); returns
        a function that unsubscribes it."""
        return self.listeners.subscribe(fn)

    def new_server(self) -> None:
        """Forget the current values and the event numbering (a reconnected server numbers
        from 1 again); the history is kept."""
        with self._lock:
            self.current.clear()
            self.updated_at.clear()
            self.last_seq = 0

    def ingest_snapshot(self, snapshot: dict[str, Any], time_s: float) -> None:
        """Seed from ``settings_snapshot()`` (values only; history comes from events)."""
        with self._lock:
            for address, value in snapshot.items():
                self.current.setdefault(address, value)
                self.updated_at.setdefault(address, time_s)

    def ingest_event(self, event: Any) -> list[SettingsChange]:
        """Apply one ezmsg SettingsChangedEvent; returns the field changes it made."""
        kind = getattr(event.event_type, "value", str(event.event_type))
        address = event.component_address
        with self._lock:
            if event.seq <= self.last_seq:
                return []
            if self.last_seq and event.seq > self.last_seq + 1:
                self.gaps += event.seq - self.last_seq - 1
            self.last_seq = event.seq
            previous = self.current.get(address) if kind != "INITIAL_SETTINGS" else None
            old = flatten(structured(previous) or {}) if previous is not None else {}
            new = flatten(structured(event.value) or {})
            changes = [
                SettingsChange(
                    seq=event.seq,
                    time=event.timestamp,
                    unit=address,
                    field=path,
                    old=old.get(path),
                    new=value,
                    event=kind,
                    source_session=event.source_session_id,
                    source_process=str(event.source_process_id)
                    if event.source_process_id
                    else None,
                )
                for path, value in new.items()
                if kind == "INITIAL_SETTINGS" or old.get(path, _MISSING) != value
            ]
            self.current[address] = event.value
            self.updated_at[address] = event.timestamp
            self._history.extend(changes)
            if len(self._history) > self._max_history:
                del self._history[: len(self._history) - self._max_history]
        self.listeners.emit(address, event.value, event)
        return changes

    def mark_own(self, seq: int) -> None:
        """Record that the settings event ``seq`` confirmed a change this Lab made."""
        with self._lock:
            self._own.add(seq)

    def _by(self, c: SettingsChange) -> str:
        if c.seq in self._own:
            return "this Lab"
        return "launch" if c.event == "INITIAL_SETTINGS" else "another client"

    def history(
        self,
        unit: str | None = None,
        since_s: float | None = None,
        specs: Mapping[str, SettingsSpec | None] | None = None,
    ) -> pd.DataFrame:
        """Every field change; ``specs`` (per address) show enum values as members."""
        specs = specs or {}

        def show(c: SettingsChange, leaf: Any) -> Any:
            return shown(_field_spec(specs.get(c.unit), c.field), leaf)

        with self._lock:
            rows = [
                c
                for c in self._history
                if (unit is None or c.unit == unit) and (since_s is None or c.time >= since_s)
            ]
            by = [self._by(c) for c in rows]
        return pd.DataFrame(
            {
                "seq": pd.array([c.seq for c in rows], dtype="int64"),
                "time": to_utc(np.array([c.time for c in rows], dtype=np.float64)),
                "unit": [c.unit for c in rows],
                "field": [c.field for c in rows],
                "old": [show(c, c.old) for c in rows],
                "new": [show(c, c.new) for c in rows],
                "event": [c.event for c in rows],
                "by": by,
                "source_session": [c.source_session for c in rows],
                "source_process": [c.source_process for c in rows],
            }
        )

    def frame(
        self,
        dynamic: dict[str, bool] | None = None,
        specs: Mapping[str, SettingsSpec | None] | None = None,
    ) -> pd.DataFrame:
        """One row per unit and field: value, type, default, bounds, choices, description,
        dynamic. Nested dataclass fields appear as dotted leaf rows. With the units'
        field ``specs``, enum values show as members and enum choices are listed."""
        dynamic = dynamic or {}
        specs = specs or {}
        with self._lock:
            items = sorted(self.current.items())
        rows = []
        for address, value in items:
            schema = getattr(value, "settings_schema", None)
            fields = {f.name: f for f in (schema.fields if schema else [])}
            values = structured(value) or {}
            for name, leaf in flatten(values).items():
                top = fields.get(name.split(".")[0])
                nested = "." in name
                bounds = top.bounds if (top and not nested) else None
                spec = _field_spec(specs.get(address), name)
                rows.append(
                    {
                        "unit": address,
                        "field": name,
                        "value": shown(spec, leaf),
                        "type": (top.field_type if top and not nested else type(leaf).__name__),
                        "default": shown(spec, _default(top, name)) if top else None,
                        "min": bounds[0] if bounds else None,
                        "max": bounds[1] if bounds else None,
                        "choices": choices_of(spec, top.choices if top and not nested else None),
                        "description": top.description if top and not nested else None,
                        "dynamic": bool(dynamic.get(address, False)),
                    }
                )
        return pd.DataFrame(
            rows,
            columns=[
                "unit",
                "field",
                "value",
                "type",
                "default",
                "min",
                "max",
                "choices",
                "description",
                "dynamic",
            ],
        )


def _default(field_meta: Any, path: str) -> Any:
    return get_path(field_meta.default, path.partition(".")[2])
