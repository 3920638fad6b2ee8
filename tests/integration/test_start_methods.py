"""Pipelines under every start method: fork, forkserver (Python 3.14's Linux default) and
spawn (macOS's), chosen per launch; and unit processes that end when their kernel dies."""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import psutil
import pytest

from ezmsg_lab import Lab
from ezmsg_lab.demo import DemoPipeline, Window
from ezmsg_lab.runtime._backend import _ORPHAN_GRACE_S, _ORPHAN_POLL_S

from ..conftest import live_children, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.interpreter]

METHODS = ["fork", "forkserver", "spawn"]

# How long orphaned unit processes may take to go: one watchdog poll, the grace they get
# to stop cleanly, and a margin for a loaded machine.
ORPHAN_DEADLINE_S = _ORPHAN_POLL_S + _ORPHAN_GRACE_S + 10.0


def _started_with(pid: int) -> str:
    """How a unit process was started, read from the process table (not from the Lab)."""
    proc = psutil.Process(pid)
    if "multiprocessing.spawn" in " ".join(proc.cmdline()):
        return "spawn"  # a fresh interpreter running spawn_main
    if "multiprocessing.forkserver" in " ".join(proc.parent().cmdline()):
        return "forkserver"
    if proc.ppid() == os.getpid():
        return "fork"
    return "unknown"


def _published(lab: Lab, unit: str) -> int:
    prof = lab.profile()
    rows = prof[(prof["unit"] == unit) & (prof["kind"] == "publisher")]
    return int(rows["messages_total"].max()) if len(rows) else 0


def _source_total(lab: Lab) -> int:
    return _published(lab, "DEMO/SOURCE")


def _filter_total(lab: Lab) -> int:
    return _published(lab, "DEMO/FILTER")


@pytest.mark.parametrize("method", METHODS)
def test_demo_runs_tunes_and_stops(method, capsys):
    global_method = mp.get_start_method()
    with Lab(poll_hz=5) as lab:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            demo = lab.launch(DemoPipeline(), name="DEMO", start_method=method)
        # Python 3.12+ warns on each fork from a process with threads; not per launch.
        assert not [w for w in caught if "fork()" in str(w.message)], caught
        assert demo.start_method == method
        assert {_started_with(pid) for pid in demo.pids} == {method}
        assert len(demo.pids) == 4

        profile = lab.wait_for_profile(15)
        pubs = profile[profile["kind"] == "publisher"]
        assert (pubs["rate_hz"] > 0).all(), pubs

        # An enum member crosses into the unit process as a member of its own class.
        result = lab.set("DEMO/FILTER", cutoff_hz=40, window=Window.HANN)
        assert result.applied == {"cutoff_hz": 40.0, "window": Window.HANN}
        assert result.health.status == "ok", result.health
        # The unit's own code runs with what was set: above Nyquist, it raises, and its
        # errors reach the Lab through the pipeline's event queue. (The cutoff's declared
        # bounds stop at the demo's 1 kHz Nyquist: lower the source's rate instead.)
        lab.set("DEMO/SOURCE", fs=200.0, watch=False)
        broken = lab.set("DEMO/FILTER", cutoff_hz=150)
        assert broken.health.status == "raising", broken.health
        assert "Nyquist" in broken.health.detail
        logs = lab.logs(unit="DEMO/FILTER", level="ERROR")
        assert len(logs) and set(logs["pid"]) <= set(demo.pids)
        # Back in range, it publishes again. (Not undo()'s own health: errors the old value
        # raised can still be on their way then, and make it say "raising".)
        published = _filter_total(lab)
        lab.undo(watch=False)
        assert wait_until(lambda: _filter_total(lab) > published, 10)

        # A tap is sampled in the unit process whatever started it: the tap agent and its
        # pipe cross into the process under this start method too.
        with lab.tap("DEMO/SOURCE/OUTPUT_SIGNAL", window="2s", via="sampled") as tap:
            assert tap.inspect()["via"].startswith("sampled"), tap.inspect()
            assert wait_until(lambda: tap.received >= 20, 10), tap.inspect()
            data = tap.data()
            assert "time" in data.dims and data.sizes["time"] > 0
            assert np.isfinite(data.values).all()

        pids = demo.pids
        demo.stop()
        assert not demo.running
        assert wait_until(lambda: not live_children(), 10), live_children()
        assert not any(psutil.pid_exists(p) and _alive(psutil.Process(p)) for p in pids)
    # The Lab chose per launch: multiprocessing's global default is what it was.
    assert mp.get_start_method() == global_method
    capsys.readouterr()  # the closed-loop notice about the broken filter


def test_forkserver_pipeline_outlives_the_watchdog_grace():
    # Under forkserver a unit process's parent is the fork server: the old watchdog, which
    # compared the parent's pid with the kernel's, ended every such pipeline within a poll.
    with Lab(poll_hz=5) as lab:
        demo = lab.launch(DemoPipeline(), name="DEMO", start_method="forkserver")
        lab.wait_for_profile(15)
        pids = demo.pids
        total = _source_total(lab)
        span = 2 * _ORPHAN_POLL_S + _ORPHAN_GRACE_S + 1.0
        died = wait_until(lambda: not all(_alive(psutil.Process(p)) for p in pids), span)
        assert not died, [(p.name, p.exitcode) for p in demo.processes]
        assert demo.running
        # Still publishing, not merely alive.
        assert wait_until(lambda: _source_total(lab) > total, 5)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


KERNEL_SCRIPT = textwrap.dedent(
    """
    import json
    import multiprocessing
    import sys
    import time

    from ezmsg_lab import Lab
    from ezmsg_lab.demo import DemoPipeline

    if __name__ == "__main__":
        method, leak = sys.argv[1], sys.argv[2] == "leak"
        lab = Lab()
        demo = lab.launch(DemoPipeline(), name="DEMO", start_method=method)
        extra = []
        if leak:
            # Forked after the launch, like a user's own pool under fork: it inherits the
            # kernel's end of the lifeline pipe and outlives the kernel.
            other = multiprocessing.get_context("fork").Process(
                target=time.sleep, args=(300,), daemon=True
            )
            other.start()
            extra.append(other.pid)
        print(json.dumps({"units": demo.pids, "extra": extra}), flush=True)
        sys.stdin.read()  # idle, as a kernel does, until killed
    """
)


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise AssertionError(f"the kernel script printed nothing within {timeout} s")
    line = proc.stdout.readline()
    if not line:
        raise AssertionError(f"the kernel script ended: {proc.stderr.read()[-3000:]}")  # type: ignore[union-attr]
    return line


def _kill_kernel_and_wait(tmp_path, method: str, leak: bool) -> float:
    """Launch the demo from a real kernel process, SIGKILL it; seconds until its unit
    processes (and, with nothing leaked, every process it started) were gone."""
    script = tmp_path / "kernel.py"
    script.write_text(KERNEL_SCRIPT)
    kernel = subprocess.Popen(
        [sys.executable, str(script), method, "leak" if leak else "no"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    descendants: list[psutil.Process] = []
    extra: list[psutil.Process] = []
    try:
        info = json.loads(_read_line(kernel, 120))
        units = [psutil.Process(p) for p in info["units"]]
        extra = [psutil.Process(p) for p in info["extra"]]
        assert len(units) == 4 and all(_alive(p) for p in units)
        descendants = psutil.Process(kernel.pid).children(recursive=True)
        kernel.send_signal(signal.SIGKILL)
        kernel.wait(10)
        t0 = time.monotonic()
        # With a leaked holder alive, multiprocessing's own helpers (fork server, resource
        # tracker) rightly stay for it too: they watch their own pipes, which it holds.
        watched = units if leak else [p for p in descendants if p.pid not in info["extra"]]
        gone = wait_until(lambda: not any(_alive(p) for p in watched), ORPHAN_DEADLINE_S)
        elapsed = time.monotonic() - t0
        assert gone, [(p.pid, p.name()) for p in watched if _alive(p)]
        assert all(_alive(p) for p in extra)  # the leaked holder really outlived the kernel
        return elapsed
    finally:
        if kernel.poll() is None:
            kernel.kill()
            kernel.wait(10)
        for proc in descendants + extra:
            if _alive(proc):
                proc.kill()
        for stream in (kernel.stdin, kernel.stdout, kernel.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("method", METHODS)
def test_units_exit_when_their_kernel_is_killed(method, tmp_path):
    _kill_kernel_and_wait(tmp_path, method, leak=False)


def test_units_exit_when_their_kernel_is_killed_despite_a_leaked_pipe_end(tmp_path):
    # The pipe alone would never report the death here (another live process holds a
    # write end); the kernel's pid and start time, read from /proc, do.
    if not os.path.exists(f"/proc/{os.getpid()}/stat"):
        pytest.skip("no /proc: the lifeline is the pipe alone here")
    _kill_kernel_and_wait(tmp_path, "forkserver", leak=True)


NOTEBOOK_SCRIPT = textwrap.dedent(
    """
    import asyncio

    import ezmsg.core as ez
    from ezmsg_lab import Lab, PipelineStartError
    from ezmsg_lab.demo import DemoPipeline, SinkSettings

    class NotebookSettings(ez.Settings):  # defined in __main__, as in a notebook
        gain: float = 1.0

    class NotebookUnit(ez.Unit):
        SETTINGS = NotebookSettings
        OUTPUT = ez.OutputStream(float)

        @ez.publisher(OUTPUT)
        async def tick(self):
            while True:
                await asyncio.sleep(0.05)
                yield self.OUTPUT, self.SETTINGS.gain

    class NotebookName(str):  # an importable unit whose settings hold a notebook class
        pass

    def sink_named():
        return DemoPipeline(sink=SinkSettings(name=NotebookName("probe")))

    if __name__ == "__main__":
        with Lab() as lab:
            for label, make in (("NB", NotebookUnit), ("DEMO", sink_named)):
                default = lab.launch(make(), name=label)
                print("DEFAULT", label, default.start_method, default.running, flush=True)
                default.stop()
                for method in ("forkserver", "spawn"):
                    try:
                        lab.launch(make(), name=label, start_method=method)
                    except PipelineStartError as exc:
                        print("REFUSED", label, method, exc.unit, "|", exc, flush=True)
    """
)


def test_notebook_units_fork_by_default_and_are_refused_clearly_otherwise(tmp_path):
    script = tmp_path / "notebook.py"
    script.write_text(NOTEBOOK_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    if sys.platform.startswith("linux"):
        assert "DEFAULT NB fork True" in lines, lines
        assert "DEFAULT DEMO fork True" in lines, lines
    refused = [line for line in lines if line.startswith("REFUSED")]
    assert len(refused) == 4, lines
    for line in refused:
        _, label, method, unit, _ = line.split(" ", 4)
        assert unit == label, line  # the collection whose settings hold it, for DEMO
        assert "__main__" in line and f"{method!r} start method" in line
        assert "mode='in-kernel'" in line and "start_method='fork'" in line
        names = ("NotebookUnit", "NotebookSettings") if label == "NB" else ("NotebookName",)
        assert any(name in line for name in names), line


KERNEL_CELL = textwrap.dedent(
    """
    import asyncio
    import json

    import ezmsg.core as ez
    from ezmsg_lab import Lab
    from ezmsg_lab.demo import DemoPipeline

    class NotebookUnit(ez.Unit):
        OUTPUT = ez.OutputStream(int)

        @ez.publisher(OUTPUT)
        async def tick(self):
            while True:
                await asyncio.sleep(0.05)
                yield self.OUTPUT, 1

    lab = Lab()
    demo = lab.launch(DemoPipeline(), name="DEMO")
    nb = lab.launch(NotebookUnit(), name="NB")
    lab.wait_for_profile(30)
    print(json.dumps({"demo": [demo.start_method, demo.pids], "nb": [nb.start_method, nb.pids]}))
    """
)


def _run_cell(client, code: str, timeout: float) -> str:
    """Execute ``code`` in a Jupyter kernel; its printed output (raises on an error)."""
    msg_id = client.execute(code)
    out: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        msg = client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out.append(content["text"])
        elif kind == "error":
            raise AssertionError("\n".join(content["traceback"]))
        elif kind == "status" and content["execution_state"] == "idle":
            return "".join(out)


def test_real_kernel_defaults_and_kill(tmp_path):
    # A Jupyter kernel's __main__ is ipykernel's launcher: the demo must start from it
    # under forkserver, a unit typed in a cell must still run (forked), and killing the
    # kernel must take every process it started with it.
    manager_mod = pytest.importorskip("jupyter_client.manager")
    manager = manager_mod.KernelManager(kernel_name="python3")
    manager.start_kernel(env=dict(os.environ), cwd=str(tmp_path))
    client = manager.client()
    client.start_channels()
    descendants: list[psutil.Process] = []
    try:
        client.wait_for_ready(60)
        info = json.loads(_run_cell(client, KERNEL_CELL, 120).strip().splitlines()[-1])
        expected = "forkserver" if sys.platform.startswith("linux") else "spawn"
        assert info["demo"][0] == expected and len(info["demo"][1]) == 4
        assert info["nb"][0] == "fork" and len(info["nb"][1]) == 1
        kernel_pid = manager.provisioner.process.pid
        descendants = psutil.Process(kernel_pid).children(recursive=True)
        assert {p.pid for p in descendants} >= set(info["demo"][1] + info["nb"][1])
        os.kill(kernel_pid, signal.SIGKILL)
        gone = wait_until(lambda: not any(_alive(p) for p in descendants), ORPHAN_DEADLINE_S)
        assert gone, [(p.pid, p.cmdline()) for p in descendants if _alive(p)]
    finally:
        client.stop_channels()
        with contextlib.suppress(Exception):
            manager.shutdown_kernel(now=True)
        for proc in descendants:
            if _alive(proc):
                proc.kill()
