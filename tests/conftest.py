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


# ---------------------------------------------------------------- the reliability table
# `python -m tests.reliability` (make reliability) sets this to a file; each test's
# outcome and the figures it recorded are appended to it, one JSON object a line.
RELIABILITY_JSON = "EZMSG_LAB_RELIABILITY_JSON"


@pytest.fixture
def figures(request):
    """``figures(what=..., tried=..., **more)``: numbers for the reliability table (what
    was tried, how many times, peak memory, anything lost). Kept with the test's outcome,
    so a figure from a failed test is shown as not held."""

    def record(**values: object) -> None:
        request.node.user_properties.append(("figures", values))

    return record


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = os.environ.get(RELIABILITY_JSON)
    if not path or not (report.when == "call" or report.failed):
        return
    import json

    line = {
        "test": report.nodeid,
        "outcome": report.outcome,
        "seconds": round(report.duration, 2),
        "figures": [v for k, v in report.user_properties if k == "figures"],
    }
    with open(path, "a") as f:
        f.write(json.dumps(line, default=str) + "\n")
