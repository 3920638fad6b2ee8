"""Concurrent observers of one pipeline: two Labs, a raw GraphContext polling
``profiling_snapshot_all`` every 100 ms (which resets ezmsg's shared ``*_window``
fields), and a raw client changing settings. Each Lab's rates stay within 2 % of the
source's pacing; every change shows up in every Lab's history with its own source."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from ezmsg_lab import Lab
from ezmsg_lab.demo import DemoPipeline

from ..conftest import wait_until

pytestmark = pytest.mark.integration


class RawClient(threading.Thread):
    """A plain ezmsg client on its own loop: polls profiling every 100 ms and applies
    the settings changes queued for it."""

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.stop = threading.Event()
        self.polls = 0
        self.todo: list[float] = []
        self.done: list[float] = []
        self.error: BaseException | None = None
        self.ready = threading.Event()

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by the test
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        from ezmsg.core.graphcontext import GraphContext

        async with GraphContext(self.address, auto_start=False) as ctx:
            self.ready.set()
            while not self.stop.is_set():
                await ctx.profiling_snapshot_all()
                self.polls += 1
                while self.todo:
                    value = self.todo.pop(0)
                    await ctx.update_setting("DEMO/FILTER", "cutoff_hz", value)
                    self.done.append(value)
                await asyncio.sleep(0.1)


def _rate(lab: Lab, topic: str, t0, t1) -> float:
    """The Lab's rate of ``topic`` over [t0, t1], from its own polls' counters."""
    m = lab.metrics(topics=[topic])
    m = m[(m["metric"] == "messages_total") & (m["kind"] == "publisher")]
    m = m[(m["time"] >= t0) & (m["time"] <= t1) & (m["status"].astype(str) == "ok")]
    dt = (m["time"].iloc[-1] - m["time"].iloc[0]).total_seconds()
    return float((m["value"].iloc[-1] - m["value"].iloc[0]) / dt)


def test_two_labs_a_raw_poller_and_a_raw_setter(figures):
    import pandas as pd

    with Lab(poll_hz=5) as lab1:
        lab2 = Lab.attach(str(lab1.address), poll_hz=5)
        raw = RawClient(tuple(lab1.address))
        try:
            lab1.launch(DemoPipeline(), name="DEMO")
            source = lab1.settings("DEMO/SOURCE").set_index("field")["value"]
            truth = float(source["fs"]) / float(source["chunk_size"])
            lab1.wait_for_profile(15)
            lab2.wait_for_profile(15)
            raw.start()
            assert raw.ready.wait(15) and raw.error is None, raw.error
            t0 = pd.Timestamp.now(tz="UTC")
            # Changes from each client, each with its own value.
            made = {"lab1": [31.0, 33.0], "lab2": [32.0, 34.0], "raw": [35.0, 36.0]}
            for i in range(2):
                lab1.set("DEMO/FILTER", cutoff_hz=made["lab1"][i], watch=False)
                lab2.set("DEMO/FILTER", cutoff_hz=made["lab2"][i], watch=False)
                raw.todo.append(made["raw"][i])
                assert wait_until(lambda n=i: len(raw.done) > n, 10), raw.error
            time.sleep(max(0.0, 6.0 - (pd.Timestamp.now(tz="UTC") - t0).total_seconds()))
            t1 = pd.Timestamp.now(tz="UTC")
            raw.stop.set()
            raw.join(10)
            assert raw.error is None, raw.error
            assert raw.polls >= 20
            topic = "DEMO/SOURCE/OUTPUT_SIGNAL"
            rates = {
                name: _rate(lab, topic, t0, t1) for name, lab in (("lab1", lab1), ("lab2", lab2))
            }
            for name, rate in rates.items():
                assert abs(rate - truth) / truth <= 0.02, (name, rate, truth)
            # Every change is in every Lab's history, each Lab's own marked as its own.
            # ezmsg stamps every change with the session of the unit's process that
            # applied it, whoever asked (measured with 3.9.0), so a Lab can tell its own
            # changes from other clients' but not one other client from another.
            values = {v: who for who, vs in made.items() for v in vs}
            sessions: dict[str, dict[float, str]] = {}
            for name, lab in (("lab1", lab1), ("lab2", lab2)):
                hist = lab.settings_history("DEMO/FILTER")
                hist = hist[(hist["field"] == "cutoff_hz") & hist["new"].isin(list(values))]
                assert set(hist["new"]) == set(values), (name, hist)
                by = dict(zip(hist["new"], hist["by"], strict=True))
                expected = {
                    v: "this Lab" if who == name else "another client" for v, who in values.items()
                }
                assert by == expected, (name, by)
                sessions[name] = dict(zip(hist["new"], hist["source_session"], strict=True))
            assert sessions["lab1"] == sessions["lab2"]
            distinct_sources = len(set(sessions["lab1"].values()))
        finally:
            raw.stop.set()
            lab2.close()
    figures(
        what="2 Labs + raw poller (100 ms) + raw setter",
        tried=len(values),
        raw_polls=raw.polls,
        distinct_sources_of_3_clients=distinct_sources,
        rate_error_pct=round(max(abs(r - truth) / truth for r in rates.values()) * 100, 2),
    )
