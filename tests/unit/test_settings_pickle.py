"""Settings whose class this kernel cannot import: structure, specs, validation, wire values.

The "user's module" is built in a fresh module object, pickled, and removed from
``sys.modules``, so unpickling it here fails exactly as for another program's ``__main__``.
"""

from __future__ import annotations

import builtins
import pickle
import sys
import types

import pytest
from ezmsg.core.graphmeta import SettingsSnapshotValue
from ezmsg.core.settingsmeta import (
    settings_schema_from_type,
    settings_structured_value,
)

from ezmsg_lab.feeds.settings_control import refusal, structured_matcher
from ezmsg_lab.model.settings_pickle import ClassRef, Opaque, member_by_value, read_structure
from ezmsg_lab.model.settings_schema import spec_from_snapshot, structured_diff, to_wire
from ezmsg_lab.model.settings_store import as_structured
from ezmsg_lab.model.settings_validate import SettingsValidationError, validate_updates

MOD = "ezlab_users_script"
SOURCE = """
import enum
from dataclasses import field
import ezmsg.core as ez

class Mode(enum.Enum):
    SLOW = "slow"
    FAST = "fast"

class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2

class Tone(ez.Settings):
    freq_hz: float = 5.0
    mode: Mode = Mode.SLOW

class KnobSettings(ez.Settings):
    gain: float = field(default=1.0, metadata={"ge": 0.0, "le": 10.0})
    mode: Mode = Mode.SLOW
    level: Level = Level.LOW
    maybe: Mode | None = None
    tone: Tone = field(default_factory=Tone)
    spare: Tone | None = None
"""


@pytest.fixture
def users_module(monkeypatch):
    """The user's module, importable only while the test says so."""
    module = types.ModuleType(MOD)
    monkeypatch.setitem(sys.modules, MOD, module)
    exec(SOURCE, module.__dict__)
    return module


def snapshot_of(obj, json_schema=None) -> SettingsSnapshotValue:
    # As ezmsg 3.9 sends it (no JSON schema), or with the given one, as 3.10 does.
    schema = types.SimpleNamespace(
        **{**vars(settings_schema_from_type(type(obj))), "json_schema": json_schema}
    )
    return SettingsSnapshotValue(
        serialized=pickle.dumps(obj),
        repr_value=repr(obj),
        structured_value=settings_structured_value(obj),
        settings_schema=schema,
    )


@pytest.fixture
def gone(users_module, monkeypatch):
    """A snapshot of the user's settings, after their module left this kernel."""
    value = snapshot_of(users_module.KnobSettings(maybe=users_module.Mode.FAST))
    monkeypatch.delitem(sys.modules, MOD)
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(value.serialized)
    return value


# ------------------------------------------------------------------------ read_structure
def test_structure_names_every_class_without_importing_it(gone):
    tree = read_structure(gone.serialized)
    assert isinstance(tree, Opaque) and tree.is_record
    assert tree.cls == ClassRef(MOD, "KnobSettings")
    mode = tree.state["mode"]
    assert mode.is_member and mode.cls == ClassRef(MOD, "Mode") and mode.args == ("slow",)
    assert tree.state["level"].is_member and tree.state["level"].args == (1,)
    tone = tree.state["tone"]
    assert tone.is_record and tone.cls == ClassRef(MOD, "Tone")
    assert tone.state["freq_hz"] == 5.0 and tone.state["mode"].is_member
    assert tree.state["spare"] is None and tree.state["gain"] == 1.0
    assert MOD not in sys.modules


def test_structure_reader_runs_nothing_the_pickle_names():
    class Evil:
        def __reduce__(self):
            return builtins.exec, ("import builtins; builtins.EZLAB_PWNED = True",)

    tree = read_structure(pickle.dumps({"x": Evil()}))
    assert not hasattr(builtins, "EZLAB_PWNED")
    assert tree["x"].cls == ClassRef("builtins", "exec")  # described, not called
    assert read_structure(b"not a pickle") is None and read_structure(None) is None


# ------------------------------------------------------------------------ member_by_value
def test_member_by_value_becomes_the_loading_process_own_member(users_module):
    wire = member_by_value(ClassRef(MOD, "Mode"), "fast")
    payload = pickle.dumps(wire)
    assert b"KnobSettings" not in payload
    assert pickle.loads(payload) is users_module.Mode.FAST
    assert (
        pickle.loads(pickle.dumps(member_by_value(ClassRef(MOD, "Level"), 2)))
        is users_module.Level.HIGH
    )
    with pytest.raises(ValueError, match="'FAST' is not a valid Mode"):  # by value, not name
        pickle.loads(pickle.dumps(member_by_value(ClassRef(MOD, "Mode"), "FAST")))


# ------------------------------------------------------------------------------ the spec
def test_spec_without_the_class_knows_enums_and_nested_fields(gone):
    spec = spec_from_snapshot(gone)
    assert spec.source == "metadata" and "cannot be imported" in spec.reason
    mode = spec.field("mode")
    assert (mode.kind, mode.ref, mode.choices) == ("enum", ClassRef(MOD, "Mode"), ())
    assert spec.field("level").ref == ClassRef(MOD, "Level")
    maybe = spec.field("maybe")
    assert maybe.kind == "optional" and maybe.children[0].ref == ClassRef(MOD, "Mode")
    tone = spec.field("tone")
    assert tone.kind == "dataclass" and tone.ref == ClassRef(MOD, "Tone") and tone.py_type is None
    assert spec.field("tone.freq_hz").kind == "float"
    assert spec.field("tone.mode").ref == ClassRef(MOD, "Mode")
    assert spec.field("gain").bounds.hi == 10.0
    assert not spec.field("spare").editable  # None now, and its type is unknown here


def test_json_schema_adds_enum_values_and_nested_bounds(users_module, monkeypatch):
    js = {
        "$defs": {
            "Mode": {"enum": ["slow", "fast"], "type": "string"},
            "Tone": {"properties": {"freq_hz": {"type": "number", "minimum": 0.5}}},
        },
        "properties": {"mode": {"$ref": "#/$defs/Mode"}, "tone": {"$ref": "#/$defs/Tone"}},
    }
    value = snapshot_of(users_module.KnobSettings(), json_schema=js)
    monkeypatch.delitem(sys.modules, MOD)
    spec = spec_from_snapshot(value)
    assert [c.value for c in spec.field("mode").choices] == ["slow", "fast"]
    assert spec.field("mode").ref == ClassRef(MOD, "Mode")
    assert spec.field("tone.freq_hz").bounds.lo == 0.5
    with pytest.raises(SettingsValidationError, match="not one of 'slow', 'fast'"):
        validate_updates(spec, value.structured_value, {"mode": "FAST"})
    with pytest.raises(SettingsValidationError, match=">= 0.5"):
        validate_updates(spec, value.structured_value, {"tone.freq_hz": 0.1})


# -------------------------------------------------------------------------- validation
def test_validation_without_the_class(gone):
    spec, now = spec_from_snapshot(gone), gone.structured_value
    ok = validate_updates(spec, now, {"mode": "fast", "tone.freq_hz": "7", "maybe": None})
    assert ok == {"mode": "fast", "tone.freq_hz": 7.0, "maybe": None}
    for updates, rule in [
        ({"mode": True}, "expects a value of"),
        ({"mode": ["slow"]}, "expects a value of"),
        ({"tone": {"freq_hz": 1.0}}, f"its class {MOD}.Tone cannot be imported here"),
        ({"spare": {"freq_hz": 1.0}}, "is unknown here (the settings class cannot be imported"),
        ({"gain": 12}, "<= 10"),
    ]:
        with pytest.raises(SettingsValidationError) as info:
            validate_updates(spec, now, updates, unit="U")
        assert rule in info.value.rule, (updates, info.value.rule)


def test_only_enum_fields_known_by_name_go_on_the_wire_by_reference(gone):
    spec = spec_from_snapshot(gone)
    assert to_wire(spec.field("gain"), 2.0) == 2.0
    assert to_wire(spec.field("maybe"), None) is None
    for path in ("mode", "maybe", "tone.mode"):
        payload = pickle.dumps(to_wire(spec.field(path), "fast"))
        assert b"attrgetter" in payload and b"Mode" in payload


def test_structured_diff_walks_nested_settings_leaf_by_leaf(gone):
    spec = spec_from_snapshot(gone)
    initial = {"gain": 1.0, "mode": "slow", "tone": {"freq_hz": 5.0, "mode": "slow"}}
    now = {"gain": 2.0, "mode": "slow", "tone": {"freq_hz": 9.0, "mode": "fast"}}
    assert structured_diff(spec, initial, now) == {
        "gain": 1.0,
        "tone.freq_hz": 5.0,
        "tone.mode": "slow",
    }
    assert structured_diff(spec, initial, initial) == {}


# ------------------------------------------------------------------------- confirmation
def test_confirmation_compares_structured_values(users_module):
    value = snapshot_of(users_module.KnobSettings(mode=users_module.Mode.FAST))
    no_class = lambda: None  # noqa: E731  (the unpickled object: not available)
    assert structured_matcher("mode", "fast")(value, no_class)
    assert structured_matcher("mode", users_module.Mode.FAST)(value, no_class)
    assert not structured_matcher("mode", "slow")(value, no_class)
    assert structured_matcher("tone.freq_hz", 5)(value, no_class)
    assert as_structured((1, users_module.Level.HIGH)) == [1, 2]


def test_a_value_the_unit_cannot_load_is_a_readable_refusal():
    exc = RuntimeError(
        "Process request failed (ProcessControlErrorCode.INVALID_RESPONSE): "
        "Invalid settings field update payload: 'bogus' is not a valid Mode"
    )
    err = refusal("S/KNOB", "lab.set('S/KNOB', mode='bogus')", exc)
    assert err.code == "INVALID_RESPONSE"
    assert str(err).startswith(
        "S/KNOB: the unit's process refused lab.set('S/KNOB', mode='bogus'): "
        "'bogus' is not a valid Mode. Nothing changed"
    )


def test_a_confirmation_that_never_comes_says_what_the_events_showed(users_module):
    """Not a generic "is the GraphServer responsive?": the events that came are named."""
    import asyncio

    from ezmsg_lab.errors import LabTimeoutError
    from ezmsg_lab.feeds.settings_control import SettingsControl
    from ezmsg_lab.model.settings_store import SettingsStore

    store = SettingsStore()
    control = SettingsControl(conn=None, store=store)  # type: ignore[arg-type]
    other = snapshot_of(users_module.KnobSettings(gain=9.0))
    event = types.SimpleNamespace(
        seq=1,
        event_type="SETTINGS_UPDATED",
        component_address="S/KNOB",
        timestamp=0.0,
        source_session_id=None,
        source_process_id=None,
        value=other,
    )

    async def send() -> None:
        store.ingest_event(event)  # someone else's change arrives instead of ours

    async def main() -> None:
        await control._confirmed(
            "S/KNOB", structured_matcher("gain", 2.0), send, 0.05, "gain = 2.0"
        )

    with pytest.raises(LabTimeoutError) as info:
        asyncio.run(main())
    message = str(info.value)
    assert "1 settings event(s) for the unit arrived, none with the value sent" in message
    assert "'gain': 9.0" in message and "responsive" not in message


def test_a_remote_units_loopback_settings_publisher_is_explained_with_the_fix():
    """ezmsg 3.9/3.10's text when a unit on another host cannot reach its own settings
    publisher (measured on the multi-host test hosts)."""
    exc = RuntimeError(
        "Process request failed (HANDLER_ERROR): Failed to patch settings field: "
        "Multiple exceptions: [Errno 111] Connect call failed ('10.231.7.3', 25981)"
    )
    err = refusal("C/SCALE", "lab.set('C/SCALE', gain=2.5)", exc)
    assert err.code == "HANDLER_ERROR" and "Nothing changed" in str(err)
    assert 'ezmsg.core.netprotocol.DEFAULT_HOST = "0.0.0.0"' in str(err)
    other = refusal("U", "x", RuntimeError("Process request failed (HANDLER_ERROR): boom"))
    assert "DEFAULT_HOST" not in str(other)
