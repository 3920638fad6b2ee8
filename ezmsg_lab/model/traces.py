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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import attrgetter
from typing import Any

import numpy as np
import pandas as pd

from .metrics import CHANNEL_KINDS, ProcessMeta
from .ring import ColumnRing

METRICS = ("publish_delta_ns", "backpressure_wait_ns", "lease_time_ns", "user_span_ns")
_METRIC_CODE = {m: i for i, m in enumerate(METRICS)}
_CHANNEL_CODE = {name: i for i, name in enumerate(CHANNEL_KINDS)}
_FIELDS = attrgetter(
    "timestamp", "value", "endpoint_id", "topic", "metric", "channel_kind", "sample_seq"
)

BYTES_PER_SAMPLE = 8 + 8 + 8 + 4 + 1 + 1


@dataclass(frozen=True)
class StreamKey:
    """What a trace sample is about."""

    process_id: str
    endpoint_id: str
    topic: str  # the stream address
    task: str | None  # user_span samples name the task that handled the message


def _channel_code(kind: object) -> int:
    if kind is None:
        return 0
    name = getattr(kind, "value", kind)
    return _CHANNEL_CODE.get(str(name), 0)


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
        self.sample_mod: dict[str, int] = {}
        self.processes: dict[str, ProcessMeta] = {}
        self.batches = 0
        self.lock = threading.RLock()
        self._channel_codes: dict[object, int] = {}

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

    def _ingest(self, process_id: str, samples: Sequence[object], offset_ns: int) -> int:
        n = len(samples)
        if n == 0:
            return 0
        self.batches += 1
        ts, values, endpoints, topics, metrics, channels, seqs = zip(
            *map(_FIELDS, samples), strict=True
        )
        # Lookups run in C (map over dict.__getitem__); unseen values are added once per
        # batch and the lookup retried, so the common case has no Python-level loop.
        triples = list(zip(repeat(process_id, n), endpoints, topics, strict=False))
        try:
            keys = np.fromiter(map(self._key_index.__getitem__, triples), np.int32, n)
        except KeyError:
            for endpoint, topic in set(zip(endpoints, topics, strict=True)):
                self._key(process_id, endpoint, topic)
            keys = np.fromiter(map(self._key_index.__getitem__, triples), np.int32, n)
        metric = _codes(metrics, _METRIC_CODE, lambda m: -1, n)
        channel = _codes(channels, self._channel_codes, _channel_code, n)
        value = np.asarray(values, dtype=np.float64)
        t_ns = np.asarray(ts, dtype=np.float64).astype(np.int64) + offset_ns
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
        return int(keep.sum())

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
        # Per-key attributes as categoricals: one code array per column, no per-row objects.
        procs = [k.process_id for k in keys_table]
        pids = [self._meta(p).pid for p in procs]
        hosts = [self._meta(p).host for p in procs]
        return pd.DataFrame(
            {
                "time": pd.DatetimeIndex(cols["t_ns"].view("M8[ns]")).tz_localize("UTC"),
                "process": _cat(procs, keys),
                "pid": pd.array(
                    np.asarray(pids, dtype=object)[keys] if len(keys) else [], dtype="Int64"
                ),
                "host": _cat(hosts, keys),
                "endpoint": _cat([k.endpoint_id for k in keys_table], keys),
                "topic": _cat([k.topic for k in keys_table], keys),
                "task": _cat([k.task for k in keys_table], keys),
                "metric": pd.Categorical.from_codes(cols["metric"], categories=pd.Index(METRICS)),
                "value_ms": cols["value"] / 1e6,
                "channel_kind": pd.Categorical.from_codes(
                    cols["channel"], categories=pd.Index(CHANNEL_KINDS)
                ),
                "seq": pd.arrays.IntegerArray(cols["seq"], cols["seq"] < 0),
            }
        )

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


def _codes(
    values: tuple[Any, ...], table: dict[Any, int], fallback: Callable[[Any], int], n: int
) -> np.ndarray:
    """int8 codes for ``values`` via ``table``; unseen values get ``fallback(value)``."""
    try:
        return np.fromiter(map(table.__getitem__, values), np.int8, n)
    except KeyError:
        for v in set(values):
            if v not in table:
                table[v] = fallback(v)
        return np.fromiter(map(table.__getitem__, values), np.int8, n)
    except TypeError:  # unhashable stand-ins: code each value directly
        return np.fromiter(map(fallback, values), np.int8, n)


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


def _cat(values: Sequence[object], codes: np.ndarray) -> pd.Categorical:
    """A categorical with one category per distinct value (None -> missing)."""
    cats = pd.unique(np.asarray([v for v in values if v is not None], dtype=object))
    lookup = {v: i for i, v in enumerate(cats)}
    per_key = np.array([lookup[v] if v is not None else -1 for v in values], dtype=np.int32)
    return pd.Categorical.from_codes(
        per_key[codes] if len(codes) else codes.astype(np.int32), categories=pd.Index(cats)
    )
