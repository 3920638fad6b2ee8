"""One editor per settings field: the widget, how to read it and how to write it.

Private helper of :mod:`ezmsg_lab.widgets.settings_form`. An editor never sends anything;
the form reads it, validates with :func:`coerce_field` and calls the user's callback.
"""

from __future__ import annotations

import dataclasses
import enum
import html
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as W
import numpy as np

from ..model.settings_schema import FieldSpec

_SIMPLE = ("float", "int", "bool", "str", "literal", "enum")
_LABEL = W.Layout(width="150px", min_width="150px")


def _step(span: float) -> float:
    """A 1-2-5 step giving roughly a thousand slider positions."""
    raw = span / 1000.0
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)


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
        label.tooltip = f"{spec.type_display}" + (f": {spec.description}" if spec.description else "")  # fmt: skip
        extra = [self.none_toggle] if self.none_toggle else []
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
        if k in ("float", "int") and isinstance(value, (int, float)) and not isinstance(value, bool):  # fmt: skip
            inside = b is not None and b.finite and b.contains(value) and math.isfinite(value)
            if k == "float" and inside and b.lo > 0 and b.hi / b.lo >= 1000:
                # decades of range (a cutoff from 0.1 Hz to 25 kHz): a log slider
                w = W.FloatLogSlider(value=value, base=10, min=math.log10(b.lo), max=math.log10(b.hi), step=0.001, readout_format=".4g", continuous_update=continuous)  # fmt: skip
            elif k == "float" and inside:
                w = W.FloatSlider(value=value, min=b.lo, max=b.hi, step=_step(b.hi - b.lo), readout_format=".4g", continuous_update=continuous)  # fmt: skip
            elif k == "int" and inside and b.hi - b.lo <= 100_000:
                w = W.IntSlider(value=value, min=int(math.ceil(b.lo)), max=int(b.hi), continuous_update=continuous)  # fmt: skip
            elif k == "float":
                w = W.FloatText(value=value, continuous_update=continuous)
            else:
                w = W.IntText(value=value, continuous_update=continuous)
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

    def _json(self, spec: FieldSpec, value: Any) -> tuple[W.Widget, Callable, Callable]:
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

    def _read_only(self, value: Any, reason: str) -> tuple[W.Widget, Callable, Callable]:
        self.read_only_reason = reason
        r = html.escape(_short_repr(value))
        w = W.HTML(f"<code>{r}</code>")
        return w, _refuse_read, lambda v: f"<code>{html.escape(_short_repr(v))}</code>"

    # ---------------------------------------------------------------------------- state
    def _sync_none(self, _change: Any = None) -> None:
        if self.none_toggle is not None and hasattr(self.control, "disabled"):
            self.control.disabled = self.none_toggle.value

    @property
    def editable(self) -> bool:
        return self.read_only_reason is None

    def read(self) -> Any:
        """The raw value the user entered (ValueError when it cannot even be parsed)."""
        if self.none_toggle is not None and self.none_toggle.value:
            return None
        return self._to_py(self.control.value)

    def write(self, value: Any) -> None:
        """Show ``value`` (the caller suppresses change events)."""
        if self.none_toggle is not None:
            self.none_toggle.value = value is None
            if value is None:
                return
        shown = self._from_py(value)
        if isinstance(self.control, (W.IntSlider, W.FloatSlider, W.FloatLogSlider)):
            lo, hi = self.control.min, self.control.max
            if isinstance(self.control, W.FloatLogSlider):
                lo, hi = self.control.base**lo, self.control.base**hi
            if not lo <= shown <= hi:  # a slider would clamp silently: show it as an error
                self.set_error(f"value {shown!r} from elsewhere is outside the slider's range")
                return
        self.control.value = shown

    def set_disabled(self, disabled: bool) -> None:
        for w in (self.control, self.none_toggle):
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
        title = f"<b>{html.escape(spec.name)}</b> <small style='color:#666'>{html.escape(spec.type_display)}"  # fmt: skip
        title += f" &mdash; {html.escape(spec.description)}" if spec.description else ""
        self.widget = W.VBox(
            [W.HTML(title + "</small>"), W.VBox(rows, layout=W.Layout(margin="0 0 0 20px"))],
            layout=W.Layout(border="1px solid #ddd", padding="4px", margin="2px 0 6px 0"),
        )
