"""Units for integration tests (importable, so unit processes can start them)."""

import asyncio
import time

import ezmsg.core as ez
import numpy as np
from ezmsg.util.messages.axisarray import AxisArray, LinearAxis


class FaultSettings(ez.Settings):
    when: str = "never"  # "initialize", "hang" or "never"


class FaultyUnit(ez.Unit):
    SETTINGS = FaultSettings
    OUTPUT = ez.OutputStream(int)

    async def initialize(self) -> None:
        if self.SETTINGS.when == "initialize":
            raise RuntimeError("sensor not found on /dev/fake0")
        if self.SETTINGS.when == "hang":
            # A blocking call in initialize, as with a device that never answers.
            time.sleep(3600)

    @ez.publisher(OUTPUT)
    async def tick(self):
        while True:
            await asyncio.sleep(0.01)
            yield self.OUTPUT, 1


class Listener(ez.Unit):
    INPUT = ez.InputStream(int)

    @ez.subscriber(INPUT)
    async def on_message(self, msg: int) -> None:
        pass


class FaultyPair(ez.Collection):
    """A faulty unit and a healthy listener, each in its own process."""

    SETTINGS = FaultSettings

    FAULTY = FaultyUnit()
    LISTENER = Listener()

    def configure(self) -> None:
        self.FAULTY.apply_settings(self.SETTINGS)

    def network(self) -> ez.NetworkDefinition:
        return ((self.FAULTY.OUTPUT, self.LISTENER.INPUT),)

    def process_components(self) -> tuple:
        return (self.FAULTY, self.LISTENER)


class TickerSettings(ez.Settings):
    rate_hz: float = 100.0


class Ticker(ez.Unit):
    """Publishes a counter at a fixed rate (absolute schedule, no drift)."""

    SETTINGS = TickerSettings
    OUTPUT = ez.OutputStream(int)

    @ez.publisher(OUTPUT)
    async def tick(self):
        period = 1.0 / self.SETTINGS.rate_hz
        next_t = time.monotonic()
        n = 0
        while True:
            next_t += period
            delay = next_t - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            n += 1
            yield self.OUTPUT, n


class BusySettings(ez.Settings):
    work_ms: float = 2.0


class Busy(ez.Unit):
    """Spends exactly ``work_ms`` of CPU on every message (a busy wait, not a sleep)."""

    SETTINGS = BusySettings
    INPUT = ez.InputStream(int)

    @ez.subscriber(INPUT)
    async def on_message(self, msg: int) -> None:
        end = time.perf_counter() + self.SETTINGS.work_ms / 1000.0
        while time.perf_counter() < end:
            pass


class BusyPipeline(ez.Collection):
    SETTINGS = TickerSettings

    TICKER = Ticker()
    BUSY = Busy()

    def configure(self) -> None:
        self.TICKER.apply_settings(self.SETTINGS)

    def network(self) -> ez.NetworkDefinition:
        return ((self.TICKER.OUTPUT, self.BUSY.INPUT),)

    def process_components(self) -> tuple:
        return (self.TICKER, self.BUSY)


class Flood(ez.Unit):
    """Publishes as fast as the loop allows."""

    OUTPUT = ez.OutputStream(int)

    @ez.publisher(OUTPUT)
    async def spin(self):
        n = 0
        while True:
            n += 1
            yield self.OUTPUT, n


class Raiser(ez.Unit):
    """Raises on every message: thousands of errors a second behind a Flood."""

    INPUT = ez.InputStream(int)

    @ez.subscriber(INPUT)
    async def on_message(self, msg: int) -> None:
        raise ValueError(f"bad sample {msg}")


class RaisingPipeline(ez.Collection):
    """A fast publisher and three units that raise on each of its messages, each in
    its own process: more errors a second than a Lab can read."""

    FLOOD = Flood()
    RAISER = Raiser()
    RAISER2 = Raiser()
    RAISER3 = Raiser()

    def network(self) -> ez.NetworkDefinition:
        return (
            (self.FLOOD.OUTPUT, self.RAISER.INPUT),
            (self.FLOOD.OUTPUT, self.RAISER2.INPUT),
            (self.FLOOD.OUTPUT, self.RAISER3.INPUT),
        )

    def process_components(self) -> tuple:
        return (self.FLOOD, self.RAISER, self.RAISER2, self.RAISER3)


class Chatty(Listener):
    """Logs one WARNING through ezmsg's logger when it starts."""

    async def initialize(self) -> None:
        ez.logger.warning(f"chatty {self.address} says hello")


class _FailsToUnpickle:
    def __reduce__(self):
        return (_refuse, ())


def _refuse():
    raise RuntimeError("this record cannot be unpickled")


class CorruptRecords(Listener):
    """Writes two unreadable records into its own channel to the Lab, then logs."""

    async def initialize(self) -> None:
        import logging
        import pickle

        from ezmsg_lab.runtime._backend import _ForwardingHandler

        handler = next(
            h for h in logging.getLogger("ezmsg").handlers if isinstance(h, _ForwardingHandler)
        )
        conn = handler._channel._conn  # the write end of this process's pipe
        conn.send_bytes(b"\x80\x05 this is not a pickle")
        conn.send_bytes(pickle.dumps(_FailsToUnpickle()))
        ez.logger.warning(f"{self.address} still reporting after corrupt records")


class ImageSource(ez.Unit):
    """Publishes a 32 × 48 image (dims y, x) every 20 ms whose value is its column index."""

    OUTPUT = ez.OutputStream(AxisArray)

    @ez.publisher(OUTPUT)
    async def frames(self):
        image = np.tile(np.arange(48, dtype=float), (32, 1))
        while True:
            await asyncio.sleep(0.02)
            yield (
                self.OUTPUT,
                AxisArray(image.copy(), ["y", "x"], axes={"x": LinearAxis(gain=0.5, offset=0.0)}),
            )


class CircleSource(ez.Unit):
    """Publishes 10 points a message on a circle of radius 2 (dims time, xy), at 500 Hz."""

    OUTPUT = ez.OutputStream(AxisArray)

    @ez.publisher(OUTPUT)
    async def points(self):
        n = 0
        while True:
            await asyncio.sleep(0.02)
            phase = 2 * np.pi * (n + np.arange(10)) / 500
            xy = 2.0 * np.stack([np.cos(phase), np.sin(phase)], axis=1)
            axes = {"time": LinearAxis(unit="s", gain=0.002, offset=n * 0.002)}
            yield self.OUTPUT, AxisArray(xy, ["time", "xy"], axes=axes)
            n += 10


class ViewSources(ez.Collection):
    """An image source and a points source, each in its own process."""

    IMAGE = ImageSource()
    CIRCLE = CircleSource()

    def process_components(self) -> tuple:
        return (self.IMAGE, self.CIRCLE)


class SleeperSettings(ez.Settings):
    block_s: float = 3600.0
    after_messages: int = 100  # run normally this long (answering polls), then block


class Sleeper(ez.Unit):
    """Blocks its whole process in a plain ``time.sleep`` after ``after_messages`` (a unit
    stuck in a blocking call: its event loop, and so its control replies, stop)."""

    SETTINGS = SleeperSettings
    INPUT = ez.InputStream(int)

    @ez.subscriber(INPUT)
    async def on_message(self, msg: int) -> None:
        if msg >= self.SETTINGS.after_messages:
            time.sleep(self.SETTINGS.block_s)


class StuckPipeline(ez.Collection):
    """A Ticker feeding a Sleeper, each in its own process."""

    SETTINGS = TickerSettings

    TICKER = Ticker()
    SLEEPER = Sleeper()

    def configure(self) -> None:
        self.TICKER.apply_settings(self.SETTINGS)

    def network(self) -> ez.NetworkDefinition:
        return ((self.TICKER.OUTPUT, self.SLEEPER.INPUT),)

    def process_components(self) -> tuple:
        return (self.TICKER, self.SLEEPER)
