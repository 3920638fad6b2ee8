"""Unit-process side of a pipeline the Lab launched.

:class:`LabBackendProcess` is ezmsg's own ``DefaultBackendProcess`` with three additions,
none of which changes how units run:

- log records and uncaught task exceptions are forwarded to the Lab through a bounded
  channel (see ``_channel``), so a notebook sees what a unit process prints to its
  stderr;
- an exception that kills the process (a unit raising in ``initialize``) is reported with
  the address of the unit that raised it, so start failures can name the unit;
- an orphan watchdog ends the process when the kernel that launched it dies, instead of
  leaving it stuck on a GraphServer that no longer exists (a :class:`Lifeline`: it works
  under every start method, where the process's parent may be a fork server);
- it starts with the start method the Lab chose for its pipeline, whatever
  multiprocessing's global default is;
- a tap agent samples the publishers the Lab taps, over the pipeline's tap pipe
  (``_tap_agent``), so a tapped topic keeps ezmsg's local path.

This module is imported in unit processes (also under the spawn start method): keep it
free of heavy imports.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import os
import threading
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection, Pipe
from types import TracebackType
from typing import Any

from ezmsg.core.backendprocess import DefaultBackendProcess

from . import compat
from ._channel import EventSender
from ._tap_agent import TapAgent

# Seconds between checks that the launching process is still alive, and how long a unit
# process may take to stop cleanly after its parent died before it exits hard.
_ORPHAN_POLL_S = 0.5
_ORPHAN_GRACE_S = 5.0


# Write ends of the lifelines this process holds. A unit process forked from here inherits
# copies and closes them first thing: a write end open in the child itself would hide the
# kernel's death from it, and from every sibling it outlives.
_HELD_WRITERS: set[Connection] = set()


def _proc_start_time(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot, from /proc); None if it is not alive.

    Also None where there is no /proc (macOS). A zombie counts as dead: it has exited and
    only waits for its parent to reap it.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = stat[stat.rfind(b")") + 2 :].split()
    if len(fields) < 20 or fields[0] in (b"Z", b"X"):
        return None
    return fields[19].decode()  # field 22 of proc(5): starttime


@dataclass
class Lifeline:
    """What a unit process watches to know that the kernel that launched it is alive.

    The kernel keeps the write end of a pipe and never writes to it; unit processes get
    the read end (multiprocessing hands it over under fork, forkserver and spawn alike).
    However the kernel dies, the OS closes its end and the read end turns readable (end
    of file) at once. Where /proc exists, the kernel's pid and start time are checked as
    well, which no reused pid can fake: that covers a write end leaked into some other
    process the kernel forked (a user's own ``multiprocessing.Pool`` under fork).
    The parent pid is no such sign: under forkserver it is the fork server's.
    """

    reader: Connection
    pid: int
    start_time: str | None

    def kernel_alive(self, wait: float) -> bool:
        """False once the kernel is gone; waits up to ``wait`` seconds for that news."""
        try:
            if self.reader.poll(wait):
                return False  # end of file: nobody holds the write end any more
        except (OSError, EOFError):
            return False
        if self.start_time is not None:
            return _proc_start_time(self.pid) == self.start_time
        return True


class KernelLifeline:
    """The kernel's side of a :class:`Lifeline`: hold it while the pipeline runs."""

    def __init__(self) -> None:
        reader, writer = Pipe(duplex=False)
        self._writer: Connection | None = writer
        _HELD_WRITERS.add(writer)
        pid = os.getpid()
        self.lifeline = Lifeline(reader, pid, _proc_start_time(pid))

    def close(self) -> None:
        """Tell the unit processes the kernel is gone (call once they were stopped)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            _HELD_WRITERS.discard(writer)
            writer.close()
        self.lifeline.reader.close()


def _close_inherited_writers() -> None:
    # In a forked unit process: the kernel's write ends are copies it must not hold.
    for writer in list(_HELD_WRITERS):
        with contextlib.suppress(OSError):
            writer.close()
    _HELD_WRITERS.clear()


@dataclass
class UnitEvent:
    """One record sent from a unit process to the Lab."""

    kind: str  # "log", "error" (a task raised; the unit keeps running) or "fatal"
    time: float  # time.time() in the unit process
    pid: int
    unit: str | None
    level: str
    logger: str
    message: str
    traceback: str | None = None


def _unit_of_traceback(tb: TracebackType | None, units: list[Any]) -> str | None:
    """The address of the innermost unit whose method is on the traceback."""
    found: str | None = None
    ids = {id(u): u for u in units}
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if owner is not None and id(owner) in ids:
            found = ids[id(owner)].address
        tb = tb.tb_next
    return found


def _put(channel: Any, event: UnitEvent) -> None:
    if channel is None:
        return
    # A full or closed channel must never break a unit.
    with contextlib.suppress(Exception):
        channel.put(event)


class _ForwardingHandler(logging.Handler):
    """Sends log records to the Lab. Task tracebacks are sent by the task wrapper."""

    def __init__(self, channel: Any, units: list[Any]) -> None:
        super().__init__(logging.INFO)
        self._channel = channel
        self._prefixes: list[str] = sorted((u.address for u in units), key=len, reverse=True)

    def _unit_for(self, message: str) -> str | None:
        for address in self._prefixes:
            if address in message:
                return address
        return None

    def emit(self, record: logging.LogRecord) -> None:
        # The handler sits on both the root and the "ezmsg" logger (ezmsg's logger may not
        # propagate); a record that reaches both is sent once.
        if getattr(record, "ezmsg_lab_sent", False):
            return
        record.ezmsg_lab_sent = True
        try:
            message = record.getMessage()
            # ezmsg logs a task exception as two records; the task wrapper already sent
            # it with its traceback, so drop ezmsg's copies.
            if record.name == "ezmsg" and (
                message.startswith("Exception in Task:") or message.startswith("Traceback")
            ):
                return
            tb = None
            if record.exc_info and record.exc_info[1] is not None:
                tb = "".join(traceback.format_exception(*record.exc_info))
            _put(
                self._channel,
                UnitEvent(
                    kind="log",
                    time=record.created,
                    pid=os.getpid(),
                    unit=self._unit_for(message),
                    level=record.levelname,
                    logger=record.name,
                    message=message,
                    traceback=tb,
                ),
            )
        except Exception:
            self.handleError(record)


class LabBackendProcess(DefaultBackendProcess):  # type: ignore[misc]  # ezmsg is untyped (Any)
    """ezmsg's default backend process, reporting to the Lab (see module docstring)."""

    def __init__(
        self,
        *args: Any,
        events: Any = None,
        events_conn: Any = None,
        drop_counter: Any = None,
        on_started: Any = None,
        lifeline: Lifeline | None = None,
        start_method: str | None = None,
        quiet_stderr: bool = True,
        tap_conn: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._lab_tap_conn = tap_conn  # this process's end of its pipeline's TapLink
        # In-kernel: ``events`` is the Lab's LocalChannel. Unit process: ``events_conn`` is
        # the write end of this process's pipe, wrapped in an EventSender once running.
        self._lab_events = events
        self._lab_events_conn = events_conn
        self._lab_drop_counter = drop_counter
        self._lab_on_started = on_started
        self._lab_lifeline = lifeline
        self._lab_quiet_stderr = quiet_stderr
        # multiprocessing reads this in the child too: the unit process's own default
        # context is then the one it was started with.
        self._start_method = start_method

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        # multiprocessing's hook (BaseProcess.start calls it): start with our context.
        return compat.popen_with_own_start_method(process_obj)

    def start(self) -> None:
        """Start the unit process, then let the Lab close its copy of the pipe's write end."""
        # The callback holds Lab-side objects: keep it out of what spawn pickles.
        on_started, self._lab_on_started = self._lab_on_started, None
        try:
            super().start()
        finally:
            if on_started is not None:
                on_started(self)

    # -- process entry point (unit processes only; in-kernel pipelines call process())
    def run(self) -> None:
        _close_inherited_writers()
        compat.guard_publisher_leases()  # before this process creates any publisher
        if self._lab_events_conn is not None:
            self._lab_events = EventSender(self._lab_events_conn, self._lab_drop_counter)
        handler = _ForwardingHandler(self._lab_events, self.units)
        if self._lab_quiet_stderr:
            # ezmsg logs a task's traceback on every failing message; forked from a
            # kernel, that stderr lands in notebook cells as a flood. The records go to
            # the Lab instead (lab.logs()), which says once per burst that a unit raises.
            ez_logger = logging.getLogger("ezmsg")
            for h in list(ez_logger.handlers):
                if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                    ez_logger.removeHandler(h)
            ez_logger.propagate = False
        for name in ("", "ezmsg"):
            logging.getLogger(name).addHandler(handler)
        agent = None
        if self._lab_tap_conn is not None:
            agent = TapAgent(self._lab_tap_conn, lambda: list(getattr(self, "pubs", {}).values()))
            agent.start()
        if self._lab_lifeline is not None:
            threading.Thread(
                target=self._orphan_watchdog, name="ezmsg-lab-orphan-watchdog", daemon=True
            ).start()
        try:
            super().run()
        except BaseException as exc:
            self._report_fatal(exc)
            raise
        finally:
            if agent is not None:
                agent.close()
            for name in ("", "ezmsg"):
                logging.getLogger(name).removeHandler(handler)
            if isinstance(self._lab_events, EventSender):
                # Bounded: a Lab that does not read cannot hold up this process's exit.
                self._lab_events.close()

    def _report_fatal(self, exc: BaseException) -> None:
        _put(
            self._lab_events,
            UnitEvent(
                kind="fatal",
                time=time.time(),
                pid=os.getpid(),
                unit=_unit_of_traceback(exc.__traceback__, self.units),
                level="CRITICAL",
                logger="ezmsg_lab",
                message=f"{type(exc).__name__}: {exc}",
                traceback="".join(traceback.format_exception(exc)),
            ),
        )

    def _orphan_watchdog(self) -> None:
        lifeline = self._lab_lifeline
        assert lifeline is not None
        while not self.term_ev.is_set():
            if not lifeline.kernel_alive(_ORPHAN_POLL_S):
                self.term_ev.set()
                time.sleep(_ORPHAN_GRACE_S)
                os._exit(1)

    # -- task exceptions: report, then let ezmsg handle them exactly as before
    def task_wrapper(self, unit: Any, task: Any) -> Any:
        events = self._lab_events
        address = unit.address
        task_name = getattr(task, "__name__", "task")

        def report(exc: BaseException) -> None:
            _put(
                events,
                UnitEvent(
                    kind="error",
                    time=time.time(),
                    pid=os.getpid(),
                    unit=address,
                    level="ERROR",
                    logger="ezmsg",
                    message=f"{address}:{task_name} raised {type(exc).__name__}: {exc}",
                    traceback="".join(traceback.format_exception(exc)),
                ),
            )

        @functools.wraps(task)
        def reporting(*args: Any) -> Any:
            try:
                result = task(*args)
            except _PASS_THROUGH:
                raise
            except Exception as exc:
                report(exc)
                raise
            if inspect.isasyncgen(result):
                return _report_agen(result, report)
            if asyncio.iscoroutine(result):
                return _report_coro(result, report)
            return result

        return super().task_wrapper(unit, reporting)


def _pass_through() -> tuple[type[BaseException], ...]:
    from ezmsg.core.backendprocess import Complete, NormalTermination

    return (Complete, NormalTermination, asyncio.CancelledError)


_PASS_THROUGH = _pass_through()


async def _report_coro(coro: Any, report: Any) -> Any:
    try:
        return await coro
    except _PASS_THROUGH:
        raise
    except Exception as exc:
        report(exc)
        raise


async def _report_agen(agen: Any, report: Any) -> Any:
    try:
        async for item in agen:
            yield item
    except _PASS_THROUGH:
        raise
    except Exception as exc:
        report(exc)
        raise
