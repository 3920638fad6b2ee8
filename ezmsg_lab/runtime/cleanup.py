"""Close every open Lab at interpreter exit (kernel shutdown or restart).

The hook runs from ``threading._register_atexit``: before Python joins non-daemon threads.
ezmsg's GraphRunner runs its loop in a non-daemon thread, so a plain ``atexit`` hook would
run too late: the interpreter would already be waiting on that thread forever.

In a Jupyter kernel the Labs close earlier still, when the kernel is asked to shut down:
ipykernel first sends SIGTERM to every child process and only then lets the interpreter
exit, so the unit processes would be killed under a Lab that never got to stop them.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from . import compat

logger = logging.getLogger(__name__)

# How long each Lab's close may take at interpreter exit, and when a Jupyter kernel is
# asked to shut down. jupyter_client SIGTERMs a kernel that has not exited half its
# ``shutdown_wait_time`` (5 s by default) after the request; ipykernel then still has its
# own shutdown and the interpreter's exit to do, so the Lab's close must fit in about 2 s.
EXIT_CLOSE_S = 5.0
KERNEL_SHUTDOWN_CLOSE_S = 2.0

_open: dict[int, Any] = {}
_lock = threading.Lock()
_hooked = False
_owner_pid = os.getpid()


def _forget_in_child() -> None:
    # A forked unit process inherits this registry (and the hooks below, which
    # multiprocessing runs when the child exits): the Labs belong to the parent. Closing
    # them from a child would stop the parent's in-kernel pipelines through their shared
    # multiprocessing events.
    global _owner_pid
    _open.clear()
    _owner_pid = os.getpid()


os.register_at_fork(after_in_child=_forget_in_child)


def _close_all(timeout: float = EXIT_CLOSE_S) -> None:
    if os.getpid() != _owner_pid:
        return
    with _lock:
        labs = list(_open.values())
    for lab in labs:
        try:
            lab.close(timeout=timeout)
        except Exception:
            logger.exception("closing a Lab at exit failed")


def register(lab: Any) -> None:
    global _hooked
    with _lock:
        _open[id(lab)] = lab
        if _hooked:
            return
        _hooked = True
    if not compat.register_atexit_before_threads_join(_close_all):
        atexit.register(_close_all)
    # Also as a plain atexit hook: a no-op when the first one already closed everything.
    atexit.register(_close_all)
    _hook_kernel_shutdown()


def _hook_kernel_shutdown() -> None:
    """In a Jupyter kernel: close the Labs when the kernel is asked to shut down, before
    ipykernel signals its child processes (the unit processes among them)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    kernel: Any = getattr(get_ipython(), "kernel", None)  # an ipykernel Kernel, or None
    original: Callable[[bool], Any] | None = getattr(kernel, "do_shutdown", None)
    if original is None or getattr(original, "ezmsg_lab_hook", False):
        return

    def do_shutdown(restart: bool) -> Any:
        try:
            _close_all(KERNEL_SHUTDOWN_CLOSE_S)
            _stop_multiprocessing_helpers()
        finally:
            result = original(restart)
        return result

    do_shutdown.ezmsg_lab_hook = True  # type: ignore[attr-defined]
    kernel.do_shutdown = do_shutdown


def unregister(lab: Any) -> None:
    with _lock:
        _open.pop(id(lab), None)


def _stop_multiprocessing_helpers() -> None:
    """Stop Python's resource tracker and fork server, as the kernel is about to exit.

    The tracker (started by the first shared-memory segment: ezmsg's GraphServer makes
    them) ignores SIGTERM, so ipykernel's sweep of its children would wait for it until
    Jupyter kills the kernel itself. Both exit on their own when their pipe closes, which is
    what ``_stop()`` does (and what the kernel's exit would do a moment later); the tracker
    still unlinks any segment left behind. CPython-private, hence best effort.
    """
    import multiprocessing.forkserver as forkserver
    import multiprocessing.resource_tracker as resource_tracker

    for helper in (
        getattr(resource_tracker, "_resource_tracker", None),
        getattr(forkserver, "_forkserver", None),
    ):
        stop = getattr(helper, "_stop", None)
        if stop is None:
            continue
        try:
            stop()
        except Exception:
            logger.debug("stopping %r failed", helper, exc_info=True)
