"""The pieces behind the direct settings path: which fields a whole object changes, a copy
with some fields replaced, and which of another client's changes a whole object undid."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from ezmsg_lab.demo import units as demo
from ezmsg_lab.feeds.settings_control import _undone
from ezmsg_lab.model.settings_changes import changed_paths
from ezmsg_lab.model.settings_validate import rebuild


@dataclass(frozen=True)
class Inner:
    a: float = 1.0
    b: float = 2.0


@dataclass(frozen=True)
class Outer:
    inner: Inner = field(default_factory=Inner)
    n: int = 0
    arr: np.ndarray = field(default_factory=lambda: np.zeros(3))
    inner_or_none: Inner | None = None


def _snap(obj: object) -> SimpleNamespace:
    """What a settings event carries: the pickled object (``serialized``)."""
    return SimpleNamespace(serialized=pickle.dumps(obj))


def test_changed_paths_goes_into_nested_dataclasses():
    a = Outer()
    assert changed_paths(a, Outer()) == []
    assert changed_paths(a, Outer(inner=Inner(b=3.0), n=1)) == ["inner.b", "n"]
    assert changed_paths(a, Outer(arr=np.ones(3))) == ["arr"]
    # None -> a dataclass is one path (the types differ)
    assert changed_paths(a, Outer(inner_or_none=Inner())) == ["inner_or_none"]


def test_rebuild_replaces_dotted_paths_and_leaves_the_original():
    a = Outer()
    b = rebuild(a, {"inner.a": 5.0, "n": 2})
    assert (b.inner.a, b.inner.b, b.n) == (5.0, 2.0, 2)
    assert (a.inner.a, a.n) == (1.0, 0)


def test_undone_names_only_other_fields_our_object_put_back():
    before = demo.FilterSettings(cutoff_hz=40.0, taps=41)  # another client set taps=41
    ours = demo.FilterSettings(cutoff_hz=25.0, taps=31)  # built before: old taps
    assert _undone(_snap(before), ours, {"cutoff_hz": 25.0}) == {"taps": 41}
    # our own field is ours to set, whatever the other client did to it
    assert _undone(_snap(before), ours, {"cutoff_hz": 25.0, "taps": 31}) == {}
    # nothing undone when our object was built on the latest value
    fresh = demo.FilterSettings(cutoff_hz=25.0, taps=41)
    assert _undone(_snap(before), fresh, {"cutoff_hz": 25.0}) == {}


def test_undone_with_nested_paths_and_unreadable_values():
    before = demo.SignalSourceSettings(tone=demo.Tone(5.0, 2.0))  # other: tone.amplitude
    ours = demo.SignalSourceSettings(tone=demo.Tone(7.0, 1.0))  # ours: tone.freq_hz
    assert _undone(_snap(before), ours, {"tone.freq_hz": 7.0}) == {"tone.amplitude": 2.0}
    # a whole nested field set by us covers its children
    assert _undone(_snap(before), ours, {"tone": demo.Tone(7.0, 1.0)}) == {}
    # a value whose class is not importable here, or another class: nothing to say
    assert _undone(SimpleNamespace(serialized=b"not a pickle"), ours, {"noise_std": 0.1}) == {}
    assert _undone(_snap(demo.SinkSettings()), ours, {"noise_std": 0.1}) == {}
