"""Validate and coerce settings updates on the Lab side, before anything reaches ezmsg.

ezmsg 3.9.0 applies raw values (``gain="abc"`` crashes the unit on every message) and 3.10
checks types but not bounds; both lose enum identity across modules. Everything the Lab
sends goes through :func:`build_update`: every field is validated first, then one new
settings object is built with ``dataclasses.replace``, so several fields change all or
nothing and the current object is never mutated.

Coercion rules (close to ezmsg 3.10's pydantic lax mode, stricter where lax mode hides
mistakes):

- float: ints, floats, numpy scalars and numeric strings (``"45"`` becomes ``45.0``, as
  3.10 does). Bools are refused: ``True`` for a cutoff is a slip, not a number.
- int: ints, numpy integers, integral floats (``3.0``) and integral numeric strings.
  Non-integral floats and bools are refused (3.10 turns ``True`` into 1; we do not).
- bounds: ``ge``/``le``/``gt``/``lt``/``min``/``max`` from field metadata (or
  ``Annotated``) are enforced; NaN is never within bounds.
- bool: ``True``/``False``, numpy bools and the strings ``"true"``/``"false"`` (any case,
  what a JSON box or a URL gives). ``0``/``1`` are refused as ambiguous.
- str: strings only; numbers are not stringified silently.
- Literal: exactly one of the choices (``1`` does not match ``True`` nor ``"1"``).
- Enum: a member of the unit's own class; a member of a same-named enum from another
  module (translated by name); a member name (``"HAMMING"``); or a value (``"hamming"``).
- Optional: ``None``; unions: an exact-type member first, then the first that accepts.
- nested dataclass: an instance (its fields are validated too) or a dict of fields;
  a dict changes only the fields it names and keeps the others.
- tuple/list/dict: elements are coerced by their annotated types; strings are refused.
- arrays: anything ``np.asarray`` turns into a numeric array; ``NDArray[dtype]`` is cast
  when the cast is safe. ``npt.ArrayLike`` keeps the value as given once checked.

Example
-------
>>> from ezmsg_lab.demo.units import FilterSettings
>>> from ezmsg_lab.model.settings_schema import spec_from_class
>>> spec = spec_from_class(FilterSettings)
>>> new = build_update(spec, FilterSettings(), {"cutoff_hz": "45", "window": "HANN"})
>>> new.cutoff_hz, new.window.name
(45.0, 'HANN')
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import math
import reprlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..errors import LabError
from .paths import get_path
from .settings_spec import INIT_FALSE_REASON, FieldSpec, SettingsSpec

__all__ = [
    "SettingsValidationError",
    "build_update",
    "coerce_field",
    "rebuild",
    "validate_updates",
]

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlist = 6


def _show(value: Any) -> str:
    return _repr.repr(value)


class SettingsValidationError(LabError, ValueError):
    """A settings update was refused before anything was sent.

    Attributes
    ----------
    unit : str
        Address of the unit (may be empty when validating without a Lab).
    field : str
        Dotted path of the (first) refused field.
    value : Any
        The value given for it.
    rule : str
        The rule it broke, e.g. ``">= 0.1 and <= 499"`` or ``"unknown field"``.
    hint : str
        What to do instead.
    errors : list of SettingsValidationError
        Every refused field of the update (this one first).
    """

    def __init__(
        self,
        *,
        unit: str,
        field: str,
        value: Any,
        rule: str,
        hint: str = "",
        errors: list[SettingsValidationError] | None = None,
    ) -> None:
        self.unit, self.field, self.value, self.rule, self.hint = unit, field, value, rule, hint
        self.errors = errors or [self]
        where = f"{unit}: " if unit else ""
        line = f"{where}{field} = {_show(value)} refused: {rule}." + (f" {hint}" if hint else "")
        if len(self.errors) > 1:
            line = f"{where}{len(self.errors)} fields refused, nothing was sent:\n" + "\n".join(
                f"  - {e.field} = {_show(e.value)}: {e.rule}." + (f" {e.hint}" if e.hint else "")
                for e in self.errors
            )
        elif unit:
            line += " Nothing was sent."
        super().__init__(line)


class _Refusal(Exception):
    """Internal: one refused value; wrapped into SettingsValidationError with the unit."""

    def __init__(self, path: str, value: Any, rule: str, hint: str = "") -> None:
        super().__init__(rule)
        self.path, self.value, self.rule, self.hint = path, value, rule, hint


def _strict_eq(a: Any, b: Any) -> bool:
    """Equality that keeps bools, numbers and strings apart (``True != 1 != "1"``)."""
    if isinstance(a, (bool, np.bool_)) != isinstance(b, (bool, np.bool_)):
        return False
    if isinstance(a, str) != isinstance(b, str):
        return False
    try:
        return bool(a == b)
    except Exception:  # arrays and odd __eq__: not a match
        return False


def _check_bounds(spec: FieldSpec, x: float | int, original: Any) -> None:
    if spec.bounds is not None and not spec.bounds.contains(x):
        raise _Refusal(
            spec.path, original, spec.bounds.describe(), "Pick a value inside the bounds."
        )


# Text numbers may carry spaces, tabs and newlines around them (a pasted value), never
# control characters: str.strip() would drop "\x1f" and take "0\x1f" for 0.
_BLANKS = " \t\r\n"


def _to_float(spec: FieldSpec, v: Any) -> float:
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v.item()
    if isinstance(v, (bool, np.bool_)):
        raise _Refusal(spec.path, v, "a bool is not a number", "Give a float such as 1.0.")
    if isinstance(v, (int, float, np.integer, np.floating)):
        x = float(v)
    elif isinstance(v, str):
        try:
            x = float(v.strip(_BLANKS))
        except ValueError:
            raise _Refusal(spec.path, v, "not a number", "Give a float such as 2.5.") from None
    else:
        raise _Refusal(spec.path, v, f"expects a float, got {type(v).__name__}", "Give a number.")
    _check_bounds(spec, x, v)
    return x


def _to_int(spec: FieldSpec, v: Any) -> int:
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v.item()
    if isinstance(v, (bool, np.bool_)):
        raise _Refusal(spec.path, v, "a bool is not an integer", "Give an int such as 1.")
    if isinstance(v, str):
        try:
            t = v.strip(_BLANKS)
            v = float(t) if any(c in t for c in ".eE") else int(t)
        except ValueError:
            raise _Refusal(spec.path, v, "not an integer", "Give an int such as 3.") from None
    if isinstance(v, (int, np.integer)):
        x = int(v)
    elif isinstance(v, (float, np.floating)):
        if not math.isfinite(v):
            raise _Refusal(spec.path, v, "not a finite number", "Give an int such as 3.")
        if not float(v).is_integer():
            raise _Refusal(spec.path, v, "not a whole number", f"Round it, e.g. {round(v)}.")
        x = int(v)
    else:
        raise _Refusal(spec.path, v, f"expects an int, got {type(v).__name__}", "Give an int.")
    _check_bounds(spec, x, v)
    return x


def _to_bool(spec: FieldSpec, v: Any) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    raise _Refusal(spec.path, v, f"expects a bool, got {type(v).__name__}", "Give True or False.")


def _to_choice(spec: FieldSpec, v: Any) -> Any:
    for c in spec.choices:
        if _strict_eq(c.value, v):
            return c.value
    names = ", ".join(repr(c.value) for c in spec.choices)
    raise _Refusal(spec.path, v, f"not one of {names}", "Pick one of the choices.")


def _to_enum(spec: FieldSpec, v: Any) -> Any:
    tp = spec.py_type
    cls = tp if isinstance(tp, type) and issubclass(tp, enum.Enum) else None
    if cls is None:  # class not importable here: members go by value
        if isinstance(v, enum.Enum):
            v = v.value
        if spec.choices:  # known from ezmsg 3.10's JSON schema
            return _to_choice(spec, v)
        if spec.ref is not None and isinstance(v, (str, int, float)) and not isinstance(v, bool):
            # Its values are unknown here (ezmsg 3.9 lists none); the unit's process turns
            # the value into its own member and refuses one that is not, changing nothing.
            return v
        raise _Refusal(
            spec.path,
            v,
            f"expects a value of {spec.type_display}",
            "Give the member's value, as lab.settings() shows it.",
        )
    if isinstance(v, cls):
        return v
    if isinstance(v, enum.Enum) and type(v).__name__ == cls.__name__:
        # A same-named enum from another module (a notebook's copy): rough edge 6.
        if v.name in cls.__members__:
            return cls[v.name]
    elif isinstance(v, str) and v in cls.__members__:
        return cls[v]
    else:
        for m in cls:
            if _strict_eq(m.value, v):
                return m
    names = ", ".join(cls.__members__)
    values = ", ".join(repr(m.value) for m in cls)
    raise _Refusal(
        spec.path, v, f"not a {cls.__name__} member", f"Use a name ({names}) or a value ({values})."
    )


def _exact(spec: FieldSpec, v: Any) -> bool:
    """Whether ``v`` already has this union member's type (so no coercion is needed)."""
    k, t = spec.kind, spec.py_type
    if k in ("float", "int", "bool", "str"):
        return type(v) is {"float": float, "int": int, "bool": bool, "str": str}[k]
    if k == "literal":
        return any(_strict_eq(c.value, v) for c in spec.choices)
    if k in ("enum", "dataclass"):
        return isinstance(t, type) and isinstance(v, t)
    if k == "tuple":
        return isinstance(v, tuple)
    if k == "list":
        return isinstance(v, list)
    if k == "array":
        return isinstance(v, np.ndarray)
    return False


def _seq(spec: FieldSpec, v: Any, what: str) -> list[Any]:
    if isinstance(v, (str, bytes, Mapping)) or not hasattr(v, "__iter__"):
        raise _Refusal(spec.path, v, f"expects a {what}, got {type(v).__name__}", "Give a list.")
    return list(v)


def _to_tuple(spec: FieldSpec, v: Any, current: Any) -> tuple[Any, ...]:
    items = _seq(spec, v, "tuple")
    if not spec.children:
        return tuple(items)
    if spec.variadic:
        return tuple(_coerce(spec.children[0], x, None) for x in items)
    if len(items) != len(spec.children):
        raise _Refusal(
            spec.path,
            v,
            f"needs exactly {len(spec.children)} items, got {len(items)}",
            f"Give {len(spec.children)} values like {spec.type_display}.",
        )
    return tuple(_coerce(c, x, None) for c, x in zip(spec.children, items, strict=True))


def _to_list(spec: FieldSpec, v: Any) -> Any:
    items = _seq(spec, v, "list")
    if spec.children:
        items = [_coerce(spec.children[0], x, None) for x in items]
    container = getattr(spec.py_type, "__origin__", spec.py_type)
    return container(items) if container in (set, frozenset) else items


def _to_dict(spec: FieldSpec, v: Any) -> dict[Any, Any]:
    if not isinstance(v, Mapping):
        raise _Refusal(spec.path, v, f"expects a dict, got {type(v).__name__}", "Give a dict.")
    if len(spec.children) != 2:
        return dict(v)
    ks, vs = spec.children
    return {_coerce(ks, k, None): _coerce(vs, x, None) for k, x in v.items()}


def _to_array(spec: FieldSpec, v: Any, current: Any) -> Any:
    if v is None or isinstance(v, (str, bytes, Mapping)):
        raise _Refusal(spec.path, v, "not array-like", "Give a list of numbers or an ndarray.")
    try:
        arr = np.asarray(v)
    except (ValueError, TypeError) as exc:
        raise _Refusal(
            spec.path, v, f"not array-like ({exc})", "Rows must have equal lengths."
        ) from None
    if arr.dtype.kind not in "biufc":
        raise _Refusal(spec.path, v, f"array of dtype {arr.dtype} is not numeric", "Give numbers.")
    if spec.array_like:
        return v  # the unit converts ArrayLike itself; keep what the user gave
    if arr.ndim == 0:
        raise _Refusal(spec.path, v, "a scalar is not an array", "Wrap it in a list: [x].")
    target = spec.dtype
    if target is None and isinstance(current, np.ndarray) and current.dtype.kind in "biufc":
        # keep the unit's dtype when that loses nothing (ints into a float array)
        target = current.dtype if np.can_cast(arr.dtype, current.dtype, "safe") else None
    if target is not None:
        if not np.can_cast(arr.dtype, target, "same_kind"):
            raise _Refusal(
                spec.path, v, f"dtype {arr.dtype} cannot become {target}", f"Give {target} values."
            )
        arr = arr.astype(target, copy=False)
    return arr


def _to_dataclass(spec: FieldSpec, v: Any, current: Any) -> Any:
    cls = spec.py_type
    if not isinstance(cls, type):
        first = next((c.path for c in spec.children if c.editable), f"{spec.path}.<field>")
        what = (
            f"its class {spec.ref} cannot be imported here"
            if spec.ref
            else "nested settings cannot be built here"
        )
        raise _Refusal(
            spec.path, v, what, f"Set its fields one by one by dotted path, e.g. {first}."
        )
    init = [c for c in spec.children if c.reason != INIT_FALSE_REASON]
    base: Any = None  # the unit's current value, when a dict only updates some fields
    if (
        dataclasses.is_dataclass(v)
        and not isinstance(v, type)
        and (isinstance(v, cls) or type(v).__name__ == cls.__name__)
    ):
        items = {f.name: getattr(v, f.name) for f in dataclasses.fields(v) if f.init}
    elif isinstance(v, Mapping):
        items = dict(v)
        base = current if isinstance(current, cls) else None
    else:
        raise _Refusal(
            spec.path,
            v,
            f"expects a {cls.__name__} or a dict",
            f"Give {cls.__name__}(...) or a dict of its fields.",
        )
    names = [c.name for c in init]
    for key in items:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=3, cutoff=0.5)
            hint = f"Did you mean {', '.join(close)}?" if close else f"Fields: {', '.join(names)}."
            raise _Refusal(f"{spec.path}.{key}", items[key], "unknown field", hint)
    coerced = {
        c.name: _coerce(c, items[c.name], getattr(base, c.name, None))
        for c in init
        if c.name in items
    }
    if isinstance(v, cls) and all(coerced[k] is items[k] for k in coerced):
        return v
    missing = [c.name for c in init if c.required and c.name not in coerced and base is None]
    if missing:
        raise _Refusal(
            spec.path, v, f"missing required {', '.join(missing)}", "Give every required field."
        )
    try:
        return dataclasses.replace(base, **coerced) if base is not None else cls(**coerced)
    except Exception as exc:  # the class's own __post_init__ checks
        raise _Refusal(
            spec.path, v, f"{cls.__name__} refused it ({exc})", "Fix the value the class names."
        ) from None


def _to_str(spec: FieldSpec, v: Any, current: Any) -> str:
    if isinstance(v, str):
        return str(v)
    raise _Refusal(spec.path, v, f"expects a str, got {type(v).__name__}", 'Quote it: "...".')


def _to_optional(spec: FieldSpec, v: Any, current: Any) -> Any:
    return _coerce(spec.children[0], v, current)


def _to_union(spec: FieldSpec, v: Any, current: Any) -> Any:
    """The first member that takes ``v``: members ``v`` already matches exactly go first."""
    for member in [m for m in spec.children if _exact(m, v)] + list(spec.children):
        try:
            return _coerce(member, v, current)
        except _Refusal:
            continue
    raise _Refusal(
        spec.path,
        v,
        f"matches no member of {spec.type_display}",
        "Give a value of one of those types.",
    )


def _to_callable(spec: FieldSpec, v: Any, current: Any) -> Any:
    if callable(v):
        return v
    raise _Refusal(spec.path, v, "not callable", "Pass a function.")


def _to_any(spec: FieldSpec, v: Any, current: Any) -> Any:
    """``any``: Any/object accept everything; a plain class needs an instance of it;
    an annotation we could not resolve gets nothing unchecked."""
    t = spec.py_type
    if t is None:
        raise _Refusal(
            spec.path,
            v,
            spec.reason or "type unknown here",
            "It cannot be checked, so it is not sent.",
        )
    if isinstance(t, type) and t not in (object, Any) and not isinstance(v, t):
        raise _Refusal(
            spec.path, v, f"expects a {t.__qualname__}", f"Give a {t.__qualname__} instance."
        )
    return v


_Coercer = Callable[[FieldSpec, Any, Any], Any]

# One coercer per field kind, each called as (spec, value, current); a kind not listed
# (``any``) goes to _to_any.
_COERCERS: dict[str, _Coercer] = {
    "float": lambda spec, v, current: _to_float(spec, v),
    "int": lambda spec, v, current: _to_int(spec, v),
    "bool": lambda spec, v, current: _to_bool(spec, v),
    "str": _to_str,
    "literal": lambda spec, v, current: _to_choice(spec, v),
    "enum": lambda spec, v, current: _to_enum(spec, v),
    "optional": _to_optional,
    "union": _to_union,
    "dataclass": _to_dataclass,
    "tuple": _to_tuple,
    "list": lambda spec, v, current: _to_list(spec, v),
    "dict": lambda spec, v, current: _to_dict(spec, v),
    "array": _to_array,
    "callable": _to_callable,
}


def _coerce(spec: FieldSpec, v: Any, current: Any) -> Any:
    if v is None:
        if spec.nullable or (spec.kind == "any" and spec.py_type is not None):
            return None
        raise _Refusal(spec.path, v, "None is not allowed", f"Give a {spec.type_display}.")
    return _COERCERS.get(spec.kind, _to_any)(spec, v, current)


def coerce_field(spec: FieldSpec, value: Any, *, unit: str = "", current: Any = None) -> Any:
    """Validate and coerce one value for ``spec``; raise :class:`SettingsValidationError`.

    ``current`` is the field's present value; a dict for a nested dataclass is merged
    over it, and an array keeps its dtype when that is safe.
    """
    try:
        return _coerce(spec, value, current)
    except _Refusal as r:
        raise SettingsValidationError(
            unit=unit, field=r.path, value=r.value, rule=r.rule, hint=r.hint
        ) from None


def validate_updates(
    spec: SettingsSpec, current: Any, updates: Mapping[str, Any], *, unit: str = ""
) -> dict[str, Any]:
    """Validate every update; return ``{dotted path: coerced value}`` or raise for all.

    Use this directly when the settings class is not importable here (``current`` may then
    be None or the snapshot's structured dict); otherwise use :func:`build_update`.
    """
    errors: list[SettingsValidationError] = []
    out: dict[str, Any] = {}
    paths = spec.paths()

    def refuse(path: str, value: Any, rule: str, hint: str) -> None:
        errors.append(
            SettingsValidationError(unit=unit, field=path, value=value, rule=rule, hint=hint)
        )

    for path, value in updates.items():
        try:
            fs = spec.field(str(path))
        except KeyError:
            close = difflib.get_close_matches(str(path), paths, n=3, cutoff=0.5)
            hint = f"Did you mean {', '.join(close)}?" if close else f"Fields: {', '.join(paths)}."
            refuse(str(path), value, "unknown field", hint)
            continue
        parent = path.rpartition(".")[0]
        if parent and parent in updates:
            refuse(path, value, f"{parent} is also set", f"Set {parent} or {path}, not both.")
            continue
        if parent and current is not None and get_path(current, parent) is None:
            refuse(path, value, f"{parent} is None", f"Set {parent} as a whole first.")
            continue
        if fs.reason == INIT_FALSE_REASON:
            refuse(path, value, fs.reason, "It cannot be set.")
            continue
        try:
            cur = get_path(current, path) if current is not None else None
            out[path] = _coerce(fs, value, cur)
        except _Refusal as r:
            refuse(r.path, r.value, r.rule, r.hint)
    if errors:
        first = errors[0]
        raise SettingsValidationError(
            unit=unit,
            field=first.field,
            value=first.value,
            rule=first.rule,
            hint=first.hint,
            errors=errors,
        )
    return out


def rebuild(obj: Any, updates: Mapping[str, Any]) -> Any:
    """A copy of the settings dataclass ``obj`` with ``updates`` ({dotted path: value})
    applied, nested dataclasses copied too (``dataclasses.replace`` all the way down);
    no validation: the values are taken as they are."""
    direct: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for path, value in updates.items():
        head, _, rest = path.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[head] = value
    for head, sub in nested.items():
        direct[head] = rebuild(getattr(obj, head), sub)
    return dataclasses.replace(obj, **direct)


def build_update(
    spec: SettingsSpec, current: Any, updates: Mapping[str, Any], *, unit: str = ""
) -> Any:
    """Validate ``updates`` (dotted paths allowed) and build ONE new settings object.

    All fields are checked before anything is built; any refusal raises
    :class:`SettingsValidationError` listing every refused field, and ``current`` is never
    mutated.

    Example
    -------
    >>> new = build_update(spec, current, {"tone.freq_hz": 12, "noise_std": 0})  # doctest: +SKIP
    """
    if current is None or not dataclasses.is_dataclass(current):
        raise TypeError(
            f"build_update needs the current settings dataclass, got {type(current).__name__}; "
            "use validate_updates when the settings class is not importable"
        )
    coerced = validate_updates(spec, current, updates, unit=unit)
    try:
        return rebuild(current, coerced)
    except Exception as exc:  # __post_init__ of the settings class refused the combination
        path = next(iter(coerced), "")
        raise SettingsValidationError(
            unit=unit,
            field=", ".join(coerced) or path,
            value=dict(updates),
            rule=f"{type(current).__name__} refused the combination ({exc})",
            hint="Change the values the class names.",
        ) from None
