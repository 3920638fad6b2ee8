"""close() racing launch(), and closing at kernel shutdown with pipelines running."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest

from ezmsg_lab import Lab, LabClosedError
from ezmsg_lab.demo import DemoPipeline

from ..conftest import live_children, port_is_listening, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.interpreter]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("delay_s", [0.0, 0.02, 0.05, 0.1, 0.2, 0.4])
def test_close_racing_launch_leaves_nothing_running(delay_s):
    """Before: a close() while another thread was inside launch() missed that pipeline,
    whose unit processes kept running after the Lab and its server were gone."""
    lab = Lab()
    port = lab.address.port
    result: dict[str, object] = {}

    def launch() -> None:
        try:
            result["pipeline"] = lab.launch(DemoPipeline(), name="DEMO")
        except Exception as exc:
            result["error"] = exc

    thread = threading.Thread(target=launch)
    thread.start()
    # The delay only places close() at different points of the launch (not a wait).
    time.sleep(delay_s)
    lab.close()
    thread.join(30)
    assert not thread.is_alive(), "launch() did not return after close()"
    if "error" in result:
        assert isinstance(result["error"], LabClosedError), result["error"]
    else:
        assert not result["pipeline"].running
    assert wait_until(lambda: not live_children(), 10), live_children()
    assert not port_is_listening(port)


SHUTDOWN_SCRIPT = textwrap.dedent(
    """
    import time
    from ezmsg_lab import Lab
    from ezmsg_lab.demo import DemoPipeline

    lab = Lab()
    pipes = [lab.launch(DemoPipeline(), name=f"DEMO{i}") for i in range(3)]
    pids = [pid for p in pipes for pid in p.pids]
    print(lab.address.port, *pids, flush=True)
    print("EXITING", time.monotonic(), flush=True)
    # no lab.close(): interpreter exit (what a kernel shutdown ends in) cleans up
    """
)


def test_close_at_interpreter_exit_with_three_pipelines_is_quick():
    proc = subprocess.Popen(
        [sys.executable, "-c", SHUTDOWN_SCRIPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    stdout, stderr = proc.communicate(timeout=120)
    ended = time.monotonic()
    assert proc.returncode == 0, stderr[-2000:]
    first, second = stdout.strip().splitlines()[-2:]
    port, *pids = map(int, first.split())
    exit_s = ended - float(second.split()[1])
    print(f"\ninterpreter exit with 3 pipelines (12 unit processes): {exit_s:.2f} s")
    assert len(pids) == 12
    assert exit_s < 5.0, "Jupyter kills a kernel that takes more than 5 s to shut down"
    assert wait_until(lambda: all(_gone(p) for p in pids), 10)
    assert not port_is_listening(port)


KERNEL_CELL = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from ezmsg_lab import Lab
    from ezmsg_lab.demo import DemoPipeline
    lab = Lab()
    pipes = [lab.launch(DemoPipeline(), name=f"DEMO{{i}}") for i in range(3)]
    {{extra}}
    print("PIDS", lab.address.port, *[pid for p in pipes for pid in p.pids])
    # Leave a mark when the Lab has closed, to tell a clean close from a kill; and one
    # when it starts closing (how long it took, or what it raised), to tell why not.
    import pathlib as _p, time as _t, traceback as _tb
    _close = lab.close
    def _marked_close(*a, **k):
        t0 = _t.monotonic()
        _p.Path({mark!r} + ".started").write_text("closing")
        try:
            _close(*a, **k)
        except BaseException:
            _p.Path({mark!r} + ".started").write_text(_tb.format_exc())
            raise
        _p.Path({mark!r} + ".started").write_text(f"closed in {{_t.monotonic() - t0:.2f}} s")
        _p.Path({mark!r}).write_text(" ".join(str(p.stopped_at) for p in pipes))
    lab.close = _marked_close
    """
)


def kernel_cell(mark: str, extra: str = "") -> str:
    """KERNEL_CELL for a kernel that runs this repo, leaving its marks at ``mark``;
    ``extra``: more code run before the pids are printed (it may append to ``pipes``)."""
    return KERNEL_CELL.format(root=ROOT, mark=mark).replace("{extra}", extra)


# A fourth pipeline whose sink blocks its process in time.sleep after 20 messages (a
# unit stuck in a blocking call, or in ezmsg's own teardown): it never stops gracefully.
# Its launch waits (deadline 30 s) until the sleeper's process stops answering polls.
STUCK_EXTRA = """
from tests.integration._units import StuckPipeline, TickerSettings
import time as _t0
stuck = lab.launch(StuckPipeline(TickerSettings(rate_hz=50)), name="STUCK")
sleeper = next(p.pid for p in stuck.processes if "STUCK/SLEEPER" in p.units)
_end = _t0.monotonic() + 30
while "missing" not in set(lab.profile().query(f"pid == {sleeper}")["status"].astype(str)):
    assert _t0.monotonic() < _end, "the sleeper never blocked"
    _t0.sleep(0.1)
pipes.append(stuck)
"""


@pytest.mark.parametrize("stuck", [False, True], ids=["demo", "stuck-unit"])
def test_kernel_shutdown_with_three_pipelines_leaves_nothing_running(tmp_path, stuck):
    """A real kernel, shut down the way Jupyter does it.

    ipykernel (7.4) SIGTERMs every child of the kernel after its do_shutdown, and
    Python's resource tracker (started by ezmsg's shared memory) ignores SIGTERM, so
    without the Lab's shutdown hook the kernel was killed by jupyter_client after about
    2.6 s with the unit processes SIGTERMed under a Lab that never closed. With it, the
    Lab closes first and the kernel exits by itself (measured 0.6 s here).

    jupyter_client SIGTERMs a kernel still there half its shutdown_wait_time (2.5 s)
    after the request. With a unit that never stops gracefully, the hook's close used to
    wait 3 s for it before terminating it: the kernel was SIGTERMed mid-close (CI runs 7
    and 9 saw the same with ezmsg's own teardown stuck). The close now fits in 2 s.
    """
    jupyter_client = pytest.importorskip("jupyter_client")
    km = jupyter_client.KernelManager(kernel_name="python3")
    km.start_kernel(cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        lines: list[str] = []
        mark = str(tmp_path / "closed")
        reply = kc.execute_interactive(
            kernel_cell(mark, STUCK_EXTRA if stuck else ""),
            timeout=120,
            output_hook=lambda msg: lines.append(msg["content"].get("text", "")),
        )
        assert reply["content"]["status"] == "ok", reply["content"]
        text = "".join(lines)
        port, *pids = map(int, text.split("PIDS", 1)[1].split())
        assert len(pids) == 12 + 2 * stuck
        kernel = km.provisioner.process
        t0 = time.monotonic()
        km.shutdown_kernel(now=False)  # request, wait up to shutdown_wait_time, then kill
        shutdown_s = time.monotonic() - t0
    finally:
        kc.stop_channels()
    closing = (
        (tmp_path / "closed.started").read_text()
        if (tmp_path / "closed.started").exists()
        else None
    )
    print(
        f"\nkernel shutdown with {3 + stuck} pipelines: {shutdown_s:.2f} s, Lab: {closing} "
        f"(Jupyter's window: {km.shutdown_wait_time:g} s); kernel exit code "
        f"{kernel.returncode}"
    )
    assert shutdown_s < km.shutdown_wait_time  # never reached SIGKILL
    assert kernel.returncode == 0, "the kernel did not exit by itself"
    # The Lab itself stopped its pipelines (on the shutdown request, before ipykernel
    # signalled the unit processes).
    assert (tmp_path / "closed").exists(), f"the Lab was not closed at kernel shutdown: {closing}"
    assert wait_until(lambda: all(_gone(p) for p in pids), 10)
    assert not port_is_listening(port)
