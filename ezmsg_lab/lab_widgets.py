"""The Lab's widgets: the live graph and the dashboard (mixed into :class:`~ezmsg_lab.Lab`).

Widgets are fed by the Lab's stores, never by the GraphServer: the topology feed pushes
each new snapshot, the profiling poller pushes annotations after each poll; the graph
widget rate-limits both (2 Hz by default).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from .lab import Lab
    from .widgets.graph import GraphWidget

logger = logging.getLogger(__name__)


def profile_annotations(
    profile: pd.DataFrame, topology_graph: dict[str, list[str]], last_errors: dict[str, str | None]
) -> dict[str, Any]:
    """Graph-widget annotations from a :meth:`Lab.profile` frame.

    An edge ``src -> dst`` carries the rate at which ``dst``'s subscriber receives (or,
    when there is none, the rate ``src`` publishes) and that subscriber's channel kind.
    """
    from .model.graph_view import make_annotations

    ok = profile[profile["status"].astype(str) == "ok"]
    subs = ok[ok["kind"] == "subscriber"].groupby("topic", observed=True)
    pubs = ok[ok["kind"] == "publisher"].groupby("topic", observed=True)
    sub_rate = subs["rate_hz"].sum(min_count=1).to_dict()
    sub_channel = subs["channel_kind"].agg(lambda s: str(s.iloc[-1])).to_dict()
    pub_rate = pubs["rate_hz"].sum(min_count=1).to_dict()
    pub_inflight = pubs["inflight"].max().to_dict()
    pub_buffers = pubs["num_buffers"].max().to_dict()

    def finite(x: Any) -> float | None:
        return (
            float(x) if x is not None and isinstance(x, (int, float)) and math.isfinite(x) else None
        )

    edge_rates: dict[tuple[str, str], float | None] = {}
    edge_channels: dict[tuple[str, str], str] = {}
    for src, dsts in topology_graph.items():
        for dst in dsts:
            rate = sub_rate.get(dst, pub_rate.get(src))
            edge_rates[(src, dst)] = finite(rate)
            channel = sub_channel.get(dst)
            if channel and channel != "UNKNOWN" and channel != "nan":
                edge_channels[(src, dst)] = channel
    errors = profile.groupby("unit", observed=True)["errors"].max().to_dict()
    missing = set(profile.loc[profile["status"].astype(str) == "missing", "process"])
    return make_annotations(
        edge_rates=edge_rates,
        edge_channels=edge_channels,
        publishers={t: (int(pub_inflight[t]), int(pub_buffers[t])) for t in pub_inflight},
        publisher_rates={t: finite(r) for t, r in pub_rate.items()},
        unit_errors={
            u: (int(n), last_errors.get(u)) for u, n in errors.items() if u and int(n) > 0
        },
        missing_processes=missing,
    )


class WidgetsMixin:
    """``lab.graph()`` and ``lab.dashboard()``."""

    def _annotations(self: Lab) -> dict[str, Any]:
        snap = self._topology.snapshot
        profile = self.profile(include_gone=False)
        last = {}
        for unit in profile.loc[profile["errors"] > 0, "unit"].dropna().unique():
            rec = self._logs.last_error(unit)
            last[unit] = rec.message if rec else None
        return profile_annotations(profile, snap.graph if snap else {}, last)

    def graph(self: Lab, *, height: int = 0, max_rate_hz: float = 2.0) -> GraphWidget:
        """A live drawing of the running graph (an anywidget).

        Units are grouped by collection, coloured by process; edges carry message rates
        and channel kinds, publishers their backpressure, units their errors. Click a unit
        and ``widget.selected`` holds its address (``widget.observe(fn, names="selected")``).
        Updates arrive at most ``max_rate_hz`` times a second. ``height=0`` fits the
        widget's height to the drawing.
        """
        from .widgets.graph import GraphWidget

        self._check_open()
        widget = GraphWidget(
            snapshot=self._topology.snapshot,
            annotations=self._annotations(),
            height=height,
            max_rate_hz=max_rate_hz,
        )

        def on_topology(snapshot: Any) -> None:
            widget.update_from_snapshot(snapshot)

        def on_poll() -> None:
            try:
                widget.update_annotations(self._annotations())
            except Exception:  # a bad frame must not stop the poller
                logger.exception("graph annotations failed")

        self._topology.add_listener(on_topology)
        self._poller.on_poll.append(on_poll)
        closed = threading.Event()

        def detach() -> None:
            if closed.is_set():
                return
            closed.set()
            if on_topology in self._topology._listeners:
                self._topology._listeners.remove(on_topology)
            if on_poll in self._poller.on_poll:
                self._poller.on_poll.remove(on_poll)

        original_close = widget.close

        def close() -> None:
            detach()
            original_close()

        widget.close = close  # type: ignore[method-assign]
        self._widget_closers.append(detach)
        return widget

    def dashboard(self: Lab, *, height: int = 0) -> Any:
        """Graph, the settings form of the selected unit and a live metrics table of it,
        in one widget. Click a unit in the graph to swap the form and the table."""
        from .widgets.dashboard import Dashboard

        def metrics_for(unit: str) -> pd.DataFrame:
            frame = self.profile(include_gone=False)
            return frame[frame["unit"] == unit]

        def subscribe(fn: Callable[[], None]) -> Callable[[], None]:
            self._poller.on_poll.append(fn)

            def unsubscribe() -> None:
                if fn in self._poller.on_poll:
                    self._poller.on_poll.remove(fn)

            self._widget_closers.append(unsubscribe)
            return unsubscribe

        return Dashboard(
            graph=self.graph(height=height),
            form_for=self.settings_form,
            metrics_for=metrics_for,
            subscribe=subscribe,
        )
