"""Close every open Lab at interpreter exit (kernel shutdown or restart).

The hook runs from ``threading._register_atexit``: before Python joins non-daemon threads.
ezmsg's GraphRunner runs its loop in a non-daemon thread, so a plain ``atexit`` hook would
run too late: the interpreter would already be waiting on that thread forever.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from typing import Any

logger = logging.getLogger(__name__)

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


def _close_all() -> None:
    if os.getpid() != _owner_pid:
        return
    with _lock:
        labs = list(_open.values())
    for lab in labs:
        try:
            lab.close(timeout=5.0)
        except Exception:
            logger.exception("closing a Lab at exit failed")


def register(lab: Any) -> None:
    global _hooked
    with _lock:
        _open[id(lab)] = lab
        if _hooked:
            return
        _hooked = True
    try:
        threading._register_atexit(_close_all)  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):
        atexit.register(_close_all)
    # Also as a plain atexit hook: a no-op when the first one already closed everything.
    atexit.register(_close_all)


def unregister(lab: Any) -> None:
    with _lock:
        _open.pop(id(lab), None)


def open_labs() -> list[Any]:
    with _lock:
        return list(_open.values())
