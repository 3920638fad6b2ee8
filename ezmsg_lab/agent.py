"""Opt in to sampled taps for a pipeline the Lab attaches to: run it with this backend.

A Lab samples the topics it taps in the unit processes of pipelines it launched itself;
nothing subscribes to the topic, so ezmsg keeps delivering it as before. A graph started
by your own script gets the same when the script runs its units with
:class:`BackendProcess`::

    import ezmsg.core as ez
    from ezmsg_lab.agent import BackendProcess

    ez.run(SYSTEM=MySystem(), backend_process=BackendProcess)
    # or ez.GraphRunner(components={...}, backend_process=BackendProcess)

and a notebook attaches to its GraphServer (``Lab.attach("127.0.0.1:25978")``) as before.
Without it, the Lab's taps on that graph subscribe to the topic instead, and ezmsg then
serializes every message of it for the kernel.

This module is imported in every unit process (also under the spawn start method): it
imports ezmsg's backend and small modules of the Lab, nothing heavy.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import threading
from typing import Any

from ezmsg.core.backendprocess import DefaultBackendProcess

from .runtime import compat
from .runtime._agent_socket import AgentListener
from .runtime._tap_agent import TapAgent

__all__ = ["BackendProcess"]

logger = logging.getLogger(__name__)


class BackendProcess(DefaultBackendProcess):  # type: ignore[misc]  # ezmsg is untyped (Any)
    """ezmsg's default backend process plus a tap agent a Lab on this host can reach.

    Pass the class (not an instance) as ``backend_process`` to ``ez.run`` or
    ``ez.GraphRunner``. Each process that runs units (the script's own and every unit
    process, under the fork, forkserver and spawn start methods) then:

    - listens on a Unix socket ``<pid>.sock`` in ``/tmp/ezmsg-lab-<uid>`` (or in
      ``$EZMSG_LAB_AGENT_DIR``), a directory made with mode 0700 and used only while it
      is owned by you and closed to everyone else; beside the socket, ``<pid>.key``
      (mode 0600) holds a random key that a Lab must prove it knows (and the agent
      too) before anything is exchanged. Another user can neither reach the socket nor
      answer the key. The Lab finds the socket from the pid in the GraphServer's
      process table, so there is nothing to configure;
    - while a Lab's tap is open on one of its publishers, hands that Lab the messages
      the publisher sends (at most the tap's ``max_rate_hz``; the rest counted as
      dropped) without subscribing to the topic, and restores the publisher when the
      tap closes or the Lab goes. One Lab at a time: a second Lab's taps on this
      process subscribe as without the agent;
    - removes its socket and key when its units stop. A process killed by a signal
      leaves them; they are ignored, and removed by the next agent or Lab that looks.

    While no tap is open the agent costs one thread blocked in ``accept()``. Where the
    socket cannot be made (no Unix sockets, a directory that is not private), the
    process logs a warning and runs without the agent.

    It also carries the Lab's guard against an ezmsg publisher leaking a buffer to a
    subscriber that closes mid-broadcast (a tap closed while its topic publishes), as
    the Lab's own unit processes do.

    Examples
    --------
    >>> import ezmsg.core as ez  # doctest: +SKIP
    >>> from ezmsg_lab.agent import BackendProcess  # doctest: +SKIP
    >>> ez.run(SYSTEM=MySystem(), backend_process=BackendProcess)  # doctest: +SKIP
    """

    def process(self, loop: asyncio.AbstractEventLoop) -> None:
        # process(), not run(): ezmsg runs the first process's units in the script's own
        # process through process() alone.
        compat.guard_publisher_leases()  # before this process creates any publisher
        agent = _ListeningAgent(lambda: list(getattr(self, "pubs", {}).values()))
        try:
            super().process(loop)
        finally:
            agent.close()


class _ListeningAgent:
    """Accepts Labs on this process's socket and runs a :class:`TapAgent` for the one
    connected (a later one is turned away while it is)."""

    def __init__(self, publishers: Any) -> None:
        self._publishers = publishers
        self._lock = threading.Lock()
        self._agent: TapAgent | None = None
        self._closed = False
        self._listener: AgentListener | None = None
        try:
            self._listener = AgentListener()
        except OSError as exc:  # AgentDirError included
            logger.warning("ezmsg-lab tap agent not started: %s", exc)
            return
        self._thread = threading.Thread(
            target=self._accept_loop, name="ezmsg-lab-agent-accept", daemon=True
        )
        self._thread.start()

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while True:
            try:
                conn = listener.accept()
            except Exception as exc:  # a client that failed the key, or close() waking us
                if self._closed or getattr(exc, "errno", None) in (errno.EBADF, errno.EINVAL):
                    return
                continue
            with self._lock:
                if self._closed:
                    conn.close()
                    return
                if self._agent is not None and self._agent.active:
                    conn.close()  # one Lab at a time: the other one subscribes
                    continue
                if self._agent is not None:
                    self._agent.close()
                self._agent = TapAgent(conn, self._publishers)
                self._agent.start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            agent, self._agent = self._agent, None
        if self._listener is not None:
            self._listener.close()
            self._thread.join(2.0)
        if agent is not None:
            with contextlib.suppress(Exception):
                agent.close()
