"""The Lab's services on their own: the session's refusals and the one subscription idiom."""

from __future__ import annotations

import asyncio

import pytest

from ezmsg_lab.errors import LabClosedError
from ezmsg_lab.model.settings_store import SettingsStore
from ezmsg_lab.runtime.loop import ControlLoop
from ezmsg_lab.services.session import Session

from .test_stores import _event


def test_session_runs_on_its_loop_until_closed() -> None:
    session = Session(2.0)
    session.loop = ControlLoop()
    try:

        async def answer() -> int:
            await asyncio.sleep(0)
            return 42

        assert session.run(answer(), None, "answer") == 42
        assert session.timeout_for(None) == 2.0 and session.timeout_for(0.5) == 0.5
        with pytest.raises(ValueError, match="positive number of seconds"):
            session.timeout_for(0)
        with session.close_lock:
            assert session.mark_closed() is True
            assert session.mark_closed() is False  # once
        coro = answer()
        with pytest.raises(LabClosedError, match="create a new one"):
            session.run(coro, None, "answer")
        assert coro.cr_frame is None  # closed, not left un-awaited
        with pytest.raises(LabClosedError):
            session.check_open()
    finally:
        session.loop.stop()


def test_session_refuses_a_bad_timeout() -> None:
    for bad in (0, -1, True, "5"):
        with pytest.raises(ValueError, match="must be a positive number"):
            Session(bad)  # type: ignore[arg-type]


def test_settings_store_subscribe_returns_unsubscribe() -> None:
    store = SettingsStore()
    seen: list[str] = []
    unsubscribe = store.subscribe(lambda address, value, event: seen.append(address))
    store.ingest_event(_event(1, "G/F", {"cutoff": 20.0}, "INITIAL_SETTINGS"))
    unsubscribe()
    unsubscribe()  # twice is harmless
    store.ingest_event(_event(2, "G/F", {"cutoff": 30.0}))
    assert seen == ["G/F"]
    assert len(store.listeners) == 0


def test_lab_is_a_facade_whose_every_public_name_is_documented() -> None:
    import inspect

    from ezmsg_lab import Lab

    assert Lab.__bases__ == (object,)  # no mixins
    undocumented = [
        name
        for name, obj in inspect.getmembers(Lab)
        if not name.startswith("_")
        and (callable(obj) or isinstance(inspect.getattr_static(Lab, name), property))
        and not (inspect.getattr_static(Lab, name).__doc__ or "").strip()
    ]
    assert undocumented == [], f"help(lab.<name>) would be empty for {undocumented}"
