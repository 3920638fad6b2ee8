"""Per-host monotonic -> UTC mapping (model/clock.py) with known offsets and jitter."""

from __future__ import annotations

import random

import numpy as np
import pytest

from ezmsg_lab.model.clock import HostClocks, estimate_offset
from ezmsg_lab.model.metrics import EndpointSample, MetricsStore, ProcessMeta

HOUR_NS = 3600 * 10**9
WALL0 = 1_800_000_000 * 10**9  # the Lab's wall clock at the first round trip


def trips(offset_ns: int, n: int, rng: random.Random, jitter_ns: int = 2_000_000):
    """Round trips to a host whose perf clock is ``wall - offset_ns``: each one takes a
    random, asymmetric time out and back (up to ``jitter_ns`` each way)."""
    out = []
    wall = WALL0
    for _ in range(n):
        wall += 1_000_000_000 + rng.randrange(10**7)
        out_ns = 50_000 + rng.randrange(jitter_ns)
        back_ns = 50_000 + rng.randrange(jitter_ns)
        remote_wall = wall + out_ns
        out.append((wall, remote_wall + back_ns, remote_wall - offset_ns))
    return out


@pytest.mark.parametrize("offset_ns", [0, 7 * HOUR_NS + 123_456_789, -3 * HOUR_NS - 17])
@pytest.mark.parametrize("seed", range(5))
def test_estimate_holds_the_true_offset_within_its_uncertainty(offset_ns, seed):
    rng = random.Random(seed)
    clocks = HostClocks(local_host="lab-host", local_offset_ns=0)
    for send, recv, remote in trips(offset_ns, 40, rng):
        clocks.observe("host-c", send, recv, remote)
        est = clocks.estimate("host-c")
        assert abs(est.offset_ns - offset_ns) <= est.uncertainty_ns
        assert est.consistent
    # 40 round trips with up to 2 ms jitter each way narrow it well below one trip's.
    assert est.uncertainty_ns < 1_000_000
    assert est.samples == 40
    assert clocks.offset_ns("host-c") == est.offset_ns


def test_hosts_are_mapped_each_on_its_own():
    rng = random.Random(1)
    clocks = HostClocks(local_host="lab-host", local_offset_ns=0)
    for host, off in (("host-b", 5 * 10**9), ("host-c", 4 * HOUR_NS)):
        for send, recv, remote in trips(off, 10, rng):
            clocks.observe(host, send, recv, remote)
    b, c = clocks.estimate("host-b"), clocks.estimate("host-c")
    assert abs(b.offset_ns - 5 * 10**9) <= b.uncertainty_ns
    assert abs(c.offset_ns - 4 * HOUR_NS) <= c.uncertainty_ns
    assert clocks.offset_ns("unknown-host") is None
    assert clocks.estimate(None) is None


def test_a_stepped_clock_is_flagged_and_the_newest_round_trips_decide():
    rng = random.Random(2)
    clocks = HostClocks(local_host="lab-host", local_offset_ns=0, window=16)
    for send, recv, remote in trips(HOUR_NS, 16, rng):
        clocks.observe("h", send, recv, remote)
    # The host reboots: its monotonic clock restarts, the offset moves by a day.
    for send, recv, remote in trips(25 * HOUR_NS, 4, rng):
        clocks.observe("h", send + 60 * 10**9, recv + 60 * 10**9, remote + 60 * 10**9)
    est = clocks.estimate("h")
    assert not est.consistent
    assert abs(est.offset_ns - 25 * HOUR_NS) <= est.uncertainty_ns
    assert est.samples == 4  # the old clock's round trips were dropped
    # A window later, the step is no longer flagged.
    for send, recv, remote in trips(25 * HOUR_NS, 16, rng):
        clocks.observe("h", send + 120 * 10**9, recv + 120 * 10**9, remote + 120 * 10**9)
    est = clocks.estimate("h")
    assert est.consistent and abs(est.offset_ns - 25 * HOUR_NS) <= est.uncertainty_ns


def test_old_round_trips_age_out():
    clocks = HostClocks(local_host="x", local_offset_ns=0, max_age_s=10)
    for send, recv, remote in trips(0, 30, random.Random(3)):
        clocks.observe("h", send, recv, remote)
    assert clocks.estimate("h").samples <= 11


def test_the_local_offset_is_used_only_when_round_trips_confirm_it():
    local = 12_345_678_901
    clocks = HostClocks(local_host="me", local_offset_ns=local)
    assert clocks.offset_ns("me") == local  # before any round trip
    for send, recv, remote in trips(local, 5, random.Random(4)):
        clocks.observe("me", send, recv, remote)
    est = clocks.estimate("me")
    assert est.offset_ns == local and est.uncertainty_ns <= 1_000
    # Same hostname, another monotonic clock (a time namespace): the round trips win.
    other = HostClocks(local_host="me", local_offset_ns=local)
    for send, recv, remote in trips(local + HOUR_NS, 5, random.Random(5)):
        other.observe("me", send, recv, remote)
    est = other.estimate("me")
    assert abs(est.offset_ns - (local + HOUR_NS)) <= est.uncertainty_ns


def test_nonsense_round_trips_change_nothing():
    clocks = HostClocks(local_host="x", local_offset_ns=0)
    clocks.observe("h", WALL0 + 10, WALL0, 5)  # receive before send: the wall clock stepped
    clocks.observe("h", WALL0, WALL0 + 10, float("nan"))
    assert clocks.estimate("h") is None
    assert estimate_offset([]) is None


def test_metric_rows_carry_the_host_mapped_time():
    store = MetricsStore(capacity=100)
    meta = {"p": ProcessMeta("p", 10, "host-c", ("U",))}
    poll_s = 1_800_000_000.5
    perf = 5 * HOUR_NS
    offset = int(poll_s * 1e9) - perf - 3_000_000  # the counter was read 3 ms before the poll
    sample = EndpointSample("p", "e", "U/OUT", "publisher", 7, perf, epoch_ns=perf + offset)
    store.ingest(poll_s, [sample], meta)
    frame = store.metrics()
    t = frame["time"].iloc[0]
    assert t.value == perf + offset
    # Without a mapping the row is stamped with the poll time.
    store.ingest(
        poll_s + 1, [EndpointSample("p", "e", "U/OUT", "publisher", 9, perf + 10**9)], meta
    )
    assert store.metrics()["time"].max().value == int((poll_s + 1) * 1e9)


def test_a_silent_process_is_missing_then_gone_and_returns_as_a_new_series():
    store = MetricsStore(capacity=100, gone_after_s=3.0)
    meta = {"p": ProcessMeta("p", 10, "host-c", ("U",)), "q": ProcessMeta("q", 11, "b", ("V",))}

    def poll(t: float, answer: set[str], total: int) -> None:
        samples = [
            EndpointSample(p, "e", f"{m.units[0]}/OUT", "publisher", total, t * 1e9)
            for p, m in meta.items()
            if p in answer
        ]
        store.ingest(1_800_000_000 + t, samples, meta)

    poll(0, {"p", "q"}, 0)
    poll(1, {"p", "q"}, 100)
    poll(2, {"q"}, 200)
    prof = store.profile().set_index("topic")
    assert prof.loc["U/OUT", "status"] == "missing" and prof.loc["V/OUT", "status"] == "ok"
    poll(5, {"q"}, 500)
    prof = store.profile().set_index("topic")
    assert prof.loc["U/OUT", "status"] == "gone" and prof.loc["V/OUT", "status"] == "ok"
    assert prof.loc["V/OUT", "rate_hz"] == pytest.approx(100.0)
    poll(6, {"p", "q"}, 600)  # back: a new series, no rate across the outage
    prof = store.profile().set_index("topic")
    assert prof.loc["U/OUT", "status"] == "ok" and np.isnan(prof.loc["U/OUT", "rate_hz"])
    poll(7, {"p", "q"}, 700)
    assert store.profile().set_index("topic").loc["U/OUT", "rate_hz"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="gone_after"):
        MetricsStore(gone_after_s=0)
