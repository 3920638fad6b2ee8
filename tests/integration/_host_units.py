"""Units for the multi-host tests, run on the test hosts by ``ez.run`` (see _hosts.py).

Importable (not ``__main__``), so the Lab can import their settings classes and validate
``lab.set`` fully. Host B runs ``B/TICK``, a source at a known rate; host C runs
``C/SCALE`` (a settable gain) and ``C/SINK``, which receive B's ticks over TCP. Every
stream meant for another host binds ``0.0.0.0``: a publisher binds 127.0.0.1 otherwise,
and subscribers on other hosts are refused. ``C/SINK`` writes, to the file named in
``EZLAB_SINK_FILE``, the last ticks it saw as ``[sent_perf_ns on B, received_perf_ns on C,
gain]``: each host's own monotonic clock, which the test maps to UTC with the Lab's
per-host offsets.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

import ezmsg.core as ez

TICK_HZ = 200.0
STALL_S = 0.05


@dataclass
class Tick:
    seq: int
    perf_ns: int  # the publisher's perf_counter_ns when it sent the tick
    value: float = 1.0


class TickerSettings(ez.Settings):
    rate_hz: float = TICK_HZ


class Ticker(ez.Unit):
    """A source at ``rate_hz`` on average: deadlines are absolute, so a late tick does
    not slow the rate down (after a stall longer than STALL_S it starts afresh)."""

    SETTINGS = TickerSettings
    INPUT_SETTINGS = ez.InputStream(TickerSettings)
    OUTPUT = ez.OutputStream(Tick, host="0.0.0.0")

    @ez.subscriber(INPUT_SETTINGS)
    async def on_settings(self, msg: TickerSettings) -> None:
        self.apply_settings(msg)

    @ez.publisher(OUTPUT)
    async def tick(self) -> AsyncGenerator:
        period = 1.0 / self.SETTINGS.rate_hz
        next_t = time.monotonic()
        seq = 0
        while True:
            next_t += period
            delay = next_t - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -STALL_S:
                # Stalled (start-up, backpressure from a host cut off): start afresh
                # rather than burst to catch up, which would be another rate.
                next_t = time.monotonic()
            seq += 1
            yield self.OUTPUT, Tick(seq, time.perf_counter_ns())


class ScaleSettings(ez.Settings):
    gain: float = field(default=1.0, metadata={"ge": 0.0, "le": 10.0})


class Scale(ez.Unit):
    SETTINGS = ScaleSettings
    INPUT = ez.InputStream(Tick)
    INPUT_SETTINGS = ez.InputStream(ScaleSettings)
    OUTPUT = ez.OutputStream(Tick, host="0.0.0.0")

    @ez.subscriber(INPUT_SETTINGS)
    async def on_settings(self, msg: ScaleSettings) -> None:
        self.apply_settings(msg)

    @ez.subscriber(INPUT)
    @ez.publisher(OUTPUT)
    async def on_tick(self, msg: Tick) -> AsyncGenerator:
        yield self.OUTPUT, Tick(msg.seq, msg.perf_ns, msg.value * self.SETTINGS.gain)


class SinkState(ez.State):
    seen: deque = None  # type: ignore[assignment]
    last_write: float = 0.0


class Sink(ez.Unit):
    STATE = SinkState
    INPUT = ez.InputStream(Tick)

    async def initialize(self) -> None:
        self.STATE.seen = deque(maxlen=200)

    @ez.subscriber(INPUT)
    async def on_tick(self, msg: Tick) -> None:
        self.STATE.seen.append([msg.perf_ns, time.perf_counter_ns(), msg.value])
        now = time.monotonic()
        if now - self.STATE.last_write > 0.2:
            self.STATE.last_write = now
            path = os.environ["EZLAB_SINK_FILE"]
            with open(path + ".tmp", "w") as f:
                json.dump(list(self.STATE.seen), f)
            os.replace(path + ".tmp", path)


class HostC(ez.Collection):
    SCALE = Scale()
    SINK = Sink()

    def network(self) -> ez.NetworkDefinition:
        return ((self.SCALE.OUTPUT, self.SINK.INPUT),)

    def process_components(self) -> tuple[ez.Component, ...]:
        return (self.SCALE, self.SINK)


def main(role: str) -> None:
    """Run host ``role``'s units against ``EZMSG_GRAPHSERVER_ADDR`` until terminated."""
    if role == "b":
        ez.run(components={"TICK": Ticker()}, root_name="B")
    elif role == "c":
        ez.run(
            components={"C": HostC()},
            connections=(("B/TICK/OUTPUT", "C/SCALE/INPUT"),),
        )
    else:
        raise ValueError(f"unknown role {role!r}")
