"""Settings feed: the initial snapshot and every settings event, into the SettingsStore.

A gap in ``seq`` (ezmsg drops events for a subscriber that lags) is filled from the
server's retained history (``settings_events(after_seq)``) before the newer event applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from ..model.settings_store import SettingsStore
from ..runtime.connection import Connection

logger = logging.getLogger(__name__)


class SettingsFeed:
    def __init__(self, conn: Connection, store: SettingsStore) -> None:
        self._conn = conn
        self.store = store
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def new_server(self) -> None:
        """Before :meth:`start` on a reconnected server: its event numbers start again
        from 1, and its units are whatever it reports now (the history stays)."""
        self._closing = False
        self.store.new_server()

    async def start(self) -> None:
        snapshot = await self._conn.call(lambda ctx: ctx.settings_snapshot())
        self.store.ingest_snapshot(snapshot, time.time())
        for event in await self._conn.call(lambda ctx: ctx.settings_events(after_seq=0)):
            self.store.ingest_event(event)
        self._task = asyncio.create_task(self._listen(), name="ezmsg-lab-settings-events")

    async def stop(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _fill_gap(self, upto: int) -> None:
        after = self.store.last_seq
        events = await self._conn.call(lambda ctx: ctx.settings_events(after_seq=after))
        for event in events:
            if event.seq < upto:
                self.store.ingest_event(event)

    async def _listen(self) -> None:
        ctx = self._conn.context
        try:
            async for event in ctx.subscribe_settings_events(after_seq=self.store.last_seq):
                if event.seq > self.store.last_seq + 1:
                    await self._fill_gap(event.seq)
                self.store.ingest_event(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not self._closing:
                self._conn.mark_lost(f"settings event stream failed: {exc!r}")
            return
        if not self._closing:
            self._conn.mark_lost("the settings event stream ended")
