"""Replay recorded AxisArray messages into a running graph (on the control loop).

The Lab publishes on a topic of its own, connects it to the input stream it was asked
to feed, waits until the unit's process has connected (a message broadcast before that
is lost), sends the messages at the recorded pace or as fast as backpressure lets it,
waits until every message was acknowledged, then disconnects and closes the publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import LabTimeoutError
from ..runtime import compat
from ..runtime.connection import Connection

REPLAY_PREFIX = "EZMSG_LAB/REPLAY"


def message_class(msg_type: str) -> Any:
    """The recorded message class if this kernel has already imported it and it is an
    AxisArray (the demo's ``Chunk``), else ezmsg's ``AxisArray``. Nothing is imported:
    a recording never chooses which code runs."""
    from ezmsg.util.messages.axisarray import AxisArray

    module, _, name = msg_type.rpartition(".")
    obj: Any = sys.modules.get(module)
    for part in name.split(".") if obj is not None else ():
        obj = getattr(obj, part, None)
    if isinstance(obj, type) and issubclass(obj, AxisArray):
        return obj
    return AxisArray


def to_axisarray(stored: Any, cls: Any = None) -> Any:
    """An ezmsg AxisArray (of ``cls``) from a recorded one (duck-typed: ``data``,
    ``dims``, ``axes`` with ``gain``/``offset`` or ``data``/``dims``, ``attrs``, ``key``)."""
    from ezmsg.util.messages.axisarray import AxisArray, CoordinateAxis, LinearAxis

    axes: dict[str, Any] = {}
    for name, axis in stored.axes.items():
        if hasattr(axis, "gain"):
            axes[name] = LinearAxis(unit=axis.unit, gain=axis.gain, offset=axis.offset)
        else:
            axes[name] = CoordinateAxis(
                data=np.array(axis.data), dims=list(axis.dims), unit=axis.unit
            )
    return (cls or AxisArray)(
        data=np.array(stored.data),
        dims=list(stored.dims),
        axes=axes,
        attrs=dict(stored.attrs),
        key=stored.key,
    )


async def replay(
    conn: Connection,
    messages: Sequence[Any],
    offsets_s: Sequence[float],
    into: str,
    owner_pid: int | None,
    connect_timeout: float,
) -> int:
    """Publish ``messages`` into ``into``, message i at ``offsets_s[i]`` seconds after
    the first (all zeros: as fast as possible). Returns the number sent."""
    topic = f"{REPLAY_PREFIX}/{uuid.uuid4().hex[:12]}"
    pub = await conn.call(lambda ctx: ctx.publisher(topic))
    connected = False
    try:
        await conn.call(lambda ctx: ctx.connect(topic, into))
        connected = True
        await _wait_connected(pub, into, owner_pid, connect_timeout)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for msg, offset in zip(messages, offsets_s, strict=True):
            delay = t0 + offset - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await pub.broadcast(msg)
        await pub.sync()  # every message acknowledged by the unit
        return len(messages)
    finally:
        if connected:
            with contextlib.suppress(Exception):
                await conn.call(lambda ctx: ctx.disconnect(topic, into))
        pub.close()
        with contextlib.suppress(Exception, asyncio.TimeoutError):
            await asyncio.wait_for(pub.wait_closed(), 2.0)
        with contextlib.suppress(Exception):
            compat.forget_client(conn.context, pub)


async def _wait_connected(pub: Any, into: str, pid: int | None, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        pids = compat.publisher_channel_pids(pub)
        if pids is None or pid is None or pid in pids:
            return
        if loop.time() > deadline:
            raise LabTimeoutError(
                f"The process (pid {pid}) that owns {into!r} did not connect to the replay "
                f"within {timeout:g} s, so nothing was sent. Is its pipeline running?"
            )
        await asyncio.sleep(0.005)
