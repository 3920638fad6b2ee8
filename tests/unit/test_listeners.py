"""Listeners: one way to subscribe; a raising listener never stops the others."""

from __future__ import annotations

import gc
import logging

from ezmsg_lab.model.listeners import Listeners, subscribe_weak


def test_subscribe_emit_unsubscribe():
    seen = []
    hub: Listeners = Listeners("test")
    unsubscribe = hub.subscribe(lambda x: seen.append(("a", x)))
    hub.subscribe(lambda x: seen.append(("b", x)))
    hub.emit(1)
    unsubscribe()
    unsubscribe()  # twice is harmless
    hub.emit(2)
    assert seen == [("a", 1), ("b", 1), ("b", 2)]
    assert len(hub) == 1


def test_a_raising_listener_is_logged_and_skipped_for_that_event_only(caplog):
    seen = []
    hub: Listeners = Listeners("topology")

    def boom(x):
        if x == 1:
            raise ValueError("bad listener")
        seen.append(("boom", x))

    hub.subscribe(boom)
    hub.subscribe(lambda x: seen.append(("next", x)))
    with caplog.at_level(logging.ERROR, logger="ezmsg_lab.model.listeners"):
        hub.emit(1)  # must not raise
    hub.emit(2)
    assert seen == [("next", 1), ("boom", 2), ("next", 2)]
    assert hub.failures == 1
    assert "a topology listener raised" in caplog.text and "bad listener" in caplog.text


def test_a_listener_may_unsubscribe_while_called():
    hub: Listeners = Listeners("test")
    calls = []
    unsubscribe = None

    def once():
        calls.append(1)
        unsubscribe()

    unsubscribe = hub.subscribe(once)
    hub.emit()
    hub.emit()
    assert calls == [1] and len(hub) == 0


class _Widget:
    def __init__(self, seen):
        self.seen = seen

    def on_event(self, x):
        self.seen.append(x)


def test_weak_subscription_ends_when_its_object_is_collected():
    seen: list[int] = []
    hub: Listeners = Listeners("test")
    widget = _Widget(seen)
    subscribe_weak(hub, widget.on_event)
    hub.emit(1)
    assert len(hub) == 1
    del widget
    gc.collect()
    hub.emit(2)  # the listener notices its widget is gone and unsubscribes
    assert seen == [1]
    assert len(hub) == 0
