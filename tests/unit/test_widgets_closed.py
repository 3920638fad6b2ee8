"""Widgets of a closed Lab say so and reach nothing; widgets and trace settings have
readable reprs. Pure Python (no ezmsg processes): the dashboard gets plain callables."""

from __future__ import annotations

import datetime as dt
from typing import Any

import ipywidgets as W
import pandas as pd
import pytest

from ezmsg_lab.feeds.traces import TracePlan, TraceSettings
from ezmsg_lab.model.listeners import Listeners
from ezmsg_lab.model.metrics import ProcessMeta
from ezmsg_lab.widgets import GraphWidget
from ezmsg_lab.widgets.dashboard import Dashboard
from tests.unit.test_graph_view import demo_snapshot

WHEN = dt.datetime(2025, 3, 4, 12, 34, 56, tzinfo=dt.timezone.utc)


class FakeLab:
    """What a dashboard calls: a form per unit, the unit's metrics, a poll subscription."""

    def __init__(self) -> None:
        self.polls: Listeners[[]] = Listeners("test")
        self.forms: list[str] = []
        self.metrics: list[str] = []

    def form_for(self, unit: str) -> Any:
        self.forms.append(unit)
        return W.VBox([W.FloatSlider(value=1.0), W.Button(description="Apply")])

    def metrics_for(self, unit: str) -> pd.DataFrame:
        self.metrics.append(unit)
        return pd.DataFrame(
            {
                "topic": [f"{unit}/OUTPUT_SIGNAL"],
                "kind": ["publisher"],
                "rate_hz": [99.5],
                "messages_total": [240],
                "inflight": [0],
                "num_buffers": [32],
                "channel_kind": ["SHM"],
                "errors": [0],
                "status": ["ok"],
            }
        )


def dashboard(lab: FakeLab) -> Dashboard:
    return Dashboard(
        graph=GraphWidget(snapshot=demo_snapshot()),
        form_for=lab.form_for,
        metrics_for=lab.metrics_for,
        subscribe=lab.polls.subscribe,
    )


def test_graph_repr_says_what_it_shows() -> None:
    graph = GraphWidget(snapshot=demo_snapshot(), selected="DEMO/FILTER")
    assert repr(graph) == "<GraphWidget 4 units, 3 edges, 4 processes, selected='DEMO/FILTER'>"
    assert repr(GraphWidget()) == "<GraphWidget 0 units, 0 edges, 0 processes>"
    data, _metadata = graph._repr_mimebundle_()
    assert data["text/plain"] == repr(graph)  # what a front end without widgets shows


def test_a_closed_graph_stops_following_and_drops_pending_updates() -> None:
    graph = GraphWidget(snapshot=demo_snapshot(), max_rate_hz=0.5)
    snapshots: Listeners[[Any]] = Listeners("test")
    polls: Listeners[[]] = Listeners("test")
    graph.follow(snapshots, polls, lambda: {})
    graph.update_annotations({})  # goes out at once ...
    graph.update_annotations({"missing_processes": ["x"]})  # ... this one waits
    graph.mark_closed(WHEN)
    assert graph.closed and graph.closed_at == "2025-03-04T12:34:56+00:00"
    assert len(snapshots) == 0 and len(polls) == 0
    assert graph._ann_throttle._timer is None  # the waiting update will never be sent
    assert graph.annotations["missing_processes"] == []
    assert repr(graph).endswith("Lab closed at 12:34:56>")
    graph.mark_closed(WHEN + dt.timedelta(hours=1))  # idempotent: the first time stays
    assert graph.closed_at == "2025-03-04T12:34:56+00:00"


def test_metrics_table_shows_once_a_unit_is_selected_and_scrolls() -> None:
    lab = FakeLab()
    dash = dashboard(lab)
    assert dash.metrics.layout.display == "none"  # no lone "Live metrics" heading
    dash.graph.selected = "DEMO/FILTER"
    assert dash.metrics.layout.display is None
    assert "ezmsg-lab-metrics-wrap" in dash.table.value and "overflow-x: auto" in dash.table.value
    # Streams by name: the unit is already in the title.
    assert "<td>OUTPUT_SIGNAL</td>" in dash.table.value
    for header in ("rate (Hz)", "messages", "inflight", "buffers", "channel", "errors"):
        assert f"<th>{header}</th>" in dash.table.value
    assert repr(dash) == "<Dashboard 4 units, selected='DEMO/FILTER'>"


def test_a_closed_dashboard_freezes_and_reaches_nothing() -> None:
    lab = FakeLab()
    dash = dashboard(lab)
    dash.graph.selected = "DEMO/FILTER"
    form = dash.form
    table = dash.table.value
    assert lab.forms == ["DEMO/FILTER"] and len(lab.polls) == 1
    dash.mark_closed(WHEN)
    assert dash.closed and dash.graph.closed
    assert len(lab.polls) == 0
    # The form is still shown, every control disabled; the table keeps its last values
    # under a heading that says when it froze.
    assert all(w.disabled for w in form.children)
    assert dash.table.value == table
    assert "frozen at 12:34:56" in dash.metrics_title.value
    assert "closed at 12:34:56" in dash.title.value
    # A selection that still reaches Python (a stale view, code) asks the Lab nothing.
    calls = (list(lab.forms), list(lab.metrics))
    dash.graph.selected = "DEMO/SINK"
    dash.refresh()
    lab.polls.emit()
    assert (lab.forms, lab.metrics) == calls
    assert "DEMO/SINK" in dash.title.value and "closed at" in dash.title.value
    assert dash.error.value == ""
    assert repr(dash).endswith("Lab closed at 12:34:56>")


def test_trace_settings_show_processes_by_unit_and_pid() -> None:
    a, b = "6f1c0d9e-aaaa-4bbb-8ccc-000000000001", "6f1c0d9e-aaaa-4bbb-8ccc-000000000002"
    settings = TraceSettings(
        topics=None, metrics=["user_span_ns"], budget=0.05, ttl_s=10.0, until=None
    )
    settings.process_info = {
        a: ProcessMeta(a, 4242, "vm", ("DEMO/FILTER",)),
        b: ProcessMeta(b, 4243, "vm", ("DEMO/SINK", "DEMO/LOGGER")),
    }
    settings.sample_mod = {a: 20, b: 1}
    settings.rate_known = {a: True, b: False}
    text = repr(settings)
    assert "FILTER (pid 4242) 1/20" in text and "SINK+1 (pid 4243) 1/1?" in text
    assert a not in text and b not in text
    frame = settings.processes
    assert list(frame.columns) == [
        "process",
        "pid",
        "host",
        "units",
        "sample_mod",
        "rate_known",
        "duty",
        "window_s",
        "period_s",
        "windows",
        "failed",
    ]
    assert frame.set_index("pid").loc[4243, "units"] == "DEMO/SINK, DEMO/LOGGER"
    assert settings.sample_mod[a] == 20  # code keeps its dict keyed by process id
    settings.failed[b] = "UNROUTABLE_UNIT: gone"
    assert "failed SINK+1 (pid 4243): UNROUTABLE_UNIT: gone" in repr(settings)
    assert "4242" in settings._repr_html_()
    # A process traced in windows says so, and each window is listed.
    settings.record_window(a, TracePlan(sample_mod=75, duty=0.25, window_s=0.5, period_s=2.0), True)
    assert "FILTER (pid 4242) 1/75 on 25% (0.5 s every 2 s)" in repr(settings)
    row = settings.processes.set_index("pid").loc[4242]
    assert (row["duty"], row["window_s"], row["period_s"], row["windows"]) == (0.25, 0.5, 2.0, 1)
    windows = settings.traced_windows
    assert list(windows["pid"]) == [4242]
    assert (windows["end"] - windows["start"]).dt.total_seconds().tolist() == pytest.approx([0.5])
    settings.forget(a)
    assert a not in settings.sample_mod and a not in settings.duty and a not in settings.windows
