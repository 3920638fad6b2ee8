"""Settings pickles whose classes this kernel cannot import.

A graph started by a user's script (``ez.run`` in ``__main__``, or units from a package
not installed here) sends its settings as pickles of classes that do not exist in the
kernel. Two things still work without importing them:

- :func:`read_structure` reads such a pickle's *structure*: which field holds an instance
  of which class (module and qualified name, exactly as the pickle names it), built from
  what arguments or state. Every global the pickle names becomes an inert placeholder, so
  nothing from the pickle is imported or run. This tells an enum member (a class called
  with one value) from a plain string, and gives a nested dataclass's fields and the
  Python types of their values, which ezmsg 3.9's metadata does not.
- :func:`member_by_value` makes a value that pickles as "``module.Class(value)``": the
  unit's process, where the class exists, rebuilds the member of its own enum (ezmsg 3.9
  would otherwise patch the raw value in, and the unit's ``is Mode.FAST`` checks would
  silently fail). A value that is not a member is refused there, while unpickling the
  request, before anything changes.

Example
-------
>>> import pickle
>>> tree = read_structure(pickle.dumps({"a": 1}))
>>> tree
{'a': 1}
"""

from __future__ import annotations

import functools
import importlib
import io
import operator
import pickle
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ClassRef", "Opaque", "member_by_value", "read_structure"]


@dataclass(frozen=True)
class ClassRef:
    """A class named by a pickle: ``module`` and dotted ``qualname``."""

    module: str
    qualname: str

    def __str__(self) -> str:
        return f"{self.module}.{self.qualname}"


@dataclass
class Opaque:
    """An object of a class that was not imported: what the pickle built it from.

    ``args`` are the constructor arguments (``Mode("fast")`` gives ``("fast",)``) and
    ``state`` the attributes set on it (a dataclass's fields), when the pickle has them.
    """

    cls: ClassRef
    args: tuple[Any, ...] = ()
    state: dict[str, Any] | None = None
    by_name: str | None = None  # getattr(cls, name): how some enums pickle

    @property
    def is_member(self) -> bool:
        """Built like an enum member: called with one value (or fetched by name), no state."""
        return self.state is None and (len(self.args) == 1 or self.by_name is not None)

    @property
    def is_record(self) -> bool:
        """Built like a dataclass: no arguments, attributes from a dict of state."""
        return self.state is not None


class _Placeholder:
    """Base of the placeholder classes the reader makes for every global it meets."""

    ezmsg_lab_ref: ClassRef

    def __new__(cls, *args: Any, **kwargs: Any) -> _OpaqueObj:  # type: ignore[misc]
        return _OpaqueObj(Opaque(cls.ezmsg_lab_ref, tuple(args)))


class _OpaqueObj:
    """What the unpickler builds in place of an object; BUILD lands in ``__setstate__``."""

    __slots__ = ("opaque",)

    def __init__(self, opaque: Opaque) -> None:
        self.opaque = opaque

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots) of slotted classes
            merged = dict(state[0] or {})
            merged.update(state[1] or {})
            state = merged
        self.opaque.state = dict(state) if isinstance(state, dict) else {"__state__": state}


def _getattr_placeholder(obj: Any, name: str, *default: Any) -> _OpaqueObj:
    """``builtins.getattr`` inside a pickle: how enums pickle by member name."""
    ref = (
        obj.ezmsg_lab_ref
        if isinstance(obj, type) and issubclass(obj, _Placeholder)
        else ClassRef("?", "?")
    )
    return _OpaqueObj(Opaque(ref, by_name=str(name)))


class _StructureReader(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("builtins", "getattr"):
            return _getattr_placeholder
        return _placeholder_class(module, name)


@functools.lru_cache(maxsize=256)
def _placeholder_class(module: str, name: str) -> type:
    # A real class, because the NEWOBJ opcode insists on one.
    return type(
        name.rpartition(".")[2] or "Placeholder",
        (_Placeholder,),
        {"ezmsg_lab_ref": ClassRef(module, name)},
    )


def _unwrap(value: Any, depth: int = 0) -> Any:
    if depth > 50:
        return value
    if isinstance(value, _OpaqueObj):
        op = value.opaque
        op.args = tuple(_unwrap(a, depth + 1) for a in op.args)
        if op.state is not None:
            op.state = {k: _unwrap(v, depth + 1) for k, v in op.state.items()}
        return op
    if isinstance(value, type) and issubclass(value, _Placeholder):
        return value.ezmsg_lab_ref
    if isinstance(value, dict):
        return {k: _unwrap(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v, depth + 1) for v in value)
    return value


def read_structure(raw: bytes | None) -> Any:
    """The structure of a pickled value, without importing or running anything it names.

    Objects come back as :class:`Opaque` (class, constructor args, state), classes as
    :class:`ClassRef`, builtin containers and scalars as themselves. Returns None when
    ``raw`` is None or not a pickle this reader understands.
    """
    if raw is None:
        return None
    try:
        return _unwrap(_StructureReader(io.BytesIO(raw)).load())
    except Exception:  # a pickle opcode sequence the placeholders cannot follow
        return None


# ------------------------------------------------------------------------------ writing


class _ModuleRef:
    """Pickles as ``importlib.import_module(module)``, evaluated where it is unpickled."""

    def __init__(self, module: str) -> None:
        self.module = module

    def __reduce__(self) -> tuple[Any, ...]:
        return importlib.import_module, (self.module,)


class _ClassByName:
    """Pickles as the class ``ref`` names, looked up where it is unpickled.

    Callable only so that pickle accepts it as the callable of a reduce tuple; calling it
    here would mean the class exists here, which is the case this module is not for.
    """

    def __init__(self, ref: ClassRef) -> None:
        self.ref = ref

    def __reduce__(self) -> tuple[Any, ...]:
        return operator.attrgetter(self.ref.qualname), (_ModuleRef(self.ref.module),)

    def __call__(self, *args: Any) -> Any:
        raise TypeError(f"{self.ref} only exists where the pickle is loaded")


@dataclass(frozen=True)
class _MemberByValue:
    ref: ClassRef
    value: Any
    _cls: _ClassByName = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_cls", _ClassByName(self.ref))

    def __reduce__(self) -> tuple[Any, ...]:
        return self._cls, (self.value,)


def member_by_value(ref: ClassRef, value: Any) -> Any:
    """A value that unpickles as ``ref(value)`` in the process that loads it.

    For enum fields of a class this kernel cannot import: the unit's process, which owns
    the class, turns the value into its own member (or refuses, changing nothing).

    Example
    -------
    >>> import pickle, enum
    >>> payload = pickle.dumps(member_by_value(ClassRef("enum", "Enum"), "x"))
    >>> b"attrgetter" in payload
    True
    """
    return _MemberByValue(ref, value)
