"""Settings forms driven as a user would (setting widget values), without ezmsg processes."""

import threading
import time
from dataclasses import dataclass, field

import ipywidgets as W
import numpy as np
import pytest
from ezmsg.core.settingsmeta import settings_schema_from_type

from ezmsg_lab.demo import units as demo
from ezmsg_lab.model.settings_schema import spec_from_class, spec_from_metadata
from ezmsg_lab.widgets.settings_form import SettingsForm, settings_panel

from . import realworld_settings as rw

RW_NOW = rw.RealWorldSettings(axis=None, order=3)
CASES = [
    (demo.SignalSourceSettings, demo.SignalSourceSettings()),
    (demo.FilterSettings, demo.FilterSettings()),
    (demo.DetectorSettings, demo.DetectorSettings()),
    (demo.SinkSettings, demo.SinkSettings()),
    (demo.DemoSettings, demo.DemoSettings()),
    (rw.RealWorldSettings, RW_NOW),
    (rw.NoDefaultsSettings, rw.NoDefaultsSettings(gain=2.0)),
]


class Recorder:
    """An on_submit callback that lets a test wait for calls with a deadline."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[dict] = []
        self.fail = fail
        self.cond = threading.Condition()

    def __call__(self, updates: dict) -> None:
        with self.cond:
            self.calls.append(updates)
            self.cond.notify_all()
        if self.fail is not None:
            raise self.fail

    def wait(self, n: int = 1, timeout: float = 5.0) -> list[dict]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.calls) >= n, timeout), self.calls
            return list(self.calls)


@dataclass
class NarrowSettings:
    gain: float = field(default=1.0, metadata={"ge": 0.0, "le": 2.0})
    level: int = field(default=5, metadata={"ge": 0, "le": 10})


def form_for(cls, value, **kw):
    rec = kw.pop("on_submit", None) or Recorder()
    return SettingsForm(spec_from_class(cls), value, on_submit=rec, unit="U", **kw), rec


@pytest.mark.parametrize(("cls", "value"), CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_form_builds_with_a_row_per_leaf_field(cls, value):
    form, _ = form_for(cls, value)
    spec = spec_from_class(cls)

    def plain_parents(path):
        parts = path.split(".")
        return all(
            spec.field(".".join(parts[:i])).kind == "dataclass" for i in range(1, len(parts))
        )

    leaves = [p for p in spec.paths() if spec.field(p).kind != "dataclass" and plain_parents(p)]
    assert sorted(form.editors) == sorted(leaves)
    for path, ed in form.editors.items():
        assert ed.editable or ed.read_only_reason, path


def test_widget_choice_per_field_kind():
    form, _ = form_for(demo.SignalSourceSettings, demo.SignalSourceSettings())
    # fs: 1 .. 50 000 around 1000: a number box for any value, a slider over a window
    fs = form.editors["fs"]
    assert isinstance(fs.control, W.FloatText) and isinstance(fs.slider, W.FloatSlider)
    assert (fs.slider.min, fs.slider.max, fs.slider.step) == (1.0, 2000.0, 2.0)
    tone = form.editors["tone.freq_hz"]  # 0 .. 5000 around 5: a window 0 .. 10
    assert (tone.slider.min, tone.slider.max) == (0.0, 10.0) and tone.slider.step == 0.01
    chunk = form.editors["chunk_size"]
    assert isinstance(chunk.control, W.IntText) and isinstance(chunk.slider, W.IntSlider)
    assert (chunk.slider.min, chunk.slider.max) == (1, 20)
    assert isinstance(form.control("seed"), W.IntText) and form.none_toggle("seed").value
    assert form.editors["seed"].slider.disabled  # None: the slider is off too
    assert isinstance(form.control("enabled"), W.Checkbox)
    assert "Sample rate" in form.editors["fs"].help.value
    flt, _ = form_for(demo.FilterSettings, demo.FilterSettings())
    assert isinstance(flt.control("window"), W.Dropdown)
    assert flt.control("window").label == "HAMMING"
    assert isinstance(flt.control("kind"), W.ToggleButtons)
    det, _ = form_for(demo.DetectorSettings, demo.DetectorSettings())
    assert isinstance(det.control("label"), W.Text)
    assert isinstance(det.control("refractory_s"), W.FloatText)  # unbounded: box + window
    slider = det.editors["refractory_s"].slider
    assert (slider.min, slider.max) == (0.0, 0.1)
    narrow, _ = form_for(NarrowSettings, NarrowSettings())  # bounds about the value: a slider
    assert (
        isinstance(narrow.control("gain"), W.FloatSlider) and narrow.editors["gain"].slider is None
    )
    assert (narrow.control("gain").min, narrow.control("gain").max) == (0.0, 2.0)
    real, _ = form_for(rw.RealWorldSettings, RW_NOW)
    assert not real.editors["func"].editable and "callable" in real.editors["func"].help.value
    assert real.control("weights").value == "[1.0, 1.0, 1.0, 1.0]"
    assert real.control("frequencies").value == "null"


def test_live_policy_debounces_into_one_submit():
    form, rec = form_for(demo.FilterSettings, demo.FilterSettings(), debounce_s=0.05)
    form.control("cutoff_hz").value = 30.0
    form.control("cutoff_hz").value = 40.0
    form.control("window").label = "HANN"
    calls = rec.wait(1)
    assert calls[0] == {"cutoff_hz": 40.0, "window": demo.Window.HANN}
    assert form.dirty_paths == [] and form.requested["cutoff_hz"] == 40.0
    deadline = time.monotonic() + 0.3  # no second call trails the debounce
    while time.monotonic() < deadline:
        assert len(rec.calls) == 1
        time.sleep(0.02)


def test_release_policy_sends_each_change_at_once():
    form, rec = form_for(demo.DetectorSettings, demo.DetectorSettings(), policy="release")
    assert form.control("threshold").continuous_update is False
    form.control("edge").value = 2
    form.none_toggle("refractory_s").value = True
    assert rec.calls == [{"edge": "both"}, {"refractory_s": None}]


def test_invalid_input_shows_inline_error_and_sends_nothing():
    form, rec = form_for(rw.RealWorldSettings, RW_NOW, policy="release")
    form.control("frequencies").value = "[1, 2, 3]"
    form.control("cutoff").value = -5.0  # gt 0
    assert rec.calls == []
    assert "matches no member" in form.errors["frequencies"]
    assert "> 0" in form.errors["cutoff"]
    form.control("weights").value = "[1, 2"  # broken JSON
    assert "not valid JSON" in form.errors["weights"] and rec.calls == []
    assert "nothing was sent" in form.status.value
    # fixing every field sends them all in one call
    form.control("frequencies").value = "[1, 2]"
    form.control("weights").value = "[1, 2]"
    form.control("cutoff").value = 5.0
    assert len(rec.calls) == 1
    sent = rec.calls[0]
    assert sent["frequencies"] == (1.0, 2.0) and sent["cutoff"] == 5.0
    np.testing.assert_array_equal(sent["weights"], [1.0, 2.0])
    assert form.errors == {}


def test_manual_policy_sends_only_on_apply_and_reset_restores():
    form, rec = form_for(demo.SignalSourceSettings, demo.SignalSourceSettings(), policy="manual")
    form.control("tone.freq_hz").value = 12.0
    form.control("enabled").value = False
    form.none_toggle("seed").value = False
    form.control("seed").value = 42
    assert rec.calls == [] and sorted(form.dirty_paths) == ["enabled", "seed", "tone.freq_hz"]
    form.apply_button.click()
    assert rec.calls == [{"tone.freq_hz": 12.0, "enabled": False, "seed": 42}]
    form.control("noise_std").value = 3.0
    form.reset_button.click()
    assert form.control("noise_std").value == 0.2 and form.dirty_paths == []
    form.apply()
    assert len(rec.calls) == 1


def test_callback_exceptions_are_shown_not_swallowed():
    boom = RuntimeError("unit refused: cutoff above Nyquist")
    form, rec = form_for(
        demo.FilterSettings, demo.FilterSettings(), policy="release", on_submit=Recorder(boom)
    )
    form.control("cutoff_hz").value = 450.0
    assert rec.calls == [{"cutoff_hz": 450.0}]
    assert form.last_error is boom and "Nyquist" in form.status.value
    assert form.dirty_paths == ["cutoff_hz"]  # still unsent: an external update keeps it


def test_apply_external_updates_clean_fields_and_keeps_dirty_ones():
    form, rec = form_for(demo.FilterSettings, demo.FilterSettings(), policy="manual")
    form.control("taps").value = 101  # the user is editing taps
    form.apply_external(
        demo.FilterSettings(cutoff_hz=99.0, taps=7, window=demo.Window.BLACKMAN, bypass=True)
    )
    assert form.control("cutoff_hz").value == 99.0
    assert form.control("window").label == "BLACKMAN"
    assert form.control("bypass").value is True
    assert (
        form.control("taps").value == 101
        and "changed elsewhere to 7" in form.editors["taps"].note.value
    )
    assert rec.calls == []  # external updates are never sent back
    form.apply()
    assert rec.calls == [{"taps": 101}]
    form.reset()
    assert form.control("taps").value == 7  # the last known value, from elsewhere


def test_apply_external_none_and_nested():
    form, rec = form_for(demo.DetectorSettings, demo.DetectorSettings(), policy="release")
    form.apply_external(demo.DetectorSettings(refractory_s=None))
    assert form.none_toggle("refractory_s").value and form.control("refractory_s").disabled
    src, _ = form_for(demo.SignalSourceSettings, demo.SignalSourceSettings())
    src.apply_external(demo.SignalSourceSettings(tone=demo.Tone(7.0, 2.0)))
    assert src.control("tone.freq_hz").value == 7.0 and src.control("tone.amplitude").value == 2.0
    assert rec.calls == []


def test_show_requested_vs_applied():
    form, _ = form_for(demo.FilterSettings, demo.FilterSettings())
    differ = form.show_requested_vs_applied(
        {"cutoff_hz": 600.0, "taps": 31}, demo.FilterSettings(cutoff_hz=20.0, taps=31)
    )
    assert differ == ["cutoff_hz"]
    assert "requested 600.0, applied 20.0" in form.editors["cutoff_hz"].note.value
    assert form.editors["taps"].note.value == ""
    whole = form.show_requested_vs_applied(
        demo.FilterSettings(window=demo.Window.HANN), demo.FilterSettings()
    )
    assert whole == ["window"] and form.editors["cutoff_hz"].note.value == ""


def test_read_only_unit_and_unknown_schema():
    form, rec = form_for(
        demo.SinkSettings,
        demo.SinkSettings(),
        read_only_reason="the unit has no INPUT_SETTINGS stream",
    )
    assert all(e.control.disabled for e in form.editors.values())
    assert "no INPUT_SETTINGS" in form.children[1].value
    assert not any(
        isinstance(c, W.HBox) and c.children and isinstance(c.children[0], W.Button)
        for c in form.children
    )
    bare = SettingsForm(None, {"gain": 2})
    assert "no settings schema" in bare.children[1].value and bare.editors == {}


def test_metadata_only_form_and_unshowable_values():
    spec = spec_from_metadata(settings_schema_from_type(rw.RealWorldSettings), reason="gone")
    form = SettingsForm(spec, {"order": 3, "coef_type": "sos", "tag": 2, "band": {"lo_hz": 1}})
    assert isinstance(form.control("order"), W.IntSlider)
    assert form.control("coef_type").label == "sos"
    assert not form.editors["band"].editable and "gone" in form.children[1].value
    # a value no widget can hold (an object in an int field) becomes a read-only row
    odd = SettingsForm(spec_from_class(demo.SinkSettings), demo.SinkSettings(keep_last=object()))  # type: ignore[arg-type]
    assert not odd.editors["keep_last"].editable


def test_panel_filters_units_and_fields():
    forms = {
        "DEMO/FILTER": form_for(demo.FilterSettings, demo.FilterSettings())[0],
        "DEMO/DETECTOR": form_for(demo.DetectorSettings, demo.DetectorSettings())[0],
        "DEMO/SINK": form_for(demo.SinkSettings, demo.SinkSettings())[0],
    }
    panel = settings_panel(forms)
    assert panel.visible == ["DEMO/FILTER", "DEMO/DETECTOR", "DEMO/SINK"]
    panel.search.value = "cutoff"
    assert panel.visible == ["DEMO/FILTER"]
    panel.search.value = "sink"
    assert panel.visible == ["DEMO/SINK"] and panel.accordion.children == (forms["DEMO/SINK"],)
    panel.search.value = ""
    assert len(panel.accordion.children) == 3


def test_bad_policy_is_refused():
    with pytest.raises(ValueError, match="policy"):
        SettingsForm(spec_from_class(demo.SinkSettings), demo.SinkSettings(), policy="auto")  # type: ignore[arg-type]


def test_live_debounce_runs_on_a_running_loop_like_a_kernel():
    """In a kernel, widget callbacks run on the kernel's asyncio loop: the debounce must too."""
    import asyncio

    async def main() -> tuple[list[dict], int]:
        loop_thread = threading.get_ident()
        seen_threads: list[int] = []
        done = asyncio.Event()

        def on_submit(updates: dict) -> None:
            seen_threads.append(threading.get_ident())
            calls.append(updates)
            done.set()

        calls: list[dict] = []
        form = SettingsForm(
            spec_from_class(demo.SinkSettings),
            demo.SinkSettings(),
            on_submit=on_submit,
            debounce_s=0.05,
        )
        form.control("keep_last").value = 5
        form.control("keep_last").value = 6
        await asyncio.wait_for(done.wait(), timeout=5.0)
        assert seen_threads == [loop_thread]
        return calls, len(calls)

    calls, n = asyncio.run(main())
    assert calls == [{"keep_last": 6}] and n == 1
