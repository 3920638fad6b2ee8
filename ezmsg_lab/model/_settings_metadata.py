"""Fallback spec from ezmsg's ``SettingsSchemaMetadata`` when the class is not importable.

Private helper of :mod:`ezmsg_lab.model.settings_schema` (re-exported there). The
metadata describes top-level fields only, by type strings; :func:`refine_from_structure`
adds what the pickled value's structure shows (enum fields, nested dataclasses) and
:func:`to_wire` turns a validated value into what is sent for such a field.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from .settings_changes import settings_equal
from .settings_pickle import ClassRef, Opaque, member_by_value
from .settings_spec import Bounds, Choice, FieldKind, FieldSpec, SettingsSpec

_SIMPLE = {"float": "float", "int": "int", "bool": "bool", "str": "str"}
_JSON_KIND = {"number": "float", "integer": "int", "boolean": "bool", "string": "str"}


def _split_top(s: str) -> list[str]:
    """Split ``a, b[c, d]`` at top-level commas or pipes."""
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch in ",|" and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return [p for p in out if p]


def _kind_from_string(s: str) -> tuple[FieldKind, bool, list[str]]:
    """(kind, nullable, member strings) of an ezmsg ``field_type`` string."""
    t = re.sub(r"\b(builtins|typing)\.", "", s.strip())
    m = re.fullmatch(r"(Optional|Union)\[(.*)\]", t)
    parts = _split_top(m.group(2)) if m else _split_top(t)
    if m and m.group(1) == "Optional":
        parts.append("None")
    nullable = any(p in ("None", "NoneType") for p in parts)
    members = [p for p in parts if p not in ("None", "NoneType")]
    if len(members) > 1:
        return "union", nullable, members
    one = members[0] if members else "Any"
    if one in _SIMPLE:
        kind: FieldKind = _SIMPLE[one]  # type: ignore[assignment]
    elif one.startswith("Literal["):
        kind = "literal"
    elif re.match(r"(tuple|Tuple)\b", one):
        kind = "tuple"
    elif re.match(r"(list|List|Sequence)\b", one):
        kind = "list"
    elif re.match(r"(dict|Dict|Mapping)\b", one):
        kind = "dict"
    elif any(w in one for w in ("ndarray", "NDArray", "ArrayLike")):
        kind = "array"
    elif re.match(r"(Callable|collections\.abc\.Callable)\b", one):
        kind = "callable"
    else:
        kind = "any"
    return kind, nullable, members


def _literal_from_string(s: str) -> list[Any] | None:
    """Choices of ``Literal['a', 'b']`` (ezmsg drops them under future annotations)."""
    try:
        vals = ast.literal_eval("[" + s[s.index("[") + 1 : s.rindex("]")] + "]")
    except (ValueError, SyntaxError):
        return None
    return vals if vals else None


def _json_choices(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> list[Any] | None:
    for option in [prop, *prop.get("anyOf", ())]:
        ref = option.get("$ref", "")
        target = defs.get(ref.rsplit("/", 1)[-1], {}) if ref else option
        if isinstance(target.get("enum"), list):
            return list(target["enum"])
    return None


def spec_from_metadata(schema: Any, *, reason: str | None = None) -> SettingsSpec:
    """Build a spec from ezmsg's ``SettingsSchemaMetadata`` (class not importable here).

    Types come from ``field_type`` strings (simple types, Optional/unions, Literal, tuples,
    arrays); 3.10's ``json_schema`` adds enum choices (sent by value: 3.10 turns the value
    into the unit's member) and nullability. Anything else is read-only with the reason.
    """
    js = getattr(schema, "json_schema", None) or {}
    props, defs = js.get("properties") or {}, js.get("$defs") or {}
    out = []
    for fm in schema.fields:
        prop = props.get(fm.name) or {}
        kind, nullable, members = _kind_from_string(fm.field_type or "")
        nullable = nullable or any(o.get("type") == "null" for o in prop.get("anyOf", ()))
        jtypes = [o.get("type") for o in [prop, *prop.get("anyOf", ())] if o.get("type") != "null"]
        if kind == "any" and len(jtypes) == 1 and jtypes[0] in _JSON_KIND:
            kind = _JSON_KIND[jtypes[0]]  # type: ignore[assignment]
        raw_choices = fm.choices or _json_choices(prop, defs)
        if not raw_choices and kind == "literal":
            raw_choices = _literal_from_string(members[0])
            if raw_choices is None:
                kind = "any"
        if raw_choices:
            enum_like = kind not in ("literal", "str", "int", "float")
            kind = "enum" if enum_like else "literal"
        b = fm.bounds
        bounds = Bounds(b[0], b[1]) if b and (b[0] is not None or b[1] is not None) else None
        editable, why = True, None
        if kind == "any":
            editable = False
            why = f"type {fm.field_type} is unknown here ({reason or 'class not importable'})"
        elif kind == "callable":
            editable, why = False, "a callable cannot be typed into a form"
        elif kind == "union":
            why = "union checked by ezmsg 3.10 only; edited as JSON"
        name = fm.name
        core = FieldSpec(
            name=name, path=name, kind=kind, type_display=fm.field_type or "?", bounds=bounds,
            py_type=Any if members == ["Any"] else None,
            choices=tuple(Choice(str(c), c) for c in raw_choices or ()),
            editable=editable, reason=why,
            children=tuple(
                FieldSpec(name=name, path=name, kind=_kind_from_string(m)[0], type_display=m)
                for m in members
            ) if kind == "union" else (),
        )  # fmt: skip
        if nullable and kind != "union":
            core = FieldSpec(
                name=name, path=name, kind="optional", type_display=fm.field_type,
                nullable=True, children=(core,), bounds=bounds, editable=editable, reason=why,
            )  # fmt: skip
        elif nullable:
            core = dataclasses.replace(core, nullable=True)
        desc = fm.description or prop.get("description")
        out.append(
            dataclasses.replace(
                core,
                required=bool(fm.required),
                has_default=not fm.required,
                default=fm.default,
                description=desc,
            )
        )
    return SettingsSpec(
        type_name=schema.settings_type,
        cls=None,
        fields=tuple(out),
        source="metadata",
        reason=reason,
    )


# ------------------------------------------------------------------- from the structure

_UNKNOWN_TYPE = "its type cannot be told from ezmsg's metadata or its current value here"


def _json_target(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    """The schema a property points to (through ``$ref`` or a one-member ``anyOf``)."""
    for option in [prop, *prop.get("anyOf", ())]:
        ref = option.get("$ref", "")
        if ref:
            return defs.get(ref.rsplit("/", 1)[-1], {})
    return prop


def _json_bounds(prop: Mapping[str, Any]) -> Bounds | None:
    lo, hi = prop.get("minimum"), prop.get("maximum")
    lo_inc = hi_inc = True
    if lo is None and prop.get("exclusiveMinimum") is not None:
        lo, lo_inc = prop["exclusiveMinimum"], False
    if hi is None and prop.get("exclusiveMaximum") is not None:
        hi, hi_inc = prop["exclusiveMaximum"], False
    if lo is None and hi is None:
        return None
    return Bounds(lo, hi, lo_inc, hi_inc)


def _member_spec(name: str, path: str, node: Opaque, choices: tuple[Choice, ...]) -> FieldSpec:
    return FieldSpec(
        name=name, path=path, kind="enum", type_display=str(node.cls), choices=choices,
        ref=node.cls,
    )  # fmt: skip


def _spec_from_value(
    name: str, path: str, value: Any, prop: Mapping[str, Any], defs: Mapping[str, Any]
) -> FieldSpec:
    """A nested field's spec from its current value (and 3.10's JSON schema, if any)."""
    target = _json_target(prop, defs)
    desc = prop.get("description") or target.get("description")
    base = {"name": name, "path": path, "description": desc if isinstance(desc, str) else None}
    json_choices = _json_choices(prop, defs)
    choices = tuple(Choice(str(c), c) for c in json_choices or ())
    if isinstance(value, Opaque) and value.is_member:
        return dataclasses.replace(_member_spec(name, path, value, choices), **base)
    if isinstance(value, Opaque) and value.is_record:
        props = target.get("properties") or {}
        kids = tuple(
            _spec_from_value(k, f"{path}.{k}", v, props.get(k) or {}, defs)
            for k, v in (value.state or {}).items()
            if not k.startswith("_")
        )
        return FieldSpec(**base, kind="dataclass", type_display=str(value.cls), children=kids, ref=value.cls)  # fmt: skip
    jtype = target.get("type")
    simple: dict[type, FieldKind] = {bool: "bool", int: "int", float: "float", str: "str"}
    kind = simple.get(type(value))
    if kind == "int" and jtype == "number":
        kind = "float"  # a float field that holds an int right now
    if kind is None and value is None and jtype in _JSON_KIND:
        inner = FieldSpec(**base, kind=_JSON_KIND[jtype], type_display=jtype)  # type: ignore[arg-type]
        return FieldSpec(**base, kind="optional", type_display=f"{jtype} | None", nullable=True, children=(inner,))  # fmt: skip
    if kind is None:
        return FieldSpec(**base, kind="any", type_display=type(value).__name__, editable=False, reason=_UNKNOWN_TYPE)  # fmt: skip
    if choices and kind in ("str", "int", "float"):
        return FieldSpec(**base, kind="literal", type_display=kind, choices=choices)
    return FieldSpec(**base, kind=kind, type_display=kind, bounds=_json_bounds(target))


def _refine_field(fs: FieldSpec, node: Any, prop: Mapping[str, Any], defs: Mapping[str, Any]) -> FieldSpec:  # fmt: skip
    core = fs.children[0] if fs.kind == "optional" and fs.children else fs
    if isinstance(node, Opaque) and node.is_member and core.kind in ("any", "enum"):
        new = dataclasses.replace(
            core, kind="enum", ref=node.cls, editable=True, reason=None,
            type_display=str(node.cls),
        )  # fmt: skip
    elif isinstance(node, Opaque) and node.is_record and core.kind == "any":
        refined = _spec_from_value(fs.name, fs.path, node, prop, defs)
        new = dataclasses.replace(refined, description=core.description)
    else:
        return fs
    if core is fs:
        return dataclasses.replace(
            new, required=fs.required, has_default=fs.has_default, default=fs.default,
            description=fs.description,
        )  # fmt: skip
    return dataclasses.replace(fs, children=(new,), editable=True, reason=None)


def refine_from_structure(
    spec: SettingsSpec, tree: Any, json_schema: Mapping[str, Any] | None = None
) -> SettingsSpec:
    """Add what the pickled value's structure shows to a metadata spec.

    A field holding a member (a class called with one value) becomes an enum sent by
    value (see :func:`to_wire`); a field holding a record becomes a nested dataclass
    whose fields can be set by dotted path, typed from their current values (and from
    ezmsg 3.10's JSON schema, which also gives their bounds and choices).
    """
    if not isinstance(tree, Opaque) or not tree.is_record:
        return spec
    state = tree.state or {}
    js = json_schema or {}
    props, defs = js.get("properties") or {}, js.get("$defs") or {}
    fields = tuple(
        _refine_field(fs, state[fs.name], props.get(fs.name) or {}, defs)
        if fs.name in state
        else fs
        for fs in spec.fields
    )
    return dataclasses.replace(spec, fields=fields)


def _enum_ref(fs: FieldSpec) -> ClassRef | None:
    core = fs.children[0] if fs.kind == "optional" and fs.children else fs
    return core.ref if core.kind == "enum" else None


def to_wire(fs: FieldSpec, value: Any) -> Any:
    """What to send for a validated ``value`` of field ``fs``.

    An enum field of a class known by name only gets a value that the unit's process
    unpickles into its own member (ezmsg 3.9 would otherwise store the raw value).
    """
    ref = _enum_ref(fs)
    if ref is None or value is None:
        return value
    return member_by_value(ref, value)


def structured_diff(
    spec: SettingsSpec, target: Mapping[str, Any], current: Mapping[str, Any]
) -> dict[str, Any]:
    """``{dotted path: target value}`` for every field where two structured values differ.

    Nested settings whose class is known by name only are compared leaf by leaf (they can
    only be set field by field); everything else as a whole field.
    """
    out: dict[str, Any] = {}

    def walk(specs: tuple[FieldSpec, ...], a: Mapping[str, Any], b: Mapping[str, Any]) -> None:
        for fs in specs:
            x, y = a.get(fs.name), b.get(fs.name)
            if fs.kind == "dataclass" and fs.py_type is None and isinstance(x, Mapping) and isinstance(y, Mapping):  # fmt: skip
                walk(fs.children, x, y)
            elif not settings_equal(x, y):
                out[fs.path] = x

    walk(spec.fields, target, current)
    return out
