"""The dashboard: the live graph, the selected unit's settings form and its metrics."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from typing import Any

import ipywidgets as W
import pandas as pd

from ..model.metrics import PROFILE_COLUMNS

logger = logging.getLogger(__name__)

# The unit's rows of lab.profile(), without what the selection already says.
_TABLE_COLUMNS = [
    c for c in PROFILE_COLUMNS if c not in ("time", "endpoint", "unit", "process", "pid", "host")
]
_HINT = "<i>Click a unit in the graph to see its settings and live metrics.</i>"
_STYLE = """<style>
.ezmsg-lab-metrics { border-collapse: collapse; font-size: 12px; }
.ezmsg-lab-metrics th, .ezmsg-lab-metrics td { padding: 2px 6px; text-align: right; }
.ezmsg-lab-metrics th { border-bottom: 1px solid #bbb; }
.ezmsg-lab-metrics td:first-child, .ezmsg-lab-metrics th:first-child { text-align: left; }
</style>"""


class Dashboard(W.VBox):
    """Graph + settings form of the selected unit + a live metrics table of it.

    Parameters
    ----------
    graph : GraphWidget
    form_for : callable
        ``form_for(address)`` returns the settings form widget of a unit (or raises; the
        error is shown in place of the form).
    metrics_for : callable
        ``metrics_for(address)`` returns that unit's rows of ``lab.profile()``.
    subscribe : callable
        ``subscribe(fn)`` calls ``fn()`` after each profiling poll and returns a function
        that unsubscribes.
    scope_for : callable, optional
        ``scope_for(address)`` returns a live scope of the unit's output (closed when the
        selection changes), or None when the unit publishes nothing.
    """

    def __init__(
        self,
        *,
        graph: Any,
        form_for: Callable[[str], Any],
        metrics_for: Callable[[str], pd.DataFrame],
        subscribe: Callable[[Callable[[], None]], Callable[[], None]],
        scope_for: Callable[[str], Any] | None = None,
    ) -> None:
        self.graph = graph
        self._form_for = form_for
        self._metrics_for = metrics_for
        self.form: Any = None
        self._scope_for = scope_for
        self.scope: Any = None
        self.scope_box = W.VBox([], layout=W.Layout(width="100%"))
        self.title = W.HTML(_HINT)
        self.form_box = W.VBox([], layout=W.Layout(width="55%", padding="0 12px 0 0"))
        self.table = W.HTML("")
        self.error = W.HTML("")
        metrics = W.VBox(
            [W.HTML("<b>Live metrics</b>"), self.table, self.error],
            layout=W.Layout(width="45%", overflow="auto"),
        )
        graph.layout.width = "100%"
        super().__init__(
            [
                graph,
                self.title,
                W.HBox([self.form_box, metrics], layout=W.Layout(width="100%")),
                self.scope_box,
            ],
            layout=W.Layout(width="100%"),
        )
        graph.observe(self._on_select, names=["selected"])
        self._unsubscribe = subscribe(self._on_poll)
        if graph.selected:
            self._on_select({"new": graph.selected})

    @property
    def selected(self) -> str:
        return self.graph.selected

    def __repr__(self) -> str:
        return f"<Dashboard selected={self.graph.selected!r}>"

    def _on_select(self, change: dict[str, Any]) -> None:
        unit = change["new"]
        if self.form is not None and hasattr(self.form, "close"):
            self.form.close()
        self.form = None
        self._show_scope(unit)
        if not unit:
            self.title.value = _HINT
            self.form_box.children = ()
            self.refresh()
            return
        try:
            self.form = self._form_for(unit)
            self.form_box.children = (self.form,)
            self.title.value = ""  # the form shows the unit's address itself
        except Exception as exc:  # shown, never raised into the widget machinery
            self.title.value = f"<b>{html.escape(unit)}</b>"
            self.form_box.children = (W.HTML(f"<i>{html.escape(str(exc))}</i>"),)
        self.refresh()

    def _show_scope(self, unit: str) -> None:
        """Replace the scope with one of ``unit``'s output (its tap closes with it)."""
        if self.scope is not None:
            self.scope.close()
        self.scope = None
        self.scope_box.children = ()
        if not unit or self._scope_for is None:
            return
        try:
            self.scope = self._scope_for(unit)
        except Exception as exc:  # shown, never raised into the widget machinery
            self.scope_box.children = (W.HTML(f"<i>No scope: {html.escape(str(exc))}</i>"),)
            return
        if self.scope is not None:
            self.scope_box.children = (self.scope,)

    def refresh(self) -> None:
        """Re-render the metrics table of the selected unit."""
        unit = self.graph.selected
        if not unit:
            self.table.value = ""
            return
        try:
            frame = self._metrics_for(unit)
            frame = frame[[c for c in _TABLE_COLUMNS if c in frame.columns]]
            self.table.value = _STYLE + frame.to_html(
                index=False,
                float_format=lambda x: f"{x:.1f}",
                classes="ezmsg-lab-metrics",
                border=0,
                na_rep="",
            )
            self.error.value = ""
        except Exception as exc:
            self.error.value = f"<span style='color:#b00'>{html.escape(repr(exc))}</span>"

    def _on_poll(self) -> None:
        if self.graph.selected:
            self.refresh()

    def detach(self) -> None:
        """Stop following the Lab (its graph too); the widget stays as it is."""
        self._unsubscribe()
        self.graph.detach()
        if self.scope is not None:
            self.scope.close()

    def close(self) -> None:
        self._unsubscribe()
        if self.form is not None and hasattr(self.form, "close"):
            self.form.close()
        if self.scope is not None:
            self.scope.close()
        self.graph.close()
        super().close()
