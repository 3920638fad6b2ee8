"""A multichannel AxisArray source for taps, scopes and their benchmarks.

Channel ``c`` carries ``sin(2 pi (c + 1) base_hz t)`` (known content), in messages of
``chunk`` samples × ``channels``, paced at ``fs`` or, with ``free_running``, as fast as
ezmsg lets it publish.
"""

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

import ezmsg.core as ez
import numpy as np
from ezmsg.util.messages.axisarray import AxisArray, CoordinateAxis, LinearAxis


class MultiSineSettings(ez.Settings):
    channels: int = 8
    fs: float = 1000.0
    chunk: int = 10
    base_hz: float = 1.0
    free_running: bool = False


class MultiSine(ez.Unit):
    """``channels`` sines in AxisArrays with dims ``("time", "ch")``."""

    SETTINGS = MultiSineSettings
    OUTPUT = ez.OutputStream(AxisArray)

    @ez.publisher(OUTPUT)
    async def generate(self) -> AsyncGenerator[tuple[ez.OutputStream, Any], None]:
        s = self.SETTINGS
        freqs = (np.arange(s.channels) + 1) * s.base_hz
        labels = np.array([f"ch{c}" for c in range(s.channels)])
        sample = 0
        start = time.monotonic()
        t0 = time.time()
        while True:
            if not s.free_running:
                delay = start + sample / s.fs - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            t = (sample + np.arange(s.chunk)) / s.fs
            data = np.sin(2 * np.pi * t[:, None] * freqs[None, :])
            yield (
                self.OUTPUT,
                AxisArray(
                    data,
                    ["time", "ch"],
                    axes={
                        "time": LinearAxis(unit="s", gain=1.0 / s.fs, offset=t0 + t[0]),
                        "ch": CoordinateAxis(labels, ["ch"]),
                    },
                ),
            )
            sample += s.chunk


class Drain(ez.Unit):
    """Takes every message: the source's next unit, as in a real graph."""

    INPUT = ez.InputStream(AxisArray)

    @ez.subscriber(INPUT)
    async def take(self, msg: AxisArray) -> None:
        return None


class MultiSinePipeline(ez.Collection):
    """MultiSine -> Drain."""

    SETTINGS = MultiSineSettings

    SOURCE = MultiSine()
    SINK = Drain()

    def configure(self) -> None:
        self.SOURCE.apply_settings(self.SETTINGS)

    def network(self) -> ez.NetworkDefinition:
        return ((self.SOURCE.OUTPUT, self.SINK.INPUT),)
