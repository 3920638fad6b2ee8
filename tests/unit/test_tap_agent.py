"""The unit-process side of sampled taps, without ezmsg: a publisher-like object whose
``broadcast`` the agent replaces while a tap wants its topic, and restores after."""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import pickle
import threading
import time

import pytest

from ezmsg_lab.runtime._tap_agent import (
    BUDGET_FRACTION,
    MAX_RISE,
    MIN_SCALE,
    RateGate,
    TapAgent,
    TapBudget,
    TapControl,
    TapInstalled,
    TapSample,
    as_sample,
    budget_scale,
)

from ..conftest import wait_until


class FakePublisher:
    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.sent: list[object] = []

    def broadcast(self, obj: object) -> str:
        self.sent.append(obj)
        return "sent"


def test_rate_gate_admits_its_burst_then_refuses_until_tokens_refill():
    gate = RateGate(10.0)  # burst max(8, 1) = 8
    admitted = sum(gate.admit() for _ in range(100))
    assert 8 <= admitted <= 9  # the burst (and what refilled meanwhile)
    assert all(RateGate(math.inf).admit() for _ in range(1000))


def _recv(conn, kind, timeout=5.0):
    box: list[object] = []

    def got() -> bool:
        box.extend(_drain(conn, kind))
        return bool(box)

    assert wait_until(got, timeout), f"no {kind.__name__} arrived"
    return box


def test_agent_samples_a_wanted_publisher_passes_every_message_on_and_restores_it():
    lab_end, unit_end = multiprocessing.Pipe(duplex=True)
    pub, other = FakePublisher("A/OUT"), FakePublisher("B/OUT")
    agent = TapAgent(unit_end, lambda: [pub, other])
    agent.start()
    try:
        lab_end.send(TapControl({"A/OUT": math.inf}))
        installed = _recv(lab_end, TapInstalled)
        assert installed[-1].topics == ["A/OUT"]
        assert "broadcast" in vars(pub) and "broadcast" not in vars(other)
        results = [pub.broadcast(i) for i in range(5)]
        assert results == ["sent"] * 5 and pub.sent == [0, 1, 2, 3, 4]  # unchanged path
        samples: list[TapSample] = []
        assert wait_until(
            lambda: samples.extend(_drain(lab_end, TapSample)) or len(samples) >= 5, 5
        )
        assert [s.message for s in samples] == [0, 1, 2, 3, 4]
        assert [s.seq for s in samples] == [1, 2, 3, 4, 5]
        # No tap wants it any more: the publisher's own method is back.
        lab_end.send(TapControl({}))
        assert wait_until(lambda: "broadcast" not in vars(pub), 5)
        assert pub.broadcast(9) == "sent"
    finally:
        agent.close()
        lab_end.close()
    assert "broadcast" not in vars(pub)


def test_agent_samples_a_publisher_made_after_the_control_arrived():
    lab_end, unit_end = multiprocessing.Pipe(duplex=True)
    pubs: list[FakePublisher] = []
    agent = TapAgent(unit_end, lambda: list(pubs))
    agent.start()
    try:
        lab_end.send(TapControl({"A/OUT": 1.0}))
        pubs.append(FakePublisher("A/OUT"))
        assert wait_until(lambda: "broadcast" in vars(pubs[0]), 5)
        # Idle a while after the install, then a burst: the idle time is no rate (a rate
        # from it would look at every 16th message of the burst and take 4, not 8).
        time.sleep(0.03)
        for i in range(50):
            pubs[0].broadcast(i)
        assert pubs[0].sent == list(range(50))
        samples: list[TapSample] = []
        assert wait_until(
            lambda: samples.extend(_drain(lab_end, TapSample)) or len(samples) >= 8, 5
        )
        # The rate's burst (8) went through; every other message is a gap in seq.
        assert len(samples) <= 9 and samples[-1].seq <= 50
    finally:
        agent.close()
        lab_end.close()


def _drain(conn, kind) -> list:
    # The agent sends what waits as one list per period (samples as tuples, as the
    # Lab's reader takes them).
    out = []
    while conn.poll(0):
        batch = map(as_sample, pickle.loads(conn.recv_bytes()))
        out.extend(obj for obj in batch if isinstance(obj, kind))
    return out


def test_a_lab_that_goes_restores_the_publisher_and_ends_both_threads():
    # An agent a Lab connected to (ezmsg_lab.agent): when the Lab's end closes, nothing
    # of the agent keeps running (no thread left waking in the unit process).
    lab_end, unit_end = multiprocessing.Pipe(duplex=True)
    pub = FakePublisher("A/OUT")
    agent = TapAgent(unit_end, lambda: [pub])
    agent.start()
    try:
        lab_end.send(TapControl({"A/OUT": math.inf}))
        assert _recv(lab_end, TapInstalled)[-1].topics == ["A/OUT"]
        assert agent.active
        lab_end.close()
        assert wait_until(lambda: not agent.active, 5)
        assert "broadcast" not in vars(pub)
        assert wait_until(lambda: not any(t.is_alive() for t in agent._threads), 5)
    finally:
        agent.close()


def test_a_lab_that_goes_before_any_tap_ends_both_threads():
    lab_end, unit_end = multiprocessing.Pipe(duplex=True)
    agent = TapAgent(unit_end, lambda: [FakePublisher("A/OUT")])
    agent.start()
    try:
        lab_end.close()  # nothing to restore, no reply to send: the sender must still end
        assert wait_until(lambda: not any(t.is_alive() for t in agent._threads), 5)
    finally:
        agent.close()


def test_budget_scale_holds_a_busy_process_to_its_share_and_leaves_an_idle_one_alone():
    # A busy process (all its time used): the agent at 4 % of it gets a quarter of its
    # rate, to come to the 1 % budget.
    assert budget_scale(1.0, busy=1.0, cost=0.04) == pytest.approx(BUDGET_FRACTION / 0.04)
    # A multi-threaded process busier than one core: the same budget, not a negative one.
    assert budget_scale(1.0, busy=1.8, cost=0.04) == pytest.approx(BUDGET_FRACTION / 0.04)
    # A paced pipeline idle 85 % of the time: a tap taking 5 % is not held back.
    assert budget_scale(1.0, busy=0.2, cost=0.05) == 1.0
    # Half idle: an eighth of the wall clock is allowed.
    assert budget_scale(1.0, busy=0.5 + 0.25, cost=0.25) == pytest.approx(0.125 / 0.25)
    # Coming back: at most MAX_RISE a window, never above 1; never below MIN_SCALE.
    assert budget_scale(0.1, busy=1.0, cost=0.001) == pytest.approx(0.1 * MAX_RISE)
    assert budget_scale(0.9, busy=1.0, cost=0.0) == 1.0
    assert budget_scale(MIN_SCALE, busy=1.0, cost=0.9) == MIN_SCALE


class _Collector:
    """The Lab's end of an agent's pipe, read on a thread (as the Lab's reader does):
    samples per topic and the budget messages, in arrival order."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self.samples: dict[str, list[TapSample]] = {}
        self.budgets: list[tuple[float, TapBudget]] = []  # (arrival, message)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while True:
                for obj in map(as_sample, pickle.loads(self.conn.recv_bytes())):
                    if isinstance(obj, TapSample):
                        self.samples.setdefault(obj.topic, []).append(obj)
                    elif isinstance(obj, TapBudget):
                        self.budgets.append((time.monotonic(), obj))
        except (EOFError, OSError):
            pass


class CountingPublisher:
    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.n = 0

    def broadcast(self, obj: object) -> None:
        self.n += 1


@contextlib.contextmanager
def _running_agent(pubs: list):
    """An agent over a pipe sampling ``pubs``, with the Lab's end read by a collector;
    closed (and the pipe) on the way out."""
    lab_end, unit_end = multiprocessing.Pipe(duplex=True)
    agent = TapAgent(unit_end, lambda: pubs)
    agent.start()
    try:
        yield lab_end, agent, _Collector(lab_end)
    finally:
        agent.close()
        lab_end.close()


def test_a_busy_process_is_held_to_the_budget_counts_every_gap_and_is_let_go():
    # Two publishers sampled as fast as a loop can call them: the agent's own work is
    # most of this process's time, far over its budget. It lowers the rates, says so,
    # keeps counting every message, and lifts the factor when the taps go.
    pubs = [CountingPublisher("A/OUT"), CountingPublisher("B/OUT")]
    with _running_agent(pubs) as (lab_end, agent, got):
        lab_end.send(TapControl({"A/OUT": 20000.0, "B/OUT": 20000.0}))
        assert wait_until(lambda: all("broadcast" in vars(p) for p in pubs), 5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(b.scale < 0.5 for _, b in got.budgets):
            for _ in range(1000):
                pubs[0].broadcast(None)
                pubs[1].broadcast(None)
        held = [b for _, b in got.budgets if b.scale < 0.5]
        assert held, f"no budget held the rates down: {got.budgets}"
        assert held[0].busy > 0.5 and held[0].cost > BUDGET_FRACTION
        assert agent.scale < 1.0
        # Held: over a further second the samples come at most at the lowered rate.
        n0 = {t: len(v) for t, v in got.samples.items()}
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.0:
            for _ in range(1000):
                pubs[0].broadcast(None)
                pubs[1].broadcast(None)
        for topic, pub in zip(("A/OUT", "B/OUT"), pubs, strict=True):
            taken = len(got.samples[topic]) - n0[topic]
            assert taken <= 0.5 * 20000, f"{topic}: {taken} samples in the held second"
            seq = [s.seq for s in got.samples[topic]]
            assert seq == sorted(set(seq)), "out of order or duplicated"
            assert seq[-1] <= pub.n  # every message counted, none invented
        # The taps go: the factor is lifted and the Lab told.
        lab_end.send(TapControl({}))
        assert wait_until(lambda: got.budgets[-1][1].scale == 1.0, 5), got.budgets[-1]


def test_an_idle_process_keeps_every_message_at_its_full_rate():
    # A paced publisher (a message every 2 ms) in an otherwise idle process: the tap
    # takes them all, and no budget is ever applied.
    pub = CountingPublisher("A/OUT")
    with _running_agent([pub]) as (lab_end, _, got):
        lab_end.send(TapControl({"A/OUT": 2000.0}))
        assert wait_until(lambda: "broadcast" in vars(pub), 5)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.0:
            pub.broadcast(None)
            time.sleep(0.002)
        assert wait_until(lambda: len(got.samples.get("A/OUT", [])) == pub.n, 5)
        assert [s.seq for s in got.samples["A/OUT"]] == list(range(1, pub.n + 1))
        assert not [b for _, b in got.budgets if b.scale < 1.0]


def test_writes_that_do_not_fit_are_finished_in_order_by_the_sender():
    # The Lab reads nothing while the unit publishes 1 MB messages a write period apart:
    # the publishing task's non-blocking writes fill the pipe and leave the rest of a
    # frame to the sender thread, which finishes it (blocking) before anything else is
    # written. Once the Lab reads, every message arrives whole, once, in order.
    lab_end, unit_end = multiprocessing.Pipe(duplex=True)
    pub = FakePublisher("A/OUT")
    agent = TapAgent(unit_end, lambda: [pub])
    agent.start()
    try:
        lab_end.send(TapControl({"A/OUT": math.inf}))
        assert _recv(lab_end, TapInstalled)[-1].topics == ["A/OUT"]
        n, size = 12, 1 << 20
        for i in range(n):
            pub.broadcast(i.to_bytes(4, "big") * (size // 4))
            time.sleep(0.06)  # past the write period: each message is written at once
        assert agent._rest or len(agent._outbox) > 0, "the pipe never filled"
        samples: list[TapSample] = []
        assert wait_until(
            lambda: samples.extend(_drain(lab_end, TapSample)) or len(samples) >= n, 10
        )
        assert [s.seq for s in samples] == list(range(1, n + 1))
        for i, s in enumerate(samples):
            assert len(s.message) == size and s.message[:8] == i.to_bytes(4, "big") * 2
    finally:
        agent.close()
        lab_end.close()
