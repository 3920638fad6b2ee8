"""The field-spec types of a unit's settings tree (built by :mod:`.settings_schema`).

A module of its own so that both ways of building a tree (from the class in
:mod:`.settings_schema`, from ezmsg's metadata in :mod:`._settings_metadata`) import it
without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .settings_pickle import ClassRef

__all__ = ["INIT_FALSE_REASON", "Bounds", "Choice", "FieldKind", "FieldSpec", "SettingsSpec"]

FieldKind = Literal[
    "float", "int", "bool", "str", "literal", "enum", "optional", "dataclass", "tuple",
    "list", "dict", "array", "union", "callable", "any",
]  # fmt: skip

INIT_FALSE_REASON = "init=False field: the class computes it"


@dataclass(frozen=True)
class Bounds:
    """Numeric bounds of a field; ``None`` means unbounded on that side."""

    lo: float | None = None
    hi: float | None = None
    lo_inclusive: bool = True
    hi_inclusive: bool = True

    def contains(self, x: float) -> bool:
        """Whether ``x`` lies within the bounds (NaN never does)."""
        if self.lo is not None and not (x >= self.lo if self.lo_inclusive else x > self.lo):
            return False
        return self.hi is None or bool(x <= self.hi if self.hi_inclusive else x < self.hi)

    def describe(self) -> str:
        parts = []
        if self.lo is not None:
            parts.append(f"{'>=' if self.lo_inclusive else '>'} {self.lo:g}")
        if self.hi is not None:
            parts.append(f"{'<=' if self.hi_inclusive else '<'} {self.hi:g}")
        return " and ".join(parts) or "unbounded"

    @property
    def finite(self) -> bool:
        """Both sides set: a slider can show the range."""
        return self.lo is not None and self.hi is not None


@dataclass(frozen=True)
class Choice:
    """One allowed value of a ``Literal`` or ``Enum`` field.

    ``value`` is what gets sent: for an enum, the member of the unit's own class (or the raw
    value when the class is not importable here and ezmsg 3.10 coerces it in the unit).
    """

    name: str
    value: Any


@dataclass(frozen=True)
class FieldSpec:
    """What one settings field accepts.

    Children: the fields of a nested dataclass (paths ``parent.child``); for ``optional``
    the one non-None member, for ``union`` every member (same path as the field); for
    ``tuple`` the element types (one element and ``variadic=True`` for ``tuple[X, ...]``);
    for ``list`` the element; for ``dict`` the key and the value.
    """

    name: str
    path: str
    kind: FieldKind
    type_display: str
    required: bool = False
    has_default: bool = False
    default: Any = None
    bounds: Bounds | None = None
    choices: tuple[Choice, ...] = ()
    description: str | None = None
    nullable: bool = False
    children: tuple[FieldSpec, ...] = ()
    editable: bool = True
    reason: str | None = None
    py_type: Any = None  # the resolved annotation/class, None when built from metadata
    variadic: bool = False
    dtype: np.dtype | None = None  # for arrays annotated npt.NDArray[...]
    array_like: bool = False  # npt.ArrayLike: keep the user's value, check it converts
    # A class known by name only (not importable here): an enum whose members the unit's
    # process rebuilds from values, or a nested dataclass set field by field.
    ref: ClassRef | None = None

    def child(self, name: str) -> FieldSpec:
        for c in self.children:
            if c.name == name:
                return c
        raise KeyError(name)


@dataclass(frozen=True)
class SettingsSpec:
    """The field-spec tree of one settings class.

    Attributes
    ----------
    type_name : str
        Qualified name of the settings class.
    cls : type or None
        The class itself when importable in this kernel, else None.
    fields : tuple of FieldSpec
        Top-level fields in declaration order.
    source : {"class", "metadata"}
        Where the tree came from.
    reason : str or None
        Why the class was not used, when ``source == "metadata"``.
    """

    type_name: str
    cls: type | None
    fields: tuple[FieldSpec, ...]
    source: Literal["class", "metadata"] = "class"
    reason: str | None = None

    def field(self, path: str) -> FieldSpec:
        """The spec at a dotted path (``"tone.freq_hz"``); KeyError when there is none."""
        specs = self.fields
        found: FieldSpec | None = None
        for part in path.split("."):
            found = next((s for s in specs if s.name == part), None)
            if found is None:
                raise KeyError(path)
            specs = _dataclass_children(found)
        assert found is not None
        return found

    def paths(self) -> list[str]:
        """Every dotted path, parents before children (for suggestions and forms)."""
        out: list[str] = []

        def walk(specs: tuple[FieldSpec, ...]) -> None:
            for s in specs:
                out.append(s.path)
                walk(_dataclass_children(s))

        walk(self.fields)
        return out


def _dataclass_children(spec: FieldSpec) -> tuple[FieldSpec, ...]:
    """Fields reachable by a dotted path below ``spec`` (through ``Optional[Dataclass]``)."""
    if spec.kind == "dataclass":
        return spec.children
    if spec.kind == "optional" and spec.children and spec.children[0].kind == "dataclass":
        return spec.children[0].children
    return ()


# ---------------------------------------------------------------------------- snapshots
