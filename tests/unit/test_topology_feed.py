"""The topology feed's event logic without ezmsg: gaps are counted and healed, bursts are
coalesced into few snapshot reads, and a stream that ends marks the connection lost."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from ezmsg_lab.feeds.topology import TopologyFeed


class _Ctx:
    """Stands in for the GraphContext: a scripted event stream and a counted snapshot."""

    def __init__(self, seqs: list[int], hold: asyncio.Event) -> None:
        self.seqs = seqs
        self.hold = hold
        self.snapshots = 0

    async def snapshot(self):
        self.snapshots += 1
        return SimpleNamespace(n=self.snapshots, processes={}, graph={})

    async def subscribe_topology_events(self, after_seq: int = 0):
        for seq in self.seqs:
            yield SimpleNamespace(seq=seq)
        await self.hold.wait()  # the stream then ends: the server went away


class _Conn:
    def __init__(self, ctx: _Ctx) -> None:
        self.context = ctx
        self.lost: str | None = None

    async def call(self, fn):
        return await fn(self.context)

    def mark_lost(self, reason: str) -> None:
        self.lost = reason


def test_gaps_are_counted_bursts_coalesced_and_end_of_stream_marks_lost():
    async def scenario():
        hold = asyncio.Event()
        ctx = _Ctx([1, 2, 3, 7, 8, 20], hold)  # 3 dropped after 3, 11 after 8
        conn = _Conn(ctx)
        feed = TopologyFeed(conn)  # type: ignore[arg-type]
        await feed.start()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if feed.version >= 2:
                break
        gaps, last_seq, reads, version = feed.gaps, feed.last_seq, ctx.snapshots, feed.version
        hold.set()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if conn.lost:
                break
        await feed.stop()
        return gaps, last_seq, reads, version, conn.lost, len(feed.events)

    gaps, last_seq, reads, version, lost, events = asyncio.run(scenario())
    assert gaps == 3 + 11
    assert last_seq == 20 and events == 6
    # One read at start, then the whole burst of six events coalesced into one re-read.
    assert reads == 2 and version == 2
    assert lost == "the topology event stream ended"
