"""A unit whose cost per message is a setting: for experiments with a known answer.

:class:`Busy` spins ``busy_ms`` of wall-clock time on each message before passing it on,
so its user span (ezmsg's ``user_span_ns`` trace of its handler) grows by exactly 1 ms
per ms of ``busy_ms``: a sweep over it has a known slope. :class:`BusyPipeline` is
the demo source (50 messages/s by default) -> Busy -> a counting sink.
"""

import time
from collections.abc import AsyncGenerator
from dataclasses import field
from typing import Any

import ezmsg.core as ez

from .units import Chunk, SignalSource, SignalSourceSettings, SinkSettings


class BusySettings(ez.Settings):
    busy_ms: float = field(
        default=0.0,
        metadata={"ge": 0.0, "le": 1000.0, "description": "Milliseconds spun per message."},
    )


class Busy(ez.Unit):
    """Spins ``busy_ms`` per message (a stand-in for real work), then passes it on."""

    SETTINGS = BusySettings

    INPUT_SETTINGS = ez.InputStream(BusySettings)
    INPUT = ez.InputStream(Chunk)
    OUTPUT = ez.OutputStream(Chunk)

    @ez.subscriber(INPUT_SETTINGS)
    async def on_settings(self, msg: BusySettings) -> None:
        self.apply_settings(msg)

    @ez.subscriber(INPUT)
    @ez.publisher(OUTPUT)
    async def on_message(self, msg: Chunk) -> AsyncGenerator[tuple[ez.OutputStream, Any], None]:
        # Wall clock, not CPU time: the span is what a message waits, preempted or not.
        until = time.perf_counter() + self.SETTINGS.busy_ms / 1000.0
        while time.perf_counter() < until:
            pass
        yield self.OUTPUT, msg


class Tally(ez.Unit):
    """Counts chunks (the sink of :class:`BusyPipeline`)."""

    SETTINGS = SinkSettings
    INPUT = ez.InputStream(Chunk)

    @ez.subscriber(INPUT)
    async def on_message(self, msg: Chunk) -> None:
        pass


class BusyPipelineSettings(ez.Settings):
    busy: BusySettings = field(default_factory=BusySettings)
    rate_hz: float = field(
        default=50.0, metadata={"ge": 1.0, "le": 1000.0, "description": "Messages per second."}
    )


class BusyPipeline(ez.Collection):
    """Source -> Busy -> Tally, each in its own process."""

    SETTINGS = BusyPipelineSettings

    SOURCE = SignalSource()
    BUSY = Busy()
    SINK = Tally()

    def configure(self) -> None:
        self.SOURCE.apply_settings(
            SignalSourceSettings(fs=self.SETTINGS.rate_hz * 10, chunk_size=10)
        )
        self.BUSY.apply_settings(self.SETTINGS.busy)

    def network(self) -> ez.NetworkDefinition:
        return (
            (self.SOURCE.OUTPUT_SIGNAL, self.BUSY.INPUT),
            (self.BUSY.OUTPUT, self.SINK.INPUT),
        )

    def process_components(self) -> tuple[ez.Component, ...]:
        return (self.SOURCE, self.BUSY, self.SINK)
