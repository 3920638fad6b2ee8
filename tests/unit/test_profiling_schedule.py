"""The profiling poller's schedule without ezmsg: after the process table changes it polls
at once and twice more shortly after (a first rate needs two polls), and those follow-ups
do not push its regular cadence back."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from types import SimpleNamespace

from ezmsg_lab.feeds.profiling import FOLLOW_UPS_S, ProfilingPoller
from ezmsg_lab.model.metrics import MetricsStore


class _Topology:
    def __init__(self) -> None:
        self.snapshot = None
        self.listeners: list = []

    def subscribe(self, fn):
        self.listeners.append(fn)
        return lambda: self.listeners.remove(fn)


class _Poller(ProfilingPoller):
    """Records when it polls instead of asking ezmsg."""

    times: list[float]

    async def poll_once(self) -> None:
        self.times.append(asyncio.get_running_loop().time())


def test_topology_change_polls_at_once_then_follow_ups_then_on_cadence():
    async def scenario() -> tuple[float, list[float]]:
        topology = _Topology()
        conn = SimpleNamespace(lost=None)
        poller = _Poller(conn, topology, MetricsStore(), rate_hz=1.0)  # type: ignore[arg-type]
        poller.times = []
        await poller.start()
        await asyncio.sleep(0.1)
        woken = asyncio.get_running_loop().time()
        for fn in topology.listeners:
            fn(SimpleNamespace(processes={"p1": object(), "p2": object()}))
        await asyncio.sleep(1.6)
        await poller.stop()
        return woken, [t - woken for t in poller.times if t >= woken]

    woken, after = asyncio.run(scenario())
    first, second = FOLLOW_UPS_S
    assert len(after) >= 4, after
    assert after[0] < 0.1  # at once
    assert first <= after[1] - after[0] < first + 0.15
    assert second <= after[2] - after[1] < second + 0.15
    # The cadence restarts at the change: the next regular poll is one period after it,
    # not one period after the last follow-up (nor two).
    assert 0.95 <= after[3] < 1.3, after


def test_forkserver_preload_survives_a_module_that_raises(tmp_path):
    (tmp_path / "boom_on_import.py").write_text("raise RuntimeError('boom')\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]),
        "EZMSG_LAB_FORKSERVER_PRELOAD": "boom_on_import,no_such_module_here,colorsys",
    }
    code = "import sys, ezmsg_lab.runtime._preload; print('colorsys' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_component_modules_are_what_a_unit_process_would_import():
    from ezmsg_lab.demo import DemoPipeline
    from ezmsg_lab.runtime.pipeline import _component_modules

    assert _component_modules({"DEMO": DemoPipeline()}) == ["ezmsg_lab.demo.units"]
