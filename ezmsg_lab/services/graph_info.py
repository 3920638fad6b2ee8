"""What the Lab's topology snapshot says about units and streams."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from ..errors import LabError
from ..feeds.topology import TopologyFeed
from ..model.clock import HOSTNAME
from ..model.snapshot import component_map, components


def check_unit(unit: str, known: Iterable[str]) -> None:
    """Raise :class:`LabError` naming close matches when ``unit`` is not in ``known``."""
    known = sorted(known)
    if unit not in known:
        close = difflib.get_close_matches(unit, known, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise LabError(f"No unit {unit!r} in this graph.{hint} Known: {known}")


class GraphInfo:
    """Reads the topology feed's latest snapshot (never the GraphServer)."""

    def __init__(self, topology: TopologyFeed) -> None:
        self._topology = topology

    def components(self) -> dict[str, Any]:
        """Every component's metadata (units and collections) by address."""
        return component_map(self._topology.snapshot)

    def owner_pid(self, address: str) -> int | None:
        """The pid of the process that runs a unit, from the GraphServer's process table."""
        snap = self._topology.snapshot
        for proc in snap.processes.values() if snap is not None else ():
            if address in proc.units:
                return int(proc.pid) if proc.pid is not None else None
        return None

    def runs_elsewhere(self, address: str) -> bool:
        """Whether the process that runs a unit is on another host than this kernel's (by
        the hostname ezmsg reports; False when unknown)."""
        snap = self._topology.snapshot
        for proc in snap.processes.values() if snap is not None else ():
            if address in proc.units:
                host = getattr(proc, "host", None)
                return bool(host) and host != HOSTNAME
        return False

    def streams(self) -> list[Any]:
        """Every stream's metadata in the graph (units' streams, collections' topics)."""
        out: list[Any] = []
        for _, _, comp in components(self._topology.snapshot):
            for group in ("streams", "topics"):
                out.extend((getattr(comp, group, None) or {}).values())
        return out

    def output_topics(self) -> list[str]:
        return sorted({s.address for s in self.streams() if "Output" in type(s).__name__})

    def topic_msg_type(self, topic: str) -> str | None:
        """The message type ezmsg's metadata gives for ``topic`` (None if unknown)."""
        for stream in self.streams():
            if getattr(stream, "address", None) == topic:
                return getattr(stream, "msg_type", None)
        return None
