"""Walking an ezmsg ``GraphSnapshot``'s component metadata: one walk, one test for a
collection, used by the topology tables, the graph widget and the settings views."""

from __future__ import annotations

from typing import Any


def components(snapshot: Any) -> list[tuple[str, str, Any]]:
    """``(session id, address, component metadata)`` for every component the sessions
    describe, sorted by address. A component two sessions describe appears once, from
    the first session by id (ezmsg keeps the metadata per session)."""
    if snapshot is None:
        return []
    seen: dict[str, tuple[str, str, Any]] = {}
    for sid in sorted(snapshot.sessions):
        meta = snapshot.sessions[sid].metadata
        if meta is None:
            continue
        for address, comp in meta.components.items():
            seen.setdefault(address, (sid, address, comp))
    return [seen[a] for a in sorted(seen)]


def component_map(snapshot: Any) -> dict[str, Any]:
    """``{address: component metadata}`` (see :func:`components`)."""
    return {address: comp for _, address, comp in components(snapshot)}


def is_collection(comp: Any) -> bool:
    """Whether a component's metadata is a collection's (it has children; a unit's has
    streams)."""
    return hasattr(comp, "children")
