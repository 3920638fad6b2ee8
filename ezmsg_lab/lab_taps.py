"""Data taps: hold the messages of a topic in the notebook (``lab.tap(topic)``).

A :class:`Tap` feeds a ring buffer bounded by a time window and a memory cap, and
observing never throttles the pipeline. Its messages come sampled from the unit process
that publishes them when the Lab launched it (nothing subscribes to the topic, so ezmsg's
local path stays local), else from a leaky subscription on the Lab's control loop.
"""

from __future__ import annotations

import importlib
import math
import threading
import time
from typing import Any, Protocol

import pandas as pd

from .errors import TapError
from .feeds.taps import SampledTapFeed, TapFeed
from .model.tap_buffer import TapBuffer
from .model.tap_convert import describe, to_data

DEFAULT_MAX_BYTES = 256 * 1024 * 1024


class TapOwner(Protocol):
    """What a :class:`Tap` needs of the service that opened it."""

    widgets: Any  # the Lab's WidgetRegistry

    def topic_msg_type(self, topic: str) -> str | None: ...

    def close_tap(self, tap: Tap) -> None: ...


def _seconds(value: Any, name: str) -> float:
    """A positive duration: seconds (number) or a pandas duration string (``"10s"``)."""
    try:
        if isinstance(value, bool):
            raise TypeError
        seconds = pd.Timedelta(value).total_seconds() if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"{name}={value!r} must be a positive duration such as 10 or '10s'")
    return seconds


class Tap:
    """The last messages of one topic, held in this kernel. Made by :meth:`Lab.tap`.

    Attributes
    ----------
    topic : str
    received, dropped : int
        Messages the tap received, and messages it did not get: over its
        ``max_rate_hz`` or behind a busy kernel (a sampled tap), or dropped by ezmsg's
        leaky queue (a subscriber). A loss never slows the pipeline and every one is
        counted here.
    """

    def __init__(
        self, lab: TapOwner, topic: str, buffer: TapBuffer, feed: TapFeed | SampledTapFeed
    ) -> None:
        self._lab = lab
        self.topic = topic
        self._buffer = buffer
        self._feed = feed
        self._closed = False
        self._lock = threading.Lock()
        self.opened_at = time.time()

    # ------------------------------------------------------------------ counts
    @property
    def received(self) -> int:
        return self._buffer.received

    @property
    def dropped(self) -> int:
        return self._buffer.dropped

    @property
    def errors(self) -> int:
        """Messages the tap could not read (see ``inspect()["last_error"]``)."""
        return self._buffer.errors

    @property
    def window_s(self) -> float:
        return self._buffer.window_s

    @property
    def max_bytes(self) -> int:
        return self._buffer.max_bytes

    @property
    def nbytes(self) -> int:
        """Bytes the buffered messages hold now (never much above ``max_bytes``)."""
        return self._buffer.nbytes

    @property
    def closed(self) -> bool:
        return self._closed

    def rate_hz(self) -> float:
        """Messages per second over the last 2 s (NaN before two messages)."""
        return self._buffer.rate_hz()

    # ------------------------------------------------------------------ data
    def latest(self) -> Any:
        """The newest message (ezmsg's own object), or None before the first."""
        item = self._buffer.latest()
        return None if item is None else item.message

    def messages(self, since: Any = None) -> list[Any]:
        """The buffered messages, oldest first; ``since``: seconds ago or ``"5s"``."""
        return [it.message for it in self._buffer.items(self._since(since))]

    def buffered_items(self) -> list[Any]:
        """The buffered items (``message``, ``received`` UTC seconds), oldest first."""
        return self._buffer.items()

    def items_since(self, number: int) -> tuple[list[Any], int, int]:
        """Items from running number ``number`` on (the tap's first message is 0), the
        number to ask for next, and how many asked for had already left the buffer (a
        recorder reads each message once this way)."""
        return self._buffer.since(number)

    def data(self, since: Any = None) -> Any:
        """The window as data.

        - ``AxisArray`` messages: one ``xarray.DataArray`` joined along the time axis,
          with coordinates from the axes, a ``received`` coordinate (UTC, the Lab's one
          time base) and the newest message's ``attrs`` plus ``topic`` and ``fs``;
        - dataclasses: a DataFrame, one row per message (``received`` then the fields);
        - anything else: a list of the messages.

        ``since`` keeps only the last seconds (``2.5`` or ``"2.5s"``).

        Examples
        --------
        >>> x = tap.data()  # doctest: +SKIP
        >>> x.sel(ch="ch0").plot()  # doctest: +SKIP
        """
        return to_data(self._buffer.items(self._since(since)), self.topic)

    def _since(self, since: Any) -> float | None:
        if since is None:
            return None
        seconds = _seconds(since, "since")
        newest = self._buffer.latest()
        ref = newest.received if newest is not None else time.time()
        return ref - seconds

    def inspect(self) -> dict[str, Any]:
        """What the topic carries: type, module, dims, shape, dtype, axes, attrs, a
        short repr, the rate, and the tap's counts."""
        item = self._buffer.latest()
        info: dict[str, Any] = {
            "topic": self.topic,
            "msg_type": self._msg_type(),
            "via": self._feed.via,
        }
        if item is None:
            info["status"] = (
                "closed" if self._closed else "no message yet: is the topic publishing?"
            )
        else:
            info.update(describe(item.message))
        rate = self.rate_hz()
        info.update(
            rate_hz=None if math.isnan(rate) else round(rate, 3),
            received=self.received,
            dropped=self.dropped,
            errors=self.errors,
            buffered=len(self._buffer),
            nbytes=self.nbytes,
            window_s=self.window_s,
            max_bytes=self.max_bytes,
        )
        budget = getattr(self._feed, "budget", None)
        if budget is not None and (state := budget()) is not None:
            info["budget"] = state
        if self._buffer.last_error is not None:
            info["last_error"] = self._buffer.last_error
        return info

    def _msg_type(self) -> str | None:
        return self._lab.topic_msg_type(self.topic)

    def scope(self, **options: Any) -> Any:
        """A live scope of this tap: a sweep (time × channels), spectrum, image
        (spectrogram or a 2-D array) or scatter (points) view chosen from the dims and
        reduced in the kernel, with pause, channel selection and autoscale or a fixed
        range. Options: ``view`` (``"auto"`` or one of those to force it: ValueError if
        the newest message cannot be drawn so), ``span``, ``fps``, ``width``, ``height``,
        ``y_range`` (see :class:`~ezmsg_lab.widgets.scope.ScopeWidget`)."""
        if self._closed:
            raise TapError(f"The tap on {self.topic!r} is closed; open a new one with lab.tap().")
        from .widgets.scope import ScopeWidget

        widget = ScopeWidget(self, **options)
        self._lab.widgets.add(widget, replaces_cell_output=True)
        return widget

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Unsubscribe and free the buffer. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._lab.close_tap(self)
        self._buffer.clear()

    def __enter__(self) -> Tap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        info = self.inspect()
        state = "closed" if self._closed else "open"
        kind = info.get("type", info.get("msg_type") or "?")
        shape = f" shape={info['shape']}" if "shape" in info else ""
        dims = f" dims={info['dims']}" if "dims" in info else ""
        rate = f"{info['rate_hz']:g} Hz" if info["rate_hz"] is not None else "no rate yet"
        held = (
            f" held to {info['budget']['rate_hz']:g} msg/s by its unit's CPU budget"
            if "budget" in info
            else ""
        )
        return (
            f"<Tap {self.topic} ({state}): {kind}{dims}{shape}, {rate}, "
            f"received={self.received} dropped={self.dropped} buffered={len(self._buffer)} "
            f"window={self.window_s:g}s{held}>"
        )


def _check_importable(topic: str, msg_type: str | None) -> None:
    """Raise TapError when this kernel cannot import the topic's message class: the
    tap could not unpickle a single message."""
    if not msg_type or "." not in msg_type:
        return
    module, _, name = msg_type.rpartition(".")
    try:
        obj: Any = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise TapError(
            f"Topic {topic!r} carries {msg_type}, which this kernel cannot import "
            f"({type(exc).__name__}: {exc}), so a tap could not read its messages. Move "
            "that class into a module both the pipeline and this kernel can import (not "
            "the pipeline script's __main__), or add its folder to sys.path."
        ) from None
