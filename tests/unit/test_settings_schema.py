"""The settings field-spec tree: from classes, from ezmsg's metadata, from snapshots."""

import dataclasses
import pickle
import sys
import types
from typing import Annotated

import ezmsg.core as ez
import numpy as np
import pytest
from ezmsg.core.graphmeta import SettingsSnapshotValue
from ezmsg.core.settingsmeta import settings_schema_from_type

from ezmsg_lab.demo import units as demo
from ezmsg_lab.model.settings_schema import (
    Bounds,
    settings_class_from_snapshot,
    settings_object_from_snapshot,
    spec_from_class,
    spec_from_metadata,
    spec_from_snapshot,
)

from . import realworld_settings as rw

DEMO_CLASSES = [
    demo.SignalSourceSettings,
    demo.FilterSettings,
    demo.DetectorSettings,
    demo.SinkSettings,
    demo.DemoSettings,
]


def test_demo_kinds_bounds_choices_and_paths():
    src = spec_from_class(demo.SignalSourceSettings)
    assert [f.kind for f in src.fields] == [
        "float",
        "int",
        "dataclass",
        "float",
        "optional",
        "bool",
    ]
    assert src.field("fs").bounds == Bounds(1.0, 50_000.0)
    assert src.field("fs").description == "Sample rate (Hz)."
    assert src.field("tone.freq_hz").bounds == Bounds(0.0, 5000.0)
    assert src.field("tone.freq_hz").path == "tone.freq_hz"
    assert src.field("seed").nullable and src.field("seed").children[0].kind == "int"
    assert src.paths() == [
        "fs",
        "chunk_size",
        "tone",
        "tone.freq_hz",
        "tone.amplitude",
        "noise_std",
        "seed",
        "enabled",
    ]
    with pytest.raises(KeyError):
        src.field("tone.nope")

    flt = spec_from_class(demo.FilterSettings)
    window = flt.field("window")
    assert window.kind == "enum"
    assert [(c.name, c.value) for c in window.choices] == [(m.name, m) for m in demo.Window]
    assert window.default is demo.Window.HAMMING
    assert [c.value for c in flt.field("kind").choices] == ["lowpass", "highpass"]
    assert not flt.field("taps").required and flt.field("taps").default == 31


@pytest.mark.parametrize("cls", DEMO_CLASSES, ids=lambda c: c.__name__)
def test_schema_agrees_with_ezmsg_metadata(cls):
    """Names, bounds, descriptions, defaults and Literal choices match what ezmsg reports."""
    ours = spec_from_class(cls)
    theirs = settings_schema_from_type(cls)
    assert [f.name for f in ours.fields] == [f.name for f in theirs.fields]
    for mine, fm in zip(ours.fields, theirs.fields, strict=True):
        assert mine.required == fm.required
        assert mine.description == fm.description
        if fm.bounds is not None:
            assert (mine.bounds.lo, mine.bounds.hi) == fm.bounds
        else:
            assert mine.bounds is None
        if fm.choices is not None:
            assert [c.value for c in mine.choices] == fm.choices
        # ezmsg sanitises defaults (enum -> value, dataclass -> dict); ours keep the object
        if mine.kind in ("float", "int", "bool", "str", "literal"):
            assert mine.default == fm.default
        if mine.kind == "enum":
            assert mine.default.value == fm.default


def test_realworld_future_annotations_class():
    spec = spec_from_class(rw.RealWorldSettings)
    f = spec.field
    assert f("axis").kind == "optional" and f("axis").required and not f("axis").has_default
    assert f("order").required and f("order").bounds == Bounds(0.0, 12.0)
    assert f("cutoff").children[0].bounds == Bounds(0.0, None, lo_inclusive=False)
    freq = f("frequencies")
    assert freq.kind == "union" and freq.nullable
    assert [c.kind for c in freq.children] == ["float", "tuple"]
    assert [c.bounds for c in freq.children[1].children] == [Bounds(0.0, None)] * 2
    assert [c.value for c in f("coef_type").choices] == ["ba", "sos"]  # lost by ezmsg here
    assert [c.value for c in f("anchor").choices] == list(rw.Anchor)
    assert f("weights").kind == "array" and f("weights").dtype is None
    assert f("float_weights").dtype == np.float64
    coefs = f("coefs")
    assert coefs.kind == "optional" and coefs.children[0].array_like
    assert coefs.type_display == "ArrayLike | None"
    assert f("func").kind == "callable" and not f("func").editable and f("func").reason
    assert f("shape").kind == "tuple" and f("shape").variadic
    assert f("channels").kind == "list" and f("channels").children[0].kind == "int"
    assert [c.kind for c in f("gains").children] == ["str", "float"]
    assert f("band.hi_hz").bounds == Bounds(0.0, 1000.0, False, False)
    assert spec.field("maybe_band.lo_hz").bounds == Bounds(0.0, None)
    assert f("extra").kind == "any" and not f("extra").editable
    assert [c.kind for c in f("mode").children] == ["int", "str"]
    assert [c.value for c in f("tag").choices] == [1, 2, "three"]


def test_ezmsg_metadata_loses_what_the_class_keeps():
    """Rough edge 6, measured: the reason the class is preferred."""
    meta = {m.name: m for m in settings_schema_from_type(rw.RealWorldSettings).fields}
    assert meta["coef_type"].choices is None
    assert meta["anchor"].choices is None


def test_unresolvable_annotation_is_read_only(monkeypatch):
    module = types.ModuleType("fake_settings_mod")
    monkeypatch.setitem(sys.modules, "fake_settings_mod", module)
    exec(
        "from __future__ import annotations\n"
        "import ezmsg.core as ez\n"
        "class S(ez.Settings):\n"
        "    ok: int = 1\n"
        "    bad: NoSuchType = None\n",
        module.__dict__,
    )
    spec = spec_from_class(module.S)
    assert spec.field("ok").kind == "int"
    bad = spec.field("bad")
    assert bad.kind == "any" and not bad.editable and "NoSuchType" in bad.reason


def test_annotated_bounds_and_metadata_choices_and_init_false():
    class Ge:
        ge = 2.0

    @dataclasses.dataclass(frozen=True)
    class S:
        a: Annotated[float, Ge()] = 3.0
        mode: str = dataclasses.field(default="x", metadata={"choices": ["x", "y"]})
        derived: int = dataclasses.field(default=0, init=False)

    spec = spec_from_class(S)
    assert spec.field("a").kind == "float" and spec.field("a").bounds == Bounds(2.0, None)
    assert spec.field("mode").kind == "literal"
    assert [c.value for c in spec.field("mode").choices] == ["x", "y"]
    assert not spec.field("derived").editable


def test_metadata_fallback_from_ezmsg_schema():
    meta = settings_schema_from_type(demo.FilterSettings)
    spec = spec_from_metadata(meta, reason="not importable")
    assert spec.source == "metadata" and spec.cls is None and spec.reason == "not importable"
    assert spec.field("cutoff_hz").kind == "float"
    assert spec.field("cutoff_hz").bounds == Bounds(0.1, 499.0)
    assert [c.value for c in spec.field("kind").choices] == ["lowpass", "highpass"]
    window = spec.field("window")
    if getattr(meta, "json_schema", None):  # ezmsg 3.10: choices come from $defs, by value
        assert window.kind == "enum"
        assert [c.value for c in window.choices] == [m.value for m in demo.Window]
    else:  # 3.9: nothing tells the members apart, so no widget
        assert window.kind == "any" and not window.editable

    det = spec_from_metadata(settings_schema_from_type(demo.DetectorSettings))
    assert det.field("refractory_s").kind == "optional"
    assert det.field("refractory_s").children[0].kind == "float"

    rws = spec_from_metadata(settings_schema_from_type(rw.RealWorldSettings))
    # Literal choices recovered from the type string ezmsg kept
    assert [c.value for c in rws.field("tag").choices] == [1, 2, "three"]
    assert rws.field("frequencies").kind == "union" and rws.field("frequencies").nullable
    assert rws.field("float_weights").kind == "array"
    assert rws.field("func").kind == "callable" and not rws.field("func").editable
    assert rws.field("band").kind == "any" and "BandSpec" in rws.field("band").reason


def test_json_schema_merge_gives_enum_choices_and_nullable():
    """A 3.10-shaped schema (as printed by ezmsg 3.10.0b5 for FilterSettings)."""

    @dataclasses.dataclass
    class Meta:  # the SettingsSchemaMetadata shape, with 3.10's extra attribute
        provider: str
        settings_type: str
        fields: list
        json_schema: dict | None = None

    base = settings_schema_from_type(demo.FilterSettings)
    js = {
        "$defs": {"Window": {"enum": ["rectangular", "hann", "hamming", "blackman"]}},
        "properties": {
            "window": {"$ref": "#/$defs/Window", "default": "hamming"},
            "taps": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        },
    }
    spec = spec_from_metadata(Meta(base.provider, base.settings_type, base.fields, js))
    assert spec.field("window").kind == "enum" and spec.field("window").editable
    assert spec.field("taps").nullable and spec.field("taps").kind == "optional"


def _snapshot(obj) -> SettingsSnapshotValue:
    return SettingsSnapshotValue(
        serialized=pickle.dumps(obj),
        repr_value=repr(obj),
        settings_schema=settings_schema_from_type(type(obj)),
    )


def test_settings_class_from_snapshot_roundtrip_and_failures(monkeypatch):
    value = _snapshot(demo.FilterSettings(cutoff_hz=33.0))
    cls, reason = settings_class_from_snapshot(value)
    assert cls is demo.FilterSettings and reason is None
    obj, _ = settings_object_from_snapshot(value)
    assert obj.cutoff_hz == 33.0
    spec = spec_from_snapshot(value)
    assert spec.source == "class" and spec.field("window").kind == "enum"

    assert settings_class_from_snapshot(SettingsSnapshotValue(None, "x")) == (
        None,
        "the settings snapshot carries no serialized value",
    )

    # A class whose module is gone in this kernel (another program's module, say).
    module = types.ModuleType("vanishing_settings_mod")
    monkeypatch.setitem(sys.modules, "vanishing_settings_mod", module)
    exec(
        "import ezmsg.core as ez\nclass V(ez.Settings):\n    gain: float = 1.0\n",
        module.__dict__,
    )
    gone = _snapshot(module.V())
    monkeypatch.delitem(sys.modules, "vanishing_settings_mod")
    cls, reason = settings_class_from_snapshot(gone)
    assert cls is None and "cannot be imported" in reason
    spec = spec_from_snapshot(gone)
    assert spec.source == "metadata" and "cannot be imported" in spec.reason
    assert spec.field("gain").kind == "float"


def test_every_field_of_every_demo_class_has_a_spec():
    for cls in [*DEMO_CLASSES, rw.RealWorldSettings, rw.NoDefaultsSettings]:
        spec = spec_from_class(cls)
        assert [f.name for f in spec.fields] == [f.name for f in dataclasses.fields(cls)]
        for f in spec.fields:
            assert f.editable or f.reason, f.path


def test_ez_settings_is_a_frozen_dataclass():
    """What build_update relies on: ez.Settings subclasses are frozen dataclasses."""
    assert dataclasses.is_dataclass(demo.FilterSettings)
    with pytest.raises(dataclasses.FrozenInstanceError):
        demo.FilterSettings().taps = 3  # type: ignore[misc]
    assert issubclass(demo.FilterSettings, ez.Settings)


def _type_alias_type() -> type:
    """typing.TypeAliasType (3.12+) or typing_extensions' backport (what 3.11 has)."""
    import typing

    if hasattr(typing, "TypeAliasType"):
        return typing.TypeAliasType
    return pytest.importorskip("typing_extensions").TypeAliasType


def test_pep695_type_aliases_are_seen_through():
    # numpy >= 2.5 on Python >= 3.12 makes npt.NDArray such an alias: NDArray[np.float64]
    # then has the alias as its origin, and used to lose its array kind and dtype.
    from typing import Any, TypeVar

    alias = _type_alias_type()
    T = TypeVar("T")
    Arr = alias("Arr", np.ndarray[Any, np.dtype[T]], type_params=(T,))
    Gains = alias("Gains", list[float])
    Outer = alias("Outer", Arr, type_params=())  # an alias of an alias

    @dataclasses.dataclass
    class Aliased:
        weights: Arr[np.float32] = dataclasses.field(default_factory=lambda: np.zeros(2))  # type: ignore[valid-type]
        gains: Gains = dataclasses.field(default_factory=list)  # type: ignore[valid-type]
        bounded: Annotated[Arr[np.int64], "meta"] = dataclasses.field(  # type: ignore[valid-type]
            default_factory=lambda: np.zeros(2, dtype=np.int64)
        )
        plain: Outer = dataclasses.field(default_factory=lambda: np.zeros(2))  # type: ignore[valid-type]

    spec = spec_from_class(Aliased)
    assert spec.field("weights").kind == "array"
    assert spec.field("weights").dtype == np.float32
    assert spec.field("weights").type_display == "NDArray[float32]"
    assert spec.field("gains").kind == "list"
    assert spec.field("bounded").kind == "array" and spec.field("bounded").dtype == np.int64
    assert spec.field("plain").kind == "array" and spec.field("plain").dtype is None
