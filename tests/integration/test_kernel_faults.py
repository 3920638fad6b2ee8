"""A real Jupyter kernel running a Lab with pipelines, killed (SIGKILL) or restarted the
way JupyterLab restarts it (jupyter_client's ``restart_kernel``): no unit process and no
listening port remain. (A kernel shutdown: test_close_races.py.)"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import psutil
import pytest

from ..conftest import port_is_listening, wait_until
from .test_close_races import ROOT, kernel_cell
from .test_faults import _alive
from .test_start_methods import ORPHAN_DEADLINE_S

pytestmark = pytest.mark.integration


# SIGKILL is also covered by test_start_methods.py::test_real_kernel_defaults_and_kill
# (every process the kernel started goes); here with the port checked too, in the
# reliability run only (each real kernel costs about 30 s of `make test`).
FULL = os.environ.get("EZMSG_LAB_RELIABILITY_JSON") is not None


@pytest.mark.parametrize(
    "how",
    [
        pytest.param("sigkill", marks=pytest.mark.skipif(not FULL, reason="make reliability")),
        "restart",
    ],
)
def test_kernel_killed_or_restarted_leaves_no_unit_and_no_port(how, tmp_path, figures):
    jupyter_client = pytest.importorskip("jupyter_client")
    km = jupyter_client.KernelManager(kernel_name="python3")
    km.start_kernel(cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    kc = km.client()
    kc.start_channels()
    pids: list[int] = []
    try:
        kc.wait_for_ready(timeout=60)
        lines: list[str] = []
        reply = kc.execute_interactive(
            kernel_cell(str(tmp_path / "closed")),
            timeout=120,
            output_hook=lambda msg: lines.append(msg["content"].get("text", "")),
        )
        assert reply["content"]["status"] == "ok", reply["content"]
        port, *pids = map(int, "".join(lines).split("PIDS", 1)[1].split())
        assert len(pids) == 12 and port_is_listening(port)
        kernel_pid = km.provisioner.process.pid
        t0 = time.monotonic()
        if how == "sigkill":
            os.kill(kernel_pid, signal.SIGKILL)
        else:
            km.restart_kernel(now=False)  # what JupyterLab's "Restart kernel" calls
            kc.wait_for_ready(timeout=60)
            assert km.provisioner.process.pid != kernel_pid
        gone = wait_until(lambda: not any(_alive(p) for p in pids), ORPHAN_DEADLINE_S)
        elapsed = time.monotonic() - t0
        assert gone, [p for p in pids if _alive(p)]
        assert wait_until(lambda: not port_is_listening(port), 10)
        if how == "restart":
            # The Lab closed itself (not killed with the kernel), and the new kernel runs.
            started = tmp_path / "closed.started"
            assert (tmp_path / "closed").exists(), (
                "the Lab did not close before the kernel went: "
                + (started.read_text() if started.exists() else "its close never started")
                + f" (restart took {elapsed:.1f} s)"
            )
            assert kc.execute_interactive("1 + 1", timeout=30)["content"]["status"] == "ok"
    finally:
        kc.stop_channels()
        with contextlib.suppress(Exception):
            km.shutdown_kernel(now=True)
        for pid in pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).kill()
    figures(
        what=f"kernel {how} with 3 pipelines", tried=1, units=len(pids), gone_s=round(elapsed, 2)
    )
