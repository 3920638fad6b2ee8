"""A live scope of a tap: an anywidget drawing a sweep, spectrum, image or scatter on a
canvas.

The kernel does the heavy part (choosing the view from the dims, min/max decimation to
the pixel columns, block means of an image to the canvas' pixels, the newest points of a
scatter; see :mod:`ezmsg_lab.model.scope_frame`); the browser receives one small float32
buffer per frame (a binary trait, not JSON) and draws it.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Protocol

import anywidget
import traitlets

from ..model.scope_frame import VIEWS, SweepCache, build_frame, check_view


class ScopeSource(Protocol):
    """What a scope reads of its :class:`~ezmsg_lab.Tap` (named by this protocol, not
    imported: the tap module makes scopes)."""

    topic: str

    @property
    def received(self) -> int: ...

    @property
    def closed(self) -> bool: ...

    @property
    def window_s(self) -> float: ...

    def buffered_items(self) -> list[Any]: ...

    def close(self) -> None: ...


logger = logging.getLogger(__name__)


class ScopeWidget(anywidget.AnyWidget):
    """A live scope of a :class:`~ezmsg_lab.Tap`; make one with ``tap.scope()``.

    Parameters
    ----------
    tap : Tap
    span : float
        Seconds across the sweep (default: the tap's window, at most 10 s).
    fps : float
        Frames per second sent to the browser (1..60); a frame is sent only when new
        messages arrived.
    width, height : int
        Canvas size in pixels; ``width`` is also the number of min/max columns.
    y_range : (float, float) or None
        A fixed range; None autoscales. A sweep's or spectrum's vertical range, an
        image's colour range, a scatter's range on both axes.
    view : str
        ``"auto"`` (chosen from the newest message's dims: scatter, image, sweep or
        spectrum, see :mod:`ezmsg_lab.model.scope_frame`) or one of those to force it.
        ValueError for an unknown view, or when the tap's newest message cannot be drawn
        that way (a message arriving later that cannot shows the reason in the widget).
    owns_tap : bool
        Close the tap when the scope closes (the dashboard's scopes own theirs).

    Traits ``paused``, ``autoscale``, ``y_range`` and ``selected`` (channel indices
    shown: sweep and spectrum lanes, image lanes, scatter point sets; empty shows all)
    can be set from Python or from the widget's controls; ``view`` from Python.

    Examples
    --------
    >>> scope = tap.scope(view="image", y_range=(0, 1))  # doctest: +SKIP
    >>> scope.header["view"]  # doctest: +SKIP
    'image'

    """

    _esm = Path(__file__).parent / "static" / "scope.js"
    _css = Path(__file__).parent / "static" / "scope.css"

    frame = traitlets.Bytes(b"").tag(sync=True)
    header = traitlets.Dict().tag(sync=True)
    channel_names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    selected = traitlets.List(traitlets.Int()).tag(sync=True)
    paused = traitlets.Bool(False).tag(sync=True)
    autoscale = traitlets.Bool(True).tag(sync=True)
    y_range = traitlets.List(traitlets.Float(), default_value=[-1.0, 1.0]).tag(sync=True)
    width = traitlets.Int(800).tag(sync=True)
    height = traitlets.Int(260).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    view = traitlets.Unicode("auto").tag(sync=True)
    js_error = traitlets.Unicode("").tag(sync=True)
    py_error = traitlets.Unicode("").tag(sync=True)
    draw_ms = traitlets.Float(0.0).tag(sync=True)  # the browser's last draw time

    def __init__(
        self,
        tap: ScopeSource,
        *,
        span: float | None = None,
        fps: float = 20.0,
        width: int = 800,
        height: int = 260,
        y_range: tuple[float, float] | None = None,
        owns_tap: bool = False,
        view: str = "auto",
    ) -> None:
        if not 1 <= fps <= 60:
            raise ValueError(f"fps={fps!r} must be between 1 and 60")
        if not (isinstance(width, int) and 50 <= width <= 4000):
            raise ValueError(f"width={width!r} must be an int between 50 and 4000 pixels")
        if not (isinstance(height, int) and 50 <= height <= 2000):
            raise ValueError(f"height={height!r} must be an int between 50 and 2000 pixels")
        span_s = min(tap.window_s, 10.0) if span is None else float(span)
        if not span_s > 0:
            raise ValueError(f"span={span!r} must be > 0 seconds")
        items = tap.buffered_items()
        check_view(items[-1].message if items else None, view)
        super().__init__(width=width, height=height, title=tap.topic, view=view)
        if y_range is not None:
            self.y_range = [float(y_range[0]), float(y_range[1])]
            self.autoscale = False
        self._tap = tap
        self._owns_tap = owns_tap
        self.span_s = span_s
        self.interval = 1.0 / fps
        self.frames_sent = 0
        self.frame_ms: list[float] = []  # kernel-side time per frame (last 100)
        self._last_received = -1
        self._sweep_cache = SweepCache()  # what the last frame's sweep read, kept
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ezmsg-lab-scope", daemon=True)
        self._thread.start()

    @traitlets.validate("y_range")
    def _check_range(self, proposal: Any) -> list[float]:
        value = list(proposal["value"])
        if len(value) != 2 or not value[0] < value[1]:
            raise traitlets.TraitError(
                f"ScopeWidget.y_range={value!r}: give [low, high] with low < high"
            )
        return value

    @traitlets.validate("view")
    def _check_view(self, proposal: Any) -> str:
        value: str = proposal["value"]
        if value not in VIEWS:
            raise traitlets.TraitError(f"ScopeWidget.view={value!r}: use one of {', '.join(VIEWS)}")
        return value

    def refresh(self) -> bool:
        """Compute and send one frame now (if new data arrived); True if one was sent."""
        received = self._tap.received
        if self._tap.closed or received == self._last_received:
            return False
        t0 = time.perf_counter()
        frame = build_frame(
            self._tap.buffered_items(),
            self.width,
            self.span_s,
            list(self.selected) or None,
            view=self.view,
            rows=self.height,
            cache=self._sweep_cache,
        )
        payload = frame.values.tobytes()
        self.frame_ms = [*self.frame_ms[-99:], (time.perf_counter() - t0) * 1e3]
        # A view without choices (one image, one point set) hides the channel boxes.
        if frame.view != "none" and frame.all_channels != list(self.channel_names):
            self.channel_names = frame.all_channels
        header = frame.header()
        header["seq"] = self.frames_sent + 1
        header["labels"] = frame.channels
        with self.hold_sync():
            self.frame = payload
            self.header = header
        self.frames_sent += 1
        self._last_received = received
        return True

    def _run(self) -> None:
        # A fixed cadence (not "work, then wait an interval"), so fps is what was asked.
        next_t = time.monotonic()
        while True:
            next_t = max(next_t + self.interval, time.monotonic())
            if self._stop.wait(max(0.0, next_t - time.monotonic())):
                break
            if self._tap.closed:
                break
            if self.paused:
                continue
            try:
                self.refresh()
            except Exception:
                self.py_error = traceback.format_exc(limit=3)
                logger.exception("scope refresh failed")
                self._stop.wait(1.0)  # a failing frame must not spin

    def detach(self) -> None:
        """Stop following the tap (the widget stays displayed)."""
        stop = getattr(self, "_stop", None)  # absent when __init__ refused its options
        if stop is not None:
            stop.set()

    @property
    def tap(self) -> ScopeSource:
        return self._tap

    def close(self) -> None:
        self.detach()
        if getattr(self, "_owns_tap", False):
            self._tap.close()
        super().close()
