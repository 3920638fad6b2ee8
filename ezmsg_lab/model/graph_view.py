"""The graph widget's data: a JSON-able view of an ezmsg ``GraphSnapshot`` and its diffs
(annotations: :mod:`ezmsg_lab.model.graph_annotations`).

Pure Python (no widget, no ezmsg import): the snapshot is read by attribute, so ezmsg's
own dataclasses, or anything shaped like them, work.

State layout (every section is a dict keyed by id, so a diff is per-id)::

    {"schema": 1, "digest": "<hash of the sections>",
     "units":     {address: {address, name, collection, path, component_type, session,
                             process_id, pid, host, inputs: [stream], outputs: [stream]}},
     "groups":    {address: {address, name, parent, path, component_type, session,
                             children}},
     "topics":    {address: {address, name, parent, direction, kind, msg_type}},
     "edges":     {"src->dst": {id, source, target, source_node, target_node, owners,
                                session}},
     "processes": {uuid: {id, pid, host, units, color, host_color}},
     "hosts":     {host: {host, color, processes}}}

A stream is ``{address, name, msg_type, settings, num_buffers}``; ``settings`` marks a
unit's dynamic-settings input (the widget hides it unless something is connected to it).
Colour indices are stable: pass the previous state and processes keep their colour.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any, TypedDict

from .graph_annotations import (
    BACKPRESSURE_CRITICAL,
    BACKPRESSURE_WARN,
    CHANNEL_KINDS,
    EDGE_SEP,
    Annotations,
    backpressure_level,
    edge_id,
    make_annotations,
    normalize_annotations,
)

# The annotations API is re-exported here: graph_view is the one module to import.
from .snapshot import components, is_collection

__all__ = [
    "BACKPRESSURE_CRITICAL",
    "BACKPRESSURE_WARN",
    "CHANNEL_KINDS",
    "EDGE_SEP",
    "SCHEMA_VERSION",
    "SECTIONS",
    "Annotations",
    "DiffMismatchError",
    "GraphState",
    "apply_diff",
    "backpressure_level",
    "diff_size",
    "diff_state",
    "edge_id",
    "empty_state",
    "graph_state",
    "make_annotations",
    "normalize_annotations",
    "state_digest",
    "state_size",
]

SCHEMA_VERSION = 1
SECTIONS = ("units", "groups", "topics", "edges", "processes", "hosts")


class StreamInfo(TypedDict):
    address: str
    name: str
    msg_type: str
    settings: bool
    num_buffers: int | None


class UnitNode(TypedDict):
    address: str
    name: str
    collection: str | None
    path: list[str]
    component_type: str
    session: str
    process_id: str | None
    pid: int | None
    host: str | None
    inputs: list[StreamInfo]
    outputs: list[StreamInfo]


class GroupNode(TypedDict):
    address: str
    name: str
    parent: str | None
    path: list[str]
    component_type: str
    session: str
    children: list[str]


class TopicNode(TypedDict):
    address: str
    name: str
    parent: str | None
    direction: str | None
    kind: str  # "topic" (declared by a collection), "relay" or "free"
    msg_type: str | None


class EdgeRecord(TypedDict):
    id: str
    source: str
    target: str
    source_node: str
    target_node: str
    owners: list[str]
    session: str | None


class ProcessRecord(TypedDict):
    id: str
    pid: int | None
    host: str | None
    units: list[str]
    color: int
    host_color: int


class HostRecord(TypedDict):
    host: str
    color: int
    processes: list[str]


class GraphState(TypedDict):
    schema: int
    digest: str
    units: dict[str, UnitNode]
    groups: dict[str, GroupNode]
    topics: dict[str, TopicNode]
    edges: dict[str, EdgeRecord]
    processes: dict[str, ProcessRecord]
    hosts: dict[str, HostRecord]


def empty_state() -> GraphState:
    """A state with no nodes (what the widget shows before the first snapshot)."""
    state: dict[str, Any] = {"schema": SCHEMA_VERSION}
    for section in SECTIONS:
        state[section] = {}
    state["digest"] = state_digest(state)
    return state  # type: ignore[return-value]


def state_digest(state: Mapping[str, Any]) -> str:
    """A short hash of the sections; diffs name the digest they apply to."""
    body = json.dumps(
        {s: state.get(s, {}) for s in SECTIONS}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha1(body.encode()).hexdigest()[:16]


def _parent_path(address: str) -> str | None:
    head, sep, _ = address.rpartition("/")
    return head if sep else None


def _stream(meta: Any, settings_topic: str | None) -> StreamInfo:
    nb = getattr(meta, "num_buffers", None)
    return {
        "address": str(meta.address),
        "name": str(meta.name),
        "msg_type": str(meta.msg_type),
        "settings": settings_topic is not None and meta.address == settings_topic,
        "num_buffers": int(nb) if nb is not None else None,
    }


def _is_output(meta: Any) -> bool:
    # OutputStreamMetadata carries buffer fields; InputStreamMetadata does not.
    name = type(meta).__name__
    if name.startswith("Output"):
        return True
    if name.startswith("Input"):
        return False
    return hasattr(meta, "num_buffers")


def _components(snapshot: Any) -> list[tuple[str, Any]]:
    """(session id, component metadata) pairs, first session (sorted by id) wins."""
    return [(sid, comp) for sid, _, comp in components(snapshot)]


def graph_state(snapshot: Any, *, previous: Mapping[str, Any] | None = None) -> GraphState:
    """Turn a raw ezmsg ``GraphSnapshot`` into the graph widget's state.

    Parameters
    ----------
    snapshot : ezmsg.core.graphmeta.GraphSnapshot
        As returned by ``GraphContext.snapshot()`` (or ``lab.snapshot()``).
    previous : dict, optional
        The state built from the previous snapshot: processes and hosts that remain keep
        their colour index, new ones take the lowest free index.

    Returns
    -------
    GraphState
        Plain dicts, lists, strings and numbers (JSON-able), with a ``digest``.

    Examples
    --------
    >>> state = graph_state(lab.snapshot())  # doctest: +SKIP
    >>> sorted(state["units"])  # doctest: +SKIP
    ['DEMO/DETECTOR', 'DEMO/FILTER', 'DEMO/SINK', 'DEMO/SOURCE']
    """
    comps = _components(snapshot)
    hierarchy = _Hierarchy(comps)
    units: dict[str, UnitNode] = {}
    groups: dict[str, GroupNode] = {}
    topics: dict[str, TopicNode] = {}
    stream_owner: dict[str, str] = {}
    for sid, comp in comps:
        address = str(comp.address)
        if hasattr(comp, "streams"):
            units[address] = _unit_node(sid, comp, hierarchy, stream_owner)
        elif is_collection(comp):
            groups[address] = _group_node(sid, comp, hierarchy)
            topics.update(_declared_topics(comp))
    edges = _edges(_edge_pairs(snapshot), stream_owner, topics)
    processes, hosts = _processes(snapshot, previous)
    for proc in processes.values():
        for unit in proc["units"]:
            if unit in units:
                units[unit]["process_id"] = proc["id"]
                units[unit]["pid"] = proc["pid"]
                units[unit]["host"] = proc["host"]

    state: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "units": units,
        "groups": groups,
        "topics": topics,
        "edges": edges,
        "processes": processes,
        "hosts": hosts,
    }
    state["digest"] = state_digest(state)
    return state  # type: ignore[return-value]


class _Hierarchy:
    """Where each component sits: its collection, and the chain of collections above."""

    def __init__(self, comps: list[tuple[str, Any]]) -> None:
        self._parent_of: dict[str, str] = {}
        for _sid, comp in comps:
            for child in getattr(comp, "children", None) or ():
                self._parent_of[str(child)] = str(comp.address)
        self._collections = {str(c.address) for _, c in comps if is_collection(c)}

    def parent(self, address: str) -> str | None:
        if address in self._parent_of:
            return self._parent_of[address]
        guess = _parent_path(address)
        while guess is not None and guess not in self._collections:
            guess = _parent_path(guess)
        return guess

    def path(self, address: str) -> list[str]:
        chain: list[str] = []
        p = self.parent(address)
        while p is not None and p not in chain:
            chain.append(p)
            p = self.parent(p)
        return chain[::-1]


def _unit_node(
    sid: str, comp: Any, hierarchy: _Hierarchy, stream_owner: dict[str, str]
) -> UnitNode:
    """A unit's node; records which unit owns each of its streams in ``stream_owner``."""
    address = str(comp.address)
    dyn = getattr(comp, "dynamic_settings", None)
    settings_topic = getattr(dyn, "input_topic", None) if dyn is not None else None
    inputs: list[StreamInfo] = []
    outputs: list[StreamInfo] = []
    for meta in comp.streams.values():
        (outputs if _is_output(meta) else inputs).append(_stream(meta, settings_topic))
        stream_owner[str(meta.address)] = address
    inputs.sort(key=lambda s: (s["settings"], s["name"]))
    outputs.sort(key=lambda s: s["name"])
    return {
        "address": address,
        "name": str(comp.name),
        "collection": hierarchy.parent(address),
        "path": hierarchy.path(address),
        "component_type": str(comp.component_type),
        "session": sid,
        "process_id": None,
        "pid": None,
        "host": None,
        "inputs": inputs,
        "outputs": outputs,
    }


def _group_node(sid: str, comp: Any, hierarchy: _Hierarchy) -> GroupNode:
    address = str(comp.address)
    return {
        "address": address,
        "name": str(comp.name),
        "parent": hierarchy.parent(address),
        "path": hierarchy.path(address),
        "component_type": str(comp.component_type),
        "session": sid,
        "children": sorted(str(c) for c in comp.children),
    }


def _declared_topics(comp: Any) -> dict[str, TopicNode]:
    """A collection's own topics and relays, as topic nodes."""
    out: dict[str, TopicNode] = {}
    declared = [(m, "topic") for m in (getattr(comp, "topics", None) or {}).values()]
    declared += [(m, "relay") for m in (getattr(comp, "relays", None) or {}).values()]
    for meta, kind in declared:
        t_addr = str(meta.address)
        name = type(meta).__name__
        direction = (
            "in" if name.startswith("Input") else "out" if name.startswith("Output") else None
        )
        out[t_addr] = {
            "address": t_addr,
            "name": str(meta.name),
            "parent": str(comp.address),
            "direction": direction,
            "kind": kind,
            "msg_type": str(meta.msg_type),
        }
    return out


def _edge_pairs(snapshot: Any) -> dict[tuple[str, str], set[str]]:
    """Every edge with the sessions that own it: the union of what the graph, the owners
    table and the sessions list."""
    pairs: dict[tuple[str, str], set[str]] = {}
    for src, dsts in snapshot.graph.items():
        for dst in dsts:
            pairs.setdefault((str(src), str(dst)), set())
    for edge, owners in (getattr(snapshot, "edge_owners", None) or {}).items():
        pairs.setdefault((str(edge[0]), str(edge[1])), set()).update(str(o) for o in owners)
    for sid, session in snapshot.sessions.items():
        for edge in session.edges:
            pairs.setdefault((str(edge[0]), str(edge[1])), set()).add(str(sid))
    return pairs


def _edges(
    pairs: dict[tuple[str, str], set[str]],
    stream_owner: dict[str, str],
    topics: dict[str, TopicNode],
) -> dict[str, EdgeRecord]:
    """Edge records between nodes; a topic no unit or collection owns becomes a free
    topic node (added to ``topics``)."""

    def node_of(topic: str) -> str:
        if topic in stream_owner:
            return stream_owner[topic]
        if topic not in topics:
            topics[topic] = {
                "address": topic,
                "name": topic.rpartition("/")[2] or topic,
                "parent": None,
                "direction": None,
                "kind": "free",
                "msg_type": None,
            }
        return topic

    edges: dict[str, EdgeRecord] = {}
    for (src, dst), owners in sorted(pairs.items()):
        owner_list = sorted(owners)
        eid = edge_id(src, dst)
        edges[eid] = {
            "id": eid,
            "source": src,
            "target": dst,
            "source_node": node_of(src),
            "target_node": node_of(dst),
            "owners": owner_list,
            "session": owner_list[0] if owner_list else None,
        }
    return edges


def _assign(keys: list[str], previous: Mapping[str, int]) -> dict[str, int]:
    """Keep previous indices; give new keys the lowest free ones, in ``keys`` order."""
    out = {k: previous[k] for k in keys if k in previous}
    used = set(out.values())
    nxt = 0
    for k in keys:
        if k in out:
            continue
        while nxt in used:
            nxt += 1
        out[k] = nxt
        used.add(nxt)
    return out


def _processes(
    snapshot: Any, previous: Mapping[str, Any] | None
) -> tuple[dict[str, ProcessRecord], dict[str, HostRecord]]:
    raw = []
    for proc in (getattr(snapshot, "processes", None) or {}).values():
        units = sorted(str(u) for u in proc.units)
        raw.append(
            (
                str(proc.process_id),
                int(proc.pid) if proc.pid is not None else None,
                str(proc.host) if proc.host is not None else None,
                units,
            )
        )
    # New processes are coloured in a readable order: by host, then by their first unit.
    raw.sort(key=lambda r: (r[2] or "", r[3][0] if r[3] else "\uffff", r[0]))
    prev_procs = (previous or {}).get("processes", {}) or {}
    prev_hosts = (previous or {}).get("hosts", {}) or {}
    colors = _assign([r[0] for r in raw], {k: v["color"] for k, v in prev_procs.items()})
    host_names: list[str] = []
    for r in raw:
        h = r[2] or ""
        if h not in host_names:
            host_names.append(h)
    host_colors = _assign(host_names, {k: v["color"] for k, v in prev_hosts.items()})
    processes: dict[str, ProcessRecord] = {}
    hosts: dict[str, HostRecord] = {}
    for pid_key, pid, host, units in raw:
        h = host or ""
        processes[pid_key] = {
            "id": pid_key,
            "pid": pid,
            "host": host,
            "units": units,
            "color": colors[pid_key],
            "host_color": host_colors[h],
        }
        hosts.setdefault(h, {"host": h, "color": host_colors[h], "processes": []})
        hosts[h]["processes"].append(pid_key)
    for rec in hosts.values():
        rec["processes"].sort()
    return processes, hosts


# ---------------------------------------------------------------------------- diffs
class DiffMismatchError(ValueError):
    """A diff was applied to a state other than the one it was computed from."""


def diff_state(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """What changed from ``old`` to ``new``, per section and id.

    Returns ``{"schema", "base": old digest, "digest": new digest, "sections": {section:
    {"added": {id: record}, "removed": [id], "changed": {id: record}}}}``; sections with
    no change are left out. ``apply_diff(old, diff)`` gives ``new`` back.
    """
    sections: dict[str, Any] = {}
    for section in SECTIONS:
        a = old.get(section, {}) or {}
        b = new.get(section, {}) or {}
        added = {k: b[k] for k in b if k not in a}
        removed = sorted(k for k in a if k not in b)
        changed = {k: b[k] for k in b if k in a and a[k] != b[k]}
        if added or removed or changed:
            sections[section] = {"added": added, "removed": removed, "changed": changed}
    return {
        "schema": SCHEMA_VERSION,
        "base": old.get("digest") or state_digest(old),
        "digest": new.get("digest") or state_digest(new),
        "sections": sections,
    }


def diff_size(diff: Mapping[str, Any]) -> int:
    """Number of records a diff adds, removes or replaces."""
    return sum(
        len(part["added"]) + len(part["removed"]) + len(part["changed"])
        for part in diff.get("sections", {}).values()
    )


def state_size(state: Mapping[str, Any]) -> int:
    """Number of records in a state."""
    return sum(len(state.get(section, {}) or {}) for section in SECTIONS)


def apply_diff(state: Mapping[str, Any], diff: Mapping[str, Any]) -> GraphState:
    """Apply ``diff`` to ``state`` and return the new state (``state`` is left alone).

    Raises
    ------
    DiffMismatchError
        When ``state`` is not the state the diff was computed from, or the result does
        not have the digest the diff promises (ask for a full state instead).
    """
    have = state.get("digest")
    if have != diff.get("base"):
        raise DiffMismatchError(
            f"diff base {diff.get('base')!r} does not match the state's digest {have!r}; "
            "send the full state instead"
        )
    out: dict[str, Any] = {k: v for k, v in state.items() if k not in SECTIONS}
    for section in SECTIONS:
        out[section] = dict(state.get(section, {}) or {})
    for section, part in diff.get("sections", {}).items():
        if section not in SECTIONS:
            raise DiffMismatchError(f"unknown section {section!r} in diff")
        target = out[section]
        for key in part.get("removed", ()):
            if key not in target:
                raise DiffMismatchError(f"diff removes {section}[{key!r}], which is absent")
            del target[key]
        for key, rec in part.get("added", {}).items():
            if key in target:
                raise DiffMismatchError(f"diff adds {section}[{key!r}], which exists")
            target[key] = copy.deepcopy(rec)
        for key, rec in part.get("changed", {}).items():
            if key not in target:
                raise DiffMismatchError(f"diff changes {section}[{key!r}], which is absent")
            target[key] = copy.deepcopy(rec)
    out["digest"] = state_digest(out)
    if out["digest"] != diff.get("digest"):
        raise DiffMismatchError(
            f"applying the diff gave digest {out['digest']!r}, expected {diff.get('digest')!r}"
        )
    return out  # type: ignore[return-value]
