"""The unit-process side of sampled taps, without ezmsg: a publisher-like object whose
``broadcast`` the agent replaces while a tap wants its topic, and restores after."""

from __future__ import annotations

import math
import multiprocessing
import pickle
import time

from ezmsg_lab.runtime._tap_agent import RateGate, TapAgent, TapControl, TapInstalled, TapSample

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
    # The agent sends what waits as one list per period.
    out = []
    while conn.poll(0):
        out.extend(obj for obj in pickle.loads(conn.recv_bytes()) if isinstance(obj, kind))
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
