"""Lab-side validation and coercion of settings updates (no ezmsg processes)."""

import copy
import dataclasses
import math

import numpy as np
import pytest
from ezmsg.core.settingsmeta import settings_schema_from_type
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ezmsg_lab.demo import units as demo
from ezmsg_lab.errors import LabError
from ezmsg_lab.model.settings_schema import spec_from_class, spec_from_metadata
from ezmsg_lab.model.settings_validate import (
    SettingsValidationError,
    build_update,
    coerce_field,
    validate_updates,
)

from . import realworld_settings as rw

SRC = spec_from_class(demo.SignalSourceSettings)
FLT = spec_from_class(demo.FilterSettings)
DET = spec_from_class(demo.DetectorSettings)
SINK = spec_from_class(demo.SinkSettings)
RW = spec_from_class(rw.RealWorldSettings)
RW_NOW = rw.RealWorldSettings(axis="time", order=2)


def refused(spec, current, updates, unit="U"):
    before = copy.deepcopy(current)
    with pytest.raises(SettingsValidationError) as info:
        build_update(spec, current, updates, unit=unit)
    assert _arrays_equal(current, before)  # nothing mutated
    return info.value


def _arrays_equal(a, b):
    return all(
        np.array_equal(getattr(a, f.name), getattr(b, f.name))
        if isinstance(getattr(a, f.name), np.ndarray)
        else getattr(a, f.name) == getattr(b, f.name)
        for f in dataclasses.fields(a)
        if f.name != "func"
    )


@pytest.mark.parametrize(
    ("spec", "cls", "path", "value", "expected"),
    [
        (FLT, demo.FilterSettings, "cutoff_hz", 45, 45.0),
        (FLT, demo.FilterSettings, "cutoff_hz", "45", 45.0),  # as ezmsg 3.10 does
        (FLT, demo.FilterSettings, "cutoff_hz", np.float32(2.5), 2.5),
        (FLT, demo.FilterSettings, "cutoff_hz", 0.1, 0.1),  # inclusive bound
        (FLT, demo.FilterSettings, "taps", 63.0, 63),
        (FLT, demo.FilterSettings, "taps", "63", 63),
        (FLT, demo.FilterSettings, "taps", np.int64(5), 5),
        (FLT, demo.FilterSettings, "bypass", True, True),
        (FLT, demo.FilterSettings, "bypass", "False", False),
        (FLT, demo.FilterSettings, "bypass", np.bool_(True), True),
        (FLT, demo.FilterSettings, "kind", "highpass", "highpass"),
        (FLT, demo.FilterSettings, "window", "HANN", demo.Window.HANN),  # by name
        (FLT, demo.FilterSettings, "window", "blackman", demo.Window.BLACKMAN),  # by value
        (FLT, demo.FilterSettings, "window", demo.Window.RECTANGULAR, demo.Window.RECTANGULAR),
        (FLT, demo.FilterSettings, "window", rw.Window.HAMMING, demo.Window.HAMMING),  # foreign
        (DET, demo.DetectorSettings, "refractory_s", None, None),
        (DET, demo.DetectorSettings, "refractory_s", "0.5", 0.5),
        (DET, demo.DetectorSettings, "label", "spike", "spike"),
        (SRC, demo.SignalSourceSettings, "seed", 7, 7),
        (SRC, demo.SignalSourceSettings, "tone.freq_hz", 12, 12.0),
        (SRC, demo.SignalSourceSettings, "tone", {"amplitude": 3}, demo.Tone(5.0, 3.0)),
        (SRC, demo.SignalSourceSettings, "tone", demo.Tone(1.0, 2.0), demo.Tone(1.0, 2.0)),
    ],
)
def test_valid_values_are_coerced(spec, cls, path, value, expected):
    new = build_update(spec, cls(), {path: value})
    got = new
    for part in path.split("."):
        got = getattr(got, part)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    ("path", "value", "rule_part"),
    [
        ("cutoff_hz", "abc", "not a number"),
        ("cutoff_hz", True, "bool"),
        ("cutoff_hz", 0.05, ">= 0.1"),
        ("cutoff_hz", 30_000, "<= 499"),
        ("cutoff_hz", float("nan"), ">= 0.1"),
        ("cutoff_hz", None, "None"),
        ("cutoff_hz", [1.0], "expects a float"),
        ("taps", 3.5, "whole number"),
        ("taps", True, "bool"),
        ("taps", "x", "not an integer"),
        ("taps", 1, ">= 3"),
        ("bypass", 1, "expects a bool"),
        ("bypass", "yes", "expects a bool"),
        ("kind", "bandpass", "not one of"),
        ("window", "KAISER", "not a Window member"),
        ("window", rw.Anchor.END, "not a Window member"),
        ("window", 3, "not a Window member"),
    ],
)
def test_invalid_values_name_unit_field_value_and_rule(path, value, rule_part):
    err = refused(FLT, demo.FilterSettings(), {path: value}, unit="DEMO/FILTER")
    assert isinstance(err, LabError)
    assert (err.unit, err.field) == ("DEMO/FILTER", path)
    assert err.value is value or (isinstance(value, float) and math.isnan(err.value))
    assert rule_part in err.rule
    text = str(err)
    assert "DEMO/FILTER" in text and path in text and rule_part in text and err.hint in text


def test_unknown_fields_suggest_close_names():
    err = refused(FLT, demo.FilterSettings(), {"cuttof_hz": 3})
    assert err.rule == "unknown field" and "cutoff_hz" in err.hint
    err = refused(SRC, demo.SignalSourceSettings(), {"tone.freq": 3})
    assert "tone.freq_hz" in err.hint
    err = refused(SRC, demo.SignalSourceSettings(), {"tone": {"freq": 1}})
    assert err.field == "tone.freq" and "freq_hz" in err.hint


def test_all_or_nothing_lists_every_refusal():
    cur = demo.FilterSettings()
    err = refused(FLT, cur, {"cutoff_hz": 30.0, "taps": 2.5, "kind": "x"}, unit="F")
    assert [e.field for e in err.errors] == ["taps", "kind"]
    assert "2 fields refused" in str(err) and "taps" in str(err) and "kind" in str(err)
    assert cur.cutoff_hz == 20.0
    new = build_update(FLT, cur, {"cutoff_hz": 30.0, "taps": 63, "window": "HANN"})
    assert (new.cutoff_hz, new.taps, new.window) == (30.0, 63, demo.Window.HANN)
    assert new is not cur and cur == demo.FilterSettings()


def test_nested_updates():
    cur = demo.SignalSourceSettings()
    new = build_update(SRC, cur, {"tone.freq_hz": 9, "tone.amplitude": "2"})
    assert new.tone == demo.Tone(9.0, 2.0) and cur.tone == demo.Tone()
    err = refused(SRC, cur, {"tone": demo.Tone(freq_hz=-1.0)})
    assert err.field == "tone.freq_hz"
    err = refused(SRC, cur, {"tone": {"freq_hz": 1}, "tone.amplitude": 2})
    assert "not both" in err.hint
    err = refused(RW, RW_NOW, {"maybe_band.lo_hz": 2})
    assert "maybe_band is None" in err.rule
    new = build_update(RW, RW_NOW, {"maybe_band": {"lo_hz": 2}})
    assert new.maybe_band == rw.BandSpec(lo_hz=2.0)
    new = build_update(RW, new, {"maybe_band.hi_hz": 100})
    assert new.maybe_band == rw.BandSpec(lo_hz=2.0, hi_hz=100.0)
    err = refused(RW, RW_NOW, {"band.hi_hz": 1000})  # exclusive upper bound
    assert "< 1000" in err.rule
    # the demo's whole-pipeline settings: two levels of nesting
    top = spec_from_class(demo.DemoSettings)
    new = build_update(
        top, demo.DemoSettings(), {"source.tone.freq_hz": 7, "filter.window": "HANN"}
    )
    assert new.source.tone.freq_hz == 7.0 and new.filter.window is demo.Window.HANN
    assert new.detector is demo.DemoSettings().detector or new.detector == demo.DetectorSettings()
    err = refused(top, demo.DemoSettings(), {"source.tone.freq_hz": -7})
    assert err.field == "source.tone.freq_hz"


def test_realworld_field_kinds():
    def ok(path, value):
        return getattr(build_update(RW, RW_NOW, {path: value}), path)

    assert ok("axis", None) is None and ok("axis", "ch") == "ch"
    assert ok("frequencies", 5) == 5.0
    assert ok("frequencies", [1, 2]) == (1.0, 2.0)
    assert ok("frequencies", (1.5, 2.5)) == (1.5, 2.5)
    assert ok("frequencies", None) is None
    assert ok("cutoff", 1e-3) == 1e-3
    w = ok("weights", [1, 2, 3])
    assert isinstance(w, np.ndarray) and w.dtype == np.float64  # kept the current dtype
    fw = ok("float_weights", [1, 2])
    assert fw.dtype == np.float64 and fw.tolist() == [1.0, 2.0]
    assert ok("coefs", [[1, 2], [3, 4]]) == [[1, 2], [3, 4]]  # ArrayLike kept as given
    assert ok("coefs", 3.0) == 3.0
    assert ok("func", abs) is abs
    assert ok("shape", [3, 4, 5]) == (3, 4, 5)
    assert ok("channels", (4, "5")) == [4, 5]
    assert ok("gains", {"a": 1}) == {"a": 1.0}
    assert ok("mode", "5") == "5"  # exact str member wins over int coercion
    assert ok("mode", 5) == 5
    assert ok("tag", "three") == "three" and ok("tag", 2) == 2
    assert ok("anchor", "end") is rw.Anchor.END
    assert ok("order_enum", 4) is rw.Order.HIGH and ok("order_enum", "LOW") is rw.Order.LOW
    assert ok("extra", object) is object

    for path, value, rule_part in [
        ("order", 13, "<= 12"),
        ("cutoff", 0, "> 0"),
        ("frequencies", [1], "matches no member"),
        ("frequencies", -1, "matches no member"),
        ("frequencies", "abc", "matches no member"),
        ("weights", "abc", "not array-like"),
        ("weights", [[1], [2, 3]], "not array-like"),
        ("weights", ["a", "b"], "not numeric"),
        ("weights", 3.0, "scalar"),
        ("float_weights", [1 + 2j], "cannot become float64"),
        ("coefs", {"a": 1}, "not array-like"),
        ("func", 3, "not callable"),
        ("shape", "ab", "expects a tuple"),
        ("shape", [1.5], "whole number"),
        ("channels", ["a"], "not an integer"),
        ("gains", {"a": "x"}, "not a number"),
        ("gains", [1], "expects a dict"),
        ("mode", 5.5, "matches no member"),
        ("tag", True, "not one of"),
        ("tag", "1", "not one of"),
        ("band", 3, "expects a BandSpec"),
        ("order_enum", "MEDIUM", "not a Order member"),
    ]:
        err = refused(RW, RW_NOW, {path: value})
        assert err.field.split("[")[0].split(".")[0] == path, (path, err.field)
        assert rule_part in err.rule, (path, err.rule)


def test_required_fields_and_dataclass_dicts():
    spec = spec_from_class(rw.NoDefaultsSettings)
    new = build_update(spec, rw.NoDefaultsSettings(gain=1.0), {"gain": "2"})
    assert new == rw.NoDefaultsSettings(gain=2.0)
    assert spec.field("gain").required
    # a dict for a dataclass with no current value needs every required field
    with pytest.raises(SettingsValidationError, match="missing required gain"):
        coerce_field(
            dataclasses.replace(
                spec.fields[0],
                kind="dataclass",
                py_type=rw.NoDefaultsSettings,
                children=spec.fields,
            ),
            {"offset": 1.0},
        )


def test_post_init_refusal_becomes_a_validation_error():
    @dataclasses.dataclass(frozen=True)
    class Band:
        lo: float = 1.0
        hi: float = 2.0

        def __post_init__(self):
            if self.lo >= self.hi:
                raise ValueError("lo must be below hi")

    spec = spec_from_class(Band)
    cur = Band()
    with pytest.raises(SettingsValidationError, match="lo must be below hi") as info:
        build_update(spec, cur, {"lo": 5.0}, unit="B")
    assert info.value.unit == "B" and cur == Band()
    assert build_update(spec, cur, {"lo": 5.0, "hi": 6.0}) == Band(5.0, 6.0)


def test_validate_updates_with_metadata_only_spec():
    meta = spec_from_metadata(settings_schema_from_type(rw.RealWorldSettings), reason="gone")
    out = validate_updates(meta, None, {"order": "3", "coef_type": "sos", "cuton": None})
    assert out == {"order": 3, "coef_type": "sos", "cuton": None}
    with pytest.raises(SettingsValidationError) as info:
        validate_updates(meta, None, {"band": {"lo_hz": 1}, "order": 99})
    assert [e.field for e in info.value.errors] == ["band", "order"]
    assert "BandSpec" in info.value.errors[0].rule


def test_build_update_needs_a_current_dataclass():
    with pytest.raises(TypeError, match="validate_updates"):
        build_update(FLT, None, {"taps": 3})


# ------------------------------------------------------------------ hypothesis: refusals

_not_numeric_text = st.text(max_size=8).filter(lambda s: not _parses(s))


def _parses(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _invalid_for(spec):
    """Values that must be refused for ``spec`` (by kind, bounds and choices)."""
    junk = st.one_of(
        st.lists(st.integers(), max_size=2), st.dictionaries(st.text(), st.integers(), max_size=1)
    )
    if spec.kind == "optional":
        spec, nullable = spec.children[0], True
    else:
        nullable = False
    none = st.nothing() if nullable else st.none()
    k, b = spec.kind, spec.bounds
    if k in ("float", "int"):
        outside = st.nothing()
        if b is not None and b.lo is not None:
            outside = st.floats(max_value=b.lo, exclude_max=True, allow_nan=False)
        if b is not None and b.hi is not None:
            outside = outside | st.floats(min_value=b.hi, exclude_min=True, allow_nan=False)
        bad = st.booleans() | _not_numeric_text | junk | none | outside
        if k == "int":
            bad = bad | st.floats(allow_nan=False, allow_infinity=False).filter(
                lambda x: not x.is_integer()
            )
        return bad
    if k == "bool":
        return (
            st.integers()
            | st.floats()
            | st.text().filter(lambda s: s.strip().lower() not in ("true", "false"))
            | junk
            | none
        )
    if k == "str":
        return st.integers() | st.floats() | st.booleans() | junk | none
    if k == "literal":
        vals = [c.value for c in spec.choices]
        return st.text().filter(lambda s: s not in vals) | st.integers() | junk | none
    if k == "enum":
        names = [c.name for c in spec.choices] + [c.value.value for c in spec.choices]
        return st.text().filter(lambda s: s not in names) | st.floats() | junk | none
    return None


CASES = [
    (spec, cls, f)
    for spec, cls in [
        (SRC, demo.SignalSourceSettings),
        (FLT, demo.FilterSettings),
        (DET, demo.DetectorSettings),
        (SINK, demo.SinkSettings),
    ]
    for f in ([*spec.fields, *spec.field("tone").children] if spec is SRC else spec.fields)
    if _invalid_for(f) is not None
]


@pytest.mark.parametrize(("spec", "cls", "field"), CASES, ids=[c[2].path for c in CASES])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_hypothesis_invalid_inputs_are_refused(spec, cls, field, data):
    value = data.draw(_invalid_for(field), label=field.path)
    cur = cls()
    # a valid change to another field rides along: it must not be applied either
    other = next((f for f in spec.fields if f.kind == "bool" and f.path != field.path), None)
    updates = {field.path: value}
    if other is not None:
        updates[other.path] = not getattr(cur, other.path)
    with pytest.raises(SettingsValidationError) as info:
        build_update(spec, cur, updates, unit="DEMO/X")
    err = info.value
    assert err.field == field.path and field.path in str(err) and "DEMO/X" in str(err)
    assert len(err.errors) == 1
    assert cur == cls()


@pytest.mark.parametrize("path", ["cutoff_hz", "taps"])
@settings(max_examples=80, deadline=None)
@given(x=st.floats(min_value=0.0, max_value=30_000.0, allow_nan=False))
def test_hypothesis_bounds_are_exact(path, x):
    spec = FLT.field(path)
    if spec.kind == "int":
        x = float(round(x))
    inside = spec.bounds.contains(x)
    try:
        got = coerce_field(spec, x)
    except SettingsValidationError as err:
        assert not inside and err.field == path
    else:
        assert inside and got == x


def test_text_numbers_may_have_blanks_around_them_but_not_control_characters():
    """Found by the hypothesis test: str.strip() also drops control characters, so
    "0\\x1f" was taken for 0."""
    spec = spec_from_class(demo.DetectorSettings)
    field = spec.field("threshold")
    assert coerce_field(field, " 2.5 \n") == 2.5
    for text in ("0\x1f", "\x1c1.5", "1\x00"):
        with pytest.raises(SettingsValidationError, match="not a number"):
            coerce_field(field, text)
