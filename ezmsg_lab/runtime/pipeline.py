"""Launching and stopping ezmsg pipelines from a notebook without blocking the cell.

Unit processes are started by ezmsg's own ``GraphRunner``; the Lab adds what a notebook
needs around it: a bounded start (ezmsg 3.9.0 waits forever at its start barrier when a
spawned child cannot unpickle its units, and forever at its stop barrier when a unit raised
in ``initialize``), an error that names the failing unit, a bounded stop that escalates to
terminate/kill, the unit processes' logs forwarded to the Lab through a bounded channel,
a start method chosen per pipeline (see :func:`choose_start_method`) without touching
multiprocessing's global default, and a stop that releases everything (pipes, process
handles, the runner) so a notebook can launch and stop pipelines for hours: a stopped
pipeline keeps only a small summary.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import html
import logging
import multiprocessing
import os
import pickle
import sys
import threading
import time
import traceback
import types
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import PipelineError, PipelineStartError
from . import compat
from ._backend import KernelLifeline, LabBackendProcess, UnitEvent, _unit_of_traceback
from ._channel import ChannelCounts, LocalChannel, PipeChannel
from .server import Address
from .tap_link import TapLink

logger = logging.getLogger(__name__)

MODES = ("processes", "in-kernel")

# After a start failure, how long the runner gets to unwind before its processes are
# terminated, and how long a terminated process gets before it is killed.
_UNWIND_S = 1.0
_TERMINATE_S = 2.0
# A stop's share of its time for SIGTERM (then SIGKILL), at most _TERMINATE_S; how long
# killed processes are waited for; the least a thread is given to end after that.
_TERMINATE_SHARE = 0.4
_KILL_WAIT_S = 0.5
_MIN_JOIN_S = 0.1
_POLL_S = 0.02
# How long a stop waits for the records the unit processes sent before they exited.
_FINISH_READING_S = 1.0


@dataclass(frozen=True)
class ProcessInfo:
    """One process of a pipeline."""

    name: str
    pid: int | None
    alive: bool
    exitcode: int | None
    units: tuple[str, ...]


def _walk(components: Mapping[str, Any], root: str | None = None) -> list[tuple[str, Any]]:
    """(address, component) for every component, computed the way ezmsg will name them.

    Works before launch: ezmsg only sets root names and locations when it starts them.
    ``root`` is GraphRunner's ``root_name``: it prefixes every address.
    """
    out: list[tuple[str, Any]] = []

    def visit(address: str, comp: Any) -> None:
        out.append((address, comp))
        for child_name, child in comp.components.items():
            visit(f"{address}/{compat.launched_name(child) or child_name}", child)

    for name, root_comp in components.items():
        visit(f"{root}/{name}" if root else name, root_comp)
    return out


def _crawl(components: Mapping[str, Any]) -> list[Any]:
    return [comp for _, comp in _walk(components)]


def _normalise_components(
    components: Any, name: str | None
) -> tuple[str, str | None, dict[str, Any]]:
    """(pipeline name, ezmsg root_name or None, components by name).

    A single component is named ``name``; a dict keeps its keys, and ``name`` (when
    given) becomes ezmsg's ``root_name``, the prefix of every address, as ``ez.run`` does.
    """
    from ezmsg.core.component import Component

    if name is not None and (not isinstance(name, str) or not name or "/" in name):
        raise ValueError(f"pipeline name {name!r} must be a non-empty string without '/'")
    root: str | None = None
    if isinstance(components, Component):
        label = name or type(components).__name__.upper()
        components = {label: components}
    elif isinstance(components, Mapping):
        if not components:
            raise ValueError("launch() needs at least one component")
        for key, comp in components.items():
            if not isinstance(comp, Component):
                raise TypeError(
                    f"launch() component {key!r} is a {type(comp).__name__}, not an ezmsg "
                    "Unit or Collection"
                )
        label = name or "+".join(map(str, components))
        root = name
    else:
        raise TypeError(
            f"launch() takes an ezmsg Collection/Unit or a dict of them, not "
            f"{type(components).__name__}"
        )
    for comp in components.values():
        if compat.launched_name(comp) is not None:
            raise PipelineError(
                f"This {type(comp).__name__} instance was already launched (as "
                f"{compat.launched_name(comp)!r}); ezmsg components run once. Create a new "
                "instance."
            )
    for key in components:
        if not isinstance(key, str) or not key or "/" in key:
            raise ValueError(f"pipeline name {key!r} must be a non-empty string without '/'")
    return label, root, dict(components)


class _MainFinder(pickle.Pickler):
    """Pickles into nothing, noting classes and functions defined in ``__main__``.

    A unit referring to one (its class, its settings class, an enum member or a nested
    dataclass in its settings) cannot be unpickled by a process that did not fork from
    the notebook: ezmsg 3.9.0 then waits forever at its start barrier (rough edge 8).
    """

    class _Sink:
        def write(self, data: bytes) -> int:
            return len(data)

    def __init__(self) -> None:
        super().__init__(self._Sink(), protocol=pickle.HIGHEST_PROTOCOL)
        self.found: list[Any] = []

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, type | types.FunctionType) and obj.__module__ == "__main__":
            self.found.append(obj)
        return NotImplemented


@dataclass(frozen=True)
class _SpawnBlocker:
    """Why a component cannot start in a fresh process (forkserver, spawn)."""

    unit: str  # its address: a unit, or a collection whose settings its units get
    main_object: Any = None  # a class or function from __main__ that it refers to
    pickle_error: Exception | None = None

    def error(self, method: str) -> PipelineStartError:
        fork_hint = (
            ", or launch(..., start_method='fork')"
            if "fork" in multiprocessing.get_all_start_methods()
            else ""
        )
        if self.main_object is not None:
            what = "class" if isinstance(self.main_object, type) else "function"
            return PipelineStartError(
                f"Cannot start {self.unit}: it uses the {what} "
                f"{self.main_object.__qualname__}, defined in the notebook (__main__), which "
                f"unit processes started with the {method!r} start method cannot import. "
                "Move it into a .py module and import it from there, or "
                f"launch(..., mode='in-kernel'){fork_hint}.",
                unit=self.unit,
                cause=f"{self.main_object.__qualname__} defined in __main__ under {method!r}",
            )
        exc = self.pickle_error
        return PipelineStartError(
            f"Cannot start {self.unit}: it cannot be pickled for a {method!r} unit process "
            f"({type(exc).__name__}: {exc}). Keep unit state in initialize(), not in the "
            f"constructor, or launch(..., mode='in-kernel'){fork_hint}.",
            unit=self.unit,
            cause=f"{type(exc).__name__}: {exc}",
        )


def _spawn_blocker(components: Mapping[str, Any]) -> _SpawnBlocker | None:
    """The first component that only a forked process could run, and why; None if none.

    Units are pickled whole, as multiprocessing sends them. A collection stays in the
    kernel, but its ``configure()`` (which runs at launch, after this check) hands its
    settings' values to its units, so those values are scanned too.
    """
    from ezmsg.core.unit import Unit

    for address, comp in _walk(components):
        is_unit = isinstance(comp, Unit)
        settings = getattr(comp, "SETTINGS", None)
        if is_unit:
            targets = [comp]
        elif dataclasses.is_dataclass(settings) and not isinstance(settings, type):
            targets = [getattr(settings, f.name) for f in dataclasses.fields(settings)]
        else:
            targets = [settings]
        for target in targets:
            finder = _MainFinder()
            try:
                finder.dump(target)
            except Exception as exc:
                if finder.found:
                    return _SpawnBlocker(address, main_object=finder.found[0])
                if is_unit:
                    return _SpawnBlocker(address, pickle_error=exc)
                continue  # unless configure() hands it on, it never leaves the kernel
            if finder.found:
                return _SpawnBlocker(address, main_object=finder.found[0])
    return None


def default_start_method() -> str:
    """The start method for pipelines that a fresh process can run.

    forkserver on Linux: fork from a kernel, which always runs threads (the Lab's control
    loop, an embedded GraphServer, Jupyter's own), may deadlock the child; Python 3.12+
    warns about it and 3.14 left fork for forkserver. Elsewhere spawn, Python's own default
    on macOS and Windows.
    """
    if sys.platform.startswith("linux") and "forkserver" in multiprocessing.get_all_start_methods():
        return "forkserver"
    return "spawn"


def check_start_method(method: str | None) -> str | None:
    """``method`` if this platform has it (None: the Lab chooses); ValueError otherwise."""
    if method is None:
        return None
    available = multiprocessing.get_all_start_methods()
    if method not in available:
        raise ValueError(
            f"start_method={method!r} is not available here; use one of {available}, or "
            "None to let the Lab choose"
        )
    return method


# What every unit process imports. Preloaded by the fork server, its children start with
# them instead of importing them one by one: a launch of the demo took ~2.4 s instead of
# ~0.15 s here. (CPython's default preload, __main__, is not actually imported: its
# forkserver looks for a 'main_path' key that the preparation data never holds.)
_FORKSERVER_PRELOAD = (
    "multiprocessing.sharedctypes",  # the Lab's drop counters (a Value) need it
    "ezmsg.core",
    "ezmsg.util.messages.axisarray",
    "ezmsg_lab.runtime._backend",
    "ezmsg_lab.runtime._preload",
)


def _component_modules(components: Mapping[str, Any]) -> list[str]:
    """The modules defining the pipeline's units and collections (not ``__main__``, which
    a fresh process cannot import: such pipelines are forked)."""
    names = {type(comp).__module__ for comp in _crawl(components)}
    return sorted(n for n in names if n != "__main__" and n in sys.modules)


def _prepare_forkserver(modules: Sequence[str] = ()) -> None:
    """Add :data:`_FORKSERVER_PRELOAD` to the fork server's preload list, keeping the rest,
    and ``modules`` to what it imports through :mod:`._preload`.

    Takes effect when the fork server starts (at the first forkserver launch of this
    kernel); once it runs, this changes nothing. The first pipeline's own modules are
    preloaded too: each unit process of a launch would otherwise import them itself
    (about 0.3 s a process for the demo, more than the rest of its start), in parallel
    on a few cores. Python's preload API only replaces the list, hence the read of its
    current value.
    """
    from multiprocessing import forkserver

    from ._preload import ENV

    listed = [m for m in os.environ.get(ENV, "").split(",") if m]
    extra = [m for m in modules if m not in listed]
    if extra:
        os.environ[ENV] = ",".join(listed + extra)
    server = getattr(forkserver, "_forkserver", None)
    current = list(getattr(server, "_preload_modules", None) or ["__main__"])
    missing = [m for m in _FORKSERVER_PRELOAD if m not in current]
    if missing:
        forkserver.set_forkserver_preload(current + missing)


def choose_start_method(requested: str | None, blocker: _SpawnBlocker | None) -> str:
    """The start method of one launch.

    ``requested`` wins. Otherwise :func:`default_start_method`, except for a pipeline
    that only a forked process can run (units or settings defined in the notebook, unit
    objects that cannot be pickled): on Linux those are forked, as ezmsg always did there.
    """
    if requested is not None:
        return requested
    if (
        blocker is not None
        and sys.platform.startswith("linux")
        and "fork" in multiprocessing.get_all_start_methods()
    ):
        return "fork"
    return default_start_method()


@dataclass(frozen=True)
class PipelineHooks:
    """What a Pipeline tells its Lab, and asks it.

    ``on_event(pipeline, event)`` for each record from a unit process (errors, logs),
    ``on_drops(pipeline, count)`` when records were dropped, and
    ``is_registered(units)``: whether the GraphServer lists those units yet (the start
    waits for it; None: do not wait).
    """

    on_event: Callable[[Pipeline, UnitEvent], None] | None = None
    on_drops: Callable[[Pipeline, int], None] | None = None
    is_registered: Callable[[list[str]], bool] | None = None


class Pipeline:
    """A pipeline the Lab launched. Returned by :meth:`Lab.launch`.

    Once stopped, a pipeline releases its pipes, process handles and runner and keeps a
    small summary: its name, mode, units, processes (pids and exit codes), start and stop
    times and the counts of unit records it received, dropped and could not read.

    Attributes
    ----------
    name : str
        The pipeline's name. For a single component it is also the first part of every
        unit address (``"DEMO/FILTER"``); for a dict of components launched with
        ``name=``, it prefixes the dict's keys (``"PIPE/SOURCE/..."``).
    mode : str
        ``"processes"`` (unit processes started by ezmsg's GraphRunner) or
        ``"in-kernel"`` (units run in a thread of this kernel).
    started_at, stopped_at : float or None
        ``time.time()`` when the pipeline started and stopped.
    start_method : str or None
        How its unit processes were started (``"fork"``, ``"forkserver"``, ``"spawn"``;
        see :func:`choose_start_method`); None in-kernel and before the start.
    """

    def __init__(
        self,
        components: Any,
        graph_address: Address,
        *,
        name: str | None = None,
        mode: str = "processes",
        connections: Iterable[tuple[Any, Any]] | None = None,
        process_components: Iterable[Any] | None = None,
        hooks: PipelineHooks | None = None,
        unit_stderr: bool = False,
        start_method: str | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is not one of {MODES}")
        self._requested_method = check_start_method(start_method)
        self.start_method: str | None = None
        self._lifeline: KernelLifeline | None = None
        self.name, self._root, self._components = _normalise_components(components, name)
        self.mode = mode
        self.graph_address = graph_address
        self._connections = list(connections) if connections is not None else None
        self._process_components = (
            list(process_components) if process_components is not None else None
        )
        hooks = hooks or PipelineHooks()
        self._on_event = hooks.on_event
        self._on_drops = hooks.on_drops
        self._is_registered = hooks.is_registered
        self._unit_stderr = bool(unit_stderr)
        from ezmsg.core.unit import Unit

        self._units = tuple(
            sorted(a for a, c in _walk(self._components, self._root) if isinstance(c, Unit))
        )
        self._runner: Any = None
        self._thread: threading.Thread | None = None
        self._thread_error: BaseException | None = None
        self._channel: PipeChannel | LocalChannel | None = None
        self._tap_link: TapLink | None = None  # sampled taps' pipes (unit processes only)
        self._counts = ChannelCounts()
        # Only fatal reports are kept here (start errors name the unit from them); every
        # record goes to the Lab's bounded log store.
        self._fatal: deque[UnitEvent] = deque(maxlen=64)
        self._stop_requested = threading.Event()
        self._starting = False
        self._start_done = threading.Event()
        self._stop_lock = threading.Lock()
        self._stopped = False
        self._final_processes: list[ProcessInfo] | None = None
        self.started_at: float | None = None
        self.stopped_at: float | None = None

    # ------------------------------------------------------------------ public
    @property
    def units(self) -> list[str]:
        """Addresses of the pipeline's units."""
        return list(self._units)

    @property
    def unit_objects(self) -> dict[str, Any]:
        """Live unit objects, by address (in-kernel mode only: unit processes hold copies)."""
        if self.mode != "in-kernel":
            raise PipelineError(
                f"Pipeline {self.name!r} runs its units in separate processes; their live "
                "objects are not in this kernel. Use launch(..., mode='in-kernel') to look "
                "at live unit objects."
            )
        from ezmsg.core.unit import Unit

        return {a: c for a, c in _walk(self._components, self._root) if isinstance(c, Unit)}

    @property
    def running(self) -> bool:
        if self._stopped or self._runner is None:
            return False
        if self.mode == "in-kernel":
            return self._thread is not None and self._thread.is_alive()
        return any(p.alive for p in self.processes)

    @property
    def processes(self) -> list[ProcessInfo]:
        if self._final_processes is not None:
            return list(self._final_processes)
        runner = self._runner
        if runner is None:
            return []
        if self.mode == "in-kernel":
            alive = self._thread is not None and self._thread.is_alive()
            return [ProcessInfo("in-kernel", os.getpid(), alive, None, self._units)]
        try:
            procs = list(runner.processes)
        except ValueError:
            return []
        out = []
        for p in procs:
            try:
                alive = p.pid is not None and p.is_alive()
                exitcode = p.exitcode
            except ValueError:  # released by a concurrent stop
                alive, exitcode = False, None
            out.append(
                ProcessInfo(
                    name=p.name,
                    pid=p.pid,
                    alive=alive,
                    exitcode=exitcode,
                    units=tuple(u.address for u in p.units),
                )
            )
        return out

    @property
    def tap_link(self) -> TapLink | None:
        """The pipes sampled taps use (unit processes of a running pipeline only)."""
        return self._tap_link if self.running else None

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid is not None]

    @property
    def events_received(self) -> int:
        """Records (logs, errors) the Lab received from this pipeline's units."""
        return self._live_counts().received

    @property
    def events_dropped(self) -> int:
        """Records the units produced faster than the Lab read them, and dropped.

        A unit raising thousands of times a second fills the bounded channel to the Lab;
        the excess is dropped (and counted here, and reported in ``lab.logs()``) instead
        of growing memory or slowing the unit down.
        """
        return self._live_counts().dropped

    @property
    def events_corrupt(self) -> int:
        """Records from the units that the Lab could not read (skipped)."""
        return self._live_counts().corrupt

    def _live_counts(self) -> ChannelCounts:
        channel = self._channel
        return channel.counts if channel is not None else self._counts

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the pipeline: ask its units to finish, then terminate what does not.

        Returns within about ``timeout`` seconds; idempotent and safe from any thread,
        also while the pipeline is still starting (the start is then aborted).
        """
        deadline = time.monotonic() + timeout
        self._stop_requested.set()
        if not self._stop_lock.acquire(timeout=max(0.0, timeout)):
            return  # another thread is stopping it within its own bound
        try:
            if self._stopped:
                return
            # A start in progress sees _stop_requested and aborts; wait for it so its
            # runner is not torn down under it.
            if self._starting and not self._start_done.is_set():
                self._start_done.wait(max(0.0, deadline - time.monotonic()))
            if self.mode == "in-kernel":
                self._stop_in_kernel(deadline)
            else:
                self._stop_processes(deadline)
                self._close_lifeline()
            self._stopped = True
            self.stopped_at = time.time()
            self._release(deadline)
        finally:
            self._stop_lock.release()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (
            f"<Pipeline {self.name!r} {state}, {self.mode}, "
            f"{len(self._units)} units, pids={self.pids}>"
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(p.name)}</td><td>{p.pid}</td>"
            f"<td>{'alive' if p.alive else f'exited ({p.exitcode})'}</td>"
            f"<td>{html.escape(', '.join(p.units))}</td></tr>"
            for p in self.processes
        )
        state = "running" if self.running else "stopped"
        return (
            f"<b>Pipeline {html.escape(self.name)}</b> ({state}, {self.mode})"
            "<table><tr><th>process</th><th>pid</th><th>state</th><th>units</th></tr>"
            f"{rows}</table>"
        )

    # ------------------------------------------------------------------ start
    def start(self, timeout: float) -> None:
        """Start the units; raise PipelineStartError within about ``timeout`` seconds.

        A :meth:`stop` from another thread during the start aborts it: the start then
        raises :class:`PipelineError` and leaves nothing running.
        """
        self._starting = True
        try:
            if self._stop_requested.is_set():
                raise self._stopped_during_start()
            if self.mode == "processes":
                requested = self._requested_method
                blocker = None if requested == "fork" else _spawn_blocker(self._components)
                method = choose_start_method(requested, blocker)
                if blocker is not None and method != "fork":
                    raise blocker.error(method)  # instead of ezmsg's endless start barrier
                self.start_method = method
                if method == "forkserver":
                    _prepare_forkserver(_component_modules(self._components))
                self._lifeline = KernelLifeline()
                self._channel = PipeChannel(self.name, self._receive, self._dropped)
                self._tap_link = TapLink(self.name)
            else:
                self._channel = LocalChannel(self.name, self._receive, self._dropped)
            self._channel.start()
            if self.mode == "processes":
                self._start_processes(timeout)
            else:
                self._start_in_kernel(timeout)
            if self._stop_requested.is_set():
                raise self._stopped_during_start()
        except BaseException:
            self._stop_requested.set()
            self._start_done.set()
            if self._stop_lock.acquire(blocking=False):
                # Nobody else is stopping it: release here, as stop() would.
                try:
                    self._stopped = True
                    self.stopped_at = time.time()
                    self._release(time.monotonic() + _FINISH_READING_S)
                finally:
                    self._stop_lock.release()
            self._close_lifeline()
            raise
        self._start_done.set()
        self.started_at = time.time()

    def _stopped_during_start(self) -> PipelineError:
        return PipelineError(
            f"Pipeline {self.name!r} was stopped while it was starting (the Lab was "
            "closed, or stop() was called from another thread); nothing of it is running."
        )

    def _receive(self, event: UnitEvent) -> None:
        if event.kind == "fatal":
            self._fatal.append(event)
        if self._on_event is not None:
            self._on_event(self, event)

    def _dropped(self, count: int) -> None:
        if self._on_drops is not None:
            self._on_drops(self, count)

    def _make_runner(self, **kwargs: Any) -> Any:
        from ezmsg.core.backend import GraphRunner

        backend: Callable[..., LabBackendProcess]
        if isinstance(self._channel, PipeChannel):
            backend = self._process_factory(self._channel)
        else:  # in-kernel: no process is started
            backend = functools.partial(
                LabBackendProcess, events=self._channel, quiet_stderr=not self._unit_stderr
            )
        return GraphRunner(
            components=self._components,
            root_name=self._root,
            connections=self._connections,
            process_components=self._process_components,
            backend_process=backend,
            graph_address=tuple(self.graph_address),
            **kwargs,
        )

    def _process_factory(self, channel: PipeChannel) -> Callable[..., LabBackendProcess]:
        """Makes ezmsg's unit processes, started with this pipeline's start method, each
        with its own pipe to the Lab (see ``_channel``).

        ezmsg creates its start/stop barriers and termination event with multiprocessing's
        global default context; a semaphore made for fork cannot be handed to a forkserver
        or spawn child. So the first call replaces them, on ezmsg's execution context
        (which the runner and every process share), with ones from this pipeline's
        context, and passes those on.
        """
        assert self.start_method is not None and self._lifeline is not None
        ctx = multiprocessing.get_context(self.start_method)
        replaced: list[tuple[Any, Any]] = []  # (ezmsg's, ours)
        lifeline, start_method = self._lifeline.lifeline, self.start_method
        quiet_stderr = not self._unit_stderr

        def make(*args: Any, **kwargs: Any) -> LabBackendProcess:
            if not replaced:
                exe = compat.runner_execution_context(self._runner)
                for attr in ("term_ev", "start_barrier", "stop_barrier"):
                    theirs = getattr(exe, attr)
                    ours = ctx.Event() if attr == "term_ev" else ctx.Barrier(theirs.parties)
                    setattr(exe, attr, ours)
                    replaced.append((theirs, ours))
            swap = {id(theirs): ours for theirs, ours in replaced}
            args = tuple(swap.get(id(a), a) for a in args)
            writer, counter = channel.new_writer()
            link = self._tap_link
            tap_conn = link.new_conn() if link is not None else None

            def started(_p: Any) -> None:
                channel.close_writer_copy(writer)
                if link is not None and tap_conn is not None:
                    link.close_child_copy(tap_conn)

            return LabBackendProcess(
                *args,
                events_conn=writer,
                drop_counter=counter,
                tap_conn=tap_conn,
                on_started=started,
                lifeline=lifeline,
                start_method=start_method,
                quiet_stderr=quiet_stderr,
                **kwargs,
            )

        return make

    def _close_lifeline(self) -> None:
        if self._lifeline is not None:
            self._lifeline.close()

    def _run_in_thread(self, target: Callable[[], None], name: str) -> None:
        def main() -> None:
            try:
                target()
            except BaseException as exc:
                self._thread_error = exc

        self._thread = threading.Thread(target=main, name=name, daemon=True)
        self._thread.start()

    def _start_processes(self, timeout: float) -> None:
        self._runner = self._make_runner()
        self._run_in_thread(self._runner.start, f"ezmsg-lab-start-{self.name}")
        deadline = time.monotonic() + timeout
        failure: str | None = None
        pending: list[str] = []
        try:
            while self._thread is not None and self._thread.is_alive():
                if self._stop_requested.is_set():
                    self._abort_start()
                    raise self._stopped_during_start()
                dead = [p for p in self.processes if p.exitcode is not None]
                if dead:
                    failure = (
                        f"unit process {dead[0].name} (pid {dead[0].pid}) exited with code "
                        f"{dead[0].exitcode} before the pipeline started"
                    )
                    break
                if time.monotonic() > deadline:
                    failure = f"the pipeline did not start within {timeout:g} s"
                    pending = self._pending_units()
                    break
                self._thread.join(_POLL_S)
        except KeyboardInterrupt:
            self._abort_start()
            raise
        if failure is not None:
            self._abort_start()
            self._raise_start_error(failure, pending)
        if self._thread_error is not None:
            self._abort_start()
            self._raise_start_error(f"{type(self._thread_error).__name__}: {self._thread_error}")

    def _start_in_kernel(self, timeout: float) -> None:
        self._runner = self._make_runner(force_single_process=True)
        self._run_in_thread(self._runner.run_blocking, f"ezmsg-lab-inkernel-{self.name}")
        deadline = time.monotonic() + timeout
        units = self.units
        try:
            while True:
                if self._stop_requested.is_set():
                    self._abort_start()
                    raise self._stopped_during_start()
                if self._thread is not None and not self._thread.is_alive():
                    self._raise_start_error(
                        f"{type(self._thread_error).__name__}: {self._thread_error}"
                        if self._thread_error is not None
                        else "the in-kernel pipeline ended before it started"
                    )
                if self._is_registered is None or self._is_registered(units):
                    return
                if time.monotonic() > deadline:
                    pending = self._pending_units()
                    self._abort_start()
                    self._raise_start_error(
                        f"the pipeline did not start within {timeout:g} s", pending
                    )
                time.sleep(_POLL_S)
        except KeyboardInterrupt:
            self._abort_start()
            raise

    def _barriers(self) -> list[Any]:
        return compat.runner_barriers(self._runner)

    def _term_event(self) -> Any:
        return compat.runner_term_event(self._runner)

    def _abort_start(self) -> None:
        """Unblock ezmsg's barriers so every process and the runner can unwind.

        The runner may still be setting up (its barriers do not exist yet, its processes
        are about to start): keep aborting until its start returns, within a bound.
        """
        deadline = time.monotonic() + _UNWIND_S
        while True:
            term = self._term_event()
            if term is not None:
                term.set()
            for barrier in self._barriers():
                with contextlib.suppress(Exception):
                    barrier.abort()
            if self._thread is None or not self._thread.is_alive():
                break
            if time.monotonic() > deadline:
                break
            self._thread.join(_POLL_S)
        self._terminate_processes()
        if self._thread is not None and self._thread.is_alive():
            self._stop_runner_loop()

    def _pending_units(self) -> list[str]:
        """Units not yet registered with the GraphServer (call before aborting)."""
        if self._is_registered is None:
            return []
        return [u for u in self.units if not self._is_registered([u])]

    def _raise_start_error(self, failure: str, pending: list[str] | None = None) -> None:
        fatal = self._wait_for_fatal(1.0 if self.mode == "processes" and not pending else 0.1)
        unit = fatal.unit if fatal else None
        tb = fatal.traceback if fatal else None
        cause = fatal.message if fatal else failure
        exc = self._thread_error
        if fatal is None and exc is not None and type(exc).__name__ != "GraphRunnerStartError":
            tb = "".join(traceback.format_exception(exc))
            unit = _unit_of_traceback(exc.__traceback__, _crawl(self._components))
            if compat.is_address_collision(exc):
                cause = (
                    f"{exc}. A pipeline with these unit addresses is already running on "
                    "this GraphServer: stop it, or launch with another name="
                )
        if fatal is None and unit is None and pending and len(pending) < len(self.units):
            unit = pending[0]
            cause = (
                f"{', '.join(pending)} did not finish initialize() ({failure}); "
                "check for a blocking call there, or pass a larger start_timeout="
            )
        where = f"unit {unit}" if unit else f"pipeline {self.name!r}"
        raise PipelineStartError(
            f"Could not start {where}: {cause}"
            + (f" ({failure})" if fatal and failure != cause else "")
            + ". The pipeline was stopped; fix the cause and launch it again."
            + (f"\n\nUnit traceback:\n{tb}" if tb else ""),
            unit=unit,
            cause=cause,
            traceback=tb,
        )

    def _wait_for_fatal(self, timeout: float) -> UnitEvent | None:
        """The first fatal report from a unit process, skipping the other processes'
        secondary BrokenBarrierErrors."""
        deadline = time.monotonic() + timeout
        while True:
            fatal = list(self._fatal)
            primary = [ev for ev in fatal if "BrokenBarrierError" not in ev.message]
            if primary:
                return primary[0]
            channel = self._channel
            if time.monotonic() > deadline or channel is None or not channel.reading:
                return None
            time.sleep(_POLL_S)

    # ------------------------------------------------------------------ stop
    def _terminate_processes(self, grace: float = _TERMINATE_S) -> None:
        """SIGTERM the unit processes; SIGKILL what is still alive ``grace`` s later."""
        if self.mode != "processes" or self._runner is None:
            return
        try:
            procs = list(self._runner.processes)
        except ValueError:
            return
        started = [p for p in procs if p.pid is not None]
        for p in started:
            if p.is_alive():
                p.terminate()
        deadline = time.monotonic() + grace
        for p in started:
            p.join(max(0.0, deadline - time.monotonic()))
        killed = []
        for p in started:
            if p.is_alive():
                logger.warning("killing unit process %s (pid %s)", p.name, p.pid)
                p.kill()
                killed.append(p)
        deadline = time.monotonic() + _KILL_WAIT_S
        for p in killed:
            p.join(max(0.0, deadline - time.monotonic()))

    def _stop_runner_loop(self) -> None:
        # The runner's own GraphContext cleanup can wait forever on a dead server; its
        # loop thread is not a daemon and would then block interpreter exit.
        loop = compat.runner_loop(self._runner)
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)

    def _stop_processes(self, deadline: float) -> None:
        runner = self._runner
        if runner is None:
            return
        # The last part of the time goes to SIGTERM, then SIGKILL: 2 s of a 10 s stop,
        # but 0.6 s of a kernel shutdown's 1.5 s (Jupyter SIGTERMs the kernel 2.5 s after
        # asking it to shut down, see cleanup.py), so that a unit stuck in ezmsg's own
        # teardown is still killed by us, not orphaned with the kernel.
        grace = min(_TERMINATE_S, _TERMINATE_SHARE * max(0.0, deadline - time.monotonic()))
        if runner.running:
            self._run_in_thread(runner.stop, f"ezmsg-lab-stop-{self.name}")
            assert self._thread is not None
            self._thread.join(max(0.0, deadline - time.monotonic() - grace))
        if self._thread is not None and self._thread.is_alive():
            self._terminate_processes(grace)
            self._thread.join(max(_MIN_JOIN_S, min(1.0, deadline - time.monotonic())))
        else:
            self._terminate_processes(grace)  # reaps anything already gone; no-op otherwise
        if self._thread is not None and self._thread.is_alive():
            self._stop_runner_loop()
            self._thread.join(max(_MIN_JOIN_S, min(1.0, deadline - time.monotonic())))

    def _stop_in_kernel(self, deadline: float) -> None:
        term = self._term_event()
        if term is not None:
            term.set()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
            if self._thread.is_alive():
                for barrier in self._barriers():
                    with contextlib.suppress(Exception):
                        barrier.abort()
                self._stop_runner_loop()
                self._thread.join(1.0)
            if self._thread.is_alive():
                logger.warning(
                    "in-kernel pipeline %r did not stop; a unit's task ignores cancellation",
                    self.name,
                )

    def _release(self, deadline: float) -> None:
        """Keep a summary; let go of the channel, the process handles and the runner.

        Each launch used to keep about ten file descriptors (the event queue's pipe, two
        per unit process for its sentinel) and the runner with its barriers for as long as
        the Lab lived; a notebook then ran out of descriptors after about 100 launches.
        """
        self._final_processes = self.processes
        link, self._tap_link = self._tap_link, None
        if link is not None:
            link.close()
        channel = self._channel
        if channel is not None:
            channel.finish(min(_FINISH_READING_S, max(0.1, deadline - time.monotonic())))
            self._counts = channel.counts
            self._channel = None
        self._fatal.clear()
        runner, self._runner = self._runner, None
        if runner is not None and self.mode == "processes":
            with contextlib.suppress(ValueError):
                for proc in runner.processes:
                    # Process.close() frees the sentinel pipes; it refuses (ValueError)
                    # a process that is still running, which then keeps them.
                    with contextlib.suppress(ValueError, AttributeError):
                        if proc.pid is not None:
                            proc.close()
            # The unit objects are copies of what runs in the processes; in-kernel ones
            # are the user's live objects and stay reachable through unit_objects.
            self._components = {}
        if self._thread is not None and not self._thread.is_alive():
            self._thread = None
