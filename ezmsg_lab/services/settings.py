"""Validated live tuning: ``lab.set``, forms, undo (the Lab's settings service).

Every change is validated and coerced on the Lab side against the unit's own settings
class (unpickled from ezmsg's settings snapshot) before anything is sent, goes out as one
message (one whole settings object, the current one with the changed fields replaced,
through the Lab's persistent publisher), and is confirmed by ezmsg's settings event. Then the Lab watches the unit for a moment, because a
confirmed value can still break it (see :mod:`ezmsg_lab.model.settings_changes`).

When the class cannot be imported in this kernel (a graph started by a script whose units
live in its ``__main__``), nothing is unpickled: values are validated against ezmsg's
schema metadata, the pickle's structure and the current structured value, sent field by
field through ezmsg's field update and confirmed from the event's structured value.

Changes to one unit are applied one at a time in the order they were asked for (a FIFO
per unit), whichever thread asks; changes to different units go in parallel.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import pickle
import sys
import threading
import time
from collections.abc import Coroutine, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

from ..errors import LabError, LabTimeoutError
from ..feeds.settings_control import (
    DEFAULT_WATCH_S,
    ChangeWatcher,
    Counters,
    SettingsControl,
    SettingsRefusedError,
    structured_matcher,
    unpickled,
)
from ..model.paths import get_path
from ..model.settings_changes import (
    Health,
    SetResult,
    SettingsEffectError,
    UnitQueue,
    change_call,
    effect_message,
    settings_equal,
)
from ..model.settings_link import FormLink
from ..model.settings_schema import (
    SettingsSpec,
    spec_from_class,
    spec_from_snapshot,
    structured_diff,
    to_wire,
)
from ..model.settings_store import structured
from ..model.settings_validate import build_update, validate_updates
from ..model.snapshot import is_collection
from .graph_info import check_unit

if TYPE_CHECKING:
    from ..feeds.profiling import ProfilingPoller
    from ..model.logs import LogStore
    from ..model.metrics import MetricsStore
    from ..model.settings_store import SettingsStore
    from ..runtime.connection import Connection
    from ..widgets.settings_form import SettingsForm, SettingsPanel
    from .graph_info import GraphInfo
    from .session import Session

__all__ = ["SetResult", "SettingsEffectError", "SettingsRefusedError", "SettingsService"]

_SETTINGS_TOPIC_SUFFIX = "/INPUT_SETTINGS"
MAX_UNDO = 1000  # changes kept for lab.undo()


@functools.cache
def lab_form_classes() -> tuple[type, type]:
    """The Lab's form and panel classes (ipywidgets is imported only when a form is made)."""
    from ..widgets.settings_form import SettingsForm, SettingsPanel

    class LabSettingsForm(SettingsForm):
        """A SettingsForm wired to a Lab; ``close()`` stops it following its unit.

        ``last_result`` is the last change it sent (a SetResult, with ``health`` once the
        unit was watched).
        """

        link: FormLink | None = None
        last_result: SetResult | None = None

        def close(self) -> None:
            link, self.link = self.link, None
            if link is not None:
                link.detach()
            super().close()

    class LabSettingsPanel(SettingsPanel):
        """A SettingsPanel whose ``close()`` closes its forms."""

        def close(self) -> None:
            for form in self.forms.values():
                form.close()
            super().close()

    return LabSettingsForm, LabSettingsPanel


def _merge(fields: Mapping[str, Any] | None, kw: dict[str, Any]) -> dict[str, Any]:
    if fields is not None and not isinstance(fields, Mapping):
        raise TypeError(
            f"fields must be a dict of {{field path: value}}, got {type(fields).__name__}; "
            "e.g. lab.set('DEMO/FILTER', {'cutoff_hz': 30}) or lab.set('DEMO/FILTER', cutoff_hz=30)"
        )
    updates = dict(fields or {})
    both = sorted(set(updates) & set(kw))
    if both:
        raise TypeError(f"{', '.join(both)} given both in the dict and as keywords")
    updates.update(kw)
    if not updates:
        raise TypeError("Nothing to set: give fields, e.g. lab.set('DEMO/FILTER', cutoff_hz=30)")
    return updates


class SettingsService:
    """Settings API of a Lab: :meth:`set`, :meth:`undo`, :meth:`revert`,
    :meth:`temporarily`, :meth:`settings_form`, :meth:`settings_panel`."""

    def __init__(
        self,
        session: Session,
        conn: Connection,
        store: SettingsStore,
        graph: GraphInfo,
        poller: ProfilingPoller,
        metrics: MetricsStore,
        logs: LogStore,
    ) -> None:
        self._session = session
        self._store = store
        self._graph = graph
        self._control = SettingsControl(conn, store)
        assert session.loop is not None, "the session's loop is made first"
        self._watcher = ChangeWatcher(session.loop, poller, metrics, logs)
        self._lock = threading.Lock()
        self._queues: dict[str, UnitQueue] = {}
        self._undo: list[SetResult] = []
        self._specs: dict[type, SettingsSpec] = {}
        self._parsed: dict[str, tuple[Any, SettingsSpec | None, Any]] = {}
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    def _queue(self, address: str) -> UnitQueue:
        with self._lock:
            return self._queues.setdefault(address, UnitQueue())

    def parse(self, address: str, value: Any) -> tuple[SettingsSpec | None, Any]:
        """(spec, settings object or None) of a snapshot value, cached per value."""
        cached = self._parsed.get(address)
        if cached is not None and cached[0] is value:
            return cached[1], cached[2]
        obj = unpickled(value)
        if obj is not None and dataclasses.is_dataclass(obj):
            cls = type(obj)
            spec = self._specs.get(cls)
            if spec is None:
                schema = getattr(value, "settings_schema", None)
                spec = spec_from_class(cls, json_schema=getattr(schema, "json_schema", None))
                self._specs[cls] = spec
        else:
            obj, spec = None, spec_from_snapshot(value)
        self._parsed[address] = (value, spec, obj)
        return spec, obj

    def _worker(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    1, thread_name_prefix="ezmsg-lab-forms"
                )
            return self._executor

    def watching(self, unit: str | None) -> bool:
        """True while a change to ``unit`` is being watched (its errors are reported there)."""
        return unit is not None and bool(self._watcher.watching.get(unit))

    async def forget_connection(self) -> None:
        """Before a reconnect: the settings publishers belonged to the old session."""
        await self._control.drop_publishers()

    async def close(self) -> None:
        """On close: release the Lab's settings publishers and the forms' worker."""
        await self._control.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ lab.set
    def set(
        self,
        address: str,
        fields: Mapping[str, Any] | None = None,
        /,
        *,
        check: bool = False,
        timeout: float | None = None,
        watch: bool | float = True,
        **kw: Any,
    ) -> SetResult:
        """Change a running unit's settings, validated first, confirmed by ezmsg.

        Parameters
        ----------
        address : str
            The unit, e.g. ``"DEMO/FILTER"``.
        fields : dict, optional
            ``{field path: value}``; dotted paths reach nested dataclasses
            (``{"tone.freq_hz": 7}``). Keyword arguments add to it (fields named
            ``check``, ``timeout`` or ``watch`` need the dict form).
        check : bool
            Raise :class:`SettingsEffectError` when the unit starts raising or stops
            publishing after the change, instead of printing a notice. The change stays in
            effect either way: ``lab.undo()`` reverts it.
        timeout : float, optional
            Seconds until the change must be confirmed (default: the Lab's timeout).
        watch : bool or float
            Watch the unit after the change for this many seconds (True: 0.75 s; it returns
            as soon as the unit is seen working). False skips the watch.

        Returns
        -------
        SetResult
            ``requested``, ``applied`` (read back from ezmsg's settings event),
            ``previous``, ``seq``, ``elapsed_s`` and ``health``.

        Raises
        ------
        SettingsValidationError
            A value was refused by the Lab's checks (type, bounds, choices, unknown
            field); nothing was sent. Several fields change all or nothing.

        Notes
        -----
        When the unit's settings class cannot be imported in this kernel (a graph started
        by a script, units in its ``__main__``), several fields are applied one at a time,
        in the order given, each confirmed by its own settings event: every field is
        validated before the first is sent, and if the unit refuses one, the fields
        already applied are put back and the error says so. Enum fields then take the
        member's value as ``lab.settings()`` shows it (``mode="fast"``); the unit's
        process turns it into its own member. A nested dataclass is set by dotted paths
        (``{"tone.freq_hz": 7}``), not as a whole.
        SettingsRefusedError
            The unit cannot take live settings, or ezmsg refused the value.
        LabTimeoutError
            No settings event confirmed the change in time.

        Examples
        --------
        >>> lab.set("DEMO/FILTER", cutoff_hz=30)  # doctest: +SKIP
        <SetResult DEMO/FILTER: cutoff_hz 20.0 -> 30.0 (applied)>
        >>> lab.set("DEMO/SOURCE", {"tone.freq_hz": 7, "noise_std": 0.1})  # doctest: +SKIP
        """
        updates = _merge(fields, kw)
        result, before = self._settings_apply(
            address, updates, timeout=timeout, record=True, counters=bool(watch)
        )
        return self._settings_after(result, watch, check, before)

    def undo(
        self, *, timeout: float | None = None, watch: bool | float = True, check: bool = False
    ) -> SetResult:
        """Revert the last settings change this Lab made (and not yet undone).

        Only the fields that change set are put back, to their values before it; changes
        made since by others to other fields stay. Repeated calls go further back.

        Examples
        --------
        >>> lab.set("DEMO/FILTER", cutoff_hz=600)  # doctest: +SKIP
        >>> lab.undo()  # doctest: +SKIP
        <SetResult DEMO/FILTER: cutoff_hz 600.0 -> 20.0 (applied)>
        """
        self._session.check_open()
        with self._lock:
            if not self._undo:
                raise LabError(
                    "Nothing to undo: this Lab has made no settings change yet (or all were "
                    "undone). lab.revert(address) restores a unit's initial settings."
                )
            last = self._undo.pop()
        try:
            result, before = self._settings_apply(
                last.unit, dict(last.previous), timeout=timeout, record=False, counters=bool(watch)
            )
        except BaseException:
            with self._lock:
                self._undo.append(last)
            raise
        return self._settings_after(result, watch, check, before)

    def revert(
        self, address: str, *, timeout: float | None = None, watch: bool | float = True
    ) -> SetResult:
        """Put a unit back to the settings it was launched with.

        Every field that differs is sent at once; ``lab.undo()`` takes the revert back.

        Examples
        --------
        >>> lab.revert("DEMO/FILTER")  # doctest: +SKIP
        """
        self._session.check_open()
        self._settings_target(address)
        value = self._store.current[address]
        spec, current = self.parse(address, value)
        initial = self._settings_initial(address, structured_only=current is None)
        if current is not None:
            updates = {
                f.name: getattr(initial, f.name)
                for f in dataclasses.fields(initial)
                if f.init and not settings_equal(getattr(initial, f.name), getattr(current, f.name))
            }
        elif spec is not None:
            # Class not importable here: compare ezmsg's structured values, leaf by leaf
            # inside nested settings, and send what differs field by field.
            updates = structured_diff(spec, initial, structured(value) or {})
        else:
            raise SettingsRefusedError(
                f"{address}: ezmsg gives no settings schema for it, so the Lab cannot check "
                "the initial values; nothing was sent.",
                unit=address,
                code="NO_SCHEMA",
            )
        if not updates:
            return SetResult(address, {}, {}, {}, self._store.last_seq, 0.0, "none", value=value)
        result, before = self._settings_apply(
            address, updates, timeout=timeout, record=True, counters=bool(watch)
        )
        return self._settings_after(result, watch, False, before)

    @contextlib.contextmanager
    def temporarily(
        self,
        address: str,
        fields: Mapping[str, Any] | None = None,
        /,
        *,
        check: bool = False,
        timeout: float | None = None,
        watch: bool | float = True,
        **kw: Any,
    ) -> Iterator[SetResult]:
        """Change settings for the duration of a ``with`` block, restored on exit.

        The fields are put back to their values before the block on every exit, also when
        the block raises (and when ``check=True`` raises on entry). Neither the change nor
        the restore goes on the undo history.

        Examples
        --------
        >>> with lab.temporarily("DEMO/FILTER", bypass=True):  # doctest: +SKIP
        ...     raw = lab.profile()
        """
        try:
            result = self.set(address, fields, check=check, timeout=timeout, watch=watch, **kw)
        except SettingsEffectError as err:
            self._settings_restore(cast(SetResult, err.result), timeout)
            raise
        try:
            yield result
        finally:
            self._settings_restore(result, timeout)

    def check(self, address: str, updates: Mapping[str, Any]) -> dict[str, Any]:
        """Validate a change without sending it: ``{field path: coerced value}``.

        Raises what :meth:`set` raises before sending (unknown unit or field, a refused
        value, a unit that takes no live settings); changes nothing.
        """
        self._settings_target(address)
        value = self._store.current[address]
        spec, current = self.parse(address, value)
        if spec is None:
            raise SettingsRefusedError(
                f"{address}: ezmsg gives no settings schema for it, so the Lab cannot check "
                "a change; nothing was sent.",
                unit=address,
                code="NO_SCHEMA",
            )
        if current is None:
            return validate_updates(spec, structured(value), dict(updates), unit=address)
        new = build_update(spec, current, dict(updates), unit=address)
        return {p: get_path(new, p) for p in updates}

    def values(self, address: str, paths: Iterable[str]) -> dict[str, Any]:
        """The unit's current value of each field path (as :meth:`set` takes them)."""
        self._settings_target(address)
        value = self._store.current[address]
        _, current = self.parse(address, value)
        source = current if current is not None else structured(value)
        return {p: get_path(source, p) for p in paths}

    def apply(
        self, address: str, updates: Mapping[str, Any], *, timeout: float | None = None
    ) -> SetResult:
        """:meth:`set` without watching the unit and without an entry in the undo
        history (for experiments, which put their changes back themselves)."""
        return self._settings_apply(address, dict(updates), timeout=timeout, record=False)[0]

    @property
    def settings_changes(self) -> list[SetResult]:
        """The changes :meth:`undo` can take back, oldest first."""
        with self._lock:
            return list(self._undo)

    # ------------------------------------------------------------------ forms
    def settings_form(
        self,
        address: str,
        policy: str = "live",
        *,
        debounce_s: float = 0.15,
        watch: bool | float = True,
    ) -> SettingsForm:
        """An ipywidgets form for a unit's settings, wired to :meth:`set`.

        Edits are validated in the form (nothing is sent while a field is invalid) and sent
        per ``policy``: ``"live"`` (debounced), ``"release"`` or ``"manual"`` (Apply and
        Reset). The form follows changes made elsewhere (other cells, other clients) and
        shows when what was applied differs from what was requested; a unit that breaks
        after a change is reported in the form's status line. Units without live settings
        render read-only, saying why. ``form.close()`` stops following the unit.

        Examples
        --------
        >>> form = lab.settings_form("DEMO/FILTER")  # doctest: +SKIP
        >>> form.control("cutoff_hz").value = 30.0  # doctest: +SKIP
        """
        self._session.check_open()
        known = set(self._store.current)
        if address not in known:
            check_unit(address, known)
        value = self._store.current[address]
        spec, obj = self.parse(address, value)
        reason = self._settings_read_only(address)
        form: SettingsForm = lab_form_classes()[0](
            spec,
            obj if obj is not None else structured(value),
            policy=policy,
            debounce_s=debounce_s,
            unit=address,
            read_only_reason=reason,
        )
        window = DEFAULT_WATCH_S if watch is True else float(watch or 0)

        def watch_change(result: SetResult, before: Counters | None) -> Health:
            return self._watcher.watch(result, window, before, lambda: self._session.closed)

        FormLink(
            form,
            address,
            self._store,
            apply=lambda updates: self._settings_apply(
                address, updates, timeout=None, record=True, counters=window > 0
            ),
            watch=watch_change if window > 0 else None,
            worker=self._worker,
        )
        return form

    def settings_panel(self, policy: str = "live", **options: Any) -> SettingsPanel:
        """Every unit's form in one searchable panel (``panel.search.value = "cutoff"``).

        Closing the panel closes its forms.
        """
        forms = {a: self.settings_form(a, policy, **options) for a in sorted(self._store.current)}
        panel: SettingsPanel = lab_form_classes()[1](forms)
        return panel

    # ------------------------------------------------------------------ internals
    def specs(self) -> dict[str, SettingsSpec | None]:
        """Every unit's field specs (cached per snapshot value), for the tables."""
        out: dict[str, SettingsSpec | None] = {}
        for address, value in list(self._store.current.items()):
            try:
                out[address] = self.parse(address, value)[0]
            except Exception:  # a value the Lab cannot read: its table rows stay raw
                out[address] = None
        return out

    def _settings_read_only(self, address: str) -> str | None:
        comp = self._graph.components().get(address)
        if comp is None or comp.dynamic_settings.enabled:
            return None
        if is_collection(comp):
            units = ", ".join(c for c in comp.children[:4]) or "its units"
            return (
                f"{address} is a collection: ezmsg lists its settings but cannot change them "
                f"while it runs; set its units instead ({units})"
            )
        return (
            f"{address} has no INPUT_SETTINGS stream, so ezmsg cannot change its settings "
            "while it runs; relaunch it with new settings"
        )

    def _settings_target(self, address: str) -> str | None:
        """Check the unit exists and takes live settings; its settings topic if known."""
        self._session.check_open()
        known = set(self._store.current)
        comps = self._graph.components()
        if address not in known:
            check_unit(address, known | set(comps))
        reason = self._settings_read_only(address)
        if reason is not None:
            raise SettingsRefusedError(f"{reason}.", unit=address, code="NOT_DYNAMIC")
        comp = comps.get(address)
        return comp.dynamic_settings.input_topic if comp is not None else None

    def _settings_initial(self, address: str, *, structured_only: bool = False) -> Any:
        """The unit's initial settings: the object, or with ``structured_only`` ezmsg's
        structured form (a dict; for classes not importable here)."""
        comp = self._graph.components().get(address)
        raw, shown = comp.initial_settings if comp is not None else (None, None)
        if structured_only:
            if isinstance(shown, dict):
                return shown
            raise SettingsRefusedError(
                f"{address}: ezmsg gives no structured initial value for it (is its "
                "pipeline still running? see lab.topology()), and its settings class "
                "cannot be imported here; nothing was sent.",
                unit=address,
                code="NO_INITIAL",
            )
        if raw is None:
            raise SettingsRefusedError(
                f"{address}: no running pipeline declares its initial settings (is it still "
                "running? see lab.pipelines); nothing was sent.",
                unit=address,
                code="NO_INITIAL",
            )
        try:
            initial = pickle.loads(raw)
        except Exception as exc:  # a class that is not importable here
            raise SettingsRefusedError(
                f"{address}: its initial settings cannot be read here ({exc})",
                unit=address,
                code="NOT_IMPORTABLE",
            ) from None
        if not dataclasses.is_dataclass(initial):
            raise SettingsRefusedError(
                f"{address}: its settings are a {type(initial).__name__}, not a dataclass; "
                "the Lab can only revert dataclass settings.",
                unit=address,
                code="NOT_DATACLASS",
            )
        return initial

    def _settings_apply(
        self,
        address: str,
        updates: dict[str, Any],
        *,
        timeout: float | None,
        record: bool,
        counters: bool = False,
    ) -> tuple[SetResult, Counters | None]:
        """Validate, send as one message, wait for the confirming event. No watching.

        With ``counters``, also the unit's message counters just before sending (what the
        watch compares with); read after validation, so refused input costs nothing.
        """
        t0 = time.perf_counter()
        total = self._session.timeout_for(timeout)
        topic = self._settings_target(address)
        queue = self._queue(address)
        if not queue.acquire(total):
            raise LabTimeoutError(
                f"{address}: other settings changes to this unit were still being applied "
                f"after {total:g} s; nothing was sent. Pass a larger timeout=."
            )
        try:
            value = self._store.current[address]  # the latest, after earlier changes
            spec, current = self.parse(address, value)
            if spec is None:
                raise SettingsRefusedError(
                    f"{address}: ezmsg gives no settings schema for it, so the Lab cannot "
                    "check a change; nothing was sent.",
                    unit=address,
                    code="NO_SCHEMA",
                )
            if current is None:
                # The settings class is not importable here: validated against ezmsg's
                # metadata and the structured value, sent field by field.
                now = structured(value)
                requested = validate_updates(spec, now, updates, unit=address)
                previous = {p: get_path(now, p) for p in requested}
                before = self._watcher.counters(address) if counters else None
                result = self._settings_send_fields(
                    address, spec, requested, previous, t0=t0, total=total
                )
                if record:
                    with self._lock:
                        self._undo.append(result)
                        del self._undo[:-MAX_UNDO]
                return result, before
            new = build_update(spec, current, updates, unit=address)
            requested = {p: get_path(new, p) for p in updates}
            previous = {p: get_path(current, p) for p in updates}
            before = self._watcher.counters(address) if counters else None
            what = change_call(address, requested)
            remaining = max(0.05, total - (time.perf_counter() - t0))
            sent_at = time.time()
            coro, method = self._send_coro(address, topic, new, requested, remaining, what, value)
            snap_value, applied_obj, seq = self._session.run(coro, remaining, what)
            self._store.mark_own(seq)
            confirmed_at = time.time()
            applied = {p: get_path(applied_obj, p) for p in requested}
            result = SetResult(
                unit=address,
                requested=requested,
                applied=applied,
                previous=previous,
                seq=seq,
                elapsed_s=time.perf_counter() - t0,
                method=method,
                value=applied_obj if applied_obj is not None else structured(snap_value),
                sent_at=sent_at,
                confirmed_at=confirmed_at,
            )
            if record:
                with self._lock:
                    self._undo.append(result)
                    del self._undo[:-MAX_UNDO]  # a live slider sends many changes
            return result, before
        finally:
            queue.release()

    def _send_coro(
        self,
        address: str,
        topic: str | None,
        new: Any,
        requested: dict[str, Any],
        remaining: float,
        what: str,
        built_from: Any,
    ) -> tuple[Coroutine[Any, Any, tuple[Any, Any, int]], str]:
        """The coroutine that sends a validated change of a unit whose class is importable
        here, and how.

        The direct path: the whole object ``new`` (built from ``built_from``, the store's
        current value) through the Lab's persistent publisher on the unit's settings
        topic, confirmed by ezmsg's settings event; faster than ezmsg's field update, and
        :meth:`SettingsControl.send_object` keeps other clients' concurrent changes.
        A unit on another host takes it too (ezmsg's field update patches through a
        publisher in the unit's process that listens on 127.0.0.1 only). One field of a
        unit that no process owns in the topology goes through ezmsg's field update, whose
        refusal says why (a broadcast would reach no one and time out).
        """
        inner = remaining * 0.95  # the control loop's own bound must not fire first
        owner = self._graph.owner_pid(address)
        remote = self._graph.runs_elsewhere(address)
        if len(requested) == 1 and owner is None and not remote:
            ((path, v),) = requested.items()
            return self._control.send_field(address, path, v, inner, what), "update_setting"
        coro = self._control.send_object(
            address,
            topic if topic is not None else address + _SETTINGS_TOPIC_SUFFIX,
            new,
            inner,
            what,
            owner_pid=owner,
            bind_all=remote,
            fields=requested,
            built_from=built_from,
        )
        return coro, "publish"

    def _settings_send_fields(
        self,
        address: str,
        spec: SettingsSpec,
        requested: dict[str, Any],
        previous: dict[str, Any],
        *,
        t0: float,
        total: float,
    ) -> SetResult:
        """Send validated fields one at a time, in order, each confirmed by its event.

        For a unit whose settings class is not importable here: no object can be built, so
        each field goes through ezmsg's field update (the enum fields as values the unit's
        process turns into its own members) and is confirmed from the event's structured
        value. If one fails, the fields already applied are put back, newest first.
        """
        applied: dict[str, Any] = {}
        done: list[str] = []
        snap_value: Any = None
        seq = self._store.last_seq
        sent_at = time.time()

        def send(path: str, v: Any, what: str, start: float = t0) -> tuple[Any, Any, int]:
            remaining = max(0.05, total - (time.perf_counter() - start))
            coro = self._control.send_field(
                address,
                path,
                to_wire(spec.field(path), v),
                remaining * 0.95,  # the control loop's own bound must not fire first
                what,
                match=structured_matcher(path, v),
            )
            snap_value, applied_obj, seq = self._session.run(coro, remaining, what)
            self._store.mark_own(seq)
            return snap_value, applied_obj, seq

        try:
            for path, v in requested.items():
                what = change_call(address, {path: v})
                snap_value, _, seq = send(path, v, what)
                applied[path] = get_path(structured(snap_value), path)
                done.append(path)
        except BaseException as exc:
            if done:
                exc.args = (f"{exc} {self._settings_put_back(address, done, previous, send)}",)
            raise
        return SetResult(
            unit=address,
            requested=dict(requested),
            applied=applied,
            previous=previous,
            seq=seq,
            elapsed_s=time.perf_counter() - t0,
            method="update_setting",
            value=structured(snap_value),
            sent_at=sent_at,
            confirmed_at=time.time(),
        )

    def _settings_put_back(
        self, address: str, done: list[str], previous: dict[str, Any], send: Any
    ) -> str:
        """Undo the fields of a field-by-field change that were applied; say how it went."""
        failed = []
        start = time.perf_counter()  # a budget of its own: the change may have used it up
        for path in reversed(done):
            try:
                send(path, previous[path], change_call(address, {path: previous[path]}), start)
            except Exception as exc:  # report every field that could not be put back
                failed.append(f"{path} ({type(exc).__name__})")
        names = ", ".join(done)
        if failed:
            return (
                f"{names} had been applied before; putting back failed for "
                f"{', '.join(failed)}: see lab.settings({address!r})."
            )
        return (
            f"{names} had been applied before and {'was' if len(done) == 1 else 'were'} put back."
        )

    def _settings_after(
        self,
        result: SetResult,
        watch: bool | float,
        check: bool,
        before: Counters | None,
    ) -> SetResult:
        """Watch the unit, then report a problem (print, or raise with ``check``)."""
        if not watch:
            return result
        window = DEFAULT_WATCH_S if watch is True else float(watch)
        health = self._watcher.watch(result, window, before, lambda: self._session.closed)
        watched = dataclasses.replace(result, health=health)
        with self._lock:
            self._undo[:] = [watched if r is result else r for r in self._undo]
        if health.problem:
            message = effect_message(watched)
            if check:
                raise SettingsEffectError(message, watched)
            print(message, file=sys.stderr, flush=True)
        return watched

    def _settings_restore(self, result: SetResult, timeout: float | None) -> None:
        with self._lock:
            self._undo[:] = [r for r in self._undo if r is not result]
        if result.previous:
            self._settings_apply(result.unit, dict(result.previous), timeout=timeout, record=False)
