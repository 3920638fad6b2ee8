"""Profiling store: true rates from the Lab's own polls, bounded history.

Rules (see DESIGN.md, "Rules that keep the numbers true"):

- a rate is the delta of an endpoint's monotonic ``*_total`` counter between two of this
  Lab's polls, over the delta of that process's own timestamps; ezmsg's ``*_window``
  fields are reset by any client and are never used;
- a counter that goes backwards means the endpoint restarted: a new series starts, with
  no rate for its first poll (never a negative rate);
- a process that is in the topology but did not answer a poll is ``missing`` (rate NaN),
  not zero traffic; endpoints of processes that left the topology are ``gone``;
- while the Lab has lost its GraphServer, every live endpoint gets one ``disconnected``
  row (rate NaN) at the time of the loss: the gap is marked, never bridged by a rate.

Pure Python and numpy: no ezmsg import, testable on its own.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .clock import to_utc
from .ring import ColumnRing

# Storage codes of ezmsg's channel kinds (0: ezmsg cannot tell, e.g. nothing received yet).
CHANNEL_KINDS = ("UNKNOWN", "LOCAL", "SHM", "TCP")
_CHANNEL_CODE = {name: i for i, name in enumerate(CHANNEL_KINDS)}
# What DataFrames show: a kind, or several for a publisher whose subscribers differ (a
# channel ezmsg cannot tell is missing, NaN, not a word that looks like data).
CHANNEL_CATEGORIES = (
    "LOCAL",
    "SHM",
    "TCP",
    "LOCAL+SHM",
    "LOCAL+TCP",
    "SHM+TCP",
    "LOCAL+SHM+TCP",
)
STATUSES = ("ok", "missing", "gone", "disconnected")
KINDS = ("publisher", "subscriber")

PROFILE_COLUMNS = [
    "time",
    "topic",
    "endpoint",
    "kind",
    "unit",
    "process",
    "pid",
    "host",
    "rate_hz",
    "messages_total",
    "inflight",
    "num_buffers",
    "channel_kind",
    "errors",
    "status",
]

# How long endpoints of a process that left the topology stay listed in profile(), and
# how many such processes are kept at most: then the store forgets them (their rows stay
# in the history until the ring overwrites them), so a poll costs the same after hundreds
# of launches as after one.
GONE_KEEP_S = 60.0
GONE_KEEP_MAX = 32
# A process silent this long is shown as gone (see MetricsStore's gone_after_s).
GONE_AFTER_S = 10.0


@dataclass(frozen=True)
class EndpointSample:
    """One endpoint's counters in one poll (converted from ezmsg's snapshot)."""

    process_id: str
    endpoint_id: str
    topic: str
    kind: str  # "publisher" or "subscriber"
    total: int
    ts_ns: float  # the process's perf_counter_ns at snapshot time
    inflight: int = 0
    num_buffers: int = 0
    channel: str = "UNKNOWN"
    # ts_ns mapped to UTC with its host's clock offset (None: stamp with the poll time)
    epoch_ns: int | None = None


@dataclass(frozen=True)
class ProcessMeta:
    """A process as the GraphServer's process table knows it."""

    process_id: str
    pid: int | None
    host: str | None
    units: tuple[str, ...] = ()


@dataclass
class Series:
    """One endpoint's counter history, from its first poll until it restarts or leaves."""

    index: int
    process_id: str
    endpoint_id: str
    topic: str
    kind: str
    unit: str | None
    generation: int = 0
    last_ts_ns: float = math.nan
    last_total: int = -1
    latest: dict[str, object] = field(default_factory=dict)
    ended: bool = False  # its process stopped answering for good: a reply starts anew


def unit_of_topic(topic: str, units: Iterable[str]) -> str | None:
    """The unit that owns a stream address (``DEMO/FILTER/INPUT`` -> ``DEMO/FILTER``)."""
    owner = topic.rsplit("/", 1)[0]
    return owner if owner in set(units) else None


class _Row(NamedTuple):
    """One history row's values (besides its time and series)."""

    total: int
    rate: float
    inflight: int
    num_buffers: int
    status: str
    channel: str


class MetricsStore:
    """Per-endpoint counters and rates, with history in a columnar ring buffer.

    Parameters
    ----------
    capacity : int
        Rows of history kept (one row per endpoint per poll); about 34 bytes a row.
    gone_after_s : float or None
        A process that has not answered for this long is shown as ``gone`` although the
        GraphServer still lists it: a host cut off the network keeps its processes in
        ezmsg's table until TCP gives up (many minutes). If it answers again, its
        endpoints start new series (the gap's rate is unknown). None: never.
    """

    def __init__(self, capacity: int = 200_000, gone_after_s: float | None = GONE_AFTER_S) -> None:
        if gone_after_s is not None and not gone_after_s > 0:
            raise ValueError(f"gone_after={gone_after_s!r} must be a positive number of seconds")
        self.gone_after_s = gone_after_s
        self._missing_since: dict[str, float] = {}
        self.history = ColumnRing(
            capacity,
            {
                "t_ns": np.int64,  # epoch nanoseconds of the poll (UTC)
                "series": np.int32,
                "total": np.int64,
                "rate": np.float64,
                "inflight": np.int32,
                "num_buffers": np.int32,
                "status": np.int8,
                "channel": np.int8,
            },
        )
        # Series by index (history rows refer to it); retired ones leave once the ring
        # has overwritten their last row.
        self.series: dict[int, Series] = {}
        self._next_index = 0
        self._retired: dict[int, int] = {}  # series index -> t_ns of its last row
        self._current: dict[tuple[str, str], Series] = {}
        self._by_process: dict[str, dict[str, Series]] = {}
        self._process_status: dict[str, str] = {}
        self._gone_at: dict[str, float] = {}
        self.processes: dict[str, ProcessMeta] = {}
        self.polls = 0
        self.last_poll_s: float | None = None
        self.lock = threading.RLock()

    # ------------------------------------------------------------------ ingest
    def ingest(
        self,
        poll_s: float,
        samples: Iterable[EndpointSample],
        expected: Mapping[str, ProcessMeta],
    ) -> None:
        """Record one poll.

        Parameters
        ----------
        poll_s : float
            Epoch seconds (UTC) of the poll.
        samples : EndpointSample
            Every endpoint of every process that answered.
        expected : mapping of process id to ProcessMeta
            The GraphServer's process table at poll time (pid and host come from here:
            ezmsg 3.9.0 profiling payloads carry the parent's pid for forked processes).
        """
        with self.lock:
            self._ingest(poll_s, samples, expected)

    def _ingest(
        self,
        poll_s: float,
        samples: Iterable[EndpointSample],
        expected: Mapping[str, ProcessMeta],
    ) -> None:
        self.polls += 1
        self.last_poll_s = poll_s
        t_ns = int(poll_s * 1e9)
        answered: set[str] = set()
        rows: dict[str, list[Any]] = {c: [] for c in self.history.columns}
        for s in samples:
            answered.add(s.process_id)
            self._ingest_sample(s, t_ns, rows, expected)
        self._mark_silent(expected, answered, poll_s, t_ns, rows)
        self._mark_departed(expected, poll_s, t_ns)
        for process_id, meta in expected.items():
            self.processes[process_id] = meta
            self._gone_at.pop(process_id, None)
        self.history.extend(**{name: np.asarray(vals) for name, vals in rows.items()})
        self._forget_gone(poll_s)

    def _ingest_sample(
        self,
        s: EndpointSample,
        t_ns: int,
        rows: dict[str, list[Any]],
        expected: Mapping[str, ProcessMeta],
    ) -> None:
        """One endpoint's counters: its rate since the last poll, or a new series when the
        endpoint is new, restarted (its total went back) or had ended."""
        key = (s.process_id, s.endpoint_id)
        series = self._current.get(key)
        meta = expected.get(s.process_id) or self.processes.get(s.process_id)
        if series is None or s.total < series.last_total or series.ended:
            generation = 0 if series is None else series.generation + 1
            series = Series(
                index=self._next_index,
                process_id=s.process_id,
                endpoint_id=s.endpoint_id,
                topic=s.topic,
                kind=s.kind,
                unit=unit_of_topic(s.topic, meta.units) if meta else None,
                generation=generation,
            )
            self._next_index += 1
            self.series[series.index] = series
            if key in self._current:
                self._retired[self._current[key].index] = t_ns
            self._current[key] = series
            self._by_process.setdefault(s.process_id, {})[s.endpoint_id] = series
            rate = math.nan
        else:
            dt = (s.ts_ns - series.last_ts_ns) / 1e9
            rate = (s.total - series.last_total) / dt if dt > 0 else math.nan
        series.last_ts_ns = s.ts_ns
        series.last_total = s.total
        row_t_ns = t_ns if s.epoch_ns is None else int(s.epoch_ns)
        series.latest = {
            "t_ns": row_t_ns,
            "total": s.total,
            "rate": rate,
            "inflight": s.inflight,
            "num_buffers": s.num_buffers,
            "channel": s.channel,
            "status": "ok",
        }
        row = _Row(s.total, rate, s.inflight, s.num_buffers, "ok", s.channel)
        self._append_row(rows, row_t_ns, series.index, row)

    def _mark_silent(
        self,
        expected: Mapping[str, ProcessMeta],
        answered: set[str],
        poll_s: float,
        t_ns: int,
        rows: dict[str, list[Any]],
    ) -> None:
        """Processes in the topology that did not answer: missing (not zero traffic), and
        gone once silent for ``gone_after_s`` (a host off the network, still listed)."""
        for process_id in expected:
            if process_id in answered:
                self._process_status[process_id] = "ok"
                self._missing_since.pop(process_id, None)
                continue
            since = self._missing_since.setdefault(process_id, poll_s)
            if self.gone_after_s is not None and poll_s - since >= self.gone_after_s:
                self._process_status[process_id] = "gone"
                for series in self._series_of(process_id):
                    if not series.ended:
                        series.ended = True
                        series.latest = {
                            **series.latest,
                            "t_ns": t_ns,
                            "rate": math.nan,
                            "status": "gone",
                        }
                continue
            self._process_status[process_id] = "missing"
            for series in self._series_of(process_id):
                series.latest = {
                    **series.latest,
                    "t_ns": t_ns,
                    "rate": math.nan,
                    "status": "missing",
                }
                row = _Row(series.last_total, math.nan, 0, 0, "missing", "UNKNOWN")
                self._append_row(rows, t_ns, series.index, row)

    def _mark_departed(self, expected: Mapping[str, ProcessMeta], poll_s: float, t_ns: int) -> None:
        """Processes that left the topology: their endpoints are gone."""
        for process_id in list(self._process_status):
            if process_id in expected:
                continue
            self._missing_since.pop(process_id, None)
            if self._process_status[process_id] != "gone":
                self._gone_at[process_id] = poll_s
            self._process_status[process_id] = "gone"
            for series in self._series_of(process_id):
                if series.latest.get("status") != "gone":
                    series.latest = {
                        **series.latest,
                        "t_ns": t_ns,
                        "rate": math.nan,
                        "status": "gone",
                    }

    def _forget_gone(self, poll_s: float) -> None:
        """Forget processes gone for longer than GONE_KEEP_S (or beyond GONE_KEEP_MAX)."""
        by_age = sorted(self._gone_at.items(), key=lambda kv: kv[1])
        excess = len(by_age) - GONE_KEEP_MAX
        for i, (process_id, gone_at) in enumerate(by_age):
            if i >= excess and poll_s - gone_at <= GONE_KEEP_S:
                break
            for series in self._by_process.pop(process_id, {}).values():
                self._current.pop((process_id, series.endpoint_id), None)
                last_t_ns = series.latest.get("t_ns")
                self._retired[series.index] = last_t_ns if isinstance(last_t_ns, int) else 0
            self._process_status.pop(process_id, None)
            self._gone_at.pop(process_id, None)
            self.processes.pop(process_id, None)
        if self._retired:
            oldest = self.history.oldest("t_ns")
            assert oldest is None or isinstance(oldest, int)  # t_ns is an int64 column
            for index, last_t_ns in list(self._retired.items()):
                if oldest is None or last_t_ns < oldest:
                    del self._retired[index]
                    self.series.pop(index, None)

    def mark_disconnected(self, time_s: float) -> int:
        """The Lab lost its GraphServer at ``time_s``: one ``disconnected`` row per live
        endpoint, whose series then ends (what answers after a reconnect starts a new
        series: no rate spans the gap). Returns the number of endpoints marked."""
        t_ns = int(time_s * 1e9)
        rows: dict[str, list[Any]] = {c: [] for c in self.history.columns}
        with self.lock:
            for series in self._current.values():
                if series.ended or not series.latest or series.latest["status"] == "gone":
                    continue
                series.ended = True
                series.latest = {
                    **series.latest,
                    "t_ns": t_ns,
                    "rate": math.nan,
                    "status": "disconnected",
                }
                row = _Row(series.last_total, math.nan, 0, 0, "disconnected", "UNKNOWN")
                self._append_row(rows, t_ns, series.index, row)
            for process_id, status in self._process_status.items():
                if status != "gone":
                    self._process_status[process_id] = "disconnected"
            self.history.extend(**{name: np.asarray(vals) for name, vals in rows.items()})
        return len(rows["t_ns"])

    @staticmethod
    def _append_row(rows: dict[str, list[Any]], t_ns: int, series: int, row: _Row) -> None:
        rows["t_ns"].append(t_ns)
        rows["series"].append(series)
        rows["total"].append(row.total)
        rows["rate"].append(row.rate)
        rows["inflight"].append(row.inflight)
        rows["num_buffers"].append(row.num_buffers)
        rows["status"].append(STATUSES.index(row.status))
        rows["channel"].append(_CHANNEL_CODE.get(row.channel, 0))

    def _series_of(self, process_id: str) -> list[Series]:
        return list(self._by_process.get(process_id, {}).values())

    # ------------------------------------------------------------------ views
    def profile(
        self,
        errors: Mapping[str, int] | None = None,
        now_s: float | None = None,
        include_gone: bool = True,
    ) -> pd.DataFrame:
        """The latest poll: one row per endpoint (publishers first, then subscribers)."""
        errors = errors or {}
        now_s = now_s if now_s is not None else (self.last_poll_s or 0.0)
        with self.lock:
            recs = self._profile_records(errors, now_s, include_gone)
        if not recs:
            return _empty_profile(PROFILE_COLUMNS)
        return _profile_frame(recs)

    def _profile_records(
        self, errors: Mapping[str, int], now_s: float, include_gone: bool
    ) -> list[tuple[Any, ...]]:
        recs: list[tuple[Any, ...]] = []
        for series in self._current.values():
            if not series.latest:
                continue
            status = series.latest["status"]
            if status == "gone" and (
                not include_gone
                or now_s - self._gone_at.get(series.process_id, now_s) > GONE_KEEP_S
            ):
                continue
            meta = self.processes.get(series.process_id)
            recs.append(
                (
                    series.latest["t_ns"],
                    series.topic,
                    series.endpoint_id,
                    series.kind,
                    series.unit,
                    series.process_id,
                    meta.pid if meta else None,
                    meta.host if meta else None,
                    series.latest["rate"],
                    series.latest["total"],
                    series.latest["inflight"],
                    series.latest["num_buffers"],
                    series.latest["channel"],
                    errors.get(series.unit, 0) if series.unit else 0,
                    status,
                )
            )
        return recs

    def metrics(
        self, since_s: float | None = None, topics: Iterable[str] | None = None
    ) -> pd.DataFrame:
        """History in long format: time, topic, endpoint, kind, unit, status, metric, value."""
        with self.lock:
            cols = self.history.view()
            series = dict(self.series)
        return _metrics_frame(cols, series, since_s, topics)

    # ------------------------------------------------------------------ rates
    # Every derived rate the Lab shows or acts on is computed here (the profile's
    # ``rate_hz`` per endpoint is the poller's, from ezmsg's counters).

    def process_rates(self, topics: Iterable[str] | None = None) -> dict[str, float]:
        """Messages per second each live process handles (latest poll), summed over its
        endpoints, on ``topics`` only when given (processes with no known rate left
        out): the profile's ``rate_hz`` summed per process, without building the frame
        (tracing asks at every window it starts)."""
        chosen = None if topics is None else set(topics)
        with self.lock:
            recs = self._profile_records({}, self.last_poll_s or 0.0, include_gone=False)
        rates: dict[str, float] = {}
        for rec in recs:
            topic, process, rate = rec[1], rec[5], rec[8]
            if (chosen is not None and topic not in chosen) or rate is None or rate != rate:
                continue
            rates[str(process)] = rates.get(str(process), 0.0) + float(rate)
        return rates

    def recent_rate(self, endpoints: Iterable[str], window_s: float = 2.0) -> float | None:
        """Summed rate of ``endpoints`` over the last ``window_s`` of polls: total messages
        over time per endpoint, not the last poll's rate (which at a boosted 20 Hz poll can
        be 0 for a steady 100 Hz stream whose process was briefly descheduled, or NaN after
        a missed poll). None when fewer than two polls of any endpoint are in the window."""
        endpoints = set(endpoints)
        if not endpoints:
            return None
        with self.lock:
            now = self.last_poll_s or 0.0
            rows = [s for s in self._current.values() if s.endpoint_id in endpoints and s.latest]
            topics = {s.topic for s in rows}
        if not topics:
            return None
        history = self.metrics(since_s=now - window_s, topics=topics)
        history = history[
            (history["metric"] == "messages_total")
            & (history["status"].astype(str) == "ok")
            & history["endpoint"].isin(endpoints)
        ]
        total, found = 0.0, False
        for _, g in history.groupby("endpoint"):
            if len(g) < 2:
                continue
            dt = (g["time"].iloc[-1] - g["time"].iloc[0]).total_seconds()
            if dt > 0:
                total += (g["value"].iloc[-1] - g["value"].iloc[0]) / dt
                found = True
        return total if found else None


def topic_rates(profile: pd.DataFrame) -> tuple[dict[str, float], dict[str, float]]:
    """(receive rate per subscribed topic, publish rate per published topic) of the
    endpoints whose poll was ok, summed over endpoints; NaN where none is known."""
    ok = profile[profile["status"].astype(str) == "ok"]
    subs = ok[ok["kind"] == "subscriber"].groupby("topic", observed=True)["rate_hz"]
    pubs = ok[ok["kind"] == "publisher"].groupby("topic", observed=True)["rate_hz"]
    sub_rates, pub_rates = subs.sum(min_count=1), pubs.sum(min_count=1)
    return (
        {str(k): float(v) for k, v in sub_rates.items()},
        {str(k): float(v) for k, v in pub_rates.items()},
    )


def edge_rates(
    profile: pd.DataFrame, graph: Mapping[str, Iterable[str]]
) -> dict[tuple[str, str], float | None]:
    """The rate of each edge ``src -> dst``: what ``dst``'s subscriber receives or, when
    it has no reading, what ``src`` publishes; None when neither is known."""
    sub_rate, pub_rate = topic_rates(profile)
    out: dict[tuple[str, str], float | None] = {}
    for src, dsts in graph.items():
        for dst in dsts:
            rate = sub_rate.get(dst, pub_rate.get(src))
            out[(src, dst)] = finite_or_none(rate)
    return out


def finite_or_none(x: Any) -> float | None:
    """``float(x)`` for a finite number, else None (for JSON and widgets)."""
    if x is None or isinstance(x, bool) or not isinstance(x, (int, float, np.number)):
        return None
    return float(x) if math.isfinite(float(x)) else None


def channel_label(kinds: Iterable[str]) -> str | None:
    """One label for a set of channel kinds (``"SHM+TCP"``); None when none is known."""
    known = [k for k in ("LOCAL", "SHM", "TCP") if k in set(kinds)]
    return "+".join(known) if known else None


def publisher_channels(profile: pd.DataFrame, graph: Mapping[str, Iterable[str]]) -> pd.DataFrame:
    """Fill each publisher's ``channel_kind`` from the subscribers its topic reaches.

    ezmsg reports the channel a subscriber last received on; a publisher has none of its
    own, but its messages travel on its subscribers' channels. ``graph`` is the
    GraphSnapshot's ``{topic: [downstream topics]}`` (collection topics in between are
    followed).
    """
    subs = profile[(profile["kind"] == "subscriber") & profile["channel_kind"].notna()]
    if subs.empty:
        return profile
    by_topic: dict[str, set[str]] = {}
    for topic, kind in zip(subs["topic"], subs["channel_kind"].astype(str), strict=True):
        by_topic.setdefault(topic, set()).update(kind.split("+"))
    labels: list[str | None] = []
    for topic, kind in zip(profile["topic"], profile["kind"], strict=True):
        if kind != "publisher":
            labels.append(None)
            continue
        seen, todo, kinds = {topic}, [topic], set()
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
                    kinds |= by_topic.get(nxt, set())
        labels.append(channel_label(kinds))
    is_pub = (profile["kind"] == "publisher").to_numpy()
    filled = profile["channel_kind"].astype(object).where(~is_pub, pd.Series(labels, dtype=object))
    out = profile.copy()
    out["channel_kind"] = pd.Categorical(filled, categories=CHANNEL_CATEGORIES)
    return out


def _profile_frame(recs: list[tuple[Any, ...]]) -> pd.DataFrame:
    cols = list(zip(*recs, strict=True))
    df = pd.DataFrame(
        {
            "time": pd.to_datetime(np.asarray(cols[0], dtype=np.int64), utc=True),
            "topic": np.asarray(cols[1], dtype=object),
            "endpoint": np.asarray(cols[2], dtype=object),
            "kind": pd.Categorical(cols[3], categories=KINDS),
            "unit": np.asarray(cols[4], dtype=object),
            "process": np.asarray(cols[5], dtype=object),
            "pid": pd.array(cols[6], dtype="Int64"),
            "host": np.asarray(cols[7], dtype=object),
            "rate_hz": np.asarray(cols[8], dtype=np.float64),
            "messages_total": np.asarray(cols[9], dtype=np.int64),
            "inflight": np.asarray(cols[10], dtype=np.int64),
            "num_buffers": np.asarray(cols[11], dtype=np.int64),
            "channel_kind": pd.Categorical(
                [None if c == "UNKNOWN" else c for c in cols[12]], categories=CHANNEL_CATEGORIES
            ),
            "errors": np.asarray(cols[13], dtype=np.int64),
            "status": pd.Categorical(cols[14], categories=pd.Index(STATUSES)),
        }
    )
    return df.sort_values(["kind", "topic", "endpoint"], ignore_index=True)


def _metrics_frame(
    cols: dict[str, np.ndarray],
    series: Mapping[int, Series],
    since_s: float | None,
    topics: Iterable[str] | None,
) -> pd.DataFrame:
    keep = np.ones(len(cols["t_ns"]), dtype=bool)
    if since_s is not None:
        keep &= cols["t_ns"] >= int(since_s * 1e9)
    # Attributes per series that has rows here (not per series ever seen).
    used, inverse = np.unique(cols["series"], return_inverse=True)
    known = [series.get(int(i)) for i in used]
    present = np.array([s is not None for s in known] + [True], dtype=bool)[:-1]
    keep &= present[inverse] if len(used) else keep
    if topics is not None:
        wanted = {topics} if isinstance(topics, str) else set(topics)
        ok = np.array([s is not None and s.topic in wanted for s in known] + [True], dtype=bool)
        keep &= ok[:-1][inverse] if len(used) else False
    cols = {k: v[keep] for k, v in cols.items()}
    inverse = inverse[keep]
    metric_names = ("rate_hz", "messages_total", "inflight")
    m = len(metric_names)
    n = len(cols["t_ns"])
    rep = np.tile(inverse, m)
    attrs = {
        name: np.array([getattr(s, attr, None) for s in known] + [None], dtype=object)[:-1]
        for name, attr in (
            ("topic", "topic"),
            ("endpoint", "endpoint_id"),
            ("kind", "kind"),
            ("unit", "unit"),
        )
    }
    return pd.DataFrame(
        {
            "time": pd.to_datetime(np.tile(cols["t_ns"], m), utc=True),
            **{name: arr[rep] for name, arr in attrs.items()},
            "status": pd.Categorical.from_codes(
                np.tile(cols["status"], m), categories=pd.Index(STATUSES)
            ),
            "metric": pd.Categorical(np.repeat(metric_names, n), categories=metric_names),
            "value": np.concatenate(
                [
                    cols["rate"],
                    cols["total"].astype(np.float64),
                    cols["inflight"].astype(np.float64),
                ]
            ),
        }
    )


def _empty_profile(columns: list[str]) -> pd.DataFrame:
    df = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    df["time"] = to_utc(np.array([], dtype=np.float64))
    for c in ("rate_hz",):
        df[c] = df[c].astype(np.float64)
    for c in ("messages_total", "inflight", "num_buffers", "errors"):
        df[c] = df[c].astype(np.int64)
    df["pid"] = df["pid"].astype("Int64")
    df["kind"] = pd.Categorical([], categories=KINDS)
    df["channel_kind"] = pd.Categorical([], categories=CHANNEL_CATEGORIES)
    df["status"] = pd.Categorical([], categories=pd.Index(STATUSES))
    return df
