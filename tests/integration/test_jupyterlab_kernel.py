"""A Lab with three pipelines in a kernel that a running JupyterLab restarts, then shuts
down (its REST API: what the Kernel menu's "Restart Kernel" and "Shut Down Kernel" send):
each time the Lab closes itself, and no unit process and no listening port remain."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from ..browser._servers import jupyterlab
from ..conftest import port_is_listening, wait_until
from .test_close_races import kernel_cell
from .test_faults import _alive
from .test_start_methods import ORPHAN_DEADLINE_S

pytestmark = [pytest.mark.integration, pytest.mark.heavy]


def _call(url: str, method: str) -> dict:
    req = urllib.request.Request(url, data=b"{}" if method == "POST" else None, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as resp:
        body = resp.read()
    return json.loads(body) if body else {}


def _start_lab(client, mark: Path) -> tuple[int, list[int]]:
    lines: list[str] = []
    reply = client.execute_interactive(
        kernel_cell(str(mark)),
        timeout=180,
        output_hook=lambda msg: lines.append(msg["content"].get("text", "")),
    )
    assert reply["content"]["status"] == "ok", reply["content"]
    port, *pids = map(int, "".join(lines).split("PIDS", 1)[1].split())
    assert len(pids) == 12 and port_is_listening(port)
    return port, pids


def _nothing_left(port: int, pids: list[int]) -> float:
    t0 = time.monotonic()
    assert wait_until(lambda: not any(_alive(p) for p in pids), ORPHAN_DEADLINE_S), [
        p for p in pids if _alive(p)
    ]
    assert wait_until(lambda: not port_is_listening(port), 10)
    return time.monotonic() - t0


def test_jupyterlab_restart_then_shutdown_leaves_nothing_running(tmp_path, figures):
    from jupyter_client import BlockingKernelClient

    pids: list[int] = []
    with jupyterlab(tmp_path) as base:
        kernel = _call(f"{base}/api/kernels", "POST")
        client = BlockingKernelClient(
            connection_file=str(tmp_path / ".runtime" / f"kernel-{kernel['id']}.json")
        )
        client.load_connection_file()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=60)
            port, pids = _start_lab(client, tmp_path / "closed-1")
            _call(f"{base}/api/kernels/{kernel['id']}/restart", "POST")
            restart_s = _nothing_left(port, pids)
            assert (tmp_path / "closed-1").exists()  # the Lab closed itself

            client.wait_for_ready(timeout=60)  # the same kernel id, a new process
            port, pids = _start_lab(client, tmp_path / "closed-2")
            _call(f"{base}/api/kernels/{kernel['id']}", "DELETE")
            shutdown_s = _nothing_left(port, pids)
            assert (tmp_path / "closed-2").exists()
        finally:
            client.stop_channels()
            for pid in pids:
                with contextlib.suppress(psutil.NoSuchProcess):
                    psutil.Process(pid).kill()
    figures(
        what="JupyterLab restart, then shutdown, of a kernel with 3 pipelines",
        tried=2,
        units=len(pids),
        restart_gone_s=round(restart_s, 2),
        shutdown_gone_s=round(shutdown_s, 2),
    )
