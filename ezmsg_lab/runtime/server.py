"""The GraphServer a Lab talks to: embedded in the kernel, or attached to by address."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import warnings
from typing import NamedTuple

from ..errors import LabConnectionError
from . import compat

logger = logging.getLogger(__name__)

# Trace samples the embedded server keeps per process for its stream to the Lab: the
# Lab caps what it takes in at 5,000 a second (feeds/traces.py), so this holds seconds of
# a stalled kernel; ezmsg's default (200,000) held hundreds of MB.
SERVER_TRACE_BUFFER = 10_000

ADDRESS_ENV = "EZMSG_GRAPHSERVER_ADDR"


class Address(NamedTuple):
    """A GraphServer's (host, port)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_address(value: str | tuple[str, int] | Address) -> Address:
    """Parse ``"host:port"`` or ``(host, port)`` into an :class:`Address`.

    Raises ``ValueError`` naming the value and the expected form.
    """
    if isinstance(value, tuple):
        if len(value) != 2:
            raise ValueError(f"address {value!r} must be (host, port)")
        host, port = value
    elif isinstance(value, str):
        host, sep, port_s = value.strip().rpartition(":")
        if not sep or not host:
            raise ValueError(
                f"address {value!r} must look like 'host:port', e.g. '127.0.0.1:25978'"
            )
        try:
            port = int(port_s)
        except ValueError:
            raise ValueError(
                f"address {value!r} has port {port_s!r}, which is not a number; "
                "use 'host:port', e.g. '127.0.0.1:25978'"
            ) from None
    else:
        raise TypeError(f"address must be 'host:port' or (host, port), not {type(value).__name__}")
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port {port!r} in address {value!r} must be an integer in 0..65535")
    return Address(str(host), int(port))


def address_from_env() -> Address | None:
    raw = os.environ.get(ADDRESS_ENV)
    return parse_address(raw) if raw else None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_warned_remote: set[Address] = set()


def warn_remote_attach(address: Address) -> None:
    """Say once per address (per interpreter) what attaching over a network trusts."""
    if is_loopback(address.host) or address in _warned_remote:
        return
    _warned_remote.add(address)
    warnings.warn(
        f"Attaching to the GraphServer at {address} over the network. ezmsg's protocol "
        "trusts whoever reaches its ports: the GraphServer and the unit processes unpickle "
        "what clients send, with no authentication or encryption, so anyone who can "
        "connect to them can run code on those hosts (and this Lab sends settings and "
        "control requests in the clear). Keep every host of the graph on a private "
        "network (a lab LAN or a VPN such as WireGuard), firewall the GraphServer's port "
        "and the stream ports from everything else, or reach a single server through an "
        f"SSH tunnel (ssh -L {address.port}:127.0.0.1:{address.port} <server host>, then "
        f"Lab.attach('127.0.0.1:{address.port}')). Said once per address.",
        UserWarning,
        stacklevel=3,
    )


class EmbeddedServer:
    """An ezmsg GraphServer running in a daemon thread of this process.

    Binds loopback by default. Binding elsewhere warns: ezmsg's protocol unpickles what
    clients send, so whoever reaches the port can run code in this kernel.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        from ezmsg.core.graphserver import GraphServer

        if not is_loopback(host):
            warnings.warn(
                f"The embedded GraphServer binds {host}, not loopback: ezmsg's protocol "
                "unpickles what clients send and has no authentication, so anyone who "
                "reaches this port can run code in your kernel. Bind 127.0.0.1 unless "
                "other machines must connect, and then only on a trusted network.",
                UserWarning,
                stacklevel=3,
            )
        self._server = GraphServer(name="ezmsg-lab-GraphServer")
        compat.limit_server_trace_buffer(self._server, SERVER_TRACE_BUFFER)
        try:
            self._server.start((host, port))
        except OSError as exc:
            raise LabConnectionError(
                f"Could not start a GraphServer on {host}:{port}: {exc}. "
                "Choose another port, or pass port=0 for a free one."
            ) from exc
        self.address = Address(*self._server.address)
        logger.debug("embedded GraphServer at %s", self.address)

    @property
    def alive(self) -> bool:
        return bool(self._server.is_alive())

    def prune(self) -> None:
        """Forget what ezmsg's GraphServer keeps of clients that have gone.

        ezmsg 3.9.0 and 3.10 keep every pub/sub client's finished handler task in
        ``_client_tasks`` and every released shared-memory segment in ``shms``, for the
        server's lifetime: a few per launch, which add up over a notebook's hundreds of
        launches. Runs on the server's own loop, so it never races the server's handlers.
        """
        loop = compat.server_loop(self._server)
        if loop is None or loop.is_closed() or not self._server.is_alive():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(compat.prune_server, self._server)

    def stop(self, timeout: float = 5.0) -> None:
        if not self._server.is_alive():
            return
        compat.shutdown_server(self._server)
        self._server.join(timeout)
        if self._server.is_alive():
            logger.warning("GraphServer thread did not stop within %.1f s", timeout)


async def probe(address: Address, timeout: float) -> None:
    """Open and close one connection to the GraphServer, or raise LabConnectionError."""
    from ezmsg.core.netprotocol import close_stream_writer, read_str

    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(address.host, address.port), timeout
        )
        try:
            await asyncio.wait_for(read_str(reader), timeout)
        finally:
            await close_stream_writer(writer)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
        raise LabConnectionError(
            f"No GraphServer answers at {address} ({type(exc).__name__}: {exc}). "
            "Start one with `ezmsg serve --address "
            f"{address}` or check the address; or use Lab() to embed one in this kernel."
        ) from None
