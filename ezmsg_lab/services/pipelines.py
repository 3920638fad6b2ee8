"""The pipelines a Lab launched: starting them, their units' records, stopping them."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..errors import LabClosedError, LabError
from ..model.listeners import Listeners, Unsubscribe
from ..model.logs import LogRecord, LogStore
from ..runtime.pipeline import Pipeline, PipelineHooks, check_start_method
from ..runtime.rebuild import Recipe, build, make_recipe
from .session import check_timeout

if TYPE_CHECKING:
    from ..feeds.topology import TopologyFeed
    from ..runtime.connection import Connection
    from ..runtime.server import Address, EmbeddedServer
    from ..runtime.tap_link import TapLink
    from .session import Session

logger = logging.getLogger(__name__)

DEFAULT_START_TIMEOUT_S = 30.0
# Stopped pipelines whose summaries lab.pipelines keeps (a sweep launches hundreds).
KEEP_STOPPED = 100


class PipelinesService:
    """Launches pipelines for a Lab and keeps them (the running ones and the last
    :data:`KEEP_STOPPED` stopped ones); turns their units' records into log records."""

    def __init__(
        self,
        session: Session,
        address: Address,
        conn: Connection,
        topology: TopologyFeed,
        logs: LogStore,
        server: EmbeddedServer | None,
        start_method: str | None,
        is_watched: Callable[[str | None], bool],
    ) -> None:
        self._session = session
        self._address = address
        self._conn = conn
        self._topology = topology
        self._logs = logs
        self._server = server
        self.start_method = start_method
        self._is_watched = is_watched  # lab.set reports a watched unit's errors itself
        self._pipelines: list[Pipeline] = []
        self._starting: set[str] = set()  # names of pipelines being launched
        self._unit_error_callbacks: list[Any] = [self._print_unit_error]
        self._launched: Listeners[[Pipeline]] = Listeners("pipeline launch")
        # A pristine copy of each running pipeline's launch (for relaunch sweeps).
        self._recipes: dict[Pipeline, Recipe | None] = {}

    def subscribe(self, fn: Callable[[Pipeline], Any]) -> Unsubscribe:
        """Call ``fn(pipeline)`` after each pipeline this Lab launches has started."""
        return self._launched.subscribe(fn)

    def tap_links(self) -> list[TapLink]:
        """The tap pipes of the running pipelines whose units run in processes."""
        return [link for p in self._pipelines if (link := p.tap_link) is not None]

    @property
    def pipelines(self) -> list[Pipeline]:
        """The running pipelines and the last stopped ones, in launch order."""
        return list(self._pipelines)

    def launch(
        self,
        components: Any,
        name: str | None = None,
        *,
        mode: str = "processes",
        connections: Iterable[tuple[Any, Any]] | None = None,
        process_components: Iterable[Any] | None = None,
        start_timeout: float = DEFAULT_START_TIMEOUT_S,
        unit_stderr: bool = False,
        start_method: str | None = None,
    ) -> Pipeline:
        """Start an ezmsg pipeline without blocking the cell.

        Parameters
        ----------
        components : ezmsg Collection or Unit, or a dict of them
            What to run; a single component is named ``name`` (default: its class name in
            capitals), which prefixes every unit address. A dict keeps its keys, and
            ``name`` (ezmsg's ``root_name``) prefixes them: ``{"SRC": ...}`` with
            ``name="PIPE"`` gives ``PIPE/SRC``; ``connections`` then link the dict's units.
        mode : {"processes", "in-kernel"}
            ``"processes"`` starts unit processes through ezmsg's GraphRunner;
            ``"in-kernel"`` runs all units in a thread of this kernel, so the notebook can
            look at live unit objects (``pipeline.unit_objects``).
        start_timeout : float
            :class:`PipelineStartError` is raised if the units are not running by then.
        unit_stderr : bool
            Also let ezmsg print unit log records to the processes' stderr (off by
            default: forked from a kernel, that output floods the cells; the records are
            in :meth:`logs` either way).
        start_method : {None, "forkserver", "fork", "spawn"}
            How to start the unit processes (``mode="processes"``); None uses the Lab's
            ``start_method``, and if that is None too the Lab chooses:

            - ``"forkserver"`` on Linux (``"spawn"`` elsewhere) for pipelines a fresh
              process can import, like :class:`~ezmsg_lab.demo.DemoPipeline`: a kernel
              runs threads, and forking a process with threads may deadlock the child
              (why Python 3.12+ warns about fork and 3.14 made forkserver its default);
            - ``"fork"`` on Linux when a unit or its settings refer to classes defined in
              the notebook (``__main__``) or cannot be pickled: only a forked process can
              run those. Elsewhere they raise :class:`PipelineStartError` saying what to
              do (move them to a module, ``mode="in-kernel"``).

            multiprocessing's global start method is neither read nor changed;
            ``pipeline.start_method`` tells which one ran.

        Returns
        -------
        Pipeline
            With ``.stop()``, ``.running``, ``.processes`` and ``.pids``.
        """
        self._session.check_open()
        check_timeout(start_timeout)
        if self._conn.lost is not None:
            # Raises LabConnectionError with the reason.
            self._session.run(self._conn.call(lambda ctx: ctx.snapshot()), None, "snapshot()")
        pipeline = Pipeline(
            components,
            self._address,
            name=name,
            mode=mode,
            connections=connections,
            process_components=process_components,
            hooks=PipelineHooks(
                on_event=self._on_unit_event,
                on_drops=self._on_unit_drops,
                is_registered=self._units_registered,
            ),
            unit_stderr=unit_stderr,
            start_method=check_start_method(start_method) or self.start_method,
        )
        recipe = make_recipe(
            components,
            name,
            connections,
            process_components,
            mode=mode,
            start_timeout=start_timeout,
            unit_stderr=unit_stderr,
            start_method=start_method,
        )
        # Registered before it starts, under the close lock: a close() from another thread
        # then either refuses this launch or stops this pipeline, never misses it.
        with self._session.close_lock:
            self._session.check_open()
            running = {p.name for p in self._pipelines if p.running}
            if pipeline.name in running or pipeline.name in self._starting:
                raise LabError(
                    f"A pipeline named {pipeline.name!r} is already running in this Lab; "
                    "stop it first (lab.pipelines[...].stop()) or pass another name=."
                )
            self._starting.add(pipeline.name)
            self._pipelines.append(pipeline)
            self._recipes[pipeline] = recipe
            self._trim_stopped()
        if self._server is not None:
            self._server.prune()  # what ezmsg's server kept of earlier pipelines
        t0 = time.monotonic()
        try:
            pipeline.start(start_timeout)
        except BaseException as exc:
            with self._session.close_lock:
                self._forget(pipeline)
                closed = self._session.closed
            if closed:
                raise LabClosedError(
                    f"The Lab was closed while pipeline {pipeline.name!r} was starting; it "
                    "was stopped and nothing of it is running."
                ) from exc
            raise
        with self._session.close_lock:
            self._starting.discard(pipeline.name)
            closed = self._session.closed
        if closed:
            pipeline.stop()
            raise LabClosedError(
                f"The Lab was closed while pipeline {pipeline.name!r} was starting; it was "
                "stopped and nothing of it is running."
            )
        # Return once the Lab's own view shows the units, so the next cell sees them.
        remaining = max(0.5, start_timeout - (time.monotonic() - t0))
        units = pipeline.units
        if not self._topology.wait_for(lambda s: _registered(s, units), remaining):
            logger.warning(
                "pipeline %s started but its units are not yet registered", pipeline.name
            )
        self._launched.emit(pipeline)
        return pipeline

    def _forget(self, pipeline: Pipeline) -> None:
        """Drop a pipeline that failed to start (call with the close lock held)."""
        self._starting.discard(pipeline.name)
        self._recipes.pop(pipeline, None)
        if pipeline in self._pipelines:
            self._pipelines.remove(pipeline)

    def _trim_stopped(self) -> None:
        """Keep at most KEEP_STOPPED stopped pipelines' summaries (the oldest go first)."""
        stopped = [p for p in self._pipelines if p.stopped_at is not None]
        for old in stopped:
            self._recipes.pop(old, None)  # only running pipelines are relaunched
        for old in stopped[: max(0, len(stopped) - KEEP_STOPPED)]:
            self._pipelines.remove(old)

    # ------------------------------------------------------------------ relaunching
    def relaunchable(self, address: str) -> tuple[Pipeline, Recipe]:
        """The running pipeline (launched by this Lab) that has a component at
        ``address``, and the copy of its launch; raises :class:`LabError` otherwise."""
        running = [p for p in self._pipelines if p.running]
        for pipeline in running:
            recipe = self._recipes.get(pipeline)
            if recipe is not None and address in recipe.addresses():
                return pipeline, recipe
        uncopied = [p.name for p in running if self._recipes.get(p) is None]
        why = (
            f" (pipelines {uncopied} could not be copied at launch, so they cannot be rebuilt)"
            if uncopied
            else ""
        )
        raise LabError(
            f"relaunch=True needs {address!r} to be part of a running pipeline this Lab "
            f"launched{why}; running: {[p.name for p in running]}. A graph the Lab attached "
            "to cannot be rebuilt from here."
        )

    def check_rebuild(self, address: str, points: list[dict[str, Any]]) -> None:
        """Build (without launching) each point's copy of ``address``'s pipeline: raises
        for an unknown field, a refused value or a value configure() overwrites."""
        _, recipe = self.relaunchable(address)
        for point in points:
            build(recipe, {address: point})

    def relaunch(self, address: str, point: dict[str, Any] | None) -> Pipeline:
        """Stop the pipeline that has ``address`` and launch a fresh copy of it, with
        ``point`` applied to that component (None: as first launched). The copy of the
        first launch stays the one later relaunches start from."""
        pipeline, recipe = self.relaunchable(address)
        comps, conns, procs = build(recipe, {address: point} if point else {})
        pipeline.stop()
        new = self.launch(
            comps, recipe.root, connections=conns, process_components=procs, **recipe.options
        )
        self._recipes[new] = recipe
        return new

    def _units_registered(self, units: list[str]) -> bool:
        snap = self._topology.snapshot
        return snap is not None and _registered(snap, units)

    def _on_unit_event(self, pipeline: Pipeline, event: Any) -> None:
        """Called from a pipeline's event thread for each record from its units."""
        process = None
        snap = self._topology.snapshot
        if snap is not None:
            for proc_id, proc in snap.processes.items():
                if proc.pid == event.pid and (event.unit is None or event.unit in proc.units):
                    process = str(proc_id)
                    break
        record = LogRecord(
            time=event.time,
            unit=event.unit,
            pipeline=pipeline.name,
            process=process,
            pid=event.pid,
            level=event.level,
            logger=event.logger,
            message=event.message,
            traceback=event.traceback,
            kind=event.kind,
        )
        if self._logs.add(record) and not self._session.closed:
            for fn in list(self._unit_error_callbacks):
                try:
                    fn(record)
                except Exception:
                    logger.exception("unit error callback failed")

    def _on_unit_drops(self, pipeline: Pipeline, count: int) -> None:
        """Called from a pipeline's event thread when its units dropped records."""
        where = "its unit processes" if pipeline.mode == "processes" else "its in-kernel units"
        self._logs.add(
            LogRecord(
                time=time.time(),
                unit=None,
                pipeline=pipeline.name,
                process=None,
                pid=None,
                level="WARNING",
                logger="ezmsg_lab",
                message=(
                    f"{count} record(s) from {where} of pipeline {pipeline.name!r} were "
                    "dropped: its units log or raise faster than the Lab reads "
                    f"({pipeline.events_dropped} dropped in total; see "
                    "pipeline.events_dropped)."
                ),
                traceback=None,
                kind="dropped",
            )
        )

    def _print_unit_error(self, record: LogRecord) -> None:
        if self._is_watched(record.unit):
            return  # lab.set is watching this unit and reports it, naming the change
        _print_unit_error(record)

    def on_unit_error(self, fn: Any) -> None:
        """Call ``fn(record)`` when a unit starts raising (once per burst of errors).

        By default the Lab prints a short notice in the notebook; ``fn`` is called too.
        """
        self._unit_error_callbacks.append(fn)

    def stop_all(self, timeout: float = 10.0) -> None:
        """Stop every pipeline this Lab launched, in parallel, within about ``timeout``."""
        _stop_in_parallel(list(self._pipelines), timeout)


def _print_unit_error(record: LogRecord) -> None:
    first_line = record.message.splitlines()[0] if record.message else ""
    print(
        f"ezmsg-lab: unit {record.unit} (pid {record.pid}) started raising: {first_line}\n"
        f"  It raises on every message until fixed; see lab.logs(unit={record.unit!r}) "
        "for the traceback.",
        file=sys.stderr,
        flush=True,
    )


def _stop_in_parallel(pipelines: list[Pipeline], timeout: float) -> None:
    """Stop pipelines each in its own thread; return within about ``timeout``."""

    def stop(pipeline: Pipeline) -> None:
        try:
            pipeline.stop(timeout)
        except Exception:
            logger.exception("stopping pipeline %s failed", pipeline.name)

    active = [p for p in pipelines if p.stopped_at is None]
    if len(active) <= 1:
        for pipeline in active:
            stop(pipeline)
        return
    threads = [
        threading.Thread(target=stop, args=(p,), name=f"ezmsg-lab-stop-{p.name}", daemon=True)
        for p in active
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout + 1.0
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def _registered(snapshot: Any, units: list[str]) -> bool:
    owned = {u for proc in snapshot.processes.values() for u in proc.units}
    return all(u in owned for u in units)
