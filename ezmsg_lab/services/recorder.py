"""A running recording: a writer thread that flushes the Lab's stores to the file.

Every ``interval`` seconds the thread reads what is new in the stores (the same views
the Lab's DataFrames come from; running numbers for trace samples, logs and tap
messages, so each is written once) and appends it as one chunk. Disk I/O never runs on
the control loop. See :mod:`ezmsg_lab.recording.container` for the file.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import platform
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import LabError, RecordingError
from ..model.graph_view import graph_state
from ..recording.container import FORMAT_NAME, FORMAT_VERSION, ContainerWriter
from ..recording.messages import encode_items, npy_bytes
from ..recording.tables import to_parquet_bytes

if TYPE_CHECKING:
    from ..lab_taps import Tap
    from ..model.logs import LogStore
    from ..model.traces import TraceStore
    from .views import Views

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 1.0
LOG_COLUMNS = (
    "time",
    "unit",
    "pipeline",
    "process",
    "pid",
    "level",
    "logger",
    "message",
    "traceback",
    "kind",
)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def environment() -> dict[str, Any]:
    """What ran the recording: interpreter, packages, platform, this host."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "ezmsg": _version("ezmsg"),
        "ezmsg_lab": _version("ezmsg-lab"),
        "numpy": _version("numpy"),
        "pandas": _version("pandas"),
        "pyarrow": _version("pyarrow"),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
    }


@dataclass
class _Marks:
    """How far each store has been written."""

    trace: int = 0
    logs: int = 0
    settings_seq: int = -1
    topology_seq: int = -1
    metrics_ns: int = -1
    taps: dict[str, int] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    trace_keys: int = -1
    trace_processes: str = ""
    lost: dict[str, int] = field(default_factory=dict)


@dataclass
class RecorderSources:
    """The stores and views a recorder reads."""

    views: Views
    traces: TraceStore
    logs: LogStore


class Recorder:
    """Records the Lab into one file until :meth:`stop`. Made by :meth:`Lab.record`.

    Use it as a context manager, or call :meth:`stop`. :meth:`add_result` adds an
    experiment's result table.

    Attributes
    ----------
    path : pathlib.Path
    chunks : int
        Flushes written so far.
    """

    def __init__(
        self,
        path: Path,
        sources: RecorderSources,
        taps: list[tuple[str, Tap, bool]],
        interval: float,
        on_stop: Any = None,
    ) -> None:
        self.path = path
        self._src = sources
        self._taps = taps  # (id, tap, owned by the recorder)
        self._interval = interval
        self._on_stop = on_stop
        self._marks = _Marks()
        self._results: list[tuple[str, pd.DataFrame]] = []
        self._lock = threading.Lock()  # one flush at a time; guards _results
        self.chunks = 0
        self.error: BaseException | None = None
        self.started_s = time.time()
        self._writer = ContainerWriter(
            path,
            {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "started_s": self.started_s,
                "environment": environment(),
                "taps": [{"id": i, "topic": tap.topic} for i, tap, _ in taps],
                "interval_s": interval,
            },
        )
        self._stop = threading.Event()
        self.stopped = False
        self._thread = threading.Thread(target=self._run, name="ezmsg-lab-recorder", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ public
    def add_result(self, kind: str, frame: pd.DataFrame) -> None:
        """Add an experiment's result table (written with the next flush); ``load``
        gives them back with ``recording.results(kind)``."""
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"kind={kind!r} must be a non-empty string such as 'sweep'")
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"frame must be a pandas DataFrame, not {type(frame).__name__}")
        if self.stopped:
            raise RecordingError(f"The recording {str(self.path)!r} is stopped; nothing added.")
        with self._lock:
            self._results.append((kind, frame.copy()))

    def stop(self) -> Path:
        """Flush what is left, mark the file complete and return its path. Idempotent."""
        if self.stopped:
            return self.path
        self._stop.set()
        self._thread.join(timeout=max(10.0, 5 * self._interval))
        try:
            self.flush()
            hosts = sorted({str(h) for h in self._topology_hosts() if h})
            self._writer.finish(
                {
                    "stopped_s": time.time(),
                    "environment": {"hosts": hosts},
                    "chunks": self.chunks,
                    "lost": dict(self._marks.lost),
                }
            )
        finally:
            self.stopped = True
            for _, tap, owned in self._taps:
                if owned:
                    tap.close()
            if self._on_stop is not None:
                self._on_stop(self)
        if self.error is not None:
            raise RecordingError(
                f"The recording {str(self.path)!r} stopped writing early: {self.error!r}. "
                "What was flushed before is in the file."
            )
        return self.path

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "stopped" if self.stopped else "recording"
        topics = [tap.topic for _, tap, _ in self._taps]
        return f"<Recorder {str(self.path)!r} ({state}, {self.chunks} chunks), taps {topics}>"

    # ------------------------------------------------------------------ writing
    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except Exception as exc:  # a full disk, a closed Lab: say so at stop()
                logger.warning("recording to %s failed: %r", self.path, exc)
                self.error = exc
                return

    def flush(self) -> None:
        """Write what is new as one chunk (the writer thread does it every interval)."""
        with self._lock:
            members: list[tuple[str, bytes]] = []
            index: dict[str, Any] = {"time_s": time.time(), "taps": {}, "results": {}}
            self._topology(members)
            self._settings(members)
            self._metrics(members)
            self._traces(members)
            self._logs(members)
            self._tap_messages(members, index)
            for i, (kind, frame) in enumerate(self._results):
                members.append((f"result{i}.parquet", to_parquet_bytes(frame)))
                index["results"][f"result{i}"] = kind
            self._results.clear()
            if members:
                self.chunks += 1
                self._writer.write_chunk(self.chunks, members, index)

    def _changed(self, name: str, data: bytes) -> bool:
        digest = hashlib.sha1(data).hexdigest()
        if self._marks.digests.get(name) == digest:
            return False
        self._marks.digests[name] = digest
        return True

    def _topology_hosts(self) -> list[Any]:
        try:
            return list(self._src.views.topology().processes["host"])
        except LabError:
            return []

    def _topology(self, members: list[tuple[str, bytes]]) -> None:
        views = self._src.views
        try:
            topo = views.topology()
        except LabError:
            return
        stamp = str(topo.time.value).encode()
        if self._changed("topology", stamp):
            for name in ("units", "collections", "topics", "edges", "processes"):
                members.append((f"topology_{name}.parquet", to_parquet_bytes(getattr(topo, name))))
            state = graph_state(topo.raw) if topo.raw is not None else None
            doc = {"time_s": topo.time.value / 1e9, "graph_state": state}
            members.append(("topology.json", _json(doc)))
        events = views.topology_events()
        new = events[events["seq"] > self._marks.topology_seq]
        if len(new):
            self._marks.topology_seq = int(new["seq"].max())
            members.append(("topology_events.parquet", to_parquet_bytes(new)))

    def _settings(self, members: list[tuple[str, bytes]]) -> None:
        views = self._src.views
        data = to_parquet_bytes(views.settings())
        if self._changed("settings", data):
            members.append(("settings.parquet", data))
        history = views.settings_history()
        new = history[history["seq"] > self._marks.settings_seq]
        if len(new):
            self._marks.settings_seq = int(new["seq"].max())
            members.append(("settings_history.parquet", to_parquet_bytes(new)))

    def _metrics(self, members: list[tuple[str, bytes]]) -> None:
        views = self._src.views
        last = self._marks.metrics_ns
        since = None if last < 0 else pd.Timestamp(last - 1_000_000_000, unit="ns", tz="UTC")
        frame = views.metrics(since=since)
        if last >= 0:
            frame = frame[frame["time"] > pd.Timestamp(last, unit="ns", tz="UTC")]
        if len(frame):
            self._marks.metrics_ns = int(frame["time"].max().value)
            members.append(("metrics.parquet", to_parquet_bytes(frame)))
        try:
            profile = views.profile()
        except LabError:
            return
        data = to_parquet_bytes(profile)
        if self._changed("profile", data):
            members.append(("profile.parquet", data))

    def _traces(self, members: list[tuple[str, bytes]]) -> None:
        store = self._src.traces
        cols, nxt, lost = store.since(self._marks.trace)
        self._marks.trace = nxt
        if lost:
            self._marks.lost["trace_samples"] = self._marks.lost.get("trace_samples", 0) + lost
        with store.lock:
            keys = [[k.process_id, k.endpoint_id, k.topic, k.task] for k in store.keys]
            procs = {
                p: {"pid": m.pid, "host": m.host, "units": list(m.units)}
                for p, m in store.processes.items()
            }
        meta = _json({"keys": keys, "processes": procs})
        if self._changed("trace_meta", meta):
            members.append(("trace_meta.json", meta))
        if len(cols["t_ns"]):
            members.append(("trace.parquet", to_parquet_bytes(pd.DataFrame(cols))))

    def _logs(self, members: list[tuple[str, bytes]]) -> None:
        records, nxt = self._src.logs.since(self._marks.logs)
        self._marks.logs = nxt
        if records:
            frame = pd.DataFrame(
                [[getattr(r, c) for c in LOG_COLUMNS] for r in records], columns=list(LOG_COLUMNS)
            )
            frame["pid"] = frame["pid"].astype("Int64")
            members.append(("logs.parquet", to_parquet_bytes(frame)))

    def _tap_messages(self, members: list[tuple[str, bytes]], index: dict[str, Any]) -> None:
        for i, tap, _ in self._taps:
            name = f"tap{i}"
            items, nxt, lost = tap.items_since(self._marks.taps.get(name, 0))
            self._marks.taps[name] = nxt
            if lost:
                self._marks.lost[tap.topic] = self._marks.lost.get(tap.topic, 0) + lost
                logger.warning(
                    "recording %s: %d message(s) of %s left the tap's window before they "
                    "were written; give the tap a longer window",
                    self.path,
                    lost,
                    tap.topic,
                )
            if not items:
                continue
            table, runs = encode_items(items)
            members.append((f"{name}.parquet", to_parquet_bytes(table)))
            members.extend((f"{name}_{r}.npy", npy_bytes(arr)) for r, arr in enumerate(runs))
            index["taps"][name] = {"runs": len(runs), "messages": len(items), "lost": lost}


def _json(obj: Any) -> bytes:
    import json

    from ..recording.tables import plain

    return json.dumps(plain(obj)).encode()
