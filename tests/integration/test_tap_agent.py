"""Sampled taps on a graph the Lab did not launch: a user's script that opts in with
``ez.run(..., backend_process=ezmsg_lab.agent.BackendProcess)``, attached to.

Known content: the script's counter publishes AxisArrays holding ``4n .. 4n+3`` for its
``n``-th message; its relay (in another process) republishes each message it receives.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ezmsg_lab import Lab, TapError
from ezmsg_lab.feeds.taps import AGENT_VIA
from ezmsg_lab.runtime import _agent_socket

from ..conftest import wait_until
from ._script_graph import ScriptGraph, script_graph

pytestmark = [pytest.mark.integration, pytest.mark.interpreter]

WORKTREE = str(Path(__file__).resolve().parents[2])
COUNTER = "SCRIPT/COUNTER/OUTPUT"
RELAY = "SCRIPT/RELAY/OUTPUT"

AGENT_SCRIPT = textwrap.dedent(
    '''
    """A user's script that opts in to sampled taps."""
    import asyncio
    import json
    import multiprocessing
    import os

    import numpy as np
    import ezmsg.core as ez
    from ezmsg.util.messages.axisarray import AxisArray, LinearAxis

    from ezmsg_lab.agent import BackendProcess


    class Counter(ez.Unit):
        OUTPUT = ez.OutputStream(AxisArray)

        @ez.publisher(OUTPUT)
        async def count(self):
            n = 0
            while True:
                await asyncio.sleep(0.004)
                data = np.arange(n * 4, n * 4 + 4, dtype=float).reshape(4, 1)
                yield self.OUTPUT, AxisArray(
                    data, ["time", "ch"],
                    axes={"time": LinearAxis(unit="s", gain=0.001, offset=n * 0.004)},
                )
                if n == 0:
                    with open(os.environ["EZLAB_SEEN"], "w") as f:
                        json.dump({"started": True}, f)
                n += 1


    class Relay(ez.Unit):
        INPUT = ez.InputStream(AxisArray)
        OUTPUT = ez.OutputStream(AxisArray)

        @ez.subscriber(INPUT)
        @ez.publisher(OUTPUT)
        async def on_message(self, msg: AxisArray):
            yield self.OUTPUT, msg


    class Script(ez.Collection):
        RELAY = Relay()
        COUNTER = Counter()

        def network(self) -> ez.NetworkDefinition:
            return ((self.COUNTER.OUTPUT, self.RELAY.INPUT),)

        def process_components(self):
            # The relay first: ezmsg runs it in the script's own process, the counter
            # in a unit process started with the start method under test.
            return (self.RELAY, self.COUNTER)


    if __name__ == "__main__":
        multiprocessing.set_start_method(os.environ["EZLAB_START"])
        ez.run(SCRIPT=Script(), backend_process=BackendProcess)
    '''
)


@pytest.fixture
def agent_dir(monkeypatch):
    # Short (a Unix socket path has ~107 bytes) and this test's own.
    path = Path(tempfile.mkdtemp(prefix="ezl-"))
    path.chmod(0o700)
    monkeypatch.setenv(_agent_socket.ENV_DIR, str(path))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _env(agent_dir: Path, method: str) -> dict[str, str]:
    return {"PYTHONPATH": WORKTREE, _agent_socket.ENV_DIR: str(agent_dir), "EZLAB_START": method}


@contextlib.contextmanager
def _opted_in_script(tmp_path: Path, agent_dir: Path) -> Iterator[tuple[ScriptGraph, Lab]]:
    """The script running (fork), a Lab attached, and its counter's process known."""
    env = _env(agent_dir, "fork")
    with script_graph(tmp_path, AGENT_SCRIPT, env) as graph, Lab.attach(graph.address) as lab:
        assert wait_until(lambda: "SCRIPT/COUNTER" in _pids(lab), 15)
        yield graph, lab


def _pids(lab: Lab) -> dict[str, int]:
    """unit address -> pid, from the GraphServer's process table."""
    return {
        unit: int(proc.pid) for proc in lab.snapshot().processes.values() for unit in proc.units
    }


def _files(agent_dir: Path) -> set[str]:
    return {p.name for p in agent_dir.iterdir()}


def _check_counter(tap) -> None:
    """Values exact, in order, once; every message missing counted as dropped."""

    def exact() -> bool:
        d0, msgs, d1 = tap.dropped, tap.messages(), tap.dropped
        firsts = np.array([m.data[0, 0] for m in msgs]) / 4
        for m, n in zip(msgs, firsts, strict=True):
            np.testing.assert_array_equal(m.data[:, 0], np.arange(n * 4, n * 4 + 4))
        steps = np.diff(firsts)
        assert (steps >= 1).all(), "out of order or duplicated"
        return d0 == d1 and int((steps - 1).sum()) == d0

    assert wait_until(exact, 10), tap


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_an_opted_in_script_is_sampled_without_a_subscriber(tmp_path, agent_dir, method):
    env = _env(agent_dir, method)
    with script_graph(tmp_path, AGENT_SCRIPT, env) as graph, Lab.attach(graph.address) as lab:
        assert wait_until(lambda: {"SCRIPT/COUNTER", "SCRIPT/RELAY"} <= set(_pids(lab)), 15)
        pids = _pids(lab)
        assert pids["SCRIPT/RELAY"] == graph.script.pid  # ezmsg's first process: the script
        assert pids["SCRIPT/COUNTER"] != graph.script.pid
        want = {
            f"{pids[u]}.{ext}"
            for u in ("SCRIPT/COUNTER", "SCRIPT/RELAY")
            for ext in ("sock", "key")
        }
        assert wait_until(lambda: want <= _files(agent_dir), 15), _files(agent_dir)

        def downstream(topic: str) -> list[str]:
            return sorted(lab.snapshot().graph.get(topic, []))

        before = {t: downstream(t) for t in (COUNTER, RELAY)}
        counter = lab.tap(COUNTER, window="60s", via="sampled")
        relay = lab.tap(RELAY, window="60s", max_rate_hz=20)
        try:
            assert counter.inspect()["via"] == f"{AGENT_VIA} (at most 2000 msg/s)"
            assert relay.inspect()["via"] == f"{AGENT_VIA} (at most 20 msg/s)"
            assert wait_until(lambda: counter.received >= 100, 15), counter
            assert wait_until(lambda: relay.received >= 20 and relay.dropped >= 20, 15), relay
            # No subscriber joined either topic: ezmsg's paths are what they were.
            assert {t: downstream(t) for t in before} == before
            _check_counter(counter)
            _check_counter(relay)
            link = lab._tap_service._agents.link
            assert link is not None and link.installed_topics() == {COUNTER, RELAY}
        finally:
            counter.close()
            relay.close()
        # The last taps closed: both processes restore their publishers.
        assert wait_until(lambda: link.installed_topics() == set(), 5)
        # A stopped script (Ctrl-C) removes its sockets and keys.
        os.killpg(graph.script.pid, signal.SIGINT)
        assert wait_until(lambda: graph.script.poll() is not None, 30), graph.log()
        assert wait_until(lambda: _files(agent_dir) == set(), 10), _files(agent_dir)


def test_a_killed_script_leaves_no_confusion(tmp_path, agent_dir):
    with _opted_in_script(tmp_path, agent_dir) as (graph, lab):
        pid = _pids(lab)["SCRIPT/COUNTER"]
        tap = lab.tap(COUNTER, window="30s", via="sampled")
        assert wait_until(lambda: tap.received >= 20, 15), tap
        os.killpg(graph.script.pid, signal.SIGKILL)
        assert wait_until(lambda: not _agent_socket.pid_alive(pid), 10)
        # A killed process cannot remove its files; nothing answers there any more, and
        # the first look removes them.
        assert f"{pid}.sock" in _files(agent_dir)
        assert _agent_socket.connect(pid, timeout=1.0) is None
        assert f"{pid}.sock" not in _files(agent_dir)
        assert f"{pid}.key" not in _files(agent_dir)
        received = tap.received
        tap.close()
        assert tap.received == received


def test_another_users_directory_is_refused_and_the_tap_subscribes(tmp_path, agent_dir):
    with _opted_in_script(tmp_path, agent_dir) as (graph, lab):
        assert wait_until(lambda: any(n.endswith(".sock") for n in _files(agent_dir)), 15)
        agent_dir.chmod(0o755)  # readable by others: the Lab no longer trusts it
        try:
            with pytest.raises(TapError, match="mode 755"):
                lab.tap(COUNTER, via="sampled")
            tap = lab.tap(COUNTER, window="10s")
            assert tap.inspect()["via"] == "subscriber (leaky)"
            assert wait_until(lambda: tap.received >= 20, 15), tap
            tap.close()
        finally:
            agent_dir.chmod(0o700)


def test_a_sampled_tap_follows_a_restarted_script(tmp_path, agent_dir):
    with _opted_in_script(tmp_path, agent_dir) as (graph, lab):
        old = _pids(lab)["SCRIPT/COUNTER"]
        tap = lab.tap(COUNTER, window="60s", via="sampled")
        assert wait_until(lambda: tap.received >= 20, 15), tap
        graph.restart()  # the user stops the script and runs it again
        assert wait_until(lambda: _pids(lab).get("SCRIPT/COUNTER") not in (None, old), 15)
        n = tap.received
        assert wait_until(lambda: tap.received >= n + 50, 15), tap
        assert tap.inspect()["via"].startswith(AGENT_VIA)

        def two_runs_and_exact_drops() -> bool:
            d0, msgs, d1 = tap.dropped, tap.messages(), tap.dropped
            firsts = np.array([m.data[0, 0] for m in msgs]) / 4
            # Two runs, each in order with no duplicates: the new counter starts from 0.
            restarts = np.flatnonzero(np.diff(firsts) <= 0)
            assert len(restarts) == 1, firsts
            first, second = firsts[: restarts[0] + 1], firsts[restarts[0] + 1 :]
            assert (np.diff(first) > 0).all() and (np.diff(second) > 0).all()
            gaps = int((np.diff(first) - 1).sum() + (np.diff(second) - 1).sum())
            return d0 == d1 == gaps

        assert wait_until(two_runs_and_exact_drops, 10), tap
        tap.close()
