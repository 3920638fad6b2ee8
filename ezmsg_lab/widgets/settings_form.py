"""ipywidgets forms for a unit's settings, built from its field-spec tree.

A form validates what the user enters with the same rules as ``lab.set`` and hands the
coerced values to a callback; it never talks to ezmsg itself. Three update policies:
``"live"`` (debounced, 150 ms by default), ``"release"`` (on slider release / Enter) and
``"manual"`` (Apply and Reset buttons).

A form sends only what a user did. Drawing, re-drawing, following a change made elsewhere
or a value arriving from the unit never sends anything: the form's own writes are not
edits, and a value a control reports that is the unit's value (within half a slider step:
a browser's slider can only hold its grid points) is not an edit either, whoever set it.

Example
-------
>>> from ezmsg_lab.demo.units import FilterSettings
>>> from ezmsg_lab.model.settings_schema import spec_from_class
>>> sent = []
>>> form = SettingsForm(spec_from_class(FilterSettings), FilterSettings(),
...                     on_submit=sent.append, policy="manual")
>>> form.control("taps").value = 63
>>> form.apply()
{'taps': 63}
>>> sent
[{'taps': 63}]
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

import ipywidgets as W
import numpy as np

from ..model.paths import get_path
from ..model.settings_changes import settings_equal
from ..model.settings_schema import FieldSpec, SettingsSpec
from ..model.settings_validate import SettingsValidationError, coerce_field
from ._settings_editors import Editor, Group

__all__ = ["SettingsForm", "SettingsPanel", "settings_panel"]

Policy = Literal["live", "release", "manual"]


_UNSET = object()


def _number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(
        x, (bool, np.bool_)
    )


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        try:
            return bool(np.array_equal(np.asarray(a), np.asarray(b)))
        except (TypeError, ValueError):
            return False
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:  # odd __eq__: treat as different, the note is only informative
        return False


class _Debouncer:
    """Run ``fn`` once, ``delay`` seconds after the last ``trigger``.

    In a kernel the widget callbacks run on the kernel's asyncio loop, so the delay is a
    ``loop.call_later`` and ``fn`` runs on the kernel thread like any callback; without a
    running loop (tests, plain scripts) a ``threading.Timer`` does it.
    """

    def __init__(self, delay: float, fn: Callable[[], object]) -> None:
        self.delay, self.fn = delay, fn
        self._handle: Any = None
        self._lock = threading.Lock()

    def trigger(self) -> None:
        if self.delay <= 0:
            self.fn()
            return
        with self._lock:
            self._cancel_locked()
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                self._handle = loop.call_later(self.delay, self.fn)
            else:
                self._handle = threading.Timer(self.delay, self.fn)
                self._handle.daemon = True
                self._handle.start()

    def cancel(self) -> None:
        with self._lock:
            self._cancel_locked()

    def _cancel_locked(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class SettingsForm(W.VBox):  # type: ignore[misc]  # ipywidgets is untyped: its classes are Any here
    """An editable form for one unit's settings.

    Parameters
    ----------
    spec : SettingsSpec or None
        The unit's field-spec tree (None shows the value read-only).
    value : Any
        The current settings object (or its structured dict).
    on_submit : callable, optional
        Called with ``{dotted path: coerced value}``; the Lab wires it to ``lab.set``.
        Exceptions it raises are shown in the form.
    policy : {"live", "release", "manual"}
        When edits are sent: debounced while editing, on release/Enter, or on Apply.
    debounce_s : float
        Debounce delay of the ``"live"`` policy.
    unit : str
        Unit address, shown in the title and in error messages.
    read_only_reason : str, optional
        Render every field read-only with this reason (e.g. no ``INPUT_SETTINGS``).
    """

    def __init__(
        self,
        spec: SettingsSpec | None,
        value: Any,
        *,
        on_submit: Callable[[dict[str, Any]], Any] | None = None,
        policy: Policy = "live",
        debounce_s: float = 0.15,
        unit: str = "",
        read_only_reason: str | None = None,
    ) -> None:
        if policy not in ("live", "release", "manual"):
            raise ValueError(f"policy={policy!r}: use 'live', 'release' or 'manual'")
        super().__init__()
        self.spec, self.unit, self.policy = spec, unit, policy
        self.on_submit = on_submit
        self.last_error: BaseException | None = None
        self.requested: dict[str, Any] = {}
        self._value = value
        self._lock = threading.RLock()
        self._suppress = 0
        self._suppress_thread: int | None = None  # the thread writing the unit's values
        self._debounce = _Debouncer(debounce_s if policy == "live" else 0.0, self.flush)
        self.editors: dict[str, Editor] = {}
        self.status = W.HTML("")
        title = html.escape(unit or (spec.type_name if spec else "settings"))
        head = [W.HTML(f"<b>{title}</b>")]
        if spec is not None and spec.source == "metadata":
            head.append(
                W.HTML(
                    f"<small>Built from ezmsg's metadata: {html.escape(spec.reason or 'settings class not importable')}</small>"
                )
            )
        if spec is None:
            read_only_reason = read_only_reason or "no settings schema is known for this unit"
            body: list[W.Widget] = [W.HTML(f"<code>{html.escape(repr(value))[:2000]}</code>")]
        else:
            body = [self._build(f, continuous=policy == "live") for f in spec.fields]
        self.read_only_reason = read_only_reason
        if read_only_reason:
            head.append(
                W.HTML(
                    f"<span style='color:#666'>Read-only: {html.escape(read_only_reason)}</span>"
                )
            )
            for ed in self.editors.values():
                ed.set_disabled(True)
        self.apply_button = W.Button(description="Apply", button_style="primary")
        self.reset_button = W.Button(description="Reset")
        self.apply_button.on_click(lambda _b: self.apply())
        self.reset_button.on_click(lambda _b: self.reset())
        buttons = [W.HBox([self.apply_button, self.reset_button])]
        if policy != "manual" or read_only_reason:
            buttons = []
        self.children = [*head, *body, *buttons, self.status]

    # ------------------------------------------------------------------------ building
    def _build(self, spec: FieldSpec, *, continuous: bool) -> W.Widget:
        """A row or group for ``spec``; never raises (failures become read-only rows)."""
        current = get_path(self._value, spec.path)
        try:
            if spec.kind == "dataclass" and spec.children and spec.editable:
                rows = [self._build(c, continuous=continuous) for c in spec.children]
                return Group(spec, rows).widget
            ed = Editor(spec, current, continuous=continuous)
        except Exception as exc:  # a value a widget cannot hold: show it, do not break the form
            fallback = FieldSpec(
                name=spec.name,
                path=spec.path,
                kind="any",
                type_display=spec.type_display,
                editable=False,
                reason=f"no widget could show it ({type(exc).__name__}: {exc})",
            )
            ed = Editor(fallback, current, continuous=continuous)
        self.editors[spec.path] = ed
        for w in (ed.control, ed.none_toggle):
            if w is not None and ed.editable:
                w.observe(lambda _c, p=spec.path: self._changed(p), names=["value"])
        return ed.widget

    # ----------------------------------------------------------------------- accessors
    def control(self, path: str) -> W.Widget:
        """The input widget of a field (set ``.value`` on it as a user would)."""
        return self.editors[path].control

    def none_toggle(self, path: str) -> W.Checkbox:
        """The "None" checkbox of an Optional field."""
        toggle = self.editors[path].none_toggle
        if toggle is None:
            raise KeyError(f"{path} is not an Optional field with a None toggle")
        return toggle

    @property
    def dirty_paths(self) -> list[str]:
        """Fields edited here and not yet sent (external updates leave them alone)."""
        return [p for p, e in self.editors.items() if e.dirty]

    @property
    def errors(self) -> dict[str, str]:
        """Inline error text per field (HTML stripped to the message)."""
        return {p: html.unescape(e.error.value) for p, e in self.editors.items() if e.error.value}

    # -------------------------------------------------------------------------- events
    def _changed(self, path: str) -> None:
        if self._suppress and self._suppress_thread == threading.get_ident():
            return  # the form's own write (a value from the unit), not an edit
        ed = self.editors[path]
        with self._lock:
            if self._shows_unit_value(ed):
                # A control reporting the unit's own value (a browser snapping a slider
                # to its grid, or a user moving back to where the unit is): no edit.
                ed.dirty = False
                ed.set_note(None)
                ed.set_error(None)
                return
            ed.dirty = True
            ed.set_note(None)
            self._check(ed)
        if self.policy != "manual":
            self._debounce.trigger()

    def _shows_unit_value(self, ed: Editor, value: Any = _UNSET) -> bool:
        """Whether the editor holds the unit's current value (or ``value``, a settings
        value), within its tolerance."""
        unit_value = get_path(self._value if value is _UNSET else value, ed.path)
        try:
            raw = ed.read()
        except ValueError:
            return False
        tol = ed.tolerance()
        if tol > 0 and _number(raw) and _number(unit_value):
            return bool(abs(raw - unit_value) <= tol * (1 + 1e-9))
        try:
            value = coerce_field(ed.spec, raw, unit=self.unit, current=unit_value)
        except (SettingsValidationError, ValueError):
            return False
        return settings_equal(value, unit_value)

    def _check(self, ed: Editor) -> tuple[bool, Any]:
        try:
            value = coerce_field(
                ed.spec, ed.read(), unit=self.unit, current=get_path(self._value, ed.path)
            )
        except SettingsValidationError as err:
            ed.set_error(f"{err.rule}. {err.hint}".strip())
            return False, None
        except ValueError as err:
            ed.set_error(str(err))
            return False, None
        ed.set_error(None)
        return True, value

    def cancel_pending(self) -> None:
        """Drop an edit still waiting for its debounce: it is not sent."""
        self._debounce.cancel()

    def flush(self) -> dict[str, Any] | None:
        """Validate every edited field and send them in one call (all or nothing).

        Returns the updates sent, or None when a field is invalid or the callback failed
        (the reason is shown in the form).
        """
        self._debounce.cancel()
        with self._lock:
            pending = [e for e in self.editors.values() if e.dirty]
            for ed in pending:
                if self._shows_unit_value(ed):  # edited back, or the unit moved to it
                    ed.dirty = False
            pending = [e for e in pending if e.dirty]
            if not pending:
                return None
            updates, bad = {}, []
            for ed in pending:
                ok, value = self._check(ed)
                if ok:
                    updates[ed.path] = value
                else:
                    bad.append(ed.path)
            if bad:
                self._status(f"Fix {', '.join(bad)}: nothing was sent.", error=True)
                return None
            if self.on_submit is not None:
                try:
                    self.on_submit(updates)
                except Exception as exc:  # shown in the form, kept in last_error: never lost
                    self.last_error = exc
                    self._status(f"{type(exc).__name__}: {exc}", error=True)
                    return None
            for ed in pending:
                ed.dirty = False
            self.requested.update(updates)
            self.last_error = None
            self._status(f"Sent {', '.join(updates)}.")
            return updates

    def apply(self) -> dict[str, Any] | None:
        """Send the edited fields now (the Apply button)."""
        return self.flush()

    def reset(self) -> None:
        """Discard edits: every field shows the last known value again (the Reset button)."""
        self._debounce.cancel()
        with self._lock, self._quiet():
            for ed in self.editors.values():
                ed.dirty = False
                ed.set_error(None)
                ed.set_note(None)
                ed.write(get_path(self._value, ed.path))
            self._status("")

    def apply_external(self, value: Any) -> None:
        """Show a settings value that changed elsewhere, keeping fields being edited.

        Fields with unsent edits keep what the user typed and get a note with the new
        value; every other field is updated.
        """
        with self._lock, self._quiet():
            old, self._value = self._value, value
            for path, ed in self.editors.items():
                new = get_path(value, path)
                if (
                    not ed.dirty
                    and not self._shows_unit_value(ed, old)
                    and not self._shows_unit_value(ed, value)
                ):
                    # Changed by someone since the form last showed the unit's value, and
                    # its change callback has not run yet (it waits for this lock on
                    # another thread): an edit in flight, not a value to overwrite. A
                    # control that already shows the new value is the form's own edit,
                    # now confirmed by the unit.
                    ed.dirty = True
                if ed.dirty:
                    ed.set_note(f"changed elsewhere to {new!r} while you edit")
                    continue
                ed.set_error(None)
                ed.write(new)

    def show_requested_vs_applied(self, requested: Any, applied: Any) -> list[str]:
        """Mark fields where what was requested differs from what the unit applied.

        ``requested`` is ``{dotted path: value}`` or a settings object; returns the paths
        that differ (their rows show both values).
        """
        if isinstance(requested, Mapping):
            items = {p: v for p, v in requested.items()}
        else:
            items = {p: get_path(requested, p) for p in self.editors}
        differ = []
        for path, ed in self.editors.items():
            keys = [k for k in items if k == path or path.startswith(k + ".")]
            if not keys:
                continue
            want = (
                items[keys[0]]
                if keys[0] == path
                else get_path(items[keys[0]], path[len(keys[0]) + 1 :])
            )
            got = get_path(applied, path)
            if _same(want, got):
                ed.set_note(None)
            else:
                differ.append(path)
                ed.set_note(f"requested {want!r}, applied {got!r}")
        return differ

    def close(self) -> None:
        """Cancel a pending debounce and close the widgets."""
        debounce = getattr(self, "_debounce", None)  # __del__ may run after a failed __init__
        if debounce is not None:
            debounce.cancel()
        super().close()

    # ------------------------------------------------------------------------- helpers
    def _status(self, text: str, *, error: bool = False) -> None:
        color = "#c00" if error else "#666"
        self.status.value = (
            f"<span style='color:{color}'>{html.escape(text)}</span>" if text else ""
        )

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """Programmatic widget writes inside this block are not user edits."""
        self._suppress += 1
        self._suppress_thread = threading.get_ident()
        try:
            yield
        finally:
            self._suppress -= 1


class SettingsPanel(W.VBox):  # type: ignore[misc]  # ipywidgets is untyped: its classes are Any here
    """Every unit's form in an Accordion, with a search box over units and field names."""

    def __init__(self, forms: Mapping[str, SettingsForm]) -> None:
        super().__init__()
        self.forms = dict(forms)
        self.search = W.Text(placeholder="filter units and fields", continuous_update=True)
        self.accordion = W.Accordion()
        self.search.observe(lambda _c: self._refresh(), names=["value"])
        self.children = [self.search, self.accordion]
        self._refresh()

    @property
    def visible(self) -> list[str]:
        """Addresses of the units the filter currently shows."""
        return list(self.accordion.titles)

    def _refresh(self) -> None:
        q = self.search.value.strip().lower()
        shown = [
            (addr, form)
            for addr, form in self.forms.items()
            if not q or q in addr.lower() or any(q in p.lower() for p in form.editors)
        ]
        self.accordion.children = [f for _, f in shown]
        self.accordion.titles = tuple(a for a, _ in shown)


def settings_panel(forms: Mapping[str, SettingsForm]) -> SettingsPanel:
    """A searchable panel of forms, one per unit address.

    Example
    -------
    >>> panel = settings_panel({"DEMO/FILTER": form})  # doctest: +SKIP
    """
    return SettingsPanel(forms)
