"""Topology model: the running graph as DataFrames, from an ezmsg GraphSnapshot.

Works on the snapshot's plain data (sessions' metadata, the topic graph, edge owners, the
process table); needs no live connection. pid and host come from the process table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .clock import to_utc
from .metrics import ProcessMeta
from .snapshot import components, is_collection


@dataclass
class Topology:
    """The graph at one moment.

    Attributes
    ----------
    units, collections, topics, edges, processes : pandas.DataFrame
    time : pandas.Timestamp
        When this snapshot was read (UTC).
    """

    units: pd.DataFrame
    collections: pd.DataFrame
    topics: pd.DataFrame
    edges: pd.DataFrame
    processes: pd.DataFrame
    time: pd.Timestamp
    raw: Any = field(repr=False, default=None)

    def __repr__(self) -> str:
        return (
            f"<Topology at {self.time:%Y-%m-%d %H:%M:%S} UTC: {len(self.units)} units, "
            f"{len(self.topics)} topics, {len(self.edges)} edges, "
            f"{len(self.processes)} processes>"
        )

    def _repr_html_(self) -> str:
        return f"<b>{_escape(repr(self))}</b>" + self.units[
            ["address", "component_type", "pid", "host"]
        ].to_html(index=False)


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def process_table(snapshot: Any) -> dict[str, ProcessMeta]:
    """{process id: ProcessMeta} from a snapshot's process table."""
    return {
        str(pid): ProcessMeta(str(pid), proc.pid, proc.host, tuple(proc.units))
        for pid, proc in snapshot.processes.items()
    }


def build_topology(snapshot: Any, read_at_s: float) -> Topology:
    """Build a :class:`Topology` from an ezmsg ``GraphSnapshot``."""
    procs = process_table(snapshot)
    owner_of_unit = {u: p for p in procs.values() for u in p.units}

    unit_rows = []
    collection_rows = []
    stream_owner: dict[str, str] = {}
    for session_id, address, comp in components(snapshot):
        dynamic = bool(comp.dynamic_settings.enabled)
        if is_collection(comp):
            collection_rows.append(
                {
                    "address": address,
                    "name": comp.name,
                    "parent": parent_address(address),
                    "component_type": comp.component_type,
                    "children": list(comp.children),
                    "session": session_id,
                }
            )
            for topic in comp.topics.values():
                stream_owner.setdefault(topic.address, address)
            continue
        streams = getattr(comp, "streams", {}) or {}
        inputs = sorted(s.address for s in streams.values() if "Input" in type(s).__name__)
        outputs = sorted(s.address for s in streams.values() if "Output" in type(s).__name__)
        for s in streams.values():
            stream_owner[s.address] = address
        proc = owner_of_unit.get(address)
        unit_rows.append(
            {
                "address": address,
                "name": comp.name,
                "collection": parent_address(address),
                "component_type": comp.component_type,
                "settings_type": comp.settings_type,
                "dynamic_settings": dynamic,
                "inputs": inputs,
                "outputs": outputs,
                "process": proc.process_id if proc else None,
                "pid": proc.pid if proc else None,
                "host": proc.host if proc else None,
                "session": session_id,
            }
        )

    units = pd.DataFrame(
        unit_rows,
        columns=[
            "address",
            "name",
            "collection",
            "component_type",
            "settings_type",
            "dynamic_settings",
            "inputs",
            "outputs",
            "process",
            "pid",
            "host",
            "session",
        ],
    )
    units["pid"] = units["pid"].astype("Int64")
    units["dynamic_settings"] = units["dynamic_settings"].astype(bool)
    units = units.sort_values("address", ignore_index=True)

    collections = pd.DataFrame(
        collection_rows,
        columns=["address", "name", "parent", "component_type", "children", "session"],
    ).sort_values("address", ignore_index=True)

    edge_rows = []
    for (src, dst), owners in snapshot.edge_owners.items():
        for owner in owners or [None]:
            edge_rows.append({"from": src, "to": dst, "owner": owner})
    known = {(r["from"], r["to"]) for r in edge_rows}
    for src, dsts in snapshot.graph.items():
        for dst in dsts:
            if (src, dst) not in known:
                edge_rows.append({"from": src, "to": dst, "owner": None})
    edges = pd.DataFrame(edge_rows, columns=["from", "to", "owner"]).sort_values(
        ["from", "to"], ignore_index=True
    )

    topic_names = set(snapshot.graph)
    for dsts in snapshot.graph.values():
        topic_names.update(dsts)
    topic_rows = []
    for topic in sorted(topic_names):
        topic_rows.append(
            {
                "topic": topic,
                "owner": stream_owner.get(topic),
                "upstream": sorted(s for s, d in snapshot.graph.items() if topic in d),
                "downstream": sorted(snapshot.graph.get(topic, [])),
            }
        )
    topics = pd.DataFrame(topic_rows, columns=["topic", "owner", "upstream", "downstream"])

    processes = pd.DataFrame(
        [
            {"process": p.process_id, "pid": p.pid, "host": p.host, "units": sorted(p.units)}
            for p in procs.values()
        ],
        columns=["process", "pid", "host", "units"],
    )
    processes["pid"] = processes["pid"].astype("Int64")
    processes = processes.sort_values("pid", ignore_index=True)

    return Topology(
        units=units,
        collections=collections,
        topics=topics,
        edges=edges,
        processes=processes,
        time=to_utc(read_at_s),
        raw=snapshot,
    )


def parent_address(address: str) -> str | None:
    """The component an address belongs to (``"DEMO/FILTER/OUTPUT"`` -> ``"DEMO/FILTER"``);
    None for a top-level one."""
    return address.rsplit("/", 1)[0] if "/" in address else None


@dataclass(frozen=True)
class ConnectionMark:
    """A row the Lab adds to the topology events itself: it lost (``DISCONNECTED``) or
    regained (``RECONNECTED``) its GraphServer. ``seq`` is the last ezmsg event seen
    before it (a restarted server numbers its events from 1 again)."""

    seq: int
    timestamp: float
    event_type: str
    changed_topics: tuple[str, ...] = ()
    source_session_id: str | None = None
    source_process_id: str | None = None


def events_frame(events: list[Any]) -> pd.DataFrame:
    """Topology events as a DataFrame (time in UTC); the Lab's own DISCONNECTED and
    RECONNECTED rows mark where it lost and regained its GraphServer."""
    return pd.DataFrame(
        {
            "seq": pd.array([e.seq for e in events], dtype="int64"),
            "time": to_utc([e.timestamp for e in events]),
            "event": [getattr(e.event_type, "value", str(e.event_type)) for e in events],
            "changed_topics": [list(e.changed_topics) for e in events],
            "source_session": [e.source_session_id for e in events],
            "source_process": [
                str(e.source_process_id) if e.source_process_id else None for e in events
            ],
        }
    )
