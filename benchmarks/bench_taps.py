"""Data taps (issue 10): tap ingest beside a raw ezmsg subscriber, pipeline throughput
with two taps open, and the scope's frame time (kernel decimation and browser draw) for
8 channels × 1 kHz × 10 s."""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np

from ._common import Result, median, report, write_json
from .bench_live_data import _count, _cpu_s, throughput_pipeline

CHANNELS, FS, CHUNK = 8, 1000.0, 100


def _raw_rate(address: tuple[str, int], topic: str, seconds: float) -> float:
    """Messages/s a plain (non-leaky) ezmsg subscriber in this process receives, with
    ``recv()`` (a deep copy, as the tap takes)."""
    from ezmsg.core.graphcontext import GraphContext

    async def go() -> float:
        async with GraphContext(address, auto_start=False) as ctx:
            sub = await ctx.subscriber(topic)
            await sub.recv()
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                await sub.recv()
                n += 1
            return n / (time.perf_counter() - t0)

    return asyncio.run(go())


def bench_ingest(seconds: float = 3.0, rounds: int = 3) -> list[Result]:
    """A free-running source of 8 ch x 100-sample AxisArrays, tapped: messages/s the
    tap takes beside a raw ezmsg subscriber in this process, with the default
    ``max_rate_hz`` (held to the unit process's CPU budget: the source never idles) and
    with ``max_rate_hz=None`` (every message the agent can hand over, no budget)."""
    from ezmsg_lab import Lab
    from ezmsg_lab.demo.multichannel import MultiSinePipeline, MultiSineSettings

    settings = MultiSineSettings(channels=CHANNELS, fs=FS, chunk=CHUNK, free_running=True)
    topic = "SINES/SOURCE/OUTPUT"
    modes = {"default max_rate_hz (budgeted)": 2000.0, "max_rate_hz=None": None}
    taps: dict[str, list[float]] = {m: [] for m in modes}
    drops: dict[str, list[float]] = {m: [] for m in modes}
    raws: list[float] = []
    with Lab() as lab:
        lab.launch(MultiSinePipeline(settings), name="SINES")
        for _ in range(rounds):
            raws.append(_raw_rate(lab.address, topic, seconds))
            for mode, rate in modes.items():
                tap = lab.tap(topic, window="2s", max_rate_hz=rate)
                time.sleep(1.0)  # the budget's first windows
                n0, d0, t0 = tap.received, tap.dropped, time.perf_counter()
                time.sleep(seconds)
                n1, d1, t1 = tap.received, tap.dropped, time.perf_counter()
                tap.close()
                taps[mode].append((n1 - n0) / (t1 - t0))
                drops[mode].append((d1 - d0) / max(1, (n1 - n0) + (d1 - d0)))
    raw_rate = median(raws)
    samples = CHUNK * CHANNELS
    out = []
    for mode in modes:
        tap_rate = median(taps[mode])
        out.append(
            report(
                Result(
                    f"tap ingest, AxisArray 8 ch x 100 samples, {mode}",
                    tap_rate,
                    raw_rate,
                    "msg/s",
                    "report",
                    None,
                    f"{tap_rate * samples / 1e6:.2f} M samples/s vs raw "
                    f"{raw_rate * samples / 1e6:.2f} M; tap dropped "
                    f"{100 * median(drops[mode]):.0f} % of a free-running source (leaky: "
                    "it never slows it)",
                )
            )
        )
    return out


def _pipeline_pid(address) -> int:
    """The pid of the throughput pipeline's process, from the GraphServer's process table
    (profiling payloads carry the parent's pid for forked unit processes)."""
    from ezmsg.core.graphcontext import GraphContext

    async def go() -> int:
        async with GraphContext(tuple(address), auto_start=False) as ctx:
            snap = await ctx.snapshot()
            return next(int(p.pid) for p in snap.processes.values() if "BENCH/COUNT" in p.units)

    return asyncio.run(go())


def _measure(address, pid: int, seconds: float) -> tuple[float, float | None]:
    """(messages/s, CPU µs per message of process ``pid``) over ``seconds``."""
    n0, t0, _ = _count(address)
    c0 = _cpu_s(pid)
    time.sleep(seconds)
    n1, t1, _ = _count(address)
    c1 = _cpu_s(pid)
    cpu = None if c0 is None or c1 is None or n1 <= n0 else (c1 - c0) / (n1 - n0) * 1e6
    return (n1 - n0) / (t1 - t0), cpu


def _two_taps_rounds(address, lab_for_round, seconds: float, rounds: int):
    """Per round: unobserved, with two taps, unobserved again; the tapped figure is
    compared with the mean of the two around it (a pipeline that speeds up or slows
    down over the run would otherwise favour one side). Each figure is (msg/s, the
    pipeline process's CPU µs per message)."""
    raw, tapped, via = [], [], ""
    pid = _pipeline_pid(address)
    _measure(address, pid, 1.0)  # warm up
    for _ in range(rounds):
        before = _measure(address, pid, seconds)
        with lab_for_round() as lab:
            a = lab.tap("BENCH/FLOOD/OUTPUT", window="1s")
            b = lab.tap("BENCH/RELAY/OUTPUT", window="1s")
            via = a.inspect()["via"]
            time.sleep(0.5)
            tapped.append(_measure(address, pid, seconds))
            a.close()
            b.close()
        time.sleep(0.5)
        after = _measure(address, pid, seconds)
        if tapped[-1][0] == 0 or after[0] == 0:
            # The pipeline stopped: ezmsg's broadcast raised as a tap's subscriber left
            # mid-message (a graph without the Lab's guard). Keep the complete rounds.
            tapped.pop()
            return raw, tapped, via + f"; THE PIPELINE STOPPED in round {len(raw) + 1}"
        raw.append(tuple(_mean2(x, y) for x, y in zip(before, after, strict=True)))
    return raw, tapped, via


def _mean2(x: float | None, y: float | None) -> float | None:
    return None if x is None or y is None else (x + y) / 2


def bench_two_taps(seconds: float = 3.0, rounds: int = 3) -> list[Result]:
    """A free-running pipeline (64-byte messages on ezmsg's local path) with two taps
    open: launched by the Lab (the taps are sampled in the unit processes), started by
    a plain GraphRunner and attached to (the taps subscribe), and started by a
    GraphRunner with ``ezmsg_lab.agent.BackendProcess`` and attached to (sampled by the
    agent). Beside msg/s (which moves ±15 % between windows here), the pipeline
    process's CPU time per message."""
    import contextlib

    from ezmsg_lab import Lab
    from ezmsg_lab.agent import BackendProcess
    from ezmsg_lab.demo import ThroughputPipeline

    results = []
    with Lab() as owner:
        owner.launch(ThroughputPipeline(), name="BENCH")
        address = tuple(owner.address)
        raw, tapped, via = _two_taps_rounds(
            address, lambda: contextlib.nullcontext(owner), seconds, rounds
        )
    results.append((raw, tapped, via, "launched by the Lab"))

    for backend, how in (
        (None, "attached, no agent (a plain GraphRunner)"),
        (BackendProcess, "attached, with ezmsg_lab.agent.BackendProcess"),
    ):
        # The pipeline in a process of its own; one Lab attached throughout, as the
        # launched case's Lab: its polling is in both figures, the taps in one.
        with (
            throughput_pipeline(backend) as address,
            Lab.attach(f"{address[0]}:{address[1]}") as lab,
        ):
            raw, tapped, via = _two_taps_rounds(
                address, lambda lab=lab: contextlib.nullcontext(lab), seconds, rounds
            )
        results.append((raw, tapped, via, how))

    out = []
    for raw, tapped, via, how in results:
        if not raw:
            print(f"pipeline throughput with two taps open, {how}: no complete round ({via})")
            continue
        base, ours = median([r for r, _ in raw]), median([t for t, _ in tapped])
        ratios = ", ".join(f"{t / r:.1%}" for (t, _), (r, _) in zip(tapped, raw, strict=True))
        cpu_raw = [c for _, c in raw if c is not None]
        cpu_tap = [c for _, c in tapped if c is not None]
        cpu = (
            f"; CPU {median(cpu_raw):.1f} -> {median(cpu_tap):.1f} µs/msg"
            if cpu_raw and cpu_tap
            else ""
        )
        out.append(
            report(
                Result(
                    f"pipeline throughput with two taps open, {how}",
                    ours,
                    base,
                    "msg/s",
                    ">= 98 %",
                    ours / base >= 0.98,
                    f"unobserved {base:.0f} msg/s (64-byte local path), medians of {len(raw)}; "
                    f"per round {ratios}{cpu}; taps {via}",
                )
            )
        )
    return out


def bench_paced_two_taps(
    rates: tuple[int, ...] = (1_000, 5_000), seconds: float = 3.0
) -> list[Result]:
    """A paced 8-channel source (10 samples a message) with two taps on its output: the
    publisher's rate from the Lab's own profiling, without and with the taps."""
    from ezmsg_lab import Lab
    from ezmsg_lab.demo.multichannel import MultiSinePipeline, MultiSineSettings

    def rate(lab: Lab) -> float:
        time.sleep(seconds)
        m = lab.metrics(since=seconds, topics=["S/SOURCE/OUTPUT"])
        return float(m[(m.kind == "publisher") & (m.metric == "rate_hz")]["value"].median())

    results = []
    for msgs in rates:
        settings = MultiSineSettings(channels=CHANNELS, fs=msgs * 10.0, chunk=10)
        with Lab(poll_hz=4) as lab:
            lab.launch(MultiSinePipeline(settings), name="S")
            lab.wait_for_profile()
            time.sleep(1.0)
            base = rate(lab)
            a = lab.tap("S/SOURCE/OUTPUT", window="2s")
            b = lab.tap("S/SOURCE/OUTPUT", window="2s")
            time.sleep(1.0)
            ours = rate(lab)
            dropped = a.dropped + b.dropped
        results.append(
            report(
                Result(
                    f"paced source {msgs} msg/s (8 ch x 10) with two taps",
                    ours,
                    base,
                    "msg/s",
                    ">= 98 %",
                    ours / base >= 0.98,
                    f"taps dropped {dropped} (counted)",
                )
            )
        )
    return results


def bench_tap_memory(seconds: float | None = None, cap: int = 2_000_000) -> list[Result]:
    """A tap at its memory cap for a while (default 60 s; ``EZLAB_TAP_MEMORY_S=600`` for
    the issue's 10 minutes): the buffer's bytes and this process's RSS."""
    import os

    import psutil

    from ezmsg_lab import Lab
    from ezmsg_lab.demo.multichannel import MultiSinePipeline, MultiSineSettings

    seconds = float(os.environ.get("EZLAB_TAP_MEMORY_S", 60)) if seconds is None else seconds
    me = psutil.Process()
    nbytes, rss = [], []
    with Lab() as lab:
        settings = MultiSineSettings(channels=CHANNELS, fs=FS * 10, chunk=100)  # 8 Mb/s
        lab.launch(MultiSinePipeline(settings), name="S")
        tap = lab.tap("S/SOURCE/OUTPUT", window="60s", max_bytes=cap)
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            time.sleep(1.0)
            nbytes.append(tap.nbytes)
            rss.append(me.memory_info().rss)
        received = tap.received
    half = len(rss) // 2
    growth = (max(rss[half:]) - rss[half]) / 1e6 if half else float("nan")
    return [
        report(
            Result(
                f"tap buffer at its {cap / 1e6:g} MB cap over {seconds:g} s",
                max(nbytes) / 1e6,
                None,
                "MB",
                f"<= {cap / 1e6:g} MB",
                max(nbytes) <= cap,
                f"{received} messages of 100 x 8 received",
            )
        ),
        report(
            Result(
                "kernel RSS growth, second half of that run",
                growth,
                None,
                "MB",
                "report",
                None,
                f"RSS {rss[half] / 1e6:.0f} -> {rss[-1] / 1e6:.0f} MB",
            )
        ),
    ]


def _ten_seconds(seconds: float = 10.0) -> list:
    from ezmsg.util.messages.axisarray import AxisArray, CoordinateAxis, LinearAxis

    from ezmsg_lab.model.tap_buffer import TapItem

    chunk = 10  # 100 messages/s, as the demo publishes
    labels = np.array([f"ch{c}" for c in range(CHANNELS)])
    rng = np.random.default_rng(0)
    items = []
    for k in range(int(seconds * FS / chunk)):
        msg = AxisArray(
            rng.normal(size=(chunk, CHANNELS)),
            ["time", "ch"],
            axes={
                "time": LinearAxis(unit="s", gain=1 / FS, offset=1.7e9 + k * chunk / FS),
                "ch": CoordinateAxis(labels, ["ch"]),
            },
        )
        items.append(TapItem(1.7e9 + k * chunk / FS, msg, msg.data.nbytes))
    return items


def bench_scope(frames: int = 100, width: int = 800) -> list[Result]:
    """The kernel's frame time as a live scope pays it: a 10 s window of 8 ch x 1 kHz
    (100 messages/s) sliding by 5 messages a frame (20 frames/s), the scope's
    SweepCache kept between frames; beside it, a frame with nothing kept (a scope's
    first frame, or any frame before the cache)."""
    from ezmsg_lab.model.scope_frame import SweepCache, build_frame

    pool = _ten_seconds(10.0 + frames * 5 * 10 / FS)
    window = int(10 * FS / 10)
    cache = SweepCache()
    build_frame(pool[:window], width, 10.0, cache=cache)
    kept, fresh = [], []
    for f in range(1, frames + 1):
        items = pool[f * 5 : f * 5 + window]
        t0 = time.perf_counter()
        frame = build_frame(items, width, 10.0, cache=cache)
        payload = frame.minmax.tobytes()
        kept.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        build_frame(items, width, 10.0).minmax.tobytes()
        fresh.append((time.perf_counter() - t0) * 1e3)
    k, n = median(kept), median(fresh)
    results = [
        report(
            Result(
                "scope frame in the kernel, 8 ch x 1 kHz x 10 s",
                k,
                None,
                "ms",
                "< 5 ms",
                k < 5.0,
                f"view choice + min/max to {width} columns, 5 new messages a frame, what "
                f"the last frame read kept; a frame reading all 1,000 messages {n:.2f} ms; "
                f"{len(payload)} bytes a frame",
            )
        )
    ]
    results += _browser_draw(frame, frames)
    return results


def bench_scope_views(frames: int = 200) -> list[Result]:
    """Kernel frame time of the image view (the newest of 100 images of 256 x 256: on an
    800 x 260 canvas it fits and is sent as is, on 200 x 100 it is reduced by block means)
    and the scatter view (2,000 points: the newest of 100 messages of 50 points)."""
    from ezmsg.util.messages.axisarray import AxisArray, LinearAxis

    from ezmsg_lab.model.scope_frame import MAX_POINTS, build_frame
    from ezmsg_lab.model.tap_buffer import TapItem

    rng = np.random.default_rng(0)
    images = [
        TapItem(k * 0.02, AxisArray(rng.normal(size=(256, 256)), ["y", "x"], axes={}), 0)
        for k in range(100)
    ]
    clouds = []
    for k in range(100):
        axes = {"time": LinearAxis(unit="s", gain=0.001, offset=k * 0.05)}
        msg = AxisArray(rng.normal(size=(50, 2)), ["time", "xy"], axes=axes)
        clouds.append(TapItem(k * 0.05, msg, 0))
    results = []
    for name, items, want, (width, height) in (
        ("scope image frame in the kernel, 256 x 256", images, "image", (800, 260)),
        ("scope image frame, 256 x 256 to 100 x 200", images, "image", (200, 100)),
        (f"scope scatter frame in the kernel, {MAX_POINTS} pts", clouds, "scatter", (800, 260)),
    ):
        times = []
        for _ in range(frames):
            t0 = time.perf_counter()
            frame = build_frame(items, width, 10.0, rows=height)
            payload = frame.values.tobytes()
            times.append((time.perf_counter() - t0) * 1e3)
        assert frame.view == want, frame
        k = median(times)
        shape = "x".join(str(n) for n in frame.values.shape)
        results.append(
            report(Result(name, k, None, "ms", "< 5 ms", k < 5.0, f"{shape}, {len(payload)} bytes"))
        )
    # An image larger than the canvas: block means down to 800 x 260.
    big = [TapItem(0.0, AxisArray(rng.normal(size=(1024, 1024)), ["y", "x"], axes={}), 0)]
    times = []
    for _ in range(frames // 4):
        t0 = time.perf_counter()
        frame = build_frame(big, 800, 10.0, rows=260)
        frame.values.tobytes()
        times.append((time.perf_counter() - t0) * 1e3)
    k = median(times)
    results.append(
        report(
            Result(
                "scope image frame, 1024 x 1024 to 260 x 800",
                k,
                None,
                "ms",
                "report",
                None,
                "block means (NaN-aware) of a megapixel image",
            )
        )
    )
    return results


def _browser_draw(frame, frames: int) -> list[Result]:
    from pathlib import Path

    from tests.browser._harness import CHROMIUM, CHROMIUM_ARGS, open_harness

    if not Path(CHROMIUM).exists():
        print(f"scope draw in chromium: skipped ({CHROMIUM} missing: make browser)")
        return []
    from playwright.sync_api import sync_playwright

    scope_js = Path(__file__).parents[1] / "ezmsg_lab" / "widgets" / "static" / "scope.js"
    header = frame.header() | {"labels": frame.channels, "seq": 1}
    floats = frame.minmax.ravel().tolist()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        open_harness(page, scope_js)
        page.evaluate(
            """([f, h]) => window.mount({width: 800, height: 400, title: "bench", paused: false,
                 autoscale: true, y_range: [-1, 1], selected: [], channel_names: h.labels,
                 header: h, frame: new DataView(new Float32Array(f).buffer)})""",
            [floats, header],
        )
        timing = page.evaluate(
            """async ([f, h, n]) => {
                 const m = window.view.model, root = document.querySelector('.ezs-root');
                 const draws = [], start = performance.now();
                 for (let i = 0; i < n; i++) {
                   const before = Number(root.dataset.draws);
                   m.pySet("frame", new DataView(new Float32Array(f).buffer));
                   m.pySet("header", {...h, seq: i + 2});
                   while (Number(root.dataset.draws) === before)
                     await new Promise(r => requestAnimationFrame(r));
                   draws.push(Number(root.dataset.drawMs));
                 }
                 return {draws, total: performance.now() - start};
               }""",
            [floats, header, frames],
        )
        browser.close()
    draw = float(np.median(timing["draws"]))
    fps = frames / (timing["total"] / 1000)
    return [
        report(
            Result(
                "scope draw in chromium (canvas), 8 lanes x 800 px",
                draw,
                None,
                "ms",
                "< 10 ms",
                draw < 10.0,
                "headless, no GPU",
            )
        ),
        report(
            Result(
                "scope frames drawn per second (browser side)",
                fps,
                None,
                "frames/s",
                ">= 20",
                fps >= 20,
                "one frame per animation frame: capped by requestAnimationFrame",
            )
        ),
    ]


def bench_scope_live(seconds: float = 5.0) -> Result:
    """Frames the scope's kernel thread sends per second on a live 8 ch × 1 kHz tap."""
    from ezmsg_lab import Lab
    from ezmsg_lab.demo.multichannel import MultiSinePipeline, MultiSineSettings

    with Lab() as lab:
        lab.launch(
            MultiSinePipeline(MultiSineSettings(channels=CHANNELS, fs=FS, chunk=10)), name="S"
        )
        tap = lab.tap("S/SOURCE/OUTPUT", window="10s")
        time.sleep(1.0)
        scope = tap.scope(fps=20)
        time.sleep(0.5)
        f0, t0 = scope.frames_sent, time.perf_counter()
        time.sleep(seconds)
        fps = (scope.frames_sent - f0) / (time.perf_counter() - t0)
        kernel = float(np.median(scope.frame_ms)) if scope.frame_ms else float("nan")
        scope.close()
    return report(
        Result(
            "scope frames sent per second, live tap",
            fps,
            None,
            "frames/s",
            ">= 20 (asked 20)",
            fps >= 19.0,
            f"kernel {kernel:.2f} ms a frame; no browser attached (comm sends only)",
        )
    )


def main(json_path: str | None = None) -> list[Result]:
    import logging

    logging.getLogger("ezmsg").setLevel(logging.ERROR)
    print("== data taps (issue 10)")
    results = bench_ingest()
    results.extend(bench_two_taps())
    results += bench_paced_two_taps()
    results += bench_tap_memory()
    results += bench_scope()
    results += bench_scope_views()
    results.append(bench_scope_live())
    write_json(results, json_path)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", help="write results as JSON to this file")
    main(parser.parse_args().json)
