"""The Lab's widgets: the live graph and the dashboard (the Lab's widget factory).

Widgets are fed by the Lab's stores, never by the GraphServer: the topology feed pushes
each new snapshot, the profiling poller pushes annotations after each poll; the graph
widget rate-limits both (2 Hz by default).
"""

from __future__ import annotations

import datetime as dt
import logging
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..model.graph_annotations import Annotations, make_annotations
from ..model.listeners import subscribe_weak
from ..model.metrics import edge_rates, finite_or_none, topic_rates

if TYPE_CHECKING:
    from ..feeds.profiling import ProfilingPoller
    from ..feeds.topology import TopologyFeed
    from ..model.logs import LogStore
    from ..widgets.graph import GraphWidget
    from .session import Session
    from .settings import SettingsService
    from .views import Views

logger = logging.getLogger(__name__)


def profile_annotations(
    profile: pd.DataFrame, topology_graph: dict[str, list[str]], last_errors: dict[str, str | None]
) -> Annotations:
    """Graph-widget annotations from a :meth:`Lab.profile` frame.

    An edge ``src -> dst`` carries the rate at which ``dst``'s subscriber receives (or,
    when there is none, the rate ``src`` publishes; :func:`~ezmsg_lab.model.metrics.
    edge_rates`) and that subscriber's channel kind.
    """
    ok = profile[profile["status"].astype(str) == "ok"]
    subs = ok[ok["kind"] == "subscriber"].groupby("topic", observed=True)
    pubs = ok[ok["kind"] == "publisher"].groupby("topic", observed=True)
    sub_channel = {str(t): str(s.iloc[-1]) for t, s in subs["channel_kind"]}
    pub_inflight = {str(t): int(v) for t, v in pubs["inflight"].max().items()}
    pub_buffers = {str(t): int(v) for t, v in pubs["num_buffers"].max().items()}
    _, pub_rate = topic_rates(profile)

    edge_channels: dict[tuple[str, str], str] = {}
    for src, dsts in topology_graph.items():
        for dst in dsts:
            channel = sub_channel.get(dst)
            if channel and channel not in ("UNKNOWN", "nan"):
                edge_channels[(src, dst)] = channel
    errors = profile.groupby("unit", observed=True)["errors"].max()
    missing = {str(p) for p in profile.loc[profile["status"].astype(str) == "missing", "process"]}
    return make_annotations(
        edge_rates=edge_rates(profile, topology_graph),
        edge_channels=edge_channels,
        publishers={t: (pub_inflight[t], pub_buffers[t]) for t in pub_inflight},
        publisher_rates={t: finite_or_none(r) for t, r in pub_rate.items()},
        unit_errors={
            str(u): (int(n), last_errors.get(str(u))) for u, n in errors.items() if u and int(n) > 0
        },
        missing_processes=missing,
    )


class WidgetFactory:
    """``lab.graph()`` and ``lab.dashboard()``: widgets fed by the Lab's feeds."""

    def __init__(
        self,
        session: Session,
        topology: TopologyFeed,
        poller: ProfilingPoller,
        logs: LogStore,
        views: Views,
        settings: SettingsService,
        unit_scope: Callable[[str], Any],
        registry: WidgetRegistry,
    ) -> None:
        self._session = session
        self._topology = topology
        self._poller = poller
        self._logs = logs
        self._views = views
        self._settings = settings
        self._unit_scope = unit_scope
        self._widgets = registry

    def _annotations(self) -> Annotations:
        snap = self._topology.snapshot
        profile = self._views.profile(include_gone=False)
        last = {}
        for unit in profile.loc[profile["errors"] > 0, "unit"].dropna().unique():
            rec = self._logs.last_error(unit)
            last[unit] = rec.message if rec else None
        return profile_annotations(profile, snap.graph if snap else {}, last)

    def graph(self, *, height: int = 0, max_rate_hz: float = 2.0) -> GraphWidget:
        """A live drawing of the running graph (an anywidget).

        Units are grouped by collection, coloured by process; edges carry message rates
        and channel kinds, publishers their backpressure, units their errors. Click a unit
        and ``widget.selected`` holds its address (``widget.observe(fn, names="selected")``).
        Updates arrive at most ``max_rate_hz`` times a second. ``height=0`` fits the
        widget's height to the drawing.
        """
        widget = self._make_graph(height, max_rate_hz)
        self._widgets.add(widget, replaces_cell_output=True)
        return widget

    def _make_graph(self, height: int, max_rate_hz: float) -> GraphWidget:
        from ..widgets.graph import GraphWidget

        self._session.check_open()
        widget = GraphWidget(
            snapshot=self._topology.snapshot,
            annotations=self._annotations(),
            height=height,
            max_rate_hz=max_rate_hz,
        )
        widget.follow(self._topology, self._poller, self._annotations)
        return widget

    def dashboard(self, *, height: int = 0) -> Any:
        """Graph, the settings form of the selected unit and a live metrics table of it,
        in one widget. Click a unit in the graph to swap the form and the table."""
        from ..widgets.dashboard import Dashboard

        def metrics_for(unit: str) -> pd.DataFrame:
            frame = self._views.profile(include_gone=False)
            return frame[frame["unit"] == unit]

        def subscribe(fn: Callable[[], None]) -> Callable[[], None]:
            return subscribe_weak(self._poller, fn)

        self._session.check_open()
        dashboard = Dashboard(
            graph=self._make_graph(height, 2.0),
            form_for=self._settings.settings_form,
            metrics_for=metrics_for,
            subscribe=subscribe,
            scope_for=self._unit_scope,
        )
        self._widgets.add(dashboard, replaces_cell_output=True)
        return dashboard


def _current_cell() -> tuple[str, int] | None:
    """(cell id, execution count) of the notebook cell running now, when the front end
    says (JupyterLab and Notebook 7 send the cell id with each execution)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    if kernel is None or not hasattr(kernel, "get_parent"):
        return None
    try:
        parent = kernel.get_parent() or {}
    except Exception:
        return None
    cell = (parent.get("metadata") or {}).get("cellId")
    if not isinstance(cell, str) or not cell:
        return None
    return cell, int(getattr(shell, "execution_count", 0) or 0)


class WidgetRegistry:
    """The live widgets a Lab made, held weakly.

    A widget follows the Lab's feeds until it is closed or garbage-collected. When a
    notebook cell that made a widget runs again, the widget it made last time is closed:
    its output is being replaced, and re-running ``lab.graph()`` a hundred times must not
    leave a hundred widgets redrawing on every poll.
    """

    def __init__(self) -> None:
        self._widgets: weakref.WeakSet[Any] = weakref.WeakSet()
        self._by_cell: dict[str, tuple[int, list[weakref.ref[Any]]]] = {}

    def add(self, widget: Any, *, replaces_cell_output: bool = False) -> None:
        self._widgets.add(widget)
        cell = _current_cell() if replaces_cell_output else None
        if cell is None:
            return
        cell_id, count = cell
        previous_count, refs = self._by_cell.get(cell_id, (count, []))
        if previous_count != count:  # the cell ran again: close what it made before
            for ref in refs:
                old = ref()
                if old is not None:
                    old.close()
            refs = []
        refs.append(weakref.ref(widget))
        self._by_cell[cell_id] = (count, refs)

    def __len__(self) -> int:
        """Open widgets (closed ones may live on in IPython's output history)."""
        return sum(1 for w in list(self._widgets) if getattr(w, "comm", None) is not None)

    def mark_closed(self, when: dt.datetime | None = None) -> None:
        """The Lab closed (at ``when``, default now): every widget stops following it and
        shows that it is frozen, with the time; the widgets stay displayed."""
        when = when or dt.datetime.now().astimezone()
        for widget in list(self._widgets):
            try:
                if hasattr(widget, "mark_closed"):
                    widget.mark_closed(when)
                else:
                    widget.detach()
            except Exception:
                logger.exception("marking a widget closed failed")
