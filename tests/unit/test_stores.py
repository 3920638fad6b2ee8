"""Stores and conversions, without ezmsg: rings, rates, traces, logs, settings history."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ezmsg_lab.feeds.traces import (
    HOOK_COST_S,
    MIN_WINDOW_S,
    PERIOD_S,
    TRACE_COST_S,
    TracePlan,
    choose_sample_mod,
    kernel_sample_mod,
    plan_tracing,
)
from ezmsg_lab.model.clock import since_to_epoch_s, to_utc
from ezmsg_lab.model.logs import LogRecord, LogStore
from ezmsg_lab.model.metrics import EndpointSample, MetricsStore, ProcessMeta
from ezmsg_lab.model.ring import ColumnRing
from ezmsg_lab.model.settings_store import SettingsStore, flatten
from ezmsg_lab.model.traces import BYTES_PER_SAMPLE, TraceStore

# ---------------------------------------------------------------------------- ring


@given(st.lists(st.lists(st.integers(0, 1000), max_size=30), max_size=20), st.integers(1, 40))
def test_ring_keeps_the_last_capacity_rows_in_order(batches, capacity):
    ring = ColumnRing(capacity, {"v": np.int64, "w": np.float64})
    everything: list[int] = []
    for batch in batches:
        ring.extend(v=batch, w=[float(x) / 2 for x in batch])
        everything.extend(batch)
    view = ring.view()
    assert view["v"].tolist() == everything[-capacity:] if everything else view["v"].tolist() == []
    assert np.allclose(view["w"], view["v"] / 2)
    assert len(ring) == min(capacity, len(everything))
    assert ring.dropped == max(0, len(everything) - capacity)


def test_ring_rejects_mismatched_columns():
    ring = ColumnRing(4, {"a": np.int8, "b": np.int8})
    with pytest.raises(KeyError, match="missing"):
        ring.extend(a=[1])
    with pytest.raises(ValueError, match="lengths"):
        ring.extend(a=[1, 2], b=[1])
    with pytest.raises(ValueError):
        ColumnRing(0, {"a": np.int8})


# ---------------------------------------------------------------------------- metrics

P1 = ProcessMeta("p1", 101, "host-a", ("G/SRC",))
P2 = ProcessMeta("p2", 102, "host-a", ("G/SINK",))


def pub(total: int, ts_s: float, process="p1", endpoint="G/SRC/OUT:e1", inflight=0):
    return EndpointSample(
        process,
        endpoint,
        "G/SRC/OUT",
        "publisher",
        total,
        ts_s * 1e9,
        inflight=inflight,
        num_buffers=32,
    )


def sub(total: int, ts_s: float, endpoint="G/SINK/IN:e2"):
    return EndpointSample(
        "p2", endpoint, "G/SINK/IN", "subscriber", total, ts_s * 1e9, channel="SHM"
    )


def test_rates_come_from_total_deltas_over_process_time():
    store = MetricsStore()
    store.ingest(1000.0, [pub(0, 10.0), sub(0, 10.0)], {"p1": P1, "p2": P2})
    # The Lab's poll jitters (1000.0 -> 1001.7) but the processes' own timestamps say 2 s.
    store.ingest(1001.7, [pub(400, 12.0, inflight=3), sub(398, 12.0)], {"p1": P1, "p2": P2})
    prof = store.profile().set_index("topic")
    assert prof.loc["G/SRC/OUT", "rate_hz"] == pytest.approx(200.0)
    assert prof.loc["G/SINK/IN", "rate_hz"] == pytest.approx(199.0)
    assert prof.loc["G/SRC/OUT", "pid"] == 101 and prof.loc["G/SRC/OUT", "host"] == "host-a"
    assert prof.loc["G/SRC/OUT", "unit"] == "G/SRC"
    assert prof.loc["G/SRC/OUT", "inflight"] == 3
    assert prof.loc["G/SINK/IN", "channel_kind"] == "SHM"
    assert isinstance(prof["time"].dtype, pd.DatetimeTZDtype)


def test_rates_per_process_per_edge_and_over_a_recent_window_come_from_the_store():
    from ezmsg_lab.model.metrics import edge_rates

    store = MetricsStore()
    both = {"p1": P1, "p2": P2}
    store.ingest(1000.0, [pub(0, 10.0), sub(0, 10.0)], both)
    store.ingest(1001.0, [pub(100, 11.0), sub(100, 11.0)], both)
    store.ingest(1002.0, [pub(300, 12.0), sub(250, 12.0)], both)
    assert store.recent_rate(["G/SRC/OUT:e1"], window_s=5.0) == pytest.approx(150.0)
    assert store.recent_rate(["G/SRC/OUT:e1"], window_s=1.5) == pytest.approx(200.0)
    assert store.recent_rate(["G/SRC/OUT:e1", "G/SINK/IN:e2"], 1.5) == pytest.approx(350.0)
    assert store.recent_rate(["nope"]) is None and store.recent_rate([]) is None
    assert store.process_rates() == {"p1": pytest.approx(200.0), "p2": pytest.approx(150.0)}
    assert store.process_rates(topics=["G/SINK/IN"]) == {"p2": pytest.approx(150.0)}
    # The profile's rate_hz summed per process (computed without the frame).
    by_frame = store.profile(include_gone=False).groupby("process", observed=True)["rate_hz"]
    assert store.process_rates() == pytest.approx(by_frame.sum().to_dict())
    graph = {"G/SRC/OUT": ["G/SINK/IN", "G/OTHER/IN"]}
    rates = edge_rates(store.profile(), graph)
    # the subscriber's own reading where there is one, else what the publisher sends
    assert rates == {
        ("G/SRC/OUT", "G/SINK/IN"): pytest.approx(150.0),
        ("G/SRC/OUT", "G/OTHER/IN"): pytest.approx(200.0),
    }


def test_first_poll_has_no_rate_and_counter_reset_starts_a_new_series():
    store = MetricsStore()
    store.ingest(0.0, [pub(100, 1.0)], {"p1": P1})
    assert math.isnan(store.profile()["rate_hz"].iloc[0])
    store.ingest(1.0, [pub(200, 2.0)], {"p1": P1})
    store.ingest(2.0, [pub(5, 3.0)], {"p1": P1})  # went backwards: restarted endpoint
    store.ingest(3.0, [pub(105, 4.0)], {"p1": P1})
    rates = store.metrics()
    rates = rates[rates["metric"] == "rate_hz"]["value"]
    assert rates.tolist()[1] == pytest.approx(100.0)
    assert math.isnan(rates.tolist()[2])
    assert rates.tolist()[3] == pytest.approx(100.0)
    assert (rates.dropna() >= 0).all()
    assert [s.generation for s in store.series.values()] == [0, 1]


def test_missing_process_is_missing_not_zero_and_left_process_is_gone():
    store = MetricsStore()
    both = {"p1": P1, "p2": P2}
    store.ingest(0.0, [pub(0, 0.0), sub(0, 0.0)], both)
    store.ingest(1.0, [pub(100, 1.0), sub(100, 1.0)], both)
    store.ingest(2.0, [pub(200, 2.0)], both)  # p2 did not answer
    prof = store.profile().set_index("topic")
    assert prof.loc["G/SINK/IN", "status"] == "missing"
    assert math.isnan(prof.loc["G/SINK/IN", "rate_hz"])
    assert prof.loc["G/SRC/OUT", "status"] == "ok"
    hist = store.metrics(topics=["G/SINK/IN"])
    assert hist["status"].astype(str).tolist()[-1] == "missing"
    store.ingest(3.0, [pub(300, 3.0)], {"p1": P1})  # p2 left the topology
    prof = store.profile().set_index("topic")
    assert prof.loc["G/SINK/IN", "status"] == "gone"
    assert "G/SINK/IN" not in set(store.profile(include_gone=False)["topic"])
    # Back after missing: the rate spans the whole gap, not just the last interval.
    store2 = MetricsStore()
    store2.ingest(0.0, [sub(0, 0.0)], {"p2": P2})
    store2.ingest(1.0, [], {"p2": P2})
    store2.ingest(2.0, [sub(300, 3.0)], {"p2": P2})
    assert store2.profile()["rate_hz"].iloc[0] == pytest.approx(100.0)


def test_profile_of_500_topics_and_metrics_filters():
    store = MetricsStore()
    procs = {f"p{i}": ProcessMeta(f"p{i}", i, "h", (f"G/U{i}",)) for i in range(500)}
    for t in range(3):
        store.ingest(
            float(t),
            [
                EndpointSample(
                    f"p{i}",
                    f"G/U{i}/OUT:{i}",
                    f"G/U{i}/OUT",
                    "publisher",
                    10 * t * i,
                    float(t) * 1e9,
                )
                for i in range(500)
            ],
            procs,
        )
    prof = store.profile()
    assert len(prof) == 500
    assert prof.set_index("topic").loc["G/U7/OUT", "rate_hz"] == pytest.approx(70.0)
    m = store.metrics(topics=["G/U7/OUT"], since_s=1.0)
    assert len(m) == 2 * 3 and set(m["topic"]) == {"G/U7/OUT"}


# ---------------------------------------------------------------------------- traces


@dataclass
class Sample:
    timestamp: float
    endpoint_id: str
    topic: str
    metric: str
    value: float
    channel_kind: object = None
    sample_seq: int | None = None


def test_trace_ingest_converts_clock_normalises_publish_delta_and_computes_percentiles():
    store = TraceStore(capacity=10_000)
    store.sample_mod["p1"] = 4
    rng = np.random.default_rng(0)
    spans = rng.uniform(1e6, 3e6, 1000)
    samples = [
        Sample(
            1e9 + i,
            "G/B/IN:x",
            "G/B/IN:on_message",
            "user_span_ns",
            v,
            SimpleNamespace(value="SHM"),
        )
        for i, v in enumerate(spans)
    ]
    samples += [
        Sample(2e9, "G/A/OUT:y", "G/A/OUT", "publish_delta_ns", 0.0),
        Sample(2e9 + 1, "G/A/OUT:y", "G/A/OUT", "publish_delta_ns", 40e6),
    ]
    stored = store.ingest("p1", samples, offset_ns=1_700_000_000 * 10**9)
    assert stored == 1001  # the zero first publish_delta is dropped
    lat = store.latency().set_index(["topic", "metric"])
    row = lat.loc[("G/B/IN", "user_span_ns")]
    assert row["count"] == 1000
    assert row["p50_ms"] == pytest.approx(np.percentile(spans, 50) / 1e6)
    assert row["p99_ms"] == pytest.approx(np.percentile(spans, 99) / 1e6)
    assert row["max_ms"] == pytest.approx(spans.max() / 1e6)
    # publish_delta with sample_mod 4 spans 4 messages: 40 ms -> 10 ms per message.
    assert lat.loc[("G/A/OUT", "publish_delta_ns"), "p50_ms"] == pytest.approx(10.0)
    frame = store.frame()
    assert frame["time"].iloc[0] == pd.Timestamp(1_700_000_001, unit="s", tz="UTC")
    assert set(frame["task"].dropna()) == {"on_message"}
    assert frame["channel_kind"].iloc[0] == "SHM"
    assert len(store.frame(metrics=["publish_delta_ns"])) == 1
    with pytest.raises(ValueError, match="unknown trace metric"):
        store.latency(metrics=["nope"])


def test_trace_ingest_keeps_each_samples_own_channel_metric_and_stream_in_mixed_batches():
    import enum

    class Kind(enum.Enum):  # like ezmsg's ProfileChannelType
        SHM = "SHM"
        TCP = "TCP"

    store = TraceStore(capacity=100)
    store.update_processes({"p1": ProcessMeta("p1", 7, "h")})
    batch = [
        Sample(1e9, "G/A/OUT:x", "G/A/OUT", "lease_time_ns", 1e6, Kind.SHM),
        Sample(2e9, "G/B/IN:y", "G/B/IN:on_message", "user_span_ns", 2e6, Kind.TCP),
        Sample(3e9, "G/A/OUT:x", "G/A/OUT", "lease_time_ns", 3e6, None),
        Sample(4e9, "G/A/OUT:x", "G/A/OUT", "lease_time_ns", 4e6, SimpleNamespace(value="TCP")),
        Sample(5e9, "G/A/OUT:x", "G/A/OUT", "not_a_metric", 5e6, Kind.SHM),
    ]
    # Twice: the second batch goes through the codes the first one created.
    assert store.ingest("p1", batch, offset_ns=10**9) == 4
    assert store.ingest("p1", batch[:2], offset_ns=2 * 10**9) == 2
    frame = store.frame()
    # None (no channel known) is ezmsg's UNKNOWN; a stand-in with .value is read by value.
    channels = ["SHM", "TCP", "UNKNOWN", "TCP", "SHM", "TCP"]
    assert frame["channel_kind"].tolist() == channels
    assert frame["metric"].tolist() == ["lease_time_ns", "user_span_ns"] + ["lease_time_ns"] * 2 + [
        "lease_time_ns",
        "user_span_ns",
    ]
    assert frame["topic"].tolist() == [
        "G/A/OUT",
        "G/B/IN",
        "G/A/OUT",
        "G/A/OUT",
        "G/A/OUT",
        "G/B/IN",
    ]
    assert pd.isna(frame["task"].iloc[0]) and frame["task"].iloc[1] == "on_message"
    assert frame["value_ms"].tolist() == [1.0, 2.0, 3.0, 4.0, 1.0, 2.0]
    assert frame["pid"].tolist() == [7] * 6 and str(frame["pid"].dtype) == "Int64"
    seconds = (frame["time"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds().tolist()
    assert seconds == [2.0, 3.0, 4.0, 5.0, 3.0, 4.0]


def test_trace_memory_per_sample():
    store = TraceStore(capacity=100_000)
    assert store.samples.nbytes / store.samples.capacity == BYTES_PER_SAMPLE <= 32
    assert BYTES_PER_SAMPLE == 30  # the figure README.md and the docstrings give


@pytest.mark.parametrize(
    "rate, budget, expected",
    [
        (0.0, 0.05, 1),
        (100.0, 0.05, 1),
        (5_000.0, 0.05, 1),
        (77_600.0, 0.05, 16),
        (77_600.0, 0.01, 78),
        (float("nan"), 0.05, 1),
    ],
)
def test_sample_mod_keeps_tracing_within_budget(rate, budget, expected):
    mod = choose_sample_mod(rate, budget, cost_s=10e-6)
    assert mod == expected
    if rate == rate and rate > 0:
        assert rate * 10e-6 / mod <= budget


@pytest.mark.parametrize(
    ("total_rate", "n_metrics", "expected"),
    [(0.0, 3, 1), (float("nan"), 3, 1), (1_000.0, 3, 1), (7_350.0, 3, 5), (100_000.0, 2, 40)],
)
def test_kernel_sample_mod_keeps_the_kernels_samples_within_its_cap(
    total_rate, n_metrics, expected
):
    mod = kernel_sample_mod(total_rate, n_metrics, max_samples_s=5_000.0)
    assert mod == expected
    if total_rate > 0:
        assert total_rate * n_metrics / mod <= 5_000.0
        assert mod == 1 or total_rate * n_metrics / (mod - 1) > 5_000.0  # the smallest


def test_sample_mod_rejects_bad_budget():
    with pytest.raises(ValueError, match="budget"):
        choose_sample_mod(100.0, 0.0)


def _whole_cost(rate: float, plan: TracePlan) -> float:
    return plan.duty * rate * (HOOK_COST_S + TRACE_COST_S / plan.sample_mod)


@pytest.mark.parametrize("rate", [0.0, float("nan"), 10.0, 1_000.0])
def test_a_slow_process_is_traced_continuously_renewed_every_third_of_the_ttl(rate):
    plan = plan_tracing(rate, 0.02, ttl_s=9.0)
    assert plan.continuous and plan.duty == 1.0
    assert (plan.window_s, plan.period_s) == (9.0, 3.0)
    assert _whole_cost(rate, plan) <= 0.02 or not rate > 0


@pytest.mark.parametrize("rate", [2_000.0, 26_000.0, 104_000.0, 1e6, 1e8])
@pytest.mark.parametrize("budget", [0.01, 0.02, 0.05])
def test_a_fast_process_is_traced_in_windows_whose_whole_cost_is_the_budget(rate, budget):
    plan = plan_tracing(rate, budget, ttl_s=10.0)
    # The sampled part alone stays within the budget while on, as for continuous tracing.
    assert plan.sample_mod == choose_sample_mod(rate, budget)
    # Hooks included, tracing costs the budget on average: no more, and no less.
    if plan.continuous:
        assert _whole_cost(rate, plan) <= budget
    else:
        assert _whole_cost(rate, plan) == pytest.approx(budget)
        assert rate * (HOOK_COST_S + TRACE_COST_S / plan.sample_mod) > budget
        assert plan.window_s / plan.period_s == pytest.approx(plan.duty)
        assert MIN_WINDOW_S <= plan.window_s <= 10.0
        # The period is the standard one unless the window would be shorter than allowed.
        assert plan.period_s == pytest.approx(PERIOD_S) or plan.window_s == MIN_WINDOW_S


def test_the_hooks_alone_can_exceed_the_budget_so_sample_mod_cannot_keep_it():
    rate = 0.03 / HOOK_COST_S  # the hooks alone cost 3 % of the time while on
    plan = plan_tracing(rate, 0.02, ttl_s=10.0)
    assert plan.duty < 0.02 / 0.03
    assert _whole_cost(rate, plan) == pytest.approx(0.02)


def test_windows_never_outlast_the_ttl_nor_go_below_the_kernel_floor():
    plan = plan_tracing(50_000.0, 0.02, ttl_s=0.3, floor_mod=500)
    assert plan.window_s <= 0.3 and plan.sample_mod == 500
    assert _whole_cost(50_000.0, plan) <= 0.02 + 1e-12
    assert plan_tracing(50_000.0, 0.02, ttl_s=10.0, floor_mod=1).sample_mod < 500


def test_plan_rejects_bad_budget_and_ttl():
    with pytest.raises(ValueError, match="budget"):
        plan_tracing(100.0, 1.5, ttl_s=10.0)
    with pytest.raises(ValueError, match="ttl"):
        plan_tracing(100.0, 0.02, ttl_s=0.0)


# ---------------------------------------------------------------------------- logs


def _rec(t: float, unit="G/F", kind="error", level="ERROR") -> LogRecord:
    return LogRecord(t, unit, "G", "p1", 42, level, "ezmsg", f"boom at {t}", "Traceback...", kind)


def test_error_bursts_are_reported_once():
    store = LogStore(burst_quiet_s=5.0)
    starts = [store.add(_rec(t)) for t in (0.0, 0.01, 0.02, 4.0, 10.0, 10.5)]
    assert starts == [True, False, False, False, True, False]
    assert store.error_counts["G/F"] == 6
    assert not store.add(_rec(11.0, kind="log", level="INFO"))
    frame = store.frame(unit="G/F", level="ERROR")
    assert len(frame) == 6 and isinstance(frame["time"].dtype, pd.DatetimeTZDtype)
    assert len(store.frame(level="INFO")) == 7
    assert store.last_error("G/F").message == "boom at 10.5"
    with pytest.raises(ValueError, match="level"):
        store.frame(level="LOUD")


# ---------------------------------------------------------------------------- settings


def _event(seq, unit, value, kind="SETTINGS_UPDATED"):
    return SimpleNamespace(
        seq=seq,
        event_type=SimpleNamespace(value=kind),
        component_address=unit,
        timestamp=1000.0 + seq,
        source_session_id="s",
        source_process_id=None,
        value=SimpleNamespace(structured_value=value, repr_value=value, settings_schema=None),
    )


def test_settings_history_records_initial_values_and_field_changes():
    store = SettingsStore()
    seen = []
    store.subscribe(lambda address, value, event: seen.append(address))
    store.ingest_event(
        _event(1, "G/F", {"cutoff": 20.0, "tone": {"f": 5.0, "a": 1.0}}, "INITIAL_SETTINGS")
    )
    store.ingest_event(_event(2, "G/F", {"cutoff": 30.0, "tone": {"f": 5.0, "a": 2.0}}))
    store.ingest_event(_event(2, "G/F", {"cutoff": 99.0, "tone": {"f": 5.0, "a": 2.0}}))  # dup
    store.ingest_event(_event(5, "G/F", {"cutoff": 31.0, "tone": {"f": 5.0, "a": 2.0}}))
    hist = store.history()
    assert hist[hist["event"] == "INITIAL_SETTINGS"]["field"].tolist() == [
        "cutoff",
        "tone.f",
        "tone.a",
    ]
    updates = hist[hist["event"] == "SETTINGS_UPDATED"]
    assert updates[["field", "old", "new"]].values.tolist() == [
        ["cutoff", 20.0, 30.0],
        ["tone.a", 1.0, 2.0],
        ["cutoff", 30.0, 31.0],
    ]
    assert store.gaps == 2
    assert seen == ["G/F", "G/F", "G/F"]
    assert isinstance(hist["time"].dtype, pd.DatetimeTZDtype)


def test_settings_tables_show_enums_as_members_and_list_their_choices():
    """Issue 9: the table printed ``hann`` where ``lab.revert`` printed ``Window.HANN``,
    and listed choices for Literal fields only."""
    from ezmsg.core.settingsmeta import settings_schema_from_type

    from ezmsg_lab.demo import units as demo
    from ezmsg_lab.model.settings_schema import spec_from_class

    schema = settings_schema_from_type(demo.FilterSettings)
    value = {
        "cutoff_hz": 20.0,
        "taps": 31,
        "window": "hamming",
        "kind": "lowpass",
        "bypass": np.False_,
    }
    store = SettingsStore()
    first = _event(1, "G/F", value, "INITIAL_SETTINGS")
    first.value.settings_schema = schema
    store.ingest_event(first)
    second = _event(2, "G/F", {**value, "window": "hann"})
    second.value.settings_schema = schema
    store.ingest_event(second)
    specs = {"G/F": spec_from_class(demo.FilterSettings)}

    table = store.frame(specs=specs).set_index("field")
    assert table.loc["window", "value"] is demo.Window.HANN
    assert table.loc["window", "choices"] == list(demo.Window)
    assert table.loc["kind", "choices"] == ["lowpass", "highpass"]
    assert type(table.loc["bypass", "value"]) is bool  # plain Python, not np.False_
    assert "Window.HANN" in repr(table[["value"]])
    hist = store.history(specs=specs)
    row = hist[hist["event"] == "SETTINGS_UPDATED"].iloc[0]
    assert (row["old"], row["new"]) == (demo.Window.HAMMING, demo.Window.HANN)
    # Without specs (a class known by its metadata only), values stay as ezmsg gives them.
    assert store.frame().set_index("field").loc["window", "value"] == "hann"


def test_flatten():
    assert flatten({"a": 1, "b": {"c": 2, "d": {}}}) == {"a": 1, "b.c": 2, "b.d": {}}


# ---------------------------------------------------------------------------- clock


def test_since_forms():
    now = time.time()
    assert since_to_epoch_s(None) is None
    assert since_to_epoch_s(30) == pytest.approx(now - 30, abs=1)
    assert since_to_epoch_s("30s") == pytest.approx(now - 30, abs=1)
    assert since_to_epoch_s(pd.Timedelta(minutes=1)) == pytest.approx(now - 60, abs=1)
    assert (
        since_to_epoch_s("2026-01-01T00:00:00") == pd.Timestamp("2026-01-01", tz="UTC").timestamp()
    )
    with pytest.raises(ValueError):
        since_to_epoch_s(-1)
    with pytest.raises(TypeError):
        since_to_epoch_s(True)
    assert str(to_utc(0.0).tz) == "UTC"


def test_gone_processes_are_forgotten_and_polls_do_not_grow_with_them():
    """Hundreds of short-lived pipelines: the store keeps what it needs for the current
    processes, a bounded number of gone ones, and history rows only while the ring holds
    them."""
    from ezmsg_lab.model.metrics import GONE_KEEP_MAX, GONE_KEEP_S

    store = MetricsStore(capacity=500)  # 5 rows a launch: the last ~100 launches
    live = {"keep": ProcessMeta("keep", 1, "h", ("G/KEEP",))}
    t = 0.0

    def keep_sample(n: int) -> EndpointSample:
        return EndpointSample("keep", "G/KEEP/OUT:0", "G/KEEP/OUT", "publisher", n, n * 1e9)

    for launch in range(300):  # each "pipeline" lives for two polls, then leaves
        pid = f"short{launch}"
        meta = ProcessMeta(pid, 1000 + launch, "h", (f"S{launch}/U",))
        for k in range(2):
            t += 1.0
            store.ingest(
                t,
                [
                    keep_sample(int(t)),
                    EndpointSample(
                        pid, f"S{launch}/U/OUT:0", f"S{launch}/U/OUT", "publisher", k, t * 1e9
                    ),
                ],
                {**live, pid: meta},
            )
        t += 1.0
        store.ingest(t, [keep_sample(int(t))], live)
    # Bounded: the live process, at most GONE_KEEP_MAX gone ones, series still in history.
    assert len(store._gone_at) <= GONE_KEEP_MAX
    assert len(store._current) <= 1 + GONE_KEEP_MAX
    assert len(store.processes) <= 1 + GONE_KEEP_MAX
    rows_series = set(np.unique(store.history.view(["series"])["series"]).tolist())
    assert set(store.series) <= rows_series | set(store._retired) | {
        s.index for s in store._current.values()
    }
    assert len(store.series) <= 500 // 5 + 2  # not one per endpoint ever seen (301)
    # Views still work and the live endpoint keeps its true rate.
    prof = store.profile(include_gone=False)
    assert prof["topic"].tolist() == ["G/KEEP/OUT"]
    assert prof["rate_hz"].iloc[0] == pytest.approx(1.0)
    hist = store.metrics()
    assert set(hist["topic"]) >= {"G/KEEP/OUT"}
    assert hist["topic"].notna().all()
    # Gone ones age out by time too.
    t += GONE_KEEP_S + 1
    store.ingest(t, [keep_sample(int(t))], live)
    assert store._gone_at == {} and set(store.processes) == {"keep"}


def test_channel_kinds_unknown_is_missing_and_publishers_take_their_subscribers():
    from ezmsg_lab.model.metrics import publisher_channels

    store = MetricsStore()
    procs = {"p1": P1, "p2": P2}

    def ep(proc, eid, topic, kind, channel="UNKNOWN"):
        return EndpointSample(proc, eid, topic, kind, 1, 0.0, channel=channel)

    store.ingest(
        0.0,
        [
            ep("p1", "a", "G/SRC/OUT", "publisher"),
            ep("p2", "b", "G/SINK/IN", "subscriber", "SHM"),
            ep("p2", "c", "G/SINK/INPUT_SETTINGS", "subscriber"),  # nothing received yet
            ep("p1", "d", "G/LONE/OUT", "publisher"),  # nobody listens
        ],
        procs,
    )
    raw = store.profile().set_index("topic")
    assert raw["channel_kind"].isna().sum() == 3  # no "UNKNOWN" that looks like data
    assert "UNKNOWN" not in list(raw["channel_kind"].cat.categories)
    graph = {"G/SRC/OUT": ["G/OUT"], "G/OUT": ["G/SINK/IN"], "G/LONE/OUT": []}
    prof = publisher_channels(store.profile(), graph).set_index("topic")
    assert prof.loc["G/SRC/OUT", "channel_kind"] == "SHM"  # through a collection topic
    assert prof.loc["G/SINK/IN", "channel_kind"] == "SHM"
    assert pd.isna(prof.loc["G/LONE/OUT", "channel_kind"])
    assert pd.isna(prof.loc["G/SINK/INPUT_SETTINGS", "channel_kind"])
    # Subscribers on different channels: the publisher shows both.
    store.ingest(1.0, [ep("p1", "e", "G/TAP/IN", "subscriber", "LOCAL")], procs)
    graph["G/SRC/OUT"].append("G/TAP/IN")
    prof = publisher_channels(store.profile(), graph).set_index("topic")
    assert prof.loc["G/SRC/OUT", "channel_kind"] == "LOCAL+SHM"
