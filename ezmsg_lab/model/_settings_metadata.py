"""Fallback spec from ezmsg's ``SettingsSchemaMetadata`` when the class is not importable.

Private helper of :mod:`ezmsg_lab.model.settings_schema` (re-exported there).
"""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from .settings_schema import Bounds, Choice, FieldKind, FieldSpec, SettingsSpec

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
