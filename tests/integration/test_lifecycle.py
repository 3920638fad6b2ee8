"""Start, stop and clean up: nothing the Lab started is left running."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from ezmsg_lab import Lab, LabClosedError, LabError, PipelineError
from ezmsg_lab.demo import DemoPipeline

from ..conftest import listening_ports, live_children, port_is_listening, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.interpreter]


def _assert_clean(baseline_ports: set[int]) -> None:
    assert wait_until(lambda: not live_children(), 10), live_children()
    assert wait_until(lambda: listening_ports() <= baseline_ports, 5), (
        listening_ports() - baseline_ports
    )


def test_twenty_cycles_with_close_leave_nothing_running():
    baseline = listening_ports()
    for _ in range(20):
        lab = Lab()
        port = lab.address.port
        demo = lab.launch(DemoPipeline(), name="DEMO")
        assert demo.running
        assert len(demo.pids) == 4
        assert port in listening_ports()
        lab.close()
        assert not demo.running
        assert not port_is_listening(port)
        _assert_clean(baseline)


def test_twenty_cycles_with_context_manager_leave_nothing_running():
    baseline = listening_ports()
    for _ in range(20):
        with Lab() as lab:
            demo = lab.launch(DemoPipeline(), name="DEMO")
            pids = demo.pids
            assert all(psutil.pid_exists(p) for p in pids)
        assert lab.closed
        _assert_clean(baseline)


EXIT_SCRIPT = textwrap.dedent(
    """
    import sys
    from ezmsg_lab import Lab
    from ezmsg_lab.demo import DemoPipeline

    lab = Lab()
    demo = lab.launch(DemoPipeline(), name="DEMO", mode=sys.argv[1])
    print(lab.address.port, *demo.pids, flush=True)
    # no lab.close(): interpreter exit must clean up
    """
)


@pytest.mark.parametrize("mode", ["processes", "in-kernel"])
def test_interpreter_exit_without_close_leaves_nothing_running(mode):
    proc = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, mode],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    port, *pids = map(int, proc.stdout.split())
    assert pids

    def gone(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    assert wait_until(lambda: all(gone(p) for p in pids), 10)
    assert not port_is_listening(port)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ezmsg_serve():
    """An `ezmsg serve` GraphServer process on a free loopback port."""
    port = _free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "ezmsg")
    proc = subprocess.Popen(
        [exe, "serve", "--address", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: port_is_listening(port), 20), "ezmsg serve did not start"
        yield proc, f"127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(10)


def test_attach_leaves_the_server_running(ezmsg_serve):
    server, address = ezmsg_serve
    lab = Lab.attach(address)
    assert not lab.owned
    assert str(lab.address) == address
    demo = lab.launch(DemoPipeline(), name="DEMO")
    pids = demo.pids
    assert len(pids) == 4
    lab.close()
    assert server.poll() is None, "the attached GraphServer was stopped"
    assert port_is_listening(int(address.split(":")[1]))
    assert wait_until(
        lambda: (
            not any(
                psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                for p in pids
            )
        ),
        10,
    )
    # The server is still usable by a new Lab.
    with Lab.attach(address) as again:
        assert again.snapshot().processes == {}


def test_attach_reads_address_from_environment(ezmsg_serve, monkeypatch):
    _, address = ezmsg_serve
    monkeypatch.setenv("EZMSG_GRAPHSERVER_ADDR", address)
    with Lab.attach() as lab:
        assert str(lab.address) == address


def test_attach_to_nothing_fails_fast_with_advice():
    from ezmsg_lab import LabConnectionError

    port = _free_port()
    t0 = time.monotonic()
    with pytest.raises(LabConnectionError, match="ezmsg serve"):
        Lab.attach(f"127.0.0.1:{port}", timeout=2.0)
    assert time.monotonic() - t0 < 3.0
    assert not live_children()


def test_killed_server_gives_connection_error_within_timeout(ezmsg_serve):
    from ezmsg_lab import LabConnectionError

    server, address = ezmsg_serve
    lab = Lab.attach(address, timeout=2.0)
    try:
        lab.snapshot()
        server.kill()
        server.wait(10)
        t0 = time.monotonic()
        with pytest.raises(LabConnectionError, match="went away"):
            lab.snapshot()
        assert time.monotonic() - t0 < 2.5
        # It keeps saying so, promptly, and closing still works.
        with pytest.raises(LabConnectionError):
            lab.ping()
        assert "disconnected" in repr(lab)
    finally:
        lab.close()


@pytest.mark.filterwarnings(
    # ezmsg's GraphServer tasks are garbage-collected after its loop closed under them.
    "ignore::pytest.PytestUnraisableExceptionWarning"
)
def test_stopped_embedded_server_gives_connection_error(lab):
    from ezmsg_lab import LabConnectionError

    lab._server.stop()
    t0 = time.monotonic()
    with pytest.raises(LabConnectionError):
        lab.snapshot(timeout=2.0)
    assert time.monotonic() - t0 < 2.5


def test_closed_lab_refuses_calls():
    lab = Lab()
    lab.close()
    lab.close()  # idempotent
    with pytest.raises(LabClosedError, match="Lab()"):
        lab.snapshot()
    with pytest.raises(LabClosedError):
        lab.launch(DemoPipeline())
    assert isinstance(LabClosedError("x"), LabError)


def test_launch_input_errors(lab):
    with pytest.raises(TypeError, match="ezmsg"):
        lab.launch(object())
    with pytest.raises(ValueError, match="mode"):
        lab.launch(DemoPipeline(), mode="threads")
    demo = DemoPipeline()
    lab.launch(demo, name="DEMO")
    with pytest.raises(PipelineError, match="already launched"):
        lab.launch(demo, name="OTHER")
    with pytest.raises(LabError, match="already running"):
        lab.launch(DemoPipeline(), name="DEMO")
    assert [p.name for p in lab.pipelines] == ["DEMO"]


def test_pipeline_handle(lab):
    demo = lab.launch(DemoPipeline(), name="DEMO")
    assert demo.units == ["DEMO/DETECTOR", "DEMO/FILTER", "DEMO/SINK", "DEMO/SOURCE"]
    snap = lab.snapshot()
    by_pid = {p.pid: sorted(p.units) for p in snap.processes.values()}
    for info in demo.processes:
        assert info.alive
        assert by_pid[info.pid] == sorted(info.units)
    assert "pipelines: DEMO (processes, 4 process(es))" in repr(lab)
    assert "DEMO" in lab._repr_html_()
    demo.stop()
    assert not demo.running
    assert wait_until(lambda: not live_children(), 10)
    assert wait_until(lambda: lab.snapshot().processes == {}, 5)
    demo.stop()  # idempotent
    # A stopped pipeline's name can be used again.
    lab.launch(DemoPipeline(), name="DEMO")


def test_in_kernel_pipeline_exposes_live_units(lab):
    demo = lab.launch(DemoPipeline(), name="DEMO", mode="in-kernel")
    assert demo.pids == [os.getpid()]
    assert not live_children()
    sink = demo.unit_objects["DEMO/SINK"]
    assert wait_until(lambda: sink.STATE.received > 5, 10)
    snap = lab.snapshot()
    assert {p.pid for p in snap.processes.values()} == {os.getpid()}
    demo.stop()
    assert not demo.running
    received = sink.STATE.received
    # Its units leave the GraphServer and nothing reaches the sink any more.
    assert wait_until(lambda: lab.snapshot().processes == {}, 5)
    assert sink.STATE.received == received


def test_unit_objects_refused_for_process_pipelines(lab):
    demo = lab.launch(DemoPipeline(), name="DEMO")
    with pytest.raises(PipelineError, match="in-kernel"):
        _ = demo.unit_objects


@pytest.mark.filterwarnings(
    # ezmsg's GraphServer tasks are garbage-collected after its loop closed under them.
    "ignore::pytest.PytestUnraisableExceptionWarning"
)
def test_close_after_the_server_died_still_stops_unit_processes():
    """ezmsg leaves unit processes stuck when their GraphServer dies (rough edge 12)."""
    lab = Lab()
    demo = lab.launch(DemoPipeline(), name="DEMO")
    pids = demo.pids
    lab._server.stop()
    t0 = time.monotonic()
    lab.close(timeout=5.0)
    assert time.monotonic() - t0 < 15.0
    assert wait_until(lambda: not live_children(), 10), live_children()
    assert not any(
        psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids
    )


def test_stopping_a_process_pipeline_leaves_in_kernel_pipelines_running(lab):
    """Forked unit processes inherit the Lab's exit hook; it must not fire in them (it
    used to close the parent's Lab copy there, stopping in-kernel pipelines through their
    shared multiprocessing events)."""
    live = lab.launch(DemoPipeline(), name="LIVE", mode="in-kernel")
    other = lab.launch(DemoPipeline(), name="OTHER")
    sink = live.unit_objects["LIVE/SINK"]
    other.stop()
    assert not other.running
    received = sink.STATE.received
    assert wait_until(lambda: sink.STATE.received > received + 10, 10)
    assert live.running
    live.stop()
    assert not live.running
