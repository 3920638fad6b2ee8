"""Settings benchmark (the Settings issue's target), beside raw ezmsg in the same run.

How long from the call until the unit's *own code* sees a new value: a
:class:`~ezmsg_lab.demo.SettingsEcho` unit (its own process) stamps ``perf_counter_ns()``
in its settings handler and publishes it. ``perf_counter`` is CLOCK_MONOTONIC on Linux,
one clock for every process of the host, so the stamp is compared with the caller's.

- ``lab.set(unit, value=v, watch=False)``: validation, the per-unit queue, the hop to the
  Lab's control loop, the whole settings object (the current one with ``value`` replaced)
  through the Lab's persistent publisher on the unit's ``INPUT_SETTINGS`` (and the wait
  for ezmsg's settings event, which does not delay the unit);
- raw: a bare ``GraphContext`` on its own loop calling ``update_setting`` (no checks);
- ``lab.set`` with two fields (the same path), for information: ezmsg's own
  ``update_settings`` drops messages (see ``ezmsg_lab.feeds.settings_control``), so there
  is no raw counterpart.

Raw and Lab calls alternate, so both see the same machine. Target: the Lab's median and
p95 at or below raw ``update_setting``'s. Run: ``python -m benchmarks bench_settings``
(5 runs, median and spread) or ``python -m benchmarks.bench_settings [--n 100]`` (one).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import threading
import time
from typing import Any

from . import _common
from ._common import Result, median, p95, report, write_json

N_CHANGES = 200
WARMUP = 5
N_QUICK = 30  # changes per method with --quick
UNIT = "ECHO"
TOPIC = "ECHO/OUTPUT_SEEN"


class RawClient:
    """A bare GraphContext on its own loop thread: raw ezmsg, and the echo listener."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.seen: dict[float, int] = {}  # value -> seen_ns in the unit
        self.cond = threading.Condition()
        self.ctx: Any = None
        self.run(self._open())

    def run(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _open(self) -> None:
        from ezmsg.core.graphcontext import GraphContext

        self.ctx = GraphContext(self.address, auto_start=False)
        await self.ctx.__aenter__()
        self.sub = await self.ctx.subscriber(TOPIC, leaky=True, max_queue=16)
        self.listener = asyncio.ensure_future(self._listen())

    async def _listen(self) -> None:
        while True:
            msg = await self.sub.recv()
            with self.cond:
                self.seen[msg.value] = msg.seen_ns
                self.cond.notify_all()

    def wait_seen(self, value: float, timeout: float = 5.0) -> int:
        deadline = time.monotonic() + timeout
        with self.cond:
            while value not in self.seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"the echo unit never reported value={value}")
                self.cond.wait(left)
            return self.seen[value]

    async def _update(self, value: float) -> int:
        t0 = time.perf_counter_ns()
        await self.ctx.update_setting(UNIT, "value", value)
        return t0

    def update(self, value: float) -> float:
        """Raw ezmsg: ms from the call until the unit's code saw ``value``."""
        t0 = self.run(self._update(value))
        return (self.wait_seen(value) - t0) / 1e6

    def close(self) -> None:
        async def shut() -> None:
            self.listener.cancel()
            await self.ctx.__aexit__(None, None, None)

        try:
            self.run(shut())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def measure(n: int = N_CHANGES) -> dict[str, list[float]]:
    from ezmsg_lab import Lab
    from ezmsg_lab.demo import SettingsEcho
    from ezmsg_lab.feeds.settings_control import unpickled

    out: dict[str, list[float]] = {"raw": [], "lab": [], "lab_confirmed": [], "lab_two": []}
    with Lab() as lab:
        lab.launch(SettingsEcho(), name=UNIT)
        raw = RawClient(tuple(lab.address))
        try:
            value = 0.0

            def settled(v: float) -> None:
                # Start the next call only once the Lab has also taken in the last change
                # (the event reaches its control loop after the unit saw the value).
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    obj = unpickled(lab._settings.current.get(UNIT))
                    if obj is not None and obj.value == v:
                        return
                    time.sleep(0.0002)
                raise TimeoutError(f"the Lab never saw value={v}")

            def one_raw(v: float) -> float:
                ms = raw.update(v)
                settled(v)
                return ms

            def one_lab(v: float) -> tuple[float, float]:
                t0 = time.perf_counter_ns()
                lab.set(UNIT, value=v, watch=False)
                t_return = time.perf_counter_ns()
                return (raw.wait_seen(v) - t0) / 1e6, (t_return - t0) / 1e6

            for i in range(WARMUP + n):
                # alternate which goes first, so neither always follows the other
                if i % 2:
                    raw_ms = one_raw(value := value + 1.0)
                    lab_ms, confirmed_ms = one_lab(value := value + 1.0)
                else:
                    lab_ms, confirmed_ms = one_lab(value := value + 1.0)
                    raw_ms = one_raw(value := value + 1.0)
                value += 1.0
                t1 = time.perf_counter_ns()
                lab.set(UNIT, value=value, label=f"v{i}", watch=False)
                two_ms = (raw.wait_seen(value) - t1) / 1e6
                settled(value)
                if i >= WARMUP:  # the first calls to a process create its control publisher
                    out["raw"].append(raw_ms)
                    out["lab"].append(lab_ms)
                    out["lab_confirmed"].append(confirmed_ms)
                    out["lab_two"].append(two_ms)
        finally:
            raw.close()
    return out


def main(json_path: str | None = None, n: int | None = None) -> list[Result]:
    logging.getLogger("ezmsg").setLevel(logging.ERROR)
    n = n if n is not None else (N_QUICK if _common.QUICK else N_CHANGES)
    print(f"  settings: {n} changes each, unit in its own process")
    data = measure(n)
    raw_med, lab_med = median(data["raw"]), median(data["lab"])
    raw_p95, lab_p95 = p95(data["raw"]), p95(data["lab"])
    results = [
        report(
            Result(
                name="set -> unit sees value, median",
                ours=lab_med,
                raw=raw_med,
                unit="ms",
                target="<= raw",
                met=lab_med <= raw_med,
                note=f"adds {lab_med - raw_med:+.3f} ms",
            )
        ),
        report(
            Result(
                name="set -> unit sees value, p95",
                ours=lab_p95,
                raw=raw_p95,
                unit="ms",
                target="<= raw",
                met=lab_p95 <= raw_p95,
                note=f"adds {lab_p95 - raw_p95:+.3f} ms",
            )
        ),
        report(
            Result(
                name="set returns (confirmed by event), median",
                ours=median(data["lab_confirmed"]),
                raw=None,
                unit="ms",
                target="-",
                met=None,
            )
        ),
        report(
            Result(
                name="set two fields -> unit sees both, median",
                ours=median(data["lab_two"]),
                raw=None,
                unit="ms",
                target="-",
                met=None,
                note="whole object on INPUT_SETTINGS",
            )
        ),
    ]
    write_json(results, json_path)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", help="write results as JSON to this file")
    parser.add_argument("--n", type=int, default=N_CHANGES, help="changes per method")
    args = parser.parse_args()
    main(args.json, args.n)
