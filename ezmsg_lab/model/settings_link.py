"""Wiring a :class:`~ezmsg_lab.widgets.settings_form.SettingsForm` to a running unit.

A :class:`FormLink` sends the form's edits through the Lab (validated, confirmed) and
follows the unit's settings events so the form shows changes made elsewhere. Events arrive
on the Lab's control loop, which must never wait for a widget: a form that is sending
holds its lock until the control loop delivers the confirmation. So the link only records
the newest value there and hands the widget update to the kernel's own loop (where widget
callbacks run) or, outside a kernel, to a worker thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import html
import threading
import weakref
from collections.abc import Callable
from typing import Any

from ..errors import LabError
from .paths import get_path
from .settings_changes import Health, SetResult, effect_message, settings_equal
from .settings_store import SettingsStore, structured

__all__ = ["FormLink"]


def _value_of(snapshot_value: Any) -> Any:
    """The settings object of an ezmsg snapshot value, else its structured dict."""
    import pickle

    raw = getattr(snapshot_value, "serialized", None)
    if raw is not None:
        try:
            return pickle.loads(raw)
        except Exception:  # the class is not importable here: show the structured value
            pass
    return structured(snapshot_value)


class FormLink:
    """Connects one form to one unit.

    Parameters
    ----------
    form : LabSettingsForm
        The form (held weakly; its ``close()`` detaches the link).
    address : str
        The unit.
    store : SettingsStore
        The Lab's settings store, whose listener feeds the form.
    apply : callable
        ``apply(updates) -> (SetResult, counters)``: validate, send and confirm (raises on
        refusal; the form shows the error); ``counters`` are the unit's message counters
        before sending, for ``watch``.
    watch : callable, optional
        ``watch(result, counters) -> Health``: the closed-loop check, run in a background
        thread so a live slider never waits for it.
    worker : callable
        Returns the executor used outside a kernel.
    """

    def __init__(
        self,
        form: Any,
        address: str,
        store: SettingsStore,
        *,
        apply: Callable[[dict[str, Any]], tuple[SetResult, Any]],
        watch: Callable[[SetResult, Any], Health] | None,
        worker: Callable[[], concurrent.futures.Executor],
    ) -> None:
        self.address, self.store = address, store
        self._apply, self._watch, self._worker = apply, watch, worker
        self.form_ref = weakref.ref(form)
        try:  # in a kernel: its loop, so widget writes happen on the kernel thread
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None
        self._pending: Any = None
        self._scheduled = False
        self._generation = 0
        self._lock = threading.Lock()
        form.link = self
        form.on_submit = self.submit
        self._unsubscribe = store.subscribe(self.on_event)

    def detach(self) -> None:
        self._unsubscribe()

    def _call_in_ui(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)
        else:
            self._worker().submit(fn, *args)

    # ------------------------------------------------------------------ following
    def on_event(self, address: str, value: Any, event: Any) -> None:
        """Store listener (control loop): remember the newest value, deliver it later."""
        if address != self.address:
            return
        if self.form_ref() is None:
            self.detach()
            return
        with self._lock:
            self._pending = value
            if self._scheduled:
                return  # one delivery of the newest value is enough
            self._scheduled = True
        self._call_in_ui(self.deliver)

    def deliver(self) -> None:
        with self._lock:
            value, self._pending, self._scheduled = self._pending, None, False
        form = self.form_ref()
        if form is None or value is None:
            return
        obj = _value_of(value)
        form.apply_external(obj)
        for path in form.dirty_paths:
            # The confirmation of this form's own earlier send is not a change "elsewhere".
            if path in form.requested and settings_equal(get_path(obj, path), form.requested[path]):
                form.editors[path].set_note(None)

    # ------------------------------------------------------------------ sending
    def submit(self, updates: dict[str, Any]) -> None:
        """The form's ``on_submit``: errors propagate, and the form shows them."""
        result, before = self._apply(updates)
        form = self.form_ref()
        if form is None:
            return
        form.last_result = result
        form.show_requested_vs_applied(result.requested, result.value)
        if self._watch is not None:
            with self._lock:
                self._generation += 1
                generation = self._generation
            threading.Thread(
                target=self._watch_in_background,
                args=(result, before, generation),
                name="ezmsg-lab-form-watch",
                daemon=True,
            ).start()

    def _watch_in_background(self, result: SetResult, before: Any, generation: int) -> None:
        assert self._watch is not None
        try:
            health = self._watch(result, before)
        except LabError:  # the Lab closed meanwhile
            return
        if not health.problem or generation != self._generation:
            return  # fine, or superseded by a newer change from this form
        self._call_in_ui(self._show_problem, dataclasses.replace(result, health=health))

    def _show_problem(self, result: SetResult) -> None:
        form = self.form_ref()
        if form is None:
            return
        form.last_result = result
        text = effect_message(result).replace("\n ", "")
        form.status.value = f"<span style='color:#c00'>{html.escape(text)}</span>"
