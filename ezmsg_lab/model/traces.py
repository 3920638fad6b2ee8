"""Trace store: latency samples from ezmsg's trace stream in a columnar ring buffer.

A sample costs 30 bytes (epoch ns, value, message seq, stream key, metric, channel). Ingest works on
whole batches: one pass of C-level attribute fetching per batch, then numpy.

ezmsg samples ``publish_delta_ns`` as the time between two *sampled* publishes, so with
``sample_mod=N`` a value spans N messages; the store divides it by N to give the time per
message, and drops the first sample of each endpoint (always 0).

Pure Python and numpy: no ezmsg import.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import numpy as np
import pandas as pd

from .metrics import CHANNEL_KINDS, ProcessMeta
from .ring import ColumnRing

METRICS = ("publish_delta_ns", "backpressure_wait_ns", "lease_time_ns", "user_span_ns")
_METRIC_CODE = {m: i for i, m in enumerate(METRICS)}
_CHANNEL_CODE = {name: i for i, name in enumerate(CHANNEL_KINDS)}
_TIMESTAMP = attrgetter("timestamp")
_VALUE = attrgetter("value")
_COMBO = attrgetter("endpoint_id", "topic", "metric", "channel_kind")
# ezmsg's channel kinds are enum members, whose ``_value_`` is a plain attribute (``value``
# and hashing an enum run Python code: half the ingest time when they were used).
_FAST_COMBO = attrgetter("endpoint_id", "topic", "metric", "channel_kind._value_")

_SEQ = attrgetter("sample_seq")

BYTES_PER_SAMPLE = 8 + 8 + 8 + 4 + 1 + 1
_METRIC_DTYPE = pd.CategoricalDtype(pd.Index(METRICS))
_CHANNEL_DTYPE = pd.CategoricalDtype(pd.Index(CHANNEL_KINDS))


@dataclass(frozen=True)
class StreamKey:
    """What a trace sample is about."""

    process_id: str
    endpoint_id: str
    topic: str  # the stream address
    task: str | None  # user_span samples name the task that handled the message


def _channel_name(kind: object) -> str | None:
    """A channel kind's name (ezmsg's enum, or a stand-in with ``value``, or a string)."""
    if kind is None:
        return None
    return str(getattr(kind, "value", kind))


class TraceStore:
    """Bounded trace samples; see module docstring.

    Parameters
    ----------
    capacity : int
        Samples kept (30 bytes each); the oldest are overwritten.
    """

    def __init__(self, capacity: int = 2_000_000) -> None:
        self.samples = ColumnRing(
            capacity,
            {
                "t_ns": np.int64,
                "value": np.float64,
                "seq": np.int64,  # the message's sequence number (-1: not given)
                "key": np.int32,
                "metric": np.int8,
                "channel": np.int8,
            },
        )
        self.keys: list[StreamKey] = []
        self._key_index: dict[tuple[str, str, str], int] = {}
        # Every distinct (endpoint, topic, metric, channel) a process sent, as one code, so
        # a sample costs one dict lookup; the code's stream key, metric and channel codes
        # are in the three arrays below (grown only when a new combination arrives).
        self._combos: dict[str, dict[tuple[str, str, str, str | None], int]] = {}
        self._combo_key = np.zeros(0, dtype=np.int32)
        self._combo_metric = np.zeros(0, dtype=np.int8)
        self._combo_channel = np.zeros(0, dtype=np.int8)
        self.sample_mod: dict[str, int] = {}
        self.processes: dict[str, ProcessMeta] = {}
        self.batches = 0
        self.lock = threading.RLock()

    def _key(self, process_id: str, endpoint_id: str, topic: str) -> int:
        k = (process_id, endpoint_id, topic)
        idx = self._key_index.get(k)
        if idx is None:
            stream, task = _split_task(endpoint_id, topic)
            idx = len(self.keys)
            self.keys.append(StreamKey(process_id, endpoint_id, stream, task))
            self._key_index[k] = idx
        return idx

    def ingest(self, process_id: str, samples: Sequence[object], offset_ns: int) -> int:
        """Add one process's samples (ezmsg ``ProfilingTraceSample`` objects or anything
        with the same attributes); ``offset_ns`` converts their perf_counter stamps to
        epoch ns. Returns the number of samples stored."""
        with self.lock:
            return self._ingest(process_id, samples, offset_ns)

    def _combo_codes(self, process_id: str, samples: Sequence[object], n: int) -> np.ndarray:
        """One int32 combination code per sample.

        The common case is one C-level pass: an attrgetter builds each sample's
        (endpoint, topic, metric, channel name) tuple and a dict maps it to its code. A
        batch with a combination not seen before, or a channel kind that is not an enum
        (None, a stand-in), takes a slower pass once.
        """
        combos = self._combos.setdefault(process_id, {})
        try:
            return np.fromiter(map(combos.__getitem__, map(_FAST_COMBO, samples)), np.int32, n)
        except (KeyError, AttributeError):
            pass
        tuples = [
            (endpoint, topic, metric, _channel_name(kind))
            for endpoint, topic, metric, kind in map(_COMBO, samples)
        ]
        unseen = set(tuples).difference(combos)
        if unseen:
            self._add_combos(process_id, combos, sorted(unseen, key=repr))
        return np.fromiter(map(combos.__getitem__, tuples), np.int32, n)

    def _add_combos(
        self,
        process_id: str,
        combos: dict[tuple[str, str, str, str | None], int],
        unseen: list[tuple[str, str, str, str | None]],
    ) -> None:
        start = len(self._combo_key)
        keys, metrics, channels = [], [], []
        for i, (endpoint, topic, metric, channel) in enumerate(unseen):
            keys.append(self._key(process_id, endpoint, topic))
            metrics.append(_METRIC_CODE.get(metric, -1))
            channels.append(_CHANNEL_CODE.get(channel, 0) if channel is not None else 0)
            combos[(endpoint, topic, metric, channel)] = start + i
        self._combo_key = np.concatenate([self._combo_key, np.asarray(keys, np.int32)])
        self._combo_metric = np.concatenate([self._combo_metric, np.asarray(metrics, np.int8)])
        self._combo_channel = np.concatenate([self._combo_channel, np.asarray(channels, np.int8)])

    def _ingest(self, process_id: str, samples: Sequence[object], offset_ns: int) -> int:
        n = len(samples)
        if n == 0:
            return 0
        self.batches += 1
        codes = self._combo_codes(process_id, samples, n)
        keys = self._combo_key[codes]
        metric = self._combo_metric[codes]
        channel = self._combo_channel[codes]
        value = np.fromiter(map(_VALUE, samples), np.float64, n)
        t_ns = np.fromiter(map(_TIMESTAMP, samples), np.float64, n).astype(np.int64)
        t_ns += offset_ns
        seqs = list(map(_SEQ, samples))
        try:
            seq = np.array(seqs, dtype=np.int64)
        except (TypeError, ValueError):  # a sample without a seq (None)
            seq = np.fromiter((-1 if q is None else q for q in seqs), np.int64, n)

        keep = metric >= 0
        pub = metric == _METRIC_CODE["publish_delta_ns"]
        if pub.any():
            keep &= ~(pub & (value <= 0))  # the first sample of an endpoint is always 0
            mod = self.sample_mod.get(process_id, 1)
            if mod > 1:
                value = np.where(pub, value / mod, value)
        if not keep.all():
            t_ns, value, seq, keys, metric, channel = (
                t_ns[keep],
                value[keep],
                seq[keep],
                keys[keep],
                metric[keep],
                channel[keep],
            )
        self.samples.extend(
            t_ns=t_ns, value=value, seq=seq, key=keys, metric=metric, channel=channel
        )
        return len(t_ns)

    def clear(self) -> None:
        self.samples.clear()

    def since(self, number: int) -> tuple[dict[str, np.ndarray], int, int]:
        """The raw columns of the samples from running number ``number`` on (the first
        sample stored is 0), the number to ask for next time, and how many of those
        asked for were already overwritten. With :attr:`keys` and :attr:`processes` they
        rebuild the store (a recording does)."""
        with self.lock:
            total = self.samples.appended
            kept = min(len(self.samples), total - number)
            cols = self.samples.tail(max(0, kept))
        lost = max(0, total - number - len(self.samples))
        return cols, total, lost

    # ------------------------------------------------------------------ views
    def frame(
        self,
        since_s: float | None = None,
        topics: Iterable[str] | None = None,
        metrics: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """Raw samples: time (UTC), process, pid, host, endpoint, topic, task, metric,
        value_ms, channel_kind, seq (the message's sequence number, as ezmsg gives it:
        a publisher's sample and its subscribers' samples of one message share it)."""
        with self.lock:
            cols = self.samples.view()
            keys_table = list(self.keys)
        keep = _selection(cols, keys_table, since_s, topics, metrics)
        if keep is not None:
            cols = {k: v[keep] for k, v in cols.items()}
        keys = cols["key"]
        # Per-key attributes become categoricals: one small table per column gathered by
        # the key codes, no per-row objects; numeric columns go in without another copy.
        procs = [k.process_id for k in keys_table]
        metas = [self._meta(p) for p in procs]
        pid_of_key = np.array([m.pid if m.pid is not None else 0 for m in metas], np.int64)
        pid_missing = np.array([m.pid is None for m in metas], dtype=bool)
        utc = pd.Series(cols["t_ns"].view("M8[ns]"), copy=False).dt.tz_localize("UTC")
        columns = {
            "time": utc.array,
            "process": _cat(procs, keys),
            "pid": pd.arrays.IntegerArray(pid_of_key[keys], pid_missing[keys]),
            "host": _cat([m.host for m in metas], keys),
            "endpoint": _cat([k.endpoint_id for k in keys_table], keys),
            "topic": _cat([k.topic for k in keys_table], keys),
            "task": _cat([k.task for k in keys_table], keys),
            "metric": pd.Categorical.from_codes(cols["metric"], dtype=_METRIC_DTYPE),
            "value_ms": cols["value"] / 1e6,
            "channel_kind": pd.Categorical.from_codes(cols["channel"], dtype=_CHANNEL_DTYPE),
            "seq": pd.arrays.IntegerArray(cols["seq"], cols["seq"] < 0),
        }
        return pd.DataFrame(columns, copy=False)

    def latency(
        self,
        since_s: float | None = None,
        topics: Iterable[str] | None = None,
        metrics: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """Per topic and metric: count, mean, p50, p95, p99, max (milliseconds)."""
        with self.lock:
            cols = self.samples.view(["t_ns", "value", "key", "metric"])
            keys_table = list(self.keys)
        keep = _selection(cols, keys_table, since_s, topics, metrics)
        if keep is not None:
            cols = {k: v[keep] for k, v in cols.items()}
        topic_of_key = np.array([k.topic for k in keys_table] + [None], dtype=object)[:-1]
        out = []
        if len(cols["key"]):
            topic_codes, topic_names = pd.factorize(topic_of_key[cols["key"]], sort=True)
            group = topic_codes.astype(np.int64) * len(METRICS) + cols["metric"]
            order = np.argsort(group, kind="stable")
            g_sorted = group[order]
            v_sorted = cols["value"][order] / 1e6
            bounds = np.flatnonzero(np.diff(g_sorted)) + 1
            starts = np.concatenate([[0], bounds])
            ends = np.concatenate([bounds, [len(g_sorted)]])
            for s, e in zip(starts, ends, strict=True):
                g = int(g_sorted[s])
                v = v_sorted[s:e]
                p50, p95, p99 = np.percentile(v, [50, 95, 99])
                out.append(
                    (
                        topic_names[g // len(METRICS)],
                        METRICS[g % len(METRICS)],
                        e - s,
                        float(v.mean()),
                        float(p50),
                        float(p95),
                        float(p99),
                        float(v.max()),
                    )
                )
        return pd.DataFrame(
            out,
            columns=["topic", "metric", "count", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms"],
        ).astype({"count": np.int64})

    def _meta(self, process_id: str) -> ProcessMeta:
        return self.processes.get(process_id) or ProcessMeta(process_id, None, None)

    def update_processes(self, processes: Mapping[str, ProcessMeta]) -> None:
        self.processes.update(processes)


def _split_task(endpoint_id: str, topic: str) -> tuple[str, str | None]:
    """user_span samples carry ``topic:task``; the endpoint id starts with the topic."""
    stream = endpoint_id.rsplit(":", 1)[0]
    if topic.startswith(stream + ":"):
        return stream, topic[len(stream) + 1 :]
    return topic, None


def _selection(
    cols: Mapping[str, np.ndarray],
    keys: Sequence[StreamKey],
    since_s: float | None,
    topics: str | Iterable[str] | None,
    metrics: str | Iterable[str] | None,
) -> np.ndarray | None:
    keep = None
    if since_s is not None:
        keep = cols["t_ns"] >= int(since_s * 1e9)
    if topics is not None:
        wanted = {topics} if isinstance(topics, str) else set(topics)
        ok = np.array([k.topic in wanted for k in keys], dtype=bool)
        sel = ok[cols["key"]] if len(ok) else np.zeros(len(cols["key"]), dtype=bool)
        keep = sel if keep is None else keep & sel
    if metrics is not None:
        wanted_m = {metrics} if isinstance(metrics, str) else set(metrics)
        unknown = wanted_m - set(METRICS)
        if unknown:
            raise ValueError(f"unknown trace metric(s) {sorted(unknown)}; choose from {METRICS}")
        codes = [_METRIC_CODE[m] for m in wanted_m]
        sel = np.isin(cols["metric"], codes)
        keep = sel if keep is None else keep & sel
    return keep


def _cat(values: Sequence[object], codes: np.ndarray) -> pd.Categorical[Any]:
    """A categorical with one category per distinct value (None -> missing).

    ``values`` are per key, ``codes`` the key of each row: the gather gives the row codes
    in the small integer type pandas keeps them in, so pandas does not convert them.
    """
    cats = pd.unique(np.asarray([v for v in values if v is not None], dtype=object))
    lookup = {v: i for i, v in enumerate(cats)}
    code_type = np.int8 if len(cats) < 127 else np.int16 if len(cats) < 32_767 else np.int32
    per_key = np.array([lookup[v] if v is not None else -1 for v in values], dtype=code_type)
    return pd.Categorical.from_codes(
        per_key[codes] if len(codes) else codes.astype(code_type),
        dtype=pd.CategoricalDtype(pd.Index(cats)),
    )
