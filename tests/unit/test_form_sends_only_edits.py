"""A form sends only what a user did; its number controls fit the field (issue 9).

The browser is played by ``widget.set_state({...})``, the call ipywidgets makes when a
front end's comm message arrives, with the value a noUiSlider would report: the value it
was given, snapped to its grid (``min + k * step``; in exponent space for a log slider).
The real browser is exercised in tests/browser/test_forms_jupyterlab.py.
"""

from __future__ import annotations

import math

import ipywidgets as W
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ezmsg_lab.demo import units as demo
from ezmsg_lab.model.settings_schema import Bounds
from ezmsg_lab.widgets._settings_editors import slider_range

from .test_settings_form import NarrowSettings, form_for

SLIDERS = (W.FloatSlider, W.IntSlider, W.FloatLogSlider)

# Values off every slider grid, as a unit gets them from code (lab.set) or a launch.
OFF_GRID = [
    (demo.FilterSettings, demo.FilterSettings(cutoff_hz=40.0037, taps=41)),
    (
        demo.SignalSourceSettings,
        demo.SignalSourceSettings(fs=1234.5678, tone=demo.Tone(5.123, 1.0001), noise_std=0.2049),
    ),
    (demo.DetectorSettings, demo.DetectorSettings(threshold=0.8123, refractory_s=0.0505)),
    (demo.SinkSettings, demo.SinkSettings(keep_last=77)),
    (NarrowSettings, NarrowSettings(gain=1.0037)),
]


def _widgets(w: W.Widget):
    yield w
    for child in getattr(w, "children", ()):
        yield from _widgets(child)


def _browser_snap(slider: W.Widget) -> float:
    """What noUiSlider reports for the slider's value once drawn (its grid point)."""
    if isinstance(slider, W.FloatLogSlider):
        x = math.log(slider.value, slider.base)
        return slider.base ** (slider.min + round((x - slider.min) / slider.step) * slider.step)
    k = round((slider.value - slider.min) / slider.step)
    v = slider.min + k * slider.step
    return int(v) if isinstance(slider, W.IntSlider) else v


def _draw(form: W.Widget) -> int:
    """Draw every slider as a browser does; returns how many reported a new value."""
    moved = 0
    for w in list(_widgets(form)):
        if isinstance(w, SLIDERS) and not w.disabled:
            snapped = _browser_snap(w)
            moved += snapped != w.value
            w.set_state({"value": snapped})
    return moved


@pytest.mark.parametrize("policy", ["live", "release", "manual"])
@pytest.mark.parametrize(("cls", "value"), OFF_GRID, ids=lambda c: getattr(c, "__name__", ""))
def test_drawing_a_form_sends_nothing(cls, value, policy):
    form, rec = form_for(cls, value, policy=policy, debounce_s=0.0)
    _draw(form)
    assert form.flush() is None
    assert rec.calls == [] and form.dirty_paths == []


def test_the_quickstart_case_a_snapped_cutoff_is_not_an_edit():
    # The issue: clicking FILTER sent cutoff_hz 40.0 -> 39.994475 (a log slider's grid).
    form, rec = form_for(demo.FilterSettings, demo.FilterSettings(cutoff_hz=40.0), debounce_s=0.0)
    _draw(form)
    slider = form.editors["cutoff_hz"].slider
    slider.set_state({"value": 40.0 - slider.step / 2})  # the worst rounding a grid allows
    assert rec.calls == [] and form.dirty_paths == []


def test_following_a_change_elsewhere_sends_nothing_and_moves_the_window():
    form, rec = form_for(demo.FilterSettings, demo.FilterSettings(), debounce_s=0.0)
    form.apply_external(demo.FilterSettings(cutoff_hz=233.3333, taps=63))
    slider = form.editors["cutoff_hz"].slider
    assert form.control("cutoff_hz").value == 233.3333  # the unit's value, unrounded
    assert slider.min <= 233.3333 <= slider.max and slider.max == 499.0
    _draw(form)  # the browser redraws the moved controls
    assert rec.calls == [] and form.dirty_paths == []
    form.reset()  # re-drawing from the last known values: still nothing
    _draw(form)
    assert rec.calls == []


def test_a_short_drag_sends_a_value_near_the_old_one():
    form, rec = form_for(demo.FilterSettings, demo.FilterSettings(cutoff_hz=40.0), debounce_s=0.0)
    slider = form.editors["cutoff_hz"].slider
    assert slider.max <= 80.0 + slider.step  # a whole drag at most doubles the cutoff
    slider.set_state({"value": 40.0 + 3 * slider.step})  # the user drags 3 steps
    assert rec.calls == [{"cutoff_hz": pytest.approx(40.3)}]
    assert form.control("cutoff_hz").value == pytest.approx(40.3)  # the box shows it too


def test_slider_values_come_without_float_noise():
    form, rec = form_for(demo.SignalSourceSettings, demo.SignalSourceSettings(), debounce_s=0.0)
    slider = form.editors["tone.amplitude"].slider  # 0 .. 2 by 0.002
    slider.set_state({"value": 0.0 + 571 * 0.002})  # what a browser computes: 1.1420000000000001
    assert rec.calls == [{"tone.amplitude": 1.142}]
    narrow, rec = form_for(NarrowSettings, NarrowSettings(), debounce_s=0.0)
    narrow.control("gain").set_state({"value": 0.0 + 571 * 0.002})
    assert rec.calls == [{"gain": 1.142}]


def test_typed_values_are_exact_and_move_the_window():
    form, rec = form_for(demo.FilterSettings, demo.FilterSettings(), debounce_s=0.0)
    form.control("cutoff_hz").value = 20.01  # closer than half a slider step, but typed
    assert rec.calls == [{"cutoff_hz": 20.01}]
    form.control("cutoff_hz").value = 300.0
    slider = form.editors["cutoff_hz"].slider
    assert slider.value == 300.0 and slider.min <= 300.0 <= slider.max
    assert rec.calls[-1] == {"cutoff_hz": 300.0}


def test_an_edit_taken_back_sends_nothing():
    form, rec = form_for(demo.FilterSettings, demo.FilterSettings(), policy="manual")
    form.control("cutoff_hz").value = 30.0
    form.control("cutoff_hz").value = 20.0  # back to the unit's value
    form.control("window").label = "HANN"
    form.control("window").label = "HAMMING"
    assert form.dirty_paths == [] and form.apply() is None and rec.calls == []


def test_an_edit_the_unit_reaches_meanwhile_is_not_sent():
    form, rec = form_for(demo.FilterSettings, demo.FilterSettings(), policy="manual")
    form.control("taps").value = 63
    form.apply_external(demo.FilterSettings(taps=63))  # another client set the same value
    assert form.apply() is None and rec.calls == []


def test_out_of_bounds_input_in_a_box_is_an_error_not_a_clamp():
    form, rec = form_for(demo.DetectorSettings, demo.DetectorSettings(), policy="release")
    form.control("threshold").value = 150.0
    assert form.control("threshold").value == 150.0  # kept as typed, explained
    assert "<= 100" in form.errors["threshold"] and rec.calls == []
    assert form.editors["threshold"].slider.layout.visibility == "hidden"
    form.reset()
    assert form.editors["threshold"].slider.layout.visibility is None


@pytest.mark.parametrize(("cls", "value"), OFF_GRID, ids=lambda c: getattr(c, "__name__", ""))
def test_number_controls_send_only_on_release_or_enter(cls, value):
    form, _ = form_for(cls, value, policy="live")
    assert all(ed.editable for ed in form.editors.values()), form.editors  # no fallback rows
    numbers = [w for w in _widgets(form) if isinstance(w, (*SLIDERS, W.FloatText, W.IntText))]
    assert numbers and all(w.continuous_update is False for w in numbers)
    assert not any(isinstance(w, W.FloatLogSlider) for w in numbers)


def test_slider_range_examples():
    r = slider_range("float", 40.0, Bounds(0.1, 499.0))
    assert (r.lo, r.hi, r.step, r.window) == (0.1, 80.0, 0.1, True)
    full = slider_range("float", 1.0, Bounds(0.0, 2.0))
    assert (full.lo, full.hi, full.window) == (0.0, 2.0, False)
    ints = slider_range("int", 31, Bounds(3, 511))
    assert (ints.lo, ints.hi, ints.step, ints.window) == (3, 62, 1, True)
    assert slider_range("float", 0.0, None) == slider_range("float", 0.0, Bounds())
    zero = slider_range("float", 0.0, None)
    assert (zero.lo, zero.hi) == (-1.0, 1.0)
    assert slider_range("float", 600.0, Bounds(0.1, 499.0)) is None  # outside: box only
    assert slider_range("float", math.nan, None) is None
    assert slider_range("float", 1.0, Bounds(1.0, 1.0)) is None


@given(
    lo=st.floats(-1e6, 1e6),
    width=st.floats(1e-3, 1e7),
    frac=st.floats(0, 1),
    kind=st.sampled_from(["float", "int"]),
)
def test_no_slider_jumps_orders_of_magnitude(lo, width, frac, kind):
    hi = lo + width
    value = lo + frac * width
    if kind == "int":
        lo, hi, value = math.floor(lo), math.ceil(hi), round(value)
    r = slider_range(kind, value, Bounds(lo, hi))
    if r is None:
        return
    assert r.lo <= value <= r.hi and lo <= r.lo and r.hi <= hi
    scale = max(abs(value), (hi - lo) / 1000, 10 if kind == "int" else 0) or width / 10
    # A full drag moves the value by at most about twice its own size.
    assert r.hi - r.lo <= 4 * scale + 2 * r.step + 1e-9 * abs(value)
    assert (r.hi - r.lo) / r.step <= 4000 or kind == "int"


def test_the_forms_own_edit_confirmed_is_not_an_edit_in_flight_and_later_changes_show():
    """Found on a remote host's unit: after a user's edit was confirmed, the form took its
    own control for an edit in flight ("changed elsewhere ... while you edit") and never
    showed a later change made from code."""
    value = demo.FilterSettings(cutoff_hz=40.0, taps=41)
    form, rec = form_for(demo.FilterSettings, value, policy="live", debounce_s=0)
    ed = form.editors["taps"]
    form.control("taps").value = 61  # the user's edit
    form.flush()
    assert rec.calls[-1] == {"taps": 61}
    form.apply_external(demo.FilterSettings(cutoff_hz=40.0, taps=61))  # the unit confirms
    assert not ed.dirty and ed.note.value == ""
    form.apply_external(demo.FilterSettings(cutoff_hz=40.0, taps=21))  # lab.set elsewhere
    assert form.control("taps").value == 21 and ed.note.value == ""
