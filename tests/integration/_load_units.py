"""Units for the load test: paced publishers of numbered messages and a checker that
counts what arrives and every gap in the numbering (importable for unit processes)."""

from __future__ import annotations

import asyncio
import json
import os
import time

import ezmsg.core as ez

# Rates (Hz) of the ten publishers of one group; five groups make the 50 publishers.
GROUP_RATES = (1000.0, 200.0, 100.0, 50.0, 50.0, 20.0, 20.0, 10.0, 10.0, 10.0)
GROUPS = 5


class PacedSettings(ez.Settings):
    rate_hz: float = 100.0
    name: str = ""


class Paced(ez.Unit):
    """Publishes ``(name, n)`` at ``rate_hz`` on an absolute schedule (its long-run rate
    is exactly ``rate_hz`` unless the process cannot keep up)."""

    SETTINGS = PacedSettings
    OUTPUT = ez.OutputStream(tuple)

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
            yield self.OUTPUT, (self.SETTINGS.name, n)


class CheckerSettings(ez.Settings):
    path: str = ""


class CheckerState(ez.State):
    counts: dict
    last_write: float = 0.0


class Checker(ez.Unit):
    """Counts messages and numbering gaps per publisher; writes them to ``path`` (JSON,
    replaced atomically) about once a second."""

    SETTINGS = CheckerSettings
    STATE = CheckerState
    INPUT = ez.InputStream(tuple)

    async def initialize(self) -> None:
        self.STATE.counts = {}

    @ez.subscriber(INPUT)
    async def on_message(self, msg: tuple) -> None:
        name, n = msg
        c = self.STATE.counts.setdefault(name, [0, 0, 0])  # received, gaps, last n
        if c[2] and n > c[2] + 1:
            c[1] += n - c[2] - 1
        c[0] += 1
        c[2] = n
        now = time.monotonic()
        if now - self.STATE.last_write > 1.0:
            self.STATE.last_write = now
            tmp = self.SETTINGS.path + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"t": time.time(), "counts": self.STATE.counts}, f)
            os.replace(tmp, self.SETTINGS.path)


class GroupSettings(ez.Settings):
    group: int = 0
    out_dir: str = ""


class LoadGroup(ez.Collection):
    """Ten paced publishers and their checker, in one process."""

    SETTINGS = GroupSettings

    P0 = Paced()
    P1 = Paced()
    P2 = Paced()
    P3 = Paced()
    P4 = Paced()
    P5 = Paced()
    P6 = Paced()
    P7 = Paced()
    P8 = Paced()
    P9 = Paced()
    CHECK = Checker()

    def publishers(self) -> list[Paced]:
        return [
            self.P0,
            self.P1,
            self.P2,
            self.P3,
            self.P4,
            self.P5,
            self.P6,
            self.P7,
            self.P8,
            self.P9,
        ]

    def configure(self) -> None:
        g = self.SETTINGS.group
        for i, (unit, rate) in enumerate(zip(self.publishers(), GROUP_RATES, strict=True)):
            unit.apply_settings(PacedSettings(rate_hz=rate, name=f"G{g}/P{i}"))
        self.CHECK.apply_settings(
            CheckerSettings(path=os.path.join(self.SETTINGS.out_dir, f"G{g}.json"))
        )

    def network(self) -> ez.NetworkDefinition:
        return tuple((unit.OUTPUT, self.CHECK.INPUT) for unit in self.publishers())


class LoadSettings(ez.Settings):
    out_dir: str = ""


class LoadPipeline(ez.Collection):
    """Five groups, each in its own process: 50 publishers, 7,350 messages a second."""

    SETTINGS = LoadSettings

    G0 = LoadGroup()
    G1 = LoadGroup()
    G2 = LoadGroup()
    G3 = LoadGroup()
    G4 = LoadGroup()

    def groups(self) -> list[LoadGroup]:
        return [self.G0, self.G1, self.G2, self.G3, self.G4]

    def configure(self) -> None:
        for g, group in enumerate(self.groups()):
            group.apply_settings(GroupSettings(group=g, out_dir=self.SETTINGS.out_dir))

    def process_components(self) -> tuple:
        return tuple(self.groups())


def expected_rates(pipeline: str = "LOAD") -> dict[str, float]:
    """Topic -> the publisher's own pacing (the truth the Lab's rates are checked against)."""
    return {
        f"{pipeline}/G{g}/P{i}/OUTPUT": rate
        for g in range(GROUPS)
        for i, rate in enumerate(GROUP_RATES)
    }
