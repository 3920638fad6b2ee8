"""A recording loaded for analysis: the Lab's DataFrame API without a running graph.

``ezmsg_lab.load(path)`` reads what ``lab.record(path)`` wrote. Trace samples rebuild a
:class:`~ezmsg_lab.model.traces.TraceStore` and log records a
:class:`~ezmsg_lab.model.logs.LogStore`, so ``latency()``, ``trace_samples()`` and
``logs()`` are computed by the very code the Lab uses; tapped AxisArrays become xarray
through the Lab's own tap conversion.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import RecordingError
from ..model.clock import since_to_epoch_s, to_utc
from ..model.logs import LogRecord, LogStore
from ..model.metrics import ProcessMeta
from ..model.tap_buffer import TapItem
from ..model.tap_convert import to_data
from ..model.topology import Topology
from ..model.traces import StreamKey, TraceStore
from .chrome_trace import write_chrome_trace
from .container import FINAL, FORMAT_NAME, FORMAT_VERSION, MANIFEST, Container, open_container
from .messages import StoredMessage, decode_items
from .tables import from_parquet_bytes

if TYPE_CHECKING:
    from ..widgets.graph import GraphWidget

TOPOLOGY_TABLES = ("units", "collections", "topics", "edges", "processes")


def load(path: str | Path) -> Recording:
    """Open a recording made by :meth:`Lab.record`.

    Nothing in the file is unpickled, imported or run; a file that is not a recording,
    one written by a newer ezmsg-lab, or a damaged or crafted one raises
    :class:`~ezmsg_lab.RecordingError`. A recording cut short (the kernel was killed)
    loads with everything flushed before the cut (``recording.complete`` is False).

    Examples
    --------
    >>> from ezmsg_lab import load
    >>> rec = load("run.ezrec")  # doctest: +SKIP
    >>> rec.latency()  # doctest: +SKIP
    """
    return Recording(open_container(path))


class Recording:
    """What a recording holds, with the Lab's DataFrame API (see :func:`load`).

    Attributes
    ----------
    path : pathlib.Path
    environment : dict
        Python, ezmsg, ezmsg-lab, numpy, pandas and pyarrow versions, platform and
        hostname; ``hosts`` (the graph's hosts) once the recording was stopped.
    complete : bool
        False when the recording was cut short (its ``stop()`` never ran).
    chunks : int
        Flushes found.
    """

    def __init__(self, container: Container) -> None:
        self._c = container
        self.path = container.path
        manifest = container.json(MANIFEST)
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
            raise RecordingError(f"{str(self.path)!r} is not an ezmsg-lab recording.")
        version = manifest.get("format_version")
        if not isinstance(version, int) or version < 1:
            raise RecordingError(f"{str(self.path)!r} has an invalid format version {version!r}.")
        if version > FORMAT_VERSION:
            raise RecordingError(
                f"{str(self.path)!r} was written in recording format {version}, newer than "
                f"this ezmsg-lab reads (up to {FORMAT_VERSION}); upgrade ezmsg-lab to open it."
            )
        self._manifest = manifest
        self._final = container.json(FINAL) if FINAL in container else None
        self.complete = self._final is not None
        done = sorted(n for n in container.names if n.endswith("/done.json"))
        self._chunks: list[dict[str, Any]] = [container.json(n) for n in done]
        self.chunks = len(self._chunks)
        self._taps: dict[str, str] = {
            str(t["topic"]): str(t["id"]) for t in manifest.get("taps", [])
        }

    # ------------------------------------------------------------------ reading
    def _members(self, name: str) -> list[str]:
        return [f"c{chunk['seq']:06d}/{name}" for chunk in self._chunks if name in chunk["members"]]

    def _appended(self, name: str) -> pd.DataFrame | None:
        frames = [from_parquet_bytes(self._c.read(m), m) for m in self._members(f"{name}.parquet")]
        frames = [f for f in frames if len(f.columns)]
        if not frames:
            return None
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    def _latest(self, name: str) -> pd.DataFrame | None:
        members = self._members(f"{name}.parquet")
        return from_parquet_bytes(self._c.read(members[-1]), members[-1]) if members else None

    def _latest_json(self, name: str) -> Any:
        members = self._members(f"{name}.json")
        return self._c.json(members[-1]) if members else None

    @property
    def environment(self) -> dict[str, Any]:
        env = dict(self._manifest.get("environment", {}))
        if self._final is not None:
            env.update(self._final.get("environment", {}))
        return env

    @property
    def end_s(self) -> float:
        """When the recording ended (its last flush when cut short), epoch seconds."""
        if self._final is not None:
            return float(self._final["stopped_s"])
        times = [float(c.get("time_s", 0.0)) for c in self._chunks]
        return max(times, default=float(self._manifest.get("started_s", 0.0)))

    def _since(self, since: Any) -> float | None:
        """``since=`` as for the Lab, with durations counted back from the end."""
        if since is None:
            return None
        if isinstance(since, (int, float)) and not isinstance(since, bool):
            if since < 0:
                raise ValueError(f"since={since} must be >= 0 seconds before the end")
            return self.end_s - float(since)
        if isinstance(since, (str, pd.Timedelta)):
            try:
                return self.end_s - pd.Timedelta(since).total_seconds()
            except ValueError:
                pass
        return since_to_epoch_s(since)

    # ------------------------------------------------------------------ topology
    def topology(self) -> Topology:
        """The graph as last recorded (``.units``, ``.topics``, ``.edges``, ...)."""
        tables = {name: self._latest(f"topology_{name}") for name in TOPOLOGY_TABLES}
        info = self._latest_json("topology") or {}
        missing = [n for n, t in tables.items() if t is None]
        if missing:
            raise RecordingError(f"{str(self.path)!r} holds no topology (nothing was flushed).")
        return Topology(
            **{n: t for n, t in tables.items() if t is not None},
            time=to_utc(float(info.get("time_s", self.end_s))),
        )

    def topology_events(self) -> pd.DataFrame:
        """ezmsg's topology events seen while recording (as ``lab.topology_events()``)."""
        return or_empty(
            self._appended("topology_events"),
            ["seq", "time", "event", "changed_topics", "source_session", "source_process"],
        )

    def graph(self, **options: Any) -> GraphWidget:
        """The graph widget drawing the recorded topology (static: no Lab behind it)."""
        from ..widgets.graph import GraphWidget

        info = self._latest_json("topology") or {}
        state = info.get("graph_state")
        if not isinstance(state, dict):
            raise RecordingError(f"{str(self.path)!r} holds no graph drawing.")
        return GraphWidget(state=state, **options)

    # ------------------------------------------------------------------ settings
    def settings(self, unit: str | None = None) -> pd.DataFrame:
        """Every unit's settings when the recording ended (as ``lab.settings()``; values
        that are not plain data come back as their JSON form, Enum members as
        ``"Window.HANN"``)."""
        frame = self._latest("settings")
        if frame is None:
            raise RecordingError(f"{str(self.path)!r} holds no settings.")
        return _only(frame, "unit", unit)

    def settings_history(self, unit: str | None = None, since: Any = None) -> pd.DataFrame:
        """Every settings change recorded (as ``lab.settings_history()``)."""
        frame = self._appended("settings_history")
        if frame is None:
            return pd.DataFrame(
                columns=[
                    "seq",
                    "time",
                    "unit",
                    "field",
                    "old",
                    "new",
                    "event",
                    "source_session",
                    "source_process",
                ]
            )
        return _after(_only(frame, "unit", unit), self._since(since))

    # ------------------------------------------------------------------ profiling
    def profile(self) -> pd.DataFrame:
        """Publishers and subscribers at the last flush (as ``lab.profile()``)."""
        frame = self._latest("profile")
        if frame is None:
            raise RecordingError(f"{str(self.path)!r} holds no profile.")
        return frame

    def metrics(self, since: Any = None, topics: Iterable[str] | None = None) -> pd.DataFrame:
        """Profiling history in long format (as ``lab.metrics()``)."""
        frame = self._metrics
        if topics is not None:
            wanted = {topics} if isinstance(topics, str) else set(topics)
            frame = frame[frame["topic"].isin(wanted)].reset_index(drop=True)
        return _after(frame, self._since(since))

    @cached_property
    def _metrics(self) -> pd.DataFrame:
        frame = self._appended("metrics")
        if frame is None:
            return pd.DataFrame(
                columns=["time", "topic", "endpoint", "kind", "unit", "status", "metric", "value"]
            )
        # Chunks hold each metric's rows in turn; the Lab's frame holds all rows of one
        # metric, then the next: a stable sort by metric restores it.
        order = np.argsort(frame["metric"].cat.codes.to_numpy(), kind="stable")
        return frame.iloc[order].reset_index(drop=True)

    # ------------------------------------------------------------------ traces
    @cached_property
    def _traces(self) -> TraceStore:
        meta = self._latest_json("trace_meta") or {"keys": [], "processes": {}}
        raw = self._appended("trace")
        store = TraceStore(capacity=max(1, 0 if raw is None else len(raw)))
        store.keys = [StreamKey(*k) for k in meta["keys"]]
        store.processes = {
            p: ProcessMeta(p, v.get("pid"), v.get("host"), tuple(v.get("units", ())))
            for p, v in meta["processes"].items()
        }
        if raw is not None and len(raw):
            if len(store.keys) <= int(raw["key"].max()):
                raise RecordingError(f"{str(self.path)!r}: trace samples name unknown streams.")
            store.samples.extend(**{c: raw[c].to_numpy() for c in store.samples.columns})
        return store

    def trace_samples(
        self,
        since: Any = None,
        topics: Iterable[str] | None = None,
        metrics: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """Raw trace samples (as ``lab.trace_samples()``)."""
        return self._traces.frame(self._since(since), topics, metrics)

    def latency(
        self,
        since: Any = None,
        topics: Iterable[str] | None = None,
        metrics: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """Per topic and trace metric: count, mean, p50, p95, p99, max in ms."""
        return self._traces.latency(self._since(since), topics, metrics)

    def export_trace(self, path: str | Path) -> Path:
        """The trace samples as a Chrome trace-event JSON file (opens in Perfetto)."""
        try:
            edges = self.topology().edges
        except RecordingError:
            edges = None
        return write_chrome_trace(path, self.trace_samples(), edges)

    # ------------------------------------------------------------------ logs
    def logs(
        self, unit: str | None = None, level: str | None = None, since: Any = None
    ) -> pd.DataFrame:
        """Log records of the units (as ``lab.logs()``)."""
        raw = self._appended("logs")
        store = LogStore(capacity=max(1, 0 if raw is None else len(raw)))
        if raw is not None:
            for row in raw.to_dict("records"):
                store.add(
                    LogRecord(
                        float(row["time"]),
                        row["unit"],
                        row["pipeline"],
                        row["process"],
                        None if pd.isna(row["pid"]) else int(row["pid"]),
                        row["level"],
                        row["logger"],
                        row["message"],
                        row["traceback"],
                        row["kind"],
                    )
                )
        return store.frame(unit=unit, level=level, since_s=self._since(since))

    # ------------------------------------------------------------------ taps
    @property
    def taps(self) -> list[str]:
        """The tapped topics recorded."""
        return list(self._taps)

    def tap_items(self, topic: str) -> list[TapItem]:
        """The recorded messages of ``topic`` (``message``, ``received``), oldest first.
        AxisArrays come back as plain dataclasses with the same fields."""
        if topic not in self._taps:
            raise RecordingError(f"No tapped topic {topic!r} in this recording; taps: {self.taps}")
        name = f"tap{self._taps[topic]}"
        items: list[TapItem] = []
        for chunk in self._chunks:
            if f"{name}.parquet" not in chunk["members"]:
                continue
            base = f"c{chunk['seq']:06d}/{name}"
            table = from_parquet_bytes(self._c.read(f"{base}.parquet"), f"{base}.parquet")
            runs = [self._c.npy(f"{base}_{i}.npy") for i in range(int(chunk["taps"][name]["runs"]))]
            items.extend(decode_items(table, runs, f"{base}.parquet"))
        return items

    def tap_data(self, topic: str, since: Any = None) -> Any:
        """The recorded messages as data, as ``tap.data()`` gives them: one
        ``xarray.DataArray`` for AxisArrays, a DataFrame (``received`` then fields) for
        dataclasses, else a list."""
        items = self.tap_items(topic)
        start = self._since(since)
        if start is not None:
            items = [it for it in items if it.received >= start]
        if items and isinstance(items[-1].message, StoredMessage):
            rows = [
                {
                    "received": it.received,
                    **(
                        it.message.fields
                        if isinstance(it.message.fields, dict)
                        else {"value": it.message.fields}
                    ),
                }
                for it in items
            ]
            frame = pd.DataFrame(rows)
            frame["received"] = pd.to_datetime(frame["received"], unit="s", utc=True)
            return frame
        return to_data(items, topic)

    # ------------------------------------------------------------------ results
    def results(self, kind: str | None = None) -> Any:
        """Experiment results recorded with ``recorder.add_result(kind, frame)``: the
        frames of one ``kind`` joined, or a dict of every kind."""
        found: dict[str, list[pd.DataFrame]] = {}
        for chunk in self._chunks:
            for name, k in chunk.get("results", {}).items():
                member = f"c{chunk['seq']:06d}/{name}.parquet"
                found.setdefault(str(k), []).append(
                    from_parquet_bytes(self._c.read(member), member)
                )
        joined = {k: pd.concat(v, ignore_index=True) for k, v in found.items()}
        if kind is None:
            return joined
        if kind not in joined:
            raise RecordingError(f"No results of kind {kind!r}; recorded kinds: {sorted(joined)}")
        return joined[kind]

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        start = to_utc(float(self._manifest.get("started_s", 0.0)))
        end = to_utc(self.end_s)
        state = "complete" if self.complete else "cut short"
        return (
            f"<Recording {self.path.name}: {start:%Y-%m-%d %H:%M:%S}-{end:%H:%M:%S} UTC "
            f"({state}, {self.chunks} chunks), taps {self.taps}>"
        )

    def _repr_html_(self) -> str:
        return f"<code>{html.escape(repr(self))}</code>"


def or_empty(frame: pd.DataFrame | None, columns: list[str]) -> pd.DataFrame:
    return frame if frame is not None else pd.DataFrame(columns=columns)


def _only(frame: pd.DataFrame, column: str, value: str | None) -> pd.DataFrame:
    if value is None:
        return frame
    if value not in set(frame[column]):
        raise RecordingError(f"No {column} {value!r} in this recording.")
    return frame[frame[column] == value].reset_index(drop=True)


def _after(frame: pd.DataFrame, since_s: float | None) -> pd.DataFrame:
    if since_s is None or not len(frame):
        return frame
    keep = frame["time"] >= pd.Timestamp(since_s, unit="s", tz="UTC")
    return frame[keep].reset_index(drop=True)
