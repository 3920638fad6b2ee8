"""Settings benchmark (the Settings issue's target), beside raw ezmsg in the same run.

How long from the call until the unit's *own code* sees a new value: a
:class:`~ezmsg_lab.demo.SettingsEcho` unit (its own process) stamps ``perf_counter_ns()``
in its settings handler and publishes it. ``perf_counter`` is CLOCK_MONOTONIC on Linux,
one clock for every process of the host, so the stamp is compared with the caller's.

- ``lab.set(unit, value=v, watch=False)``: validation, the per-unit queue, the hop to the
  Lab's control loop, ``update_setting`` (and the wait for ezmsg's settings event, which
  does not delay the unit);
- raw: a bare ``GraphContext`` on its own loop calling ``update_setting`` (no checks);
- ``lab.set`` with two fields (one whole object published on ``INPUT_SETTINGS``), for
  information: ezmsg's own ``update_settings`` drops messages (see
  ``ezmsg_lab.feeds.settings_control``), so there is no raw counterpart.

Raw and Lab calls alternate, so both see the same machine. Target: the Lab adds at most
0.5 ms to the median. Run: ``python -m benchmarks.bench_settings [--n 100] [--json f]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import threading
import time
from typing import Any

from ._common import Result, median, report, write_json

N_CHANGES = 100
WARMUP = 5
TARGET_ADDED_MS = 0.5
UNIT = "ECHO"
TOPIC = "ECHO/OUTPUT_SEEN"


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18] if len(values) >= 20 else max(values)


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


def main(json_path: str | None = None, n: int = N_CHANGES) -> list[Result]:
    logging.getLogger("ezmsg").setLevel(logging.ERROR)
    print(f"== settings (Settings issue): {n} changes each, unit in its own process")
    data = measure(n)
    raw_med, lab_med = median(data["raw"]), median(data["lab"])
    added = lab_med - raw_med
    for name, key in (
        ("raw GraphContext.update_setting", "raw"),
        ("lab.set, one field", "lab"),
        ("lab.set returns (confirmed by event)", "lab_confirmed"),
        ("lab.set, two fields (one whole object)", "lab_two"),
    ):
        vals = data[key]
        print(f"  {name:<40} median {median(vals):7.3f} ms   p95 {_p95(vals):7.3f} ms")
    print(f"  the Lab adds {added:+.3f} ms to the median (ratio {lab_med / raw_med:.3f})")
    results = [
        report(
            Result(
                name="set -> unit sees value, median",
                ours=lab_med,
                raw=raw_med,
                unit="ms",
                target=f"+<={TARGET_ADDED_MS} ms",
                met=added <= TARGET_ADDED_MS,
                note=f"adds {added:+.3f} ms",
            )
        ),
        report(
            Result(
                name="set -> unit sees value, p95",
                ours=_p95(data["lab"]),
                raw=_p95(data["raw"]),
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
