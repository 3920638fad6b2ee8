"""A whole-object change keeps another client's concurrent change to another field.

``lab.set`` sends one whole settings object built from the Lab's current value. Another
client (its own GraphContext, ezmsg's field update) changes a different field right
before: its settings event may still be on its way to the Lab when the Lab builds and
sends. The Lab must not undo that change (see ``ezmsg_lab.feeds.settings_control``).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from ezmsg_lab import Lab
from ezmsg_lab.demo import SettingsEcho
from ezmsg_lab.feeds.settings_control import unpickled

from ..conftest import wait_until

pytestmark = pytest.mark.integration


class OtherClient:
    """A bare GraphContext on a loop thread of its own: another client of the graph."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.ctx: Any = None
        self.address = address
        self.run(self._open())

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(20)

    async def _open(self) -> None:
        from ezmsg.core.graphcontext import GraphContext

        self.ctx = GraphContext(self.address, auto_start=False)
        await self.ctx.__aenter__()

    def update_setting(self, unit: str, field: str, value: Any) -> None:
        self.run(self.ctx.update_setting(unit, field, value))

    def close(self) -> None:
        try:
            self.run(self.ctx.__aexit__(None, None, None))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


@pytest.fixture(scope="module")
def lab():
    with Lab() as lab:
        lab.launch(SettingsEcho(), name="ECHO")
        yield lab


def _unit_value(lab: Lab) -> tuple[float, str] | None:
    obj = unpickled(lab._settings.current.get("ECHO"))
    return None if obj is None else (obj.value, obj.label)


def test_another_clients_change_just_before_is_kept(lab):
    other = OtherClient(tuple(lab.address))
    try:
        lab.set("ECHO", value=-1.0, watch=False)  # the Lab's publisher is connected
        for i in range(15):
            other.update_setting("ECHO", "label", f"other{i}")
            result = lab.set("ECHO", value=float(i), watch=False)  # no wait in between
            assert result.method == "publish"
            assert result.applied == {"value": float(i)}
            assert wait_until(lambda i=i: _unit_value(lab) == (float(i), f"other{i}"), 10), (
                i,
                _unit_value(lab),
            )
    finally:
        other.close()
