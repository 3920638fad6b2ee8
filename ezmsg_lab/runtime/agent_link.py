"""The Lab's connections to the tap agents of an attached graph's processes.

A user's script run with :class:`ezmsg_lab.agent.BackendProcess` listens in each of its
processes (see ``_agent_socket``). :class:`AgentLinks` connects to the processes the Lab
asks for, by pid, once each, and reads all of them through one :class:`TapLink`, so a
sampled tap on an attached graph works as on a launched pipeline.
"""

from __future__ import annotations

import threading
from multiprocessing.connection import Connection

from . import _agent_socket
from .tap_link import TapLink

CONNECT_TIMEOUT_S = 1.0


class AgentLinks:
    """One :class:`TapLink` over the agents this Lab reached, one connection a pid."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._link: TapLink | None = None
        self._conns: dict[int, Connection] = {}
        self._closed = False

    def link_for(self, pid: int, timeout: float = CONNECT_TIMEOUT_S) -> TapLink | None:
        """The link, once connected to the agent of process ``pid``; None when it has no
        agent (a script that did not opt in, a process that is gone). Raises
        :class:`~ezmsg_lab.runtime._agent_socket.AgentDirError` when the agents'
        directory is not private to this user."""
        with self._lock:
            if self._closed:
                return None
            known = self._conns.get(pid)
            if known is not None and not known.closed:
                return self._link
        conn = _agent_socket.connect(pid, timeout)
        if conn is None:
            return None
        with self._lock:
            if self._closed:
                conn.close()
                return None
            if self._link is None:
                self._link = TapLink("agents")
            self._conns[pid] = conn
            link = self._link
        link.add_conn(conn)
        return link

    @property
    def link(self) -> TapLink | None:
        """The link (None before the first agent was reached)."""
        return self._link

    def connected_pids(self) -> list[int]:
        """The pids whose agents this Lab is connected to now."""
        with self._lock:
            return sorted(pid for pid, conn in self._conns.items() if not conn.closed)

    def close(self) -> None:
        """Disconnect from every agent: each restores its publishers."""
        with self._lock:
            self._closed = True
            link, self._link = self._link, None
            self._conns.clear()
        if link is not None:
            link.close()
