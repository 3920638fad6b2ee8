"""Listeners and widgets against a real pipeline: a raising callback never marks the
GraphServer lost nor stops a feed; widgets stop costing the feeds once closed."""

from __future__ import annotations

import time

import pytest

from ezmsg_lab.demo import DemoPipeline

from ..conftest import wait_until

pytestmark = pytest.mark.integration


def _boom(*_args):
    raise RuntimeError("GraphContext session closed (a listener bug, not the server)")


def test_raising_listeners_never_mark_the_server_lost(lab):
    # One raising listener on every feed; the message even looks like ezmsg's own.
    lab._settings.subscribe(_boom)
    lab._topology.subscribe(_boom)
    lab._poller.subscribe(_boom)
    lab.on_unit_error(_boom)
    lab.poll_hz = 10

    lab.launch(DemoPipeline(), name="DEMO")  # topology events reach the raising listener
    result = lab.set("DEMO/FILTER", cutoff_hz=33.0)  # so does the settings event
    assert result.applied == {"cutoff_hz": 33.0}
    assert lab._conn.lost is None
    assert "connected" in repr(lab)

    # Every feed carries on: a new poll, a new settings event and a new topology event.
    assert len(lab.wait_for_profile(timeout=10))
    before = len(lab.metrics())
    assert wait_until(lambda: len(lab.metrics()) > before, 5)
    lab.set("DEMO/FILTER", cutoff_hz=34.0)
    history = lab.settings_history("DEMO/FILTER")
    assert 34.0 in set(history.loc[history["field"] == "cutoff_hz", "new"])
    lab.pipelines[0].stop()
    assert wait_until(lambda: lab.topology().units.empty, 10)
    assert lab._conn.lost is None
    assert lab._topology.listeners.failures > 0 and lab._settings.listeners.failures > 0


def test_closed_widgets_detach_from_the_feeds(lab):
    lab.launch(DemoPipeline(), name="DEMO")
    topo0, polls0 = len(lab._topology.listeners), len(lab._poller.listeners)
    graphs = [lab.graph() for _ in range(5)]
    dash = lab.dashboard()
    assert len(lab._topology.listeners) == topo0 + 6
    assert len(lab._poller.listeners) == polls0 + 7  # the dashboard's table follows too
    for graph in graphs:
        graph.close()
    dash.close()
    assert len(lab._topology.listeners) == topo0
    assert len(lab._poller.listeners) == polls0


def test_a_closed_labs_widgets_stop_following(lab):
    lab.launch(DemoPipeline(), name="DEMO")
    graph = lab.graph()
    dash = lab.dashboard()
    lab.close()
    assert len(lab._topology.listeners) == 0
    assert len(lab._poller.listeners) == 0
    graph.close()
    dash.close()


def test_a_closed_labs_dashboard_is_frozen_and_a_click_reaches_nothing(lab, capsys):
    lab.launch(DemoPipeline(), name="DEMO")
    lab.wait_for_profile(10)
    dash = lab.dashboard()
    dash.graph.selected = "DEMO/FILTER"
    assert dash.form is not None and "<tr>" in dash.table.value
    table = dash.table.value
    lab.close()
    assert dash.closed and dash.graph.closed_at and dash.closed_at == dash.graph.closed_at
    # The form stays, disabled; the metrics keep their last values, saying so.
    editors = dash.form.editors.values()
    controls = [e.control for e in editors if hasattr(e.control, "disabled")]
    assert len(controls) >= 3 and all(c.disabled for c in controls)
    assert dash.table.value == table and "frozen at" in dash.metrics_title.value
    # A click that reaches Python after the close: no LabClosedError, nothing printed.
    capsys.readouterr()
    dash.graph.selected = "DEMO/SINK"
    dash.refresh()
    out = capsys.readouterr()
    assert "Error" not in out.out + out.err and "Traceback" not in out.out + out.err
    assert dash.error.value == "" and "closed at" in dash.title.value
    assert "Lab closed at" in repr(dash)
    dash.close()


def test_a_rerun_notebook_cell_does_not_pile_up_widgets(tmp_path):
    """Through a real kernel: run the same cell (same cell id) ten times, as JupyterLab
    does on re-run; the feeds keep one graph's and one dashboard's listeners."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:

        def run(code: str, cell_id: str | None = None) -> str:
            msg = kc.session.msg(
                "execute_request",
                {
                    "code": code,
                    "silent": False,
                    "store_history": True,
                    "user_expressions": {},
                    "allow_stdin": False,
                    "stop_on_error": True,
                },
            )
            if cell_id is not None:
                msg["metadata"]["cellId"] = cell_id
            kc.shell_channel.send(msg)
            reply = kc.get_shell_msg(timeout=60)
            while reply["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
                reply = kc.get_shell_msg(timeout=60)
            assert reply["content"]["status"] == "ok", reply["content"]
            out = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                io = kc.get_iopub_msg(timeout=30)
                if io["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
                    continue
                if io["msg_type"] == "stream":
                    out.append(io["content"]["text"])
                if io["msg_type"] == "status" and io["content"]["execution_state"] == "idle":
                    break
            return "".join(out)

        run(
            "from ezmsg_lab import Lab\nfrom ezmsg_lab.demo import DemoPipeline\n"
            "lab = Lab()\nlab.launch(DemoPipeline(), name='DEMO')\n"
            "base = (len(lab._topology.listeners), len(lab._poller.listeners))"
        )
        for _ in range(10):
            run("g = lab.graph()\ng", cell_id="cell-graph")
            run("d = lab.dashboard()\nd", cell_id="cell-dashboard")
        out = run(
            "print(len(lab._topology.listeners) - base[0], len(lab._poller.listeners) - base[1],"
            " len(lab._widgets))"
        )
        # One graph (1 topology + 1 poll) and one dashboard (1 + 2) are left following.
        assert out.split() == ["2", "3", "2"], out
        # Two different cells keep their own widgets.
        run("g2 = lab.graph()", cell_id="another-cell")
        out = run("print(len(lab._topology.listeners) - base[0])")
        assert out.split() == ["3"], out
        run("lab.close()")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
