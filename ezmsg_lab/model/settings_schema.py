"""A unit's settings as a tree of field specs: what each field accepts and how to edit it.

The tree is built from the settings *class* when it can be recovered (unpickled from the
settings snapshot), because the class knows what ezmsg's metadata loses: enum members
(rough edge 6), ``Literal`` choices under ``from __future__ import annotations``, nested
dataclasses, ``X | None`` and numpy annotations. When the class cannot be imported in this
kernel, the tree falls back to ezmsg's ``SettingsSchemaMetadata`` (field type strings,
bounds, choices) merged with 3.10's ``json_schema`` when present.

Example
-------
>>> from ezmsg_lab.demo.units import FilterSettings
>>> spec = spec_from_class(FilterSettings)
>>> spec.field("window").kind, [c.name for c in spec.field("window").choices]
('enum', ['RECTANGULAR', 'HANN', 'HAMMING', 'BLACKMAN'])
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import pickle
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .settings_pickle import read_structure

__all__ = [
    "Bounds",
    "Choice",
    "FieldKind",
    "FieldSpec",
    "SettingsSpec",
    "settings_class_from_snapshot",
    "settings_object_from_snapshot",
    "spec_from_class",
    "spec_from_metadata",
    "spec_from_snapshot",
    "structured_diff",
    "to_wire",
]

from .settings_spec import (
    _NONE_TYPE,
    INIT_FALSE_REASON,
    Bounds,
    Choice,
    FieldKind,
    FieldSpec,
    SettingsSpec,
)

# ---------------------------------------------------------------------------- snapshots


def settings_object_from_snapshot(value: Any) -> tuple[Any, str | None]:
    """Unpickle the settings object of a ``SettingsSnapshotValue``.

    Returns ``(obj, None)`` or ``(None, reason)``. The bytes come from the GraphServer the
    Lab is already trusting (ezmsg's protocol is pickle throughout).
    """
    raw = getattr(value, "serialized", None)
    if raw is None:
        return None, "the settings snapshot carries no serialized value"
    try:
        return pickle.loads(raw), None
    except (AttributeError, ModuleNotFoundError, ImportError) as exc:
        # Typically a class defined in another program's __main__ (rough edge 15).
        return None, f"the settings class cannot be imported in this kernel ({exc})"
    except Exception as exc:  # unpickling runs arbitrary reducers: report, never crash
        return None, f"the settings value cannot be unpickled ({type(exc).__name__}: {exc})"


def settings_class_from_snapshot(value: Any) -> tuple[type | None, str | None]:
    """The settings class of a ``SettingsSnapshotValue``, or ``(None, reason)``.

    Example
    -------
    >>> cls, reason = settings_class_from_snapshot(snapshot[address])  # doctest: +SKIP
    """
    obj, reason = settings_object_from_snapshot(value)
    if obj is None:
        return None, reason
    return type(obj), None


def spec_from_snapshot(value: Any) -> SettingsSpec | None:
    """The best spec for a snapshot value: from the class, else from its metadata.

    Without the class, the metadata spec is refined from the structure of the pickled
    value (read without importing anything): enum fields, and the fields of nested
    dataclasses, which ezmsg's metadata does not describe.
    """
    schema = getattr(value, "settings_schema", None)
    cls, reason = settings_class_from_snapshot(value)
    if cls is not None and dataclasses.is_dataclass(cls):
        return spec_from_class(cls, json_schema=getattr(schema, "json_schema", None))
    if cls is not None:
        reason = f"{cls.__qualname__} is not a dataclass"
    if schema is None:
        return None
    spec = spec_from_metadata(schema, reason=reason)
    return refine_from_structure(
        spec,
        read_structure(getattr(value, "serialized", None)),
        getattr(schema, "json_schema", None),
    )


# ------------------------------------------------------------------------- from a class


def _type_display(tp: Any) -> str:
    if _is_array_like(tp):
        return "ArrayLike"
    if typing.get_origin(tp) is np.ndarray:
        dt = typing.get_args(typing.get_args(tp)[1]) if len(typing.get_args(tp)) == 2 else ()
        return f"NDArray[{getattr(dt[0], '__name__', dt[0])}]" if dt else "ndarray"
    if isinstance(tp, type) and tp.__module__ == "builtins":
        return tp.__qualname__
    if isinstance(tp, type):
        return tp.__qualname__
    return re.sub(r"\b(typing|builtins|numpy\.typing|collections\.abc)\.", "", str(tp))


# (attribute of an annotated_types constraint, side, inclusive)
_ANNOTATED_BOUNDS = (
    ("ge", "lo", True),
    ("gt", "lo", False),
    ("le", "hi", True),
    ("lt", "hi", False),
)


def _bounds_from(md: Mapping[str, Any], extras: tuple[Any, ...] = ()) -> Bounds | None:
    def num(key: str) -> float | None:
        v = md.get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    lo, hi = num("ge"), num("le")
    lo_inc = hi_inc = True
    if lo is None and num("gt") is not None:
        lo, lo_inc = num("gt"), False
    if lo is None:
        lo = num("min")
    if hi is None and num("lt") is not None:
        hi, hi_inc = num("lt"), False
    if hi is None:
        hi = num("max")
    for ex in extras:  # annotated_types.Ge / Gt / Le / Lt / Interval inside Annotated[...]
        for attr, side, inc in _ANNOTATED_BOUNDS:
            v = getattr(ex, attr, None)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if side == "lo":
                    lo, lo_inc = float(v), inc
                else:
                    hi, hi_inc = float(v), inc
    if lo is None and hi is None:
        return None
    return Bounds(lo, hi, lo_inc, hi_inc)


def _is_array_like(tp: Any) -> bool:
    try:
        return bool(tp == npt.ArrayLike)
    except Exception:  # exotic annotations may not support ==
        return False


def _is_type_alias(obj: Any) -> bool:
    # typing.TypeAliasType (``type X[T] = ...``, 3.12+) and typing_extensions' backport;
    # by name, so neither needs importing here.
    return type(obj).__name__ == "TypeAliasType" and hasattr(obj, "__value__")


def _unalias(tp: Any) -> Any:
    """What a PEP 695 type alias stands for, with its parameters substituted.

    numpy >= 2.5 on Python >= 3.12 defines ``npt.NDArray`` as ``type NDArray[T] =
    ndarray[..., dtype[T]]``: ``NDArray[np.float64]`` then has the alias, not
    ``np.ndarray``, as its origin, and would lose its array kind and dtype.
    """
    for _ in range(16):  # aliases of aliases; a bound on pathological self-references
        origin = typing.get_origin(tp)
        if _is_type_alias(origin):
            value, args = origin.__value__, typing.get_args(tp)
            try:
                tp = value[args] if getattr(origin, "__type_params__", ()) else value
            except TypeError:  # a value that cannot be subscripted: keep it unparametrised
                tp = value
        elif _is_type_alias(tp):
            tp = tp.__value__
        else:
            break
    return tp


@dataclasses.dataclass(frozen=True)
class _Annotation:
    """One annotation being specced: its type (aliases and ``Annotated`` unwrapped), where
    it sits, the bounds it carries and the dataclasses already open above it."""

    tp: Any
    name: str
    path: str
    bounds: Bounds | None
    seen: frozenset[type]
    base: dict[str, Any]  # the FieldSpec arguments every kind shares

    @property
    def origin(self) -> Any:
        return typing.get_origin(self.tp)

    @property
    def args(self) -> tuple[Any, ...]:
        return typing.get_args(self.tp)

    def child(self, tp: Any, name: str, path: str, *, bounds: Bounds | None = None) -> FieldSpec:
        return _spec_for(tp, name, path, bounds=bounds, seen=self.seen)


def _annotation(
    tp: Any, name: str, path: str, bounds: Bounds | None, seen: frozenset[type]
) -> _Annotation:
    if not _is_array_like(tp):  # npt.ArrayLike is itself an alias with numpy >= 2.5
        tp = _unalias(tp)
    base = {"name": name, "path": path, "type_display": _type_display(tp), "py_type": tp}
    if typing.get_origin(tp) is typing.Annotated:
        tp, *rest = typing.get_args(tp)
        tp = tp if _is_array_like(tp) else _unalias(tp)
        bounds = _bounds_from({}, tuple(rest)) or bounds
        base["py_type"] = tp
    return _Annotation(tp, name, path, bounds, seen, base)


def _scalar_spec(a: _Annotation) -> FieldSpec | None:
    tp, base = a.tp, a.base
    if tp is Any or tp is object:
        return FieldSpec(
            **base,
            kind="any",
            editable=False,
            reason="typed Any: no safe widget; set it from a cell",
        )
    if _is_array_like(tp):
        return FieldSpec(**base, kind="array", array_like=True)
    if tp is bool:
        return FieldSpec(**base, kind="bool")
    if tp is int:
        return FieldSpec(**base, kind="int", bounds=a.bounds)
    if tp is float:
        return FieldSpec(**base, kind="float", bounds=a.bounds)
    if tp is str:
        return FieldSpec(**base, kind="str")
    return None


def _choice_spec(a: _Annotation) -> FieldSpec | None:
    tp = a.tp
    if a.origin is Literal:
        return FieldSpec(**a.base, kind="literal", choices=tuple(Choice(str(x), x) for x in a.args))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return FieldSpec(**a.base, kind="enum", choices=tuple(Choice(m.name, m) for m in tp))
    return None


def _union_spec(a: _Annotation) -> FieldSpec | None:
    if a.origin not in (typing.Union, types.UnionType):
        return None
    base, args = dict(a.base), a.args
    nullable = _NONE_TYPE in args
    members = [x for x in args if x is not _NONE_TYPE]
    kids = tuple(a.child(x, a.name, a.path, bounds=a.bounds) for x in members)
    array_like = set(typing.get_args(npt.ArrayLike))
    if array_like and array_like.issubset(members):
        # ``npt.ArrayLike | None`` flattens into one big Union: fold it back
        rest = [x for x in members if x not in array_like]
        kids = (a.child(npt.ArrayLike, a.name, a.path),) + tuple(
            a.child(x, a.name, a.path, bounds=a.bounds) for x in rest
        )
        base["type_display"] = "ArrayLike" + (" | None" if nullable else "")
    if len(kids) == 1:
        return FieldSpec(**base, kind="optional", nullable=True, children=kids, bounds=a.bounds)
    return FieldSpec(**base, kind="union", nullable=nullable, children=kids, bounds=a.bounds)


def _dataclass_spec(a: _Annotation) -> FieldSpec | None:
    tp = a.tp
    if not (isinstance(tp, type) and dataclasses.is_dataclass(tp)):
        return None
    if tp in a.seen:
        return FieldSpec(**a.base, kind="dataclass", editable=False, reason="recursive dataclass")
    kids = _fields_of(tp, prefix=a.path + ".", seen=a.seen | {tp})
    return FieldSpec(**a.base, kind="dataclass", children=kids)


def _ndarray_spec(a: _Annotation) -> FieldSpec | None:
    if not (a.tp is np.ndarray or a.origin is np.ndarray):
        return None
    args = a.args
    dtype = None
    if len(args) == 2 and typing.get_args(args[1]):
        try:
            dtype = np.dtype(typing.get_args(args[1])[0])
        except TypeError:  # np.dtype[Any] and friends: any dtype
            dtype = None
    return FieldSpec(**a.base, kind="array", dtype=dtype)


def _tuple_spec(a: _Annotation) -> FieldSpec | None:
    if not (a.tp is tuple or a.origin is tuple):
        return None
    name, path, args = a.name, a.path, a.args
    if not args:
        return FieldSpec(**a.base, kind="tuple", variadic=True, children=(_any_spec(name, path),))
    variadic = len(args) == 2 and args[1] is Ellipsis
    elems = args[:1] if variadic else args
    kids = tuple(
        a.child(x, f"{name}[{i}]", f"{path}[{i}]", bounds=a.bounds) for i, x in enumerate(elems)
    )
    return FieldSpec(**a.base, kind="tuple", variadic=variadic, children=kids)


def _list_spec(a: _Annotation) -> FieldSpec | None:
    if not (
        a.tp in (list, set, frozenset)
        or a.origin in (list, set, frozenset, collections.abc.Sequence)
    ):
        return None
    elem = a.args[0] if a.args else Any
    kid = a.child(elem, f"{a.name}[]", f"{a.path}[]", bounds=a.bounds)
    return FieldSpec(**a.base, kind="list", children=(kid,))


def _dict_spec(a: _Annotation) -> FieldSpec | None:
    if not (a.tp is dict or a.origin in (dict, Mapping, collections.abc.Mapping)):
        return None
    k, v = a.args if len(a.args) == 2 else (Any, Any)
    kids = (
        a.child(k, f"{a.name}.key", f"{a.path}.key"),
        a.child(v, f"{a.name}.value", f"{a.path}.value"),
    )
    return FieldSpec(**a.base, kind="dict", children=kids)


def _opaque_spec(a: _Annotation) -> FieldSpec:
    """A field no widget edits: a callable, an arbitrary class, an unsupported annotation."""
    tp, base = a.tp, a.base
    if tp is Callable or a.origin is Callable or (tp is typing.Callable):
        return FieldSpec(
            **base,
            kind="callable",
            editable=False,
            reason="a callable cannot be typed into a form; pass one from a cell with lab.set",
        )
    if isinstance(tp, type):
        return FieldSpec(
            **base,
            kind="any",
            editable=False,
            reason=f"no widget for {tp.__qualname__}; set it from a cell with an instance",
        )
    disp = base["type_display"]
    return FieldSpec(**base, kind="any", editable=False, reason=f"unsupported annotation {disp}")


# Tried in this order; each returns None for an annotation that is not its kind, and
# _opaque_spec takes what none of them does.
_SPEC_BUILDERS: tuple[Callable[[_Annotation], FieldSpec | None], ...] = (
    _scalar_spec,
    _choice_spec,
    _union_spec,
    _dataclass_spec,
    _ndarray_spec,
    _tuple_spec,
    _list_spec,
    _dict_spec,
)


def _spec_for(
    tp: Any,
    name: str,
    path: str,
    *,
    bounds: Bounds | None = None,
    seen: frozenset[type] = frozenset(),
) -> FieldSpec:
    """The spec of one annotation (without field-level defaults and description)."""
    a = _annotation(tp, name, path, bounds, seen)
    for build in _SPEC_BUILDERS:
        spec = build(a)
        if spec is not None:
            return spec
    return _opaque_spec(a)


def _any_spec(name: str, path: str) -> FieldSpec:
    return FieldSpec(name=name, path=path, kind="any", type_display="Any", py_type=Any)


def _fields_of(
    cls: type, *, prefix: str = "", seen: frozenset[type] = frozenset()
) -> tuple[FieldSpec, ...]:
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception:  # an unresolvable string annotation: resolve field by field below
        hints = {}
    out = []
    for f in dataclasses.fields(cls):
        path = prefix + f.name
        md = f.metadata if isinstance(f.metadata, Mapping) else {}
        tp = hints.get(f.name, f.type)
        if isinstance(tp, str):
            tp = _resolve_string(tp, cls)
        if isinstance(tp, str):
            spec = FieldSpec(
                name=f.name,
                path=path,
                kind="any",
                type_display=tp,
                editable=False,
                reason=f"annotation {tp!r} cannot be resolved in this kernel",
            )
        else:
            spec = _spec_for(tp, f.name, path, bounds=_bounds_from(md), seen=seen)
        if isinstance(md.get("choices"), (list, tuple)) and spec.kind in ("str", "int", "float"):
            spec = dataclasses.replace(
                spec, kind="literal", choices=tuple(Choice(str(c), c) for c in md["choices"])
            )
        has_default, default = False, None
        if f.default is not dataclasses.MISSING:
            has_default, default = True, f.default
        elif f.default_factory is not dataclasses.MISSING:
            try:
                has_default, default = True, f.default_factory()
            except Exception:  # a factory that needs context: the field just has no preview
                has_default = False
        if not f.init:
            spec = dataclasses.replace(spec, editable=False, reason=INIT_FALSE_REASON)
        desc = md.get("description")
        out.append(
            dataclasses.replace(
                spec,
                required=not has_default,
                has_default=has_default,
                default=default,
                description=desc if isinstance(desc, str) else None,
                bounds=spec.bounds or _bounds_from(md),
            )
        )
    return tuple(out)


def _resolve_string(annotation: str, cls: type) -> Any:
    import sys

    ns = dict(vars(sys.modules.get(cls.__module__, object())))
    ns.setdefault("typing", typing)
    try:
        return eval(
            annotation, ns, dict(vars(cls))
        )  # the class's own module, as get_type_hints does
    except Exception:
        return annotation


def spec_from_class(cls: type, *, json_schema: Mapping[str, Any] | None = None) -> SettingsSpec:
    """Build the spec tree of a settings dataclass.

    ``json_schema`` (ezmsg 3.10) only fills descriptions the class does not declare; the
    class stays the authority on types, choices and bounds.
    """
    fields = _fields_of(cls, seen=frozenset({cls}))
    if json_schema:
        props = json_schema.get("properties") or {}
        fields = tuple(
            dataclasses.replace(f, description=props.get(f.name, {}).get("description"))
            if f.description is None and isinstance(props.get(f.name), Mapping)
            else f
            for f in fields
        )
    return SettingsSpec(type_name=f"{cls.__module__}.{cls.__qualname__}", cls=cls, fields=fields)


from ._settings_metadata import (  # noqa: E402  (keeps the builders above first)
    refine_from_structure,
    spec_from_metadata,
    structured_diff,
    to_wire,
)
