"""A griffe extension for ezmsg-lab's API reference (used by mkdocs.yml; no runtime code).

Two things the package's docstrings do that griffe's static reading does not see:

- Lab methods that delegate to a service take that method's docstring at import time
  (``lab._doc_of``). Members with no docstring in the source get the one Python has.
- Docstrings cross-reference with Sphinx roles (``:meth:`close```). Each role becomes a
  link when its target is a name the reference documents (a name in ``ezmsg_lab.__all__``
  or a public member of one), else a code span, so nothing renders as a raw role.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from pathlib import Path
from typing import Any

import griffe

# The runtime docstrings must come from the same source griffe reads: this checkout.
ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

ROLE = re.compile(r":(?:py:)?(?:meth|class|func|attr|exc|data|obj|mod|const):`~?\.?([^`]+)`")


class LabReference(griffe.Extension):
    """Runtime docstrings for delegating members, and Sphinx roles as links."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.path != "ezmsg_lab":
            return
        runtime = importlib.import_module("ezmsg_lab")
        # Canonical path (ezmsg_lab.lab.Lab) -> documented path (ezmsg_lab.Lab).
        documented: dict[str, str] = {}
        for name in runtime.__all__:
            obj = getattr(runtime, name)
            if inspect.isclass(obj):
                documented[f"{obj.__module__}.{obj.__qualname__}"] = f"ezmsg_lab.{name}"
        for canonical in documented:
            cls = pkg[canonical.removeprefix("ezmsg_lab.")]
            _fill_runtime_docstrings(cls, canonical)
        for obj in _walk(pkg):
            if obj.docstring is not None and ":" in obj.docstring.value:
                obj.docstring.value = ROLE.sub(
                    lambda m, o=obj: _link(m.group(1), o, documented), obj.docstring.value
                )


def _walk(obj: griffe.Object) -> Any:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)


def _fill_runtime_docstrings(cls: griffe.Class, canonical: str) -> None:
    module, _, qualname = canonical.rpartition(".")
    runtime_cls = getattr(importlib.import_module(module), qualname)
    for name, member in cls.members.items():
        if member.is_alias or member.docstring is not None or name.startswith("_"):
            continue
        doc = inspect.getdoc(getattr(runtime_cls, name, None))
        if doc:
            # Parsed as the class's own docstring is (numpy style, from mkdocs.yml).
            style = cls.docstring
            member.docstring = griffe.Docstring(
                doc,
                parent=member,
                parser=style.parser if style else None,
                parser_options=style.parser_options if style else None,
            )


def _link(target: str, obj: griffe.Object, documented: dict[str, str]) -> str:
    target = target.removesuffix("()")
    label = f"`{target}`"
    path = _resolve(target, obj, documented)
    return f"[{label}][{path}]" if path else label


def _resolve(target: str, obj: griffe.Object, documented: dict[str, str]) -> str | None:
    by_short = {doc.rpartition(".")[2]: doc for doc in documented.values()}
    head, _, rest = target.removeprefix("ezmsg_lab.").partition(".")
    if head in by_short:
        return _member_path(by_short[head], rest, documented)
    owner = obj if obj.is_class else obj.parent
    if owner is not None and owner.path in documented and "." not in target:
        return _member_path(documented[owner.path], target, documented)
    return None


def _member_path(documented_path: str, member: str, documented: dict[str, str]) -> str | None:
    if not member:
        return documented_path
    if member.startswith("_") or "." in member:
        return None
    canonical = next(c for c, d in documented.items() if d == documented_path)
    runtime_cls = getattr(
        importlib.import_module(canonical.rpartition(".")[0]), canonical.rpartition(".")[2]
    )
    return f"{documented_path}.{member}" if member in vars(runtime_cls) else None
