"""The dashboard: the live graph, the selected unit's settings form and its metrics."""

from __future__ import annotations

import datetime as dt
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
# Short headers keep the whole table in a half-width column (it scrolls when it cannot).
_SHORT_NAMES = {
    "topic": "stream",
    "rate_hz": "rate (Hz)",
    "messages_total": "messages",
    "num_buffers": "buffers",
    "channel_kind": "channel",
}
_HINT = "<i>Click a unit in the graph to see its settings and live metrics.</i>"
# The table scrolls sideways inside its box rather than being cut off by it.
_STYLE = """<style>
.ezmsg-lab-metrics-wrap { overflow-x: auto; max-width: 100%; }
.ezmsg-lab-metrics { border-collapse: collapse; font-size: 12.5px; white-space: nowrap; }
.ezmsg-lab-metrics th, .ezmsg-lab-metrics td { padding: 2px 8px; text-align: right; }
.ezmsg-lab-metrics th { border-bottom: 1px solid #bbb; }
.ezmsg-lab-metrics td:first-child, .ezmsg-lab-metrics th:first-child { text-align: left; }
.ezmsg-lab-frozen { color: #6e7781; }
</style>"""


def _disable_tree(widget: Any) -> None:
    """Disable every control under ``widget`` (a frozen form must not look editable)."""
    stack = [widget]
    while stack:
        w = stack.pop()
        if "disabled" in getattr(w, "keys", ()):
            w.disabled = True
        stack.extend(getattr(w, "children", ()) or ())


class Dashboard(W.VBox):  # type: ignore[misc]  # ipywidgets is untyped: its classes are Any here
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

    When the Lab closes it calls :meth:`mark_closed`: the dashboard stops refreshing, its
    graph greys out with the time of closing, the form is disabled and clicks no longer
    reach the Lab.
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
        self.closed_at = ""
        self._scope_for = scope_for
        self.scope: Any = None
        self.scope_box = W.VBox([], layout=W.Layout(width="100%"))
        self.title = W.HTML(_HINT)
        self.form_box = W.VBox(
            [], layout=W.Layout(flex="1 1 420px", min_width="320px", padding="0 12px 0 0")
        )
        self.metrics_title = W.HTML("<b>Live metrics</b>")
        self.table = W.HTML("")
        self.error = W.HTML("")
        # Hidden until a unit is selected: a heading over nothing says nothing.
        self.metrics = W.VBox(
            [self.metrics_title, self.table, self.error],
            layout=W.Layout(flex="1 1 420px", min_width="320px", overflow="auto", display="none"),
        )
        graph.layout.width = "100%"
        super().__init__(
            [
                graph,
                self.title,
                # Side by side when there is room, the table under the form when not.
                W.HBox(
                    [self.form_box, self.metrics],
                    layout=W.Layout(width="100%", flex_flow="row wrap"),
                ),
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
        selected: str = self.graph.selected
        return selected

    @property
    def closed(self) -> bool:
        """True once the Lab it followed closed."""
        return bool(self.closed_at)

    def __repr__(self) -> str:
        units = len((self.graph.state or {}).get("units", {}))
        parts = [f"{units} unit{'s' * (units != 1)}", f"selected={self.graph.selected!r}"]
        if self.closed_at:
            parts.append(f"Lab closed at {self.closed_at[11:19]}")
        return f"<Dashboard {', '.join(parts)}>"

    def _on_select(self, change: dict[str, Any]) -> None:
        unit = change["new"]
        if self.form is not None and hasattr(self.form, "close"):
            self.form.close()
        self.form = None
        self._show_scope("" if self.closed_at else unit)  # a closed Lab has no taps
        if not unit:
            self.title.value = _HINT if not self.closed_at else self._closed_note()
            self.form_box.children = ()
            self.metrics.layout.display = "none"
            self.refresh()
            return
        if self.closed_at:
            # Nothing to ask a closed Lab: say so instead of raising LabClosedError.
            self.title.value = f"<b>{html.escape(unit)}</b> \u2014 {self._closed_note()}"
            self.form_box.children = ()
            self.metrics.layout.display = "none"
            return
        try:
            self.form = self._form_for(unit)
            self.form_box.children = (self.form,)
            self.title.value = ""  # the form shows the unit's address itself
        except Exception as exc:  # shown, never raised into the widget machinery
            self.title.value = f"<b>{html.escape(unit)}</b>"
            self.form_box.children = (W.HTML(f"<i>{html.escape(str(exc))}</i>"),)
        self.metrics.layout.display = None
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
        """Re-render the metrics table of the selected unit (nothing once closed)."""
        if self.closed_at:
            return
        unit = self.graph.selected
        if not unit:
            self.table.value = ""
            return
        try:
            frame = self._metrics_for(unit)
            frame = frame[[c for c in _TABLE_COLUMNS if c in frame.columns]].copy()
            # The unit is in the title: show its streams by name, not by full address.
            frame["topic"] = (
                frame["topic"]
                .astype(str)
                .map(lambda t: t[len(unit) + 1 :] if t.startswith(unit + "/") else t)
            )
            frame = frame.rename(columns=_SHORT_NAMES)
            self.table.value = (
                _STYLE
                + "<div class='ezmsg-lab-metrics-wrap'>"
                + frame.to_html(
                    index=False,
                    float_format=lambda x: f"{x:.1f}",
                    classes="ezmsg-lab-metrics",
                    border=0,
                    na_rep="",
                )
                + "</div>"
            )
            self.error.value = ""
        except Exception as exc:
            self.error.value = f"<span style='color:#b00'>{html.escape(repr(exc))}</span>"

    def _on_poll(self) -> None:
        if self.graph.selected:
            self.refresh()

    def _closed_note(self) -> str:
        return (
            f"<span class='ezmsg-lab-frozen'>The Lab closed at {self.closed_at[11:19]}; "
            "this dashboard shows the graph as it was then. Create a new Lab and call "
            "<code>lab.dashboard()</code> for a live one.</span>"
        )

    def mark_closed(self, when: dt.datetime | None = None) -> None:
        """The Lab closed: stop refreshing, freeze the graph, disable the form (idempotent).

        The last metrics stay visible under a heading that says when they froze.
        """
        self._unsubscribe()
        self.graph.mark_closed(when)
        if self.closed_at:
            return
        self.closed_at = self.graph.closed_at
        form = self.form
        if form is not None:
            link = getattr(form, "link", None)
            if link is not None:  # stop following the (closed) Lab's settings events
                link.detach()
            if hasattr(form, "cancel_pending"):
                form.cancel_pending()  # an edit still waiting must not reach the Lab
            _disable_tree(form)
        at = self.closed_at[11:19]
        self.metrics_title.value = (
            f"<b>Live metrics</b> <span class='ezmsg-lab-frozen'>(frozen at {at}: the "
            "Lab is closed)</span>"
        )
        self.title.value = self._closed_note()

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
