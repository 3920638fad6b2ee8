"""GraphWidget: the live topology of an ezmsg graph, drawn by ``static/graph.js``.

The JavaScript source lives in ``js/src`` (bundled by esbuild, with elkjs for the
layout); ``tests/unit/test_js_bundle.py`` checks that the shipped file is a fresh build.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from ..model.graph_annotations import normalize_annotations
from ..model.graph_view import (
    SCHEMA_VERSION,
    SECTIONS,
    diff_size,
    diff_state,
    empty_state,
    graph_state,
    state_digest,
    state_size,
)
from ..model.listeners import Subscribable, Unsubscribe, subscribe_weak

logger = logging.getLogger(__name__)

DEFAULT_MAX_RATE_HZ = 2.0
# States with at least this many records (units + groups + topics + edges + processes +
# hosts) travel as diffs; smaller ones are cheaper to resend whole.
DIFF_MIN_RECORDS = 200
_NOTHING = object()


class _Throttle:
    """Call ``fn`` with the latest submitted value at most once per ``interval`` seconds.

    The first value after a quiet period goes out at once; later ones are coalesced and the
    latest is delivered from a timer thread when the interval has passed.
    """

    def __init__(self, interval: float, fn: Callable[[Any], None]) -> None:
        self.interval = interval
        self._fn = fn
        self._lock = threading.Lock()
        self._last = -float("inf")
        self._pending: Any = _NOTHING
        self._timer: threading.Timer | None = None

    def submit(self, value: Any) -> None:
        run_now = False
        with self._lock:
            self._pending = value
            wait = self._last + self.interval - time.monotonic()
            if self._timer is None:
                if wait <= 0:
                    run_now = True
                    value, self._pending = self._pending, _NOTHING
                    self._last = time.monotonic()
                else:
                    self._timer = threading.Timer(wait, self._fire)
                    self._timer.daemon = True
                    self._timer.start()
        if run_now:
            self._fn(value)

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
            value, self._pending = self._pending, _NOTHING
            self._last = time.monotonic()
        if value is not _NOTHING:
            self._fn(value)

    def flush(self) -> None:
        """Deliver the pending value now (if any)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            value, self._pending = self._pending, _NOTHING
            self._last = time.monotonic()
        if value is not _NOTHING:
            self._fn(value)

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._pending = _NOTHING


class LayoutStore:
    """Layouts the browser made (ELK, in the widget's worker), kept in the kernel.

    A page opened later (a reload, another tab, the dashboard) draws a topology it finds
    here at once instead of running ELK, which is slowest on a fresh page (elkjs is not
    optimised yet: 1.2-1.6 s for 300 units against 0.3-0.5 s warm). Entries are keyed by
    the state's digest and the collapsed collections; each holds the browser's
    fingerprint of its exact ELK input (fonts and widths decide card sizes), so a page
    whose input differs lays out afresh, and the width it was made for (views of one
    widget in boxes of different widths wrap a long chain differently). Bounded by count
    and by size, oldest dropped first; thread-safe. One store serves every GraphWidget in
    the kernel.
    """

    PER_TOPOLOGY = 4

    def __init__(self, max_entries: int = 32, max_bytes: int = 16_000_000) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        # (digest, collapsed) -> {(key, width): (geometry, size)}, most recently used last
        self._entries: dict[
            tuple[str, tuple[str, ...]], dict[tuple[str, Any], tuple[dict[str, Any], int]]
        ] = {}

    def put(
        self, digest: str, collapsed: Iterable[str], key: str, geometry: dict[str, Any], size: int
    ) -> None:
        topology = (digest, tuple(sorted(collapsed)))
        with self._lock:
            layouts = self._entries.pop(topology, {})
            which = (key, geometry.get("madeForWidth"))
            layouts.pop(which, None)
            layouts[which] = (geometry, size)
            while len(layouts) > self.PER_TOPOLOGY:
                layouts.pop(next(iter(layouts)))
            self._entries[topology] = layouts
            while self._entries and (
                len(self._entries) > self.max_entries or self.nbytes > self.max_bytes
            ):
                self._entries.pop(next(iter(self._entries)))

    def get(self, digest: str, collapsed: Iterable[str]) -> list[dict[str, Any]]:
        """``[{"key", "digest", "geometry"}]`` kept for this topology, newest first."""
        with self._lock:
            layouts = self._entries.get((digest, tuple(sorted(collapsed))), {})
            return [
                {"key": k, "digest": digest, "geometry": g}
                for (k, _), (g, _) in reversed(layouts.items())
            ]

    @property
    def nbytes(self) -> int:
        """JSON size of everything kept."""
        return sum(size for layouts in self._entries.values() for _, size in layouts.values())

    def __len__(self) -> int:
        return sum(len(layouts) for layouts in self._entries.values())

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


LAYOUTS = LayoutStore()
# Largest layout (JSON) a view may give the kernel to keep: 300 units and 600 edges take
# about 150 kB.
MAX_LAYOUT_BYTES = 4_000_000


def _check_layout_msg(
    content: Mapping[str, Any],
) -> tuple[str, list[str], str, dict[str, Any], int]:
    """(digest, collapsed, key, geometry, size) of a view's "layout" message; ValueError
    when it is not what graph.js sends."""
    digest, key, collapsed = content.get("digest"), content.get("key"), content.get("collapsed")
    geometry = content.get("geometry")
    if not (isinstance(digest, str) and 0 < len(digest) <= 200):
        raise ValueError("digest")
    if not (isinstance(key, str) and 0 < len(key) <= 100):
        raise ValueError("key")
    if not (isinstance(collapsed, list) and all(isinstance(c, str) for c in collapsed)):
        raise ValueError("collapsed")
    if not (
        isinstance(geometry, dict)
        and isinstance(geometry.get("nodes"), list)
        and isinstance(geometry.get("edges"), list)
    ):
        raise ValueError("geometry")
    size = len(json.dumps(geometry, separators=(",", ":")))
    if size > MAX_LAYOUT_BYTES:
        raise ValueError(f"geometry of {size} bytes")
    return digest, collapsed, key, geometry, size


def _check_state(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise traitlets.TraitError(
            f"GraphWidget.state must be a dict made by graph_view.graph_state(), got "
            f"{type(value).__name__}; pass snapshot=... to build it from a GraphSnapshot"
        )
    state = dict(value)
    if not state:
        return dict(empty_state())
    schema = state.get("schema", SCHEMA_VERSION)
    if schema != SCHEMA_VERSION:
        raise traitlets.TraitError(
            f"GraphWidget.state has schema {schema!r}; this version draws schema "
            f"{SCHEMA_VERSION}. Rebuild it with graph_view.graph_state()."
        )
    for section in SECTIONS:
        part = state.get(section, {})
        if not isinstance(part, Mapping):
            raise traitlets.TraitError(
                f"GraphWidget.state[{section!r}] must be a dict keyed by id, got "
                f"{type(part).__name__}"
            )
        state[section] = dict(part)
    state["schema"] = SCHEMA_VERSION
    state["digest"] = state_digest(state)
    return state


class GraphWidget(anywidget.AnyWidget):
    """Live topology of an ezmsg graph: units grouped by collection, their streams, the
    edges between topics, one colour per process, annotated with rates, backpressure and
    errors.

    Parameters
    ----------
    snapshot : ezmsg GraphSnapshot, optional
        Draw this snapshot (``lab.snapshot()``). Mutually exclusive with ``state``.
    state : dict, optional
        A state made by :func:`ezmsg_lab.model.graph_view.graph_state`.
    annotations : dict, optional
        Made by :func:`ezmsg_lab.model.graph_annotations.make_annotations`.
    selected : str
        Address of the selected unit ("" for none); clicking a unit sets it.
    collapsed : iterable of str
        Collection addresses drawn collapsed.
    height : int
        Height of the drawing in pixels; 0 (the default) fits it to the drawing
        (220..720 px).
    max_rate_hz : float
        Most updates per second that :meth:`update_from_snapshot` and
        :meth:`update_annotations` send to the browser (the latest value wins).
    diff_min_records : int
        States with at least this many records are sent as diffs.

    Examples
    --------
    >>> graph = GraphWidget(snapshot=lab.snapshot())  # doctest: +SKIP
    >>> graph.observe(lambda ch: print(ch["new"]), names=["selected"])  # doctest: +SKIP
    >>> graph  # doctest: +SKIP
    """

    _esm = Path(__file__).parent / "static" / "graph.js"
    _css = Path(__file__).parent / "static" / "graph.css"

    state = traitlets.Dict().tag(sync=True)
    annotations = traitlets.Dict().tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)
    collapsed = traitlets.List(traitlets.Unicode()).tag(sync=True)
    height = traitlets.Int(0).tag(sync=True)
    js_error = traitlets.Unicode("").tag(sync=True)
    py_error = traitlets.Unicode("").tag(sync=True)
    # ISO time (local, seconds) at which the Lab this widget followed closed; "" while
    # open. The view then greys out, says so, and ignores clicks.
    closed_at = traitlets.Unicode("").tag(sync=True)
    # Layouts of the current topology kept by the kernel (LAYOUTS), for views opened later:
    # a new page gets them with the widget's state; open views are not sent them (they
    # made their own).
    layouts = traitlets.List(traitlets.Dict()).tag(sync=True)

    def __init__(
        self,
        *,
        snapshot: Any = None,
        state: Mapping[str, Any] | None = None,
        annotations: Mapping[str, Any] | None = None,
        selected: str = "",
        collapsed: Iterable[str] = (),
        height: int = 0,
        max_rate_hz: float = DEFAULT_MAX_RATE_HZ,
        diff_min_records: int = DIFF_MIN_RECORDS,
    ) -> None:
        if snapshot is not None and state is not None:
            raise TypeError("GraphWidget takes snapshot= or state=, not both")
        if not isinstance(max_rate_hz, (int, float)) or not max_rate_hz > 0:
            raise ValueError(f"max_rate_hz={max_rate_hz!r} must be a number > 0 (default 2.0)")
        if not isinstance(diff_min_records, int) or diff_min_records < 0:
            raise ValueError(f"diff_min_records={diff_min_records!r} must be an int >= 0")
        if snapshot is not None:
            state = graph_state(snapshot)
        self.max_rate_hz = float(max_rate_hz)
        self.diff_min_records = diff_min_records
        self.diffs_sent = 0
        self.full_states_sent = 0
        self._suppress_state = False
        self._unsubscribes: list[Unsubscribe] = []
        self._annotate: Callable[[], Mapping[str, Any]] | None = None
        interval = 1.0 / self.max_rate_hz
        self._state_throttle = _Throttle(interval, self._guarded(self._push_snapshot))
        self._ann_throttle = _Throttle(interval, self._guarded(self._push_annotations))
        super().__init__(
            state=dict(state) if state is not None else dict(empty_state()),
            annotations=dict(normalize_annotations(annotations)),
            selected=selected,
            collapsed=list(collapsed),
            height=height,
        )
        self.layout_store = LAYOUTS
        self._refresh_layouts()
        self.observe(lambda _change: self._refresh_layouts(), names=["state", "collapsed"])
        self.on_msg(self._on_custom_msg)

    # ------------------------------------------------------------------ validation
    @traitlets.validate("state")
    def _validate_state(self, proposal: dict[str, Any]) -> dict[str, Any]:
        return _check_state(proposal["value"])

    @traitlets.validate("annotations")
    def _validate_annotations(self, proposal: dict[str, Any]) -> dict[str, Any]:
        try:
            return dict(normalize_annotations(proposal["value"]))
        except (TypeError, ValueError, KeyError) as exc:
            raise traitlets.TraitError(f"GraphWidget.annotations: {exc}") from exc

    @traitlets.validate("collapsed")
    def _validate_collapsed(self, proposal: dict[str, Any]) -> list[str]:
        return sorted({str(g) for g in proposal["value"]})

    @traitlets.validate("height")
    def _validate_height(self, proposal: dict[str, Any]) -> int:
        value: int = proposal["value"]
        if value != 0 and not 120 <= value <= 5000:
            raise traitlets.TraitError(
                f"GraphWidget.height={value} must be 120..5000 px, or 0 to fit the drawing"
            )
        return value

    @traitlets.validate("selected")
    def _validate_selected(self, proposal: dict[str, Any]) -> str:
        value: str = proposal["value"]
        units = self.state.get("units", {}) if self.state else {}
        if value and units and value not in units:
            known = ", ".join(sorted(units)[:5])
            raise traitlets.TraitError(
                f"GraphWidget.selected={value!r} is not a unit of the graph; use '' or one "
                f"of: {known}{' ...' if len(units) > 5 else ''}"
            )
        return value

    # ------------------------------------------------------------------ updates
    def update_from_snapshot(self, snapshot: Any, *, now: bool = False) -> None:
        """Redraw from a new ``GraphSnapshot``, at most ``max_rate_hz`` times a second.

        Safe to call from any thread (for example a topology listener on the Lab's
        control loop). Processes keep their colours; large states go as diffs. With
        ``now=True`` the update (and any pending one) is sent immediately.
        """
        self._state_throttle.submit(snapshot)
        if now:
            self._state_throttle.flush()

    def update_annotations(self, annotations: Mapping[str, Any], *, now: bool = False) -> None:
        """Set rates, backpressure, errors and missing processes, rate-limited like
        :meth:`update_from_snapshot`. Invalid annotations raise here, in the caller."""
        ann = dict(normalize_annotations(annotations))
        self._ann_throttle.submit(ann)
        if now:
            self._ann_throttle.flush()

    def follow(
        self,
        snapshots: Subscribable[[Any]],
        polls: Subscribable[[]],
        annotate: Callable[[], Mapping[str, Any]],
    ) -> None:
        """Redraw on every snapshot and re-annotate after every poll until closed.

        The subscriptions hold the widget weakly: a widget that is closed (or garbage
        collected) costs the feeds nothing more. :meth:`detach` ends them early.
        """
        self._annotate = annotate
        self._unsubscribes += [
            subscribe_weak(snapshots, self.update_from_snapshot),
            subscribe_weak(polls, self._reannotate),
        ]

    def detach(self) -> None:
        """Stop following the feeds given to :meth:`follow` (idempotent)."""
        unsubscribes = getattr(self, "_unsubscribes", [])
        while unsubscribes:
            unsubscribes.pop()()

    def mark_closed(self, when: dt.datetime | None = None) -> None:
        """The Lab this widget follows has closed: stop following it and freeze.

        Pending updates are dropped (the drawing stays as it was when the Lab closed) and
        ``closed_at`` is set, so every view greys out with "Lab closed at HH:MM:SS" and
        ignores clicks. Idempotent; the first time given wins.
        """
        self.detach()
        for throttle in (self._state_throttle, self._ann_throttle):
            throttle.cancel()
        if not self.closed_at:
            when = when or dt.datetime.now().astimezone()
            self.closed_at = when.isoformat(timespec="seconds")

    @property
    def closed(self) -> bool:
        """True once the Lab it followed closed (see :meth:`mark_closed`)."""
        return bool(self.closed_at)

    def __repr__(self) -> str:
        state = self.state or {}
        units, edges = len(state.get("units", {})), len(state.get("edges", {}))
        procs = len(state.get("processes", {}))
        parts = [
            f"{units} unit{'s' * (units != 1)}",
            f"{edges} edge{'s' * (edges != 1)}",
            f"{procs} process{'es' * (procs != 1)}",
        ]
        if self.selected:
            parts.append(f"selected={self.selected!r}")
        if self.closed_at:
            parts.append(f"Lab closed at {self.closed_at[11:19]}")
        return f"<GraphWidget {', '.join(parts)}>"

    def _reannotate(self) -> None:
        if self._annotate is not None:
            self.update_annotations(self._annotate())

    def _push_snapshot(self, snapshot: Any) -> None:
        self.push_state(graph_state(snapshot, previous=self.state))

    def push_state(self, new: Mapping[str, Any]) -> None:
        """Send ``new`` to the browser now: as a diff when the state is large and the
        diff is small, else whole."""
        new = _check_state(new)
        old = self.state
        if new.get("digest") == old.get("digest"):
            return
        if self.selected and self.selected not in new["units"]:
            self.selected = ""  # the selected unit is gone
        if state_size(new) >= self.diff_min_records and old.get("digest"):
            diff = diff_state(old, new)
            if diff_size(diff) * 2 < state_size(new):
                with self._state_not_synced():
                    self.state = new
                self.send({"type": "diff", "diff": diff})
                self.diffs_sent += 1
                return
        self.state = new
        self.full_states_sent += 1

    def _push_annotations(self, ann: dict[str, Any]) -> None:
        self.annotations = ann

    # ------------------------------------------------------------------ plumbing
    @contextlib.contextmanager
    def _state_not_synced(self) -> Iterator[None]:
        # The Python trait must hold the current state (users read graph.state, and a
        # new page asks the kernel for it), while the open views get it as a diff.
        self._suppress_state = True
        try:
            yield
        finally:
            self._suppress_state = False

    def _should_send_property(self, key: str, value: Any) -> bool:
        if key == "state" and self._suppress_state:
            return False
        if key == "layouts":
            return False  # for pages opened later, which ask for the whole state
        return bool(super()._should_send_property(key, value))

    def get_state(self, key: Any = None, drop_defaults: bool = False) -> dict[str, Any]:
        # A page that opens gets what the store holds now (another widget's views may have
        # added a layout of this topology since this widget last looked).
        wanted = key is None or key == "layouts" or (not isinstance(key, str) and "layouts" in key)
        if wanted and hasattr(self, "layout_store"):  # (not yet while __init__ opens the comm)
            self._refresh_layouts()
        return dict(super().get_state(key, drop_defaults))

    def _refresh_layouts(self) -> None:
        kept = self.layout_store.get(str(self.state.get("digest", "")), self.collapsed)
        if kept != self.layouts:
            self.layouts = kept

    def _on_custom_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        if content.get("type") == "layout":
            try:
                digest, collapsed, key, geometry, size = _check_layout_msg(content)
            except ValueError as exc:
                logger.debug("ignored a layout message from a view: bad %s", exc)
                return
            self.layout_store.put(digest, collapsed, key, geometry, size)
            self._refresh_layouts()
            return
        if content.get("type") in ("hello", "resync") and content.get("have") != self.state.get(
            "digest"
        ):
            # A view that missed a diff (or opened after one): send it the whole state.
            self.send({"type": "full", "state": self.state})
            self.full_states_sent += 1

    def _guarded(self, fn: Callable[[Any], None]) -> Callable[[Any], None]:
        def run(value: Any) -> None:
            try:
                fn(value)
            except Exception as exc:
                # Timer threads have no cell output: show the failure in the widget.
                logger.exception("graph widget update failed")
                self.py_error = "".join(traceback.format_exception_only(type(exc), exc)).strip()

        return run

    def close(self) -> None:
        self.detach()
        # getattr: close() also runs from __del__ of a widget whose __init__ failed.
        for throttle in (
            getattr(self, "_state_throttle", None),
            getattr(self, "_ann_throttle", None),
        ):
            if throttle is not None:
                throttle.cancel()
        super().close()
