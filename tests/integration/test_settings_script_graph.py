"""Tuning a graph the Lab did not launch, whose settings classes the kernel cannot import.

A user's script (units and settings in its ``__main__``) runs under ``ez.run`` against
``ezmsg serve``; the Lab attaches to it. Every change is checked against what the unit's
own code reports (the script's sink writes it to a file), not only against ezmsg's
events. Runs on ezmsg 3.9 and 3.10 (3.10 lists enum values in its JSON schema, 3.9 does
not: the few differences are spelled out per test).
"""

from __future__ import annotations

import enum
import importlib.metadata
import pickle

import pytest

from ezmsg_lab import Lab, SettingsRefusedError
from ezmsg_lab.model.settings_store import flatten
from ezmsg_lab.model.settings_validate import SettingsValidationError

from ..conftest import wait_until
from ._script_graph import KNOB_INITIAL, script_graph

pytestmark = [pytest.mark.integration, pytest.mark.interpreter]

KNOB = "SCRIPT/KNOB"
TAG = "SCRIPT/TAG"
EZMSG_39 = importlib.metadata.version("ezmsg").startswith("3.9")
INITIAL = flatten(KNOB_INITIAL)
# What the unit reports at its initial settings.
SEEN_INITIAL = {
    "gain": 1.0,
    "count": 3,
    "enabled": True,
    "shape": "sine",
    "mode": "SLOW",
    "mode_is_member": True,
    "label": "alpha",
    "tone_freq_hz": 5.0,
}


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    with script_graph(tmp_path_factory.mktemp("script_graph")) as g:
        yield g


@pytest.fixture(scope="module")
def lab(graph):
    lab = Lab.attach(graph.address)
    try:
        assert wait_until(lambda: KNOB in lab._settings.current, 15), lab.settings()
        yield lab
    finally:
        lab.close()


@pytest.fixture(autouse=True)
def initial(lab, graph):
    yield
    lab.revert(KNOB, watch=False)
    graph.wait_seen(**SEEN_INITIAL)


def value_of(lab, field):
    frame = lab.settings(KNOB)
    return frame.loc[frame["field"] == field, "value"].iloc[0]


def history_len(lab):
    return len(lab.settings_history(KNOB))


def test_the_kernel_cannot_import_the_settings_class(lab):
    with pytest.raises(AttributeError, match="KnobSettings"):
        pickle.loads(lab._settings.current[KNOB].serialized)


# ----------------------------------------------------------------------------- lab.set
@pytest.mark.parametrize(
    ("path", "value", "applied", "seen"),
    [
        ("gain", 2.5, 2.5, {"gain": 2.5, "gain_type": "float"}),
        ("gain", "4", 4.0, {"gain": 4.0, "gain_type": "float"}),  # coerced like 3.10 does
        ("count", 7, 7, {"count": 7, "count_type": "int"}),
        ("enabled", False, False, {"enabled": False}),
        ("shape", "square", "square", {"shape": "square"}),
        ("label", "beta", "beta", {"label": "beta"}),
        ("tone.freq_hz", 7, 7.0, {"tone_freq_hz": 7.0, "tone_is_tone": True}),
    ],
)
def test_one_field_is_confirmed_and_reaches_the_unit(lab, graph, path, value, applied, seen):
    # Before: LabTimeoutError after 5 s ("check that the GraphServer is responsive").
    last_seq = lab._settings.last_seq
    result = lab.set(KNOB, {path: value}, watch=False)
    assert result.applied == {path: applied}
    assert result.previous == {path: INITIAL[path]}
    assert result.seq > last_seq
    assert value_of(lab, path) == applied
    graph.wait_seen(**seen)


def test_a_watched_change_sees_the_unit_working(lab, graph):
    result = lab.set(KNOB, gain=3.0)  # default: watched for up to 0.75 s
    assert result.health.status == "ok", result.health
    graph.wait_seen(gain=3.0, output=9.0)


class NotebookMode(enum.Enum):
    """A notebook's own copy of the script's enum: a different class, the same values."""

    SLOW = "slow"
    FAST = "fast"
    TURBO = "turbo"


@pytest.mark.parametrize("given", ["fast", NotebookMode.FAST])
def test_enum_by_value_becomes_the_units_own_member(lab, graph, given):
    result = lab.set(KNOB, mode=given, watch=False)
    assert result.applied == {"mode": "fast"}
    # The unit's code holds a member of its own Mode: its `is Mode.FAST` branch runs.
    graph.wait_seen(mode="FAST", mode_is_member=True, output=6.0)


def test_enum_value_that_is_not_a_member_changes_nothing(lab, graph):
    before = history_len(lab)
    json_schema = getattr(lab._settings.current[KNOB].settings_schema, "json_schema", None)
    assert (json_schema is None) == EZMSG_39  # 3.10 (with pydantic) lists the enum's values
    if json_schema is None:  # no enum values in 3.9's metadata: the unit's process refuses it
        with pytest.raises(SettingsRefusedError, match="'bogus' is not a valid Mode") as info:
            lab.set(KNOB, mode="bogus", watch=False)
    else:  # 3.10's JSON schema lists them: refused before sending
        with pytest.raises(SettingsValidationError, match="not one of 'slow', 'fast'") as info:
            lab.set(KNOB, mode="bogus", watch=False)
    assert "Nothing" in str(info.value) and "responsive" not in str(info.value)
    assert history_len(lab) == before
    assert value_of(lab, "mode") == "slow"
    graph.wait_seen(mode="SLOW", mode_is_member=True)


@pytest.mark.parametrize(
    ("fields", "field", "rule"),
    [
        ({"gain": 11}, "gain", ">= 0 and <= 10"),
        ({"gain": "loud"}, "gain", "not a number"),
        ({"count": 2.5}, "count", "not a whole number"),
        ({"enabled": 1}, "enabled", "expects a bool"),
        ({"shape": "triangle"}, "shape", "not one of 'sine', 'square'"),
        ({"label": 3}, "label", "expects a str"),
        ({"gian": 2.0}, "gian", "unknown field"),
        ({"tone.freq_hz": "high"}, "tone.freq_hz", "not a number"),
        ({"tone": {"freq_hz": 1.0}}, "tone", "its class __main__.Tone cannot be imported here"),
        ({"gain": 2.0, "count": "many"}, "count", "not an integer"),
    ],
)
def test_invalid_values_are_refused_before_anything_is_sent(lab, graph, fields, field, rule):
    before = history_len(lab)
    with pytest.raises(SettingsValidationError) as info:
        lab.set(KNOB, fields, watch=False)
    assert info.value.field == field
    assert rule in info.value.rule
    assert "Nothing was sent" in str(info.value)
    assert history_len(lab) == before
    graph.wait_seen(**SEEN_INITIAL)


def test_a_field_of_a_type_unknown_here_is_refused_naming_why(lab):
    before = len(lab.settings_history(TAG))
    with pytest.raises(SettingsValidationError) as info:
        lab.set(TAG, calibration={"offset": 1.0}, watch=False)
    assert info.value.field == "calibration"
    assert "__main__.Calibration" in info.value.rule
    assert "cannot be imported in this kernel" in info.value.rule
    assert len(lab.settings_history(TAG)) == before
    assert lab.set(TAG, name="other", watch=False).applied == {"name": "other"}
    lab.revert(TAG, watch=False)


def test_refusals_point_to_what_works_instead(lab):
    with pytest.raises(SettingsValidationError, match="Did you mean gain"):
        lab.set(KNOB, gian=2.0, watch=False)
    with pytest.raises(SettingsValidationError, match=r"e\.g\. tone\.freq_hz"):
        lab.set(KNOB, tone={"freq_hz": 1.0}, watch=False)


# ----------------------------------------------------------------------- several fields
def test_several_fields_are_applied_field_by_field_in_order(lab, graph):
    last_seq = lab._settings.last_seq
    result = lab.set(KNOB, {"label": "beta", "count": 9, "tone.freq_hz": 2.0}, watch=False)
    assert result.applied == {"label": "beta", "count": 9, "tone.freq_hz": 2.0}
    assert result.previous == {"label": "alpha", "count": 3, "tone.freq_hz": 5.0}
    changes = lab.settings_history(KNOB)
    changes = changes[changes["seq"] > last_seq].sort_values("seq")
    assert list(changes["field"]) == ["label", "count", "tone.freq_hz"]
    assert changes["seq"].is_unique  # one confirmed event per field
    assert result.seq == changes["seq"].max()
    graph.wait_seen(label="beta", count=9, tone_freq_hz=2.0)


def test_a_field_the_unit_refuses_puts_back_the_fields_before_it(lab, graph):
    # count > 100 breaks a rule in the class's __post_init__, which only the unit can run.
    with pytest.raises(SettingsRefusedError) as info:
        lab.set(KNOB, gain=4.0, count=500, watch=False)
    message = str(info.value)
    assert "count must be <= 100, got 500" in message
    assert "gain had been applied before and was put back" in message
    assert value_of(lab, "gain") == 1.0
    changes = lab.settings_history(KNOB)
    gain = changes[(changes["field"] == "gain") & (changes["event"] == "SETTINGS_UPDATED")]
    assert list(gain["new"].iloc[-2:]) == [4.0, 1.0]
    graph.wait_seen(gain=1.0, count=3)


# ------------------------------------------------------------------ views, undo, revert
def test_settings_and_history_show_the_units_values(lab):
    frame = lab.settings(KNOB).set_index("field")
    assert frame.loc["gain", ["value", "min", "max"]].tolist() == [1.0, 0.0, 10.0]
    assert frame.loc["shape", "choices"] == ["sine", "square"]
    assert frame.loc["mode", "value"] == "slow"
    assert frame.loc["tone.freq_hz", "value"] == 5.0
    assert frame["dynamic"].all()

    lab.set(KNOB, {"tone.amplitude": 0.5}, watch=False)
    history = lab.settings_history(KNOB)
    initial = history[history["event"] == "INITIAL_SETTINGS"]
    assert {"gain", "mode", "tone.freq_hz", "tone.amplitude"} <= set(initial["field"])
    last = history.iloc[-1]
    assert (last["field"], last["old"], last["new"]) == ("tone.amplitude", 1.0, 0.5)


def test_undo_revert_and_temporarily(lab, graph):
    lab.set(KNOB, gain=6.0, watch=False)
    lab.set(KNOB, mode="turbo", watch=False)
    lab.set(KNOB, {"tone.freq_hz": 9.0}, watch=False)
    graph.wait_seen(gain=6.0, mode="TURBO", tone_freq_hz=9.0)

    undone = lab.undo(watch=False)
    assert undone.applied == {"tone.freq_hz": 5.0}
    undone = lab.undo(watch=False)
    assert undone.applied == {"mode": "slow"}
    graph.wait_seen(gain=6.0, mode="SLOW", mode_is_member=True, tone_freq_hz=5.0)

    lab.set(KNOB, label="gamma", enabled=False, watch=False)
    reverted = lab.revert(KNOB, watch=False)
    assert reverted.applied == {"gain": 1.0, "enabled": True, "label": "alpha"}
    graph.wait_seen(**SEEN_INITIAL)
    assert lab.revert(KNOB, watch=False).method == "none"  # nothing left to revert

    with lab.temporarily(KNOB, count=11, mode="fast", watch=False):
        graph.wait_seen(count=11, mode="FAST")
    graph.wait_seen(count=3, mode="SLOW", mode_is_member=True)


# -------------------------------------------------------------------------------- forms
def test_form_edits_reach_the_unit_and_follow_changes_elsewhere(lab, graph):
    form = lab.settings_form(KNOB, debounce_s=0.02)
    try:
        assert form.read_only_reason is None and form.spec.source == "metadata"
        assert {"gain", "count", "mode", "tone.freq_hz", "tone.amplitude"} <= set(form.editors)

        form.control("gain").value = 4.0  # as a user drags the slider
        graph.wait_seen(gain=4.0)
        mode = form.control("mode")
        if form.spec.field("mode").choices:  # 3.10: a dropdown of the values
            mode.value = [c.value for c in form.spec.field("mode").choices].index("turbo")
        else:  # 3.9: ezmsg lists no values; the field takes one as text
            mode.value = "turbo"
        graph.wait_seen(mode="TURBO", mode_is_member=True)
        form.control("tone.freq_hz").value = 8.0
        graph.wait_seen(tone_freq_hz=8.0)
        assert wait_until(lambda: form.last_result is not None, 10)
        assert form.errors == {}

        lab.set(KNOB, count=12, watch=False)  # elsewhere: the form follows
        assert wait_until(lambda: form.control("count").value == 12, 10)

        form.control("count").value = 500  # breaks the class's own rule: shown, not lost
        assert wait_until(lambda: "100, got 500" in form.status.value, 10), form.status.value
        graph.wait_seen(count=12)
    finally:
        form.close()


# --------------------------------------------------------------------------- clean up
def test_the_script_graph_leaves_no_process_behind(tmp_path):
    import psutil

    with script_graph(tmp_path) as g:
        pids = g.pids()
        assert len(pids) >= 3  # server, script, its unit processes
    assert wait_until(lambda: not any(psutil.pid_exists(p) for p in pids), 10)


def test_panel_has_a_form_for_every_unit_of_the_script(lab):
    panel = lab.settings_panel()
    try:
        assert {KNOB, TAG} <= set(panel.forms)
        assert panel.forms[KNOB].read_only_reason is None
        assert "collection" in panel.forms["SCRIPT"].read_only_reason
        assert not panel.forms[TAG].editors["calibration"].editable  # type unknown here
        assert panel.forms[TAG].editors["name"].editable
    finally:
        panel.close()
