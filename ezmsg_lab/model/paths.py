"""Dotted paths into settings values: one reader for objects, dicts and mixes of both."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def get_path(obj: Any, path: str) -> Any:
    """The value at ``path`` (``"tone.freq_hz"``) below ``obj``: attributes of objects,
    keys of mappings (a structured value), None as soon as a step is missing. The empty
    path is ``obj`` itself.

    >>> get_path({"tone": {"freq_hz": 5.0}}, "tone.freq_hz")
    5.0
    >>> get_path({"tone": None}, "tone.freq_hz") is None
    True
    """
    for part in path.split(".") if path else ():
        if obj is None:
            return None
        obj = obj.get(part) if isinstance(obj, Mapping) else getattr(obj, part, None)
    return obj
