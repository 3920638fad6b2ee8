"""Trace samples as a Chrome trace-event file (JSON object format) that Perfetto and
``chrome://tracing`` open.

One process track per traced process (named by host and pid), one thread track per
stream (a subscriber's user spans get a track per task). ezmsg stamps each sample when
the measured interval ends, so a span becomes a complete event (``"ph": "X"``) from
``time - value`` to ``time``: user code spans, lease times, backpressure waits. A publish
is a zero-length event. Where a publisher's sample and a subscriber's sample carry the
same message ``seq`` and the topology connects the two streams, a flow arrow (``"s"`` on
the publish, ``"f"`` on the subscriber's first span of that message) joins them.

Timestamps are microseconds from the first event; ``otherData.epoch_ns_at_zero`` gives
that instant in UTC nanoseconds. Pure: DataFrames in, a dict out.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

_NAMES = {
    "user_span_ns": "user span",
    "lease_time_ns": "lease",
    "backpressure_wait_ns": "backpressure wait",
    "publish_delta_ns": "publish",
}


def _reachable(edges: pd.DataFrame | None) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    if edges is not None and len(edges):
        for src, dst in zip(edges["from"], edges["to"], strict=True):
            graph[str(src)].add(str(dst))
    out: dict[str, set[str]] = {}
    for start in list(graph):
        seen: set[str] = set()
        todo = deque(graph[start])
        while todo:
            node = todo.popleft()
            if node not in seen:
                seen.add(node)
                todo.extend(graph.get(node, ()))
        out[start] = seen
    return out


def chrome_trace(samples: pd.DataFrame, edges: pd.DataFrame | None = None) -> dict[str, Any]:
    """The trace-event document for ``samples`` (``lab.trace_samples()``) and the
    topology's ``edges`` (for flows)."""
    if len(samples) == 0:
        return {"traceEvents": [], "displayTimeUnit": "ms", "otherData": {"samples": 0}}
    t_ns = samples["time"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    value_ns = np.round(samples["value_ms"].to_numpy(dtype=float) * 1e6).astype(np.int64)
    metric = samples["metric"].astype(str).to_numpy()
    is_publish = metric == "publish_delta_ns"
    start_ns = np.where(is_publish, t_ns, t_ns - value_ns)
    t0 = int(start_ns.min())
    seq = samples["seq"] if "seq" in samples else pd.Series(pd.NA, index=samples.index)

    tracks: dict[tuple[str, str], int] = {}
    procs: dict[str, int] = {}
    events: list[dict[str, Any]] = []
    meta: list[dict[str, Any]] = []
    cols = zip(
        samples["process"].astype(object),
        samples["pid"].astype(object),
        samples["host"].astype(object),
        samples["topic"].astype(object),
        samples["task"].astype(object),
        metric,
        start_ns,
        value_ns,
        seq.astype(object),
        strict=True,
    )
    publishes: dict[tuple[str, int], tuple[int, int, float]] = {}
    received: dict[tuple[str, int], tuple[float, int, int]] = {}
    for process, pid, host, topic, task, m, start, val, q in cols:
        process = str(process)
        if process not in procs:
            procs[process] = len(procs) + 1
            label = f"{'?' if _missing(host) else host} · pid {'?' if _missing(pid) else pid}"
            meta.append(_meta("process_name", procs[process], 0, label))
        task = None if _missing(task) else str(task)
        stream = str(topic) if task is None else f"{topic}:{task}"
        track = (process, stream)
        if track not in tracks:
            tracks[track] = len(tracks) + 1
            meta.append(_meta("thread_name", procs[process], tracks[track], stream))
        ts = (int(start) - t0) / 1000.0
        dur = 0.0 if m == "publish_delta_ns" else max(0.0, int(val) / 1000.0)
        args: dict[str, Any] = {"topic": str(topic), "value_ms": int(val) / 1e6}
        has_seq = not _missing(q)
        if has_seq:
            args["seq"] = int(q)
        events.append(
            {
                "name": task if m == "user_span_ns" and task else _NAMES.get(m, m),
                "cat": m.removesuffix("_ns"),
                "ph": "X",
                "ts": ts,
                "dur": dur,
                "pid": procs[process],
                "tid": tracks[track],
                "args": args,
            }
        )
        if has_seq:
            key = (str(topic), int(q))
            if m == "publish_delta_ns":
                publishes[key] = (procs[process], tracks[track], ts)
            elif key not in received or ts < received[key][0]:
                received[key] = (ts, procs[process], tracks[track])
    flows = _flows(publishes, received, _reachable(edges))
    body = sorted(events + flows, key=lambda e: (e["pid"], e["tid"], e["ts"]))
    return {
        "traceEvents": meta + body,
        "displayTimeUnit": "ms",
        "otherData": {"epoch_ns_at_zero": t0, "samples": len(samples), "flows": len(flows) // 2},
    }


def _missing(value: Any) -> bool:
    return value is None or bool(pd.isna(value))


def _meta(kind: str, pid: int, tid: int, name: str) -> dict[str, Any]:
    return {"name": kind, "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}}


def _flows(
    publishes: dict[tuple[str, int], tuple[int, int, float]],
    received: dict[tuple[str, int], tuple[float, int, int]],
    reachable: dict[str, set[str]],
) -> list[dict[str, Any]]:
    by_seq: dict[int, list[tuple[str, tuple[float, int, int]]]] = defaultdict(list)
    for (topic, q), where in received.items():
        by_seq[q].append((topic, where))
    out: list[dict[str, Any]] = []
    for (topic, q), (pid, tid, ts) in publishes.items():
        targets = reachable.get(topic, set())
        for sub_topic, (sub_ts, sub_pid, sub_tid) in by_seq.get(q, []):
            if sub_topic not in targets or sub_ts < ts:
                continue
            flow_id = len(out) // 2 + 1
            common = {"name": "message", "cat": "flow", "id": flow_id}
            out.append({**common, "ph": "s", "ts": ts, "pid": pid, "tid": tid})
            out.append(
                {**common, "ph": "f", "bp": "e", "ts": sub_ts, "pid": sub_pid, "tid": sub_tid}
            )
    return out


def write_chrome_trace(
    path: str | Path, samples: pd.DataFrame, edges: pd.DataFrame | None = None
) -> Path:
    """Write :func:`chrome_trace` to ``path`` (JSON); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = chrome_trace(samples, edges)
    path.write_text(json.dumps(doc, separators=(",", ":")))
    return path


def track_order_ok(events: Iterable[dict[str, Any]]) -> bool:
    """True when every track's non-metadata events are in ``ts`` order."""
    last: dict[tuple[Any, Any], float] = {}
    for e in events:
        if e.get("ph") == "M":
            continue
        key = (e["pid"], e["tid"])
        if e["ts"] < last.get(key, float("-inf")):
            return False
        last[key] = e["ts"]
    return True
