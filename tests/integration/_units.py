"""Units for integration tests (importable, so unit processes can start them)."""

import asyncio
import time

import ezmsg.core as ez


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
