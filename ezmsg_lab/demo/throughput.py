"""A free-running pipeline for throughput measurements (benchmarks).

The source publishes fixed-size byte payloads as fast as ezmsg lets it; the relay passes
them on; the sink counts. All units share one process by default (ezmsg's LOCAL path,
the fastest and so the most sensitive to observation overhead).
"""

from collections.abc import AsyncGenerator

import ezmsg.core as ez


class FloodSettings(ez.Settings):
    payload_bytes: int = 64


class Flood(ez.Unit):
    SETTINGS = FloodSettings
    OUTPUT = ez.OutputStream(bytes)

    @ez.publisher(OUTPUT)
    async def flood(self) -> AsyncGenerator[tuple[ez.OutputStream, bytes], None]:
        payload = bytes(self.SETTINGS.payload_bytes)
        while True:
            yield self.OUTPUT, payload


class Relay(ez.Unit):
    INPUT = ez.InputStream(bytes)
    OUTPUT = ez.OutputStream(bytes)

    @ez.subscriber(INPUT)
    @ez.publisher(OUTPUT)
    async def relay(self, msg: bytes) -> AsyncGenerator[tuple[ez.OutputStream, bytes], None]:
        yield self.OUTPUT, msg


class CountState(ez.State):
    received: int = 0


class Count(ez.Unit):
    STATE = CountState
    INPUT = ez.InputStream(bytes)

    @ez.subscriber(INPUT)
    async def count(self, msg: bytes) -> None:
        self.STATE.received += 1


class ThroughputSettings(ez.Settings):
    payload_bytes: int = 64
    separate_processes: bool = False


class ThroughputPipeline(ez.Collection):
    """Flood -> Relay -> Count."""

    SETTINGS = ThroughputSettings

    FLOOD = Flood()
    RELAY = Relay()
    COUNT = Count()

    def configure(self) -> None:
        self.FLOOD.apply_settings(FloodSettings(payload_bytes=self.SETTINGS.payload_bytes))

    def network(self) -> ez.NetworkDefinition:
        return (
            (self.FLOOD.OUTPUT, self.RELAY.INPUT),
            (self.RELAY.OUTPUT, self.COUNT.INPUT),
        )

    def process_components(self) -> tuple[ez.Component, ...]:
        if self.SETTINGS.separate_processes:
            return (self.FLOOD, self.RELAY, self.COUNT)
        return ()
