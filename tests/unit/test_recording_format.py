"""The recording format without ezmsg: tables, tap messages, the container, damaged and
crafted files, the trace export."""

from __future__ import annotations

import enum
import io
import json
import pickle
import zipfile
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ezmsg_lab import RecordingError, load
from ezmsg_lab.model.logs import LogRecord, LogStore
from ezmsg_lab.model.tap_buffer import TapItem
from ezmsg_lab.model.tap_convert import to_data
from ezmsg_lab.model.traces import TraceStore
from ezmsg_lab.recording.chrome_trace import chrome_trace, track_order_ok
from ezmsg_lab.recording.container import (
    FORMAT_NAME,
    FORMAT_VERSION,
    ContainerWriter,
    load_npy,
)
from ezmsg_lab.recording.messages import (
    StoredAxisArray,
    StoredCoordinateAxis,
    StoredLinearAxis,
    decode_items,
    encode_items,
    npy_bytes,
)
from ezmsg_lab.recording.tables import from_parquet_bytes, plain, to_parquet_bytes

from .test_stores import Sample


class Color(enum.Enum):
    RED = "red"


def manifest(**extra) -> dict:
    return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "started_s": 1e9, **extra}


def test_tables_round_trip_every_kind_of_column():
    frame = pd.DataFrame(
        {
            "time": pd.to_datetime([1.7e9, 1.7e9 + 1], unit="s", utc=True),
            "cat": pd.Categorical(["a", "b"], categories=["b", "a", "c"]),
            "pid": pd.array([1, None], dtype="Int64"),
            "text": ["x", None],
            "mixed": [40.0, "lowpass"],
            "lists": [["A/IN", "A/OUT"], []],
            "nested": [{"k": [1, 2]}, None],
            "flag": [True, False],
        }
    )
    back = from_parquet_bytes(to_parquet_bytes(frame), "t.parquet")
    pd.testing.assert_frame_equal(back, frame)


def test_plain_values_are_json_data_never_objects():
    assert plain(Color.RED) == "Color.RED"
    assert plain(np.float32(1.5)) == 1.5
    assert plain(np.arange(3)) == [0, 1, 2]
    assert plain((1, {"a": np.int64(2)})) == [1, {"a": 2}]
    assert json.loads(json.dumps(plain(object()))).startswith("<object")


def axisarray(seq: int, n: int = 5, chans: int = 2) -> StoredAxisArray:
    return StoredAxisArray(
        np.arange(n * chans, dtype=float).reshape(n, chans) + seq,
        ["time", "ch"],
        {
            "time": StoredLinearAxis(0.001, 100.0 + seq * n * 0.001, "s"),
            "ch": StoredCoordinateAxis(np.array([f"ch{i}" for i in range(chans)]), ["ch"]),
        },
        {"seq": seq},
        "dev",
        "mypkg.Chunk",
    )


def test_axisarray_messages_round_trip_to_the_same_xarray():
    items = [TapItem(1000.0 + i * 0.01, axisarray(i), 0) for i in range(6)]
    items.insert(3, TapItem(1000.025, axisarray(99, n=3, chans=3), 0))  # a shape change
    table, runs = encode_items(items)
    assert len(runs) == 3  # joined runs, split at the shape change
    runs = [load_npy(npy_bytes(r), "r.npy") for r in runs]
    table = from_parquet_bytes(to_parquet_bytes(table), "t.parquet")
    back = decode_items(table, runs, "t.parquet")
    assert [it.received for it in back] == [it.received for it in items]
    for a, b in zip(items, back, strict=True):
        np.testing.assert_array_equal(a.message.data, b.message.data)
        assert b.message.attrs == a.message.attrs and b.message.key == "dev"
    xr.testing.assert_identical(to_data(back, "T"), to_data(items, "T"))


def test_other_messages_keep_their_fields_as_data():
    from dataclasses import dataclass

    @dataclass
    class Event:
        label: str
        values: np.ndarray

    items = [TapItem(1.0, Event("x", np.array([1.0, 2.0])), 0), TapItem(2.0, np.ones(3), 0)]
    table, runs = encode_items(items)
    back = decode_items(from_parquet_bytes(to_parquet_bytes(table), "t"), runs, "t")
    assert back[0].message.fields == {"label": "x", "values": [1.0, 2.0]}
    np.testing.assert_array_equal(back[1].message, np.ones(3))


def _write_recording(path: Path, chunks: int = 3) -> TraceStore:
    """A recording made by hand (no ezmsg): trace samples, logs and results."""
    store = TraceStore(capacity=10_000)
    writer = ContainerWriter(path, manifest(taps=[{"id": 0, "topic": "G/A/OUT"}]))
    rng = np.random.default_rng(0)
    for c in range(1, chunks + 1):
        samples = [
            Sample(1e9 + c * 1e6 + i, "G/B/IN:x", "G/B/IN:on_msg", "user_span_ns", v, None, i)
            for i, v in enumerate(rng.uniform(1e5, 9e5, 50))
        ]
        first = len(store.samples)
        store.ingest("p1", samples, 0)
        cols, _, _ = store.since(first)
        keys = [[k.process_id, k.endpoint_id, k.topic, k.task] for k in store.keys]
        items = [TapItem(100.0 + c + i / 10, axisarray(c * 10 + i), 0) for i in range(4)]
        table, runs = encode_items(items)
        logs = pd.DataFrame(
            {
                "time": [float(c)],
                "unit": ["G/B"],
                "pipeline": ["G"],
                "process": ["p1"],
                "pid": pd.array([7], dtype="Int64"),
                "level": ["ERROR"],
                "logger": ["x"],
                "message": [f"boom {c}"],
                "traceback": [None],
                "kind": ["error"],
            }
        )
        members = [
            ("trace.parquet", to_parquet_bytes(pd.DataFrame(cols))),
            ("trace_meta.json", json.dumps({"keys": keys, "processes": {}}).encode()),
            ("tap0.parquet", to_parquet_bytes(table)),
            *((f"tap0_{r}.npy", npy_bytes(a)) for r, a in enumerate(runs)),
            ("logs.parquet", to_parquet_bytes(logs)),
            ("result0.parquet", to_parquet_bytes(pd.DataFrame({"chunk": [c]}))),
        ]
        index = {
            "time_s": 1e9 + c,
            "taps": {"tap0": {"runs": len(runs)}},
            "results": {"result0": "sweep"},
        }
        writer.write_chunk(c, members, index)
    writer.finish({"stopped_s": 1e9 + chunks + 1, "environment": {"hosts": ["h"]}})
    return store


def test_a_recording_gives_the_stores_own_views(tmp_path):
    path = tmp_path / "r.ezrec"
    store = _write_recording(path)
    rec = load(path)
    assert rec.complete and rec.chunks == 3 and rec.taps == ["G/A/OUT"]
    pd.testing.assert_frame_equal(rec.latency(), store.latency())
    pd.testing.assert_frame_equal(rec.trace_samples(), store.frame())
    assert list(rec.results("sweep")["chunk"]) == [1, 2, 3]
    assert list(rec.logs()["message"]) == ["boom 1", "boom 2", "boom 3"]
    live = LogStore()
    for i in (1, 2, 3):
        live.add(LogRecord(float(i), "G/B", "G", "p1", 7, "ERROR", "x", f"boom {i}", None, "error"))
    pd.testing.assert_frame_equal(rec.logs(), live.frame())
    data = rec.tap_data("G/A/OUT")
    assert data.sizes["time"] == 3 * 4 * 5
    with pytest.raises(RecordingError, match="No tapped topic"):
        rec.tap_data("nope")


def test_a_recording_cut_anywhere_loads_what_was_flushed_or_says_why(tmp_path):
    path = tmp_path / "r.ezrec"
    _write_recording(path, chunks=3)
    whole = path.read_bytes()
    sizes = sorted({*range(0, len(whole), max(1, len(whole) // 97)), len(whole) - 1})
    loaded = 0
    for size in sizes:
        cut = tmp_path / "cut.ezrec"
        cut.write_bytes(whole[:size])
        try:
            rec = load(cut)
        except RecordingError:
            continue
        loaded += 1
        assert rec.chunks == 3 or not rec.complete  # complete only with final.json, last
        # Whole chunks only: every tap message of a counted chunk is there.
        assert rec.chunks * 20 == (rec.tap_data("G/A/OUT").sizes["time"] if rec.chunks else 0)
        assert len(rec.trace_samples()) == rec.chunks * 50
    assert loaded > len(sizes) // 2


def test_a_pickle_is_refused_without_being_unpickled(tmp_path):
    path = tmp_path / "evil.ezrec"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(RecordingError, match="pickle"):
        load(path)


def test_an_object_array_is_refused(tmp_path):
    path = tmp_path / "r.ezrec"
    _write_recording(path, chunks=1)
    buf = io.BytesIO()
    np.save(buf, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members["c000001/tap0_0.npy"] = buf.getvalue()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    rec = load(path)
    with pytest.raises(RecordingError, match="object dtype"):
        rec.tap_data("G/A/OUT")


@pytest.mark.parametrize(
    "members, match",
    [
        ({"manifest.json": json.dumps(manifest(format_version=FORMAT_VERSION + 1))}, "newer"),
        ({"manifest.json": json.dumps({"format": "other"})}, "not an ezmsg-lab recording"),
        ({"hello.txt": "hi"}, "no manifest.json"),
        ({"manifest.json": json.dumps(manifest()), "c000001/x.pkl": "x"}, "unexpected member"),
        ({"manifest.json": "{not json"}, "not JSON"),
    ],
)
def test_files_that_are_not_recordings_say_so(tmp_path, members, match):
    path = tmp_path / "x.ezrec"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    with pytest.raises(RecordingError, match=match):
        load(path)


def test_a_parquet_member_that_is_not_parquet_is_refused(tmp_path):
    path = tmp_path / "x.ezrec"
    writer = ContainerWriter(path, manifest())
    writer.write_chunk(1, [("metrics.parquet", pickle.dumps([1]))], {"time_s": 1.0})
    with pytest.raises(RecordingError, match="not a readable Parquet"):
        load(path).metrics()


def test_missing_and_compressed_files_are_refused(tmp_path):
    with pytest.raises(RecordingError, match="no such file"):
        load(tmp_path / "none.ezrec")
    path = tmp_path / "z.ezrec"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest()))
    with pytest.raises(RecordingError, match="compressed"):
        load(path)


# A JSON schema of the trace-event format's JSON object form (the fields we emit).
TRACE_SCHEMA = {
    "type": "object",
    "required": ["traceEvents"],
    "properties": {
        "traceEvents": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "ph", "pid", "tid"],
                "properties": {
                    "ph": {"enum": ["X", "M", "s", "f"]},
                    "ts": {"type": "number", "minimum": 0},
                    "dur": {"type": "number", "minimum": 0},
                    "pid": {"type": "integer"},
                    "tid": {"type": "integer"},
                },
                "allOf": [
                    {
                        "if": {"properties": {"ph": {"const": "X"}}},
                        "then": {"required": ["ts", "dur"]},
                    },
                    {
                        "if": {"properties": {"ph": {"enum": ["s", "f"]}}},
                        "then": {"required": ["ts", "id"]},
                    },
                ],
            },
        },
        "displayTimeUnit": {"enum": ["ms", "ns"]},
    },
}


def test_chrome_trace_has_tracks_spans_and_flows():
    store = TraceStore()
    pub = [
        Sample(1e9 + i * 1e6, "G/A/OUT:1", "G/A/OUT", "publish_delta_ns", 1e6, None, i)
        for i in range(5)
    ]
    sub = [
        Sample(1e9 + i * 1e6 + 5e5, "G/B/IN:2", "G/B/IN", "lease_time_ns", 2e5, None, i)
        for i in range(5)
    ]
    store.ingest("p1", pub, 0)
    store.ingest("p2", sub, 0)
    edges = pd.DataFrame({"from": ["G/A/OUT"], "to": ["G/B/IN"]})
    doc = json.loads(json.dumps(chrome_trace(store.frame(), edges)))
    jsonschema.validate(doc, TRACE_SCHEMA)
    events = doc["traceEvents"]
    assert track_order_ok(events)
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert names == {"G/A/OUT", "G/B/IN"}
    # One flow per message: publish (seq i) -> the subscriber's lease of seq i.
    assert sum(e["ph"] == "s" for e in events) == 5 == sum(e["ph"] == "f" for e in events)
    flow_ends = sorted(e["ts"] for e in events if e["ph"] == "f")
    leases = sorted(e["ts"] for e in events if e["ph"] == "X" and e["cat"] == "lease_time")
    assert flow_ends == leases
    lease = [e for e in events if e["ph"] == "X" and e["cat"] == "lease_time"]
    assert lease[0]["dur"] == pytest.approx(200.0)  # 2e5 ns in microseconds
    assert chrome_trace(store.frame().iloc[:0])["traceEvents"] == []
