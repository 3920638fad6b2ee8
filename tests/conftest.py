"""Shared fixtures: process and port accounting for "nothing left running" checks."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import psutil
import pytest


def _is_multiprocessing_helper(proc: psutil.Process) -> bool:
    # Per-interpreter singletons of Python's multiprocessing, which exit with the
    # interpreter: the resource tracker (started by the first shared-memory segment;
    # ezmsg's GraphServer makes them) and the fork server (started by the first forkserver
    # launch, Python 3.14's default). Unit processes it forked are still counted.
    try:
        cmdline = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return False
    return "resource_tracker" in cmdline or "multiprocessing.forkserver" in cmdline


def live_children(pid: int | None = None) -> list[psutil.Process]:
    """Descendant processes that are alive (not zombies), multiprocessing's helpers excluded."""
    out = []
    try:
        children = psutil.Process(pid or os.getpid()).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    for child in children:
        try:
            if child.status() == psutil.STATUS_ZOMBIE or _is_multiprocessing_helper(child):
                continue
        except psutil.NoSuchProcess:
            continue
        out.append(child)
    return out


def listening_ports(pid: int | None = None) -> set[int]:
    """TCP ports in LISTEN state owned by ``pid`` (default: this process)."""
    proc = psutil.Process(pid or os.getpid())
    return {
        c.laddr.port for c in proc.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN
    }


def port_is_listening(port: int) -> bool:
    return any(
        c.status == psutil.CONN_LISTEN and c.laddr.port == port
        for c in psutil.net_connections(kind="tcp")
    )


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


@pytest.fixture
def lab():
    from ezmsg_lab import Lab

    lab = Lab()
    try:
        yield lab
    finally:
        lab.close()
