"""One editor per settings field: the widget, how to read it and how to write it.

Private helper of :mod:`ezmsg_lab.widgets.settings_form`. An editor never sends anything;
the form reads it, validates with :func:`coerce_field` and calls the user's callback.

Numbers get controls that fit the field (:func:`slider_range`): a slider over the declared
bounds when they are narrow around the value, else a number box for any value plus a
slider over a window around the current value, re-centred on each new value, so one drag
never jumps orders of magnitude (a cutoff slider spanning 0.1 Hz to 25 kHz once took
40 Hz to 4 kHz in an 80-pixel drag). Sliders and number boxes never send while they are
drawn: both have ``continuous_update=False``, because with it on, the browser's slider
snaps the value it was given to its step when it draws and sends the snapped value back
as if the user had moved it.
"""

from __future__ import annotations

import dataclasses
import enum
import html
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import ipywidgets as W
import numpy as np

from ..model.settings_schema import Bounds, FieldSpec

_SIMPLE = ("float", "int", "bool", "str", "literal", "enum")
_LABEL = W.Layout(width="150px", min_width="150px")


def _step(span: float) -> float:
    """A 1-2-5 step giving roughly a thousand slider positions."""
    raw = span / 1000.0
    mag = 10 ** math.floor(math.log10(raw))
    return float(next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw))


@dataclass(frozen=True)
class SliderRange:
    """Where a number's slider goes: ``lo``..``hi`` by ``step``.

    ``window`` is True when the range is a window around the current value inside wider
    (or no) bounds: the field then gets a number box as well, and the window moves with
    the value.
    """

    lo: float
    hi: float
    step: float
    window: bool


def _grid(x: float, step: float) -> float:
    """``x`` without float noise at a grid of ``step`` (1.1420000000000001 -> 1.142): a
    1-2-5 step and grid points from such a step have at most 1 - log10(step) decimals."""
    return round(x, max(0, 1 - math.floor(math.log10(step))))


def _snap(x: float, step: float, up: bool) -> float:
    k = math.ceil(x / step - 1e-9) if up else math.floor(x / step + 1e-9)
    return _grid(k * step, step)


def slider_range(kind: str, value: Any, bounds: Bounds | None) -> SliderRange | None:
    """The slider that fits a number field holding ``value``, or None when none does.

    The window around ``value`` spans ``value +/- |value|`` (0 .. 2 x value for a positive
    value; at least a thousandth of the bounds, ``+/- 10`` for ints, a tenth of the bounds
    or ``+/- 1`` around zero), clipped to the bounds. When the bounds are at most twice as wide as that window, the slider spans
    the bounds; otherwise it spans the window (rounded out to its step), so a full drag at
    most doubles the value. About a thousand positions either way; ints step by 1.

    Examples
    --------
    >>> slider_range("float", 40.0, Bounds(0.1, 499.0))
    SliderRange(lo=0.1, hi=80.0, step=0.1, window=True)
    >>> slider_range("float", 1.0, Bounds(0.0, 2.0))
    SliderRange(lo=0.0, hi=2.0, step=0.002, window=False)
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    lo = bounds.lo if bounds is not None and bounds.lo is not None else -math.inf
    hi = bounds.hi if bounds is not None and bounds.hi is not None else math.inf
    if not lo <= value <= hi or not lo < hi:
        return None
    finite = math.isfinite(lo) and math.isfinite(hi)
    # A window as wide as the value itself, but never a sliver of wide bounds.
    scale = max(abs(value), (hi - lo) / 1000 if finite else 0.0)
    if kind == "int":
        scale = max(scale, 10)
    elif scale == 0:
        scale = (hi - lo) / 10 if finite else 1.0
    wlo, whi = max(lo, value - scale), min(hi, value + scale)
    if finite and hi - lo <= 2 * (whi - wlo) * (1 + 1e-9):
        if kind == "int":
            return SliderRange(float(math.ceil(lo)), float(math.floor(hi)), 1.0, window=False)
        return SliderRange(float(lo), float(hi), _step(hi - lo), window=False)
    if kind == "int":
        return SliderRange(float(math.ceil(wlo)), float(math.floor(whi)), 1.0, window=True)
    step = _step(whi - wlo)
    return SliderRange(
        min(float(value), max(float(lo), _snap(wlo, step, up=False))),
        max(float(value), min(float(hi), _snap(whi, step, up=True))),
        step,
        window=True,
    )


def to_jsonable(value: Any) -> Any:
    """A JSON-friendly view of a settings value (arrays -> lists, enums -> values)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"{type(value).__name__} has no JSON form")


def _placeholder(spec: FieldSpec) -> Any:
    """What a control shows while its Optional field is None."""
    if spec.has_default and spec.default is not None:
        return spec.default
    if spec.kind in ("float", "int"):
        lo = spec.bounds.lo if spec.bounds and spec.bounds.lo is not None else 0
        return float(lo) if spec.kind == "float" else int(math.ceil(lo))
    return {"bool": False, "str": ""}.get(spec.kind)


class Editor:
    """A field's row: label, control, optional None toggle, help, inline error and note."""

    def __init__(self, spec: FieldSpec, value: Any, *, continuous: bool) -> None:
        self.spec, self.path, self.dirty = spec, spec.path, False
        self.read_only_reason: str | None = None
        self.none_toggle: W.Checkbox | None = None
        # A number's window slider beside its box (None when the control is the slider).
        self.slider: W.FloatSlider | W.IntSlider | None = None
        self._syncing = False  # the editor itself is moving its slider or box
        self._slider_origin = False  # the box is being set from the window slider
        inner = spec
        if spec.kind == "optional" and spec.children[0].kind in _SIMPLE:
            inner = spec.children[0]
            self.none_toggle = W.Checkbox(value=value is None, description="None", indent=False)
            self.none_toggle.layout.width = "70px"
        self.inner = inner
        shown = _placeholder(inner) if (value is None and self.none_toggle) else value
        self.control, self._to_py, self._from_py = self._make_control(inner, shown, continuous)
        if self.none_toggle is not None:
            self.none_toggle.observe(self._sync_none, names=["value"])
            self._sync_none()
        label = W.HTML(f"<b>{html.escape(spec.name)}</b>", layout=_LABEL)
        label.tooltip = f"{spec.type_display}" + (
            f": {spec.description}" if spec.description else ""
        )
        extra = [w for w in (self.slider, self.none_toggle) if w is not None]
        self.error = W.HTML("")
        self.note = W.HTML("")
        help_text = spec.description or ""
        if self.read_only_reason:
            help_text = f"{help_text} (read-only: {self.read_only_reason})".strip()
        self.help = W.HTML(
            f"<small style='color:#666'>{html.escape(help_text)}</small>" if help_text else ""
        )
        self.widget = W.VBox(
            [W.HBox([label, self.control, *extra]), self.help, self.error, self.note],
            layout=W.Layout(margin="0 0 4px 0"),
        )
        # Stable hooks for user CSS and browser tests: one class per field path.
        self.widget.add_class("ezlab-field")
        self.widget.add_class("ezlab-field-" + spec.path.replace(".", "__"))

    # -------------------------------------------------------------------------- controls
    def _make_control(
        self, spec: FieldSpec, value: Any, continuous: bool
    ) -> tuple[W.Widget, Callable[[Any], Any], Callable[[Any], Any]]:
        ident = (lambda v: v), (lambda v: v)
        b, k = spec.bounds, spec.kind
        if not spec.editable:
            return self._read_only(value, spec.reason or "no safe widget")
        if (
            k in ("float", "int")
            and isinstance(value, (int, float))
            and not isinstance(value, bool)
        ):
            rng = slider_range(k, value, b)
            if rng is not None and not rng.window:
                return (self._new_slider(k, value, rng), *ident)
            # Any value in a box (the validator explains a bad one; a bounded box would
            # clamp it silently), and a slider over a window around the value.
            box_cls = W.FloatText if k == "float" else W.IntText
            w = box_cls(value=value, continuous_update=False, layout=W.Layout(width="120px"))
            if rng is not None:
                self.slider = self._new_slider(k, value, rng)
                self.slider.observe(self._slider_moved, names=["value"])
            w.observe(self._box_changed, names=["value"])
            return (w, *ident)
        if k == "bool" and isinstance(value, (bool, np.bool_)):
            return (W.Checkbox(value=bool(value), indent=False), *ident)
        if k in ("literal", "enum") and spec.choices:
            options = [(c.name, i) for i, c in enumerate(spec.choices)]
            cls = W.ToggleButtons if len(options) <= 3 else W.Dropdown
            w = cls(options=options, value=self._choice_index(value))

            def to_py(i: Any) -> Any:
                if i is None:
                    raise ValueError("pick one of the choices")
                return spec.choices[i].value

            return w, to_py, self._choice_index
        if (k == "str" or (k == "enum" and spec.ref is not None)) and isinstance(value, str):
            # (an enum known by name only, whose values ezmsg 3.9 does not list: its value)
            return (W.Text(value=value, continuous_update=continuous), *ident)
        return self._json(spec, value)

    def _new_slider(self, kind: str, value: Any, rng: SliderRange) -> W.Widget:
        # continuous_update=False: see the module docstring (no value sent while drawn).
        if kind == "int":
            return W.IntSlider(
                value=int(value), min=int(rng.lo), max=int(rng.hi), step=1, continuous_update=False
            )
        return W.FloatSlider(
            value=float(value),
            min=rng.lo,
            max=rng.hi,
            step=rng.step,
            readout_format=".4",
            continuous_update=False,
        )

    def _slider_moved(self, change: Any) -> None:
        """The user moved the window slider: the box takes the value (an edit)."""
        if self._syncing:
            return
        value = change["new"]
        if isinstance(self.slider, W.FloatSlider):
            value = _grid(value, self.slider.step)  # the grid point the user chose
        self._slider_origin = True
        try:
            self.control.value = value
        finally:
            self._slider_origin = False

    def _box_changed(self, change: Any) -> None:
        if not self._syncing and not self._slider_origin:
            self._place_slider(change["new"])  # a typed value: the window moves to it

    def _place_slider(self, value: Any) -> None:
        """Re-centre the window slider on ``value`` (hidden when no window fits)."""
        slider = self.slider
        if slider is None:
            return
        rng = slider_range(self.inner.kind, value, self.inner.bounds)
        if rng is None:
            slider.layout.visibility = "hidden"
            return
        slider.layout.visibility = None
        self._syncing = True
        try:
            with slider.hold_sync():
                # Widen first: ipywidgets clamps the value to min/max as each is set.
                slider.min, slider.max = min(slider.min, rng.lo), max(slider.max, rng.hi)
                slider.value = value
                slider.min, slider.max = rng.lo, rng.hi
                slider.step = rng.step
        finally:
            self._syncing = False

    def tolerance(self) -> float:
        """How far a value the control sends may be from the unit's and still be the
        unit's: half a slider step when it came from a slider (a browser's slider can
        only hold its grid points), else zero."""
        if isinstance(self.control, (W.FloatSlider, W.IntSlider)):
            return float(self.control.step) / 2
        if self._slider_origin and self.slider is not None:
            return float(self.slider.step) / 2
        return 0.0

    def _choice_index(self, value: Any) -> int | None:
        for i, c in enumerate(self.inner.choices):
            if c.value is value:
                return i
        for i, c in enumerate(self.inner.choices):
            raw = c.value.value if isinstance(c.value, enum.Enum) else c.value
            other = value.value if isinstance(value, enum.Enum) else value
            if type(raw) is type(other) and raw == other:
                return i
        return None

    def _json(
        self, spec: FieldSpec, value: Any
    ) -> tuple[W.Widget, Callable[[Any], Any], Callable[[Any], Any]]:
        try:
            text = json.dumps(to_jsonable(value))
        except (TypeError, ValueError) as exc:
            return self._read_only(value, f"value has no JSON form ({exc})")
        takes_str = spec.kind == "str" or any(c.kind == "str" for c in spec.children)

        def to_py(t: str) -> Any:
            try:
                return json.loads(t)
            except json.JSONDecodeError as exc:
                if takes_str:  # a union with str: bare text is meant as a string
                    return t
                raise ValueError(f"not valid JSON ({exc.msg}); e.g. [1, 2] or null") from None

        w = W.Text(value=text, continuous_update=False, placeholder="JSON")
        w.layout.width = "320px"
        return w, to_py, lambda v: json.dumps(to_jsonable(v))

    def _read_only(
        self, value: Any, reason: str
    ) -> tuple[W.Widget, Callable[[Any], Any], Callable[[Any], Any]]:
        self.read_only_reason = reason
        r = html.escape(_short_repr(value))
        w = W.HTML(f"<code>{r}</code>")
        return w, _refuse_read, lambda v: f"<code>{html.escape(_short_repr(v))}</code>"

    # ---------------------------------------------------------------------------- state
    def _sync_none(self, _change: Any = None) -> None:
        if self.none_toggle is None:
            return
        for w in (self.control, self.slider):
            if w is not None and hasattr(w, "disabled"):
                w.disabled = self.none_toggle.value

    @property
    def editable(self) -> bool:
        return self.read_only_reason is None

    def read(self) -> Any:
        """The raw value the user entered (ValueError when it cannot even be parsed)."""
        if self.none_toggle is not None and self.none_toggle.value:
            return None
        if isinstance(self.control, W.FloatSlider):
            return _grid(self.control.value, self.control.step)  # the grid point chosen
        return self._to_py(self.control.value)

    def write(self, value: Any) -> None:
        """Show ``value`` (the caller suppresses change events)."""
        if self.none_toggle is not None:
            self.none_toggle.value = value is None
            if value is None:
                return
        shown = self._from_py(value)
        slider = isinstance(self.control, (W.IntSlider, W.FloatSlider))
        if slider and not self.control.min <= shown <= self.control.max:
            # a slider would clamp silently: show it as an error
            self.set_error(f"value {shown!r} from elsewhere is outside the slider's range")
            return
        self._syncing = True
        try:
            self.control.value = shown
        finally:
            self._syncing = False
        self._place_slider(shown)

    def set_disabled(self, disabled: bool) -> None:
        for w in (self.control, self.slider, self.none_toggle):
            if w is not None and hasattr(w, "disabled"):
                w.disabled = disabled
        if not disabled:
            self._sync_none()

    def set_error(self, message: str | None) -> None:
        self.error.value = (
            f"<span style='color:#c00'>&#9888; {html.escape(message)}</span>" if message else ""
        )

    def set_note(self, message: str | None) -> None:
        self.note.value = (
            f"<span style='color:#b60'>{html.escape(message)}</span>" if message else ""
        )


def _refuse_read(_: Any) -> Any:
    raise ValueError("read-only field")


def _short_repr(value: Any, limit: int = 120) -> str:
    r = repr(value)
    return r if len(r) <= limit else r[: limit - 3] + "..."


class Group:
    """A nested dataclass: a titled box of child rows (children submit dotted paths)."""

    def __init__(self, spec: FieldSpec, rows: list[W.Widget]) -> None:
        self.spec, self.path = spec, spec.path
        title = f"<b>{html.escape(spec.name)}</b> <small style='color:#666'>{html.escape(spec.type_display)}"
        title += f" &mdash; {html.escape(spec.description)}" if spec.description else ""
        self.widget = W.VBox(
            [W.HTML(title + "</small>"), W.VBox(rows, layout=W.Layout(margin="0 0 0 20px"))],
            layout=W.Layout(border="1px solid #ddd", padding="4px", margin="2px 0 6px 0"),
        )
