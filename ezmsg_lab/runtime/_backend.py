"""Unit-process side of a pipeline the Lab launched.

:class:`LabBackendProcess` is ezmsg's own ``DefaultBackendProcess`` with three additions,
none of which changes how units run:

- log records and uncaught task exceptions are forwarded to the Lab through a bounded
  channel (see ``_channel``), so a notebook sees what a unit process prints to its
  stderr;
- an exception that kills the process (a unit raising in ``initialize``) is reported with
  the address of the unit that raised it, so start failures can name the unit;
- an orphan watchdog ends the process when the kernel that launched it dies, instead of
  leaving it stuck on a GraphServer that no longer exists.

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
from types import TracebackType
from typing import Any

from ezmsg.core.backendprocess import DefaultBackendProcess

from ._channel import EventSender

# Seconds between checks that the launching process is still alive, and how long a unit
# process may take to stop cleanly after its parent died before it exits hard.
_ORPHAN_POLL_S = 0.5
_ORPHAN_GRACE_S = 5.0


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
        self._prefixes = sorted((u.address for u in units), key=len, reverse=True)

    def _unit_for(self, message: str) -> str | None:
        for address in self._prefixes:
            if address in message:
                return address
        return None

    def emit(self, record: logging.LogRecord) -> None:
        # The handler sits on both the root and the "ezmsg" logger (ezmsg's logger may not
        # propagate); a record that reaches both is sent once.
        if getattr(record, "_ezmsg_lab_sent", False):
            return
        record._ezmsg_lab_sent = True
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


class LabBackendProcess(DefaultBackendProcess):
    """ezmsg's default backend process, reporting to the Lab (see module docstring)."""

    def __init__(
        self,
        *args: Any,
        events: Any = None,
        events_conn: Any = None,
        drop_counter: Any = None,
        on_started: Any = None,
        parent_pid: int | None = None,
        quiet_stderr: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        # In-kernel: ``events`` is the Lab's LocalChannel. Unit process: ``events_conn`` is
        # the write end of this process's pipe, wrapped in an EventSender once running.
        self._lab_events = events
        self._lab_events_conn = events_conn
        self._lab_drop_counter = drop_counter
        self._lab_on_started = on_started
        self._lab_parent_pid = parent_pid
        self._lab_quiet_stderr = quiet_stderr

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
        if self._lab_parent_pid is not None:
            threading.Thread(
                target=self._orphan_watchdog, name="ezmsg-lab-orphan-watchdog", daemon=True
            ).start()
        try:
            super().run()
        except BaseException as exc:
            self._report_fatal(exc)
            raise
        finally:
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
        while not self.term_ev.is_set():
            if os.getppid() != self._lab_parent_pid:
                self.term_ev.set()
                time.sleep(_ORPHAN_GRACE_S)
                os._exit(1)
            time.sleep(_ORPHAN_POLL_S)

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
