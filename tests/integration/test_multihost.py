"""A graph across three test hosts (Linux namespaces; see _hosts.py), observed and tuned
by a Lab attached from the root namespace: real host and pid per process, rates of a
remote source, each host's clock mapped to UTC on its own, lab.set on a remote unit, the
graph's hosts and TCP edges, and a host cut off the network and back.

The tests share one set of hosts (about 2 s to start) and run in file order; the link
test comes last because it disturbs the graph. Measured figures are printed (``-s``).
"""

from __future__ import annotations

import json
import time
import warnings

import numpy as np
import pandas as pd
import psutil
import pytest

from ezmsg_lab import Lab
from ezmsg_lab.model.clock import perf_offset_ns

from ..conftest import wait_until
from ._host_units import TICK_HZ
from ._hosts import make_hosts, namespaces_left

GONE_AFTER_S = 3.0


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    with make_hosts(tmp_path_factory.mktemp("hosts")) as hs:
        yield hs
    assert not [ns for ns in namespaces_left() if ns.startswith(hs["a"].netns[:-1])]


@pytest.fixture(scope="module")
def lab(hosts):
    with pytest.warns(UserWarning, match="private network") as record:
        lab = Lab.attach(hosts.server_address, poll_hz=2.0, gone_after=GONE_AFTER_S)
    assert len([w for w in record if "over the network" in str(w.message)]) == 1
    try:
        ok = wait_until(lambda: _units_on(lab) >= {"B/TICK", "C/SCALE", "C/SINK"}, 30)
        assert ok, f"units did not register; host logs: {_logs(hosts)}"
        lab.wait_for_profile(30)
        yield lab
    finally:
        lab.close()


def _units_on(lab: Lab) -> set[str]:
    return {u for units in lab.topology().processes["units"] for u in units}


def _logs(hosts) -> str:
    return {n: (hosts.workdir / f"{n}.log").read_text(errors="replace")[-800:] for n in "abc"}


def test_attach_warns_once_per_address(hosts, lab):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = Lab.attach(hosts.server_address, poll_hz=1.0)  # said already: silent
    again.close()


def test_processes_show_their_real_host_and_pid(hosts, lab):
    procs = lab.topology().processes
    procs = procs[procs["units"].map(len) > 0]
    host_of = {u: h for units, h in zip(procs["units"], procs["host"], strict=True) for u in units}
    assert host_of == {"B/TICK": "host-b", "C/SCALE": "host-c", "C/SINK": "host-c"}
    real = hosts.pids()
    for pid in procs["pid"]:
        assert int(pid) in real, f"pid {pid} is not a process on the test hosts"
        # The pid is the unit process itself: its hostname namespace says which host.
        assert psutil.Process(int(pid)).is_running()
    prof = lab.profile(include_gone=False)
    assert set(prof["host"]) == {"host-b", "host-c"}
    assert set(prof["pid"].astype(int)) <= real


def test_rates_of_a_remote_source_within_2_percent(lab):
    # Rates come from the Lab's own polls (2 Hz here), over the last ~6 s of them, once the
    # pipeline has run 15 s: on ezmsg 3.10.0b5 host-c's subscribers catch up a backlog in
    # their first seconds (measured: +1.5-2.2 % over the first 6 s of polls, true rates
    # that the Lab reports as they are; within 0.1 % from then on, as on 3.9 throughout).
    assert wait_until(lambda: _rate_rows(lab, "B/TICK/OUTPUT", "publisher") >= 30, 40)
    for topic, kind, host in (
        ("B/TICK/OUTPUT", "publisher", "host-b"),
        ("C/SCALE/INPUT", "subscriber", "host-c"),
        ("C/SINK/INPUT", "subscriber", "host-c"),
    ):
        rate = _mean_rate(lab, topic, kind)
        err = (rate - TICK_HZ) / TICK_HZ
        print(f"rate {topic} ({host}): {rate:.2f} Hz, error {100 * err:+.2f} %")
        assert abs(err) <= 0.02, f"{topic} on {host}: {rate:.2f} Hz vs {TICK_HZ} Hz"


def _rate_rows(lab: Lab, topic: str, kind: str) -> int:
    m = lab.metrics(topics=[topic])
    m = m[(m["kind"] == kind) & (m["metric"] == "rate_hz")]
    return int(m["value"].notna().sum())


def _mean_rate(lab: Lab, topic: str, kind: str) -> float:
    """The rate over the last ~6 s of polls (each poll's rate is a delta of ezmsg's total
    over the process's own clock, mapped to UTC with its host's offset; a 3 s window let
    the offset's re-estimates under load move one rate by 2.2 % in a CI run)."""
    m = lab.metrics(topics=[topic])
    m = m[(m["kind"] == kind) & (m["metric"] == "messages_total")]
    m = m.sort_values("time").tail(13)
    total = m["value"].to_numpy(dtype=float)
    t = m["time"].astype("int64").to_numpy() / 1e9
    return float((total[-1] - total[0]) / (t[-1] - t[0]))


def test_each_host_clock_is_mapped_to_utc_on_its_own(hosts, lab):
    local = perf_offset_ns()
    clocks = lab.clocks().set_index("host")
    assert {"host-b", "host-c"} <= set(clocks.index)
    for name in "bc":
        host = hosts[name]
        row = clocks.loc[host.hostname]
        truth_s = (local - host.monotonic_offset_s * 10**9) / 1e9
        err_ms = (row["offset_s"] - truth_s) * 1e3
        print(
            f"clock {host.hostname} (monotonic +{host.monotonic_offset_s} s): offset error "
            f"{err_ms:+.3f} ms, uncertainty {row['uncertainty_ms']:.3f} ms, "
            f"{row['round_trips']} round trips"
        )
        # The truth is within the stated uncertainty (plus this process's own offset's
        # sub-millisecond spread), and hours of monotonic offset are not in the error.
        assert abs(err_ms) <= row["uncertainty_ms"] + 0.5
        assert row["uncertainty_ms"] < 50
        assert row["consistent"]


def test_metrics_of_host_c_carry_utc_time(lab):
    before = pd.Timestamp.now(tz="UTC")
    n0 = len(lab.metrics(topics=["C/SINK/INPUT"]))
    assert wait_until(lambda: len(lab.metrics(topics=["C/SINK/INPUT"])) > n0 + 2, 10)
    m = lab.metrics(topics=["C/SINK/INPUT"])
    newest = m["time"].max()
    assert before - pd.Timedelta("2s") <= newest <= pd.Timestamp.now(tz="UTC")


def test_trace_samples_of_host_c_carry_utc_time(lab):
    start = pd.Timestamp.now(tz="UTC")
    lab.trace(duration=1.5, wait=True)
    end = pd.Timestamp.now(tz="UTC")
    samples = lab.trace_samples()
    samples = samples[samples["time"] >= start - pd.Timedelta("1s")]
    on_c = samples[samples["host"] == "host-c"]
    assert len(on_c) > 0, "no trace samples from host C"
    assert on_c["time"].min() >= start - pd.Timedelta("0.5s")
    assert on_c["time"].max() <= end + pd.Timedelta("0.5s")
    print(f"trace: {len(on_c)} samples from host-c, all within the trace's UTC window")


def test_cross_host_latency_is_never_negative_beyond_the_uncertainty(hosts, lab):
    assert wait_until(lambda: hosts.sink_file.exists(), 10)
    seen = np.asarray(json.loads(hosts.sink_file.read_text()), dtype=np.float64)
    clocks = lab.clocks().set_index("host")
    sent = lab.host_time("host-b", seen[:, 0])
    received = lab.host_time("host-c", seen[:, 1])
    latency_ms = (received - sent).total_seconds().to_numpy() * 1e3
    bound_ms = clocks.loc["host-b", "uncertainty_ms"] + clocks.loc["host-c", "uncertainty_ms"]
    print(
        f"latency B->C over TCP: median {np.median(latency_ms):.3f} ms, min "
        f"{latency_ms.min():.3f} ms, uncertainty +-{bound_ms:.3f} ms ({len(seen)} ticks)"
    )
    assert latency_ms.min() >= -bound_ms
    assert np.median(latency_ms) < 1000  # not hours: the clocks are mapped per host


def test_set_on_a_unit_on_a_remote_host_is_validated_applied_and_confirmed(hosts, lab):
    """ezmsg's ``update_setting`` patches in the unit's process through a publisher that
    binds 127.0.0.1 while the GraphServer advertises the host's address, so on another
    host ezmsg refuses it (3.9.0 and 3.10.0b5). For a remote unit whose class the kernel
    imports, the Lab sends the whole object from a publisher other hosts can reach:
    applied, confirmed, seen by the unit on host C. Invalid values are refused before
    anything is sent."""
    from ezmsg_lab.errors import LabError

    with pytest.raises(LabError, match="gain"):
        lab.set("C/SCALE", gain=50.0)  # out of bounds: refused before anything is sent
    result = lab.set("C/SCALE", gain=2.5)
    try:
        assert result.applied == {"gain": 2.5}
        assert lab.settings("C/SCALE").set_index("field").loc["gain", "value"] == 2.5
        # the unit on host C itself works with the new gain
        assert wait_until(lambda: json.loads(hosts.sink_file.read_text())[-1][2] == 2.5, 10)
    finally:
        lab.undo()
    assert wait_until(lambda: json.loads(hosts.sink_file.read_text())[-1][2] == 1.0, 10)

    # Host B's source too: one field of another host's unit.
    result = lab.set("B/TICK", rate_hz=150.0)
    try:
        assert result.applied == {"rate_hz": 150.0} and result.method == "publish"
        assert lab.settings("B/TICK").set_index("field").loc["rate_hz", "value"] == 150.0
    finally:
        lab.undo()
    assert lab.settings("B/TICK").set_index("field").loc["rate_hz", "value"] == 200.0


def test_a_form_tunes_a_unit_on_a_remote_host(hosts, lab):
    """A form on host C's unit: a user's edit reaches the unit there, and a change made
    elsewhere shows in the form."""
    form = lab.settings_form("C/SCALE", debounce_s=0.02)
    try:
        assert form.read_only_reason is None
        form.control("gain").value = 3.0  # as a user drags the slider
        assert wait_until(lambda: json.loads(hosts.sink_file.read_text())[-1][2] == 3.0, 10)
        assert wait_until(lambda: form.last_result is not None, 10)
        assert form.errors == {} and form.last_result.applied == {"gain": 3.0}
        lab.set("C/SCALE", gain=1.5, watch=False)  # elsewhere: the form follows
        assert wait_until(lambda: form.control("gain").value == 1.5, 10), (
            form.control("gain").value,
            form.status.value,
            lab.settings("C/SCALE"),
        )
    finally:
        form.close()
        lab.revert("C/SCALE")
    assert wait_until(lambda: json.loads(hosts.sink_file.read_text())[-1][2] == 1.0, 10)


def test_graph_colours_hosts_and_shows_tcp_between_them(lab):
    widget = lab.graph()
    try:
        state = widget.state
        assert {"host-b", "host-c"} <= set(state["hosts"])
        assert state["hosts"]["host-b"]["color"] != state["hosts"]["host-c"]["color"]
        for proc in state["processes"].values():
            if proc["host"]:
                assert proc["host_color"] == state["hosts"][proc["host"]]["color"]

        def tcp_edge() -> bool:
            edges = widget.annotations.get("edges", {})
            return any(
                "B/TICK/OUTPUT" in eid and a.get("channel") == "TCP" for eid, a in edges.items()
            )

        assert wait_until(tcp_edge, 10), widget.annotations.get("edges")
    finally:
        widget.close()


def test_a_tap_on_a_remote_host_keeps_every_tick_in_order_on_the_kernels_clock(hosts, lab):
    # Host B's ticks reach the kernel's tap over TCP (an attached graph: the subscriber
    # path). Each tick carries B's own perf_counter_ns, an hour or more off the kernel's
    # monotonic clock: the tap's times must be the kernel's (UTC), not B's.
    before = pd.Timestamp.now(tz="UTC")
    with lab.tap("B/TICK/OUTPUT", window="5s") as tap:
        assert tap.inspect()["via"].startswith("subscriber")
        assert wait_until(lambda: tap.received >= 2 * TICK_HZ, 15), tap.inspect()
        frame = tap.data()
        after = pd.Timestamp.now(tz="UTC")
        dropped = tap.dropped
    assert list(frame.columns[:4]) == ["received", "seq", "perf_ns", "value"]
    seq = frame["seq"].to_numpy()
    gaps = np.diff(seq)
    assert (gaps >= 1).all(), "ticks out of order or repeated"
    # Every tick the tap did not keep is counted as dropped, never lost silently.
    assert int((gaps - 1).sum()) <= dropped
    assert before - pd.Timedelta("1s") <= frame["received"].min()
    assert frame["received"].max() <= after
    # B's clock maps to the kernel's UTC through the Lab's per-host offset: each tick was
    # received after it was sent, within the offset's uncertainty and the link's delay.
    sent = pd.DatetimeIndex(lab.host_time("host-b", frame["perf_ns"].to_numpy(np.float64)))
    delay_s = (pd.DatetimeIndex(frame["received"]) - sent).total_seconds().to_numpy()
    unc_s = lab.clocks().set_index("host").loc["host-b", "uncertainty_ms"] / 1e3
    print(
        f"tap across hosts: {len(frame)} ticks, {dropped} dropped, delay median "
        f"{1e3 * np.median(delay_s):.2f} ms (uncertainty {1e3 * unc_s:.2f} ms)"
    )
    assert delay_s.min() >= -unc_s - 0.001
    assert np.median(delay_s) < 0.5


def test_a_host_cut_off_is_missing_then_gone_and_comes_back_as_new_series(hosts, lab):
    c_topics = ["C/SCALE/INPUT", "C/SINK/INPUT"]

    def status(topic: str) -> str:
        prof = lab.profile()
        rows = prof[prof["topic"] == topic]
        return rows["status"].iloc[-1] if len(rows) else "absent"

    cut = pd.Timestamp.now(tz="UTC")
    hosts["c"].link(False)
    try:
        assert wait_until(lambda: all(status(t) == "missing" for t in c_topics), 5)
        # The rest keeps its numbers: host B still answers, with a measured rate.
        prof = lab.profile()
        b = prof[prof["topic"] == "B/TICK/OUTPUT"].iloc[0]
        assert b["status"] == "ok" and not np.isnan(b["rate_hz"])
        assert wait_until(lambda: all(status(t) == "gone" for t in c_topics), GONE_AFTER_S + 5)
        b = lab.profile().set_index("topic").loc["B/TICK/OUTPUT"]
        assert b["status"] == "ok"
        print(
            f"host-c cut off: B/TICK/OUTPUT {b['rate_hz']:.1f} Hz, "
            f"{b['inflight']}/{b['num_buffers']} buffers in flight"
        )
    finally:
        hosts["c"].link(True)
        back = time.monotonic()
        cut_s = (pd.Timestamp.now(tz="UTC") - cut).total_seconds()
    assert wait_until(lambda: all(status(t) == "ok" for t in c_topics), 15)
    # B's ticks to C wait on TCP's retransmission timer, which doubled through the
    # outage: the next try can come about as long after the link is back as the outage
    # lasted (a 13 s cut measured 14 s to the first tick; the control plane, idle
    # meanwhile, is back within a second). Until then C's rate is a true 0.
    seen: list[tuple[float, float]] = []

    def rate_ok() -> bool:
        rate = _sink_rate(lab)
        seen.append((round(time.monotonic() - back, 1), rate))
        return _near_tick_rate(rate)

    if wait_until(rate_ok, cut_s + 15, interval=0.25):
        print(f"host-c back: {cut_s:.1f} s cut, rate back {seen[-1][0]:.1f} s after the link")
    else:
        # Once in about ten clean-clone runs ezmsg's own path from B to C did not resume
        # (B's ticks stopped at the cut with none of its buffers in flight, and C received
        # nothing for 20 s after the link was back): ezmsg's transport, not the Lab's. The
        # Lab must still say what C receives: nothing, as C's sink shows (it rewrites its
        # file every 0.2 s while ticks arrive).
        sink = hosts.sink_file
        stale_s = time.time() - sink.stat().st_mtime if sink.exists() else float("inf")
        rate = _sink_rate(lab)
        assert stale_s > 2.0 and rate == 0.0, (
            f"C/SINK/INPUT at {rate} Hz, the sink's last tick {stale_s:.1f} s ago; "
            f"cut {cut_s:.1f} s; {seen[-20:]}"
        )
        print(
            f"host-c back: {cut_s:.1f} s cut; ezmsg's B -> C path did not resume within "
            f"{seen[-1][0]:.1f} s, and the Lab says 0 Hz, as the sink (last tick "
            f"{stale_s:.1f} s ago)"
        )
    # A new series: its first row has no rate (none is made across the outage), then
    # rates resume; the rows of the outage say missing, never zero traffic.
    m = lab.metrics(since=cut, topics=["C/SINK/INPUT"])
    m = m[m["metric"] == "rate_hz"].sort_values("time")
    statuses = list(m["status"])
    assert "missing" in statuses
    first_back = statuses.index("ok", statuses.index("missing"))
    assert np.isnan(m["value"].iloc[first_back])
    assert m[m["status"] == "missing"]["value"].isna().all()


def _sink_rate(lab: Lab) -> float:
    prof = lab.profile(include_gone=False).set_index("topic")
    return float(prof.loc["C/SINK/INPUT", "rate_hz"])


def _near_tick_rate(rate: float) -> bool:
    return bool(np.isfinite(rate) and abs(rate - TICK_HZ) / TICK_HZ < 0.2)
