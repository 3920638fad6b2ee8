"""Recordings, replay and trace export: ``lab.record``, ``lab.replay``,
``lab.export_trace`` (the Lab's recording service)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import RecordingError
from ..feeds.replay import message_class, replay, to_axisarray
from ..lab_taps import Tap
from ..model.topology import parent_address
from ..recording.chrome_trace import write_chrome_trace
from ..recording.loaded import Recording, load
from ..recording.messages import StoredAxisArray
from .recorder import DEFAULT_INTERVAL_S, Recorder, RecorderSources

if TYPE_CHECKING:
    import pandas as pd

    from ..runtime.connection import Connection
    from .experiments import ExperimentsService
    from .graph_info import GraphInfo
    from .session import Session
    from .taps import TapsService

# A topic the recorder taps itself keeps this much: far more than a flush interval.
RECORDER_TAP_WINDOW_S = 60.0
PACES = ("recorded", "fast")


class RecordingService:
    """Starts recordings, replays recorded topics and exports traces."""

    def __init__(
        self,
        session: Session,
        conn: Connection,
        graph: GraphInfo,
        taps: TapsService,
        sources: RecorderSources,
        experiments: ExperimentsService,
    ) -> None:
        self._session = session
        self._conn = conn
        self._graph = graph
        self._taps = taps
        self._sources = sources
        self._active: list[Recorder] = []
        self._lock = threading.Lock()
        # Each finished sweep, comparison or search goes into every running recording.
        experiments.subscribe(self._add_result)

    def _add_result(self, kind: str, frame: pd.DataFrame) -> None:
        for recorder in self.recordings:
            with contextlib.suppress(RecordingError):  # stopped meanwhile
                recorder.add_result(kind, frame)

    def record(
        self,
        path: str | Path,
        taps: Iterable[str | Tap] = (),
        *,
        interval: float = DEFAULT_INTERVAL_S,
        overwrite: bool = False,
    ) -> Recorder:
        """Record the Lab into one file until ``stop()`` (or the ``with`` block ends).

        Saves the topology and its events, settings and their history, profiling
        metrics and the profile, trace samples, unit logs, the messages of ``taps``,
        experiment results (``recorder.add_result(kind, frame)``) and the environment.
        Store history from before the call is included; tap messages start now. A
        writer thread appends what is new every ``interval`` seconds, so a kernel that
        dies keeps everything flushed before. Open it with :func:`ezmsg_lab.load`.

        Parameters
        ----------
        path : str or Path
            The file to write (``.ezrec`` by convention). An existing file raises
            unless ``overwrite=True``.
        taps : iterable of str or Tap
            Topics to record messages of: a topic name (the recorder opens a tap of its
            own and closes it at stop) or an open :class:`Tap` (its buffer is read; its
            ``window`` must be longer than ``interval``).
        interval : float
            Seconds between flushes.

        Examples
        --------
        >>> with lab.record("run.ezrec", taps=["DEMO/FILTER/OUTPUT_SIGNAL"]):  # doctest: +SKIP
        ...     lab.set("DEMO/FILTER", cutoff_hz=40)
        >>> rec = ezmsg_lab.load("run.ezrec")  # doctest: +SKIP
        """
        self._session.check_open()
        path = Path(path)
        if (
            isinstance(interval, bool)
            or not isinstance(interval, (int, float))
            or not 0.05 <= interval <= 60
        ):
            raise ValueError(f"interval={interval!r} must be 0.05..60 seconds")
        try:
            exists = path.exists()
        except OSError as exc:  # a name too long for the file system, say
            raise _path_error(path, exc) from None
        if exists and not overwrite:
            raise RecordingError(
                f"{str(path)!r} exists; choose another path or pass overwrite=True."
            )
        if isinstance(taps, (str, Tap)):
            taps = [taps]
        chosen: list[tuple[str, Tap, bool]] = []
        try:
            for i, item in enumerate(taps):
                if isinstance(item, Tap):
                    chosen.append((str(i), item, False))
                else:
                    opened = self._taps.tap(item, window=RECORDER_TAP_WINDOW_S)
                    chosen.append((str(i), opened, True))
            topics = [t.topic for _, t, _ in chosen]
            if len(set(topics)) != len(topics):
                raise ValueError(f"taps={topics} names a topic twice")
            try:
                recorder = Recorder(
                    path, self._sources, chosen, float(interval), on_stop=self._forget
                )
            except OSError as exc:
                raise _path_error(path, exc) from None
        except BaseException:
            for _, tap, owned in chosen:
                if owned:
                    tap.close()
            raise
        with self._lock:
            self._active.append(recorder)
        return recorder

    def _forget(self, recorder: Recorder) -> None:
        with self._lock:
            if recorder in self._active:
                self._active.remove(recorder)

    @property
    def recordings(self) -> list[Recorder]:
        with self._lock:
            return list(self._active)

    def stop_all(self) -> None:
        """Stop every running recording (the Lab closing)."""
        for recorder in self.recordings:
            try:
                recorder.stop()
            except RecordingError as exc:
                import logging

                logging.getLogger(__name__).warning("%s", exc)

    def export_trace(self, path: str | Path) -> Path:
        """Write the trace samples as a Chrome trace-event JSON file that Perfetto
        (ui.perfetto.dev) and chrome://tracing open: a track per process and stream,
        complete events for user code spans, lease times and backpressure waits, flow
        arrows from a publish to the subscribers of the same message where ezmsg's
        samples allow. Returns the path.

        Examples
        --------
        >>> lab.trace(duration=5, wait=True)  # doctest: +SKIP
        >>> lab.export_trace("trace.json")  # doctest: +SKIP
        """
        views = self._sources.views
        return write_chrome_trace(path, views.trace_samples(), views.topology().edges)

    def replay(
        self,
        recording: Recording | str | Path,
        topic: str,
        into: str,
        *,
        pace: str = "recorded",
        count: int | None = None,
        timeout: float | None = None,
    ) -> int:
        """Feed the recorded messages of ``topic`` into the input stream ``into``.

        The Lab publishes the recorded AxisArray messages (rebuilt as the recorded
        class when this kernel has it imported, else ezmsg's ``AxisArray``) on a topic
        of its own connected to ``into``, waits until each was acknowledged, and returns
        the number sent.

        Parameters
        ----------
        recording : Recording or path
        topic : str
            A tapped topic of the recording (``recording.taps``).
        into : str
            A unit's input stream, e.g. ``"DEMO/FILTER/INPUT_SIGNAL"``.
        pace : {"recorded", "fast"}
            The recorded spacing between messages, or as fast as the unit takes them.
        count : int, optional
            Only the first ``count`` messages.
        timeout : float, optional
            Defaults to the recording's span plus the Lab's timeout.

        Examples
        --------
        >>> lab.replay(rec, "DEMO/SOURCE/OUTPUT_SIGNAL", into="DEMO/FILTER/INPUT_SIGNAL")  # doctest: +SKIP
        """
        self._session.check_open()
        if pace not in PACES:
            raise ValueError(f"pace={pace!r} must be one of {PACES}")
        rec = recording if isinstance(recording, Recording) else load(recording)
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, int) or count < 1
        ):
            raise ValueError(f"count={count!r} must be a positive int or None")
        items = rec.tap_items(topic)[:count]
        if not items:
            raise RecordingError(f"The recording holds no message of {topic!r}; nothing to replay.")
        if not all(isinstance(it.message, StoredAxisArray) for it in items):
            raise RecordingError(
                f"{topic!r} holds messages that are not AxisArrays; replay sends AxisArrays only."
            )
        self._check_input(into)
        cls = message_class(items[-1].message.msg_type)
        messages = [to_axisarray(it.message, cls) for it in items]
        t0 = items[0].received
        offsets = [it.received - t0 if pace == "recorded" else 0.0 for it in items]
        wait = (
            self._session.timeout_for(timeout)
            if timeout is not None
            else offsets[-1] + self._session.timeout
        )
        owner = self._graph.owner_pid(parent_address(into) or into)
        return self._session.run(
            replay(self._conn, messages, offsets, into, owner, min(wait, self._session.timeout)),
            wait,
            f"replay({topic!r} into {into!r})",
        )

    def _check_input(self, into: str) -> None:
        inputs = sorted(s.address for s in self._graph.streams() if "Input" in type(s).__name__)
        if into not in inputs:
            raise RecordingError(
                f"{into!r} is not an input stream of the graph; inputs: "
                f"{[i for i in inputs if not i.endswith('INPUT_SETTINGS')][:20]}"
            )


def _path_error(path: Path, exc: OSError) -> RecordingError:
    shown = str(path) if len(str(path)) <= 120 else f"{str(path)[:120]}..."
    return RecordingError(
        f"Cannot write a recording at {shown!r}: {exc.strerror or exc}. Choose a path in "
        "a folder you can write to, with a shorter name."
    )
